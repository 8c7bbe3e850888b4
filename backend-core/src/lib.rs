//! The clinic room-assignment backend under test.
//!
//! MODULES, highest layer first: each module imports only modules listed below it.
//!
//! ```text
//! http        the HTTP API (axum): parsing, the answers as responses, Server-Timing, OpenAPI
//! seed        demo data written through the Conn seam
//! config      ApiConfig: strategy, retry budget, limits (re-exports booking's RetryPolicy)
//! booking     the booking use case (service: rounds, re-allocation, fallback), strategies,
//!             their transactions and retries, idempotency, snapshot reads, parsed-body cache,
//!             phase timing, the CPU-cost hook
//! allocator   ranks every room of a clinic for one request, decides the outcome
//! rules       rule sets as data, the catalogue, evaluation (hard and soft rules), scores
//! schedule    the allocator's input (ClinicSnapshot), per-room timelines, EvalStats, fixtures
//! metrics     counters and latency histograms for GET /metrics
//! error       the API's error type (problem+json codes)
//! db          the Conn/Db seam, PostgreSQL, the schema and its variants
//! domain      entities, requests, validation, clock and id sources
//! ```

pub mod allocator;
pub mod booking;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod rules;
pub mod schedule;
pub mod seed;
