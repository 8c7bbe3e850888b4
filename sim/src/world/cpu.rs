//! The backend's modelled CPU: the cost of its pure work (rules evaluation, conflict
//! detection; [`CostModel`], charged by `ChargeSleep` through backend-core's `WorkCharge`)
//! and of every HTTP request outside statements and rules (`RequestCpu`, with a profile that
//! has `[cpu] request_us`), drawn from the profile's `[cpu]` table (`profile.rs`). With `[cpu] cores`, that CPU, the rules charge and every statement
//! run on one shared pool of cores (`model::io::Cores`, [`Machine`]).
//!
//! With `[cpu] quantum_us` the shared cores are TIME-SLICED (round-robin, issue #17): a piece
//! of work — a statement, a request's CPU, a rules evaluation — holds a core for at most one
//! quantum while other work waits, then queues again (`model::io::cores`). Without it each
//! piece runs to its end once it has a core. Not modelled: the kernel's fairness by
//! accumulated CPU (EEVDF's lag), context-switch cost.
//!
//! With `[cpu] backend_workers = W` the backend's own CPU work (a request's CPU, a rules
//! evaluation) also needs one of W worker threads ([`backend_workers`]), as the real side's
//! tokio runtime runs its tasks on a fixed number of threads: a piece holds its thread from
//! before it has a core until it ends, preempted or not, and the others queue for a thread.
//! Statements are PostgreSQL's processes and need no worker.
//!
//! RULES SAMPLES ARE PER REQUEST: the real backend's Server-Timing `rules` sums every
//! evaluation of one request (a booking that finds its candidates taken evaluates again), and
//! the real side records one sample per answer that carries the header, zero or not. The
//! simulation records the same: [`record_rules_per_request`] sums the request's charged
//! evaluations and records once per answer with `Server-Timing`.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_core::booking::work::{Work, WorkCharge};
use backend_core::db::BoxFuture;
use model::io::{Cores, Group};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;

use crate::histograms::{Histograms, Metric};
use crate::timescale::{RESOLUTION_US, modelled_us, scaled_us};
#[cfg(test)]
use crate::timescale::{TIME_SCALE, scaled};

use super::profile::{BackendCpu, Profile};

/// Modelled CPU cost of the backend's pure work, charged as a (scaled) sleep.
///
/// RULES EVALUATION (the allocator, with its in-memory interval checks): with a profile that
/// has a `[cpu]` table (written by `roomsim calibrate` from the real backend's Server-Timing
/// `rules`), `rule_checks × a draw from rules_ns_per_check`; without one, the fallback
/// constants below (not measured). CONFLICT DETECTION: the in-memory interval checks are
/// part of the allocator's time, and the real backend's `conflict` phase is database work
/// (the in-transaction INSERT and checks, which the simulation times on its own), so a
/// measured profile charges nothing for it; the fallback charges its constants.
///
/// PRECISION: the clock only moves in 25 µs ticks, so the sleep is the cost rounded to the
/// NEAREST tick (at 25 µs: a 15 µs cost sleeps one tick, a 10 µs cost none), and the exact charged cost
/// is recorded in the rules-evaluation histogram at µs precision, plus the time the evaluation
/// spent preempted on time-sliced shared cores once it had one — what the real backend's
/// Server-Timing measures (a thread's wall time from when it runs; the wait for the first
/// core is not in it). Contention: the charge waits for a shared core when there are any;
/// the cost itself does not grow with load, its preempted time does.
pub struct CostModel;

impl CostModel {
    /// Fallback: nanoseconds per rule check and per interval examined, plus a fixed 2 µs per
    /// call (invented; used only by a profile without `[cpu]`).
    pub const RULE_CHECK_NS: u64 = 50;
    pub const INTERVAL_NS: u64 = 20;
    pub const FIXED_US: u64 = 2;

    /// The cost of `work` in µs (fractional), drawing from `rng` when the profile measures it.
    pub fn cost_us(work: &Work, backend: Option<&BackendCpu>, rng: &mut ChaCha8Rng) -> f64 {
        match (work, backend) {
            (Work::RulesEvaluation(s), Some(backend)) => {
                backend.sample_rules_us(s.rule_checks, rng)
            }
            (Work::RulesEvaluation(s), None) => {
                (Self::FIXED_US * 1_000 + s.rule_checks * Self::RULE_CHECK_NS) as f64 / 1_000.0
            }
            (Work::ConflictDetection(_), Some(_)) => 0.0,
            (Work::ConflictDetection(s), None) => {
                (Self::FIXED_US * 1_000 + s.intervals_examined * Self::INTERVAL_NS) as f64 / 1_000.0
            }
        }
    }

    /// The modelled sleep for a cost: whole ticks, rounded to the nearest.
    pub fn sleep_us(cost_us: f64) -> u64 {
        let ticks = (cost_us / RESOLUTION_US as f64).round() as u64;
        ticks * RESOLUTION_US
    }
}

/// The simulation's [`WorkCharge`]: draws the cost, records rules evaluation exactly, sleeps
/// (holding a core when the profile's cores are shared with the database).
pub(super) struct ChargeSleep {
    pub(super) profile: Arc<Profile>,
    pub(super) rng: Mutex<ChaCha8Rng>,
    pub(super) histograms: Arc<Mutex<Histograms>>,
    pub(super) cores: Option<Arc<Cores>>,
    /// The backend's worker threads (`[cpu] backend_workers`; [`backend_workers`]).
    pub(super) workers: Option<Arc<Semaphore>>,
    /// The requests in flight, counted by [`RequestCpu`].
    pub(super) in_flight: InFlight,
}

impl WorkCharge for ChargeSleep {
    fn charge(&self, work: Work) -> BoxFuture<'static, ()> {
        let backend = self.profile.backend_cpu.as_ref();
        let cost_us = CostModel::cost_us(&work, backend, &mut self.rng.lock().expect("rng"));
        let cost_us = charged_now(cost_us, backend, &self.in_flight);
        let sleep_us = CostModel::sleep_us(cost_us);
        let spend = spend_cpu(self.cores.clone(), self.workers.clone(), sleep_us);
        if !matches!(work, Work::RulesEvaluation(_)) {
            return Box::pin(async move {
                spend.await;
            });
        }
        // Recorded as the real backend's Server-Timing `rules` measures it: the evaluation's
        // own cost (exact, not in ticks) plus any time its thread was preempted while it ran.
        let histograms = Arc::clone(&self.histograms);
        Box::pin(async move {
            let preempted_us = modelled_us(spend.await);
            let rules_us = cost_us.round() as u64 + preempted_us;
            let in_request = REQUEST_RULES_US.try_with(|sum| sum.set(sum.get() + rules_us));
            if in_request.is_err() {
                // Outside an HTTP request (no layer around it): one sample per evaluation.
                histograms.lock().expect("histograms").record(Metric::RulesEvaluation, rules_us);
            }
        })
    }
}

tokio::task_local! {
    /// The modelled µs of rules evaluation charged so far by the HTTP request this task
    /// serves (set by [`record_rules_per_request`]).
    static REQUEST_RULES_US: Cell<u64>;
}

/// A layer around the router that records one rules-evaluation sample per answer carrying
/// `Server-Timing`: the sum of the request's charged evaluations (zero when it evaluated
/// none), as the real side reads the header's `rules` from every such answer.
pub(super) fn record_rules_per_request(
    router: axum::Router,
    histograms: Arc<Mutex<Histograms>>,
) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let histograms = Arc::clone(&histograms);
            REQUEST_RULES_US.scope(Cell::new(0), async move {
                let response = next.run(request).await;
                if response.headers().contains_key("server-timing") {
                    let rules_us = REQUEST_RULES_US.with(Cell::get);
                    let status = response.status().as_u16();
                    let mut histograms = histograms.lock().expect("histograms");
                    histograms.record_by_status(Metric::RulesEvaluation, status, rules_us);
                }
                response
            })
        },
    ))
}

/// The HTTP requests the backend is serving, counted by [`RequestCpu`]'s layer: the machine
/// is BUSY while more than one is in flight (`[cpu] busy_cost_factor`, module doc of
/// `profile.rs`). One per backend host start.
#[derive(Clone, Debug, Default)]
pub(super) struct InFlight(Arc<AtomicUsize>);

/// One request in flight, counted until dropped (answered, or its connection dropped).
struct Serving(Arc<AtomicUsize>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight {
    fn enter(&self) -> Serving {
        self.0.fetch_add(1, Ordering::Relaxed);
        Serving(Arc::clone(&self.0))
    }

    /// Whether other requests are being served beside the one asking.
    fn others(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 1
    }
}

/// `cost_us` of the backend's CPU work as charged now: while other requests are in flight
/// (a busy machine: warm caches, no wake-up from idle), the profile's busy cost factor times
/// it. One user never has another request beside its own, so its costs are the idle
/// machine's.
fn charged_now(cost_us: f64, backend: Option<&BackendCpu>, in_flight: &InFlight) -> f64 {
    match backend {
        Some(backend) if in_flight.others() => cost_us * backend.busy_cost_factor(),
        _ => cost_us,
    }
}

/// The backend's worker threads, when the profile says how many (`[cpu] backend_workers`):
/// a request's CPU and a rules evaluation each hold one (FIFO) while they wait for a shared
/// core and run on it, as a tokio task runs on one of the runtime's worker threads until its
/// next await and the others wait their turn, however many cores are free. One per backend
/// host start (a restarted backend starts with all its threads free).
pub(super) fn backend_workers(profile: &Profile) -> Option<Arc<Semaphore>> {
    let workers = profile.backend_cpu.as_ref()?.backend_workers()?;
    Some(Arc::new(Semaphore::new(workers as usize)))
}

/// Spends `sleep_us` of modelled CPU: on a shared core when there are shared cores, on one
/// of the backend's `workers` when there is a limit. Returns the time the work spent
/// preempted once it had a core ([`Cores::hold`]; zero without shared cores).
async fn spend_cpu(
    cores: Option<Arc<Cores>>,
    workers: Option<Arc<Semaphore>>,
    sleep_us: u64,
) -> Duration {
    if sleep_us == 0 {
        return Duration::ZERO;
    }
    let _worker = match workers {
        Some(workers) => Some(workers.acquire_owned().await.expect("never closed")),
        None => None,
    };
    match cores {
        Some(cores) => cores.hold(Group::Service, scaled_us(sleep_us)).await,
        None => {
            tokio::time::sleep(scaled_us(sleep_us)).await;
            Duration::ZERO
        }
    }
}

/// Modelled µs the simulation's own transport adds to one HTTP exchange between a client and
/// the backend on a link with no latency: a tick each way on average. `calibrate`'s
/// `request_us` contains the real (loopback) exchange, so this much is taken off each draw,
/// as [`DB_TRANSPORT_US`](super::hosts::DB_TRANSPORT_US) is off each statement's (never below 0). Without it the exchange
/// was counted twice: room assignment at 1 user came out ~0.1 ms longer than real.
pub const HTTP_TRANSPORT_US: u64 = 2 * RESOLUTION_US;

/// The backend's own CPU per HTTP request outside statements and rules (`[cpu] request_us`,
/// less [`HTTP_TRANSPORT_US`]): a layer around the router that spends one draw before the
/// handler runs. Without that table nothing is charged (the run's figures are the database's
/// and the rules' alone). With `[cpu] offpath_us` the layer also spends that much on the
/// shared cores AFTER the handler answered, in a task of its own: the machine's work for a
/// request that its answer does not wait for (the kernel, wake-ups, the load generator), which
/// at one user finds an idle core and under load delays the others.
#[derive(Clone)]
pub(super) struct RequestCpu {
    pub(super) profile: Arc<Profile>,
    pub(super) rng: Arc<Mutex<ChaCha8Rng>>,
    pub(super) cores: Option<Arc<Cores>>,
    pub(super) workers: Option<Arc<Semaphore>>,
    /// Counts every request from here to its answer.
    pub(super) in_flight: InFlight,
}

impl RequestCpu {
    pub(super) fn layer(self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let serving = self.in_flight.enter();
                let backend = self.profile.backend_cpu.as_ref();
                let cost = backend.and_then(|backend| {
                    backend.sample_request_us(&mut *self.rng.lock().expect("rng"))
                });
                let cost = cost.map(|us| charged_now(us, backend, &self.in_flight));
                let offpath_us = backend.and_then(BackendCpu::offpath_us);
                let resume_share = backend.map_or(0.0, BackendCpu::resume_share);
                let cores = self.cores.clone();
                let workers = self.workers.clone();
                async move {
                    let cost_us = cost.map_or(0.0, |us| (us - HTTP_TRANSPORT_US as f64).max(0.0));
                    let before_us = cost_us * (1.0 - resume_share);
                    spend_cpu(cores.clone(), workers.clone(), CostModel::sleep_us(before_us)).await;
                    // The rest after the statements' replies (`ResumeCpu`), and what is left
                    // of it once the handler has answered, before the answer leaves (nothing
                    // without a resume share).
                    let left = Cell::new(cost_us - before_us);
                    let handled = RESUME_LEFT_US.scope(left, async {
                        let response = next.run(request).await;
                        (response, RESUME_LEFT_US.with(Cell::get))
                    });
                    let (response, left_us) = handled.await;
                    spend_cpu(cores.clone(), workers, CostModel::sleep_us(left_us)).await;
                    drop(serving);
                    if let (Some(us), Some(cores)) = (offpath_us, cores) {
                        // Off the request's path, and not the backend's threads' work (the
                        // kernel, the load generator): its answer does not wait for it.
                        // A LocalSet task: a crash drops it in spawn order (see hosts.rs).
                        tokio::task::spawn_local(spend_cpu(
                            Some(cores),
                            None,
                            CostModel::sleep_us(us),
                        ));
                    }
                    response
                }
            },
        ))
    }
}

tokio::task_local! {
    /// µs of the current request's drawn CPU left for after its statements' replies
    /// (`[cpu] resume_share`; [`ResumeCpu`]). Set by [`RequestCpu`]'s layer around the handler.
    static RESUME_LEFT_US: Cell<f64>;
}

/// µs of the backend's CPU spent after each statement reply while the request's share lasts:
/// one tick (the service's own work per statement, decoding the reply and building the next,
/// is a few tens of µs on the real side: ~450 µs of request CPU over ~13 statements).
pub const RESUME_PIECE_US: f64 = RESOLUTION_US as f64;

/// The backend resuming after a statement's reply (`[cpu] resume_share`): before the
/// statement's caller continues, the backend spends [`RESUME_PIECE_US`] of its request's
/// drawn CPU on a shared core, while the request's share lasts (none outside a request, or
/// once it is spent). A real service task is run on a core again after each reply before it
/// sends its next statement; on a busy machine that wait is in the statement's round trip as
/// the service times it, and in the transaction's open window (PostgreSQL sees the session
/// idle in its transaction: `validate --wait-events`, sim/README.md session 27).
#[derive(Clone)]
pub struct ResumeCpu {
    pub(super) cores: Option<Arc<Cores>>,
    pub(super) workers: Option<Arc<Semaphore>>,
}

impl ResumeCpu {
    /// Spends this reply's piece (see the type's doc); at once when none is left.
    pub async fn after_reply(&self) {
        let taken = RESUME_LEFT_US.try_with(|left| {
            let piece = left.get().min(RESUME_PIECE_US);
            left.set(left.get() - piece);
            piece
        });
        let Ok(piece_us) = taken else { return };
        spend_cpu(self.cores.clone(), self.workers.clone(), CostModel::sleep_us(piece_us)).await;
    }
}

/// The cores the database and the backend share, when the profile models one machine.
pub fn shared_cores(profile: &Profile) -> Option<Arc<Cores>> {
    let backend = profile.backend_cpu.as_ref()?;
    let cores = backend.shared_cores()?;
    let quantum = backend.quantum_us().map(scaled_us);
    let sharing = backend.sharing();
    Some(Cores::on_ticks(cores as usize, quantum, scaled_us(RESOLUTION_US), sharing))
}

/// What the backend's CPU costs are drawn from and spent on.
pub struct Machine {
    pub profile: Arc<Profile>,
    /// Shared with the db host (`[cpu] cores`), or `None`: the backend's CPU is its own.
    pub cores: Option<Arc<Cores>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each piece (start after ms, work ms) spent through `spend_cpu`; returns each end (ms).
    async fn run(cores: &Arc<Cores>, workers: Option<u32>, pieces: &[(u64, u64)]) -> Vec<u128> {
        let workers = workers.map(|w| Arc::new(Semaphore::new(w as usize)));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for &(after_ms, work_ms) in pieces {
            let (cores, workers) = (Arc::clone(cores), workers.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                let work = scaled(Duration::from_millis(work_ms));
                spend_cpu(Some(cores), workers, modelled_us(work)).await;
                start.elapsed().as_millis()
            }));
        }
        let mut ends = Vec::new();
        for task in tasks {
            ends.push(task.await.unwrap());
        }
        ends
    }

    /// Goal (`[cpu] resume_share`): each reply takes one tick of the request's share while it
    /// lasts, holding a shared core for it; a reply outside a request, or after the share is
    /// spent, costs nothing; and what a request leaves is read back by its layer.
    #[tokio::test(start_paused = true)]
    async fn each_reply_spends_a_tick_of_the_request_share_while_it_lasts() {
        let cores = Cores::new(1);
        let resume = ResumeCpu { cores: Some(Arc::clone(&cores)), workers: None };
        resume.after_reply().await;
        assert_eq!(cores.busy(), Duration::ZERO, "outside a request: nothing");
        let tick = scaled_us(RESOLUTION_US);
        let (busy, left) = RESUME_LEFT_US
            .scope(Cell::new(60.0), async {
                let mut busy = Vec::new();
                for _ in 0..4 {
                    resume.after_reply().await;
                    busy.push(cores.busy());
                }
                (busy, RESUME_LEFT_US.with(Cell::get))
            })
            .await;
        // 60 µs: 25, 25, then 10 (under half a tick: no tick held), then nothing.
        assert_eq!(busy, vec![tick, 2 * tick, 2 * tick, 2 * tick]);
        assert_eq!(left, 0.0);
        // The core is held for the piece: a second reply waits for a busy core.
        let held = cores.try_take().expect("a free core");
        let start = tokio::time::Instant::now();
        let waiting = RESUME_LEFT_US.scope(Cell::new(25.0), resume.after_reply());
        let freed = async {
            tokio::time::sleep(3 * tick).await;
            drop(held);
        };
        tokio::join!(waiting, freed);
        assert_eq!(start.elapsed(), 4 * tick, "waited 3 ticks for the core, held it 1");
    }

    /// Goal: the busy-machine factor applies only while another request is in flight (one
    /// user never has one), and not at all without the profile's factor.
    #[test]
    fn a_busy_machine_charges_the_busy_cost_factor_times_the_draw() {
        let text = model::profile::DEFAULT_PROFILE_TOML;
        let profile = Profile::from_toml_str(text, "default").unwrap();
        let plain = profile.backend_cpu.clone().unwrap();
        let busy = profile.with_busy_cost_factor(0.5).unwrap().backend_cpu.unwrap();
        let in_flight = InFlight::default();
        assert_eq!(charged_now(100.0, Some(&busy), &in_flight), 100.0, "idle");
        let mine = in_flight.enter();
        assert_eq!(charged_now(100.0, Some(&busy), &in_flight), 100.0, "only this request");
        let other = in_flight.enter();
        assert_eq!(charged_now(100.0, Some(&busy), &in_flight), 50.0, "another in flight");
        assert_eq!(charged_now(100.0, Some(&plain), &in_flight), 100.0, "no factor");
        assert_eq!(charged_now(100.0, None, &in_flight), 100.0, "no [cpu] table");
        drop(other);
        assert_eq!(charged_now(100.0, Some(&busy), &in_flight), 100.0, "alone again");
        drop(mine);
        assert!(!in_flight.others());
    }

    /// A profile without shared cores whose rules cost is exactly `checks × 1 µs`.
    fn exact_rules_profile() -> Arc<Profile> {
        let statements = super::super::profile::default_statements_toml();
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 1000.0], [1.0, 1000.0]]\n";
        Arc::new(Profile::from_toml_str(&format!("{statements}\n{cpu}"), "t").unwrap())
    }

    /// Goal: one rules sample per answer carrying Server-Timing, the sum of that request's
    /// evaluations (zero when it made none), as the real side reads the header's `rules`; an
    /// answer without the header records none; outside a request each evaluation records.
    #[tokio::test(start_paused = true)]
    async fn rules_are_recorded_once_per_answer_with_server_timing_summed() {
        use axum::routing::get;
        use backend_core::schedule::EvalStats;
        use rand::SeedableRng;
        use tower::ServiceExt;

        let histograms = Arc::new(Mutex::new(Histograms::default()));
        let charge = Arc::new(ChargeSleep {
            profile: exact_rules_profile(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(1)),
            histograms: Arc::clone(&histograms),
            cores: None,
            workers: None,
            in_flight: InFlight::default(),
        });
        fn evaluation(checks: u64) -> Work {
            Work::RulesEvaluation(EvalStats { rule_checks: checks, ..EvalStats::default() })
        }
        fn timed(body: &'static str) -> axum::response::Response {
            axum::response::Response::builder()
                .header("server-timing", "rules;dur=0")
                .body(axum::body::Body::from(body))
                .unwrap()
        }
        let (twice, once) = (Arc::clone(&charge), Arc::clone(&charge));
        let router = axum::Router::new()
            .route(
                "/twice",
                get(move || async move {
                    twice.charge(evaluation(40)).await;
                    twice.charge(evaluation(60)).await;
                    timed("two evaluations")
                }),
            )
            .route("/none", get(|| async { timed("no evaluation") }))
            .route(
                "/untimed",
                get(move || async move {
                    once.charge(evaluation(70)).await;
                    "no header"
                }),
            );
        let router = record_rules_per_request(router, Arc::clone(&histograms));
        for path in ["/twice", "/none", "/untimed"] {
            let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
        {
            let histograms = histograms.lock().unwrap();
            let rules = histograms.get(Metric::RulesEvaluation);
            assert_eq!(rules.len(), 2, "one per answer with Server-Timing");
            assert_eq!(rules.max(), 100, "40 + 60 µs, summed");
            assert_eq!(rules.min(), 1, "no evaluation: zero, recorded as the 1 µs floor");
            let by_status = histograms.by_status(Metric::RulesEvaluation);
            assert_eq!(by_status[&200].len(), 2, "split by the answer's status too");
        }
        charge.charge(evaluation(30)).await;
        let histograms = histograms.lock().unwrap();
        let rules = histograms.get(Metric::RulesEvaluation);
        assert_eq!(rules.len(), 3, "outside a request: one per evaluation");
    }

    #[tokio::test(start_paused = true)]
    async fn backend_work_queues_for_a_worker_thread_even_with_cores_free() {
        let pieces = [(0, 4), (0, 4), (1, 1)];
        let ms = |m: u128| m * TIME_SCALE as u128;
        // Two cores, no limit on threads: the first two share nothing, the third waits.
        let ends = run(&Cores::new(2), None, &pieces).await;
        assert_eq!(ends, [ms(4), ms(4), ms(5)]);
        // One worker thread: one piece at a time though two cores are there.
        let ends = run(&Cores::new(2), Some(1), &pieces).await;
        assert_eq!(ends, [ms(4), ms(8), ms(9)]);
        // Time-sliced cores: a preempted piece keeps its thread (the third still waits for
        // the second's thread, not for a slice).
        let sliced = Cores::with_quantum(1, Some(scaled(Duration::from_millis(1))));
        let ends = run(&sliced, Some(2), &pieces).await;
        assert_eq!(ends, [ms(7), ms(8), ms(9)]);
    }
}
