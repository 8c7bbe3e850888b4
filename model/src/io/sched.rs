//! SCHEDULING: which ready statement the server runs next, when more are ready than cores
//! are free. Two policies ([`Scheduler`]), both seeded:
//!
//! - [`Scheduler::Pct`], for a server with its own executors (below).
//! - [`Scheduler::RandomOrder`], for a server that models a machine whose cores PostgreSQL
//!   shares with the backend (`ServerConfig::cores`): every pick is uniform over the ready
//!   statements, as a kernel's choice among runnable processes looks from outside. Measured
//!   against real PostgreSQL on the 2-core machine (`roomsim validate --concurrency 10,50`,
//!   2026-11-28), PCT's fixed per-session priorities let favoured sessions run their statements
//!   without waiting and pile the waits onto the others (conflict detection p95 at 10 users
//!   0.18 of real); a fresh random pick spreads the waits over every statement as the real
//!   host does (0.86 of real), and still finds every planted bug in the first seed or two.
//!
//! PCT
//! Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010): every session gets a
//! random priority above `depth` when it first shows up; `depth - 1` change points are drawn
//! uniformly in `[0, steps_estimate)`; the highest-priority ready session runs; at the i-th
//! change point the session just chosen drops to priority `depth - 1 - i`, below every fresh
//! session. Different seeds therefore give genuinely different interleavings, and a bug of
//! depth d is hit with probability at least 1/(n·k^(d-1)). Ties (impossible between distinct
//! random priorities, but cheap to settle) go to the lowest session id.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::SessionId;

/// The scheduling policy of a server (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheduler {
    #[default]
    Pct,
    RandomOrder,
}

/// A running [`Scheduler`].
pub enum Picker {
    Pct(Pct),
    RandomOrder(ChaCha8Rng),
}

impl Picker {
    /// `depth` and `steps_estimate` configure PCT only.
    pub fn new(scheduler: Scheduler, seed: u64, depth: u32, steps_estimate: u64) -> Picker {
        match scheduler {
            Scheduler::Pct => Picker::Pct(Pct::new(seed, depth, steps_estimate)),
            Scheduler::RandomOrder => Picker::RandomOrder(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// Picks the index (into `ready`) of the session to run next. `ready` must not be empty.
    pub fn pick(&mut self, ready: &[SessionId]) -> usize {
        assert!(!ready.is_empty(), "pick needs at least one ready session");
        match self {
            Picker::Pct(pct) => pct.pick(ready),
            Picker::RandomOrder(rng) => rng.random_range(0..ready.len()),
        }
    }

    /// Forgets a closed session.
    pub fn forget(&mut self, session: SessionId) {
        if let Picker::Pct(pct) = self {
            pct.forget(session);
        }
    }
}

pub struct Pct {
    rng: ChaCha8Rng,
    depth: u32,
    /// Priority per session; BTreeMap for determinism.
    priorities: BTreeMap<SessionId, u64>,
    /// Sorted scheduling-step numbers at which the chosen session's priority drops.
    change_points: Vec<u64>,
    steps: u64,
}

impl Pct {
    pub fn new(seed: u64, depth: u32, steps_estimate: u64) -> Pct {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut change_points: Vec<u64> =
            (1..depth.max(1)).map(|_| rng.random_range(0..steps_estimate.max(1))).collect();
        change_points.sort_unstable();
        Pct { rng, depth, priorities: BTreeMap::new(), change_points, steps: 0 }
    }

    /// Picks the index (into `ready`) of the session to run next. `ready` must not be empty.
    pub fn pick(&mut self, ready: &[SessionId]) -> usize {
        assert!(!ready.is_empty(), "pick needs at least one ready session");
        // Priorities are drawn on first sight in `ready` order, as before.
        let mut best = 0;
        let mut best_priority = self.priority(ready[0]);
        for (i, &session) in ready.iter().enumerate().skip(1) {
            let p = self.priority(session);
            if p > best_priority {
                best = i;
                best_priority = p;
            }
        }
        let chosen = ready[best];
        if let Some(i) = self.change_points.iter().position(|&c| c == self.steps) {
            let lowered = u64::from(self.depth.saturating_sub(1)).saturating_sub(i as u64);
            self.priorities.insert(chosen, lowered);
        }
        self.steps += 1;
        best
    }

    /// A session's priority, drawing a fresh one the first time it is seen.
    fn priority(&mut self, session: SessionId) -> u64 {
        let depth = u64::from(self.depth);
        let rng = &mut self.rng;
        *self.priorities.entry(session).or_insert_with(|| depth + u64::from(rng.random::<u32>()))
    }

    /// Forgets a closed session.
    pub fn forget(&mut self, session: SessionId) {
        self.priorities.remove(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(seed: u64) -> Vec<SessionId> {
        let mut pct = Pct::new(seed, 3, 20);
        let mut ready: Vec<SessionId> = (1..=8).collect();
        let mut out = Vec::new();
        while !ready.is_empty() {
            out.push(ready.remove(pct.pick(&ready)));
        }
        out
    }

    #[test]
    fn random_order_picks_every_ready_session_evenly_and_replays() {
        let picks = |seed: u64| -> Vec<usize> {
            let mut picker = Picker::new(Scheduler::RandomOrder, seed, 3, 20);
            (0..3_000).map(|_| picker.pick(&[7, 8, 9])).collect()
        };
        assert_eq!(picks(5), picks(5), "same seed, same picks");
        assert_ne!(picks(5), picks(6), "another seed, other picks");
        let mut counts = [0usize; 3];
        for i in picks(5) {
            counts[i] += 1;
        }
        // 1,000 expected each; binomial sd ≈ 26, so ±150 is beyond 5 sd.
        assert!(counts.iter().all(|&c| (850..=1_150).contains(&c)), "uneven picks {counts:?}");
        // PCT, by contrast, keeps picking the same favoured session (no change point here).
        let mut pct = Picker::new(Scheduler::Pct, 5, 1, 20);
        let first = pct.pick(&[7, 8, 9]);
        assert!((0..100).all(|_| pct.pick(&[7, 8, 9]) == first));
    }

    #[test]
    fn order_depends_on_seed_and_replays() {
        assert_eq!(order(1), order(1));
        let distinct: std::collections::BTreeSet<_> = (0..10).map(order).collect();
        assert!(distinct.len() >= 5, "only {} distinct orders from 10 seeds", distinct.len());
    }
}
