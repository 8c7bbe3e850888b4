//! Property: for generated scenarios (rooms, bookers, overlapping slots, arrivals, faults)
//! and seeds, the safe strategy violates no invariant.
//!
//! A failing case shrinks to a small scenario; the panic message prints the seed and a
//! command that replays it. `ROOMSIM_SEED=N` fixes proptest's RNG to replay a whole run.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use scenarios::{Fault, Scenario};
use sim::world::{self, RunConfig};

fn scenario(
    rooms: u32,
    bookers: u32,
    slots: u32,
    step_min: u32,
    window_ms: u64,
    crash: bool,
) -> Scenario {
    let mut s = Scenario::builtin("conflict").unwrap().scenario;
    s.name = "generated".into();
    s.clinic.rooms.truncate(rooms as usize);
    s.workload.bookers = bookers;
    s.workload.slots.count = slots;
    s.workload.slots.step_min = step_min;
    s.workload.window_ms = window_ms;
    s.workload.request_timeout_ms = 300;
    if crash {
        s.faults.push(Fault::BackendCrash { at_ms: 1, restart_after_ms: 50 });
    }
    s
}

fn config() -> Config {
    let mut c = Config::with_cases(8);
    if let Some(seed) = std::env::var("ROOMSIM_SEED").ok().and_then(|s| s.parse().ok()) {
        c.rng_seed = RngSeed::Fixed(seed);
    }
    c
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn safe_strategy_keeps_every_invariant(
        rooms in 1u32..=10,
        bookers in 1u32..=30,
        slots in 1u32..=4,
        step_min in prop::sample::select(vec![5u32, 15, 30]),
        window_ms in 0u64..=20,
        crash in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let s = Arc::new(scenario(rooms, bookers, slots, step_min, window_ms, crash));
        let config = RunConfig { guard: Default::default(), scenario: s.clone(), seed, strategy: "exclusion".into(), keep_trace: false, profile: world::default_profile(), connections: Default::default() };
        let o = world::run(&config).unwrap().outcome;
        prop_assert!(
            o.passed(),
            "seed {seed}: {:?}\nscenario: {}\nreplay: write the scenario above to gen.toml, then \
             roomsim run --scenario gen.toml --seed {seed} --trace \
             (or ROOMSIM_SEED=<proptest seed> cargo test -p sim --test sim_tests proptest_invariants::)",
            o.violations.first(),
            toml::to_string(&*s).unwrap()
        );
    }
}
