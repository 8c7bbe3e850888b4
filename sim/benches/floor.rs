//! How much of a storm seed is turmoil's own stepping: the floor under seeds per second.
//!
//! turmoil 0.7 advances in fixed ticks and polls every host's runtime at every tick, whether
//! or not anything is due; a run at 50 µs resolution (`timescale`) takes one step per 50 µs
//! of modelled time. This bench measures, side by side and alternating:
//!
//! - `seed`: one whole storm seed (`world::run`, default strategy and profile), and
//! - `idle`: the same turmoil world (`world::build_sim`: same hosts, tick, latencies, random
//!   host order) with host software that only sleeps, stepped as many times as that seed took.
//!
//! `idle` is what a seed would cost if the backend, the model and the clients were free, so
//! `1 / idle` is the most seeds per second this design can reach on this core. Each round
//! runs `SEEDS_PER_ROUND` seeds and then their idle twins; the best round of each is kept
//! (the minimum is the figure least disturbed by other load).
//!
//! Run: `cargo bench -p sim --bench floor` (optionally `-- ROUNDS`, default 5).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scenarios::Scenario;
use sim::seeds::Seeds;
use sim::world::{self, RunConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEEDS_PER_ROUND: u64 = 40;
const ROUNDS_DEFAULT: u32 = 5;

fn main() {
    let rounds: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(ROUNDS_DEFAULT);
    let scenario = Arc::new(Scenario::builtin("storm").expect("built-in storm").scenario);
    let mut seed_best = Duration::MAX;
    let mut idle_best = Duration::MAX;
    let mut steps_total = 0;
    for round in 0..rounds {
        let seeds = u64::from(round) * SEEDS_PER_ROUND..u64::from(round + 1) * SEEDS_PER_ROUND;
        let started = Instant::now();
        let steps: Vec<u64> = seeds.clone().map(|seed| run_seed(&scenario, seed)).collect();
        seed_best = seed_best.min(started.elapsed());
        let started = Instant::now();
        for (seed, &steps) in seeds.zip(&steps) {
            step_idle(&scenario, seed, steps);
        }
        idle_best = idle_best.min(started.elapsed());
        steps_total = steps.iter().sum::<u64>();
    }
    let per_seed = |d: Duration| d.as_secs_f64() * 1e3 / SEEDS_PER_ROUND as f64;
    let (seed_ms, idle_ms) = (per_seed(seed_best), per_seed(idle_best));
    println!("storm, best of {rounds} rounds of {SEEDS_PER_ROUND} seeds, one core");
    println!("  steps per seed (last round):  {}", steps_total / SEEDS_PER_ROUND);
    println!("  seed:                         {seed_ms:.3} ms   ({:.1} seeds/s)", 1e3 / seed_ms);
    println!("  idle stepping, same steps:    {idle_ms:.3} ms   ({:.1} seeds/s)", 1e3 / idle_ms);
    println!("  idle / seed:                  {:.3}", idle_ms / seed_ms);
}

/// One storm seed; returns the turmoil steps it took.
fn run_seed(scenario: &Arc<Scenario>, seed: u64) -> u64 {
    let config = RunConfig {
        guard: Default::default(),
        scenario: scenario.clone(),
        seed,
        strategy: "exclusion".into(),
        keep_trace: false,
        profile: world::default_profile(),
        connections: Default::default(),
    };
    let result = world::run(&config).expect("storm runs");
    assert_eq!(result.outcome.counts.created_201, 50, "seed {seed}: the storm books all 50");
    assert!(result.steps > 0, "seed {seed}: a run takes steps");
    result.steps
}

/// The run's turmoil world with hosts that only sleep, stepped `steps` times.
fn step_idle(scenario: &Scenario, seed: u64, steps: u64) {
    let mut sim = world::build_sim(scenario, &Seeds::new(seed));
    for host in ["db", "backend"] {
        sim.host(host, || async {
            loop {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
            }
        });
    }
    sim.client("clients", async {
        loop {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        }
    });
    for _ in 0..steps {
        black_box(sim.step().expect("idle hosts never fail"));
    }
}
