//! Determinism: the same seed gives the same trace hash in-process and in a separate process;
//! explore gives the same explore-hash for --jobs 1 and 2, and for two shards merged, over
//! 100 seeds. Method: run the world directly, and the built `roomsim` binary as a subprocess.
//! Everything runs backend-core on the model engine (the system under test), the 100-seed
//! jobs/shards check included (about 300 runs of the conflict scenario: seconds in release).

use std::process::Command;
use std::sync::Arc;

use scenarios::Scenario;
use sim::explore::{self, ExploreConfig};
use sim::world::{self, RunConfig};

fn config(scenario: &str, seed: u64) -> RunConfig {
    let scenario = Arc::new(Scenario::builtin(scenario).unwrap().scenario);
    RunConfig {
        guard: Default::default(),
        scenario,
        seed,
        strategy: "exclusion".into(),
        keep_trace: false,
        profile: world::default_profile(),
        connections: Default::default(),
    }
}

fn explore_cfg(jobs: u32, shard: Option<(u64, u64)>) -> ExploreConfig {
    ExploreConfig {
        guard: Default::default(),
        scenario: Arc::new(Scenario::builtin("conflict").unwrap().scenario),
        scenario_arg: "conflict".into(),
        strategy: "exclusion".into(),
        seeds: 0..100,
        jobs,
        shard,
        stop_on_failure: false,
        progress: false,
        profile: world::default_profile(),
        profile_arg: None,
        pattern_k: sim::patterns::PATTERN_K_DEFAULT,
        connections: Default::default(),
    }
}

#[test]
fn same_seed_same_hash_in_process_and_different_seeds_differ() {
    let a = world::run(&config("conflict", 5)).unwrap().outcome;
    let b = world::run(&config("conflict", 5)).unwrap().outcome;
    let c = world::run(&config("conflict", 6)).unwrap().outcome;
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a, b, "the whole outcome, histograms included, is a function of the seed");
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn same_seed_same_hash_in_a_separate_process() {
    let in_process = world::run(&config("storm", 42)).unwrap().outcome.trace_hash;
    let out = Command::new(env!("CARGO_BIN_EXE_roomsim"))
        .args(["run", "--scenario", "storm", "--seed", "42"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("trace-hash: {in_process}")),
        "in-process {in_process}: {stdout}"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_roomsim"))
        .args(["run", "--scenario", "conflict", "--seed", "3", "--check-determinism"])
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("determinism check passed"));
}

/// The system under test over 100 seeds: --jobs 1, --jobs 2 and two merged shards agree.
#[test]
fn explore_hash_is_the_same_for_any_jobs_and_for_merged_shards() {
    let one = explore::explore(&explore_cfg(1, None)).unwrap();
    let two = explore::explore(&explore_cfg(2, None)).unwrap();
    assert_eq!(one.seeds_run, 100);
    assert_eq!(one.explore_hash, two.explore_hash);
    assert_eq!(one.histograms, two.histograms);
    assert_eq!(one.counts, two.counts);
    assert_eq!(one.patterns, two.patterns);
    assert!(one.patterns.seen.len() > 1, "competing bookings interleave in more than one way");
    let scenario = Scenario::builtin("conflict").unwrap().scenario;
    let shards = vec![
        ("s0".to_string(), explore::explore(&explore_cfg(1, Some((0, 2)))).unwrap()),
        ("s1".to_string(), explore::explore(&explore_cfg(2, Some((1, 2)))).unwrap()),
    ];
    assert_eq!(shards[0].1.seeds_run, 50);
    assert_ne!(shards[0].1.explore_hash, one.explore_hash);
    let merged = explore::merge(shards.clone(), &scenario).unwrap();
    assert_eq!(merged.explore_hash, one.explore_hash);
    assert_eq!(merged.histograms, one.histograms);
    assert_eq!(merged.patterns, one.patterns, "pattern coverage merges to the unsharded one");
    let dup = vec![shards[0].clone(), shards[0].clone()];
    assert!(explore::merge(dup, &scenario).unwrap_err().to_string().contains("more than one"));
}
