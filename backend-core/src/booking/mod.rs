//! Booking: the use case, strategies, their transactions, idempotency, snapshot reads and the
//! CPU-cost hook.
//!
//! WHAT: [`service`] is the booking use case (rounds of snapshot → allocator → decide →
//! transaction, the re-allocation budget, the all-taken fallback), returning an answer the
//! HTTP layer (`crate::http::appointments`) turns into a response; [`strategy`] names the
//! concurrency-control strategies (and the schema variant that tests each); [`transaction`]
//! holds their statements and the bounded retry loop, whose budget and backoff are in
//! [`retry`]; [`idempotency`] fingerprints request bodies; [`snapshot`] reads the policy
//! (through the policy cache) and the allocator's input, parsing stored bodies through
//! [`body_cache`]; [`timing`] sums the request's phases for `Server-Timing`; [`work`] is the
//! hook through which the simulation charges CPU time.

pub mod body_cache;
pub mod idempotency;
pub mod retry;
pub mod service;
pub mod snapshot;
pub mod strategy;
pub mod timing;
pub mod transaction;
pub mod work;

pub use strategy::{Strategy, UnknownStrategy};
