//! The event trace of one run and its stable hash.
//!
//! Every event that can differ between interleavings — a request sent or answered, a
//! statement executed on the db host (with its session and outcome), a fault applied, a
//! timeout — is appended in the order it happens, stamped with modelled time. The
//! `trace-hash` is SHA-256 over the canonical text of every event, in order (never std's
//! `DefaultHasher`, whose output is not stable across processes or Rust versions). Events are
//! only *kept* when `--trace` asks for them, so memory stays flat over many seeds.
//!
//! (Explore's coverage is not a hash of the trace: every seed of a busy scenario differs, so
//! such a count only ever equals the seeds run. It is the pair patterns of `crate::patterns`.)

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// One trace event, in modelled time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at_us: u64,
    /// Where it happened: `client`, `backend`, `db`, `driver`.
    pub source: &'static str,
    pub text: String,
}

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    hasher: Sha256,
    events_count: u64,
    kept: Option<Vec<Event>>,
}

/// A trace shared by every host of one run (all on one OS thread; the mutex is uncontended
/// and exists because backend-core's `Db` must be `Send + Sync`).
pub type SharedTrace = Arc<Mutex<Trace>>;

impl Trace {
    pub fn new(keep_events: bool) -> Trace {
        Trace { hasher: Sha256::new(), events_count: 0, kept: keep_events.then(Vec::new) }
    }

    pub fn shared(keep_events: bool) -> SharedTrace {
        Arc::new(Mutex::new(Trace::new(keep_events)))
    }

    /// Appends an event to the hash (and the kept list with `--trace`).
    pub fn record(&mut self, at_us: u64, source: &'static str, text: String) {
        // The bytes of the line `{at_us} {source} {text}\n`, hashed piecewise (no copy).
        let mut head = String::with_capacity(32);
        let _ = write!(head, "{at_us} {source} ");
        self.hasher.update(head.as_bytes());
        self.hasher.update(text.as_bytes());
        self.hasher.update(b"\n");
        self.events_count += 1;
        if let Some(kept) = &mut self.kept {
            kept.push(Event { at_us, source, text });
        }
    }

    pub fn events_count(&self) -> u64 {
        self.events_count
    }

    pub fn events(&self) -> &[Event] {
        self.kept.as_deref().unwrap_or(&[])
    }

    /// Hex SHA-256 of every event so far (first 16 bytes: 32 hex digits).
    pub fn hash_hex(&self) -> String {
        hex16(&self.hasher.clone().finalize())
    }
}

fn hex16(bytes: &[u8]) -> String {
    bytes[..16].iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Combines per-seed trace hashes in seed order into the `explore-hash`.
pub fn combine_hashes<'a>(
    hashes_in_seed_order: impl IntoIterator<Item = (u64, &'a str)>,
) -> String {
    let mut hasher = Sha256::new();
    for (seed, hash) in hashes_in_seed_order {
        hasher.update(format!("{seed}:{hash}\n").as_bytes());
    }
    hex16(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_event_and_order() {
        let mut a = Trace::new(false);
        let mut b = Trace::new(true);
        a.record(1, "db", "x".into());
        b.record(1, "db", "x".into());
        assert_eq!(a.hash_hex(), b.hash_hex());
        a.record(2, "db", "y".into());
        b.record(2, "db", "z".into());
        assert_ne!(a.hash_hex(), b.hash_hex());
        assert_eq!(b.events().len(), 2);
        assert!(a.events().is_empty(), "events are only kept on request");
        let mut c = Trace::new(false);
        c.record(2, "db", "y".into());
        c.record(1, "db", "x".into());
        let mut d = Trace::new(false);
        d.record(1, "db", "x".into());
        d.record(2, "db", "y".into());
        assert_ne!(c.hash_hex(), d.hash_hex());
        assert_eq!(d.hash_hex().len(), 32);
    }

    #[test]
    fn explore_hash_depends_on_seed_order() {
        let ab = combine_hashes([(1, "aa"), (2, "bb")]);
        let ba = combine_hashes([(2, "bb"), (1, "aa")]);
        assert_ne!(ab, ba);
        assert_eq!(ab, combine_hashes([(1, "aa"), (2, "bb")]));
    }
}
