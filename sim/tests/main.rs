//! One test binary for tests/*.rs but snapshots.rs (Cargo.toml: autotests = false): declare here.

mod check;
mod client_faults;
mod connections;
mod erlang_c;
mod http_fuzz;
mod metrics_meaning;
mod patterns;
mod planted;
mod proptest_invariants;
mod server_logs;
mod timescale;
mod timeslice;
mod warm_policy;
