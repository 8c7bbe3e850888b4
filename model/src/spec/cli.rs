//! CLI: `roomsim spec FILE.spec... [--format text|json] [--database-url URL] [--diff]`.
//!
//! Exit codes: 0 ran (and, with `--diff`, every spec agreed), 1 differences (with `--diff`),
//! 2 bad input (unparsable spec: `file:line: what`), bad flags, or no database to talk to.
//! The `sim` crate wires [`SpecArgs`] as its `spec` subcommand and calls [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

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
    #[arg(required = true, value_name = "FILE.spec")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Run on this PostgreSQL (postgres://user@host:port/db) instead of the model.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Run on both the model and PostgreSQL and print the differences (exit 1 if any).
    #[arg(long, requires = "database_url")]
    pub diff: bool,
    /// Seed of the model engine.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(clap::Parser, Debug)]
#[command(name = "roomsim spec")]
struct Cli {
    #[command(flatten)]
    args: SpecArgs,
}

/// Parses `argv` (without the program name) and runs; bad flags exit 2.
pub fn run_cli(argv: &[String]) -> ExitCode {
    let full = std::iter::once("roomsim-spec".to_string()).chain(argv.iter().cloned());
    match Cli::try_parse_from(full) {
        Ok(cli) => run(&cli.args),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS }
        }
    }
}

/// Reads and parses one spec file.
pub fn parse_file(path: &std::path::Path) -> Result<Spec, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    parse_spec(&text, &name).map_err(|e| e.to_string())
}

pub fn run(args: &SpecArgs) -> ExitCode {
    let mut specs = Vec::new();
    let mut bad = false;
    for path in &args.files {
        match parse_file(path) {
            Ok(spec) => specs.push(spec),
            Err(e) => {
                eprintln!("error: {e}");
                bad = true;
            }
        }
    }
    if bad {
        return ExitCode::from(2);
    }
    let result = match (&args.database_url, args.diff) {
        (None, _) => {
            for spec in &specs {
                print_results(spec, &run_model(spec, args.seed), args.format);
            }
            Ok(ExitCode::SUCCESS)
        }
        (Some(url), false) => run_on_postgres(&specs, url, args.format),
        (Some(url), true) => diff_with_postgres(&specs, url, args.seed),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
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
fn run_on_postgres(specs: &[Spec], url: &str, format: Format) -> Result<ExitCode, BackendError> {
    let runtime = runtime()?;
    for spec in specs {
        let results = runtime.block_on(super::pg::run_postgres(spec, url))?;
        print_results(spec, &results, format);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "postgres")]
fn diff_with_postgres(specs: &[Spec], url: &str, seed: u64) -> Result<ExitCode, BackendError> {
    let diffs = diff_specs(specs, url, seed)?;
    let differing = diffs.iter().filter(|d| !d.is_empty()).count();
    for d in diffs.iter().flatten() {
        println!("{d}");
    }
    println!("{} of {} specs agree with PostgreSQL", specs.len() - differing, specs.len());
    Ok(if differing == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(not(feature = "postgres"))]
fn run_on_postgres(_: &[Spec], _: &str, _: Format) -> Result<ExitCode, BackendError> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn diff_with_postgres(_: &[Spec], _: &str, _: u64) -> Result<ExitCode, BackendError> {
    let _ = diff; // Used by the postgres build.
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> BackendError {
    BackendError("--database-url needs a build with the `postgres` feature of `model`".into())
}
