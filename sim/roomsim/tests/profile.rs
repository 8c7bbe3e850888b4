//! The latency profile reaches the simulated database: `--profile FILE` on `run` and
//! `explore`, bad files refused with exit 2 naming the file and field, and a slower profile
//! makes the same seed slower.

use std::process::Command;
use std::sync::Arc;

use model::profile::DEFAULT_PROFILE_TOML;
use scenarios::Scenario;
use sim::histograms::Metric;
use sim::world::Profile;
use sim::world::{self, RunConfig};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("roomsim-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every kind a lognormal of this median (no tail).
fn uniform_profile(median_us: u32) -> String {
    model::profile::STATEMENT_KINDS
        .iter()
        .map(|k| format!("[kinds.{k}]\nmedian_us = {median_us}\nsigma = 0.1\n"))
        .collect()
}

fn roomsim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roomsim")).args(args).output().unwrap()
}

#[test]
fn bad_profiles_are_refused_with_exit_2_naming_file_and_field() {
    let bad = DEFAULT_PROFILE_TOML.replacen("sigma = ", "sigma = -", 1);
    let path = temp_file("bad.toml", &bad);
    let file = path.to_str().unwrap();
    for command in ["run", "explore"] {
        let mut args = vec![command, "--scenario", "conflict", "--profile", file];
        if command == "explore" {
            args.extend(["--seeds", "0..1"]);
        }
        let out = roomsim(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains(file) && stderr.contains(".sigma"), "{command}: {stderr}");
    }
    let out = roomsim(&["run", "--scenario", "conflict", "--profile", "/nonexistent/p.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/p.toml") && stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn run_with_the_default_profile_file_matches_the_built_in_default() {
    let path = temp_file("default.toml", DEFAULT_PROFILE_TOML);
    let hash = |extra: &[&str]| {
        let mut args = vec!["run", "--scenario", "conflict", "--seed", "3", "--format", "json"];
        args.extend(extra);
        let out = roomsim(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["trace_hash"].as_str().unwrap().to_string()
    };
    assert_eq!(hash(&[]), hash(&["--profile", path.to_str().unwrap()]));
}

#[test]
fn a_slower_profile_slows_the_same_seed_down() {
    let scenario = Arc::new(Scenario::builtin("storm").unwrap().scenario);
    let p50 = |median_us: u32| {
        let text = uniform_profile(median_us);
        let profile = Profile::from_toml_str(&text, "test").unwrap();
        let config = RunConfig {
            guard: Default::default(),
            scenario: scenario.clone(),
            seed: 5,
            strategy: "exclusion".into(),
            keep_trace: false,
            profile: Arc::new(profile),
            connections: Default::default(),
        };
        let o = world::run(&config).unwrap().outcome;
        assert!(o.passed(), "{:?}", o.violations);
        o.histograms.get(Metric::RoomAssignment).value_at_quantile(0.5)
    };
    let (fast, slow) = (p50(100), p50(2_000));
    assert!(slow > 5 * fast, "room assignment p50: {fast} µs at 100 µs, {slow} µs at 2 ms");
}
