//! One test binary for all of tests/*.rs (Cargo.toml: autotests = false): declare each file here.

mod allocator_outcomes;
mod allocator_props;
mod api_http;
mod api_realloc;
mod openapi;
mod pg_api;
mod pg_db;
mod pg_strategies;
mod rules_eval;
mod rules_parse;
mod serve_limits;
