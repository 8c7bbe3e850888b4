//! Time resolution: modelled durations resolve to 50 µs or finer under turmoil.
//!
//! Method: inside a turmoil host (1 ms ticks, tokio timers rounding to 1 ms), sleep every
//! modelled duration from 50 µs to 2 ms in 25 µs steps through the time scale, measure with
//! tokio's virtual clock, and un-scale. Each measurement must be at least the request and less
//! than one resolution step (50 µs) above it. A control shows the same sleeps *without* the
//! scale are quantised to whole milliseconds.

use std::time::Duration;

use sim::timescale::{RESOLUTION_US, TICK, modelled_us, scaled_us};

fn measure(durations_us: Vec<u64>, scale: bool) -> Vec<(u64, u64)> {
    let mut sim = turmoil::Builder::new().tick_duration(TICK).rng_seed(1).build();
    let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = out.clone();
    sim.client("probe", async move {
        for us in durations_us {
            let start = tokio::time::Instant::now();
            if scale {
                tokio::time::sleep(scaled_us(us)).await;
                sink.borrow_mut().push((us, modelled_us(start.elapsed())));
            } else {
                tokio::time::sleep(Duration::from_micros(us)).await;
                sink.borrow_mut().push((us, start.elapsed().as_micros() as u64));
            }
        }
        Ok(())
    });
    sim.run().unwrap();
    out.borrow().clone()
}

#[test]
fn time_resolution_is_50us() {
    const { assert!(RESOLUTION_US <= 50) };
    let wanted: Vec<u64> = (2..=80).map(|k| k * 25).collect();
    for (asked, got) in measure(wanted.clone(), true) {
        assert!(got >= asked, "slept {got} us for {asked} us");
        assert!(got - asked < 50, "{asked} us measured as {got} us: coarser than 50 us");
    }
    // 50 µs and 100 µs are distinguishable.
    let pair = measure(vec![50, 100], true);
    assert_eq!(pair, vec![(50, 50), (100, 100)]);
    // Control: without the scale, 50 µs and 100 µs both take a whole millisecond.
    let raw = measure(vec![50, 100], false);
    assert!(raw.iter().all(|(_, got)| *got >= 1_000), "{raw:?}");
}

/// The db link's own transport is taken off each drawn statement time: over a link without
/// latency, statements come back, on average, one drawn round trip after they were sent, each
/// within the 50 µs resolution. Without that correction they would take ~75 µs longer.
#[test]
fn a_statement_round_trip_takes_its_drawn_time_on_a_zero_latency_link() {
    // A constant 400 µs: every round trip within a tick of it, the mean close to it.
    let took = round_trips("[[0.0, 400.0], [1.0, 400.0]]", 200);
    for &us in &took {
        assert!((350..=450).contains(&us), "a 400 µs statement took {us} µs");
    }
    let mean = took.iter().sum::<u64>() as f64 / took.len() as f64;
    assert!((385.0..=415.0).contains(&mean), "mean round trip {mean} µs for 400 µs");
    // Uniform 300–500 µs (mean 400): the mean round trip is the mean draw.
    let took = round_trips("[[0.0, 300.0], [1.0, 500.0]]", 400);
    let mean = took.iter().sum::<u64>() as f64 / took.len() as f64;
    assert!((385.0..=415.0).contains(&mean), "mean round trip {mean} µs for a mean draw of 400 µs");
}

/// `count` `SELECT 1` round trips (modelled µs) against the sim's db host, select times drawn
/// from `quantiles`, over a link without latency, hosts polled in random order as in a run.
fn round_trips(quantiles: &str, count: usize) -> Vec<u64> {
    use std::cell::RefCell;
    use std::rc::Rc;

    use model::io::Client;
    use model::profile::LatencyProfile;
    use model::{Engine, EngineConfig};
    use sim::model_db::DB_PORT;
    use sim::seeds::Seeds;
    use sim::world::hosts::{DbCores, DbSinks, add_db_host};

    let mut text = format!("[kinds.select]\nquantiles = {quantiles}\n");
    for kind in ["insert", "update", "delete", "begin", "commit", "rollback", "ddl", "other"] {
        text.push_str(&format!("[kinds.{kind}]\nquantiles = [[0.0, 150.0], [1.0, 150.0]]\n"));
    }
    let profile = LatencyProfile::from_toml_str(&text, "probe").unwrap();
    let mut sim = turmoil::Builder::new()
        .tick_duration(TICK)
        .rng_seed(1)
        .min_message_latency(Duration::ZERO)
        .max_message_latency(Duration::ZERO)
        .enable_random_order()
        .build();
    let engine = Rc::new(RefCell::new(Engine::new(EngineConfig { seed: 1, epoch_us: 0 })));
    add_db_host(
        &mut sim,
        engine,
        &Seeds::new(1),
        &profile,
        DbSinks { servers: Rc::new(RefCell::new(Vec::new())), opened: Default::default() },
        DbCores { cores: None, core_fraction: 1.0 },
    );
    let out = Rc::new(RefCell::new(Vec::new()));
    let sink = out.clone();
    sim.client("probe", async move {
        let stream = turmoil::net::TcpStream::connect(("db", DB_PORT)).await?;
        let mut client = Client::new(stream);
        for _ in 0..count {
            let start = tokio::time::Instant::now();
            client.query("SELECT 1", &[]).await?.expect("SELECT 1 runs");
            sink.borrow_mut().push(modelled_us(start.elapsed()));
        }
        Ok(())
    });
    sim.run().unwrap();
    let took = out.borrow().clone();
    assert_eq!(took.len(), count);
    took
}
