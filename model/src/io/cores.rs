//! CORES: the CPU cores that statements (and, optionally, other hosts' work) run on.
//!
//! A statement that completes holds one core for its service time; a statement that blocks
//! gives its core back at once. By default every [`super::Server`] has its own
//! `executors_max` cores. A run that models ONE machine running both the database and the
//! backend (a latency profile with `[cpu] cores = N`) hands the same [`Cores`] to the server
//! (`ServerConfig::cores`) and to the backend, which holds a core while it spends its own
//! modelled CPU ([`Cores::hold`]): under load the two then queue for the same N cores, as
//! PostgreSQL and the HTTP service do on a real host.
//!
//! FAIRNESS: backend waiters queue FIFO in the semaphore; the server only takes a free core
//! (`try_take`) when it has a statement ready and is woken whenever a core is given back, so
//! a core released while backend work waits goes to that work first. Which of the server's
//! ready statements gets a core is its scheduler's pick (`super::sched`; a server on shared
//! cores picks at random). Not modelled:
//! preemption (a core runs one piece of work to its end), hyper-threading, I/O waits that do
//! not need a core (a commit's WAL flush is charged as core time).
//!
//! DETERMINISM: everything happens on turmoil's single thread; a give-back wakes the next
//! waiter in FIFO order and notifies the server, whose host turmoil polls in its fixed order.

use std::sync::Arc;

use tokio::sync::{Notify, Semaphore};

/// Most cores a pool may have.
pub const CORES_MAX: usize = 256;

/// A pool of CPU cores.
#[derive(Debug)]
pub struct Cores {
    semaphore: Semaphore,
    /// Notified on every give-back: the server's executor loop listens.
    released: Notify,
}

/// One taken core; given back when dropped (a crashed host's tasks give theirs back too).
#[derive(Debug)]
pub struct CoreGuard {
    cores: Arc<Cores>,
}

impl Drop for CoreGuard {
    fn drop(&mut self) {
        self.cores.semaphore.add_permits(1);
        self.cores.released.notify_one();
    }
}

impl Cores {
    pub fn new(count: usize) -> Arc<Cores> {
        assert!((1..=CORES_MAX).contains(&count), "cores must be 1..={CORES_MAX}, got {count}");
        Arc::new(Cores { semaphore: Semaphore::new(count), released: Notify::new() })
    }

    /// Cores free right now.
    pub fn free(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Takes a free core without waiting (none free, or others already queued: `None`).
    pub fn try_take(self: &Arc<Self>) -> Option<CoreGuard> {
        let permit = self.semaphore.try_acquire().ok()?;
        permit.forget();
        Some(CoreGuard { cores: Arc::clone(self) })
    }

    /// Waits (FIFO) for a core.
    pub async fn take(self: &Arc<Self>) -> CoreGuard {
        let permit = self.semaphore.acquire().await.expect("the semaphore is never closed");
        permit.forget();
        CoreGuard { cores: Arc::clone(self) }
    }

    /// Holds a core for `duration` of (tokio) time: waits for one, sleeps, gives it back.
    pub async fn hold(self: &Arc<Self>, duration: std::time::Duration) {
        let _core = self.take().await;
        tokio::time::sleep(duration).await;
    }

    /// Completes after the next give-back (or at once if one happened since the last call).
    pub async fn released(&self) {
        self.released.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_queues_for_the_cores_and_guards_give_them_back() {
        let cores = Cores::new(2);
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let cores = Arc::clone(&cores);
            tasks.push(tokio::spawn(async move {
                cores.hold(Duration::from_millis(10)).await;
                start.elapsed()
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(t.await.unwrap().as_millis());
        }
        // 5 jobs of 10 ms on 2 cores: done at 10, 10, 20, 20, 30.
        assert_eq!(ends, vec![10, 10, 20, 20, 30]);
        assert_eq!(cores.free(), 2);
        let held = cores.try_take().unwrap();
        let second = cores.try_take().unwrap();
        assert!(cores.try_take().is_none(), "both cores taken");
        drop(held);
        assert_eq!(cores.free(), 1, "a dropped guard gives its core back");
        drop(second);
        cores.released().await; // a give-back happened: completes at once
    }
}
