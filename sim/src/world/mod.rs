//! The turmoil world of one run: hosts, workload, faults, and the checks during and after.
//!
//! ```text
//!  clients (1 host, one task per booker) ──HTTP/turmoil TCP──▶ backend ──pool──▶ db
//! ```
//! - `clients` runs every booker as a task on one host (turmoil's per-step cost grows with the
//!   host count); each booker keeps one HTTP/1.1 keep-alive connection, replaced when broken,
//!   or, with `--fresh-connections`, opens a fresh one per attempt (`net::Session`,
//!   `RunConfig::connections`).
//! - `backend` serves backend-core's `api_router` over a pool of model sessions
//!   (`hosts`, `model_db`); `db` runs the model engine's server (`model::io::Server`)
//!   on an engine owned by the run, so a db crash keeps committed data.
//!
//! The master seed gives turmoil's `rng_seed` and every other stream (see `seeds`); the epoch
//! is fixed at the scenario's clinic day. Every modelled duration is stretched by
//! `TIME_SCALE` (see `timescale`) and un-stretched before it is recorded.
//!
//! Faults are applied by the driver loop between `sim.step()` calls, at their modelled times:
//! message loss sets turmoil's link fail rate on clients↔backend or backend↔db (a failed send
//! breaks that TCP connection); a backend crash is `sim.crash` then `sim.bounce` (its pool
//! starts empty); a partition cuts backend↔db; a db crash aborts every open transaction
//! (`Engine::crash_restart`) and restarts the db host on the same engine.
//!
//! Invariants are checked twice: DURING the run where cheap (`live`: raw db errors at
//! response time, 40P01s as the backend receives them, overlapping 201s at the second 201's
//! arrival, each stamped with its modelled time), and AFTER it from the final database state
//! read on the database side (`invariants`), which stay authoritative.
//!
//! Not modelled: CPU time of the backend beyond its charged work (`cpu::CostModel`),
//! clock skew between hosts.
//!
//! One file per job; [`run`] below calls them in this order:
//! - `config` — [`RunConfig`] (what to run), the latency profile, the strategy names.
//! - `shared` — what the hosts, the clients, the driver and the results share during a run.
//! - `hosts` — registers the backend and db hosts, with `engine` (the
//!   model engine, migrated and seeded before the run, read after it) and `cpu` (the
//!   backend's modelled CPU).
//! - `clients` — the clients host: every booker, its requests and retries, reading answers.
//! - `driver` — steps the world, applying the scenario's faults on time, then settles it.
//! - `results` — the final rows, the invariants and the [`RunOutcome`](crate::outcome::RunOutcome).

pub(crate) mod clients;
mod config;
pub mod cpu;
mod driver;
pub mod engine;
pub mod hosts;
pub mod profile;
mod results;
mod shared;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use scenarios::{Scenario, parse_day_unix_s};

use crate::client_faults::ClientFaults;
use crate::error::SimError;
use crate::histograms::Histograms;
use crate::live::LiveChecker;
use crate::seeds::{Seeds, Stream};
use crate::timescale::{TICK, scaled_ms, scaled_us};
use crate::trace::Trace;
use crate::workload;

pub use crate::net::Connections;
pub use crate::topology::BACKEND_PORT;
pub use clients::CLIENT_BACKOFF_US;
pub use config::{RunConfig, check_strategy, default_profile, load_profile, strategies};
pub use driver::SETTLE_MS_MAX;
pub use profile::{
    BackendCpu, MachineSpeed, Profile, QUANTUM_US_CALIBRATED, SHARING_CALIBRATED, parse_sharing,
    sharing_name,
};
pub use results::{ConnectionCounts, RunResult};
use shared::Shared;

/// Runs one seed.
pub fn run(config: &RunConfig) -> Result<RunResult, SimError> {
    check_strategy(&config.strategy)?;
    let scenario = config.scenario.clone();
    let seeds = Seeds::new(config.seed);
    let plan = workload::plan(&scenario, &mut seeds.rng(Stream::Workload));
    let shared = Shared {
        trace: Trace::shared(config.keep_trace),
        histograms: Arc::new(Mutex::new(Histograms::default())),
        records: Rc::new(RefCell::new(vec![None; plan.len()])),
        live: Rc::new(RefCell::new(LiveChecker::default())),
        backend_listening: Rc::new(Cell::new(false)),
        open_at_end: RefCell::new(Vec::new()),
        client_faults: Rc::new(ClientFaults::new(&scenario, seeds.rng(Stream::ClientFaults))),
        connections_opened: Rc::new(Cell::new(0)),
        connections_accepted: Arc::default(),
        backend_metrics: Arc::default(),
    };
    let mut sim = build_sim(&scenario, &seeds);
    let side = hosts::add_model_hosts(&mut sim, config, &seeds, &shared)?;
    clients::add_clients(&mut sim, &scenario, plan.clone(), config.connections, &shared);
    driver::drive(&mut sim, &scenario, &shared, &side)?;
    let steps = (sim.elapsed().as_nanos() / TICK.as_nanos()) as u64;
    drop(sim);
    results::finish(config, &plan, shared, &side, steps)
}

/// The turmoil world every run steps, before any host is added (public for `benches/floor.rs`,
/// which steps it with idle hosts to measure turmoil's own cost per step).
pub fn build_sim(scenario: &Scenario, seeds: &Seeds) -> turmoil::Sim<'static> {
    let day_s = parse_day_unix_s(&scenario.clinic.day).expect("validated by the scenarios crate");
    let network = &scenario.network;
    turmoil::Builder::new()
        .rng_seed(seeds.u64(Stream::Turmoil))
        .epoch(UNIX_EPOCH + Duration::from_secs(day_s as u64))
        .tick_duration(TICK)
        .simulation_duration(scaled_ms(scenario.limits.simulation_ms_max))
        .min_message_latency(scaled_us(network.latency_us_min))
        .max_message_latency(scaled_us(network.latency_us_max))
        .enable_random_order()
        .build()
}
