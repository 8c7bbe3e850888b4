//! The PostgreSQL isolation-tester spec format: parser ([`parse`]), a runner generic over a
//! [`SpecBackend`] ([`runner`]) with the model ([`model_backend`]) and, with the `postgres`
//! feature, real PostgreSQL ([`pg`]) as backends, text/JSON output and diffs ([`output`]),
//! the `roomsim spec` command ([`cli`]), and a schedule generator ([`generate`]) with a
//! differential fuzzer against PostgreSQL ([`fuzz`]).

pub mod cli;
#[cfg(feature = "postgres")]
pub mod fuzz;
pub mod generate;
pub mod model_backend;
pub mod output;
pub mod parse;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod runner;

pub use cli::{Format, SpecArgs, SpecError, SpecVerdict, parse_file, run, run_cli, run_model};
pub use output::{diff, to_json_lines, to_text};
pub use parse::{ParseError, Spec, parse_spec};
pub use runner::{
    BackendError, Event, PermutationResult, SpecBackend, Started, StepResult, run_spec,
};
