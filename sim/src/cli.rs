//! The `roomsim` command line: `run`, `explore`, `merge`, `strategies`, `spec` (the model's
//! isolation-spec runner) and the real-PostgreSQL commands of `real`.
//!
//! `main() -> ExitCode` calls [`main_impl`], which parses, dispatches and maps every error to
//! a documented exit code (see `exit`): 0 invariants held, 1 an invariant was violated
//! (each failing seed printed with its replay command), 2 bad input. Reports go to stdout;
//! errors and the progress bar to stderr.

use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use scenarios::Scenario;

use crate::error::SimError;
use crate::exit;
use crate::explore::{self, ExploreConfig, ExploreReport};
use crate::report;
use crate::world::{self, BackendKind, RunConfig};

#[derive(Parser, Debug)]
#[command(name = "roomsim", about = "Deterministic simulation of the clinic room-booking backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One deterministic run: report + trace hash.
    Run {
        /// Built-in scenario name or path to a scenario file.
        #[arg(long, env = "ROOMSIM_SCENARIO", default_value = "storm")]
        scenario: String,
        #[arg(long, env = "ROOMSIM_SEED", default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "exclusion")]
        strategy: String,
        /// Which backend serves the bookings.
        #[arg(long, value_enum, default_value = "model")]
        backend: BackendKind,
        /// Print every trace event (the events the hash covers).
        #[arg(long)]
        trace: bool,
        /// Latency profile of the model database (TOML, as written by `roomsim calibrate`);
        /// default: the committed model/profiles/default.toml.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// Run the seed twice in-process and compare trace hashes.
        #[arg(long)]
        check_determinism: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Many seeds: merged histograms, failing seeds with replay commands, explore-hash.
    Explore {
        #[arg(long, env = "ROOMSIM_SCENARIO", default_value = "storm")]
        scenario: String,
        /// Half-open seed range `A..B`.
        #[arg(long, value_parser = parse_range)]
        seeds: Range<u64>,
        #[arg(long, default_value = "exclusion")]
        strategy: String,
        #[arg(long, value_enum, default_value = "model")]
        backend: BackendKind,
        /// Seeds in parallel, 1 to 64 (results identical for any value); default: one per
        /// available core.
        #[arg(
            long,
            env = "ROOMSIM_JOBS",
            default_value_t = crate::explore::jobs_default(),
            value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::explore::JOBS_MAX))
        )]
        jobs: u32,
        /// `I/N`: run only seeds with seed % N == I.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        #[arg(long)]
        stop_on_failure: bool,
        /// Latency profile of the model database (TOML, as written by `roomsim calibrate`);
        /// default: the committed model/profiles/default.toml.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Combine `explore --format json` outputs (shards) into one report.
    Merge {
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
    /// Systematic exploration: every interleaving of N bookings' statements (small scopes).
    Check {
        #[arg(long, default_value = "exclusion")]
        strategy: String,
        #[arg(long, default_value_t = 2)]
        bookings: u32,
        #[arg(long, default_value_t = 1)]
        rooms: u32,
        /// CHESS-style preemption bound; unset = exhaustive.
        #[arg(long)]
        preemptions: Option<u32>,
        #[arg(long, default_value_t = 1_000_000)]
        max_schedules: u64,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// List the concurrency-control strategies, marking the deliberately broken ones.
    Strategies {
        #[arg(long, value_enum, default_value = "model")]
        backend: BackendKind,
    },
    /// Run PostgreSQL isolation-tester spec files on the model (and/or PostgreSQL).
    Spec(model::spec::SpecArgs),
    /// Real PostgreSQL: serve, load, calibrate, validate, db setup.
    #[command(flatten)]
    Real(crate::real::RealCommand),
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (a, b) = text.split_once("..").ok_or(format!("`{text}` is not A..B"))?;
    let a: u64 = a.parse().map_err(|_| format!("`{a}` is not a seed"))?;
    let b: u64 = b.parse().map_err(|_| format!("`{b}` is not a seed"))?;
    if b <= a {
        return Err(format!("`{text}` is empty (B must exceed A)"));
    }
    Ok(a..b)
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (i, n) = text.split_once('/').ok_or(format!("`{text}` is not I/N"))?;
    let i: u64 = i.parse().map_err(|_| format!("`{i}` is not a shard index"))?;
    let n: u64 = n.parse().map_err(|_| format!("`{n}` is not a shard count"))?;
    if n == 0 || i >= n {
        return Err(format!("shard `{text}` needs 0 <= I < N"));
    }
    Ok((i, n))
}

/// Parses arguments and runs; returns the process exit code.
pub fn main_impl(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() { exit::BAD_INPUT } else { exit::OK };
            return ExitCode::from(code);
        }
    };
    let command = match cli.command {
        Command::Spec(args) => return model::spec::run(&args),
        Command::Real(cmd) => return crate::real::run(cmd),
        other => other,
    };
    match dispatch(command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A cause already quoted by the message (e.g. the io error in "cannot read
            // scenario file: …") is not printed again.
            let mut printed = e.to_string();
            eprintln!("error: {printed}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let text = s.to_string();
                if !printed.contains(&text) {
                    eprintln!("Caused by: {text}");
                    printed.push_str(&text);
                }
                source = s.source();
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(command: Command) -> Result<u8, SimError> {
    match command {
        Command::Run {
            scenario,
            seed,
            strategy,
            backend,
            profile,
            trace,
            check_determinism,
            format,
        } => {
            let loaded = Scenario::resolve(&scenario)?;
            let config = RunConfig {
                scenario: Arc::new(loaded.scenario),
                seed,
                strategy,
                keep_trace: trace,
                backend,
                profile: world::load_profile(profile.as_deref())?,
            };
            // The replay command names the profile too (after the scenario argument).
            let scenario_arg = match &profile {
                Some(file) => format!("{scenario} --profile {}", file.display()),
                None => scenario,
            };
            run(&scenario_arg, config, check_determinism, format)
        }
        Command::Explore {
            scenario,
            seeds,
            strategy,
            backend,
            jobs,
            shard,
            stop_on_failure,
            profile,
            format,
        } => {
            let loaded = Scenario::resolve(&scenario)?;
            let profile_loaded = world::load_profile(profile.as_deref())?;
            let cfg = ExploreConfig {
                scenario: Arc::new(loaded.scenario),
                scenario_arg: scenario,
                strategy,
                backend,
                seeds,
                jobs,
                shard,
                stop_on_failure,
                progress: true,
                profile: profile_loaded,
                profile_arg: profile.map(|file| file.display().to_string()),
            };
            let r = explore::explore(&cfg)?;
            print_explore(&r, &cfg.scenario, format)
        }
        Command::Merge { files, format } => merge(files, format),
        Command::Spec(_) | Command::Real(_) => unreachable!("handled by main_impl"),
        Command::Check { strategy, bookings, rooms, preemptions, max_schedules, format } => {
            let config =
                crate::check::CheckConfig { strategy, bookings, rooms, preemptions, max_schedules };
            let report = crate::check::run_check(&config)?;
            let text = match format {
                Format::Json => crate::check::report::json(&config, &report),
                Format::Text => crate::check::report::text(&config, &report),
            };
            println!("{text}");
            Ok(if report.counterexample.is_some() { exit::INVARIANT_VIOLATED } else { exit::OK })
        }
        Command::Strategies { backend } => {
            for (name, broken) in world::strategies(backend) {
                let mark = if broken { "  BROKEN (planted bug, never default)" } else { "" };
                println!("{name}{mark}");
            }
            Ok(exit::OK)
        }
    }
}

fn run(scenario_arg: &str, config: RunConfig, check: bool, format: Format) -> Result<u8, SimError> {
    let (seed, trace) = (config.seed, config.keep_trace);
    let result = world::run(&config)?;
    if check {
        let again = world::run(&config)?;
        if again.outcome.trace_hash != result.outcome.trace_hash {
            eprintln!(
                "NON-DETERMINISM: seed {seed} gave trace hashes {} and {}",
                result.outcome.trace_hash, again.outcome.trace_hash
            );
            return Ok(exit::INVARIANT_VIOLATED);
        }
        eprintln!("determinism check passed: both runs gave {}", result.outcome.trace_hash);
    }
    if trace {
        for e in &result.events {
            println!("[{:>10} us] {:<7} {}", e.at_us, e.source, e.text);
        }
    }
    let o = &result.outcome;
    match format {
        Format::Text => print!("{}", report::run_text(o, &config.scenario, scenario_arg)),
        Format::Json => {
            let json = report::run_json(o, &config.scenario, scenario_arg);
            println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialize"));
        }
    }
    Ok(if o.passed() { exit::OK } else { exit::INVARIANT_VIOLATED })
}

fn print_explore(r: &ExploreReport, scenario: &Scenario, format: Format) -> Result<u8, SimError> {
    match format {
        Format::Text => print!("{}", explore::text(r, scenario)?),
        Format::Json => println!("{}", serde_json::to_string_pretty(r).expect("reports serialize")),
    }
    Ok(if r.seeds_failed.is_empty() { exit::OK } else { exit::INVARIANT_VIOLATED })
}

fn merge(files: Vec<PathBuf>, format: Format) -> Result<u8, SimError> {
    let mut reports = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file)
            .map_err(|e| SimError::BadInput(format!("{name}: {e}")))?;
        let r: ExploreReport = serde_json::from_str(&text)
            .map_err(|e| SimError::BadInput(format!("{name}: not an explore JSON report: {e}")))?;
        reports.push((name, r));
    }
    let Some((_, first)) = reports.first() else {
        return Err(SimError::BadInput("merge needs at least one JSON file".into()));
    };
    let scenario = Scenario::resolve(&first.scenario_arg)?.scenario;
    let merged = explore::merge(reports, &scenario)?;
    print_explore(&merged, &scenario, format)
}
