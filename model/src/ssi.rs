//! SERIALIZABLE as Serializable Snapshot Isolation, after PostgreSQL's predicate.c.
//!
//! SSI RW-ANTIDEPENDENCIES
//! Only SERIALIZABLE transactions are tracked. Each holds SIREAD locks on the relations it
//! read (relation granularity: what PostgreSQL does for a sequential scan, the usual case
//! on small test tables) and records the relations it wrote. An rw-antidependency R → W
//! exists when R read a relation that a concurrent W wrote, without seeing the write:
//! detected when W writes after R's read (W hits R's SIREAD lock), or when R reads after
//! W's still-invisible write.
//!
//! ```text
//!   Tin --rw--> Tpivot --rw--> Tout      dangerous when Tout commits first
//! ```
//!
//! WHO FAILS
//! [`Ssi::flag_conflict`] copies `OnConflict_CheckForSerializationFailure`: if the new edge
//! completes a dangerous structure and the current statement is the writer, it fails
//! ("Canceled on identification as a pivot, during write."); if the writer already
//! committed, the reader fails ("… conflict out to pivot N, during read."); otherwise the
//! writer is marked doomed and fails at commit ("… during commit attempt."). [`Ssi::pre_commit`]
//! copies `PreCommit_CheckForSerializationFailure`: a committing Tout dooms every
//! uncommitted pivot that has it as out-conflict and an in-conflict from itself or from an
//! uncommitted, non-read-only, non-doomed transaction.
//!
//! READ ONLY
//! A read-only Tin makes the structure dangerous only if Tout committed before Tin's
//! snapshot. SERIALIZABLE READ ONLY DEFERRABLE waits for a snapshot taken when no
//! read-write serializable transaction is running (a simplification of "safe snapshot").
//!
//! NOT MODELLED
//! Tuple- and page-level SIREAD locks and their promotion, summarised conflicts, prepared
//! transactions, the "old committed transaction" cases. Records of committed transactions
//! are dropped once no serializable transaction is running.

use crate::error::Error;
use crate::mvcc::{CommitSeq, TxnId};
use std::collections::{BTreeMap, BTreeSet};

/// Limit on tracked serializable transactions (active plus retained committed ones).
pub const SXACTS_MAX: usize = 1 << 16;

/// A serializable transaction's SSI state.
#[derive(Clone, Debug, Default)]
pub struct Sxact {
    pub read_only: bool,
    pub snapshot_seq: CommitSeq,
    pub commit_seq: Option<CommitSeq>,
    pub doomed: bool,
    pub reads: BTreeSet<String>,
    pub writes: BTreeSet<String>,
    /// Transactions with an rw-edge into this one (they read what this one wrote).
    pub in_conflicts: BTreeSet<TxnId>,
    /// Transactions this one has an rw-edge to (this one read what they wrote).
    pub out_conflicts: BTreeSet<TxnId>,
}

/// The SSI tracker. BTreeMap/BTreeSet for determinism of the doom order.
#[derive(Clone, Debug, Default)]
pub struct Ssi {
    pub sxacts: BTreeMap<TxnId, Sxact>,
}

impl Ssi {
    /// Registers a serializable transaction when it takes its snapshot.
    pub fn register(&mut self, txn: TxnId, read_only: bool, snapshot_seq: CommitSeq) {
        assert!(self.sxacts.len() < SXACTS_MAX, "too many tracked serializable transactions");
        self.sxacts.insert(txn, Sxact { read_only, snapshot_seq, ..Sxact::default() });
    }

    fn concurrent(a: &Sxact, b: &Sxact) -> bool {
        a.commit_seq.is_none_or(|c| c > b.snapshot_seq)
            && b.commit_seq.is_none_or(|c| c > a.snapshot_seq)
    }

    /// Whether any read-write serializable transaction is still running.
    pub fn has_active_writer(&self) -> bool {
        self.sxacts.values().any(|s| s.commit_seq.is_none() && !s.read_only)
    }

    /// `me` read `table`: take the SIREAD lock and add edges to concurrent writers whose
    /// writes it cannot see.
    pub fn on_read(&mut self, me: TxnId, table: &str) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        mine.reads.insert(table.to_string());
        for writer in self.concurrent_on(me, table, true) {
            self.flag_conflict(me, writer, me)?;
        }
        Ok(())
    }

    /// `me` wrote `table`: add edges from concurrent readers holding SIREAD locks on it.
    pub fn on_write(&mut self, me: TxnId, table: &str) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get_mut(&me) else { return Ok(()) };
        mine.writes.insert(table.to_string());
        for reader in self.concurrent_on(me, table, false) {
            self.flag_conflict(reader, me, me)?;
        }
        Ok(())
    }

    /// Transactions concurrent with `me` that wrote (`writers`) or read `table`.
    fn concurrent_on(&self, me: TxnId, table: &str, writers: bool) -> Vec<TxnId> {
        let mine = &self.sxacts[&me];
        self.sxacts
            .iter()
            .filter(|(t, s)| {
                let touched = if writers { &s.writes } else { &s.reads };
                **t != me && touched.contains(table) && Self::concurrent(mine, s)
            })
            .map(|(t, _)| *t)
            .collect()
    }

    /// Whether `me` was marked to fail at its next check.
    pub fn is_doomed(&self, me: TxnId) -> bool {
        self.sxacts.get(&me).is_some_and(|s| s.doomed)
    }

    /// Whether `me` (serializable) had SIREAD-locked `table`.
    pub fn has_read(&self, me: TxnId, table: &str) -> bool {
        self.sxacts.get(&me).is_some_and(|s| s.reads.contains(table))
    }

    /// Adds reader → writer and applies OnConflict_CheckForSerializationFailure.
    fn flag_conflict(&mut self, reader: TxnId, writer: TxnId, me: TxnId) -> Result<(), Error> {
        if self.sxacts[&reader].doomed && reader != me {
            return Ok(());
        }
        if let Some(r) = self.sxacts.get_mut(&reader) {
            r.out_conflicts.insert(writer);
        }
        if let Some(w) = self.sxacts.get_mut(&writer) {
            w.in_conflicts.insert(reader);
        }
        if !self.dangerous(reader, writer) {
            return Ok(());
        }
        let writer_committed = self.sxacts[&writer].commit_seq.is_some();
        if writer == me {
            return Err(Error::rw_dependency(
                "Canceled on identification as a pivot, during write",
            ));
        }
        if writer_committed {
            return Err(Error::rw_dependency(format!(
                "Canceled on conflict out to pivot {writer}, during read"
            )));
        }
        self.sxacts.get_mut(&writer).expect("writer is tracked").doomed = true;
        Ok(())
    }

    /// The three conditions of OnConflict_CheckForSerializationFailure.
    fn dangerous(&self, reader: TxnId, writer: TxnId) -> bool {
        let r = &self.sxacts[&reader];
        let w = &self.sxacts[&writer];
        // R -> W -> T2, T2 committed first.
        for t2 in &w.out_conflicts {
            let Some(t2) = self.sxacts.get(t2) else { continue };
            let Some(t2_seq) = t2.commit_seq else { continue };
            let reader_ok = r.commit_seq.is_none_or(|c| t2_seq <= c);
            let writer_ok = w.commit_seq.is_none_or(|c| t2_seq <= c);
            let ro_ok = !r.read_only || t2_seq <= r.snapshot_seq;
            if reader_ok && writer_ok && ro_ok {
                return true;
            }
        }
        // T0 -> R -> W, W committed first.
        if let (Some(w_seq), false) = (w.commit_seq, r.read_only) {
            for t0 in &r.in_conflicts {
                let Some(t0) = self.sxacts.get(t0) else { continue };
                let t0_ok = t0.commit_seq.is_none_or(|c| c >= w_seq);
                let ro_ok = !t0.read_only || t0.snapshot_seq >= w_seq;
                if !t0.doomed && t0_ok && ro_ok {
                    return true;
                }
            }
        }
        false
    }

    /// PreCommit_CheckForSerializationFailure, then records the commit.
    pub fn pre_commit(&mut self, me: TxnId) -> Result<(), Error> {
        let Some(mine) = self.sxacts.get(&me) else { return Ok(()) };
        if mine.doomed {
            return Err(Error::rw_dependency(
                "Canceled on identification as a pivot, during commit attempt",
            ));
        }
        let mut doom = Vec::new();
        for pivot in &mine.in_conflicts {
            let Some(p) = self.sxacts.get(pivot) else { continue };
            if p.commit_seq.is_some() || p.doomed {
                continue;
            }
            let found = p.in_conflicts.iter().any(|tin| {
                *tin == me
                    || self
                        .sxacts
                        .get(tin)
                        .is_some_and(|t| t.commit_seq.is_none() && !t.read_only && !t.doomed)
            });
            if found {
                doom.push(*pivot);
            }
        }
        for p in doom {
            self.sxacts.get_mut(&p).expect("pivot is tracked").doomed = true;
        }
        Ok(())
    }

    /// Records a commit's sequence number.
    pub fn committed(&mut self, me: TxnId, seq: CommitSeq) {
        if let Some(s) = self.sxacts.get_mut(&me) {
            s.commit_seq = Some(seq);
        }
        self.cleanup();
    }

    /// Forgets an aborted transaction and its edges.
    pub fn aborted(&mut self, me: TxnId) {
        if self.sxacts.remove(&me).is_none() {
            return;
        }
        for s in self.sxacts.values_mut() {
            s.in_conflicts.remove(&me);
            s.out_conflicts.remove(&me);
        }
        self.cleanup();
    }

    /// Drops everything once no serializable transaction is running: no future transaction
    /// can be concurrent with a committed one then.
    fn cleanup(&mut self) {
        if self.sxacts.values().all(|s| s.commit_seq.is_some()) {
            self.sxacts.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write skew: both read, both write; the first commit dooms the second.
    #[test]
    fn write_skew_dooms_second_committer() {
        let mut s = Ssi::default();
        s.register(1, false, 0);
        s.register(2, false, 0);
        s.on_read(1, "t").unwrap();
        s.on_read(2, "t").unwrap();
        s.on_write(1, "t").unwrap();
        s.on_write(2, "t").unwrap();
        s.pre_commit(1).unwrap();
        s.committed(1, 1);
        let err = s.pre_commit(2).unwrap_err().into_sql_error();
        assert_eq!(err.code, "40001");
        assert!(err.detail.unwrap().contains("during commit attempt"));
    }

    /// Once the winner committed, the loser fails at its write ("during write").
    #[test]
    fn loser_fails_during_write_after_winner_commits() {
        let mut s = Ssi::default();
        s.register(1, false, 0);
        s.register(2, false, 0);
        s.on_read(1, "t").unwrap();
        s.on_read(2, "t").unwrap();
        s.on_write(2, "t").unwrap();
        s.pre_commit(2).unwrap();
        s.committed(2, 1);
        let err = s.on_write(1, "t").unwrap_err().into_sql_error();
        assert!(err.detail.unwrap().contains("during write"));
    }
}
