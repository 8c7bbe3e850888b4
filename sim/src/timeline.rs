//! What a run's picture (`run_html`) reads: the final appointment rows and every statement the
//! database servers executed, in modelled time.
//!
//! WHY: the trace hash covers the statements as text only; the picture needs them structured
//! (session, kind, outcome, when) and the rows the invariants read. Both exist at the end of
//! every model run already; they are KEPT only when the run keeps its trace (`--trace`,
//! `--html`), so explore's memory stays flat and nothing that is hashed changes.
//!
//! NOT MODELLED: how long a statement ran. The model's server records when a statement
//! executed (and when a blocked one completed), not when its reply left, so the swimlane
//! draws a statement as a mark at its execution time and a lock wait as the span from
//! `blocked` to `completed`.

use crate::observations::Appointment;

/// One statement event of the database's trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementEvent {
    /// Modelled time (µs) it executed (or, for a `completed …` outcome, completed).
    pub at_us: u64,
    /// Which database server (0, then 1 after a db crash and restart …).
    pub server: usize,
    pub session: u32,
    /// `begin`, `select`, `insert`, `commit` … (the model's statement kind).
    pub kind: &'static str,
    /// The statement with its literals hidden (the model's fingerprint).
    pub fingerprint: String,
    /// `ok`, a SQLSTATE, `blocked`, or `completed ok` / `completed 40P01` ….
    pub outcome: String,
}

/// A run's picture data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The final appointment rows (active and not), as the invariants read them.
    pub rows: Vec<Appointment>,
    /// Every statement event in the order each server recorded it (servers in start order).
    pub statements: Vec<StatementEvent>,
    /// (modelled µs, what) of every 40P01 the backend received.
    pub deadlocks: Vec<(u64, String)>,
    /// `rows[i]` as an INSERT with every column's value (`world::engine::appointment_inserts`).
    pub row_inserts: Vec<(String, Vec<backend_core::db::SqlValue>)>,
}
