//! The runner's reporting rules on the model: waits, blocker markers, stuck steps.

use model::spec::{Event, parse_spec, run_model};

/// Events of the first permutation, in a compact form: `a1`, `a1*` (waiting), `done:a1`,
/// `stuck:a1`, `control`.
fn events(text: &str) -> Vec<String> {
    let spec = parse_spec(text, "t.spec").unwrap();
    let results = run_model(&spec, 0);
    results[0]
        .events
        .iter()
        .map(|e| match e {
            Event::Step { step, blocked: true, .. } => format!("{step}*"),
            Event::Step { step, .. } => step.clone(),
            Event::Completed { completed, .. } => format!("done:{completed}"),
            Event::Stuck { stuck, .. } => format!("stuck:{stuck}"),
            Event::Control { control, .. } => format!("control:{control}"),
        })
        .collect()
}

const LOCKS: &str =
    "setup { CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
session s1
setup { BEGIN; }
step lock { UPDATE t SET v = 1 WHERE id = 1; }
step c1 { COMMIT; }
session s2
step u2 { UPDATE t SET v = 2 WHERE id = 1; }
session s3
step x3 { SELECT 3; }
";

#[test]
fn a_waiter_is_reported_right_after_the_step_that_released_it() {
    let text = format!("{LOCKS}permutation lock u2 x3 c1\n");
    assert_eq!(events(&text), ["lock", "u2*", "x3", "c1", "done:u2"]);
}

#[test]
fn star_marker_reports_waiting_at_once() {
    let text = format!("{LOCKS}permutation x3(*) lock\n");
    assert_eq!(events(&text), ["x3*", "lock", "done:x3"]);
}

#[test]
fn step_marker_holds_the_report_until_the_other_step_completes() {
    let text = format!("{LOCKS}permutation lock u2 x3(u2) c1\n");
    assert_eq!(events(&text), ["lock", "u2*", "x3*", "c1", "done:u2", "done:x3"]);
    // Without the marker x3 is reported at once.
    let text = format!("{LOCKS}permutation lock u2 x3 c1\n");
    assert_eq!(events(&text)[2], "x3");
}

#[test]
fn a_step_on_a_waiting_session_first_waits_for_it() {
    // u2 waits with a 500ms lock_timeout (longer than the settle window); u2b is on the same
    // session, so the runner first advances virtual time until u2 fails, reports that, then
    // runs u2b.
    let text = LOCKS.replace(
        "step u2 { UPDATE t SET v = 2 WHERE id = 1; }",
        "step u2 { SET lock_timeout = '500ms'; UPDATE t SET v = 2 WHERE id = 1; }\n\
         step u2b { SELECT 2; }",
    ) + "permutation lock u2 u2b c1\n";
    assert_eq!(events(&text), ["lock", "u2*", "done:u2", "u2b", "c1"]);
}

#[test]
fn a_timer_inside_the_settle_window_ends_the_step_before_the_next_one() {
    // 50ms < SETTLE_WINDOW: u2's lock timeout fires while the runner lets u2 settle, so u2
    // is reported finished (not waiting), as a harness that waits before moving on sees it.
    assert!(model::spec::runner::SETTLE_WINDOW > std::time::Duration::from_millis(50));
    let text = LOCKS.replace(
        "step u2 { UPDATE t SET v = 2 WHERE id = 1; }",
        "step u2 { SET lock_timeout = '50ms'; UPDATE t SET v = 2 WHERE id = 1; }",
    ) + "permutation lock u2 x3 c1\n";
    assert_eq!(events(&text), ["lock", "u2", "x3", "c1"]);
}

#[test]
fn a_waiter_no_timer_can_release_is_stuck() {
    let text = format!("{LOCKS}permutation lock u2\n");
    assert_eq!(events(&text), ["lock", "u2*", "stuck:u2"]);
}
