//! Plan cache: statement text → its parsed control statement or planned [`Plan`].
//!
//! WHY
//! A client sends the same few statement texts thousands of times; tokenizing, parsing and
//! planning each again dominated the engine's cost. The cache is keyed by the exact text
//! (before the lock-strength rewrite), so a repeated statement skips sqlparser and the
//! planner. Parameters are not part of a plan: they stay bound per execution.
//!
//! CORRECTNESS
//! A plan depends only on its text and the catalog's schema. Every schema change bumps
//! [`crate::catalog::Catalog::schema_version`]; an entry planned under another version is a
//! miss. Only successes are cached (errors are re-derived, so their text never goes stale).
//!
//! EVICTION
//! At most [`PLANS_MAX`] entries. When full, the least recently used entry (by a use counter,
//! never by time) is evicted, ties impossible: deterministic for the same call sequence.
//! Cache hits never change results, so eviction order cannot reach output either way.

use crate::sql::Control;
use crate::sql::planner::Plan;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Limit on cached statement texts.
pub const PLANS_MAX: usize = 256;

/// A statement text, already parsed. A plan is shared (`Arc`): a cache hit and a blocked
/// statement's retry take a reference, never a deep copy of the plan's expression trees.
#[derive(Clone, Debug)]
pub enum Parsed {
    Control(Control),
    Plan(Arc<Plan>),
}

#[derive(Debug)]
struct Entry {
    parsed: Parsed,
    schema_version: u64,
    last_use: u64,
}

/// The cache. BTreeMap for determinism (eviction scans it).
#[derive(Debug, Default)]
pub struct PlanCache {
    entries: BTreeMap<String, Entry>,
    uses: u64,
    pub hits: u64,
    pub misses: u64,
}

impl PlanCache {
    /// The cached parse of `text`, if it was made under `schema_version` (control statements
    /// do not depend on the schema).
    pub fn get(&mut self, text: &str, schema_version: u64) -> Option<Parsed> {
        self.uses += 1;
        let uses = self.uses;
        let found = self.entries.get_mut(text).filter(|e| {
            matches!(e.parsed, Parsed::Control(_)) || e.schema_version == schema_version
        });
        match found {
            Some(e) => {
                e.last_use = uses;
                self.hits += 1;
                Some(e.parsed.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Remembers a successful parse of `text`, evicting the least recently used entry when
    /// full.
    pub fn put(&mut self, text: &str, schema_version: u64, parsed: Parsed) {
        if !self.entries.contains_key(text) && self.entries.len() >= PLANS_MAX {
            let oldest = self.entries.iter().min_by_key(|(_, e)| e.last_use).map(|(k, _)| k);
            let oldest = oldest.cloned().expect("a full cache has entries");
            self.entries.remove(&oldest);
        }
        let entry = Entry { parsed, schema_version, last_use: self.uses };
        self.entries.insert(text.to_string(), entry);
        assert!(self.entries.len() <= PLANS_MAX, "plan cache exceeds PLANS_MAX");
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(name: &str) -> Parsed {
        Parsed::Control(Control::Savepoint(name.into()))
    }

    /// A plan made under an older schema version is a miss; control statements are not.
    #[test]
    fn schema_version_invalidates_plans() {
        let mut c = PlanCache::default();
        let plan = Plan::Truncate(vec!["t".into()]);
        c.put("truncate t", 1, Parsed::Plan(Arc::new(plan)));
        c.put("savepoint a", 1, control("a"));
        assert!(c.get("truncate t", 1).is_some());
        assert!(c.get("truncate t", 2).is_none());
        assert!(c.get("savepoint a", 2).is_some());
        assert_eq!((c.hits, c.misses), (2, 1));
    }

    /// The size stays bounded and the least recently used entry goes first.
    #[test]
    fn evicts_least_recently_used() {
        let mut c = PlanCache::default();
        for i in 0..PLANS_MAX {
            c.put(&format!("savepoint s{i}"), 0, control("x"));
            c.get(&format!("savepoint s{i}"), 0);
        }
        assert!(c.get("savepoint s0", 0).is_some(), "s0 is now the most recent");
        c.put("savepoint new", 0, control("new"));
        assert_eq!(c.len(), PLANS_MAX);
        assert!(c.get("savepoint s0", 0).is_some());
        assert!(c.get("savepoint s1", 0).is_none(), "s1 was least recently used");
        assert!(c.get("savepoint new", 0).is_some());
    }
}
