//! `model`: a deterministic, sans-IO PostgreSQL-semantics engine.
//!
//! The simulation runs this engine in place of PostgreSQL. A session submits a statement; the
//! statement completes (rows / command tag / error with SQLSTATE) or blocks. Blocked statements
//! complete when locks are released, or when virtual time advances past a deadlock check,
//! lock_timeout or statement_timeout. The engine has no threads, no wall clock and no
//! HashMap iteration order: the caller owns time and IO.
//!
//! This file is the crate root: the module list and the public API the rest of the workspace
//! codes against, re-exported from `api.rs` (values, results, errors, configuration) and
//! `engine.rs` (the [`Engine`] facade), so every `model::X` path is stable. Implementation
//! modules fill it in.
//!
//! LIFE OF A STATEMENT
//! 1. [`Engine::submit`] splits the string at top-level `;` (`sql::split_statements`).
//! 2. Control statements (BEGIN, COMMIT, SAVEPOINT, SET, …) are handled by the session layer
//!    (`session/`); everything else is parsed by sqlparser and planned once into a closed
//!    `Plan` (`sql/planner/`), resolving names against the catalog (`catalog.rs`).
//! 3. The session picks the snapshot (per statement at READ COMMITTED, at the first statement
//!    at REPEATABLE READ / SERIALIZABLE) and the executor (`executor/`) runs the plan over
//!    the MVCC heap (`mvcc.rs`), taking row and advisory locks (`locks.rs`), checking
//!    constraints, and reporting SIREAD reads and writes to SSI (`ssi.rs`).
//! 4. If a lock or another transaction is in the way, the statement's changes are undone and
//!    it blocks; it re-runs with the same snapshot when woken (commit, rollback, release) or
//!    fails when a timer fires (deadlock check in `deadlock.rs`, lock_timeout,
//!    statement_timeout).
//! 5. Errors abort the transaction at once (locks released); the outcome is a [`Response`]
//!    with PostgreSQL's SQLSTATE and message (`error.rs`).
//!
//! AROUND THE ENGINE (not part of its state machine): `io/` runs it behind a framed protocol
//! (server with seeded scheduling and service times, client, frames, trace) on any byte
//! stream; `profile.rs` holds the latency profiles the server draws service times from;
//! `spec/` runs PostgreSQL isolation-tester specs on the model and on PostgreSQL. Also
//! `plan_cache.rs` (statement text → plan) and `value.rs` (column types, text input and
//! output, range operators).

pub mod io;
pub mod profile;
pub mod spec;

pub mod catalog;
pub mod deadlock;
pub mod error;
pub mod executor;
pub mod locks;
pub mod mvcc;
pub mod plan_cache;
pub mod session;
pub mod sql;
pub mod ssi;
pub mod value;

mod api;
mod engine;

pub use api::{
    Completion, DEFAULT_EPOCH_US, EngineConfig, OpenTransaction, QueryResult, Range, Response,
    SessionId, SqlError, Step, Value, Warning, statement_kind,
};
pub use engine::Engine;
