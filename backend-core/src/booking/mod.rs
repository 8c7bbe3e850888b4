//! Booking: load the clinic snapshot, run the allocator, then one strategy's transaction.
//!
//! WHAT: [`strategy`] names the concurrency-control strategies; [`transaction`] holds their
//! statements and the retry loop; [`idempotency`] hashes request bodies; [`service`] glues the
//! policy cache, the snapshot queries, the allocator and the transaction together for the HTTP
//! layer.

pub mod idempotency;
pub mod snapshot;
pub mod strategy;
pub mod transaction;
pub mod work;

pub use strategy::{Strategy, UnknownStrategy};
