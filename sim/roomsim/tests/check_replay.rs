//! `roomsim check --spec-out` on every broken strategy, replayed on real PostgreSQL with
//! `roomsim spec FILE --database-url URL --diff`: the model and PostgreSQL must agree step by
//! step, and PostgreSQL must show the anomaly itself (the overlapping appointments, the
//! deadlock). Needs DATABASE_URL (skipped with a notice without it; `.ci/run` sets it). Also,
//! without a database: exit codes and nothing half-written for --spec-out.

use std::path::Path;

use crate::support::{roomsim, temp_dir, text};

/// `check` with `args` and `--spec-out`; the spec's text. Exit 1: a violation was found.
fn counterexample(dir: &Path, name: &str, args: &[&str]) -> String {
    let path = dir.join(format!("{name}.spec"));
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--spec-out", path.to_str().unwrap()]);
    let out = roomsim(&all);
    assert_eq!(out.status.code(), Some(1), "{name}: a violation\n{}", text(&out));
    std::fs::read_to_string(&path).expect("the spec is written")
}

#[test]
fn every_broken_strategy_counterexample_replays_on_postgresql() {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!(
            "NOTICE: DATABASE_URL is not set; skipping the PostgreSQL replay of check's specs"
        );
        return;
    };
    let dir = temp_dir("check", "replay");
    let cases: [(&str, &[&str], &str); 4] = [
        ("naive", &["--strategy", "naive", "--rooms", "1"], "room_overlaps"),
        ("rr-room-lock", &["--strategy", "rr-room-lock", "--rooms", "1"], "room_overlaps"),
        (
            "room-lock-unordered",
            &["--strategy", "room-lock-unordered", "--rooms", "2", "--preemptions", "1"],
            "deadlock detected",
        ),
        (
            "no-key-crash",
            &[
                "--strategy",
                "exclusion",
                "--bookings",
                "1",
                "--crash-points",
                "--no-idempotency-key",
            ],
            "b1_crash",
        ),
    ];
    for (name, args, anomaly) in cases {
        let spec = counterexample(&dir, name, args);
        let path = dir.join(format!("{name}.spec"));
        let path = path.to_str().unwrap();
        let diff = roomsim(&["spec", path, "--database-url", &url, "--diff"]);
        assert_eq!(
            diff.status.code(),
            Some(0),
            "{name}: model and PostgreSQL agree\n{}",
            text(&diff)
        );
        let on_pg = text(&roomsim(&["spec", path, "--database-url", &url]));
        match anomaly {
            "room_overlaps" => {
                let after = on_pg.split("step room_overlaps").nth(1).expect("the step ran");
                let table = after.split("step doctor_overlaps").next().unwrap();
                assert!(
                    table.contains("(1 row)")
                        || table.lines().filter(|l| l.contains("09:00:00+00")).count() == 1,
                    "{name}: PostgreSQL shows one overlapping pair:\n{table}"
                );
            }
            "deadlock detected" => assert!(on_pg.contains("deadlock detected"), "{name}:\n{on_pg}"),
            _ => assert!(spec.contains(anomaly), "{name}: the crash is in the spec"),
        }
    }
}

#[test]
fn spec_out_is_written_only_on_a_violation_and_never_half() {
    let dir = temp_dir("check", "out");
    let safe = dir.join("safe.spec");
    let out = roomsim(&["check", "--strategy", "exclusion", "--spec-out", safe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!safe.exists(), "no counterexample, no file");
    let unwritable = dir.join("missing-dir").join("x.spec");
    let out =
        roomsim(&["check", "--strategy", "naive", "--spec-out", unwritable.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--spec-out"), "names the flag: {}", text(&out));
    assert!(!unwritable.parent().unwrap().exists());
    let out = roomsim(&["check", "--shape", "diagonal"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--shape diagonal"), "{}", text(&out));
}
