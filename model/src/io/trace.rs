//! TRACE: what the server executed, in order — the interleaving signature of a run.
//!
//! One event per executed statement (outcome `ok`, a SQLSTATE, or `blocked`) and one per
//! completion of a blocked statement (`completed ok` / `completed 40P01` …). The SQL is kept
//! as a short FINGERPRINT (literals replaced by `?`, whitespace collapsed, 48 characters) so
//! traces stay small and compare across runs that differ only in data. The hash is FNV-1a
//! over the events' text form, stable across platforms and Rust versions.

use std::cell::RefCell;
use std::fmt;

use crate::SessionId;

/// Fingerprints are cut to this many characters.
pub const FINGERPRINT_CHARS_MAX: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Server time (tokio clock since start) when it happened.
    pub at_us: u64,
    pub session: SessionId,
    pub kind: &'static str,
    pub fingerprint: String,
    pub outcome: String,
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TraceEvent { at_us, session, kind, fingerprint, outcome } = self;
        write!(f, "{at_us} s{session} {kind} [{fingerprint}] {outcome}")
    }
}

#[derive(Default)]
pub struct Trace {
    events: RefCell<Vec<TraceEvent>>,
}

impl Trace {
    pub fn push(&self, event: TraceEvent) {
        self.events.borrow_mut().push(event);
    }

    pub fn events(&self) -> Vec<TraceEvent> {
        self.events.borrow().clone()
    }

    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for e in self.events.borrow().iter() {
            for b in e.to_string().bytes().chain(std::iter::once(b'\n')) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
}

/// `UPDATE t SET v = 42 WHERE id = 'x'` → `update t set v = ? where id = ?`.
pub fn fingerprint(sql: &str) -> String {
    let mut out = String::with_capacity(FINGERPRINT_CHARS_MAX + 4);
    let mut chars = sql.trim().chars().peekable();
    let mut last_space = false;
    while let Some(c) = chars.next() {
        // A string has at least as many bytes as chars: count chars only near the limit.
        if out.len() >= FINGERPRINT_CHARS_MAX && out.chars().count() >= FINGERPRINT_CHARS_MAX {
            break;
        }
        if c == '\'' {
            while let Some(d) = chars.next() {
                if d == '\'' && chars.peek() != Some(&'\'') {
                    break;
                }
                if d == '\'' {
                    chars.next();
                }
            }
            out.push('?');
        } else if c.is_ascii_digit()
            && !out.ends_with(|p: char| p.is_alphanumeric() || p == '_' || p == '$')
        {
            while chars.peek().is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                chars.next();
            }
            out.push('?');
        } else if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            continue;
        } else {
            out.push(c.to_ascii_lowercase());
        }
        last_space = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_hide_literals() {
        assert_eq!(
            fingerprint("UPDATE  t SET v = 42 WHERE id = 'it''s' AND t2 = $1"),
            "update t set v = ? where id = ? and t2 = $1"
        );
        assert!(fingerprint(&"x".repeat(200)).len() <= FINGERPRINT_CHARS_MAX);
    }
}
