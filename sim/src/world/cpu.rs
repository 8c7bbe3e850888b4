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

use std::sync::{Arc, Mutex};

use backend_core::booking::work::{Work, WorkCharge};
use backend_core::db::BoxFuture;
use model::io::Cores;
use rand_chacha::ChaCha8Rng;

use crate::histograms::{Histograms, Metric};
use crate::timescale::{RESOLUTION_US, scaled_us};

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
/// is recorded in the rules-evaluation histogram at µs precision — what the real backend's
/// Server-Timing measures. Contention: the charge waits for a shared core when there are any;
/// the cost itself does not grow with load.
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
}

impl WorkCharge for ChargeSleep {
    fn charge(&self, work: Work) -> BoxFuture<'static, ()> {
        let cost_us = CostModel::cost_us(
            &work,
            self.profile.backend_cpu.as_ref(),
            &mut self.rng.lock().expect("rng"),
        );
        if matches!(work, Work::RulesEvaluation(_)) {
            let exact_us = cost_us.round() as u64;
            self.histograms.lock().expect("histograms").record(Metric::RulesEvaluation, exact_us);
        }
        let sleep_us = CostModel::sleep_us(cost_us);
        Box::pin(spend_cpu(self.cores.clone(), sleep_us))
    }
}

/// Spends `sleep_us` of modelled CPU: on a shared core when there are shared cores.
async fn spend_cpu(cores: Option<Arc<Cores>>, sleep_us: u64) {
    if sleep_us == 0 {
        return;
    }
    match cores {
        Some(cores) => cores.hold(scaled_us(sleep_us)).await,
        None => tokio::time::sleep(scaled_us(sleep_us)).await,
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
}

impl RequestCpu {
    pub(super) fn layer(self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let cost = self.profile.backend_cpu.as_ref().and_then(|backend| {
                    backend.sample_request_us(&mut *self.rng.lock().expect("rng"))
                });
                let offpath_us = self.profile.backend_cpu.as_ref().and_then(BackendCpu::offpath_us);
                let cores = self.cores.clone();
                async move {
                    if let Some(cost_us) = cost {
                        let cost_us = (cost_us - HTTP_TRANSPORT_US as f64).max(0.0);
                        spend_cpu(cores.clone(), CostModel::sleep_us(cost_us)).await;
                    }
                    let response = next.run(request).await;
                    if let (Some(us), Some(cores)) = (offpath_us, cores) {
                        // Off the request's path: its answer does not wait for it.
                        tokio::spawn(spend_cpu(Some(cores), CostModel::sleep_us(us)));
                    }
                    response
                }
            },
        ))
    }
}

/// The cores the database and the backend share, when the profile models one machine.
pub fn shared_cores(profile: &Profile) -> Option<Arc<Cores>> {
    let backend = profile.backend_cpu.as_ref()?;
    let cores = backend.shared_cores()?;
    Some(Cores::with_quantum(cores as usize, backend.quantum_us().map(scaled_us)))
}

/// What the backend's CPU costs are drawn from and spent on.
pub struct Machine {
    pub profile: Arc<Profile>,
    /// Shared with the db host (`[cpu] cores`), or `None`: the backend's CPU is its own.
    pub cores: Option<Arc<Cores>>,
}
