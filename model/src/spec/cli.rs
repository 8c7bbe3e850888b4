//! CLI: `roomsim spec FILE.spec... [--format text|json] [--database-url URL] [--diff]`,
//! and the generator / differential fuzzer:
//! `roomsim spec --generate N --seed S --out DIR` writes N generated schedules;
//! `roomsim spec --generate N --seed S --database-url URL --diff [--regressions DIR]` runs
//! them on the model and twice on PostgreSQL, prints agreement figures, and saves each
//! disagreement, minimised, to DIR (default `model/specs/regressions`).
//!
//! [`run`] returns what it found ([`SpecVerdict`]) or why it could not run ([`SpecError`]);
//! the `roomsim` binary (sim/roomsim) wires [`SpecArgs`] as its `spec` subcommand and maps
//! both to its exit codes, in the one place it maps every command's (differences: 1; bad
//! input — an unparsable spec `file:line: what`, bad flags — or no database: 2).

use std::path::PathBuf;

use clap::Parser as _;

use super::output::{diff, to_json_lines, to_text};
use super::parse::{Spec, parse_spec};
use super::runner::{BackendError, PermutationResult};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Like isolationtester's expected files.
    Text,
    /// One `{"permutation":[…],"events":[…]}` object per permutation, per line.
    Json,
}

/// Runs PostgreSQL isolation-tester spec files on the model, on PostgreSQL, or both.
#[derive(clap::Args, Debug, Clone)]
pub struct SpecArgs {
    /// Spec files to run.
    #[arg(value_name = "FILE.spec", required_unless_present = "generate")]
    pub files: Vec<PathBuf>,
    /// Generate this many random booking-shaped schedules (from --seed) instead of reading
    /// files: written to --out, and/or run with --diff.
    #[arg(long, value_name = "N", conflicts_with = "files")]
    pub generate: Option<u64>,
    /// With --generate: the folder to write the generated specs to (created if missing).
    #[arg(long, value_name = "DIR", requires = "generate")]
    pub out: Option<PathBuf>,
    /// With --generate --diff: where minimised disagreements are saved.
    #[arg(
        long,
        value_name = "DIR",
        requires = "generate",
        default_value = "model/specs/regressions"
    )]
    pub regressions: PathBuf,
    /// With --generate --diff: schedules run on PostgreSQL at the same time.
    #[arg(long, value_name = "N", default_value_t = 6, requires = "generate")]
    pub concurrency: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Run on this PostgreSQL (postgres://user@host:port/db) instead of the model.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Run on both the model and PostgreSQL and print the differences (exit 1 if any).
    #[arg(long, requires = "database_url")]
    pub diff: bool,
    /// Seed of the model engine, and of --generate.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What a spec command found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecVerdict {
    /// It ran (and, with `--diff`, the model agreed with PostgreSQL on every spec).
    Passed,
    /// With `--diff`: the model and PostgreSQL differ on some spec or generated schedule.
    Differs,
}

/// Why a spec command could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A flag or a spec file is wrong (each message names the file and line, or the flag).
    #[error("{0}")]
    BadInput(String),
    /// The database could not be reached or could not run the spec.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

#[derive(clap::Parser, Debug)]
#[command(name = "roomsim spec")]
struct Cli {
    #[command(flatten)]
    args: SpecArgs,
}

/// Parses `argv` (without the program name) and runs (for tests of the flags; the binary
/// parses `SpecArgs` as part of its own command line).
pub fn run_cli(argv: &[String]) -> Result<SpecVerdict, SpecError> {
    let full = std::iter::once("roomsim-spec".to_string()).chain(argv.iter().cloned());
    let cli = Cli::try_parse_from(full).map_err(|e| SpecError::BadInput(e.to_string()))?;
    run(&cli.args)
}

/// Reads and parses one spec file.
pub fn parse_file(path: &std::path::Path) -> Result<Spec, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    parse_spec(&text, &name).map_err(|e| e.to_string())
}

/// Upper bound on --generate (a guard against a typo costing hours of PostgreSQL time).
pub const GENERATE_MAX: u64 = 1_000_000;
/// Upper bound on --concurrency (each schedule holds up to 5 PostgreSQL connections).
pub const CONCURRENCY_MAX: usize = 16;

pub fn run(args: &SpecArgs) -> Result<SpecVerdict, SpecError> {
    if let Some(count) = args.generate {
        return run_generate(args, count);
    }
    if args.out.is_some() {
        return Err(SpecError::BadInput("--out needs --generate N".into()));
    }
    let mut specs = Vec::new();
    let mut bad = Vec::new();
    for path in &args.files {
        match parse_file(path) {
            Ok(spec) => specs.push(spec),
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        return Err(SpecError::BadInput(bad.join("\n")));
    }
    match (&args.database_url, args.diff) {
        (None, _) => {
            for spec in &specs {
                print_results(spec, &run_model(spec, args.seed), args.format);
            }
            Ok(SpecVerdict::Passed)
        }
        (Some(url), false) => run_on_postgres(&specs, url, args.format),
        (Some(url), true) => diff_with_postgres(&specs, url, args.seed),
    }
}

fn print_results(spec: &Spec, results: &[PermutationResult], format: Format) {
    match format {
        Format::Text => print!("{}", to_text(spec, results)),
        Format::Json => print!("{}", to_json_lines(results)),
    }
}

/// Runs every permutation of `spec` on a fresh model engine per permutation.
pub fn run_model(spec: &Spec, seed: u64) -> Vec<PermutationResult> {
    let mut backend = super::model_backend::ModelBackend::new(seed);
    let future = super::runner::run_spec(spec, &mut backend);
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // The model backend never waits on IO, so the runner finishes in one poll.
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.expect("the model backend cannot fail"),
        std::task::Poll::Pending => unreachable!("the model backend never pends"),
    }
}

/// Runs the specs on PostgreSQL and compares each with the model: one message per difference
/// (empty when they agree), per spec in order.
#[cfg(feature = "postgres")]
pub fn diff_specs(specs: &[Spec], url: &str, seed: u64) -> Result<Vec<Vec<String>>, BackendError> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut out = Vec::new();
        for spec in specs {
            let pg = super::pg::run_postgres(spec, url).await?;
            let model = run_model(spec, seed);
            out.push(diff(&spec.file, "model", &model, "postgres", &pg));
        }
        Ok(out)
    })
}

#[cfg(feature = "postgres")]
fn runtime() -> Result<tokio::runtime::Runtime, BackendError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BackendError(format!("cannot start a tokio runtime: {e}")))
}

#[cfg(feature = "postgres")]
fn run_on_postgres(specs: &[Spec], url: &str, format: Format) -> Result<SpecVerdict, SpecError> {
    let runtime = runtime()?;
    for spec in specs {
        let results = runtime.block_on(super::pg::run_postgres(spec, url))?;
        print_results(spec, &results, format);
    }
    Ok(SpecVerdict::Passed)
}

#[cfg(feature = "postgres")]
fn diff_with_postgres(specs: &[Spec], url: &str, seed: u64) -> Result<SpecVerdict, SpecError> {
    let diffs = diff_specs(specs, url, seed)?;
    let differing = diffs.iter().filter(|d| !d.is_empty()).count();
    for d in diffs.iter().flatten() {
        println!("{d}");
    }
    println!("{} of {} specs agree with PostgreSQL", specs.len() - differing, specs.len());
    Ok(if differing == 0 { SpecVerdict::Passed } else { SpecVerdict::Differs })
}

#[cfg(not(feature = "postgres"))]
fn run_on_postgres(_: &[Spec], _: &str, _: Format) -> Result<SpecVerdict, SpecError> {
    Err(no_postgres().into())
}

#[cfg(not(feature = "postgres"))]
fn diff_with_postgres(_: &[Spec], _: &str, _: u64) -> Result<SpecVerdict, SpecError> {
    let _ = diff; // Used by the postgres build.
    Err(no_postgres().into())
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> BackendError {
    BackendError("--database-url needs a build with the `postgres` feature of `model`".into())
}

/// `--generate N`: write the schedules to --out, and/or fuzz them against PostgreSQL.
fn run_generate(args: &SpecArgs, count: u64) -> Result<SpecVerdict, SpecError> {
    let bad = |what: String| Err(SpecError::BadInput(what));
    if count == 0 || count > GENERATE_MAX {
        return bad(format!("--generate: {count} is not between 1 and {GENERATE_MAX}"));
    }
    if args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        return bad(format!(
            "--concurrency: {} is not between 1 and {CONCURRENCY_MAX}",
            args.concurrency
        ));
    }
    if args.out.is_none() && !args.diff {
        return bad(
            "--generate needs --out DIR (to write the specs) or --diff (to run them)".into()
        );
    }
    if args.database_url.is_some() && !args.diff {
        return bad("--generate with --database-url needs --diff".into());
    }
    if let Some(dir) = &args.out {
        if dir.exists() && !dir.is_dir() {
            return bad(format!("--out {}: exists and is not a folder", dir.display()));
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            return bad(format!("--out {}: cannot create: {e}", dir.display()));
        }
        for index in 0..count {
            let g = super::generate::generate_runnable(args.seed, index);
            let path = dir.join(format!("{}.spec", g.name));
            if let Err(e) = write_spec(&path, &g.text()) {
                return bad(e);
            }
        }
        println!("wrote {count} specs to {}", dir.display());
    }
    if !args.diff {
        return Ok(SpecVerdict::Passed);
    }
    if args.regressions.exists() && !args.regressions.is_dir() {
        return bad(format!(
            "--regressions {}: exists and is not a folder",
            args.regressions.display()
        ));
    }
    let url = args.database_url.as_deref().expect("clap: --diff requires --database-url");
    fuzz_with_postgres(count, args.seed, url, &args.regressions, args.concurrency)
}

/// Writes a spec through a temporary file, so a failure leaves nothing half-written.
pub(crate) fn write_spec(path: &std::path::Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("spec.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: cannot write: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: cannot write: {e}", path.display())
    })
}

#[cfg(feature = "postgres")]
fn fuzz_with_postgres(
    count: u64,
    seed: u64,
    url: &str,
    regressions: &std::path::Path,
    concurrency: usize,
) -> Result<SpecVerdict, SpecError> {
    let started = std::time::Instant::now();
    let report =
        runtime()?.block_on(super::fuzz::fuzz(count, seed, url, Some(regressions), concurrency))?;
    print!("{}", report.summary());
    println!("({:.0} s wall clock)", started.elapsed().as_secs_f64());
    Ok(if report.disagreements.is_empty() { SpecVerdict::Passed } else { SpecVerdict::Differs })
}

#[cfg(not(feature = "postgres"))]
fn fuzz_with_postgres(
    _: u64,
    _: u64,
    _: &str,
    _: &std::path::Path,
    _: usize,
) -> Result<SpecVerdict, SpecError> {
    Err(no_postgres().into())
}
