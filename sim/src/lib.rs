//! `sim`: the roomsim deterministic simulation.
//!
//! A run is a pure function of (scenario, strategy, seed): a turmoil world with a clients
//! host, the backend and the database, a seeded workload, timed faults, and invariants checked
//! from the database side at the end. `explore` runs many seeds; reports render the clinic
//! plan's text format or JSON; `merge` combines sharded explore outputs.
//!
//! Modules: `seeds` (one master seed → streams), `timescale` (50 µs resolution),
//! `trace` (trace-hash, interleaving signature), `histograms`, `pool` (bounded pool in
//! virtual time), `erlang` (M/M/c oracle), `net` (HTTP over turmoil TCP), `workload`,
//! `world`, `invariants`, `outcome`, `report`, `explore`, `cli`, `exit`, `error`, and
//! `stand_in` (the stand-in backend used until backend-core and the model land).

pub mod check;
pub mod cli;
pub mod client_faults;
pub mod clinic;
pub mod erlang;
pub mod error;
pub mod exit;
pub mod explore;
pub mod histograms;
pub mod ids;
pub mod invariants;
pub mod live;
pub mod model_db;
pub mod net;
pub mod observations;
pub mod outcome;
pub mod pool;
pub mod real;
pub mod regression;
pub mod report;
pub mod seeds;
pub mod stand_in;
pub mod timescale;
pub mod topology;
pub mod trace;
pub mod workload;
pub mod world;

pub use error::SimError;
