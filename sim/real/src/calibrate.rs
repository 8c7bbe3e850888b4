//! Calibration: per-statement service times measured on real PostgreSQL, written as a latency
//! profile that `model::profile::LatencyProfile` reads.
//!
//! METHOD
//!
//! The backend runs bookings at low concurrency (one at a time by default, so no statement
//! waits on a lock) over a [`TimingDb`]: a [`Db`] wrapper that times every statement from the
//! client side (send → last row decoded) and files it under its statement kind
//! (`model::profile::statement_kind`). That round trip over loopback is what the model's
//! service time stands for: the simulation adds its own network latency on top, which the
//! scenario keeps near zero for the db link.
//!
//! Each kind with at least [`SAMPLES_MIN`] samples becomes an EMPIRICAL quantile table
//! (`quantiles = [[q, µs], …]` at [`PROFILE_QUANTILES`], read from the HDR histogram); a kind
//! the workload never ran keeps the committed default's entry, marked in a comment. Each
//! statement is also filed under its CLASS, the first [`CLASS_CHARS`] characters of its text
//! ([`statement_class`]), and every class with enough samples gets its own table
//! (`[classes."SELECT body FROM rooms WHERE clinic_id = $1 …"]`), which the simulation
//! prefers to the kind's. Statements of one kind differ several-fold: the appointment INSERT
//! checks three exclusion constraints, the day's appointments SELECT reads many rows where
//! the policy lookup reads one. Drawn from one table per kind, a booking's dozen statements
//! add up to a much wider spread than the real ones do (room assignment p99 1.4–1.5× real at
//! one user with kind tables only).
//!
//! BACKEND CPU: the real backend times its rules evaluation (the allocator) itself and sends
//! it as Server-Timing `rules`. A recording `WorkCharge` on the calibration server
//! ([`CheckRecorder`], charging nothing) notes each evaluation's `rule_checks`, and a layer
//! around the router reads the `rules` duration of the response the evaluation belongs to (at
//! concurrency 1 one request is in flight, so they pair up): the profile's `[cpu]
//! rules_ns_per_check` table is the distribution of `rules ÷ rule_checks` over the evaluations.
//! The `conflict` phase is database time (the simulation models it from the statements) and
//! gets no CPU entry.
//!
//! NOT MODELLED: load dependence (measured at concurrency 1 on purpose; contention must emerge
//! in the simulation), costs that depend on a statement's parameters within its class.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_core::booking::Strategy;
use backend_core::booking::work::{Work, WorkCharge};
use backend_core::db::schema::SchemaVariant;

use backend_core::db::{BoxFuture, Conn, Db, DbError, Rows, SqlValue};
use hdrhistogram::Histogram;
pub use model::profile::{CLASS_CHARS, statement_class};
use model::profile::{DEFAULT_PROFILE_TOML, STATEMENT_KINDS, statement_kind};
use sim::world::{Profile, QUANTUM_US_CALIBRATED, SHARING_CALIBRATED, sharing_name};
use tokio::time::Instant;

use super::RealError;
use super::cpu_time::{CpuSnapshot, cores_busy};
use super::database::{DbTarget, TempDatabase, unique_database_name};
use super::load::{LoadConfig, LoadOutcome, run_load};
use super::serve::{ServeConfig, Server};
use super::setup::setup_for_run;
use super::stats::{parse_server_timing, value_or_zero};
use super::workload::Task;
use sim::compare::latency_histogram;

/// A kind needs this many samples to be written from measurements.
pub const SAMPLES_MIN: u64 = 20;
/// The quantiles of each empirical table (0 is the minimum, 1 the maximum).
pub const PROFILE_QUANTILES: [f64; 13] =
    [0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 1.0];

/// Statement service times by kind and by class, µs.
#[derive(Debug, Default)]
pub struct StatementTimes {
    /// BTreeMap for a stable profile layout (determinism of the written file).
    pub by_kind: BTreeMap<&'static str, Histogram<u64>>,
    /// The same statements by [`statement_class`].
    pub by_class: BTreeMap<String, Histogram<u64>>,
    /// Per class, (rows returned, µs) of every statement filed with its rows: what
    /// [`StatementTimes::row_fit`] fits the class's cost per row from.
    pub rows_by_class: BTreeMap<String, Vec<(u32, u64)>>,
}

/// A class's cost per returned row and its table with that cost taken off every sample.
#[derive(Debug)]
pub struct RowFit {
    pub us_per_row: f64,
    /// Each sample less `us_per_row` × its rows (at least 1 µs): the zero-row time.
    pub base: Histogram<u64>,
    /// (rows, samples, median µs) of the row counts the line was fitted through.
    pub points: Vec<(u32, u64, u64)>,
}

/// A row count takes part in the fit with at least this many samples.
const ROW_FIT_SAMPLES_MIN: u64 = SAMPLES_MIN;
/// Row counts a fit needs, and how far apart the smallest and largest must be.
const ROW_FIT_COUNTS_MIN: usize = 3;
const ROW_FIT_SPREAD_MIN: u32 = 3;
/// Below this many µs per row the rows are not worth a term (the table holds them).
const ROW_FIT_US_MIN: f64 = 1.0;

impl StatementTimes {
    pub fn record(&mut self, kind: &'static str, service_us: u64) {
        self.by_kind
            .entry(kind)
            .or_insert_with(latency_histogram)
            .saturating_record(service_us.max(1));
    }

    /// Files one statement under its kind and under its class.
    pub fn record_statement(&mut self, sql: &str, service_us: u64) {
        self.record(statement_kind(sql), service_us);
        let class = self.by_class.entry(statement_class(sql).to_string());
        class.or_insert_with(latency_histogram).saturating_record(service_us.max(1));
    }

    /// [`StatementTimes::record_statement`], and the rows it returned (0 for a failed one).
    pub fn record_statement_rows(&mut self, sql: &str, rows: usize, service_us: u64) {
        self.record_statement(sql, service_us);
        let rows = u32::try_from(rows).unwrap_or(u32::MAX);
        let class = self.rows_by_class.entry(statement_class(sql).to_string()).or_default();
        class.push((rows, service_us.max(1)));
    }

    /// The class's cost per returned row: the least-squares line through the median µs of
    /// each row count with [`ROW_FIT_SAMPLES_MIN`] samples, weighted by their samples. `None`
    /// when fewer than [`ROW_FIT_COUNTS_MIN`] row counts qualify, they lie within
    /// [`ROW_FIT_SPREAD_MIN`] rows, or the line rises less than [`ROW_FIT_US_MIN`] per row.
    pub fn row_fit(&self, class: &str) -> Option<RowFit> {
        let samples = self.rows_by_class.get(class)?;
        let mut by_rows: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for &(rows, us) in samples {
            by_rows.entry(rows).or_default().push(us);
        }
        let points: Vec<(u32, u64, u64)> = by_rows
            .into_iter()
            .filter(|(_, us)| us.len() as u64 >= ROW_FIT_SAMPLES_MIN)
            .map(|(rows, mut us)| {
                us.sort_unstable();
                (rows, us.len() as u64, us[us.len() / 2])
            })
            .collect();
        let (first, last) = (points.first()?.0, points.last()?.0);
        if points.len() < ROW_FIT_COUNTS_MIN || last - first < ROW_FIT_SPREAD_MIN {
            return None;
        }
        let weight: f64 = points.iter().map(|p| p.1 as f64).sum();
        let mean = |f: &dyn Fn(&(u32, u64, u64)) -> f64| {
            points.iter().map(|p| f(p) * p.1 as f64).sum::<f64>() / weight
        };
        let (mean_rows, mean_us) = (mean(&|p| f64::from(p.0)), mean(&|p| p.2 as f64));
        let covariance = mean(&|p| (f64::from(p.0) - mean_rows) * (p.2 as f64 - mean_us));
        let variance = mean(&|p| (f64::from(p.0) - mean_rows).powi(2));
        let us_per_row = (covariance / variance).min(model::profile::US_PER_ROW_MAX);
        if us_per_row.is_nan() || us_per_row < ROW_FIT_US_MIN {
            return None;
        }
        let mut base = latency_histogram();
        for &(rows, us) in samples {
            let left = us as f64 - us_per_row * f64::from(rows);
            base.saturating_record((left.round() as u64).max(1));
        }
        Some(RowFit { us_per_row, base, points })
    }

    /// The classes written to a profile: those with at least [`SAMPLES_MIN`] samples, the most
    /// sampled first when there are more than the profile takes
    /// (`model::profile::CLASSES_MAX`), returned in class order.
    pub fn profile_classes(&self) -> Vec<(&str, &Histogram<u64>)> {
        let mut classes: Vec<(&str, &Histogram<u64>)> = self
            .by_class
            .iter()
            .filter(|(_, h)| h.len() >= SAMPLES_MIN)
            .map(|(class, h)| (class.as_str(), h))
            .collect();
        classes.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(b.0)));
        classes.truncate(model::profile::CLASSES_MAX);
        classes.sort_by(|a, b| a.0.cmp(b.0));
        classes
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).map_or(0, Histogram::len)
    }
}

/// A [`Db`] that times every statement of every connection it hands out.
#[derive(Clone)]
pub struct TimingDb {
    inner: Arc<dyn Db>,
    times: Arc<Mutex<StatementTimes>>,
    /// Every statement's µs, summed (the request layer reads it before and after a request).
    total_us: Arc<AtomicU64>,
}

impl TimingDb {
    pub fn new(inner: Arc<dyn Db>) -> TimingDb {
        TimingDb::with_total(inner, Arc::new(AtomicU64::new(0)))
    }

    /// A wrapper that adds every statement's µs to `total_us`.
    pub fn with_total(inner: Arc<dyn Db>, total_us: Arc<AtomicU64>) -> TimingDb {
        TimingDb { inner, times: Arc::new(Mutex::new(StatementTimes::default())), total_us }
    }

    /// µs spent in statements since the wrapper was made.
    pub fn total_us(&self) -> u64 {
        self.total_us.load(Ordering::Relaxed)
    }

    /// Starts a server whose `Db` is a [`TimingDb`] adding to `total_us`, with `work` and
    /// `layer` as [`Server::start_instrumented`] takes them; returns the server and the timer.
    pub async fn serve(
        config: &ServeConfig,
        total_us: Arc<AtomicU64>,
        work: Option<Arc<dyn WorkCharge>>,
        layer: &(dyn Fn(axum::Router) -> axum::Router + Sync),
    ) -> Result<(Server, TimingDb), RealError> {
        let slot: Mutex<Option<TimingDb>> = Mutex::new(None);
        let wrap = |db: Arc<dyn Db>| -> Arc<dyn Db> {
            let timing = TimingDb::with_total(db, total_us.clone());
            *slot.lock().expect("timing slot") = Some(timing.clone());
            Arc::new(timing)
        };
        let server = Server::start_instrumented(config, &wrap, work, layer).await?;
        let timing = slot.lock().expect("timing slot").take().expect("the server wraps its db");
        Ok((server, timing))
    }

    /// The times recorded so far (taken out: the wrapper starts over).
    pub fn take_times(&self) -> StatementTimes {
        std::mem::take(&mut *self.times.lock().expect("statement times lock"))
    }
}

impl Db for TimingDb {
    fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
        Box::pin(async move {
            let inner = self.inner.acquire().await?;
            let conn: Box<dyn Conn> = Box::new(TimingConn {
                inner,
                times: self.times.clone(),
                total_us: self.total_us.clone(),
            });
            Ok(conn)
        })
    }
}

struct TimingConn {
    inner: Box<dyn Conn>,
    times: Arc<Mutex<StatementTimes>>,
    total_us: Arc<AtomicU64>,
}

impl Conn for TimingConn {
    fn execute<'a>(
        &'a mut self,
        sql: &'a str,
        params: &'a [SqlValue],
    ) -> BoxFuture<'a, Result<Rows, DbError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.inner.execute(sql, params).await;
            let service_us = started.elapsed().as_micros() as u64;
            self.total_us.fetch_add(service_us, Ordering::Relaxed);
            // Failed statements are timed too: a 23P01 costs the database as much as a success.
            let rows = result.as_ref().map_or(0, |r| r.rows.len());
            self.times
                .lock()
                .expect("statement times lock")
                .record_statement_rows(sql, rows, service_us);
            result
        })
    }
}

/// Backend CPU measurements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuCosts {
    pub rules_p50_us: Option<u64>,
    pub conflict_p50_us: Option<u64>,
    /// ns per rule check of every measured rules evaluation.
    pub rules_ns_per_check: Option<Histogram<u64>>,
    /// `rule_checks` of every rules evaluation.
    pub rule_checks: Option<Histogram<u64>>,
    /// The backend's own µs per request outside statements and rules (see [`RequestTimer`]).
    pub request_us: Option<Histogram<u64>>,
    /// CPU cores of the machine PostgreSQL and the backend share.
    pub cores: Option<u32>,
    /// The rules' fixed µs per evaluation and how it was found ([`RulesFit`]).
    pub rules_fixed: Option<RulesFit>,
    /// How much of a statement's round trip is CPU ([`StatementCpu`]); `None` where the CPU
    /// time could not be read (no `/proc`, PostgreSQL not on this machine).
    pub statement_cpu: Option<StatementCpu>,
    /// The machine's CPU over a loaded run, when one was measured: the profile's statement
    /// core fraction is then the one under load ([`StatementCpu::fraction_under`]).
    pub loaded: Option<LoadedCpu>,
}

impl CpuCosts {
    /// The statement core fraction a profile gets: under load when a loaded run was
    /// measured, else the 1-user one; with the line that says how it was found.
    pub fn core_fraction(&self) -> Option<(f64, String)> {
        let m = self.statement_cpu.as_ref()?;
        if let Some(loaded) = &self.loaded
            && let Some(fraction) = m.fraction_under(loaded)
        {
            let per = |us: u64| us as f64 / m.requests.max(1) as f64;
            let line = format!(
                "under load: ({:.0} us of machine CPU per request at {} users - {:.0} us of \
                 modelled request and rules CPU) / {:.0} us of statement round trips per request \
                 at 1 user (at 1 user: {})",
                loaded.per_request_us(),
                loaded.users,
                per(m.modelled_backend_us),
                per(m.statements_us),
                m.fraction().map_or("not measured".to_string(), |f| format!("{f:.3}"))
            );
            return Some((fraction, line));
        }
        Some((m.fraction()?, m.figures()))
    }
}

/// The machine's CPU per statement round trip, from CPU time over a measured run
/// ([`crate::cpu_time`]): (this process's CPU + PostgreSQL's − the backend's modelled CPU,
/// i.e. request CPU and rules) ÷ the statements' round trips. This process holds the backend
/// and the load generator, whose CPU shares the real cores too.
#[derive(Clone, Debug, PartialEq)]
pub struct StatementCpu {
    pub own_us: u64,
    pub postgres_us: u64,
    /// Σ request_us + Σ rules µs of the measured requests.
    pub modelled_backend_us: u64,
    /// Σ statement round trips.
    pub statements_us: u64,
    /// Requests measured.
    pub requests: u64,
}

/// The 1-user machine CPU split BY PROCESS (`validate --cpu-split processes`): PostgreSQL's
/// CPU is what statements hold a core for, and this process's CPU beyond the modelled request
/// and rules CPU (the client side of every round trip, the HTTP stack, the load generator) is
/// spent off the requests' path. The default split (`machine`, [`StatementCpu::fraction`])
/// gives statements both.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessSplit {
    /// PostgreSQL's CPU over the statements' round trips, within [CORE_FRACTION_MIN, 1].
    pub statement_core_fraction: f64,
    /// This process's CPU per request beyond the modelled request and rules CPU, µs.
    pub offpath_us: f64,
}

/// The machine's CPU over a LOADED run (this process + PostgreSQL, `crate::cpu_time`) and the
/// requests it answered: what [`StatementCpu::fraction_under`] compares a 1-user run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedCpu {
    pub users: u32,
    /// This process and PostgreSQL.
    pub cpu_us: u64,
    /// PostgreSQL's part of `cpu_us` (its server processes).
    pub postgres_us: u64,
    pub requests: u64,
    /// The rest of the machine over the same span; `None` without `/proc/stat`.
    pub machine: Option<MachineCpu>,
}

/// The machine's CPU over a run beside this process's and PostgreSQL's ([`LoadedCpu`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineCpu {
    /// Busy with neither: other processes, and interrupts not charged to a process.
    pub others_us: u64,
    /// Taken by the hypervisor while the machine wanted to run.
    pub steal_us: u64,
}

/// Most cores of other processes and interrupts beside this process and PostgreSQL before
/// [`MachineCpu::shared_warning`] warns: on the quiet 2-core machine the rest was 0.01–0.07
/// cores at every level of a validate run (vmstat against validate's own reading, 2026-12-07).
pub const OTHER_CORES_MAX: f64 = 0.15;

/// Most cores the hypervisor may steal during a measurement before
/// [`MachineCpu::shared_warning`] warns.
pub const STEAL_CORES_MAX: f64 = 0.05;

impl MachineCpu {
    /// A warning naming `what` (e.g. "the real side at 50 users"), which lasted `span_us`, when
    /// it shared its machine: other processes and interrupts kept more than
    /// [`OTHER_CORES_MAX`] cores busy beside the service and PostgreSQL, or the hypervisor
    /// stole more than [`STEAL_CORES_MAX`]. Its latencies then carry work the simulation does
    /// not model (a build, another load, a noisy neighbour on the host).
    pub fn shared_warning(&self, what: &str, span_us: u64) -> Option<String> {
        let (others, steal) =
            (cores_busy(self.others_us, span_us), cores_busy(self.steal_us, span_us));
        (others > OTHER_CORES_MAX || steal > STEAL_CORES_MAX).then(|| {
            format!(
                "warning: {what} shared its machine: other processes and interrupts kept \
                 {others:.2} cores busy (limit {OTHER_CORES_MAX}), the hypervisor stole \
                 {steal:.2} (limit {STEAL_CORES_MAX}); its latencies carry work the simulation \
                 does not model: rerun on a quiet machine"
            )
        })
    }
}

impl LoadedCpu {
    /// The machine's CPU since `before` (a [`CpuSnapshot`] taken as the run began), for
    /// `requests` answered by `users`; `None` without `/proc` or a local PostgreSQL.
    pub fn since(before: Option<CpuSnapshot>, users: u32, requests: u64) -> Option<LoadedCpu> {
        let (before, after) = before.zip(CpuSnapshot::now())?;
        let (own_us, postgres_us) = after.since(&before);
        let machine = before.machine.zip(after.machine).map(|(before, after)| MachineCpu {
            others_us: (after.busy_us.saturating_sub(before.busy_us))
                .saturating_sub(own_us + postgres_us),
            steal_us: after.steal_us.saturating_sub(before.steal_us),
        });
        (after.postgres_processes > 0).then_some(LoadedCpu {
            users,
            cpu_us: own_us + postgres_us,
            postgres_us,
            requests,
            machine,
        })
    }

    /// µs of CPU per request.
    pub fn per_request_us(&self) -> f64 {
        self.cpu_us as f64 / self.requests.max(1) as f64
    }
}

/// Lowest `statement_core_fraction` calibrate writes: below it the measurement is suspect
/// (a clock-tick's worth of CPU over a short run), not the machine.
pub const CORE_FRACTION_MIN: f64 = 0.1;

impl StatementCpu {
    /// The share of a statement round trip that is CPU, within [CORE_FRACTION_MIN, 1];
    /// `None` without statements or without PostgreSQL CPU (a remote server).
    pub fn fraction(&self) -> Option<f64> {
        if self.statements_us == 0 || self.postgres_us == 0 {
            return None;
        }
        let cpu = (self.own_us + self.postgres_us).saturating_sub(self.modelled_backend_us);
        Some((cpu as f64 / self.statements_us as f64).clamp(CORE_FRACTION_MIN, 1.0))
    }

    /// The share of a statement's round trip that is CPU on a LOADED machine, within
    /// [CORE_FRACTION_MIN, 1]: `loaded`'s CPU per request, less this (1-user) run's modelled
    /// request and rules CPU per request, over this run's statement time per request. A loaded
    /// machine spends less CPU per request than an idle one (no wake-ups from idle, work
    /// batched: storm on this VM 1.37 core-ms per booking at 1 user, 1.21 at 10 users), and
    /// the simulation needs the fraction only where cores are contended. `None` without
    /// requests, statements or PostgreSQL CPU.
    pub fn fraction_under(&self, loaded: &LoadedCpu) -> Option<f64> {
        if self.requests == 0 || self.statements_us == 0 || self.postgres_us == 0 {
            return None;
        }
        if loaded.requests == 0 || loaded.cpu_us == 0 {
            return None;
        }
        let per_request = |us: u64| us as f64 / self.requests as f64;
        let cpu = loaded.per_request_us() - per_request(self.modelled_backend_us);
        Some((cpu / per_request(self.statements_us)).clamp(CORE_FRACTION_MIN, 1.0))
    }

    /// The split by process ([`ProcessSplit`]); `None` without requests, statements or
    /// PostgreSQL CPU.
    pub fn split(&self) -> Option<ProcessSplit> {
        if self.requests == 0 || self.statements_us == 0 || self.postgres_us == 0 {
            return None;
        }
        let fraction = self.postgres_us as f64 / self.statements_us as f64;
        let own_us = self.own_us.saturating_sub(self.modelled_backend_us);
        Some(ProcessSplit {
            statement_core_fraction: fraction.clamp(CORE_FRACTION_MIN, 1.0),
            offpath_us: own_us as f64 / self.requests as f64,
        })
    }

    /// The figures [`StatementCpu::fraction`] is computed from, in ms.
    fn figures(&self) -> String {
        format!(
            "(this process {} ms + PostgreSQL {} ms of CPU - {} ms of modelled request and \
             rules CPU) / {} ms of statement round trips",
            self.own_us / 1_000,
            self.postgres_us / 1_000,
            self.modelled_backend_us / 1_000,
            self.statements_us / 1_000
        )
    }
}

/// A rules evaluation costs `fixed_us + checks × per_check_ns`: fitted through the medians of
/// two clinics with different room counts (checks), as `calibrate` measures them.
#[derive(Clone, Debug, PartialEq)]
pub struct RulesFit {
    pub fixed_us: f64,
    pub per_check_ns: f64,
    /// (scenario, median checks, median rules µs) of each clinic.
    pub points: [(String, u64, u64); 2],
}

impl RulesFit {
    /// The line through two clinics' (median checks, median rules µs); `None` when their
    /// checks are too close (within 25 %) to tell a fixed part from a per-check one, or the
    /// cost does not grow with the checks. The fixed part is kept within 0 and 90 % of the
    /// cheaper evaluation.
    pub fn through(a: (&str, u64, u64), b: (&str, u64, u64)) -> Option<RulesFit> {
        let ((_, na, ta), (_, nb, tb)) = (a, b);
        let (lo, hi) = (na.min(nb) as f64, na.max(nb) as f64);
        if lo <= 0.0 || hi < lo * 1.25 {
            return None;
        }
        let per_check_us = (ta as f64 - tb as f64) / (na as f64 - nb as f64);
        if per_check_us <= 0.0 {
            return None;
        }
        let fixed_us = (ta as f64 - per_check_us * na as f64).clamp(0.0, 0.9 * ta.min(tb) as f64);
        Some(RulesFit {
            fixed_us,
            per_check_ns: per_check_us * 1_000.0,
            points: [(a.0.to_string(), na, ta), (b.0.to_string(), nb, tb)],
        })
    }
}

impl CpuCosts {
    /// `[cpu] rules_ns_per_check` quantiles, when enough evaluations were measured. With a
    /// fixed part, each evaluation's ns per check less its share of the fixed part (`rules ×
    /// (1 − fixed ÷ median rules)`: the checks of one clinic's evaluations barely vary).
    pub fn rules_ns_per_check(&self) -> Option<Vec<(f64, u64)>> {
        let ns = self.rules_ns_per_check.as_ref().filter(|h| h.len() >= SAMPLES_MIN)?;
        let keep = match (&self.rules_fixed, self.rules_p50_us) {
            (Some(fit), Some(p50)) if p50 > 0 => (1.0 - fit.fixed_us / p50 as f64).max(0.1),
            _ => 1.0,
        };
        let points = PROFILE_QUANTILES.iter().map(|&q| {
            let v = if q == 0.0 { ns.min() } else { ns.value_at_quantile(q) };
            (q, ((v as f64 * keep).round() as u64).max(1))
        });
        Some(points.collect())
    }
}

/// Writes the profile TOML; the result always passes `Profile::from_toml_str`.
pub fn profile_toml(times: &StatementTimes, cpu: &CpuCosts, description: &str) -> String {
    let defaults: toml::Table = toml::from_str(DEFAULT_PROFILE_TOML).expect("default is TOML");
    let default_kinds = defaults["kinds"].as_table().expect("default has [kinds]");
    let mut out = String::new();
    out.push_str("# Latency profile measured by `roomsim calibrate`: service time per statement\n");
    out.push_str("# kind in microseconds, client-side round trip over loopback, concurrency 1.\n");
    let _ = writeln!(out, "# {description}");
    let cpu_line = |name: &str, v: Option<u64>| match v {
        Some(us) => format!("# backend CPU ({name}, Server-Timing p50): {us} us\n"),
        None => format!("# backend CPU ({name}): not measured\n"),
    };
    out.push_str(&cpu_line("rules evaluation", cpu.rules_p50_us));
    out.push_str(&cpu_line(
        "conflict detection incl. its database statements",
        cpu.conflict_p50_us,
    ));
    for kind in STATEMENT_KINDS {
        out.push('\n');
        let _ = writeln!(out, "[kinds.{kind}]");
        match times.by_kind.get(kind).filter(|h| h.len() >= SAMPLES_MIN) {
            Some(histogram) => {
                let _ = writeln!(out, "# measured: {} samples", histogram.len());
                out.push_str(&quantile_line(histogram));
            }
            None => {
                let _ = writeln!(
                    out,
                    "# not measured ({} samples): the committed default",
                    times.count(kind)
                );
                let entry = default_kinds[kind].as_table().expect("default kind is a table");
                for (key, value) in entry {
                    // Value's Display writes nested tables inline: `tail = { p = 0.01, … }`.
                    let _ = writeln!(out, "{key} = {value}");
                }
            }
        }
    }
    for (class, histogram) in times.profile_classes() {
        out.push('\n');
        let _ = writeln!(out, "[classes.{}]", toml::Value::String(class.to_string()));
        let _ = writeln!(out, "# measured: {} samples", histogram.len());
        match times.row_fit(class) {
            Some(fit) => {
                let points: Vec<String> =
                    fit.points.iter().map(|(r, n, us)| format!("{r} rows {us} µs ({n})")).collect();
                let _ = writeln!(
                    out,
                    "# the time of the statement returning no rows, each sample less us_per_row × \
                     its rows; us_per_row is the line through the median of each row count: {}",
                    points.join(", ")
                );
                out.push_str(&quantile_line(&fit.base));
                let _ = writeln!(out, "us_per_row = {:.1}", fit.us_per_row);
            }
            None => out.push_str(&quantile_line(histogram)),
        }
    }
    if let (Some(points), Some(checks)) = (cpu.rules_ns_per_check(), &cpu.rule_checks) {
        out.push_str("\n[cpu]\n");
        let _ = writeln!(
            out,
            "# rules evaluation, ns per rule check: each evaluation's Server-Timing `rules` / its rule checks (checks p50 {}, p1 {}, p99 {}; {} evaluations)",
            checks.value_at_quantile(0.5),
            checks.value_at_quantile(0.01),
            checks.value_at_quantile(0.99),
            checks.len()
        );
        let points: Vec<String> = points.iter().map(|(q, ns)| format!("[{q:?}, {ns}.0]")).collect();
        let _ = writeln!(out, "rules_ns_per_check = [{}]", points.join(", "));
        if let Some(fit) = &cpu.rules_fixed {
            let [(sa, na, ta), (sb, nb, tb)] = &fit.points;
            let _ = writeln!(
                out,
                "# rules evaluation, µs whatever its checks: the line through the medians of two \
                 clinics ({sa}: {na} checks, {ta} µs; {sb}: {nb} checks, {tb} µs), {:.1} ns \
                 per check; the table above is each evaluation's ns per check less its share \
                 of it",
                fit.per_check_ns
            );
            let _ = writeln!(out, "rules_fixed_us = {:.1}", fit.fixed_us);
        }
        if let Some(request) = cpu.request_us.as_ref().filter(|h| h.len() >= SAMPLES_MIN) {
            let _ = writeln!(
                out,
                "# the backend's own CPU per HTTP request outside its statements and rules \
                 (HTTP and JSON on both sides, the handler, pool checkout), µs; {} requests",
                request.len()
            );
            out.push_str(&quantile_line(request).replacen("quantiles", "request_us", 1));
        }
        if let Some(cores) = cpu.cores {
            let _ = writeln!(out, "# cores shared by PostgreSQL and the backend on this machine");
            let _ = writeln!(out, "cores = {cores}");
            let _ = writeln!(
                out,
                "# time slice on those cores, modelled µs: not measured, the simulation's tick \
                 (processor sharing; sim::world::profile::QUANTUM_US_CALIBRATED)"
            );
            let _ = writeln!(out, "quantum_us = {QUANTUM_US_CALIBRATED}");
            let _ = writeln!(
                out,
                "# how waiting work shares those cores: not measured \
                 (sim::world::profile::SHARING_CALIBRATED)"
            );
            let _ = writeln!(out, "sharing = \"{}\"", sharing_name(SHARING_CALIBRATED));
            if let Some((fraction, how)) = cpu.core_fraction() {
                let _ = writeln!(
                    out,
                    "# share of a statement's round trip that holds a core: {how} (/proc, \
                     real::cpu_time)"
                );
                let _ = writeln!(out, "statement_core_fraction = {fraction:.3}");
            }
        }
    }
    debug_assert!(Profile::from_toml_str(&out, "calibrated").is_ok(), "{out}");
    out
}

/// The profile TOML of `times` and `cpu`, and the profile it loads as.
pub fn measured_profile(
    times: &StatementTimes,
    cpu: &CpuCosts,
    description: &str,
) -> Result<(String, Profile), RealError> {
    let text = profile_toml(times, cpu, description);
    let profile = Profile::from_toml_str(&text, "calibrated profile")
        .map_err(|e| RealError::RunFailed(format!("the measured profile is invalid: {e}")))?;
    Ok((text, profile))
}

fn quantile_line(histogram: &Histogram<u64>) -> String {
    let points: Vec<String> = PROFILE_QUANTILES
        .iter()
        .map(|&q| {
            let us = if q == 0.0 { histogram.min() } else { histogram.value_at_quantile(q) };
            format!("[{q:?}, {us}.0]")
        })
        .collect();
    format!("quantiles = [{}]\n", points.join(", "))
}

/// How to calibrate.
#[derive(Clone, Debug)]
pub struct CalibrateConfig {
    /// The server whose database is used (a temporary database is created next to it).
    pub target: DbTarget,
    pub out: PathBuf,
    /// Bookings measured (after [`WARMUP_REQUESTS`] unmeasured ones).
    pub bookings: u32,
    pub scenario: String,
    pub seed: u64,
}

/// Requests sent before measuring (connections, caches, plans).
pub const WARMUP_REQUESTS: u64 = 100;
/// Longest calibration run.
pub const CALIBRATION_TIME_MAX: Duration = Duration::from_secs(30 * 60);

/// `roomsim calibrate`: measures in a temporary database, writes the profile, prints a summary.
pub async fn calibrate_command(config: CalibrateConfig) -> Result<(), RealError> {
    if config.bookings == 0 {
        return Err(RealError::BadInput("--bookings: must be > 0".to_string()));
    }
    let name = unique_database_name("roomsim_calibrate");
    let temp = TempDatabase::create(&config.target, &name).await?;
    let mut measured =
        measure(&temp.target, &config.scenario, config.bookings, config.seed, true).await;
    // A second clinic with another room count separates the rules' fixed cost per evaluation
    // from the per-check one (issue #17: conflict's 10-room evaluations cost 0.4-0.65 of
    // real under storm's per-check-only profile).
    let mut fit_line = None;
    if let Ok((_, cpu)) = &mut measured {
        let other = if config.scenario == "conflict" { "storm" } else { "conflict" };
        let bookings = (config.bookings / 4).max(SAMPLES_MIN as u32 * 2);
        let name = unique_database_name("roomsim_calibrate");
        match measure_in_temp(&config.target, &name, other, bookings, config.seed).await {
            Ok((_, second)) => {
                cpu.rules_fixed = rules_fit(&config.scenario, cpu, other, &second);
                fit_line = Some(fit_summary(&config.scenario, cpu, other, &second));
            }
            Err(e) => measured = Err(e),
        }
    }
    // The machine-speed probe, beside the measurements (`[machine]`; see probe.rs).
    // And the idle-core probe (probe::IdleWake), said as a comment: the 1-user statement
    // times above include whatever waking an idle core cost on this machine.
    let speed = match &measured {
        Ok(_) => Some((
            super::probe::measure(&temp.target).await,
            super::probe::idle_wake(&temp.target).await,
        )),
        Err(_) => None,
    };
    temp.drop_database().await;
    let (times, cpu) = measured?;
    let (speed, wake) = speed.expect("probed after a measurement");
    let (speed, wake) = (speed?, wake?);
    let description = format!(
        "scenario {}, {} bookings at concurrency 1, seed {}",
        config.scenario, config.bookings, config.seed
    );
    let (mut text, _) = measured_profile(&times, &cpu, &description)?;
    text.push_str(&super::probe::toml_section(&speed));
    text.push_str(&format!("# {}\n", wake.describe()));
    std::fs::write(&config.out, &text).map_err(|e| RealError::io(&config.out, e))?;
    print!("{}", summary(&times, &cpu));
    println!("{}", wake.describe());
    if let Some(line) = fit_line {
        println!("{line}");
    }
    println!("profile written to {}", config.out.display());
    Ok(())
}

/// The rules' fixed part from two clinics' measurements (`None` when either lacks the
/// medians or [`RulesFit::through`] cannot tell).
fn rules_fit(a: &str, cpu_a: &CpuCosts, b: &str, cpu_b: &CpuCosts) -> Option<RulesFit> {
    let median_checks = |c: &CpuCosts| c.rule_checks.as_ref().map(|h| h.value_at_quantile(0.5));
    let point = |name, c: &CpuCosts| Some((name, median_checks(c)?, c.rules_p50_us?));
    RulesFit::through(point(a, cpu_a)?, point(b, cpu_b)?)
}

/// What `calibrate` says of the rules' fixed part: the fit, or why there is none (both
/// clinics' medians named), so a profile without `rules_fixed_us` never comes silently.
fn fit_summary(a: &str, cpu_a: &CpuCosts, b: &str, cpu_b: &CpuCosts) -> String {
    let median_checks = |c: &CpuCosts| c.rule_checks.as_ref().map(|h| h.value_at_quantile(0.5));
    let point = |name: &str, c: &CpuCosts| match (median_checks(c), c.rules_p50_us) {
        (Some(n), Some(us)) => format!("{name} {n} checks, {us} µs"),
        _ => format!("{name} not measured"),
    };
    let points = format!("{}; {}", point(a, cpu_a), point(b, cpu_b));
    match rules_fit(a, cpu_a, b, cpu_b) {
        Some(fit) => format!(
            "rules evaluation: {:.1} µs fixed + {:.1} ns per check ({points})",
            fit.fixed_us, fit.per_check_ns
        ),
        None => format!(
            "NOTICE: rules evaluation's fixed part NOT fitted ({points}): the check counts are \
             within 25 % of each other, or the cost does not grow with them (too few bookings \
             measure a µs median flat); the profile charges per check only"
        ),
    }
}

/// [`measure`] in a temporary database `name` next to `target`'s, dropped afterwards.
async fn measure_in_temp(
    target: &DbTarget,
    name: &str,
    scenario: &str,
    bookings: u32,
    seed: u64,
) -> Result<(StatementTimes, CpuCosts), RealError> {
    let temp = TempDatabase::create(target, name).await?;
    let measured = measure(&temp.target, scenario, bookings, seed, false).await;
    temp.drop_database().await;
    measured
}

/// `bookings` of `scenario`'s clinic at one user (after [`WARMUP_REQUESTS`]), measured; with
/// `loaded`, then `probe::LOADED_PROBE_REQUESTS` at `probe::LOADED_PROBE_USERS` users, whose
/// machine CPU per request gives the statement core fraction under load.
async fn measure(
    target: &DbTarget,
    scenario: &str,
    bookings: u32,
    seed: u64,
    loaded: bool,
) -> Result<(StatementTimes, CpuCosts), RealError> {
    let fixture = setup_for_run(target, scenario, SchemaVariant::Guarded).await?;
    let serve_config = ServeConfig::ephemeral(target, 2, Strategy::Exclusion, seed);
    let (server, meter) = Meter::start(&serve_config).await?;
    // The bookings the storm validates (auto-assigned rooms): the rules cost per check
    // depends on the request mix, so the mix must be the validated one.
    let tasks = vec![Task::Concurrent];
    let load_config = |requests_max: u64| LoadConfig {
        requests_max,
        progress: false,
        ..LoadConfig::closed(&server.base_url(), tasks.clone(), 1, CALIBRATION_TIME_MAX, seed)
    };
    let warmup = run_load(load_config(WARMUP_REQUESTS), fixture.clone()).await;
    meter.reset();
    let before = CpuSnapshot::now();
    let outcome = run_load(load_config(u64::from(bookings)), fixture.clone()).await;
    let quiet = LoadedCpu::since(before, 1, outcome.recorder.aggregated().request_count);
    warn_if_shared(quiet, "calibrate's 1-user measurement", &outcome);
    let (times, mut cpu) = meter.measurements(&outcome);
    let mut runs = vec![warmup, outcome];
    if loaded {
        let users = super::probe::LOADED_PROBE_USERS;
        let config = LoadConfig {
            requests_max: super::probe::LOADED_PROBE_REQUESTS,
            progress: false,
            ..LoadConfig::closed(
                &server.base_url(),
                tasks.clone(),
                users,
                CALIBRATION_TIME_MAX,
                seed,
            )
        };
        let before = CpuSnapshot::now();
        let busy = run_load(config, fixture).await;
        cpu.loaded = LoadedCpu::since(before, users, busy.recorder.aggregated().request_count);
        warn_if_shared(cpu.loaded, &format!("calibrate's run at {users} users"), &busy);
        runs.push(busy);
    }
    server.stop().await;
    for run in &runs {
        if let Some(reason) = &run.stopped_early {
            return Err(RealError::RunFailed(format!("calibration load stopped: {reason}")));
        }
        let failures = run.recorder.aggregated().failure_count;
        if failures > 0 {
            let kinds: Vec<String> = run.recorder.failures.keys().map(|k| k.2.clone()).collect();
            return Err(RealError::RunFailed(format!(
                "{failures} calibration requests failed: {}",
                kinds.join("; ")
            )));
        }
    }
    Ok((times, cpu))
}

/// Says on stderr when `what`, measured over `run`, shared its machine
/// ([`MachineCpu::shared_warning`]): the profile written from it describes a busier machine.
fn warn_if_shared(cpu: Option<LoadedCpu>, what: &str, run: &LoadOutcome) {
    let machine = cpu.and_then(|cpu| cpu.machine);
    let span_us = run.elapsed.as_micros() as u64;
    if let Some(line) = machine.and_then(|m| m.shared_warning(what, span_us)) {
        eprintln!("calibrate: {line}");
    }
}

/// The instruments of a backend server whose statements ([`TimingDb`]), rules evaluations
/// ([`CheckRecorder`]) and requests ([`RequestTimer`]) are measured: what `calibrate` runs,
/// and what `validate --profile-from-run` runs its 1-user level on. The measurements are
/// valid at concurrency 1 only (one request in flight pairs each response with its
/// evaluation and its statements).
pub struct Meter {
    timing: TimingDb,
    requests: Arc<RequestTimer>,
    checks: Arc<CheckRecorder>,
    /// CPU time and statement time at the start or the last reset.
    since: Mutex<(Option<CpuSnapshot>, u64)>,
}

impl Meter {
    /// Starts a server with the instruments in place.
    pub async fn start(config: &ServeConfig) -> Result<(Server, Meter), RealError> {
        let db_total_us = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(RequestTimer::new(db_total_us.clone()));
        let checks = Arc::new(CheckRecorder::default());
        let observer = checks.clone();
        let timer = requests.clone();
        let layer = move |router: axum::Router| {
            let observer = observer.clone();
            let router = router.layer(axum::middleware::map_response(
                move |response: axum::response::Response| {
                    let observer = observer.clone();
                    async move {
                        observer.observe(&response);
                        response
                    }
                },
            ));
            timer.clone().layer(router)
        };
        let work = Some(checks.clone() as Arc<dyn WorkCharge>);
        let (server, timing) = TimingDb::serve(config, db_total_us, work, &layer).await?;
        let since = Mutex::new((CpuSnapshot::now(), timing.total_us()));
        Ok((server, Meter { timing, requests, checks, since }))
    }

    /// Forgets what was measured so far (the warm-up).
    pub fn reset(&self) {
        let _ = self.timing.take_times();
        let _ = self.checks.take();
        let _ = self.checks.take_ns_per_check();
        let _ = self.requests.take();
        *self.since.lock().expect("since lock") = (CpuSnapshot::now(), self.timing.total_us());
    }

    /// What was measured since the start or the last [`Meter::reset`] (taken out);
    /// `outcome` is the load run of those requests (client latencies, Server-Timing p50s).
    pub fn measurements(&self, outcome: &LoadOutcome) -> (StatementTimes, CpuCosts) {
        let (cpu_then, statements_then) = *self.since.lock().expect("since lock");
        let cpu_now = CpuSnapshot::now();
        let statements_us = self.timing.total_us().saturating_sub(statements_then);
        let times = self.timing.take_times();
        let recorder = &outcome.recorder;
        let p50 = |metric: &str| recorder.server_timing.get(metric).map(|h| value_or_zero(h, 0.5));
        let request_us = self.requests.request_us(&recorder.aggregated().histogram);
        let total = |h: &Histogram<u64>| (h.mean() * h.len() as f64) as u64;
        let rules_us = recorder.server_timing.get("rules").map_or(0, total);
        let statement_cpu = cpu_then.zip(cpu_now).and_then(|(then, now)| {
            let (own_us, postgres_us) = now.since(&then);
            (now.postgres_processes > 0).then_some(StatementCpu {
                own_us,
                postgres_us,
                modelled_backend_us: total(&request_us) + rules_us,
                statements_us,
                requests: recorder.aggregated().request_count,
            })
        });
        let cpu = CpuCosts {
            rules_p50_us: p50("rules"),
            conflict_p50_us: p50("conflict"),
            rules_ns_per_check: Some(self.checks.take_ns_per_check()),
            rule_checks: Some(self.checks.take()),
            // The timer saw every request the client sent (201s, 409s and 4xx alike): the
            // client side of the difference must be the same requests.
            request_us: Some(request_us),
            cores: std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok()),
            rules_fixed: None,
            statement_cpu,
            loaded: None,
        };
        (times, cpu)
    }
}

/// Times each request inside the backend (valid at concurrency 1, one request in flight):
/// its wall time in the handler stack, minus the statement time [`TimingDb`] added meanwhile,
/// minus the Server-Timing `rules` of its response, is the backend's own time in the handler.
/// [`RequestTimer::request_us`] adds the time the client saw beyond the handler stack (HTTP
/// on both sides, loopback), as the difference of the two means.
struct RequestTimer {
    db_total_us: Arc<AtomicU64>,
    /// (handler wall µs, own µs) per request.
    samples: Mutex<Vec<(u64, u64)>>,
}

impl RequestTimer {
    fn new(db_total_us: Arc<AtomicU64>) -> RequestTimer {
        RequestTimer { db_total_us, samples: Mutex::new(Vec::new()) }
    }

    fn take(&self) -> Vec<(u64, u64)> {
        std::mem::take(&mut *self.samples.lock().expect("samples lock"))
    }

    fn layer(self: Arc<Self>, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let timer = self.clone();
                async move {
                    let db_before = timer.db_total_us.load(Ordering::Relaxed);
                    let started = Instant::now();
                    let response = next.run(request).await;
                    let wall_us = started.elapsed().as_micros() as u64;
                    let db_us = timer.db_total_us.load(Ordering::Relaxed) - db_before;
                    let header =
                        response.headers().get("server-timing").and_then(|v| v.to_str().ok());
                    let timings = header.map(parse_server_timing).unwrap_or_default();
                    let rules_us = timings.iter().find(|(n, _)| n == "rules").map_or(0, |t| t.1);
                    let own_us = wall_us.saturating_sub(db_us).saturating_sub(rules_us);
                    timer.samples.lock().expect("samples lock").push((wall_us, own_us));
                    response
                }
            },
        ))
    }

    /// Own µs per request plus (median client latency − median handler wall time), as a
    /// histogram. Medians, not means: a few long stalls of the load generator (other tests,
    /// other processes on the cores) would otherwise be added to every simulated request.
    fn request_us(&self, client: &Histogram<u64>) -> Histogram<u64> {
        let samples = self.take();
        let mut histogram = latency_histogram();
        if samples.is_empty() {
            return histogram;
        }
        let mut walls: Vec<u64> = samples.iter().map(|s| s.0).collect();
        walls.sort_unstable();
        let wall_median = walls[walls.len() / 2];
        let outside_us = client.value_at_quantile(0.5).saturating_sub(wall_median);
        for (_, own_us) in samples {
            histogram.saturating_record((own_us + outside_us).max(1));
        }
        histogram
    }
}

/// A production-like `WorkCharge` (charges nothing) that collects each rules evaluation's
/// check count, and pairs it with the `rules` Server-Timing of its response (see the module
/// doc; valid at concurrency 1).
#[derive(Default)]
struct CheckRecorder {
    /// The check count of the evaluation whose response is still on its way.
    pending: Mutex<Option<u64>>,
    checks: Mutex<Option<Histogram<u64>>>,
    ns_per_check: Mutex<Option<Histogram<u64>>>,
}

impl CheckRecorder {
    fn take(&self) -> Histogram<u64> {
        self.checks.lock().expect("checks lock").take().unwrap_or_else(latency_histogram)
    }

    fn take_ns_per_check(&self) -> Histogram<u64> {
        self.ns_per_check.lock().expect("ns lock").take().unwrap_or_else(latency_histogram)
    }

    /// Pairs a response's `rules` duration with the pending evaluation's checks.
    fn observe(&self, response: &axum::response::Response) {
        let Some(checks) = self.pending.lock().expect("pending lock").take() else { return };
        let header = response.headers().get("server-timing").and_then(|v| v.to_str().ok());
        let rules = header.map(parse_server_timing).unwrap_or_default();
        let Some((_, rules_us)) = rules.iter().find(|(name, _)| name == "rules") else { return };
        let ns = rules_us * 1_000 / checks.max(1);
        let mut h = self.ns_per_check.lock().expect("ns lock");
        h.get_or_insert_with(latency_histogram).saturating_record(ns.max(1));
    }
}

impl WorkCharge for CheckRecorder {
    fn charge(&self, work: Work) -> BoxFuture<'static, ()> {
        if let Work::RulesEvaluation(stats) = work {
            let mut slot = self.checks.lock().expect("checks lock");
            slot.get_or_insert_with(latency_histogram).saturating_record(stats.rule_checks.max(1));
            if stats.rule_checks > 0 {
                *self.pending.lock().expect("pending lock") = Some(stats.rule_checks);
            }
        }
        Box::pin(std::future::ready(()))
    }
}

/// Per-kind sample counts and quantiles, for the terminal.
pub fn summary(times: &StatementTimes, cpu: &CpuCosts) -> String {
    let mut out = format!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "kind", "samples", "p50 us", "p90 us", "p99 us", "max us"
    );
    for (kind, h) in &times.by_kind {
        let _ = writeln!(
            out,
            "{kind:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
            h.len(),
            value_or_zero(h, 0.5),
            value_or_zero(h, 0.9),
            value_or_zero(h, 0.99),
            h.max()
        );
    }
    for (class, h) in times.profile_classes() {
        let _ = writeln!(
            out,
            "{class}: {} samples, p50 {} us, p90 {} us, p99 {} us",
            h.len(),
            value_or_zero(h, 0.5),
            value_or_zero(h, 0.9),
            value_or_zero(h, 0.99)
        );
    }
    let _ = writeln!(
        out,
        "backend CPU p50: rules {:?} us, conflict {:?} us; rules ns per check: {:?}",
        cpu.rules_p50_us,
        cpu.conflict_p50_us,
        cpu.rules_ns_per_check().map(|points| points[5].1)
    );
    match cpu.core_fraction() {
        Some((f, how)) => {
            let _ = writeln!(out, "CPU time: {how} = statement core fraction {f:.3}");
        }
        None => out.push_str(
            "CPU time: not measured (no /proc, or PostgreSQL is not on this machine): \
             statements hold a core for their whole round trip\n",
        ),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn measured_kinds_become_quantile_tables_and_the_rest_defaults() {
        let mut times = StatementTimes::default();
        for i in 0..1_000_u64 {
            times.record("select", 100 + i % 200);
            times.record("commit", 300 + i % 50);
        }
        times.record("delete", 5_000); // one sample: below SAMPLES_MIN
        for i in 0..100_u64 {
            times.record_statement("INSERT INTO appointments (id) VALUES ($1)", 400 + i);
            times.record_statement("INSERT INTO idempotency_keys (key) VALUES ($1)", 60);
        }
        let mut ns_per_check = latency_histogram();
        let mut rule_checks = latency_histogram();
        let mut request_us = latency_histogram();
        for i in 0..100_u64 {
            request_us.record(500 + 2 * i).unwrap(); // 500..=698 µs
            ns_per_check.record(2_000 + 20 * (i % 101)).unwrap(); // 2000..=3980 ns
            rule_checks.record(20).unwrap();
        }
        let cpu = CpuCosts {
            rules_p50_us: Some(420),
            conflict_p50_us: None,
            rules_ns_per_check: Some(ns_per_check),
            rule_checks: Some(rule_checks),
            request_us: Some(request_us),
            cores: Some(2),
            rules_fixed: None,
            // (300 + 600 − 200) / 1,000 ms.
            statement_cpu: Some(StatementCpu {
                own_us: 300_000,
                postgres_us: 600_000,
                modelled_backend_us: 200_000,
                statements_us: 1_000_000,
                requests: 1_000,
            }),
            loaded: None,
        };
        let text = profile_toml(&times, &cpu, "test");
        let profile = Profile::from_toml_str(&text, "t").expect(&text);
        assert_eq!(
            profile.backend_cpu.as_ref().and_then(|cpu| cpu.shared_cores()),
            Some(2),
            "{text}"
        );
        let fraction = profile.backend_cpu.as_ref().map(|cpu| cpu.statement_core_fraction());
        assert_eq!(fraction, Some(0.7), "{text}");
        // With a loaded run: (900 µs per request − 200 modelled) / 1,000 of statements.
        let loaded = LoadedCpu {
            users: 10,
            cpu_us: 1_800_000,
            postgres_us: 900_000,
            requests: 2_000,
            machine: None,
        };
        let under_load = CpuCosts { loaded: Some(loaded), ..cpu.clone() };
        let loaded_text = profile_toml(&times, &under_load, "test");
        let loaded_profile = Profile::from_toml_str(&loaded_text, "t").expect(&loaded_text);
        let fraction = loaded_profile.backend_cpu.as_ref().map(|c| c.statement_core_fraction());
        assert_eq!(fraction, Some(0.7), "{loaded_text}");
        let loaded = LoadedCpu { cpu_us: 1_200_000, ..loaded };
        let under_load = CpuCosts { loaded: Some(loaded), ..cpu.clone() };
        let loaded_text = profile_toml(&times, &under_load, "test");
        let loaded_profile = Profile::from_toml_str(&loaded_text, "t").expect(&loaded_text);
        let fraction = loaded_profile.backend_cpu.as_ref().map(|c| c.statement_core_fraction());
        assert_eq!(fraction, Some(0.4), "600 µs per request under load: {loaded_text}");
        assert!(loaded_text.contains("under load: (600 us of machine CPU per request at 10 users"));
        assert!(loaded_text.contains("(at 1 user: 0.700)"), "{loaded_text}");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let drawn = profile
            .backend_cpu
            .as_ref()
            .and_then(|cpu| cpu.sample_request_us(&mut rng))
            .expect("request_us written");
        assert!((500.0..=700.0).contains(&drawn), "{drawn}");
        assert!(text.contains("# measured: 1000 samples"), "{text}");
        assert!(text.contains("rules evaluation, Server-Timing p50): 420 us"), "{text}");
        assert!(text.contains("# not measured (1 samples)"), "{text}");
        match profile.statements.service_time("select") {
            model::profile::ServiceTime::Empirical { quantiles } => {
                assert_eq!(quantiles.first().unwrap(), &(0.0, 100.0));
                assert_eq!(quantiles.last().unwrap(), &(1.0, 299.0));
            }
            other => panic!("select must be empirical, got {other:?}"),
        }
        assert!(matches!(
            profile.statements.service_time("delete"),
            model::profile::ServiceTime::LogNormal { .. }
        ));
        // Each statement text is its own class; the kind holds both INSERTs.
        assert_eq!(times.count("insert"), 200);
        assert!(text.contains("[classes.\"INSERT INTO appointments (id) VALUES ($1)\"]"), "{text}");
        let first = |sql: &str| match profile.statements.statement_service_time("insert", sql) {
            model::profile::ServiceTime::Empirical { quantiles } => quantiles[0].1,
            other => panic!("the class must be empirical, got {other:?}"),
        };
        assert_eq!(first("INSERT INTO appointments (id) VALUES ($1)"), 400.0);
        assert_eq!(first("INSERT INTO idempotency_keys (key) VALUES ($1)"), 60.0);
        assert_eq!(first("INSERT INTO elsewhere (x) VALUES (1)"), 60.0, "no class: the kind's");
        assert!(text.contains("rules_ns_per_check = [[0.0, 2000.0]"), "{text}");
        // 20 checks × 2000..=3980 ns.
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let us = profile.backend_cpu.as_ref().expect("[cpu] written").sample_rules_us(20, &mut rng);
        assert!((40.0..=80.0).contains(&us), "{us}");
    }

    #[test]
    fn a_class_whose_time_grows_with_its_rows_gets_a_cost_per_row() {
        let day = "SELECT id, clinic_id FROM appointments WHERE day = $1";
        let mut times = StatementTimes::default();
        for rows in 0..10_u32 {
            for i in 0..30_u64 {
                // 200 µs + 25 µs a row, ±10 µs of spread.
                let us = 190 + u64::from(rows) * 25 + (i * 7) % 21;
                times.record_statement_rows(day, rows as usize, us);
                times.record_statement_rows("SELECT body FROM rooms", 30, 120 + i);
            }
        }
        let fit = times.row_fit(statement_class(day)).expect("rows 0..9 rise 25 µs each");
        assert!((fit.us_per_row - 25.0).abs() < 1.0, "{fit:?}");
        let base_median = fit.base.value_at_quantile(0.5);
        assert!((195..=205).contains(&base_median), "zero-row time {base_median}");
        assert_eq!(fit.points.len(), 10);
        assert!(times.row_fit("SELECT body FROM rooms").is_none(), "always 30 rows: no line");
        let profile_text = profile_toml(&times, &CpuCosts::default(), "rows");
        assert!(profile_text.contains("us_per_row = 25."), "{profile_text}");
        let profile = Profile::from_toml_str(&profile_text, "rows").unwrap();
        let per_row = profile.statements.us_per_row(statement_class(day)).unwrap();
        assert!((per_row - 25.0).abs() < 1.0);
        assert_eq!(profile.statements.us_per_row("SELECT body FROM rooms"), None);
        // Too few rows apart, or flat: none.
        let mut flat = StatementTimes::default();
        for rows in 0..10_u32 {
            for i in 0..30_u64 {
                flat.record_statement_rows(day, rows as usize, 200 + i % 5);
            }
        }
        assert!(flat.row_fit(statement_class(day)).is_none(), "flat");
        let mut close = StatementTimes::default();
        for rows in 0..3_u32 {
            for _ in 0..30 {
                close.record_statement_rows(day, rows as usize, 200 + u64::from(rows) * 50);
            }
        }
        assert!(close.row_fit(statement_class(day)).is_none(), "0..2 rows are too close");
    }

    #[test]
    fn the_statement_core_fraction_is_the_cpu_left_for_statements_over_their_round_trips() {
        let m = |own_us, postgres_us, modelled_backend_us, statements_us| StatementCpu {
            own_us,
            postgres_us,
            modelled_backend_us,
            statements_us,
            requests: 1_000,
        };
        assert_eq!(m(2_140, 2_710, 845, 4_393).fraction().map(|f| (f * 1e3).round()), Some(912.0));
        assert_eq!(m(900, 900, 0, 1_000).fraction(), Some(1.0), "more CPU than time: 1");
        assert_eq!(m(0, 10, 0, 1_000).fraction(), Some(CORE_FRACTION_MIN), "floored");
        assert_eq!(m(500, 0, 0, 1_000).fraction(), None, "no PostgreSQL CPU: a remote server");
        assert_eq!(m(500, 500, 0, 0).fraction(), None, "no statements");
        let cpu = CpuCosts { statement_cpu: Some(m(500, 0, 0, 1_000)), ..CpuCosts::default() };
        let text = summary(&StatementTimes::default(), &cpu);
        assert!(text.contains("CPU time: not measured"), "{text}");
    }

    /// Goal: the split by process gives statements PostgreSQL's CPU only and this process's
    /// CPU beyond the modelled backend CPU to the off-path work; the default split gives the
    /// statements both.
    #[test]
    fn the_split_by_process_gives_statements_postgres_cpu_and_the_rest_off_path() {
        let cpu = StatementCpu {
            own_us: 900_000,
            postgres_us: 1_000_000,
            modelled_backend_us: 400_000,
            statements_us: 1_600_000,
            requests: 1_000,
        };
        let split = cpu.split().expect("measured");
        assert_eq!(split.statement_core_fraction, 0.625, "1,000 ms of 1,600");
        assert_eq!(split.offpath_us, 500.0, "(900 - 400) ms over 1,000 requests");
        assert_eq!(cpu.fraction(), Some(0.9375), "the default: (900 + 1,000 - 400) / 1,600");
        let lean = StatementCpu { own_us: 300_000, ..cpu };
        assert_eq!(lean.split().unwrap().offpath_us, 0.0, "never below zero");
        assert_eq!(StatementCpu { postgres_us: 0, ..cpu }.split(), None, "remote server");
        assert_eq!(StatementCpu { requests: 0, ..cpu }.split(), None);
    }

    #[test]
    fn a_measurement_that_shared_its_machine_is_named_and_a_quiet_one_is_not() {
        let span_us = 8_000_000;
        let quiet = MachineCpu { others_us: 400_000, steal_us: 0 }; // 0.05 cores
        assert_eq!(quiet.shared_warning("the real side at 50 users", span_us), None);
        let busy = MachineCpu { others_us: 3_200_000, steal_us: 0 }; // 0.40 cores
        let line = busy.shared_warning("the real side at 50 users", span_us).expect("a warning");
        assert!(
            line.starts_with("warning: the real side at 50 users shared its machine"),
            "{line}"
        );
        assert!(line.contains("kept 0.40 cores busy (limit 0.15)"), "{line}");
        let stolen = MachineCpu { others_us: 0, steal_us: 800_000 }; // 0.10 cores
        let line = stolen.shared_warning("calibrate's run", span_us).expect("a warning");
        assert!(
            line.contains("calibrate's run shared") && line.contains("stole 0.10 (limit 0.05)")
        );
        let edge = MachineCpu { others_us: 1_200_000, steal_us: 400_000 }; // at both limits
        assert_eq!(edge.shared_warning("x", span_us), None, "at the limits: quiet");
    }

    #[test]
    fn under_load_the_fraction_is_the_loaded_cpu_per_request_left_for_the_statements() {
        // 1 user: 1,000 requests, 1,100 µs of statements and 270 µs of modelled backend CPU
        // each, 1,370 µs of machine CPU each (fraction 1,100 / 1,100 = 1).
        let one_user = StatementCpu {
            own_us: 500_000,
            postgres_us: 870_000,
            modelled_backend_us: 270_000,
            statements_us: 1_100_000,
            requests: 1_000,
        };
        assert_eq!(one_user.fraction(), Some(1.0));
        // Loaded: 1,210 µs of CPU per request: (1,210 − 270) / 1,100.
        let loaded = LoadedCpu {
            users: 10,
            cpu_us: 2_420_000,
            postgres_us: 1_200_000,
            requests: 2_000,
            machine: None,
        };
        let f = one_user.fraction_under(&loaded).unwrap();
        assert!((f - 940.0 / 1_100.0).abs() < 1e-12, "{f}");
        // More CPU per request under load gives more; the bounds hold.
        let busier = LoadedCpu { cpu_us: 2_800_000, ..loaded };
        assert!(one_user.fraction_under(&busier).unwrap() > f);
        let idle = LoadedCpu { cpu_us: 100_000, ..loaded };
        assert_eq!(one_user.fraction_under(&idle), Some(CORE_FRACTION_MIN));
        assert_eq!(one_user.fraction_under(&LoadedCpu { requests: 0, ..loaded }), None);
        let remote = StatementCpu { postgres_us: 0, ..one_user.clone() };
        assert_eq!(remote.fraction_under(&loaded), None, "no PostgreSQL CPU: a remote server");
    }

    #[test]
    fn calibrate_says_when_the_rules_fixed_part_is_not_fitted() {
        let costs = |checks: u64, us: u64| {
            let mut h = latency_histogram();
            h.record(checks).unwrap();
            CpuCosts { rule_checks: Some(h), rules_p50_us: Some(us), ..CpuCosts::default() }
        };
        let fitted = fit_summary("storm", &costs(1178, 34), "conflict", &costs(418, 21));
        assert!(fitted.starts_with("rules evaluation: "), "{fitted}");
        assert!(fitted.contains("storm 1178 checks, 34 µs; conflict 418 checks, 21 µs"));
        let flat = fit_summary("storm", &costs(1178, 1), "conflict", &costs(418, 1));
        assert!(flat.starts_with("NOTICE: rules evaluation's fixed part NOT fitted"), "{flat}");
        assert!(flat.contains("conflict 418 checks, 1 µs"), "{flat}");
        let missing = fit_summary("storm", &costs(1178, 34), "conflict", &CpuCosts::default());
        assert!(missing.contains("conflict not measured") && missing.contains("NOT fitted"));
    }

    #[test]
    fn the_rules_fixed_part_is_the_line_through_two_clinics() {
        // Measured 2026-12-06 (`calibrate --scenario storm|conflict --bookings 600`, twice).
        let fit = RulesFit::through(("storm", 1_178, 34), ("conflict", 418, 21)).unwrap();
        assert!((fit.fixed_us - 13.85).abs() < 0.1, "{fit:?}");
        assert!((fit.per_check_ns - 17.1).abs() < 0.1, "{fit:?}");
        let swapped = RulesFit::through(("conflict", 418, 21), ("storm", 1_178, 34)).unwrap();
        assert!((swapped.fixed_us - fit.fixed_us).abs() < 1e-9, "order does not matter");
        assert_eq!(RulesFit::through(("a", 1_000, 30), ("b", 1_100, 33)), None, "too close");
        assert_eq!(RulesFit::through(("a", 1_000, 30), ("b", 400, 40)), None, "not growing");
        let steep = RulesFit::through(("a", 1_000, 100), ("b", 400, 10)).unwrap();
        assert_eq!(steep.fixed_us, 0.0, "a negative intercept is clamped to 0");
        let flat = RulesFit::through(("a", 1_000, 101), ("b", 400, 100)).unwrap();
        assert_eq!(flat.fixed_us, 90.0, "at most 90 % of the cheaper evaluation");
    }

    #[test]
    fn a_fitted_fixed_part_is_written_and_taken_off_the_per_check_table() {
        let mut ns_per_check = latency_histogram();
        let mut rule_checks = latency_histogram();
        for _ in 0..100 {
            ns_per_check.record(2_000).unwrap();
            rule_checks.record(20).unwrap();
        }
        let fit = RulesFit::through(("storm", 20, 40), ("conflict", 10, 30)).unwrap();
        assert_eq!((fit.fixed_us, fit.per_check_ns), (20.0, 1_000.0));
        let cpu = CpuCosts {
            rules_p50_us: Some(40),
            rules_ns_per_check: Some(ns_per_check),
            rule_checks: Some(rule_checks),
            rules_fixed: Some(fit),
            ..CpuCosts::default()
        };
        let text = profile_toml(&StatementTimes::default(), &cpu, "test");
        assert!(text.contains("rules_fixed_us = 20.0"), "{text}");
        assert!(text.contains("rules_ns_per_check = [[0.0, 1000.0]"), "half of 2000 ns: {text}");
        let profile = Profile::from_toml_str(&text, "t").expect(&text);
        let backend = profile.backend_cpu.expect("[cpu] written");
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        assert_eq!(backend.sample_rules_us(20, &mut rng), 40.0, "the measured clinic: as measured");
        assert_eq!(backend.sample_rules_us(10, &mut rng), 30.0, "the other one too");
        assert_eq!(backend.rules_us_median_at(10), 30.0);
    }

    #[test]
    fn classes_are_text_prefixes_and_the_profile_takes_the_most_sampled() {
        let long = format!("SELECT {} FROM t", "é".repeat(100));
        let class = statement_class(&long);
        assert_eq!(class.chars().count(), CLASS_CHARS);
        assert!(long.starts_with(class));
        assert_eq!(statement_class("  COMMIT"), "COMMIT");
        let mut times = StatementTimes::default();
        let classes_max = model::profile::CLASSES_MAX;
        for n in 0..classes_max + 3 {
            // Statement n runs SAMPLES_MIN + n times; the last one too few times.
            let runs = if n == 0 { SAMPLES_MIN - 1 } else { SAMPLES_MIN + n as u64 };
            for _ in 0..runs {
                times.record_statement(&format!("SELECT {n:03}"), 50);
            }
        }
        let written: Vec<&str> = times.profile_classes().iter().map(|(c, _)| *c).collect();
        assert_eq!(written.len(), classes_max);
        assert!(!written.contains(&"SELECT 000"), "below SAMPLES_MIN");
        assert!(!written.contains(&"SELECT 001") && !written.contains(&"SELECT 002"));
        assert!(written.windows(2).all(|w| w[0] < w[1]), "class order");
        let cpu = CpuCosts::default();
        let text = profile_toml(&times, &cpu, "t");
        let profile = Profile::from_toml_str(&text, "t").expect(&text);
        assert_eq!(profile.statements.classes().len(), classes_max);
    }

    /// A Db whose statements take a fixed (virtual) time.
    struct SlowDb;
    struct SlowConn;
    impl Db for SlowDb {
        fn acquire(&self) -> BoxFuture<'_, Result<Box<dyn Conn>, DbError>> {
            Box::pin(async { Ok(Box::new(SlowConn) as Box<dyn Conn>) })
        }
    }
    impl Conn for SlowConn {
        fn execute<'a>(
            &'a mut self,
            sql: &'a str,
            _params: &'a [SqlValue],
        ) -> BoxFuture<'a, Result<Rows, DbError>> {
            Box::pin(async move {
                let ms = if sql.starts_with("SELECT") { 3 } else { 1 };
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(Rows::default())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timing_db_files_statements_by_kind() {
        let db = TimingDb::new(Arc::new(SlowDb));
        let mut conn = db.acquire().await.unwrap();
        for sql in ["BEGIN", "SELECT 1", "SELECT 2", "INSERT INTO t VALUES (1)", "COMMIT"] {
            conn.execute(sql, &[]).await.unwrap();
        }
        let times = db.take_times();
        assert_eq!(times.count("select"), 2);
        assert_eq!(times.count("begin"), 1);
        assert_eq!(times.count("insert"), 1);
        let select = &times.by_kind["select"];
        assert!(select.equivalent(select.value_at_quantile(0.5), 3_000));
        let commit = &times.by_kind["commit"];
        assert!(commit.equivalent(commit.value_at_quantile(0.5), 1_000));
        assert_eq!(db.take_times().by_kind.len(), 0, "taking the times resets them");
    }
}

#[cfg(test)]
mod committed_profile {
    /// The committed measured profile must stay readable by the model.
    #[test]
    fn measured_profile_loads() {
        let text = include_str!("profiles/measured.toml");
        sim::world::Profile::from_toml_str(text, "profiles/measured.toml").unwrap();
    }
}
