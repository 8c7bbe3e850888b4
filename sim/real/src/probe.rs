//! The machine probes: how fast this machine is now, so a latency profile measured on one
//! machine (or day) can be used on another (issue #17).
//!
//! THE STATEMENT PROBE (what `validate` scales by): by default validate's own first level
//! when that is one user, metered ([`statement_probe_of`]); else, or with `--statement-probe
//! before`, [`statement_probe`]: [`PROBE_REQUESTS`] requests of the validated scenario at one
//! user, run as validate's own 1-user level runs them, in a temporary database, measured with
//! calibrate's instruments, before the real side. Each statement class
//! is scaled by its body mean now ÷ its recorded body mean (`ServiceTime::body_mean_us`: the
//! mean below the 99th percentile), the kinds by the sum over classes (one booking's
//! statement time), the rules' cost at the probe's median evaluation size and the request CPU
//! by their own medians ([`probe_ratios`], [`scale_by_statement_probe`]).
//!
//! WHY MEANS: a one-row SELECT on this VM takes either ~17 µs or ~70 µs, and the share of each
//! mode changes from one quarter second to the next (from about a quarter to three quarters,
//! validate's 1-user storm, 2026-12-06 18:50); a class's median sits between the two and
//! jumped from one to the other between runs (19–86 µs), while a booking's time grows with
//! the mean.
//!
//! THE MICRO PROBE ([`measure`]; reported beside it, and written by `calibrate` as the
//! profile's `[machine]` table, `sim::world::MachineSpeed`): two medians,
//!
//! - `allocation_ns`: backend-core's `allocate` on a fixed clinic (60 rooms, 20 appointments
//!   per room-day, the default rule set; the fixture of `backend-core/benches/rules.rs`),
//!   median of [`CPU_BATCHES`] batches — the kind of CPU work the profile's `[cpu]` tables
//!   describe;
//! - `select_one_us`: a `SELECT 1` round trip on one connection, median of
//!   [`SELECT_SAMPLES`].
//!
//! WHY the statement probe scales and the micro probe does not: on 2026-12-05 this VM's
//! statements became ~5× faster within three hours (every class ×0.16–0.29) while `SELECT 1`
//! said ×0.41–0.90 from one run to the next; the allocation probe tracked the CPU better
//! (×0.27–0.30 against ×0.19–0.26) but not the statements (sim/README.md).
//!
//! NOT MODELLED: drift between a probe run before the real side and its levels (seconds to a
//! minute; the default probe is the first level itself), or between that and the loaded
//! levels after it; a machine
//! with a different core count (the profile's `cores` stays as recorded); how statement
//! times change with load (they are measured at one user; only the statement core fraction
//! is read under load, [`LOADED_PROBE_USERS`]); a shape of each class's table other than the
//! recorded one (the probe scales it, it does not replace it).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use backend_core::allocator::fixture::{Fixture, at};
use backend_core::allocator::{AllocatorConfig, allocate};
use backend_core::domain::OpeningHours;
use backend_core::rules::default_rule_set;
use scenarios::Scenario;
use sim::world::{MachineSpeed, Profile};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use crate::RealError;
use crate::calibrate::{
    CpuCosts, LoadedCpu, ProcessSplit, StatementCpu, StatementTimes, measured_profile,
};
use crate::database::DbTarget;
use crate::validate::{RoundDays, ValidateConfig, probe_levels};

/// Batches of allocations timed.
pub const CPU_BATCHES: usize = 15;
/// Allocations per batch.
pub const CPU_CALLS_PER_BATCH: usize = 20;
/// `SELECT 1` round trips timed (after [`SELECT_WARMUP`] untimed ones).
pub const SELECT_SAMPLES: usize = 301;
const SELECT_WARMUP: usize = 20;

fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median ns of one `allocate` call on the fixed clinic.
pub fn allocation_ns() -> f64 {
    let rules = default_rule_set();
    let mut clinic = Fixture::generated(60, 42);
    clinic.snapshot.clinic.opening_hours = OpeningHours::default();
    clinic.fill_rooms(20, 20);
    clinic.request.start = at(8, 0);
    clinic.request.end = at(8, 20);
    let config = AllocatorConfig::default();
    let call = || {
        black_box(allocate(&rules, &clinic.snapshot, &clinic.request, &config).is_ok());
    };
    call(); // Warm the caches once.
    let batches = (0..CPU_BATCHES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..CPU_CALLS_PER_BATCH {
                call();
            }
            started.elapsed().as_nanos() as f64 / CPU_CALLS_PER_BATCH as f64
        })
        .collect();
    median(batches)
}

/// Median µs of a `SELECT 1` round trip to `target`.
pub async fn select_one_us(target: &DbTarget) -> Result<f64, RealError> {
    let mut conn = probe_connection(target).await?;
    select_one_samples(&mut conn, target, SELECT_WARMUP).await?;
    Ok(median(select_one_samples(&mut conn, target, SELECT_SAMPLES).await?))
}

/// One connection of its own to `target`, for the `SELECT 1` probes.
async fn probe_connection(target: &DbTarget) -> Result<PoolConnection<Postgres>, RealError> {
    let db = target.pool(1).await?;
    db.pool()
        .acquire()
        .await
        .map_err(|e| RealError::Database(format!("{}: {e}", target.describe())))
}

/// µs of `count` `SELECT 1` round trips on `conn`, one by one.
async fn select_one_samples(
    conn: &mut sqlx::PgConnection,
    target: &DbTarget,
    count: usize,
) -> Result<Vec<f64>, RealError> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|e| RealError::Database(format!("SELECT 1 on {}: {e}", target.describe())))?;
        samples.push(started.elapsed().as_nanos() as f64 / 1_000.0);
    }
    Ok(samples)
}

/// THE IDLE-CORE PROBE ([`idle_wake`]): `SELECT 1` round trips with the cores idle, and with
/// every core kept busy by a spinning thread at the lowest priority (nice 19), which any
/// woken process preempts at once. On this project's VMs (cpuidle driver `haltpoll` with
/// `guest_halt_poll_ns = 0`: an idle vCPU halts) a round trip that wakes a halted core costs
/// ~50 µs more: 62–67 µs idle against 15–20 µs busy with `pgbench -c1 -f select1.sql`,
/// 2026-12-07 (40 µs with SCHED_IDLE spinners). So a statement's time depends on whether its
/// wake-ups find halted cores: `conflict`'s one-row reads took 15–28 µs at the median on a
/// full machine (50 users) and 56–73 µs at 25 users, where the cores halt between bursts
/// (sim/README.md, session 30). Reported beside the micro probe by validate and calibrate
/// (a comment in the profile it writes); not modelled. One reading is not a constant: the busy
/// median came out ~20 or ~43 µs from one run to the next, and an idle one taken right after
/// load comes out low.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdleWake {
    /// Median µs of a `SELECT 1` round trip with the cores idle.
    pub idle_us: f64,
    /// Median µs with every core kept busy by a lowest-priority spinner.
    pub busy_us: f64,
}

impl IdleWake {
    /// Busy ÷ idle: below 1 when waking an idle core costs time.
    pub fn ratio(&self) -> f64 {
        self.busy_us / self.idle_us
    }

    /// One line for validate's notes.
    pub fn describe(&self) -> String {
        format!(
            "idle-core probe: SELECT 1 {:.0} µs with the cores idle, {:.0} µs with every core kept \
             busy by a nice-19 spinner (x{:.2}; a round trip that wakes an idle core costs {:.0} µs \
             more)",
            self.idle_us,
            self.busy_us,
            self.ratio(),
            self.idle_us - self.busy_us
        )
    }
}

/// Rounds of the idle-core probe: idle and busy samples alternate, so a drift of the machine
/// during the probe moves both.
pub const IDLE_WAKE_ROUNDS: usize = 2;

/// How long the idle-core probe's spinners run before its busy round trips are timed.
pub const SPINNER_WARMUP: std::time::Duration = std::time::Duration::from_millis(1_200);
/// How long the idle-core probe waits after its spinners stop before its next idle round.
pub const SPINNER_REST: std::time::Duration = std::time::Duration::from_millis(1_200);

/// The idle-core probe ([`IdleWake`]): [`SELECT_SAMPLES`] round trips each way on one
/// connection, in [`IDLE_WAKE_ROUNDS`] alternating rounds; one spinner per core of this
/// machine while busy.
pub async fn idle_wake(target: &DbTarget) -> Result<IdleWake, RealError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut conn = probe_connection(target).await?;
    select_one_samples(&mut conn, target, SELECT_WARMUP).await?;
    let per_round = SELECT_SAMPLES.div_ceil(IDLE_WAKE_ROUNDS);
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    for _ in 0..IDLE_WAKE_ROUNDS {
        idle.extend(select_one_samples(&mut conn, target, per_round).await?);
        let spinners = Spinners::start(cores);
        // Both waits measured, not derived (2026-12-07, `pgbench -c1` beside `nice -n 19 yes`
        // on both cores): with the spinners running 0.3 s a round trip still took 61 µs, after
        // 1–2 s 15–19 µs; right after they stop, an idle round trip took 12 µs, one second
        // later 64–67 again (in this probe: 43 µs busy with no warm-up, 12 µs idle with no rest).
        tokio::time::sleep(SPINNER_WARMUP).await;
        let samples = select_one_samples(&mut conn, target, per_round).await;
        drop(spinners);
        busy.extend(samples?);
        tokio::time::sleep(SPINNER_REST).await;
    }
    Ok(IdleWake { idle_us: median(idle), busy_us: median(busy) })
}

/// Threads that spin at the lowest priority until dropped (the idle-core probe's load): a
/// core running one is not idle, and a woken process preempts it.
struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    /// `count` spinners, each at nice 19, all spinning when this returns.
    fn start(count: usize) -> Spinners {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let threads = (0..count)
            .map(|_| {
                let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
                std::thread::spawn(move || {
                    lowest_priority();
                    started.fetch_add(1, Ordering::SeqCst);
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        while started.load(Ordering::SeqCst) < count {
            std::thread::yield_now();
        }
        Spinners { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The calling thread at nice 19 (on Linux a thread's nice value is its own). Best effort: a
/// spinner left at the default priority still keeps its core busy, only the figure is worse.
fn lowest_priority() {
    // SAFETY: setpriority only reads its arguments; who = 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// The calling thread's nice value (for the tests).
#[cfg(test)]
fn nice_of_this_thread() -> i32 {
    // SAFETY: getpriority only reads its arguments; who = 0 is the calling thread.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

/// Both probes: this machine's speed now.
pub async fn measure(target: &DbTarget) -> Result<MachineSpeed, RealError> {
    let select_one_us = select_one_us(target).await?;
    Ok(MachineSpeed { allocation_ns: allocation_ns(), select_one_us })
}

/// The profile's `[machine]` table for `speed`.
pub fn toml_section(speed: &MachineSpeed) -> String {
    format!(
        "\n[machine]\n# machine-speed probe (sim/real/src/probe.rs): backend-core's allocate on \
         a fixed 60-room clinic, median ns; SELECT 1 round trip, median us\n\
         allocation_ns = {:.1}\nselect_one_us = {:.1}\n",
        speed.allocation_ns, speed.select_one_us
    )
}

/// Requests the statement probe measures: about a second at one user here.
pub const PROBE_REQUESTS: u64 = 500;

/// Largest factor the statement probe scales a profile by (either way). This VM's statements
/// were 5× faster on 2026-12-05 at 23:20 than at 20:26 the same day.
pub const PROBE_RATIO_MAX: f64 = 8.0;

/// Users of the statement probe's loaded level: where this VM's 2 cores first saturate on
/// storm (1.99 of 2 busy at 10 users, `/proc`, 2026-12-06).
pub const LOADED_PROBE_USERS: u32 = 10;

/// Requests of the loaded level: about a second here, long enough for the CPU clock's 10 ms
/// ticks (`crate::cpu_time`) to matter little.
pub const LOADED_PROBE_REQUESTS: u64 = 2_000;

/// What the statement probe measured.
#[derive(Clone, Debug)]
pub struct StatementProbe {
    /// The statements and backend CPU now, as calibrate writes them.
    pub profile: Profile,
    /// The rule checks of the probe's median evaluation, where the rules' cost now and as
    /// recorded are compared ([`RULES_PROBE_CHECKS`] when it measured none).
    pub rule_checks: u64,
    /// The statement core fraction under load (`StatementCpu::fraction_under`) and the loaded
    /// level it was read from; `None` where the machine's CPU could not be read.
    pub loaded_fraction: Option<(f64, LoadedCpu)>,
    /// Its 1-user level's CPU split by process (`validate --cpu-split processes`); `None`
    /// where the machine's CPU could not be read.
    pub process_split: Option<ProcessSplit>,
    /// The probe's own 1-user room assignment p50, µs: what the judged 1-user level of the
    /// same run would measure if the machine kept its speed (a miss there is the machine's
    /// drift between the two, not the model's).
    pub room_assignment_p50_us: Option<u64>,
    /// Requests of its 1-user level.
    pub requests: u64,
}

/// The statement probe: [`PROBE_REQUESTS`] requests of the validated scenario at one user,
/// run as `validate` runs its 1-user level (`validate::probe_levels`: the same rounds, days,
/// strategy and connections) on calibrate's instruments, in a temporary database; then, with
/// `loaded` (the scenario at [`LOADED_PROBE_USERS`]), [`LOADED_PROBE_REQUESTS`] at that
/// level, whose machine CPU per request gives the statement core fraction under load.
///
/// WHY NOT A SHORT CALIBRATION (what it was until 2026-12-06): calibrate's closed loop (one
/// long-lived client on one connection, the fixture's bookings) times the same statements
/// faster than validate's rounds do. Back to back, three times (2026-12-06 ~18:20), the
/// one-row lookups (`SELECT body FROM patients …`) had a median of 19–26 µs in calibrate's
/// loop and 67–86 µs in validate's 1-user rounds, the INSERT 174–188 against 231–245 µs, the
/// COMMIT the same (277–297 against 275–283); so the probe scaled the committed profile to
/// a machine faster than the one the real side then ran on, and the 1-user room assignment
/// came out at 0.71–0.80 of real (`roomsim validate --scenario storm --concurrency 1
/// --run-time 8s`, twice). The probe must measure the regime it predicts.
pub async fn statement_probe(
    config: &ValidateConfig,
    one_user: Arc<Scenario>,
    loaded: Option<Arc<Scenario>>,
    days: RoundDays,
) -> Result<StatementProbe, RealError> {
    let name = config.scenario.clone();
    let loaded = loaded.map(|scenario| (scenario, LOADED_PROBE_REQUESTS));
    let measured = probe_levels(config, (one_user, PROBE_REQUESTS), loaded, days).await?;
    let description =
        format!("statement probe, {PROBE_REQUESTS} requests of scenario {name} at 1 user");
    let (times, cpu) = (&measured.times, &measured.cpu);
    let at_one_user = (measured.room_assignment_p50_us, PROBE_REQUESTS);
    statement_probe_of(times, cpu, measured.loaded, at_one_user, &description)
}

/// The [`StatementProbe`] of what its levels measured: the 1-user level's `times` and `cpu`,
/// the `loaded` level's machine CPU, and `at_one_user` the 1-user room assignment p50 and
/// request count (`description` names them in the profile it builds); run first
/// ([`statement_probe`]), or a `validate --probe-from-run` run's own levels.
pub fn statement_probe_of(
    times: &StatementTimes,
    cpu: &CpuCosts,
    loaded: Option<LoadedCpu>,
    at_one_user: (Option<u64>, u64),
    description: &str,
) -> Result<StatementProbe, RealError> {
    let (room_assignment_p50_us, requests) = at_one_user;
    let cpu = &CpuCosts { loaded, ..cpu.clone() };
    let rule_checks = cpu
        .rule_checks
        .as_ref()
        .map(|h| h.value_at_quantile(0.5))
        .filter(|&checks| checks > 1)
        .unwrap_or(RULES_PROBE_CHECKS);
    let loaded_fraction = loaded.and_then(|loaded| {
        let fraction = cpu.statement_cpu.as_ref()?.fraction_under(&loaded)?;
        Some((fraction, loaded))
    });
    let process_split = cpu.statement_cpu.as_ref().and_then(StatementCpu::split);
    let profile = measured_profile(times, cpu, description)?.1;
    Ok(StatementProbe {
        profile,
        rule_checks,
        loaded_fraction,
        process_split,
        room_assignment_p50_us,
        requests,
    })
}

/// How much slower the machine that measured `now` (a [`statement_probe`]) is than the one
/// that measured `profile`, each clamped to 1/[`PROBE_RATIO_MAX`]..=[`PROBE_RATIO_MAX`];
/// `None` when the two share no statement class or either lacks a `[cpu]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeRatios {
    /// The sum of the statement classes' body means now over the same classes' recorded
    /// ones (one booking's statement time; `ServiceTime::body_mean_us`).
    pub statements: f64,
    /// The rules' median cost of one evaluation of the probe's size
    /// ([`StatementProbe::rule_checks`]; its fixed part included), now over recorded.
    pub rules: f64,
    /// The backend's median CPU per request, now over recorded (`rules` when either profile
    /// lacks it).
    pub request: f64,
    /// Per statement class in both: its body mean now over its recorded one.
    pub classes: BTreeMap<String, f64>,
    /// Classes the probe found a cost per row for (`us_per_row`) and the profile has none:
    /// their recorded table holds the rows of the days calibrate booked, the probe's its
    /// zero-row time, so no ratio of the two means anything. They are taken as measured now.
    pub measured_now: Vec<String>,
}

/// Rule checks of one storm evaluation (p50 1,178–1,216 measured), the size at which the
/// rules' cost now and as recorded are compared when the probe measured no evaluation.
pub const RULES_PROBE_CHECKS: u64 = 1_200;

/// `rule_checks`: the size of evaluation at which the rules' cost is compared
/// ([`StatementProbe::rule_checks`]).
pub fn probe_ratios(profile: &Profile, now: &Profile, rule_checks: u64) -> Option<ProbeRatios> {
    let recorded: BTreeMap<&str, f64> =
        profile.statements.classes().iter().map(|(c, t)| (c.as_str(), t.body_mean_us())).collect();
    let clamp = |r: f64| r.clamp(1.0 / PROBE_RATIO_MAX, PROBE_RATIO_MAX);
    let (mut sum_now, mut sum_recorded, mut classes) = (0.0, 0.0, BTreeMap::new());
    let mut measured_now = Vec::new();
    for (class, time) in now.statements.classes() {
        let costs_per_row = |p: &Profile| p.statements.us_per_row(class).is_some();
        if recorded.contains_key(class.as_str()) && costs_per_row(now) && !costs_per_row(profile) {
            measured_now.push(class.clone());
            continue;
        }
        if let Some(&then) = recorded.get(class.as_str())
            && then > 0.0
        {
            sum_now += time.body_mean_us();
            sum_recorded += then;
            classes.insert(class.clone(), clamp(time.body_mean_us() / then));
        }
    }
    let (cpu_then, cpu_now) = (profile.backend_cpu.as_ref()?, now.backend_cpu.as_ref()?);
    if classes.is_empty() || sum_recorded <= 0.0 {
        return None;
    }
    // One evaluation of the probe's size, fixed part included (the probe, one clinic, has
    // none: its per-check cost holds it, so only at its own size do the two agree).
    let at = rule_checks;
    let rules = clamp(cpu_now.rules_us_median_at(at) / cpu_then.rules_us_median_at(at));
    let request = match (cpu_now.request_us_median(), cpu_then.request_us_median()) {
        (Some(now), Some(then)) if then > 0.0 => clamp(now / then),
        _ => rules,
    };
    let statements = clamp(sum_now / sum_recorded);
    Some(ProbeRatios { statements, rules, request, classes, measured_now })
}

/// `profile` scaled to the machine a [`statement_probe`] measured (`now`), and the line that
/// says how; `micro` (the `[machine]` micro-benchmarks taken now) is reported beside it for
/// comparison. Unchanged, and said so, when the two share no statement class.
pub fn scale_by_statement_probe(
    profile: &Profile,
    probe: &StatementProbe,
    micro: Option<&MachineSpeed>,
) -> (Profile, String) {
    let now = &probe.profile;
    let micro_line = match (micro, &profile.machine) {
        (Some(micro), Some(recorded)) => {
            let (statements, cpu) = micro.ratios_to(recorded);
            format!(
                "; the micro probe said statements x{statements:.2} (SELECT 1), backend CPU \
                 x{cpu:.2} (allocation)"
            )
        }
        _ => String::new(),
    };
    let Some(r) = probe_ratios(profile, now, probe.rule_checks) else {
        let line = "statement probe: the profile has no statement classes or [cpu] table in \
                    common with calibrate's: NOT scaled"
            .to_string();
        return (profile.clone(), line);
    };
    let lowest = r.classes.values().copied().fold(f64::INFINITY, f64::min);
    let highest = r.classes.values().copied().fold(0.0, f64::max);
    let line = format!(
        "statement probe ({} requests at 1 user): statements x{:.2} (each of {} \
         classes by its own ratio, x{lowest:.2} to x{highest:.2}), rules x{:.2} (at {} checks), \
         request CPU x{:.2}{micro_line}",
        probe.requests,
        r.statements,
        r.classes.len(),
        r.rules,
        probe.rule_checks,
        r.request
    );
    let taken = match r.measured_now.len() {
        0 => String::new(),
        n => format!(
            "; {n} class(es) taken as measured now, with the cost per row the profile lacks ({})",
            r.measured_now
                .iter()
                .map(|c| format!("`{}…`", c.chars().take(24).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut scaled = profile.scaled_each(r.statements, r.rules, r.request);
    // The statement core fraction is the loaded level's, not the 1-user probe's: over 300
    // bookings at one user the CPU clock's 10 ms ticks left it ±10 % (0.97 and 1.00 in two
    // probes where calibrate's 3,000 bookings said 0.91), and one user never contends.
    let fraction_line = match probe.loaded_fraction {
        Some((fraction, loaded)) => match scaled.with_statement_core_fraction(fraction) {
            Ok(with) => {
                let recorded =
                    profile.backend_cpu.as_ref().map_or(1.0, |c| c.statement_core_fraction());
                scaled = with;
                format!(
                    "; statement core fraction {fraction:.3} under load ({} users, {:.0} us of \
                     machine CPU per request; the profile's {recorded:.3})",
                    loaded.users,
                    loaded.per_request_us()
                )
            }
            Err(reason) => format!("; statement core fraction not set: {reason}"),
        },
        None => "; statement core fraction as recorded (the machine's CPU under load could \
                 not be read)"
            .to_string(),
    };
    let class_factor = |class: &str| r.classes.get(class).copied();
    let statements = profile
        .statements
        .scaled_by_class(r.statements, class_factor)
        .with_classes_from(&now.statements, |class| r.measured_now.iter().any(|c| c == class));
    let own_line = match probe.room_assignment_p50_us {
        Some(us) => format!("; the probe's own room assignment p50 {:.3} ms", us as f64 / 1e3),
        None => String::new(),
    };
    (Profile { statements, ..scaled }, format!("{line}{taken}{fraction_line}{own_line}"))
}

/// A profile's text without its `[machine]` section (calibrate writes it last), e.g. to
/// record another probe in its place.
pub fn without_probe(text: &str) -> &str {
    text.find("\n[machine]").map_or(text, |at| &text[..=at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_core_probe_says_how_much_waking_an_idle_core_costs() {
        let wake = IdleWake { idle_us: 64.0, busy_us: 16.0 };
        assert_eq!(wake.ratio(), 0.25);
        let line = wake.describe();
        assert!(line.contains("SELECT 1 64 µs with the cores idle, 16 µs"), "{line}");
        assert!(line.contains("(x0.25; a round trip that wakes an idle core costs 48 µs more)"));
        // A machine where an idle core wakes at once says so: no cost, ratio 1.
        let flat = IdleWake { idle_us: 20.0, busy_us: 20.0 }.describe();
        assert!(flat.contains("(x1.00; a round trip that wakes an idle core costs 0 µs more)"));
    }

    #[test]
    fn spinners_run_at_the_lowest_priority_and_stop_when_dropped() {
        // Nice is per thread on Linux: a spinner's setting leaves its caller's alone.
        let before = nice_of_this_thread();
        let spun = std::thread::spawn(|| {
            lowest_priority();
            nice_of_this_thread()
        });
        assert_eq!(spun.join().unwrap(), 19);
        assert_eq!(nice_of_this_thread(), before);
        let spinners = Spinners::start(2);
        assert_eq!(spinners.threads.len(), 2);
        assert!(spinners.threads.iter().all(|t| !t.is_finished()), "both spin until dropped");
        let stop = Arc::clone(&spinners.stop);
        assert_eq!(Arc::strong_count(&stop), 4, "ours, the guard's and one per spinner");
        drop(spinners);
        assert!(stop.load(Ordering::Relaxed), "dropping stops them");
        // Each spinner's clone of the flag goes when its thread ends: all gone as the drop
        // returns means it joined them, not only told them to stop.
        assert_eq!(Arc::strong_count(&stop), 1, "dropping joins them");
    }

    #[test]
    fn the_section_round_trips_through_a_profile() {
        let recorded = MachineSpeed { allocation_ns: 50_000.0, select_one_us: 40.0 };
        let text = format!(
            "{}{}",
            without_probe(model::profile::DEFAULT_PROFILE_TOML),
            toml_section(&recorded)
        );
        let profile = Profile::from_toml_str(&text, "probe").unwrap();
        assert_eq!(profile.machine, Some(recorded));
        let unprobed =
            Profile::from_toml_str(without_probe(model::profile::DEFAULT_PROFILE_TOML), "unprobed")
                .unwrap();
        assert_eq!(unprobed.machine, None);
        // The committed profile records its probe (reported by validate beside the statement
        // probe's factors).
        assert!(Profile::default_profile().machine.is_some(), "the committed profile's probe");
    }

    /// `now` as a statement probe that measured storm-sized evaluations.
    fn probed(now: &Profile) -> StatementProbe {
        StatementProbe {
            profile: now.clone(),
            rule_checks: RULES_PROBE_CHECKS,
            loaded_fraction: None,
            process_split: None,
            room_assignment_p50_us: None,
            requests: PROBE_REQUESTS,
        }
    }

    /// The committed profile with every statement `s` times and the backend's CPU `c` times
    /// as slow (what a statement probe on such a machine would measure).
    fn slower(s: f64, c: f64) -> Profile {
        Profile::default_profile().scaled_each(s, c, c)
    }

    #[test]
    fn the_statement_probe_scales_by_what_the_statements_took() {
        let committed = Profile::default_profile();
        let now = committed.scaled_each(0.2, 0.3, 0.4);
        let r = probe_ratios(&committed, &now, RULES_PROBE_CHECKS).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(close(r.statements, 0.2) && close(r.rules, 0.3) && close(r.request, 0.4), "{r:?}");
        assert_eq!(r.classes.len(), committed.statements.classes().len());
        assert!(r.classes.values().all(|&f| close(f, 0.2)), "{r:?}");
        let (scaled, line) = scale_by_statement_probe(&committed, &probed(&now), None);
        // Equal up to rounding (each class's ratio is its body mean now ÷ then).
        let rounded = |p: &Profile| format!("{p:.6?}");
        assert_eq!(rounded(&scaled), rounded(&committed.scaled_each(0.2, 0.3, 0.4)));
        // Each class by its own ratio: one class twice as slow again as the rest.
        let first = committed.statements.classes()[0].0.clone();
        let mut uneven = now.clone();
        uneven.statements = now.statements.scaled_by_class(1.0, |c| (c == first).then_some(2.0));
        let r = probe_ratios(&committed, &uneven, RULES_PROBE_CHECKS).unwrap();
        assert!(close(r.classes[&first], 0.4) && r.statements > 0.2, "{r:?}");
        let (scaled, _) = scale_by_statement_probe(&committed, &probed(&uneven), None);
        let median = |p: &Profile, c: &str| {
            p.statements.classes().iter().find(|(x, _)| x == c).unwrap().1.median_us()
        };
        assert!((median(&scaled, &first) - median(&uneven, &first)).abs() < 1e-6);
        assert!(line.contains("statements x0.20") && line.contains("request CPU x0.40"), "{line}");
        assert!(line.contains("statement core fraction as recorded"), "{line}");
        let fraction = |p: &Profile| p.backend_cpu.as_ref().unwrap().statement_core_fraction();
        assert_eq!(fraction(&scaled), fraction(&committed), "no loaded level: as recorded");
        // A loaded level measured: its fraction replaces the recorded one, and is named.
        let loaded = LoadedCpu {
            users: 10,
            cpu_us: 2_000_000,
            postgres_us: 1_000_000,
            requests: 2_000,
            machine: None,
        };
        let probe = StatementProbe { loaded_fraction: Some((0.6, loaded)), ..probed(&uneven) };
        let (under_load, line) = scale_by_statement_probe(&committed, &probe, None);
        assert_eq!(fraction(&under_load), 0.6);
        assert!(line.contains("statement core fraction 0.600 under load (10 users, 1000 us"));
        assert!(!line.contains("the probe's own"), "not measured, not said: {line}");
        assert!(line.starts_with("statement probe (500 requests at 1 user)"), "{line}");
        let timed = StatementProbe { room_assignment_p50_us: Some(1_419), requests: 152, ..probe };
        let (_, line) = scale_by_statement_probe(&committed, &timed, None);
        assert!(line.ends_with("; the probe's own room assignment p50 1.419 ms"), "{line}");
        assert!(line.starts_with("statement probe (152 requests at 1 user)"), "its own count");
        // A class the probe measured a cost per row for, which the profile lacks: taken as
        // measured now, outside the ratios.
        let day = committed
            .statements
            .classes()
            .iter()
            .map(|(c, _)| c.clone())
            .find(|c| c.starts_with("SELECT id, clinic_id, room_id"))
            .expect("the committed profile has the day's appointments SELECT");
        let per_row_line = |t: &str| t.lines().any(|l| l.starts_with("us_per_row"));
        assert!(per_row_line(model::profile::DEFAULT_PROFILE_TOML), "the committed has one");
        let text: String = model::profile::DEFAULT_PROFILE_TOML
            .lines()
            .filter(|l| !l.starts_with("us_per_row"))
            .map(|l| format!("{l}\n"))
            .collect();
        let committed = Profile::from_toml_str(&text, "no cost per row").unwrap();
        assert_eq!(committed.statements.us_per_row(&day), None);
        let per_row = Profile::default_profile().scaled_each(0.2, 0.3, 0.4);
        let recorded_us = Profile::default_profile().statements.us_per_row(&day).unwrap();
        let r = probe_ratios(&committed, &per_row, RULES_PROBE_CHECKS).unwrap();
        assert_eq!(r.measured_now, vec![day.clone()]);
        assert!(!r.classes.contains_key(&day) && close(r.statements, 0.2), "{r:?}");
        let (scaled, line) = scale_by_statement_probe(&committed, &probed(&per_row), None);
        let taken = scaled.statements.us_per_row(&day).unwrap();
        assert!((taken - recorded_us * 0.2).abs() < 1e-9, "{taken}: the probe's, taken over");
        assert!((median(&scaled, &day) - median(&per_row, &day)).abs() < 1e-6);
        assert!(line.contains("1 class(es) taken as measured now"), "{line}");
        // Clamped: a 20-fold difference is scaled by 8.
        let r = probe_ratios(&committed, &slower(20.0, 1.0), RULES_PROBE_CHECKS).unwrap();
        assert_eq!(r.statements, PROBE_RATIO_MAX);
        // No [cpu] table measured: not scaled, and said so.
        let kinds_only = Profile { backend_cpu: None, ..committed.clone() };
        let (same, line) = scale_by_statement_probe(&committed, &probed(&kinds_only), None);
        assert_eq!(same, committed);
        assert!(line.contains("NOT scaled"), "{line}");
    }

    #[test]
    fn the_cpu_probe_measures_something_positive() {
        let ns = allocation_ns();
        assert!(ns.is_finite() && ns > 100.0, "{ns}");
    }
}
