//! One test binary for all of tests/*.rs (Cargo.toml: autotests = false): declare each file here.

mod support;

mod check_replay;
mod cli_input;
mod deploy_files;
mod determinism;
mod ecosystem;
mod profile;
mod run_html;
mod shrink;
