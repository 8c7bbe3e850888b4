//! Parsed stored records, memoised by their text.
//!
//! WHAT: [`BodyCache`] maps the text of a stored record (the JSON `body` of a clinic, room,
//! doctor, patient or appointment type, and the `body` of a rule policy in its format) to the
//! parsed value, one [`Memo`] per entity kind. The snapshot reads still run every statement
//! and receive every body; only the parse of a text seen before is skipped.
//!
//! WHY: every allocation round of every booking reads the clinic, its rooms, the doctor, the
//! patient and the type, and parsing those bodies (rooms × rounds) was the largest single part
//! of backend-core's CPU per booking. The texts hardly ever change.
//!
//! CORRECTNESS does not depend on the cache: the key is the whole text, compared in full, and
//! the parsed value is a pure function of it, so a record changed in the database is a new key
//! and is parsed afresh; an unchanged text gives the value a parse would give. A text that
//! does not parse is not cached (the same error is produced again on the next read).
//!
//! BOUNDS: per kind at most [`BODY_CACHE_ENTRIES_MAX`] entries and
//! [`BODY_CACHE_TEXT_BYTES_MAX`] bytes of key text; a text longer than that is parsed but not
//! kept. Eviction is deterministic: the entries with the smallest texts (the `BTreeMap`'s
//! order) go first. No hash-map iteration order is involved anywhere.
//!
//! NOT MODELLED: least-recently-used eviction; concurrent misses of one text each parse (the
//! first insert is kept, the values are equal).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::{AppointmentType, Clinic, Doctor, Patient, Room};
use crate::rules::RuleSet;
// Defined next to its renderer in `metrics`; re-exported where it always was.
pub use crate::metrics::MemoCounts;

/// Most entries one memo (one entity kind) keeps.
pub const BODY_CACHE_ENTRIES_MAX: usize = 4096;
/// Most bytes of key text one memo keeps (the parsed values are of the same order).
pub const BODY_CACHE_TEXT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One memo per entity kind, so equal texts of different kinds never meet.
#[derive(Debug)]
pub struct BodyCache {
    pub clinics: Memo<Clinic>,
    pub rooms: Memo<Room>,
    pub doctors: Memo<Doctor>,
    pub patients: Memo<Patient>,
    pub appointment_types: Memo<AppointmentType>,
    /// Rule policies stored as TOML, as parsed from the text (before the row's version and
    /// clinic are applied).
    pub policies_toml: Memo<RuleSet>,
    /// Rule policies stored as JSON, likewise.
    pub policies_json: Memo<RuleSet>,
}

impl Default for BodyCache {
    fn default() -> Self {
        BodyCache::with_limits(BODY_CACHE_ENTRIES_MAX, BODY_CACHE_TEXT_BYTES_MAX)
    }
}

impl BodyCache {
    /// Every memo's hits and misses, in a fixed order of kinds.
    pub fn counts(&self) -> [MemoCounts; 7] {
        fn of<T>(kind: &'static str, memo: &Memo<T>) -> MemoCounts {
            MemoCounts { kind, hits: memo.hits(), misses: memo.misses() }
        }
        [
            of("clinic", &self.clinics),
            of("room", &self.rooms),
            of("doctor", &self.doctors),
            of("patient", &self.patients),
            of("appointment_type", &self.appointment_types),
            of("policy_toml", &self.policies_toml),
            of("policy_json", &self.policies_json),
        ]
    }

    /// A cache whose every memo keeps at most `entries_max` entries and `text_bytes_max`
    /// bytes of key text.
    pub fn with_limits(entries_max: usize, text_bytes_max: usize) -> Self {
        let (entries, bytes) = (entries_max, text_bytes_max);
        BodyCache {
            clinics: Memo::new(entries, bytes),
            rooms: Memo::new(entries, bytes),
            doctors: Memo::new(entries, bytes),
            patients: Memo::new(entries, bytes),
            appointment_types: Memo::new(entries, bytes),
            policies_toml: Memo::new(entries, bytes),
            policies_json: Memo::new(entries, bytes),
        }
    }
}

/// Parsed values keyed by their full source text.
#[derive(Debug)]
pub struct Memo<T> {
    inner: Mutex<MemoInner<T>>,
    entries_max: usize,
    text_bytes_max: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct MemoInner<T> {
    /// A `BTreeMap` so eviction order is deterministic.
    entries: BTreeMap<Box<str>, Arc<T>>,
    /// Sum of the key lengths.
    text_bytes: usize,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo::new(BODY_CACHE_ENTRIES_MAX, BODY_CACHE_TEXT_BYTES_MAX)
    }
}

impl<T> Memo<T> {
    pub fn new(entries_max: usize, text_bytes_max: usize) -> Self {
        assert!(entries_max > 0, "a memo must hold at least one entry");
        Memo {
            inner: Mutex::new(MemoInner { entries: BTreeMap::new(), text_bytes: 0 }),
            entries_max,
            text_bytes_max,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The value parsed from `text`: from the memo when this exact text was parsed before,
    /// else `parse(text)` (kept when it succeeds). The lock is not held while parsing.
    pub fn get_or_parse<E>(
        &self,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let found = self.lock().entries.get(text).cloned();
        if let Some(value) = found {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(value);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = Arc::new(parse(text)?);
        self.insert(text, Arc::clone(&value));
        Ok(value)
    }

    fn insert(&self, text: &str, value: Arc<T>) {
        if text.len() > self.text_bytes_max {
            return;
        }
        let mut inner = self.lock();
        if inner.entries.contains_key(text) {
            return;
        }
        while inner.entries.len() >= self.entries_max
            || inner.text_bytes + text.len() > self.text_bytes_max
        {
            let (evicted, _) = inner.entries.pop_first().expect("over a limit means not empty");
            inner.text_bytes -= evicted.len();
        }
        inner.text_bytes += text.len();
        inner.entries.insert(text.into(), value);
        assert!(inner.entries.len() <= self.entries_max, "memo over its entry limit");
        assert!(inner.text_bytes <= self.text_bytes_max, "memo over its byte limit");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoInner<T>> {
        self.inner.lock().expect("body cache mutex poisoned")
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of key text kept now.
    pub fn text_bytes(&self) -> usize {
        self.lock().text_bytes
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn parse_len(parses: &Cell<u32>) -> impl Fn(&str) -> Result<usize, String> + '_ {
        move |text| {
            parses.set(parses.get() + 1);
            if text.starts_with('!') { Err(format!("bad {text}")) } else { Ok(text.len()) }
        }
    }

    #[test]
    fn the_same_text_hits_and_skips_the_parse() {
        let memo = Memo::new(8, 1024);
        let parses = Cell::new(0);
        let first = memo.get_or_parse("{\"a\":1}", parse_len(&parses)).unwrap();
        let second = memo.get_or_parse("{\"a\":1}", parse_len(&parses)).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!((parses.get(), memo.hits(), memo.misses(), memo.len()), (1, 1, 1, 1));
    }

    #[test]
    fn counts_name_each_memo_by_its_kind() {
        let cache = BodyCache::with_limits(8, 1024);
        let policy = |_: &str| Ok::<_, String>(RuleSet::catalogue_defaults(1));
        cache.policies_json.get_or_parse("{}", policy).unwrap();
        cache.policies_json.get_or_parse("{}", policy).unwrap();
        let bad = |_: &str| Err::<Room, _>("not a room");
        assert!(cache.rooms.get_or_parse("!", bad).is_err());
        let counts = cache.counts();
        let kinds: Vec<&str> = counts.iter().map(|c| c.kind).collect();
        let expected = ["clinic", "room", "doctor", "patient", "appointment_type"];
        assert_eq!(kinds[..5], expected);
        assert_eq!(kinds[5..], ["policy_toml", "policy_json"]);
        let of = |kind: &str| counts.iter().find(|c| c.kind == kind).map(|c| (c.hits, c.misses));
        assert_eq!(of("policy_json"), Some((1, 1)));
        assert_eq!(of("room"), Some((0, 1)));
        let untouched = ["clinic", "doctor", "patient", "appointment_type", "policy_toml"];
        assert!(untouched.iter().all(|kind| of(kind) == Some((0, 0))), "{counts:?}");
    }

    #[test]
    fn a_changed_text_is_a_miss_and_parsed_afresh() {
        let memo = Memo::new(8, 1024);
        let parses = Cell::new(0);
        assert_eq!(*memo.get_or_parse("abc", parse_len(&parses)).unwrap(), 3);
        // Same length, other text: must not be mistaken for the first one.
        assert_eq!(*memo.get_or_parse("abd", parse_len(&parses)).unwrap(), 3);
        assert_eq!(*memo.get_or_parse("abcd", parse_len(&parses)).unwrap(), 4);
        assert_eq!((parses.get(), memo.hits(), memo.misses()), (3, 0, 3));
    }

    #[test]
    fn parse_errors_are_returned_every_time_and_not_kept() {
        let memo = Memo::new(8, 1024);
        let parses = Cell::new(0);
        for _ in 0..2 {
            let error = memo.get_or_parse("!x", parse_len(&parses)).unwrap_err();
            assert_eq!(error, "bad !x");
        }
        assert_eq!((parses.get(), memo.len()), (2, 0));
    }

    #[test]
    fn entry_and_byte_bounds_are_respected_with_deterministic_eviction() {
        let memo = Memo::new(3, 1024);
        let parses = Cell::new(0);
        for text in ["d", "b", "a", "c"] {
            memo.get_or_parse(text, parse_len(&parses)).unwrap();
        }
        assert_eq!(memo.len(), 3);
        // The smallest text ("a") was evicted when "c" came in.
        memo.get_or_parse("a", parse_len(&parses)).unwrap();
        assert_eq!(parses.get(), 5, "evicted text parsed again");
        memo.get_or_parse("d", parse_len(&parses)).unwrap();
        assert_eq!(parses.get(), 5, "d kept");

        let memo = Memo::new(100, 10);
        let parses = Cell::new(0);
        memo.get_or_parse("aaaa", parse_len(&parses)).unwrap();
        memo.get_or_parse("bbbb", parse_len(&parses)).unwrap();
        memo.get_or_parse("cccc", parse_len(&parses)).unwrap();
        assert_eq!((memo.len(), memo.text_bytes()), (2, 8), "aaaa evicted for the byte bound");
        let long = "x".repeat(11);
        assert_eq!(*memo.get_or_parse(&long, parse_len(&parses)).unwrap(), 11);
        assert_eq!((memo.len(), memo.text_bytes()), (2, 8), "a text over the bound is not kept");
    }
}
