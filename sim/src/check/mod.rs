//! `roomsim check`: systematic exploration of the real booking path for a small scope.
//!
//! WHAT: N bookings (1–4) of one slot in a clinic of R rooms (1–3), each sent through
//! backend-core's `api_router` with tower's `oneshot`, over a `Db` whose connections hand every
//! statement to a controlled scheduler (`scheduler.rs`). The scheduler owns one model engine
//! (sans-IO) and polls the booking futures on one thread; a step runs one session's pending
//! statement atomically. The search (`search.rs`) is depth-first over those choices with
//! replay from the start (as loom and shuttle do), optionally bounded by a CHESS-style
//! preemption budget, cut by sleep sets (pure reads commute) and by visited-state caching
//! (`scheduler::Visited`: a schedule that reaches a state explored before stops there; the
//! state is the engine's `fingerprint` plus each booking's history in its attempt). At the end
//! of each schedule the run's invariants (`crate::invariants`) are checked on the final engine
//! state and the answers.
//!
//! WHY: random seeds cannot show the absence of a race; for a small scope this enumerates
//! every interleaving of statements.
//!
//! Around the search: `scope.rs` (the bookings of a scope), `report.rs` (text and JSON, the
//! side-by-side counterexample), `spec_out.rs` (the counterexample as an isolation spec),
//! `shrink.rs` (from a failing run seed to the smallest reproduction).
//!
//! NOT MODELLED (yet): a canonical state (xids, row ids and heap slots handed out in another
//! order make another fingerprint: two bookings that write in either order never meet again
//! in the cache), independence beyond pure reads (a crash is never asleep), the choice of
//! which waiter's deadlock check fires first (virtual time advances only when every session
//! is blocked, or by the `Continue` choice beside crash options).

pub mod report;
pub mod scheduler;
pub mod scope;
pub mod search;
pub mod shrink;
pub mod spec_out;

pub use scope::Shape;
pub use search::{CheckConfig, CheckReport, Counterexample, run_check};
