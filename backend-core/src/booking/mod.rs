//! Booking: strategies, their transactions, idempotency, snapshot reads and the CPU-cost hook.
//!
//! WHAT: [`strategy`] names the concurrency-control strategies; [`transaction`] holds their
//! statements and the bounded retry loop; [`idempotency`] fingerprints request bodies;
//! [`snapshot`] reads the policy (through the policy cache) and the allocator's input, parsing
//! stored bodies through [`body_cache`];
//! [`work`] is the hook through which the simulation charges CPU time. The HTTP layer
//! (`crate::http::appointments`) runs them in order: snapshot → allocator → transaction.

pub mod body_cache;
pub mod idempotency;
pub mod retry;
pub mod snapshot;
pub mod strategy;
pub mod transaction;
pub mod work;

pub use strategy::{Strategy, UnknownStrategy};
