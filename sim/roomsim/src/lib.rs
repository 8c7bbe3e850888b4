//! `roomsim`: the binary's crate — the one command line over the simulation (`sim`), the
//! real-PostgreSQL side (`real`) and the model's spec runner (`model::spec`), with the one set
//! of exit codes and the one mapping from errors to them.
//!
//! - `cli` — parses the command line and dispatches each command to the crate that owns it.
//! - `exit` — the documented exit codes, the same for every command.
//! - `error` — the binary's error type ([`Error`]: the simulation's, the real side's or the
//!   spec runner's) and its exit code.
//!
//! `main.rs` is a thin bootstrap over [`cli::main_impl`].

pub mod cli;
pub mod error;
pub mod exit;

pub use error::Error;
