//! The policy cache: parsed rule sets keyed by (clinic, version).
//!
//! WHY
//!
//! Loading and parsing a clinic's rule set costs a database round trip plus a parse; the
//! version check is one cheap indexed `SELECT version`. The booking layer runs that query
//! (`booking::snapshot::load_policy`), then asks the cache for `(clinic, version)`: a hit skips the load, a miss calls the loader once
//! and stores the result. Because the key includes the version, a new policy version is simply
//! a miss; no invalidation message is needed for correctness.
//!
//! ```ignore
//! let version = current_policy_version(&mut conn, clinic_id).await?;
//! let load = || load_policy(&mut conn, clinic_id);
//! let rules = cache.get_or_load_async(clinic_id, version, load).await?;
//! ```
//!
//! COUNTERS
//!
//! `hits` and `misses` are `AtomicU64`s so `/metrics` can show that the cache reduces database
//! queries: loads performed = misses.
//!
//! NOT MODELLED
//!
//! Concurrent misses for the same key each run the loader (no single-flight); the last insert
//! wins and both results are equal. Eviction beyond `clinics_max` drops the lowest clinic id,
//! deterministically, rather than the least recently used.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::ruleset::RuleSet;

/// Default number of clinics whose policy is kept.
pub const POLICY_CACHE_CLINICS_MAX: usize = 1024;

/// A snapshot of the cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

#[derive(Debug)]
pub struct PolicyCache {
    /// One entry per clinic: the newest version seen. A BTreeMap for determinism of eviction.
    entries: Mutex<BTreeMap<Uuid, Arc<RuleSet>>>,
    clinics_max: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for PolicyCache {
    fn default() -> Self {
        PolicyCache::new(POLICY_CACHE_CLINICS_MAX)
    }
}

impl PolicyCache {
    pub fn new(clinics_max: usize) -> Self {
        assert!(clinics_max > 0, "a policy cache must hold at least one clinic");
        PolicyCache {
            entries: Mutex::new(BTreeMap::new()),
            clinics_max,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached set for `(clinic_id, version)`, counting a hit or a miss.
    pub fn lookup(&self, clinic_id: Uuid, version: u64) -> Option<Arc<RuleSet>> {
        let entries = self.entries.lock().expect("policy cache mutex poisoned");
        let found = entries.get(&clinic_id).filter(|rules| rules.version == version).cloned();
        drop(entries);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Forgets every cached set, as a restarted process starts (counters kept).
    pub fn clear(&self) {
        self.entries.lock().expect("policy cache mutex poisoned").clear();
    }

    /// Stores `rules` as the clinic's current policy (replacing older versions).
    pub fn insert(&self, clinic_id: Uuid, rules: RuleSet) -> Arc<RuleSet> {
        let rules = Arc::new(rules);
        let mut entries = self.entries.lock().expect("policy cache mutex poisoned");
        entries.insert(clinic_id, Arc::clone(&rules));
        while entries.len() > self.clinics_max {
            entries.pop_first();
        }
        assert!(entries.len() <= self.clinics_max, "policy cache over its limit");
        rules
    }

    /// Returns the cached set for `(clinic_id, version)`, or calls `load` once and caches it.
    /// A loader error is returned and nothing is cached.
    pub fn get_or_load<E>(
        &self,
        clinic_id: Uuid,
        version: u64,
        load: impl FnOnce() -> Result<RuleSet, E>,
    ) -> Result<Arc<RuleSet>, E> {
        if let Some(rules) = self.lookup(clinic_id, version) {
            return Ok(rules);
        }
        Ok(self.insert(clinic_id, load()?))
    }

    /// [`get_or_load`](Self::get_or_load) with an async loader (a database query). The cache
    /// lock is never held across the await.
    pub async fn get_or_load_async<E, F, Fut>(
        &self,
        clinic_id: Uuid,
        version: u64,
        load: F,
    ) -> Result<Arc<RuleSet>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RuleSet, E>>,
    {
        if let Some(rules) = self.lookup(clinic_id, version) {
            return Ok(rules);
        }
        Ok(self.insert(clinic_id, load().await?))
    }

    /// Drops the clinic's entry (e.g. after a policy update through this process).
    pub fn invalidate(&self, clinic_id: Uuid) {
        self.entries.lock().expect("policy cache mutex poisoned").remove(&clinic_id);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self.entries.lock().expect("policy cache mutex poisoned").len() as u64;
        CacheStats { hits: self.hits(), misses: self.misses(), entries }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn clinic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn second_lookup_of_same_version_hits_and_skips_the_loader() {
        let cache = PolicyCache::new(8);
        let loads = Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            Ok::<_, ()>(RuleSet::catalogue_defaults(3))
        };
        let first = cache.get_or_load(clinic(1), 3, load).unwrap();
        let second = cache.get_or_load(clinic(1), 3, load).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(loads.get(), 1);
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1, entries: 1 });
    }

    #[test]
    fn a_new_version_is_a_miss_and_replaces_the_entry() {
        let cache = PolicyCache::new(8);
        cache.get_or_load(clinic(1), 1, || Ok::<_, ()>(RuleSet::catalogue_defaults(1))).unwrap();
        let v2 = cache
            .get_or_load(clinic(1), 2, || Ok::<_, ()>(RuleSet::catalogue_defaults(2)))
            .unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!((cache.hits(), cache.misses()), (0, 2));
        assert!(cache.lookup(clinic(1), 1).is_none(), "old version must be gone");
    }

    #[test]
    fn async_loader_runs_only_on_a_miss() {
        let cache = PolicyCache::new(4);
        let loads = Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            async { Ok::<_, ()>(RuleSet::catalogue_defaults(9)) }
        };
        let run = |version| {
            futures::executor::block_on(cache.get_or_load_async(clinic(2), version, load))
        };
        assert_eq!(run(9).unwrap().version, 9);
        assert_eq!(run(9).unwrap().version, 9);
        assert_eq!(loads.get(), 1);
        let failed = futures::executor::block_on(
            cache.get_or_load_async(clinic(3), 1, || async { Err::<RuleSet, _>("timeout") }),
        );
        assert_eq!(failed.unwrap_err(), "timeout");
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 2, entries: 1 });
    }

    #[test]
    fn loader_errors_are_returned_and_not_cached_and_eviction_is_bounded() {
        let cache = PolicyCache::new(2);
        let err = cache.get_or_load(clinic(1), 1, || Err::<RuleSet, _>("db down"));
        assert_eq!(err.unwrap_err(), "db down");
        assert_eq!(cache.stats().entries, 0);
        for n in 1..=3 {
            cache.insert(clinic(n), RuleSet::catalogue_defaults(1));
        }
        assert_eq!(cache.stats().entries, 2);
        assert!(cache.lookup(clinic(1), 1).is_none(), "lowest clinic id evicted");
        assert!(cache.lookup(clinic(3), 1).is_some());
        cache.invalidate(clinic(3));
        assert!(cache.lookup(clinic(3), 1).is_none());
    }
}
