//! The CPU-cost hook: lets the simulation charge virtual time for pure computation.
//!
//! WHAT: the booking service calls [`WorkCharge::charge`] after rules evaluation and after conflict
//! detection with the allocator's statistics. In production [`NoCharge`] does nothing (the
//! computation already took real time); the simulation implements it as a virtual-time sleep
//! from a CPU cost model, because under turmoil pure computation takes zero simulated time.

use crate::db::BoxFuture;
use crate::schedule::EvalStats;

/// A unit of pure work the backend just did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Rules evaluation over the clinic's rooms (`rooms_evaluated`, `rule_checks`).
    RulesEvaluation(EvalStats),
    /// Conflict detection over the rooms' interval lists (`intervals_examined`).
    ConflictDetection(EvalStats),
}

pub trait WorkCharge: Send + Sync {
    fn charge(&self, work: Work) -> BoxFuture<'static, ()>;
}

/// Production: no charge.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCharge;

impl WorkCharge for NoCharge {
    fn charge(&self, _work: Work) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}
