//! Backend configuration: strategy, retry budget and the explicit limits on input and work.
//!
//! WHAT: [`ApiConfig`] is plain data passed into `http::ApiContext`; nothing is read from the
//! environment here (the `roomsim` binary and the simulation build it from their own flags).
//!
//! WHY: every loop and every input has a named bound (`noun_unit_max`), so a hostile or
//! mistaken client cannot make one request do unbounded work.

use crate::allocator::AllocatorConfig;
use crate::booking::Strategy;

/// Retry budget for serialization failures (40001), deadlocks (40P01) and the races that are
/// resolved by re-running the whole transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; `attempts = retries_max + 1`.
    pub retries_max: u32,
    /// Backoff before retry n is uniform in `[0, min(cap, base · 2^(n-1))]` ms ("full jitter").
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for RetryPolicy {
    /// Ten retries: under SERIALIZABLE, 50 simultaneous bookings of one table abort each other
    /// until they have run one after another, and five retries left 7.8 % of the storm's
    /// bookings answered 5xx in the simulation (`explore --strategy serializable`, 100 seeds;
    /// 0.04 % with ten). `scenarios`' `[backend] db_retries_max` defaults to the same.
    fn default() -> Self {
        RetryPolicy { retries_max: 10, backoff_base_ms: 2, backoff_cap_ms: 50 }
    }
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub strategy: Strategy,
    pub retry: RetryPolicy,
    /// Ranked rooms a booking transaction tries before falling back (exclusion: one INSERT
    /// each; the locking strategies lock them all).
    pub candidates_max: usize,
    /// Re-allocations after a transaction found every candidate taken: each re-reads the
    /// snapshot, re-runs the allocator and, when the fresh snapshot still has feasible rooms,
    /// runs another transaction on its top `candidates_max`. When the last one also finds
    /// every candidate taken, one more fresh snapshot is read so the 409 / suggestions carry
    /// alternatives from the current state. So a request runs at most
    /// `reallocations_max + 1` transactions and reads at most `reallocations_max + 2`
    /// snapshots.
    pub reallocations_max: u32,
    /// The allocator's settings (alternatives per list, time-search step and bound).
    pub allocator: AllocatorConfig,
    /// Largest accepted request body.
    pub body_bytes_max: usize,
    /// Longest accepted Idempotency-Key (the IETF draft and Stripe use 255).
    pub idempotency_key_chars_max: usize,
    /// Widest `from..to` window of an availability query.
    pub availability_window_hours_max: i64,
    /// Rooms of one clinic the backend will load and evaluate.
    pub rooms_max: usize,
    /// Appointments of one clinic-day the backend will load.
    pub day_appointments_max: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            strategy: Strategy::default(),
            retry: RetryPolicy::default(),
            candidates_max: 3,
            reallocations_max: 8,
            allocator: AllocatorConfig::default(),
            body_bytes_max: 16 * 1024,
            idempotency_key_chars_max: 255,
            availability_window_hours_max: 7 * 24,
            rooms_max: 1_000,
            day_appointments_max: 100_000,
        }
    }
}
