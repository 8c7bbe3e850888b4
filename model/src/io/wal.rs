//! WAL: the flush of the write-ahead log that every COMMIT of a writing transaction waits for
//! (issue #17).
//!
//! PostgreSQL makes a commit durable before anyone sees it: `RecordTransactionCommit` inserts
//! the commit record and `XLogFlush` waits until the log is on disk up to it; only then does
//! the transaction leave the ProcArray (visible to new snapshots) and release its locks (a
//! statement waiting on its xid, e.g. an INSERT held by an exclusion constraint, wakes). One
//! backend flushes at a time (`WALWriteLock`); a backend that gets the lock after waiting
//! finds its record already flushed when it was written before the last flush began, and
//! otherwise flushes everything written so far, its own and every waiter's: GROUP COMMIT. A
//! transaction that wrote nothing (no xid) does not flush, nor does a ROLLBACK.
//!
//! MODEL: one flusher per server. A commit asks for a flush with the duration its own draw
//! gives it (`LatencyProfile::commit_flush_share` of its COMMIT's draw, see
//! `super::server`). With no flush running, a flush starts at once with that duration;
//! otherwise the commit joins the NEXT flush, which starts when the running one ends, lasts
//! the duration of the first commit that joined it, and answers every commit that joined
//! before it started. So one user's commits each take their own draw (unchanged), and under
//! load commits queue behind the flush in progress as PostgreSQL's do behind `WALWriteLock`.
//! On a machine whose cores the server shares (`ServerConfig::cores`), the flusher then needs
//! a core for `server::WAL_FLUSH_CPU_US` (the backend returning from `fdatasync`; NOT
//! measured) before it answers, still holding the log: on a busy machine every queued commit
//! waits while the flusher waits for a core, the convoy PostgreSQL shows under load
//! (`pg_stat_wal` put the mean `fdatasync`, which includes that wait, at 0.26 ms at one user
//! and 0.70 ms at 10 and 50, sim/README.md "Session 25").
//!
//! Not modelled: the flush's time growing with the bytes it writes, `commit_delay`,
//! `synchronous_commit = off`, the WAL writer's background flushes.
//!
//! DETERMINISM: the flusher is one `spawn_local` task on the server's host; requests queue in
//! a channel in the order the host's tasks send them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::cores::{Cores, Group};

/// One flush request: the duration it asks for (simulated time) and where to say it is done.
type Request = (Duration, oneshot::Sender<()>);

/// The log's flusher; clones share it.
#[derive(Clone, Debug)]
pub struct Wal {
    requests: mpsc::UnboundedSender<Request>,
}

impl Wal {
    /// Starts the flusher task. Must run inside a `LocalSet` (every turmoil host does).
    /// With `cpu`, the flusher holds one of those cores for that long after each flush's I/O
    /// before it answers (the backend returning from `fdatasync`), still holding the log: on
    /// a busy machine the whole queue waits while it waits for a core.
    pub fn start(cpu: Option<(Arc<Cores>, Duration)>) -> Wal {
        let (requests, rx) = mpsc::unbounded_channel();
        tokio::task::spawn_local(flusher(rx, cpu));
        Wal { requests }
    }

    /// Waits until a flush that began after this call has ended: at once if none is running
    /// (lasting `duration`), else the next one (lasting its first member's duration).
    pub async fn flush(&self, duration: Duration) {
        let (done, flushed) = oneshot::channel();
        if self.requests.send((duration, done)).is_err() {
            return; // The flusher is gone with its host: nothing to wait for.
        }
        let _ = flushed.await;
    }
}

/// Flushes in batches: the first waiting request starts a flush of its duration, with every
/// request already queued at that instant; requests arriving during it form the next batch.
async fn flusher(mut rx: mpsc::UnboundedReceiver<Request>, cpu: Option<(Arc<Cores>, Duration)>) {
    while let Some((duration, first)) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok((_, more)) = rx.try_recv() {
            batch.push(more);
        }
        tokio::time::sleep(duration).await;
        if let Some((cores, cpu_time)) = &cpu {
            cores.hold(Group::Database, *cpu_time).await;
        }
        for done in batch {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::time::Instant;

    use super::*;

    /// (start offset, duration) → each request's finish offset, in ms (tokio's timer
    /// resolution; the simulation scales its µs up the same way).
    fn finish_times(requests: &[(u64, u64)]) -> Vec<u64> {
        finish_times_on(requests, None)
    }

    /// [`finish_times`] with a flusher that needs `cpu_ms` on one core after each flush,
    /// while other work holds that core from 0 to `busy_ms`.
    fn finish_times_on(requests: &[(u64, u64)], cpu: Option<(u64, u64)>) -> Vec<u64> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        let local = tokio::task::LocalSet::new();
        let done = Rc::new(RefCell::new(vec![0; requests.len()]));
        let sink = done.clone();
        let requests = requests.to_vec();
        local.block_on(&runtime.unwrap(), async move {
            let start = Instant::now();
            let wal = match cpu {
                None => Wal::start(None),
                Some((cpu_ms, busy_ms)) => {
                    let cores = Cores::new(1);
                    let busy = Arc::clone(&cores);
                    tokio::task::spawn_local(async move {
                        busy.hold(Group::Service, Duration::from_millis(busy_ms)).await;
                    });
                    Wal::start(Some((cores, Duration::from_millis(cpu_ms))))
                }
            };
            let mut tasks = Vec::new();
            for (i, (at_ms, duration_ms)) in requests.into_iter().enumerate() {
                let (wal, sink) = (wal.clone(), sink.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    tokio::time::sleep_until(start + Duration::from_millis(at_ms)).await;
                    wal.flush(Duration::from_millis(duration_ms)).await;
                    sink.borrow_mut()[i] = start.elapsed().as_millis() as u64;
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
        done.borrow().clone()
    }

    #[test]
    fn a_lone_commit_takes_its_own_flush() {
        assert_eq!(finish_times(&[(0, 300)]), [300]);
        assert_eq!(finish_times(&[(0, 300), (1_000, 200)]), [300, 1_200], "apart: each alone");
    }

    #[test]
    fn commits_during_a_flush_wait_for_it_and_share_the_next() {
        // 0: flushes 0–300. 100 and 250 arrive during it: one next flush, 300–700 (the first
        // joiner's 400 µs), both answered at 700. 650 arrives during that one: 700–750.
        let finished = finish_times(&[(0, 300), (100, 400), (250, 900), (650, 50)]);
        assert_eq!(finished, [300, 700, 700, 750]);
    }

    #[test]
    fn on_a_busy_machine_the_flusher_waits_for_a_core_and_everyone_waits_for_it() {
        // The flush's I/O ends at 3 ms; its 1 ms of CPU waits for the core until 8 ms, so
        // the commit is answered at 9, and one arriving at 4 (during that wait) joins the
        // next flush: 9–12 ms of I/O, 12–13 of CPU.
        assert_eq!(finish_times_on(&[(0, 3), (4, 3)], Some((1, 8))), [9, 13]);
        // An idle core: only the CPU is added.
        assert_eq!(finish_times_on(&[(0, 3), (4, 3)], Some((1, 0))), [4, 8]);
    }

    #[test]
    fn commits_at_the_same_instant_share_one_flush() {
        assert_eq!(finish_times(&[(0, 300), (0, 500), (0, 100)]), [300, 300, 300]);
    }
}
