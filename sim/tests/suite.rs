//! One test binary for tests/*.rs, and server_logs.rs beside it (see Cargo.toml;
//! autotests = false): declare files here.

mod check;
mod client_faults;
mod connections;
mod erlang_c;
mod http_fuzz;
mod metrics_meaning;
mod patterns;
mod planted;
mod proptest_invariants;
mod snapshots;
mod timescale;
mod timeslice;
mod warm_policy;
