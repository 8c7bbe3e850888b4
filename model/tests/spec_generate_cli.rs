//! `roomsim spec --generate`: bad flags exit 2 with nothing written; good ones write the same
//! specs for the same seed, and every generated spec runs on the model without getting stuck.

use model::spec::{Event, SpecError, SpecVerdict, parse_file, run_cli, run_model};

fn cli(args: &[&str]) -> Result<SpecVerdict, SpecError> {
    run_cli(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
}

/// Refused as bad input (the binary exits 2), with a message.
fn refused(args: &[&str]) -> bool {
    matches!(cli(args), Err(SpecError::BadInput(message)) if !message.is_empty())
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("roomsim-gen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn bad_generate_flags_exit_2_and_write_nothing() {
    let dir = scratch("bad");
    let out = dir.to_str().unwrap();
    assert!(refused(&["--generate", "0", "--out", out]));
    assert!(refused(&["--generate", "3"]));
    assert!(refused(&["--generate", "3", "--out", out, "--concurrency", "0"]));
    assert!(refused(&["--generate", "x", "--out", out]));
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/specs/nowait.spec");
    assert!(refused(&["--out", out, spec]));
    assert!(!dir.exists(), "a rejected command created {out}");
    assert!(refused(&["--generate", "3", "--out", "/etc/hostname"]));
}

#[test]
fn generate_writes_the_same_specs_for_the_same_seed_and_none_gets_stuck() {
    let (a, b) = (scratch("a"), scratch("b"));
    for dir in [&a, &b] {
        assert_eq!(
            cli(&["--generate", "25", "--seed", "9", "--out", dir.to_str().unwrap()]),
            Ok(SpecVerdict::Passed)
        );
    }
    let mut names: Vec<_> =
        std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names.len(), 25);
    let mut stuck = 0;
    for n in &names {
        let (x, y) = (a.join(n), b.join(n));
        assert_eq!(std::fs::read_to_string(&x).unwrap(), std::fs::read_to_string(&y).unwrap());
        let spec = parse_file(&x).unwrap();
        let results = run_model(&spec, 0);
        stuck += results
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| matches!(e, Event::Stuck { .. }))
            .count();
    }
    assert!(stuck <= 1, "{stuck} generated schedules got stuck on the model");
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}
