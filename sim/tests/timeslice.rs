//! Time slicing on the modelled machine (`[cpu] quantum_us`, issue #17): with one user
//! nothing waits for a core, so every run is IDENTICAL with and without a quantum (the
//! outcome compared whole: trace hash, every histogram, counts); with 50 simultaneous
//! bookings the cores are contended and a quantum changes the run. The OFF-PATH CPU per
//! request (`[cpu] offpath_us`) is spent after the answer: one user's answers never wait
//! for it, 50 simultaneous bookings do.

use std::sync::Arc;

use scenarios::Scenario;
use sim::histograms::Metric;
use sim::outcome::RunOutcome;
use sim::world::{self, Profile, RunConfig};

fn storm(bookers: u32, bookings_per_booker: u32) -> Arc<Scenario> {
    let loaded = Scenario::builtin("storm").unwrap();
    let changed = loaded.changed(|scenario| {
        scenario.workload.bookers = bookers;
        scenario.workload.bookings_per_booker = bookings_per_booker;
    });
    Arc::new(changed.unwrap().scenario)
}

/// A run on the committed profile with `quantum_us` instead of its slice (without one, the
/// cores are one pool: `BackendCpu::with_quantum_us`).
fn run(scenario: &Arc<Scenario>, seed: u64, quantum_us: Option<u64>) -> RunOutcome {
    let profile: Profile = world::default_profile().with_quantum_us(quantum_us).unwrap();
    assert!(
        quantum_us.is_some()
            || profile.backend_cpu.as_ref().unwrap().sharing() == model::io::Sharing::OnePool
    );
    run_with(scenario, seed, profile)
}

fn run_with(scenario: &Arc<Scenario>, seed: u64, profile: Profile) -> RunOutcome {
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

fn offpath(us: f64) -> Profile {
    world::default_profile().with_offpath_us(Some(us)).unwrap()
}

#[test]
fn one_users_answers_do_not_wait_for_the_off_path_cpu() {
    let scenario = storm(1, 25);
    for seed in 1..=3 {
        let without = run_with(&scenario, seed, offpath(0.0));
        assert_eq!(without.counts.created_201, 25, "seed {seed}: every booking made");
        let with = run_with(&scenario, seed, offpath(1_000.0));
        assert_eq!(with.histograms, without.histograms, "seed {seed}: latencies changed");
        assert_eq!(with.counts, without.counts, "seed {seed}");
    }
}

#[test]
fn fifty_simultaneous_bookings_wait_for_the_off_path_cpu() {
    let scenario = storm(50, 1);
    let mean = |o: &RunOutcome| o.histograms.get(Metric::RoomAssignment).mean();
    let without = run_with(&scenario, 1, offpath(0.0));
    let with = run_with(&scenario, 1, offpath(1_000.0));
    assert_eq!(with.counts.created_201, 50);
    // 50 × 1 ms more CPU on 2 cores, spent while later bookings still run: their wait grows.
    assert!(
        mean(&with) > mean(&without) * 1.05,
        "room assignment mean {} µs with 1 ms off-path CPU per request, {} µs without",
        mean(&with),
        mean(&without)
    );
    assert_eq!(with, run_with(&scenario, 1, offpath(1_000.0)), "and the run replays");
}

fn workers(quantum_us: Option<u64>, backend_workers: Option<u32>) -> Profile {
    let profile = world::default_profile().with_quantum_us(quantum_us).unwrap();
    profile.with_backend_workers(backend_workers).unwrap()
}

/// `[cpu] backend_workers`: one user's requests never overlap, so one thread changes
/// nothing; 50 simultaneous bookings queue for it.
#[test]
fn backend_work_waits_for_a_worker_thread_only_under_contention() {
    let one_user = storm(1, 25);
    for seed in 1..=3 {
        let free = run_with(&one_user, seed, workers(Some(50), None));
        assert!(free == run_with(&one_user, seed, workers(Some(50), Some(1))), "seed {seed}");
    }
    let scenario = storm(50, 1);
    let mean = |o: &RunOutcome| o.histograms.get(Metric::RoomAssignment).mean();
    let free = run_with(&scenario, 1, workers(Some(50), None));
    let one = run_with(&scenario, 1, workers(Some(50), Some(1)));
    assert_eq!(one.counts.created_201, 50);
    assert!(
        mean(&one) > mean(&free) * 1.05,
        "room assignment mean {} µs on one backend thread, {} µs without a limit",
        mean(&one),
        mean(&free)
    );
    assert_eq!(one, run_with(&scenario, 1, workers(Some(50), Some(1))), "and the run replays");
}

/// The simulated rules evaluation is timed as the real backend's Server-Timing is: its cost
/// plus the time it was preempted. Run to completion it is the cost alone; on time-sliced,
/// contended cores in one pool some evaluations are preempted and take longer than any draw
/// could.
#[test]
fn a_preempted_rules_evaluation_takes_longer_than_its_cost() {
    let scenario = storm(50, 1);
    let rules = |o: &RunOutcome| o.histograms.get(Metric::RulesEvaluation).clone();
    let whole = rules(&run(&scenario, 1, None));
    let one_pool = world::default_profile().with_sharing(model::io::Sharing::OnePool).unwrap();
    let sliced = rules(&run_with(&scenario, 1, one_pool.with_quantum_us(Some(50)).unwrap()));
    assert!(
        sliced.max() > whole.max() + 25,
        "rules evaluation max {} µs sliced, {} µs run to completion",
        sliced.max(),
        whole.max()
    );
}

/// The modelled machine's CPU time (`RunOutcome::core_busy_us`, what `validate` prints beside
/// the real machine's): the cores are held for each statement's share of its draw, so a
/// smaller statement core fraction charges less, and the charge is a large part of the run's
/// statement time; without shared cores there is nothing to count. The statements' part
/// (`statement_core_us`) is counted apart: it halves with the fraction, the backend's part
/// (request CPU, rules) does not move.
#[test]
fn the_cores_count_the_cpu_time_they_were_held() {
    let scenario = storm(1, 25);
    let with = |fraction: f64| {
        let profile = world::default_profile().with_statement_core_fraction(fraction).unwrap();
        let outcome = run_with(&scenario, 1, profile);
        let all = outcome.core_busy_us.expect("the committed profile shares cores");
        (all, outcome.statement_core_us.expect("and counts the statements' part"))
    };
    let ((whole, whole_statements), (half, half_statements)) = (with(1.0), with(0.5));
    assert!(half < whole, "half the statement CPU: {half} µs against {whole} µs");
    // 25 bookings of ~1 ms of statements each (the committed profile): most of it counted.
    assert!(whole > 25 * 500, "{whole} µs for 25 bookings");
    assert!(whole_statements < whole && whole_statements > whole / 2, "{whole_statements}");
    let halved = half_statements as f64 / whole_statements as f64;
    assert!((0.45..=0.55).contains(&halved), "{half_statements} of {whole_statements} µs");
    let (backend_whole, backend_half) = (whole - whole_statements, half - half_statements);
    let moved = backend_half.abs_diff(backend_whole) as f64 / backend_whole as f64;
    assert!(moved < 0.05, "the backend's part: {backend_half} against {backend_whole} µs");
    let own = Profile { backend_cpu: None, ..(*world::default_profile()).clone() };
    let own = run_with(&scenario, 1, own);
    assert_eq!((own.core_busy_us, own.statement_core_us), (None, None));
}

/// Goal (`[cpu] resume_share`): the share of each request's CPU moves to after its statement
/// replies, inside the statements' round trips as the backend times them (one user: nothing
/// waits, so each reply that takes a piece adds its tick), while the backend's CPU in all
/// stays what it was drawn.
#[test]
fn a_resume_share_moves_request_cpu_after_the_replies_and_keeps_its_total() {
    let scenario = storm(1, 25);
    let with = |share: f64| {
        let profile = world::default_profile().with_resume_share(share).unwrap();
        let outcome = run_with(&scenario, 1, profile);
        assert_eq!(outcome.counts.created_201, 25, "share {share}: every booking made");
        let backend = outcome.core_busy_us.unwrap() - outcome.statement_core_us.unwrap();
        let round_trips: u64 = (outcome.histograms.by_statement().values())
            .map(|h| (h.mean() * h.len() as f64) as u64)
            .sum();
        (backend, round_trips)
    };
    let ((backend, round_trips), (moved_backend, moved_round_trips)) = (with(0.0), with(0.9));
    let changed = moved_backend.abs_diff(backend) as f64 / backend as f64;
    assert!(changed < 0.03, "the backend's CPU: {moved_backend} µs against {backend} µs");
    // ~13 statements per booking, a 25 µs tick after most replies while ~400 µs last.
    let added_per_booking = moved_round_trips.saturating_sub(round_trips) / 25;
    assert!(
        (200..=400).contains(&added_per_booking),
        "round trips {moved_round_trips} µs against {round_trips} µs: {added_per_booking} µs"
    );
}

/// Runs storm with the committed profile under sharing `before` and `after`: one user's
/// runs (two seeds, every booking made) must be the same under both, 50 simultaneous bookings
/// must differ, and the 50-booker run under `after` must replay. Returns the 50-booker
/// outcomes (`before`, `after`).
fn only_contended_runs_change(
    before: model::io::Sharing,
    after: model::io::Sharing,
) -> (RunOutcome, RunOutcome) {
    let shared = |sharing| world::default_profile().with_sharing(sharing).unwrap();
    let one = storm(1, 25);
    for seed in 1..=2 {
        let was = run_with(&one, seed, shared(before));
        assert_eq!(was.counts.created_201, 25, "seed {seed}: every booking made");
        let is = run_with(&one, seed, shared(after));
        assert!(was == is, "seed {seed}: one user's run changed ({before:?} to {after:?})");
    }
    let fifty = storm(50, 1);
    let was = run_with(&fifty, 1, shared(before));
    let is = run_with(&fifty, 1, shared(after));
    assert_ne!(was.trace_hash, is.trace_hash, "50 bookers on 2 cores: it shows");
    assert_eq!(is, run_with(&fifty, 1, shared(after)), "and replays");
    (was, is)
}

/// PING-PONG FIRST (`[cpu] sharing = "ping-pong-first"`, `model::io::cores`): one user's
/// runs are the same as with two groups (nothing waits for a core, so no statement goes
/// first); 50 simultaneous bookings differ (the statements that follow their replies take the
/// cores first), and such a run replays.
#[test]
fn ping_pong_first_changes_only_contended_runs_and_replays() {
    use model::io::Sharing;
    only_contended_runs_change(Sharing::TwoGroups, Sharing::PingPongFirst);
}

/// PING-PONG COOPERATIVE (`[cpu] sharing = "ping-pong-cooperative"`, `model::io::cores`):
/// one user's runs are the same as with ping-pong first (its service pieces never wait
/// behind one another); 50 simultaneous bookings differ (the service's pieces run to their
/// end instead of taking turns), their rules evaluations spend less time preempted, and
/// such a run replays.
#[test]
fn ping_pong_cooperative_changes_only_contended_runs_and_replays() {
    use model::io::Sharing;
    let (ping_pong, cooperative) =
        only_contended_runs_change(Sharing::PingPongFirst, Sharing::PingPongCooperative);
    let rules_p95 =
        |o: &RunOutcome| o.histograms.get(Metric::RulesEvaluation).value_at_quantile(0.95);
    assert!(
        rules_p95(&cooperative) < rules_p95(&ping_pong),
        "rules evaluation p95: {} µs cooperative, {} µs taking turns",
        rules_p95(&cooperative),
        rules_p95(&ping_pong)
    );
}
