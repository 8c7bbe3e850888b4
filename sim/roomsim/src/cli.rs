//! The `roomsim` command line: `run`, `explore`, `merge`, `strategies`, `spec` (the model's
//! isolation-spec runner), `openapi` (the HTTP API's document), `compare` (two reports, a
//! regression verdict: `regression`) and the real-PostgreSQL commands of `real`.
//!
//! `main() -> ExitCode` calls [`main_impl`], which parses, dispatches and maps every error to
//! a documented exit code (see `exit`): 0 invariants held, 1 an invariant was violated
//! (each failing seed printed with its replay command), 2 bad input. Reports go to stdout;
//! errors and the progress bar to stderr.

use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use backend_core::db::guard::GuardMode;
use clap::{Parser, Subcommand, ValueEnum};
use scenarios::Scenario;

use sim::SimError;
use sim::explore::{self, ExploreConfig, ExploreReport};
use sim::regression;
use sim::report;
use sim::world::{self, RunConfig};

use crate::error::Error;
use crate::exit;

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
        /// The backend's transaction guard; planted bugs: `late-begin` (it leaks a
        /// transaction when a request is cancelled while its BEGIN is in flight) and
        /// `no-idle-timeout` (sessions without idle_in_transaction_session_timeout: a
        /// connection lost after BEGIN leaves its transaction open).
        #[arg(long, default_value = "safe", value_parser = parse_guard)]
        guard: GuardMode,
        /// Print every trace event (the events the hash covers).
        #[arg(long)]
        trace: bool,
        /// Latency profile of the model database (TOML, as written by `roomsim calibrate`);
        /// default: the committed model/profiles/default.toml.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// One connection per request attempt instead of one HTTP/1.1 keep-alive connection
        /// per simulated user (the default, as Locust's HttpUser).
        #[arg(long)]
        fresh_connections: bool,
        /// Run the seed twice in-process and compare trace hashes.
        #[arg(long)]
        check_determinism: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also write the report (JSON and text) into DIR, named by the UTC time of the run
        /// (for `roomsim compare` later).
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
        /// Also write a self-contained HTML page of the run: bookings by room (overlaps in
        /// red), the database sessions' statements with lock waits and deadlocks, latencies.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
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
        /// The backend's transaction guard; planted bugs: `late-begin` (it leaks a
        /// transaction when a request is cancelled while its BEGIN is in flight) and
        /// `no-idle-timeout` (sessions without idle_in_transaction_session_timeout: a
        /// connection lost after BEGIN leaves its transaction open).
        #[arg(long, default_value = "safe", value_parser = parse_guard)]
        guard: GuardMode,
        /// Seeds in parallel, 1 to 64 (results identical for any value); default: one per
        /// available core.
        #[arg(
            long,
            env = "ROOMSIM_JOBS",
            default_value_t = sim::explore::jobs_default(),
            value_parser = clap::value_parser!(u32).range(1..=i64::from(sim::explore::JOBS_MAX))
        )]
        jobs: u32,
        /// `I/N`: run only seeds with seed % N == I. `auto`: I and N from the environment:
        /// ROOMSIM_SHARD_INDEX and ROOMSIM_SHARD_COUNT (GitHub Actions: set them from
        /// `strategy.job-index` / `strategy.job-total`), else Kubernetes Indexed Jobs'
        /// JOB_COMPLETION_INDEX with ROOMSIM_SHARD_COUNT (the Job's `completions`).
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        #[arg(long)]
        stop_on_failure: bool,
        /// Pair-pattern coverage: a pattern counts as covered once seen in K seeds (K ≥ 1);
        /// the report gives the seeds needed until every seen pattern was.
        #[arg(
            long,
            value_name = "K",
            default_value_t = sim::patterns::PATTERN_K_DEFAULT,
            value_parser = clap::value_parser!(u32).range(1..)
        )]
        pattern_k: u32,
        /// One connection per request attempt instead of one HTTP/1.1 keep-alive connection
        /// per simulated user (the default, as Locust's HttpUser).
        #[arg(long)]
        fresh_connections: bool,
        /// Latency profile of the model database (TOML, as written by `roomsim calibrate`);
        /// default: the committed model/profiles/default.toml.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also write the report (JSON and text) into DIR, named by the UTC time of the run.
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
        /// Also write a self-contained HTML page: every seed's outcome, the failing seeds with
        /// their replay commands, the merged latencies.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Compare two run or explore JSON reports: each latency side by side with its change and
    /// a verdict; exit 1 on a regression (change over the threshold AND a KS test at the
    /// recorded sample sizes says the distributions differ).
    Compare {
        old: PathBuf,
        new: PathBuf,
        /// A change smaller than this (percent of the old value) is never a regression.
        #[arg(long, default_value_t = sim::regression::THRESHOLD_PERCENT_DEFAULT)]
        threshold_percent: f64,
        /// Significance level of the two-sample Kolmogorov–Smirnov test.
        #[arg(long, default_value_t = sim::regression::ALPHA_DEFAULT)]
        alpha: f64,
    },
    /// Combine `explore --format json` outputs (shards) into one report.
    Merge {
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
    },
    /// From a failing run seed to its smallest reproduction: the fewest bookings, then the
    /// fewest preemptions and statements, found by `check` in the run's clinic.
    /// Exit 1 when the seed breaks an invariant (with the reproduction, if one was found),
    /// 0 when it breaks none.
    Shrink {
        /// Built-in scenario name or path to a scenario file.
        #[arg(long, default_value = "storm")]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value = "exclusion")]
        strategy: String,
        /// Latency profile (as for `run`): it shapes the run's interleaving.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// As for `run`: one connection per request attempt (it shapes the run's interleaving).
        #[arg(long)]
        fresh_connections: bool,
        /// Highest preemption bound tried per candidate.
        #[arg(long, default_value_t = 2)]
        preemptions_max: u32,
        /// Candidate pairs tried, the bookings sent closest together first (the default
        /// covers every pair of a 50-booking run; a run's schedule budget still bounds it).
        #[arg(long, default_value_t = sim::check::shrink::ShrinkLimits::default().pairs_max)]
        pairs_max: usize,
        /// Write the reproduction as an isolation spec (for `roomsim spec FILE --diff`).
        #[arg(long, value_name = "FILE")]
        spec_out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Systematic exploration: every interleaving of N bookings' statements (small scopes).
    Check {
        #[arg(long, default_value = "exclusion")]
        strategy: String,
        /// Concurrent bookings, 1 to 4.
        #[arg(long, default_value_t = 2)]
        bookings: u32,
        /// Rooms of the clinic, 1 to 3.
        #[arg(long, default_value_t = 1)]
        rooms: u32,
        /// How the bookings relate: same-slot (own doctor and patient, 09:00), same-doctor,
        /// same-patient, overlapping (10 minutes apart), adjacent (back to back, inside the
        /// room's turnover), after-turnover (no conflict).
        #[arg(long, default_value = "same-slot")]
        shape: String,
        /// The bookings' fallback when no room is free: reject, suggest, book_without_room.
        #[arg(long, default_value = "reject")]
        fallback: String,
        /// Backend crashes per schedule (bare flag = 1): a booking's backend may crash between
        /// any two of its statements (or before its answer arrives), at most once per booking;
        /// the client then sends the same request again.
        #[arg(long, value_name = "N", num_args = 0..=1, default_value_t = 0, default_missing_value = "1")]
        crash_points: u32,
        /// Send the bookings (and their retries) without an Idempotency-Key.
        #[arg(long)]
        no_idempotency_key: bool,
        /// CHESS-style preemption bound; unset = exhaustive.
        #[arg(long)]
        preemptions: Option<u32>,
        /// Turn off the partial-order reduction (sleep sets): every order is run.
        #[arg(long)]
        no_reduction: bool,
        /// Turn off visited-state caching: no schedule stops at a state explored before.
        #[arg(long)]
        no_state_cache: bool,
        #[arg(long, default_value_t = 1_000_000)]
        max_schedules: u64,
        /// Write the shortest counterexample as an isolation spec, for
        /// `roomsim spec FILE --database-url URL --diff` (written only on a violation).
        #[arg(long, value_name = "FILE")]
        spec_out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// List the concurrency-control strategies, marking the deliberately broken ones.
    Strategies,
    /// Run PostgreSQL isolation-tester spec files on the model (and/or PostgreSQL).
    Spec(model::spec::SpecArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `serve` answers at /openapi.json).
    Openapi,
    /// Real PostgreSQL: serve, load, calibrate, validate, db setup.
    #[command(flatten)]
    Real(real::RealCommand),
}

fn parse_guard(text: &str) -> Result<GuardMode, String> {
    text.parse()
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
    if text == "auto" {
        return shard_from_environment(|name| std::env::var(name).ok());
    }
    let (i, n) = text.split_once('/').ok_or(format!("`{text}` is not I/N or auto"))?;
    let i: u64 = i.parse().map_err(|_| format!("`{i}` is not a shard index"))?;
    let n: u64 = n.parse().map_err(|_| format!("`{n}` is not a shard count"))?;
    if n == 0 || i >= n {
        return Err(format!("shard `{text}` needs 0 <= I < N"));
    }
    Ok((i, n))
}

/// `--shard auto`: the shard from the environment of a CI matrix job or a Kubernetes Indexed
/// Job (see the flag's help). Every failure names the variables it read.
fn shard_from_environment(var: impl Fn(&str) -> Option<String>) -> Result<(u64, u64), String> {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    let number = |name: &str, value: String| {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("--shard auto: {name}=`{value}` is not a number"))
    };
    let index = match (set("ROOMSIM_SHARD_INDEX"), set("JOB_COMPLETION_INDEX")) {
        (Some(value), _) => number("ROOMSIM_SHARD_INDEX", value)?,
        (None, Some(value)) => number("JOB_COMPLETION_INDEX", value)?,
        (None, None) => {
            return Err("--shard auto: neither ROOMSIM_SHARD_INDEX nor JOB_COMPLETION_INDEX is \
                        set (give --shard I/N outside a CI matrix or an Indexed Job)"
                .to_string());
        }
    };
    let Some(count) = set("ROOMSIM_SHARD_COUNT") else {
        return Err("--shard auto: ROOMSIM_SHARD_COUNT (the number of shards) is not set".into());
    };
    let count = number("ROOMSIM_SHARD_COUNT", count)?;
    if count == 0 || index >= count {
        return Err(format!("--shard auto: shard {index} of {count} needs 0 <= index < count"));
    }
    Ok((index, count))
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
    let result: Result<u8, Error> = match cli.command {
        Command::Spec(args) => {
            model::spec::run(&args).map_err(Error::from).map(|verdict| match verdict {
                model::spec::SpecVerdict::Passed => exit::OK,
                model::spec::SpecVerdict::Differs => exit::FAILED,
            })
        }
        Command::Real(cmd) => real::run(cmd).map(|()| exit::OK).map_err(Error::from),
        other => dispatch(other).map_err(Error::from),
    };
    match result {
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

/// The scenario as a replay command names it: the user's argument, and the flags that shape
/// the run after it (the profile, `--fresh-connections`).
fn replay_scenario_arg(
    scenario: String,
    profile: Option<&std::path::Path>,
    connections: world::Connections,
) -> String {
    let mut arg = match profile {
        Some(file) => format!("{scenario} --profile {}", file.display()),
        None => scenario,
    };
    if connections == world::Connections::Fresh {
        arg.push_str(" --fresh-connections");
    }
    arg
}

fn dispatch(command: Command) -> Result<u8, SimError> {
    match command {
        Command::Run {
            scenario,
            seed,
            strategy,
            guard,
            profile,
            fresh_connections,
            trace,
            check_determinism,
            format,
            archive,
            html,
        } => {
            let loaded = Scenario::resolve(&scenario)?;
            let connections = world::Connections::from_fresh_flag(fresh_connections);
            let config = RunConfig {
                guard,
                scenario: Arc::new(loaded.scenario),
                seed,
                strategy,
                // The page needs the kept statements; the trace hash is the same either way.
                keep_trace: trace || html.is_some(),
                profile: world::load_profile(profile.as_deref())?,
                connections,
            };
            let scenario_arg = replay_scenario_arg(scenario, profile.as_deref(), connections);
            let archive = archive.map(|dir| {
                Archive::new(
                    dir,
                    &format!("run-{}-{}-seed{seed}", config.scenario.name, config.strategy),
                )
            });
            let outputs = RunOutputs { print_trace: trace, archive: archive.as_ref(), html };
            run_scenario(&scenario_arg, config, check_determinism, format, outputs)
        }
        Command::Explore {
            scenario,
            seeds,
            strategy,
            guard,
            jobs,
            shard,
            stop_on_failure,
            pattern_k,
            fresh_connections,
            profile,
            format,
            archive,
            html,
        } => {
            let archive = archive.map(|dir| {
                let name =
                    format!("explore-{scenario}-{strategy}-seeds{}-{}", seeds.start, seeds.end);
                Archive::new(dir, &name)
            });
            let loaded = Scenario::resolve(&scenario)?;
            let profile_loaded = world::load_profile(profile.as_deref())?;
            let cfg = ExploreConfig {
                scenario: Arc::new(loaded.scenario),
                scenario_arg: scenario,
                strategy,
                guard,
                seeds,
                jobs,
                shard,
                stop_on_failure,
                progress: true,
                profile: profile_loaded,
                profile_arg: profile.map(|file| file.display().to_string()),
                pattern_k,
                connections: world::Connections::from_fresh_flag(fresh_connections),
            };
            let r = explore::explore(&cfg)?;
            if let Some(archive) = &archive {
                let json = serde_json::to_string_pretty(&r).expect("reports serialize");
                archive.write(&json, &explore::text(&r, &cfg.scenario)?)?;
            }
            if let Some(path) = &html {
                sim::run_html::write_page(path, &sim::run_html::render_explore(&r))?;
            }
            print_explore(&r, &cfg.scenario, format)
        }
        Command::Merge { files, format } => merge(files, format),
        Command::Compare { old, new, threshold_percent, alpha } => {
            if !(threshold_percent >= 0.0 && threshold_percent.is_finite()) {
                let why = format!("--threshold-percent {threshold_percent}: must be >= 0");
                return Err(SimError::BadInput(why));
            }
            if !(alpha > 0.0 && alpha < 1.0) {
                return Err(SimError::BadInput(format!("--alpha {alpha}: must be in (0, 1)")));
            }
            let (old, new) = (regression::load(&old)?, regression::load(&new)?);
            let judgement =
                regression::judge(&old.histograms, &new.histograms, threshold_percent, alpha);
            print!("{}", regression::text(&old, &new, &judgement));
            Ok(if judgement.regressed() { exit::FAILED } else { exit::OK })
        }
        Command::Spec(_) | Command::Real(_) => unreachable!("handled by main_impl"),
        Command::Openapi => {
            println!("{}", backend_core::http::openapi::document_json());
            Ok(exit::OK)
        }
        Command::Check {
            strategy,
            bookings,
            rooms,
            shape,
            fallback,
            crash_points,
            no_idempotency_key,
            preemptions,
            no_reduction,
            no_state_cache,
            max_schedules,
            spec_out,
            format,
        } => {
            let config = sim::check::CheckConfig {
                strategy,
                bookings,
                rooms,
                shape: shape.parse()?,
                fallback,
                crash_points,
                idempotency_key: !no_idempotency_key,
                preemptions,
                reduction: !no_reduction,
                state_cache: !no_state_cache,
                max_schedules,
                given: None,
            };
            let report = sim::check::run_check(&config)?;
            if let (Some(path), Some(counterexample)) = (&spec_out, &report.counterexample) {
                let text = sim::check::spec_out::render(&config, counterexample)?;
                sim::check::spec_out::write(path, &text)?;
            }
            let text = match format {
                Format::Json => sim::check::report::json(&config, &report),
                Format::Text => sim::check::report::text(&config, &report),
            };
            println!("{text}");
            Ok(if report.counterexample.is_some() { exit::FAILED } else { exit::OK })
        }
        Command::Shrink {
            scenario,
            seed,
            strategy,
            profile,
            fresh_connections,
            preemptions_max,
            pairs_max,
            spec_out,
            format,
        } => {
            let loaded = Scenario::resolve(&scenario)?;
            let connections = world::Connections::from_fresh_flag(fresh_connections);
            let run = RunConfig {
                guard: GuardMode::Safe,
                scenario: Arc::new(loaded.scenario),
                seed,
                strategy,
                keep_trace: false,
                profile: world::load_profile(profile.as_deref())?,
                connections,
            };
            let limits = sim::check::shrink::ShrinkLimits {
                preemptions_max,
                pairs_max,
                ..Default::default()
            };
            let report = sim::check::shrink::shrink(&run, limits)?;
            if let (Some(path), Some(found)) = (&spec_out, &report.found)
                && let Some(counterexample) = &found.report.counterexample
            {
                let text = sim::check::spec_out::render(&found.config, counterexample)?;
                sim::check::spec_out::write(path, &text)?;
            }
            let text = match format {
                Format::Json => sim::check::report::shrink_json(&run, &report),
                Format::Text => sim::check::report::shrink_text(
                    &run,
                    &replay_scenario_arg(scenario, profile.as_deref(), connections),
                    &report,
                ),
            };
            println!("{text}");
            Ok(if report.run_invariants.is_empty() { exit::OK } else { exit::FAILED })
        }
        Command::Strategies => {
            for (name, broken) in world::strategies() {
                let mark = if broken { "  BROKEN (planted bug, never default)" } else { "" };
                println!("{name}{mark}");
            }
            println!("\ntransaction guards (--guard):");
            for guard in GuardMode::ALL {
                let mark =
                    if guard.is_broken() { "  BROKEN (planted bug, never default)" } else { "" };
                println!("{}{mark}", guard.name());
            }
            Ok(exit::OK)
        }
    }
}

/// Where `--archive` writes a report:
/// `DIR/<UTC time>-<run|explore>-<scenario>-<strategy>-<seed(s)>[-N].{json,txt}`.
struct Archive {
    dir: PathBuf,
    name: String,
}

impl Archive {
    /// `name` with every character but ASCII letters, digits, `_` and `.` made `-`.
    fn new(dir: PathBuf, name: &str) -> Archive {
        let keep = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
        let name = name.chars().map(|c| if keep(c) { c } else { '-' }).collect();
        Archive { dir, name }
    }

    /// Writes both files (each to a temporary name first, then renamed: never half a file),
    /// never over an earlier archive (a `-2`, `-3`, … suffix when the name is taken). The time
    /// in the name is the wall clock's: it dates the archive, it is no input of the run.
    fn write(&self, json: &str, text: &str) -> Result<(), SimError> {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%SZ");
        let fail = |path: &std::path::Path, e: std::io::Error| {
            SimError::BadInput(format!("--archive {}: {e}", path.display()))
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| fail(&self.dir, e))?;
        let base = format!("{stamp}-{}", self.name);
        let taken = |stem: &str| self.dir.join(format!("{stem}.json")).exists();
        let stem = (1..)
            .map(|n| if n == 1 { base.clone() } else { format!("{base}-{n}") })
            .find(|stem| !taken(stem))
            .expect("some suffix is free");
        for (extension, content) in [("json", json), ("txt", text)] {
            let path = self.dir.join(format!("{stem}.{extension}"));
            let partial = self.dir.join(format!(".{stem}.{extension}.partial"));
            std::fs::write(&partial, content).map_err(|e| fail(&partial, e))?;
            std::fs::rename(&partial, &path).map_err(|e| fail(&path, e))?;
            eprintln!("archived {}", path.display());
        }
        Ok(())
    }
}

/// What `run` writes besides its report.
struct RunOutputs<'a> {
    /// `--trace`: print every event.
    print_trace: bool,
    archive: Option<&'a Archive>,
    /// `--html FILE`.
    html: Option<PathBuf>,
}

fn run_scenario(
    scenario_arg: &str,
    config: RunConfig,
    check: bool,
    format: Format,
    outputs: RunOutputs,
) -> Result<u8, SimError> {
    let RunOutputs { print_trace: trace, archive, html } = outputs;
    let seed = config.seed;
    let result = world::run(&config)?;
    if check {
        let again = world::run(&config)?;
        if again.outcome.trace_hash != result.outcome.trace_hash {
            eprintln!(
                "NON-DETERMINISM: seed {seed} gave trace hashes {} and {}",
                result.outcome.trace_hash, again.outcome.trace_hash
            );
            return Ok(exit::FAILED);
        }
        eprintln!("determinism check passed: both runs gave {}", result.outcome.trace_hash);
    }
    if trace {
        for e in &result.events {
            println!("[{:>10} us] {:<7} {}", e.at_us, e.source, e.text);
        }
    }
    let o = &result.outcome;
    if let (Some(path), Some(timeline)) = (&html, &result.timeline) {
        let page = sim::run_html::render_run(o, timeline, &config.scenario, scenario_arg);
        sim::run_html::write_page(path, &page)?;
    }
    if let Some(archive) = archive {
        let json = report::run_json(o, &config.scenario, scenario_arg);
        let json = serde_json::to_string_pretty(&json).expect("JSON values serialize");
        archive.write(&json, &report::run_text(o, &config.scenario, scenario_arg))?;
    }
    match format {
        Format::Text => print!("{}", report::run_text(o, &config.scenario, scenario_arg)),
        Format::Json => {
            let json = report::run_json(o, &config.scenario, scenario_arg);
            println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialize"));
        }
    }
    Ok(if o.passed() { exit::OK } else { exit::FAILED })
}

fn print_explore(r: &ExploreReport, scenario: &Scenario, format: Format) -> Result<u8, SimError> {
    match format {
        Format::Text => print!("{}", explore::text(r, scenario)?),
        Format::Json => println!("{}", serde_json::to_string_pretty(r).expect("reports serialize")),
    }
    Ok(if r.seeds_failed.is_empty() { exit::OK } else { exit::FAILED })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn shard_auto_reads_a_ci_matrix_or_an_indexed_job() {
        let matrix = env(&[("ROOMSIM_SHARD_INDEX", "2"), ("ROOMSIM_SHARD_COUNT", "4")]);
        assert_eq!(shard_from_environment(matrix), Ok((2, 4)));
        let job = env(&[("JOB_COMPLETION_INDEX", "3"), ("ROOMSIM_SHARD_COUNT", "8")]);
        assert_eq!(shard_from_environment(job), Ok((3, 8)));
        // The explicit pair wins over the Job's index.
        let both = env(&[
            ("ROOMSIM_SHARD_INDEX", "1"),
            ("JOB_COMPLETION_INDEX", "5"),
            ("ROOMSIM_SHARD_COUNT", "8"),
        ]);
        assert_eq!(shard_from_environment(both), Ok((1, 8)));
    }

    #[test]
    fn shard_auto_names_what_is_missing_or_wrong() {
        let err = |pairs: &[(&str, &str)]| shard_from_environment(env(pairs)).unwrap_err();
        assert!(err(&[]).contains("JOB_COMPLETION_INDEX"));
        assert!(err(&[("JOB_COMPLETION_INDEX", "0")]).contains("ROOMSIM_SHARD_COUNT"));
        let bad = err(&[("ROOMSIM_SHARD_INDEX", "x"), ("ROOMSIM_SHARD_COUNT", "2")]);
        assert!(bad.contains("ROOMSIM_SHARD_INDEX=`x`"), "{bad}");
        let out = err(&[("JOB_COMPLETION_INDEX", "4"), ("ROOMSIM_SHARD_COUNT", "4")]);
        assert!(out.contains("4 of 4"), "{out}");
        assert!(
            err(&[("ROOMSIM_SHARD_INDEX", "0"), ("ROOMSIM_SHARD_COUNT", "0")]).contains("0 of 0")
        );
    }
}
