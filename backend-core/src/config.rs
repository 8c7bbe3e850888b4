//! Backend configuration: strategy, retry budget and the explicit limits on input and work.
//!
//! WHAT: [`ApiConfig`] is plain data passed into `http::ApiContext`; nothing is read from the
//! environment here (the `roomsim` binary and the simulation build it from their own flags).
//!
//! WHY: every loop and every input has a named bound (`noun_unit_max`), so a hostile or
//! mistaken client cannot make one request do unbounded work.

use crate::allocator::AllocatorConfig;
use crate::booking::Strategy;
// Defined with the retry loop it bounds (`booking::retry`); re-exported where it always was.
pub use crate::booking::retry::RetryPolicy;

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
