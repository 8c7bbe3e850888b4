//! Per-request phase durations: what the booking service measures and the HTTP layer reports.
//!
//! WHAT: [`Timing`] sums the time a request spent in the three phases of `Server-Timing`
//! (rules evaluation, conflict detection, database), measured with `tokio::time::Instant`
//! (virtual time under turmoil). The booking service adds to it round by round; the HTTP
//! layer renders it as the `Server-Timing` header (`http::Timing::header_value`, defined
//! there) and records it into the latency histograms ([`Timing::record`]).

use std::time::Duration;

use crate::metrics::Metrics;

/// Per-request phase durations for the Server-Timing header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    pub rules: Duration,
    pub conflict: Duration,
    pub db: Duration,
}

impl Timing {
    /// Records the phases into the latency histograms (bookings and previews only).
    pub fn record(&self, metrics: &Metrics) {
        metrics.rules_latency.record(self.rules);
        metrics.conflict_latency.record(self.conflict);
        metrics.db_latency.record(self.db);
    }
}
