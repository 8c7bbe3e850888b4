//! The spec corpus (`model/specs/*.spec`) against the model, and against PostgreSQL.
//!
//! 1. Always: every spec parses and runs on the model without a panic, and the model's
//!    output is compared with the PostgreSQL output recorded in `specs/expected/NAME.jsonl`.
//! 2. With `--features postgres` and `DATABASE_URL`: every spec runs live on PostgreSQL; the
//!    live output must equal the recording (re-record with `SPEC_BLESS=1`), and the model is
//!    diffed against it.
//!
//! RATCHET: `specs/KNOWN_DIFFERENCES.txt` lists (name, one-line reason) the specs where the
//! model still differs from PostgreSQL. A differing spec not on the list fails the test, and
//! so does a listed spec that now agrees, so the list stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use model::spec::{PermutationResult, Spec, diff, parse_file, run_model};

fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs")
}

/// The parsed `.spec` files of a folder, in name order.
fn specs_in(dir: &Path) -> Vec<Spec> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "spec"))
        .collect();
    files.sort();
    files.iter().map(|f| parse_file(f).unwrap_or_else(|e| panic!("{e}"))).collect()
}

fn corpus() -> Vec<Spec> {
    specs_in(&specs_dir())
}

fn name(spec: &Spec) -> String {
    Path::new(&spec.file).file_stem().expect("file name").to_string_lossy().into_owned()
}

fn expected_path(spec: &Spec) -> PathBuf {
    specs_dir().join("expected").join(format!("{}.jsonl", name(spec)))
}

fn read_expected(spec: &Spec) -> Option<Vec<PermutationResult>> {
    let text = std::fs::read_to_string(expected_path(spec)).ok()?;
    let parse = |l: &str| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", name(spec)));
    Some(text.lines().filter(|l| !l.trim().is_empty()).map(parse).collect())
}

/// name → reason.
fn known_differences() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(specs_dir().join("KNOWN_DIFFERENCES.txt"))
        .expect("specs/KNOWN_DIFFERENCES.txt exists");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (n, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(!reason.trim().is_empty(), "KNOWN_DIFFERENCES: {n} needs a reason");
            (n.to_string(), reason.trim().to_string())
        })
        .collect()
}

/// Runs the model on a spec, turning an engine panic into an error message.
fn model_results(spec: &Spec) -> Result<Vec<PermutationResult>, String> {
    catch_unwind(AssertUnwindSafe(|| run_model(spec, 0))).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
        format!("{}: the model panicked: {}", name(spec), msg.unwrap_or_default())
    })
}

/// Fails on differences outside the known list and on known entries that now agree.
fn check_ratchet(differing: &BTreeMap<String, Vec<String>>, total: usize, against: &str) {
    let known = known_differences();
    let mut failures = Vec::new();
    for (n, diffs) in differing {
        if !known.contains_key(n) {
            failures.push(format!("{n} differs from {against} and is not in KNOWN_DIFFERENCES:"));
            failures.extend(diffs.iter().take(3).cloned());
        }
    }
    let names: BTreeSet<String> = corpus().iter().map(name).collect();
    for n in known.keys() {
        if !names.contains(n) {
            failures.push(format!("KNOWN_DIFFERENCES names {n}, which is not a spec"));
        } else if !differing.contains_key(n) {
            failures
                .push(format!("{n} now agrees with {against}: remove it from KNOWN_DIFFERENCES"));
        }
    }
    println!("{} of {total} specs agree with {against}", total - differing.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Rewrites KNOWN_DIFFERENCES.txt from `differing`, keeping reasons already written and
/// describing new entries by the model's first differing event.
fn rewrite_known_differences(differing: &BTreeMap<String, Vec<String>>) {
    let path = specs_dir().join("KNOWN_DIFFERENCES.txt");
    let old = std::fs::read_to_string(&path).unwrap();
    let header: String =
        old.lines().take_while(|l| l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    let known = known_differences();
    let mut out = header;
    for (n, diffs) in differing {
        let reason = known.get(n).cloned().unwrap_or_else(|| {
            let model_line = diffs.first().and_then(|d| d.lines().nth(1)).unwrap_or("differs");
            let model_line = model_line.trim().trim_start_matches("model:").trim();
            format!("model gives {}", model_line.chars().take(110).collect::<String>())
        });
        out.push_str(&format!("{n}  {reason}\n"));
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn corpus_is_large_enough_and_every_spec_is_recorded() {
    let specs = corpus();
    assert!(specs.len() >= 60, "only {} specs", specs.len());
    let missing: Vec<String> =
        specs.iter().filter(|s| !expected_path(s).exists()).map(name).collect();
    assert!(
        missing.is_empty(),
        "no recorded PostgreSQL output for {missing:?}: record with SPEC_BLESS=1 DATABASE_URL=… \
         cargo test -p model --features postgres --test model_tests spec_corpus::"
    );
}

#[test]
fn model_agrees_with_recorded_postgres_output() {
    let specs = corpus();
    let mut differing = BTreeMap::new();
    let mut panics = Vec::new();
    for spec in &specs {
        let Some(expected) = read_expected(spec) else { continue };
        match model_results(spec) {
            Ok(model) => {
                let d = diff(&spec.file, "model", &model, "postgres", &expected);
                if !d.is_empty() {
                    differing.insert(name(spec), d);
                }
            }
            Err(e) => {
                panics.push(e);
                differing.insert(name(spec), vec!["panicked".into()]);
            }
        }
    }
    assert!(panics.is_empty(), "{}", panics.join("\n"));
    if std::env::var("SPEC_UPDATE_KNOWN").is_ok_and(|v| v == "1") {
        rewrite_known_differences(&differing);
    }
    check_ratchet(&differing, specs.len(), "recorded PostgreSQL output");
}

/// Specs run on PostgreSQL this many at a time. Most of a spec's time is waiting (settle
/// windows, `deadlock_timeout`), so this is what keeps the two live tests short; an answer
/// that disagrees under it is confirmed alone, below.
#[cfg(feature = "postgres")]
const LIVE_CONCURRENCY: usize = 6;

/// `url` with its database name replaced by `database`.
#[cfg(feature = "postgres")]
fn url_of_database(url: &str, database: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let path = url[authority..].find('/').map_or(url.len(), |i| authority + i);
    let query = url[path..].find('?').map_or("", |i| &url[path + i..]);
    format!("{}/{database}{query}", &url[..path])
}

/// One database per concurrent run, created for one test and dropped with it. Schemas keep
/// tables apart but not advisory locks, which are per database: the corpus has specs taking
/// `pg_advisory_xact_lock(1)`, `(42)`, `(5)` in several files, and two of them running at
/// once would see each other's locks.
#[cfg(feature = "postgres")]
struct SlotDatabases {
    admin_url: String,
    names: Vec<String>,
}

#[cfg(feature = "postgres")]
impl SlotDatabases {
    async fn create(url: &str, label: &str, count: usize) -> SlotDatabases {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        let names: Vec<String> =
            (0..count).map(|k| format!("spec_{label}_{}_{k}", std::process::id())).collect();
        for name in &names {
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e} (the role needs CREATEDB)"));
            }
        }
        let _ = admin.close().await;
        SlotDatabases { admin_url: url.to_string(), names }
    }

    fn url(&self, slot: usize) -> String {
        url_of_database(&self.admin_url, &self.names[slot])
    }

    async fn drop_all(self) {
        use sqlx::Connection;
        let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await else { return };
        for name in &self.names {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await {
                eprintln!("warning: could not drop database {name}: {e}");
            }
        }
        let _ = admin.close().await;
    }
}

/// Runs `specs` on PostgreSQL [`LIVE_CONCURRENCY`] at a time, each run in a database of its
/// own ([`SlotDatabases`], named after `label`); a spec whose output `fine` rejects is run
/// again by itself and judged by that answer. Under load on two cores a session can finish a
/// step a settle window later than it does alone (the fuzzer saw the same), and what the
/// recording and the model are held to is PostgreSQL's answer for the schedule alone.
/// Results come back in `specs` order.
#[cfg(feature = "postgres")]
fn run_live(
    specs: &[Spec],
    url: &str,
    label: &str,
    step_wait_max: std::time::Duration,
    fine: impl Fn(&Spec, &[PermutationResult]) -> bool,
) -> Vec<Vec<PermutationResult>> {
    use model::spec::pg::run_postgres_with;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let slots = runtime.block_on(SlotDatabases::create(url, label, LIVE_CONCURRENCY));
    let mut results: Vec<Option<Vec<PermutationResult>>> = vec![None; specs.len()];
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let mut free: Vec<usize> = (0..LIVE_CONCURRENCY).rev().collect();
        let mut next = 0;
        while next < specs.len() || !tasks.is_empty() {
            while next < specs.len()
                && let Some(slot) = free.pop()
            {
                let (spec, url, index) = (specs[next].clone(), slots.url(slot), next);
                tasks.spawn(async move {
                    let live = run_postgres_with(&spec, &url, step_wait_max).await;
                    (index, slot, live.unwrap_or_else(|e| panic!("{}: {e}", spec.file)))
                });
                next += 1;
            }
            if let Some(joined) = tasks.join_next().await {
                let (index, slot, live) =
                    joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                results[index] = Some(live);
                free.push(slot);
            }
        }
    });
    let lives = specs
        .iter()
        .zip(results)
        .map(|(spec, live)| {
            let live = live.expect("every spec ran");
            if fine(spec, &live) {
                return live;
            }
            eprintln!("{}: confirming alone what it gave {LIVE_CONCURRENCY} at a time", spec.file);
            runtime
                .block_on(run_postgres_with(spec, &slots.url(0), step_wait_max))
                .unwrap_or_else(|e| panic!("{}: {e}", spec.file))
        })
        .collect();
    runtime.block_on(slots.drop_all());
    lives
}

#[cfg(feature = "postgres")]
#[test]
fn live_postgres_matches_the_recording_and_the_model() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("notice: DATABASE_URL is not set; skipping the live PostgreSQL diff");
        return;
    };
    let bless = std::env::var("SPEC_BLESS").is_ok_and(|v| v == "1");
    let specs = corpus();
    // Blessing records what PostgreSQL says alone: every spec is confirmed by itself then.
    let lives = run_live(&specs, &url, "corpus", model::spec::pg::STEP_WAIT_MAX, |spec, live| {
        !bless && read_expected(spec).is_none_or(|recorded| recorded == live)
    });
    let mut unstable = Vec::new();
    let mut differing = BTreeMap::new();
    for (spec, live) in specs.iter().zip(lives) {
        if bless {
            std::fs::create_dir_all(specs_dir().join("expected")).unwrap();
            std::fs::write(expected_path(spec), model::spec::to_json_lines(&live)).unwrap();
        } else if let Some(recorded) = read_expected(spec) {
            unstable.extend(diff(&spec.file, "recorded", &recorded, "live", &live));
        }
        if let Ok(model) = model_results(spec) {
            let d = diff(&spec.file, "model", &model, "postgres", &live);
            if !d.is_empty() {
                differing.insert(name(spec), d);
            }
        } else {
            differing.insert(name(spec), vec!["panicked".into()]);
        }
    }
    assert!(
        unstable.is_empty(),
        "PostgreSQL no longer gives the recorded output:\n{}",
        unstable.join("\n")
    );
    check_ratchet(&differing, specs.len(), "live PostgreSQL");
}

/// `specs/regressions/`: the fuzzer's minimised disagreements. On live PostgreSQL each one
/// named without `-open` must agree with the model (its fix holds), and each `-open` one must
/// still differ (so a fix is noticed and the file renamed).
#[cfg(feature = "postgres")]
#[test]
fn regressions_agree_with_live_postgres_unless_open() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("notice: DATABASE_URL is not set; skipping the regression specs on PostgreSQL");
        return;
    };
    let dir = specs_dir().join("regressions");
    let specs = specs_in(&dir);
    assert!(!specs.is_empty(), "no regression specs in {}", dir.display());
    let model_of =
        |spec: &Spec| model_results(spec).unwrap_or_else(|_| panic!("{}: panicked", spec.file));
    let as_named = |spec: &Spec, live: &[PermutationResult]| {
        let agrees = diff(&spec.file, "model", &model_of(spec), "postgres", live).is_empty();
        agrees != name(spec).ends_with("-open")
    };
    // The fuzzer's own limit on a waiting step: these are its schedules, and one of them
    // (gen-9001-0447) ends in a step stuck for good, which STEP_WAIT_MAX waited 60 s for.
    let lives =
        run_live(&specs, &url, "regressions", model::spec::fuzz::FUZZ_STEP_WAIT_MAX, as_named);
    let mut wrong = Vec::new();
    for (spec, live) in specs.iter().zip(lives) {
        let d = diff(&spec.file, "model", &model_of(spec), "postgres", &live);
        let open = name(spec).ends_with("-open");
        if open && d.is_empty() {
            wrong.push(format!("{}: agrees now; drop -open from its name", spec.file));
        } else if !open && !d.is_empty() {
            wrong.push(d.join("\n"));
        }
    }
    assert!(wrong.is_empty(), "regression specs:\n{}", wrong.join("\n"));
}
