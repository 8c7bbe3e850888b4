//! `roomsim check`: the systematic explorer must catch every planted bug with 2 bookings and
//! find none in a safe strategy within the same bound (a check that can fail both ways); the
//! partial-order reduction must keep every end state while running fewer schedules; crash
//! points must find what a retry without an Idempotency-Key loses; a counterexample must
//! read back as an isolation spec that shows the anomaly on the model.

use sim::check::{CheckConfig, CheckReport, Shape, run_check};

fn config(strategy: &str, rooms: u32, preemptions: Option<u32>) -> CheckConfig {
    CheckConfig { preemptions, max_schedules: 200_000, ..CheckConfig::new(strategy, 2, rooms) }
}

fn violated(report: CheckReport) -> Vec<String> {
    assert!(report.complete, "{}: the search finished", report.scope);
    let counterexample = report.counterexample.expect("a counterexample");
    assert!(counterexample.events.iter().any(|e| e.is_statement()));
    counterexample.violations.into_iter().map(|v| v.invariant).collect()
}

#[test]
fn broken_strategies_yield_counterexamples_with_two_bookings() {
    let exhaustive = |strategy: &str, rooms| run_check(&config(strategy, rooms, None)).unwrap();
    let naive = exhaustive("naive", 1);
    assert!(naive.verdict_line(&config("naive", 1, None)).starts_with("exhaustive for 2 bookings"));
    assert!(violated(naive).contains(&"no_room_overlap".to_string()));
    assert!(violated(exhaustive("rr-room-lock", 1)).contains(&"no_room_overlap".to_string()));
    let unordered = run_check(&config("room-lock-unordered", 2, Some(1))).unwrap();
    assert!(violated(unordered).contains(&"no_deadlock".to_string()));
}

#[test]
fn safe_strategies_pass_every_schedule_of_two_bookings_in_two_rooms() {
    for strategy in ["exclusion", "room-lock", "serializable", "advisory"] {
        let report = run_check(&config(strategy, 2, None)).expect("runs");
        assert!(report.complete, "{strategy}: exhaustive");
        assert!(report.schedules > 100, "{strategy}: {} schedules", report.schedules);
        let found = report.counterexample.map(|c| c.violations);
        assert!(found.is_none(), "{strategy}: {found:?}");
    }
}

/// The reduction skips only reorders of independent steps: on a scope where the plain
/// enumeration also finishes, both reach the same end states and the same verdict, and the
/// reduction runs fewer schedules.
#[test]
fn the_partial_order_reduction_keeps_every_end_state_with_fewer_schedules() {
    for strategy in ["naive", "exclusion"] {
        // Without the state cache, so the figure is the reduction's alone.
        let base = CheckConfig { state_cache: false, ..config(strategy, 1, Some(3)) };
        let reduced = run_check(&base).unwrap();
        let plain = run_check(&CheckConfig { reduction: false, ..base }).unwrap();
        same_verdict_fewer_schedules(strategy, &reduced, &plain, 3);
    }
}

/// `cut` (a search with a reduction) and `plain` (without it) both finish with the same end
/// states and verdict, and `cut` runs fewer than 1/`factor` of plain's schedules to the end.
fn same_verdict_fewer_schedules(label: &str, cut: &CheckReport, plain: &CheckReport, factor: u64) {
    assert!(cut.complete && plain.complete, "{label}: both finish");
    assert_eq!(cut.distinct_end_states, plain.distinct_end_states, "{label}");
    assert_eq!(cut.counterexample.is_some(), plain.counterexample.is_some(), "{label}");
    assert!(
        cut.schedules * factor < plain.schedules,
        "{label}: {} schedules to the end with the reduction vs {} without",
        cut.schedules,
        plain.schedules
    );
}

/// Visited-state caching stops a schedule at a state explored before: where the search
/// without it also finishes, both reach the same end states and the same verdict, and the
/// cached search runs fewer schedules to their end (a cache that never hits fails this).
#[test]
fn visited_state_caching_keeps_every_end_state_with_fewer_schedules() {
    for (strategy, crash_points, preemptions) in
        [("naive", 0, Some(3)), ("exclusion", 1, Some(1)), ("room-lock", 1, Some(1))]
    {
        let cached = CheckConfig { crash_points, ..config(strategy, 1, preemptions) };
        let plain = CheckConfig { state_cache: false, ..cached.clone() };
        let (cached, plain) = (run_check(&cached).unwrap(), run_check(&plain).unwrap());
        assert!(cached.cache_hits > 0 && cached.states > 0, "{strategy}: the cache hit");
        // Schedules run to their end (a cached one stops where it meets an explored state).
        same_verdict_fewer_schedules(strategy, &cached, &plain, 2);
    }
}

/// The target scope: a safe strategy, 2 bookings in 2 rooms, a backend crash between
/// any two statements followed by the retry — every schedule, no violation.
#[test]
fn a_safe_strategy_is_exhaustive_for_two_bookings_two_rooms_with_a_crash_point() {
    let scope = CheckConfig { crash_points: 1, ..config("exclusion", 2, None) };
    let report = run_check(&scope).unwrap();
    assert!(report.complete, "{}", report.scope);
    assert!(report.verdict_line(&scope).starts_with("exhaustive for 2 bookings x 2 rooms"));
    let found = report.counterexample.map(|c| c.violations);
    assert!(found.is_none(), "{found:?}");
    assert!(report.schedules > 1_000, "{} schedules", report.schedules);
}

/// A backend crash after COMMIT loses the 201; the retry without a key is a new booking of
/// the same patient and slot, refused, so the appointment is never acknowledged. With the
/// key the retry gets the stored answer.
#[test]
fn crash_points_find_the_lost_answer_of_a_retry_without_idempotency_key() {
    let one = |key: bool| CheckConfig {
        crash_points: 1,
        idempotency_key: key,
        ..CheckConfig::new("exclusion", 1, 1)
    };
    let without = run_check(&one(false)).unwrap();
    assert!(violated(without).contains(&"nothing_unacknowledged".to_string()));
    let with = run_check(&one(true)).unwrap();
    assert!(with.complete && with.counterexample.is_none(), "{:?}", with.counterexample);
    // Without crash points there is nothing to lose.
    let calm =
        run_check(&CheckConfig { idempotency_key: false, ..CheckConfig::new("exclusion", 1, 1) });
    assert!(calm.unwrap().counterexample.is_none());
}

#[test]
fn shapes_change_who_competes() {
    // Two bookings of one doctor at one time: at most one may be booked, in any strategy.
    let same_doctor = CheckConfig { shape: Shape::SameDoctor, ..config("naive", 2, None) };
    let report = run_check(&same_doctor).unwrap();
    assert!(report.complete);
    // Back-to-back in one room: the room's turnover makes them conflict; after the turnover
    // they do not, so even the naive strategy books both without a violation.
    let after = CheckConfig { shape: Shape::AfterTurnover, ..config("naive", 1, None) };
    let report = run_check(&after).unwrap();
    assert!(report.complete && report.counterexample.is_none(), "{:?}", report.counterexample);
    let adjacent = CheckConfig { shape: Shape::Adjacent, ..config("naive", 1, None) };
    assert!(violated(run_check(&adjacent).unwrap()).contains(&"no_room_overlap".to_string()));
}

#[test]
fn a_counterexample_reads_back_as_a_spec_that_shows_the_double_booking() {
    let config = config("naive", 1, None);
    let report = run_check(&config).unwrap();
    let counterexample = report.counterexample.expect("naive double-books");
    let text = sim::check::spec_out::render(&config, &counterexample).unwrap();
    let spec = model::spec::parse_spec(&text, "counterexample.spec").expect("a valid spec");
    assert_eq!(spec.permutations.len(), 1);
    let results = model::spec::run_model(&spec, 0);
    let events = &results[0].events;
    let failed_control = events.iter().find(|e| matches!(e, model::spec::Event::Control { .. }));
    assert!(failed_control.is_none(), "setup ran on the model: {failed_control:?}");
    let overlaps = events.iter().find_map(|e| match e {
        model::spec::Event::Step {
            step,
            result: Some(model::spec::StepResult::Rows { rows, .. }),
            ..
        } if step == "room_overlaps" => Some(rows.len()),
        _ => None,
    });
    assert_eq!(overlaps, Some(1), "one overlapping pair on the model:\n{text}");
    let doctors = events.iter().any(|e| {
        matches!(e, model::spec::Event::Step { step, result: Some(model::spec::StepResult::Rows { rows, .. }), .. }
            if step == "doctor_overlaps" && rows.is_empty())
    });
    assert!(doctors, "own doctors: no doctor overlap");
}

#[test]
fn bad_scope_is_bad_input() {
    let mut bad = config("naive", 4, Some(1));
    assert!(matches!(run_check(&bad), Err(sim::SimError::BadInput(_))));
    bad.rooms = 1;
    bad.strategy = "nope".into();
    assert!(matches!(run_check(&bad), Err(sim::SimError::BadInput(_))));
    bad.strategy = "naive".into();
    bad.fallback = "maybe".into();
    assert!(matches!(run_check(&bad), Err(sim::SimError::BadInput(_))));
    assert!("diagonal".parse::<Shape>().is_err());
}

/// shrink finds the pair behind a storm double booking under naive, and the bound can make it
/// come out empty: with no pairs allowed, only single bookings are tried and none double-books.
#[test]
fn shrink_reduces_a_failing_seed_to_two_bookings_and_can_come_out_empty() {
    use sim::check::shrink::{ShrinkLimits, shrink};
    let scenario = scenarios::Scenario::builtin("storm").unwrap().scenario;
    let run = sim::world::RunConfig {
        scenario: std::sync::Arc::new(scenario),
        seed: 0,
        strategy: "naive".into(),
        guard: backend_core::db::guard::GuardMode::Safe,
        keep_trace: false,
        profile: sim::world::default_profile(),
        connections: Default::default(),
    };
    let report = shrink(&run, ShrinkLimits::default()).unwrap();
    assert_eq!(report.run_invariants, vec!["no_room_overlap".to_string()]);
    let found = report.found.expect("a reproduction");
    assert_eq!(found.bookings.len(), 2, "{:?}", found.bookings);
    assert_ne!(found.bookings[0], found.bookings[1]);
    let counterexample = found.report.counterexample.expect("the check failed");
    assert!(counterexample.violations.iter().any(|v| v.invariant == "no_room_overlap"));
    let empty = shrink(&run, ShrinkLimits { pairs_max: 0, ..ShrinkLimits::default() }).unwrap();
    assert!(empty.found.is_none(), "no pair, no triple: nothing reproduces");
    assert_eq!(empty.run_invariants, report.run_invariants);
}
