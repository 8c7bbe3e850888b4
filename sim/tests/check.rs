//! `roomsim check`: the systematic explorer must catch every planted bug with 2 bookings and
//! find none in a safe strategy within the same bound (a check that can fail both ways).

use sim::check::{CheckConfig, run_check};

fn config(strategy: &str, rooms: u32, preemptions: u32) -> CheckConfig {
    CheckConfig {
        strategy: strategy.into(),
        bookings: 2,
        rooms,
        preemptions: Some(preemptions),
        max_schedules: 100_000,
    }
}

fn violated(strategy: &str, rooms: u32) -> Vec<String> {
    let report = run_check(&config(strategy, rooms, 1)).expect("runs");
    assert!(report.complete, "{strategy}: the bounded search finished");
    let (violations, events) = report.counterexample.expect("a counterexample");
    assert!(!events.is_empty());
    violations.into_iter().map(|v| v.invariant).collect()
}

#[test]
fn broken_strategies_yield_counterexamples_with_two_bookings() {
    assert!(violated("naive", 1).contains(&"no_room_overlap".to_string()));
    assert!(violated("rr-room-lock", 1).contains(&"no_room_overlap".to_string()));
    assert!(violated("room-lock-unordered", 2).contains(&"no_deadlock".to_string()));
}

#[test]
fn safe_strategies_pass_every_schedule_within_two_preemptions() {
    for strategy in ["exclusion", "room-lock", "serializable", "advisory"] {
        let report = run_check(&config(strategy, 2, 2)).expect("runs");
        assert!(report.complete, "{strategy}");
        assert!(report.schedules > 100, "{strategy}: {} schedules", report.schedules);
        let found = report.counterexample.map(|(v, _)| v);
        assert!(found.is_none(), "{strategy}: {found:?}");
    }
}

#[test]
fn bad_scope_is_bad_input() {
    let mut bad = config("naive", 4, 1);
    assert!(matches!(run_check(&bad), Err(sim::SimError::BadInput(_))));
    bad.rooms = 1;
    bad.strategy = "nope".into();
    assert!(matches!(run_check(&bad), Err(sim::SimError::BadInput(_))));
}
