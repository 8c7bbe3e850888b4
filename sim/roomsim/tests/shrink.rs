//! `roomsim shrink`: a failing storm seed under naive shrinks to two bookings whose spec
//! replays the double booking on real PostgreSQL (needs DATABASE_URL; the replay is skipped
//! with a notice without it); a passing seed has nothing to shrink; bad input exits 2.

use crate::support::{roomsim, temp_dir, text};

/// Runs `shrink` with `args` and `--spec-out` into a fresh folder named `name`; the seed must
/// fail (exit 1). Returns what it printed and the spec's path.
fn shrink_failing_seed(name: &str, args: &[&str]) -> (String, String) {
    let spec = temp_dir("shrink", name).join(format!("{name}.spec"));
    let spec = spec.to_str().unwrap().to_string();
    let out = roomsim(&[&["shrink"], args, &["--spec-out", spec.as_str()]].concat());
    let printed = text(&out);
    assert_eq!(out.status.code(), Some(1), "the seed fails\n{printed}");
    (printed, spec)
}

/// The spec replayed on PostgreSQL (`DATABASE_URL`): `--diff` must find the model and
/// PostgreSQL agreeing; returns PostgreSQL's output. `None`, with a notice naming `what`,
/// without a database.
fn replayed_on_postgresql(spec: &str, what: &str) -> Option<String> {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("NOTICE: DATABASE_URL is not set; skipping the PostgreSQL replay of {what}");
        return None;
    };
    // A database of its own: the replays take advisory locks, which are per database (not
    // per schema), and this file's tests replay at the same time with the same lock keys;
    // sharing `test`, one replay's pg_try_advisory_xact_lock saw the other's lock.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let target = real::database::DbTarget::new(&url, None).expect("DATABASE_URL is a postgres URL");
    let name = real::database::unique_database_name("shrink_replay");
    let database = runtime
        .block_on(real::database::TempDatabase::create(&target, &name))
        .unwrap_or_else(|e| panic!("{e}"));
    let url = database.target.url.clone();
    let diff = roomsim(&["spec", spec, "--database-url", &url, "--diff"]);
    let on_pg = text(&roomsim(&["spec", spec, "--database-url", &url]));
    runtime.block_on(database.drop_database());
    assert_eq!(diff.status.code(), Some(0), "model and PostgreSQL agree\n{}", text(&diff));
    Some(on_pg)
}

/// The rows of a replayed spec's `room_overlaps` step.
fn room_overlaps(on_pg: &str) -> &str {
    let after = on_pg.split("step room_overlaps").nth(1).expect("the step ran");
    after.split("step doctor_overlaps").next().unwrap()
}

#[test]
fn a_double_booking_seed_shrinks_to_two_bookings_that_double_book_on_postgresql() {
    let args = ["--scenario", "storm", "--strategy", "naive", "--seed", "0"];
    let (printed, spec) = shrink_failing_seed("naive", &args);
    assert!(printed.contains("breaks no_room_overlap"), "{printed}");
    assert!(printed.contains("smallest reproduction: 2 bookings"), "{printed}");
    assert!(printed.contains("invariant no_room_overlap"), "the table names it\n{printed}");
    let written = std::fs::read_to_string(&spec).expect("the spec is written");
    assert!(written.contains("session b1") && written.contains("session b2"), "{written}");
    let Some(on_pg) = replayed_on_postgresql(&spec, "shrink's spec") else { return };
    let table = room_overlaps(&on_pg);
    assert!(table.contains("(1 row)"), "PostgreSQL shows one overlapping pair:\n{table}");
}

/// Regression: with only the 100 pairs sent closest together tried (the old default), this
/// seed's deadlock had no reproduction (364 checks, 42,220 schedules); its pair (#18, #20) was
/// sent 1.35 ms apart among 50 bookings in 20 ms. Every pair is a candidate now.
#[test]
fn a_deadlock_seed_shrinks_to_its_pair_and_deadlocks_on_postgresql() {
    let args = ["--scenario", "conflict", "--strategy", "room-lock-unordered", "--seed", "0"];
    let (printed, spec) = shrink_failing_seed("unordered", &args);
    assert!(printed.contains("smallest reproduction: 2 bookings (#18, #20)"), "{printed}");
    assert!(printed.contains("invariant no_deadlock"), "{printed}");
    let old_budget = ["--pairs-max", "100", "--preemptions-max", "1"];
    let old_budget = roomsim(&[&["shrink"], &args[..], &old_budget[..]].concat());
    assert!(text(&old_budget).contains("no reproduction"), "{}", text(&old_budget));
    let Some(on_pg) = replayed_on_postgresql(&spec, "the deadlock") else { return };
    assert!(on_pg.contains("deadlock detected"), "PostgreSQL deadlocks too:\n{on_pg}");
}

/// A late pair of `all` (each booker books twice) starts from the rows the run had committed
/// when it was sent; its spec rebuilds them in the setup, and PostgreSQL shows the pair's
/// double booking and no other (the earlier rows hold none). The seed must keep a LATE pair
/// (one with rows before it): seed 6, with 30 earlier rows, was this test's seed until the
/// cores were time-sliced by default; seed 11 until the profile was re-calibrated after the
/// day-sheet fix (2026-12-06); seed 5's pair has come after 5, then 4, and since the cores
/// run on the simulation's ticks (2026-12-07) 6 rows. The count is read from the report.
#[test]
fn a_late_pair_replays_on_top_of_the_rows_committed_before_it() {
    let args = ["--scenario", "all", "--strategy", "naive", "--seed", "5"];
    let (printed, spec) = shrink_failing_seed("late", &args);
    let earlier: usize = printed
        .split(" after the ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the report names the rows committed before:\n{printed}"));
    assert!(earlier > 0, "a late pair: {printed}");
    assert!(printed.contains(&format!("after the {earlier} bookings committed before them")));
    let written = std::fs::read_to_string(&spec).expect("the spec is written");
    let setup = written.split("\nsession ").next().unwrap();
    let rebuilt = setup.matches("INSERT INTO appointments").count();
    assert_eq!(rebuilt, earlier, "the earlier rows are in the setup");
    let Some(on_pg) = replayed_on_postgresql(&spec, "the late pair") else { return };
    let table = room_overlaps(&on_pg);
    assert!(table.contains("(1 row)"), "PostgreSQL shows the pair's overlap only:\n{table}");
}

#[test]
fn a_passing_seed_has_nothing_to_shrink_and_bad_input_exits_2() {
    let dir = temp_dir("shrink", "safe");
    let spec = dir.join("safe.spec");
    let spec = spec.to_str().unwrap();
    let out = roomsim(&["shrink", "--strategy", "exclusion", "--seed", "0", "--spec-out", spec]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing to shrink"), "{}", text(&out));
    assert!(!std::path::Path::new(spec).exists(), "no reproduction, no file");
    let out = roomsim(&["shrink", "--scenario", "no-such-scenario", "--seed", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no-such-scenario"), "{}", text(&out));
    let out = roomsim(&["shrink", "--strategy", "optimistic", "--seed", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("optimistic"), "{}", text(&out));
    let out = roomsim(&["shrink"]);
    assert_eq!(out.status.code(), Some(2), "--seed is required: {}", text(&out));
}

#[test]
fn explore_offers_a_shrink_command_that_works() {
    let out =
        roomsim(&["explore", "--scenario", "storm", "--strategy", "naive", "--seeds", "0..2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    let line = printed.lines().find_map(|l| l.trim().strip_prefix("shrink: "));
    let command = line.unwrap_or_else(|| panic!("a shrink line per failing seed:\n{printed}"));
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    assert_eq!(args[0], "shrink", "{command}");
    let out = roomsim(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("smallest reproduction: 2 bookings"), "{}", text(&out));
}
