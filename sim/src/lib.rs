//! `sim`: the roomsim deterministic simulation (a library).
//!
//! Two crates sit on top of it, never below: `real` (sim/real: the same backend on real
//! PostgreSQL, and `validate`, which runs this simulation beside it) and `roomsim`
//! (sim/roomsim: the binary — the one command line, the one set of exit codes, the one
//! error-to-exit mapping). Nothing here imports either.
//!
//! A run is a pure function of (scenario, strategy, seed): a turmoil world with a clients
//! host, the backend and the database, a seeded workload, timed faults, and invariants checked
//! from the database side at the end. `explore` runs many seeds; reports render the clinic
//! plan's text format or JSON; `merge` combines sharded explore outputs.
//!
//! Modules, one line each (the simulation, then its checks and reports, then the commands):
//! - `world` — one run: builds the turmoil world, runs the clients, drives faults, assembles
//!   the outcome (`world::{config, shared, hosts, engine, cpu, clients, driver, results}`).
//! - `topology` — the backend's port (a leaf).
//! - `seeds` — one master seed → independent random streams.
//! - `timescale` — the time-scale factor that gives modelled durations 25 µs resolution.
//! - `workload` — the bookings of a run and when they are sent.
//! - `client_faults` — clients that give up mid-request, and slow clients.
//! - `net` — HTTP over turmoil's simulated TCP.
//! - `pool` — a bounded connection pool in virtual time.
//! - `model_db` — backend-core's `Db` over the model server (the backend's pool, db drops).
//! - `clinic` — the scenario's clinic as backend-core domain values (what gets seeded).
//! - `ids` — deterministic ids for the clinic: names ↔ UUIDs.
//! - `trace` — the event trace of a run and its hash.
//! - `histograms` — latency histograms in modelled µs.
//! - `observations` — what a run observed: final rows, the clients' records, the db's events.
//! - `live` — the in-run invariant checks, stamped with when a violation became visible.
//! - `invariants` — the end-of-run invariant checks (authoritative).
//! - `outcome` — a run's counts, invariant results, violations and throughput.
//! - `report` — the text and JSON reports of a run or an explored seed range.
//! - `run_html` — `--html`: a self-contained page of a run (bookings, sessions, latencies) or
//!   of an explore (per-seed outcomes, failing seeds' replay commands).
//! - `svg` — inline SVG line charts and escaping, shared by every HTML report.
//! - `timeline` — what a run's picture reads: final rows and the db's statements (kept on request).
//! - `explore` — many seeds in parallel, independent of `--jobs`, and `merge` of shards.
//! - `patterns` — explore's coverage: the order of two competing bookings' key statements,
//!   the patterns `check` finds possible, seeds to see each.
//! - `erlang` — the M/M/c (Erlang-C) oracle for the pool model.
//! - `check` — `roomsim check`: systematic exploration of the booking path in a small scope.
//! - `compare` — two latency distributions quantile by quantile, with bands and a KS test.
//! - `regression` — `roomsim compare`: two reports side by side and a regression verdict.
//! - `error` — the crate's error type.

pub mod check;
pub mod client_faults;
pub mod clinic;
pub mod compare;
pub mod erlang;
pub mod error;
pub mod explore;
pub mod files;
pub mod histograms;
pub mod ids;
pub mod invariants;
pub mod live;
pub mod model_db;
pub mod net;
pub mod observations;
pub mod outcome;
pub mod patterns;
pub mod pool;
pub mod regression;
pub mod report;
pub mod run_html;
pub mod seeds;
pub mod svg;
pub mod timeline;
pub mod timescale;
pub mod topology;
pub mod trace;
pub mod workload;
pub mod world;

pub use error::SimError;
