//! Deadlock detection over the waits-for graph.
//!
//! WAITS-FOR GRAPH
//! Nodes are sessions. A blocked session has an edge to every session whose transaction (or
//! session-level advisory lock) it waits for: the holders of a conflicting row or advisory
//! lock, or the owner of the transaction whose end it awaits. The engine builds the edges;
//! this module only searches.
//!
//! TIMING (as PostgreSQL)
//! Each waiter runs the check once, deadlock_timeout after it began to wait. The first
//! waiter whose check fires while it is on a cycle is the victim; ties go to whoever began
//! waiting first. A cycle not through the checking session is left for its members' checks.
//!
//! NOT MODELLED
//! Soft edges (waiting behind a queued request) and queue rearrangement (deadlock-soft):
//! every edge is hard. A row waiter behind an earlier waiter of a conflicting mode has an
//! edge to that waiter, which holds the row's tuple lock or queues for it first
//! (`Engine::row_wait_targets`); PostgreSQL could rearrange the queued ones, the model does not.

use crate::SessionId;
use std::collections::{BTreeMap, BTreeSet};

/// Whether `start` lies on a cycle. Iterative DFS with an explicit stack bounded by the
/// number of nodes; returns the cycle (starting at `start`) if found.
pub fn find_cycle(
    start: SessionId,
    edges: &BTreeMap<SessionId, Vec<SessionId>>,
) -> Option<Vec<SessionId>> {
    let nodes_max = edges.len() + 1;
    let mut visited = BTreeSet::new();
    // Each frame: (node, index of the next edge to try).
    let mut stack: Vec<(SessionId, usize)> = vec![(start, 0)];
    visited.insert(start);
    while let Some((node, next)) = stack.last().copied() {
        assert!(stack.len() <= nodes_max, "DFS stack deeper than the node count");
        let out = edges.get(&node).map(Vec::as_slice).unwrap_or(&[]);
        if next >= out.len() {
            stack.pop();
            continue;
        }
        stack.last_mut().expect("stack is non-empty").1 += 1;
        let target = out[next];
        if target == start {
            return Some(stack.iter().map(|f| f.0).collect());
        }
        if visited.insert(target) {
            stack.push((target, 0));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-cycle and a three-cycle are found; a chain and a cycle elsewhere are not.
    #[test]
    fn finds_cycles_through_start_only() {
        let mut e = BTreeMap::new();
        e.insert(1, vec![2]);
        e.insert(2, vec![1]);
        assert_eq!(find_cycle(1, &e), Some(vec![1, 2]));
        let mut e = BTreeMap::new();
        e.insert(1, vec![2]);
        e.insert(2, vec![3]);
        e.insert(3, vec![2]);
        assert_eq!(find_cycle(1, &e), None);
        assert_eq!(find_cycle(2, &e), Some(vec![2, 3]));
        e.insert(3, vec![1]);
        assert_eq!(find_cycle(1, &e), Some(vec![1, 2, 3]));
    }
}
