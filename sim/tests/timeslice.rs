//! Time slicing on the modelled machine (`[cpu] quantum_us`, issue #17): with one user
//! nothing waits for a core, so every run is IDENTICAL with and without a quantum (the
//! outcome compared whole: trace hash, every histogram, counts); with 50 simultaneous
//! bookings the cores are contended and a quantum changes the run.

use std::sync::Arc;

use scenarios::Scenario;
use sim::outcome::RunOutcome;
use sim::world::{self, Profile, RunConfig};

fn storm(bookers: u32, bookings_per_booker: u32) -> Arc<Scenario> {
    let loaded = Scenario::builtin("storm").unwrap();
    let mut scenario = loaded.scenario;
    scenario.workload.bookers = bookers;
    scenario.workload.bookings_per_booker = bookings_per_booker;
    let text = toml::to_string(&scenario).unwrap();
    Arc::new(Scenario::parse(&text, &loaded.origin).unwrap().scenario)
}

fn run(scenario: &Arc<Scenario>, seed: u64, quantum_us: Option<u64>) -> RunOutcome {
    let profile: Profile = world::default_profile().with_quantum_us(quantum_us).unwrap();
    let config = RunConfig {
        scenario: Arc::clone(scenario),
        seed,
        strategy: "naive".into(),
        guard: Default::default(),
        keep_trace: false,
        profile: Arc::new(profile),
        connections: Default::default(),
    };
    world::run(&config).unwrap().outcome
}

#[test]
fn one_user_runs_are_identical_with_and_without_time_slicing() {
    let scenario = storm(1, 25);
    for seed in 1..=3 {
        let whole = run(&scenario, seed, None);
        assert_eq!(whole.counts.created_201, 25, "seed {seed}: every booking made");
        // The finest slice (one tick) preempts the most, were anything waiting.
        for quantum_us in [50, 1_500] {
            let sliced = run(&scenario, seed, Some(quantum_us));
            assert!(whole == sliced, "seed {seed}, quantum {quantum_us} µs: the run changed");
        }
    }
}

#[test]
fn under_contention_a_quantum_changes_the_run() {
    let scenario = storm(50, 1);
    let whole = run(&scenario, 1, None);
    assert_eq!(whole, run(&scenario, 1, Some(0)), "quantum 0 is run to completion");
    let sliced = run(&scenario, 1, Some(50));
    assert_ne!(whole.trace_hash, sliced.trace_hash, "50 bookers on 2 cores: the slices show");
    assert_eq!(sliced, run(&scenario, 1, Some(50)), "and the sliced run replays");
}
