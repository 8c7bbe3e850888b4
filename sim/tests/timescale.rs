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
    assert!(RESOLUTION_US <= 50);
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
