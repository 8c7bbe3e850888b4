//! Self-check of the pool model against Erlang-C (M/M/c).
//!
//! Method: inside a turmoil client, Poisson arrivals (λ = 0.6 per modelled ms) each acquire
//! a connection from the simulation's `Pool` with c = 4, hold it for an exponential service
//! time (mean 5 modelled ms, so a = 3, ρ = 0.75), and release it. The pool's own wait
//! observer records the waits. Tolerances, stated: P(wait > 0) within ±0.05 of C(4, 3) =
//! 0.509, and mean wait within ±15 % of C/(cμ − λ) = 2.55 ms. The service mean is 100 ticks,
//! so the 50 µs quantisation biases the load by < 0.5 %.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::erlang::{erlang_c, mean_wait};
use sim::pool::{ConnectFn, Pool, WaitObserver};
use sim::timescale::{TICK, scaled_us};

const SERVERS: u32 = 4;
const ARRIVALS_PER_MS: f64 = 0.6;
const SERVICE_MEAN_MS: f64 = 5.0;
const CUSTOMERS: usize = 8_000;

fn exp_us(rng: &mut ChaCha8Rng, mean_ms: f64) -> u64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean_ms * 1_000.0) as u64
}

#[test]
fn pool_wait_matches_erlang_c() {
    let waits = Arc::new(Mutex::new(Vec::with_capacity(CUSTOMERS)));
    let sink = waits.clone();
    let on_wait: WaitObserver = Arc::new(move |us| sink.lock().unwrap().push(us));
    let connect: ConnectFn<()> = Arc::new(|| Box::pin(async { Ok(()) }));
    let pool = Pool::new(SERVERS, Duration::from_secs(1_000_000), connect, on_wait);
    let mut sim = turmoil::Builder::new()
        .tick_duration(TICK)
        .simulation_duration(Duration::from_secs(10_000_000))
        .rng_seed(7)
        .build();
    let rng = Rc::new(RefCell::new(ChaCha8Rng::seed_from_u64(7)));
    sim.client("queue", async move {
        let mut tasks = Vec::with_capacity(CUSTOMERS);
        for _ in 0..CUSTOMERS {
            let gap = exp_us(&mut rng.borrow_mut(), 1.0 / ARRIVALS_PER_MS);
            tokio::time::sleep(scaled_us(gap)).await;
            let service = exp_us(&mut rng.borrow_mut(), SERVICE_MEAN_MS);
            let pool = pool.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let _conn = pool.acquire().await.unwrap();
                tokio::time::sleep(scaled_us(service)).await;
            }));
        }
        for t in tasks {
            t.await?;
        }
        Ok(())
    });
    sim.run().unwrap();
    let waits = waits.lock().unwrap();
    assert_eq!(waits.len(), CUSTOMERS);
    let waited = waits.iter().filter(|w| **w > 0).count() as f64 / CUSTOMERS as f64;
    let mean_ms = waits.iter().sum::<u64>() as f64 / CUSTOMERS as f64 / 1_000.0;
    let a = ARRIVALS_PER_MS * SERVICE_MEAN_MS;
    let c = erlang_c(SERVERS, a);
    let wq_ms = mean_wait(SERVERS, ARRIVALS_PER_MS, 1.0 / SERVICE_MEAN_MS);
    println!(
        "P(wait>0) sim {waited:.3} vs Erlang-C {c:.3}; mean wait sim {mean_ms:.3} ms vs {wq_ms:.3} ms"
    );
    assert!((waited - c).abs() < 0.05, "P(wait>0) {waited:.3} vs {c:.3}");
    assert!((mean_ms - wq_ms).abs() / wq_ms < 0.15, "mean wait {mean_ms:.3} vs {wq_ms:.3} ms");
}
