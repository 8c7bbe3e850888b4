//! One test binary for all of tests/*.rs (Cargo.toml: autotests = false): declare each file here.

mod common;

mod booking_schema;
mod constraints;
mod deadlocks;
mod fingerprint;
mod fuzz;
mod hermitage;
mod io_fuzz;
mod io_server;
mod locking;
mod smoke;
mod spec_corpus;
mod spec_fuzz;
mod spec_generate_cli;
mod spec_parse;
mod spec_runner;
mod ssi;
