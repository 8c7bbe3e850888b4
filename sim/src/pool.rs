//! A bounded connection pool in virtual time.
//!
//! The backend's pool towards the db host: at most `size` connections, FIFO waiting (tokio's
//! semaphore is fair), an acquire timeout after which the caller gets
//! `DbError::POOL_TIMEOUT`, and the wait of every successful acquire reported in modelled µs
//! (the pool-wait histogram). Idle connections are reused; a connection marked broken (its
//! TCP stream died, or the db host restarted) is dropped instead of returned.
//!
//! Durations given to the pool are *simulated* (already multiplied by the time scale); the
//! wait is reported unscaled. The Erlang-C test (`sim/tests/erlang_c.rs`) checks this pool's
//! queueing against M/M/c theory.
//!
//! Not modelled: connection max-lifetime, idle reaping, health checks on checkout.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_core::db::DbError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::timescale::modelled_us;

/// Opens one new connection.
pub type ConnectFn<C> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<C, DbError>> + Send>> + Send + Sync>;
/// Told the modelled µs each successful acquire waited.
pub type WaitObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// Largest pool the simulation accepts (scenarios validate the same bound).
pub const POOL_SIZE_MAX: u32 = 256;

pub struct Pool<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Pool { inner: self.inner.clone() }
    }
}

struct Inner<C> {
    semaphore: Arc<Semaphore>,
    idle: Mutex<Vec<C>>,
    connect: ConnectFn<C>,
    acquire_timeout: Duration,
    on_wait: WaitObserver,
}

/// A checked-out connection; returns to the pool on drop unless marked broken.
pub struct Pooled<C: Send + 'static> {
    conn: Option<C>,
    broken: bool,
    pool: Arc<Inner<C>>,
    _permit: OwnedSemaphorePermit,
}

impl<C: Send + 'static> Pool<C> {
    /// `acquire_timeout` is simulated time.
    pub fn new(
        size: u32,
        acquire_timeout: Duration,
        connect: ConnectFn<C>,
        on_wait: WaitObserver,
    ) -> Self {
        assert!((1..=POOL_SIZE_MAX).contains(&size), "pool size {size} out of 1..={POOL_SIZE_MAX}");
        Pool {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(size as usize)),
                idle: Mutex::new(Vec::with_capacity(size as usize)),
                connect,
                acquire_timeout,
                on_wait,
            }),
        }
    }

    /// Waits (FIFO) for a free slot, at most the acquire timeout, then reuses an idle
    /// connection or opens one.
    pub async fn acquire(&self) -> Result<Pooled<C>, DbError> {
        let started = tokio::time::Instant::now();
        let permit = tokio::time::timeout(
            self.inner.acquire_timeout,
            self.inner.semaphore.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            DbError::new(DbError::POOL_TIMEOUT, "timed out waiting for a pooled connection")
        })?
        .expect("the pool's semaphore is never closed");
        (self.inner.on_wait)(modelled_us(started.elapsed()));
        let idle = self.inner.idle.lock().expect("pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => (self.inner.connect)().await?,
        };
        Ok(Pooled { conn: Some(conn), broken: false, pool: self.inner.clone(), _permit: permit })
    }

    /// Connections idle in the pool right now.
    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().expect("pool lock").len()
    }

    /// Drops every idle connection (after the db host restarted, they are all dead).
    pub fn clear_idle(&self) {
        self.inner.idle.lock().expect("pool lock").clear();
    }
}

impl<C: Send + 'static> Pooled<C> {
    pub fn get_mut(&mut self) -> &mut C {
        self.conn.as_mut().expect("a checked-out connection is present until drop")
    }

    /// The connection must not be reused.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl<C: Send + 'static> Drop for Pooled<C> {
    fn drop(&mut self) {
        let conn = self.conn.take().expect("a checked-out connection is present until drop");
        if !self.broken {
            self.pool.idle.lock().expect("pool lock").push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn counting_pool(
        size: u32,
        timeout_ms: u64,
    ) -> (Pool<u32>, Arc<AtomicU32>, Arc<Mutex<Vec<u64>>>) {
        let opened = Arc::new(AtomicU32::new(0));
        let waits = Arc::new(Mutex::new(Vec::new()));
        let counter = opened.clone();
        let connect: ConnectFn<u32> = Arc::new(move || {
            let id = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(id) })
        });
        let sink = waits.clone();
        let on_wait: WaitObserver = Arc::new(move |us| sink.lock().unwrap().push(us));
        (Pool::new(size, Duration::from_millis(timeout_ms), connect, on_wait), opened, waits)
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_times_out_and_drops_broken() {
        let (pool, opened, waits) = counting_pool(2, 40);
        let a = pool.acquire().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        let err = pool.acquire().await.err().expect("third acquire must time out");
        assert_eq!(err.sqlstate, DbError::POOL_TIMEOUT);
        drop(a);
        b.mark_broken();
        drop(b);
        assert_eq!(pool.idle_count(), 1, "the broken connection is not returned");
        let mut c = pool.acquire().await.unwrap();
        assert_eq!(*c.get_mut(), 0, "the idle connection is reused");
        let _d = pool.acquire().await.unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 3);
        assert_eq!(waits.lock().unwrap().len(), 4, "one wait per successful acquire");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_order_and_wait_is_unscaled() {
        let (pool, _, waits) = counting_pool(1, 10_000);
        let first = pool.acquire().await.unwrap();
        let p = pool.clone();
        let waiter = tokio::spawn(async move { p.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(first);
        waiter.await.unwrap().unwrap();
        let waits = waits.lock().unwrap().clone();
        // 200 ms of simulated time is 200 ms / TIME_SCALE of modelled time.
        let expected = 200_000 / crate::timescale::TIME_SCALE as u64;
        assert_eq!(waits, vec![0, expected]);
    }
}
