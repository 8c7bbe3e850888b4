//! Explore: many seeds of one scenario, in parallel, with results independent of `--jobs`.
//!
//! Each seed is an independent simulation, so seeds may run on separate OS threads (the
//! simulated code itself is single-threaded and deterministic). Results are stored by seed
//! index and every aggregate is order-independent (sums, histogram adds) or computed in seed
//! order (the `explore-hash`, failing seeds), so `--jobs 1` and `--jobs N` print the same
//! report, and shards (`--shard I/N` takes seeds with `seed % N == I`) merged with
//! `roomsim merge` give the same explore-hash as one unsharded run. `--stop-on-failure` stops
//! at the first failing seed *in seed order* (later seeds already run are discarded), so it
//! too is independent of `--jobs`. Memory stays flat: a run keeps only its summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use backend_core::db::guard::GuardMode;
use scenarios::Scenario;
use serde::{Deserialize, Serialize};

use crate::error::SimError;
use crate::histograms::{Histograms, Metric};
use crate::outcome::{
    Counts, Criterion, InvariantResult, Violation, add_invariants, throughput_per_s,
};
use crate::patterns::{self, Coverage, Tally};
use crate::report::{self, Figures};
use crate::trace::combine_hashes;
use crate::world::{self, RunConfig};

/// Threads `--jobs` accepts.
pub const JOBS_MAX: u32 = 64;

/// `--jobs` when not given: one thread per core this process may use, at most [`JOBS_MAX`].
pub fn jobs_default() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores).unwrap_or(JOBS_MAX).clamp(1, JOBS_MAX)
}

/// Violations kept per failing seed in explore output.
pub const SEED_VIOLATIONS_KEPT_MAX: usize = 3;

#[derive(Clone, Debug)]
pub struct ExploreConfig {
    pub scenario: Arc<Scenario>,
    /// How the user named the scenario (for replay commands).
    pub scenario_arg: String,
    pub strategy: String,
    /// The backend's transaction guard (`late-begin` is a planted bug).
    pub guard: GuardMode,
    pub seeds: Range<u64>,
    pub jobs: u32,
    /// (index, count).
    pub shard: Option<(u64, u64)>,
    pub stop_on_failure: bool,
    pub progress: bool,
    /// The model database's service times (see `world::RunConfig::profile`).
    pub profile: Arc<crate::world::Profile>,
    /// `--profile FILE` as given (for replay commands); `None`: the committed default.
    pub profile_arg: Option<String>,
    /// `--pattern-k`: a pair pattern counts as covered once seen in this many seeds.
    pub pattern_k: u32,
    /// How the bookers reach the backend (see `world::RunConfig::connections`).
    pub connections: crate::net::Connections,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedHash {
    pub seed: u64,
    pub trace_hash: String,
    pub passed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailedSeed {
    pub seed: u64,
    /// When the first in-run violation became visible (modelled µs), if one was caught.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_violation_us: Option<u64>,
    pub violations: Vec<Violation>,
    pub replay: String,
    /// `roomsim shrink` for the seed (its smallest reproduction); empty under a planted
    /// transaction guard, which `shrink` does not take.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shrink: String,
}

/// The explore report (also the input of `roomsim merge`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExploreReport {
    pub scenario: String,
    pub scenario_arg: String,
    pub strategy: String,
    pub seeds: String,
    pub shard: Option<String>,
    pub seeds_run: u64,
    pub seeds_failed: Vec<FailedSeed>,
    pub explore_hash: String,
    /// Pair-pattern coverage (`crate::patterns`).
    pub patterns: Coverage,
    pub seeds_per_second: f64,
    pub wall_s: f64,
    pub counts: Counts,
    pub invariants: Vec<InvariantResult>,
    pub workload_us_total: u64,
    pub latency_us: serde_json::Value,
    pub criteria: Vec<Criterion>,
    pub histograms: BTreeMap<Metric, String>,
    pub per_seed: Vec<SeedHash>,
}

/// What one seed leaves for the report.
struct SeedEntry {
    hash: SeedHash,
    violations: Vec<Violation>,
    counts: Counts,
    invariants: Vec<InvariantResult>,
    workload_us: u64,
    first_violation_us: Option<u64>,
    patterns: BTreeMap<String, u64>,
}

struct Partial {
    per_seed: BTreeMap<u64, SeedEntry>,
    histograms: Histograms,
}

/// The seeds this process runs, in order.
pub fn seed_list(seeds: &Range<u64>, shard: Option<(u64, u64)>) -> Vec<u64> {
    seeds.clone().filter(|s| shard.is_none_or(|(i, n)| s % n == i)).collect()
}

/// Runs the seeds.
pub fn explore(cfg: &ExploreConfig) -> Result<ExploreReport, SimError> {
    world::check_strategy(&cfg.strategy)?;
    if cfg.pattern_k == 0 {
        return Err(SimError::BadInput("--pattern-k must be at least 1".into()));
    }
    // The patterns `check` finds possible (once per process and strategy; see `patterns`).
    let people = cfg.scenario.workload.participants == scenarios::Participants::Random;
    let possible = patterns::possible(&cfg.strategy, people)?;
    let seeds = seed_list(&cfg.seeds, cfg.shard);
    let bar = progress_bar(cfg.progress, seeds.len() as u64);
    let next = AtomicU64::new(0);
    let first_failure = AtomicU64::new(u64::MAX);
    let partial =
        Mutex::new(Partial { per_seed: BTreeMap::new(), histograms: Histograms::default() });
    let wall = std::time::Instant::now(); // wall clock for seeds/s only; never reaches a sim
    let error: Mutex<Option<SimError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..cfg.jobs.clamp(1, JOBS_MAX) {
            scope.spawn(|| worker(cfg, &seeds, &next, &first_failure, &partial, &error, &bar));
        }
    });
    bar.finish_and_clear();
    if let Some(e) = error.into_inner().expect("error lock") {
        return Err(e);
    }
    let wall_s = wall.elapsed().as_secs_f64();
    let mut partial = partial.into_inner().expect("partial lock");
    let stop = first_failure.load(Ordering::SeqCst);
    partial.per_seed.retain(|seed, _| *seed <= stop);
    Ok(assemble(cfg, partial, wall_s, (*possible).clone()))
}

fn worker(
    cfg: &ExploreConfig,
    seeds: &[u64],
    next: &AtomicU64,
    first_failure: &AtomicU64,
    partial: &Mutex<Partial>,
    error: &Mutex<Option<SimError>>,
    bar: &indicatif::ProgressBar,
) {
    loop {
        let index = next.fetch_add(1, Ordering::SeqCst) as usize;
        let Some(&seed) = seeds.get(index) else { return };
        if seed > first_failure.load(Ordering::SeqCst) {
            return;
        }
        let run = world::run(&RunConfig {
            guard: cfg.guard,
            scenario: cfg.scenario.clone(),
            seed,
            strategy: cfg.strategy.clone(),
            keep_trace: false,
            profile: cfg.profile.clone(),
            connections: cfg.connections,
        });
        let o = match run {
            Ok(r) => r.outcome,
            Err(e) => {
                *error.lock().expect("error lock") = Some(e);
                first_failure.store(0, Ordering::SeqCst);
                return;
            }
        };
        let passed = o.passed();
        if !passed && cfg.stop_on_failure {
            first_failure.fetch_min(seed, Ordering::SeqCst);
        }
        let hash = SeedHash { seed, trace_hash: o.trace_hash.clone(), passed };
        let mut p = partial.lock().expect("partial lock");
        p.histograms.merge(&o.histograms);
        let entry = SeedEntry {
            hash,
            violations: o.violations,
            counts: o.counts,
            invariants: o.invariants,
            workload_us: o.workload_us,
            first_violation_us: o.first_violation_us,
            patterns: o.patterns,
        };
        p.per_seed.insert(seed, entry);
        bar.inc(1);
    }
}

fn progress_bar(wanted: bool, len: u64) -> indicatif::ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {per_sec} eta {eta}")
            .expect("constant template");
    bar.set_style(style);
    bar
}

fn assemble(
    cfg: &ExploreConfig,
    partial: Partial,
    wall_s: f64,
    possible: patterns::Possible,
) -> ExploreReport {
    let mut counts = Counts::default();
    let mut invariants = Vec::new();
    let mut workload_us_total = 0;
    let mut per_seed = Vec::new();
    let mut failed = Vec::new();
    let mut tally = Tally::default();
    for (seed, entry) in partial.per_seed {
        let SeedEntry {
            hash,
            violations,
            counts: c,
            invariants: inv,
            workload_us,
            first_violation_us,
            patterns,
        } = entry;
        counts.add(&c);
        add_invariants(&mut invariants, &inv);
        workload_us_total += workload_us;
        tally.add_seed(seed, &patterns, cfg.pattern_k);
        if !hash.passed {
            // The flags that shape the run, appended to both commands.
            let mut flags =
                cfg.profile_arg.as_ref().map_or(String::new(), |p| format!(" --profile {p}"));
            if cfg.connections == crate::net::Connections::Fresh {
                flags.push_str(" --fresh-connections");
            }
            let replay =
                report::replay_command(&cfg.scenario_arg, &cfg.strategy, cfg.guard, seed) + &flags;
            let shrink = if cfg.guard == GuardMode::Safe {
                report::shrink_command(&cfg.scenario_arg, &cfg.strategy, seed) + &flags
            } else {
                String::new()
            };
            let violations = violations.into_iter().take(SEED_VIOLATIONS_KEPT_MAX).collect();
            failed.push(FailedSeed { seed, first_violation_us, violations, replay, shrink });
        }
        per_seed.push(hash);
    }
    let seeds = format!("{}..{}", cfg.seeds.start, cfg.seeds.end);
    let shard = cfg.shard.map(|(i, n)| format!("{i}/{n}"));
    finish_report(
        &cfg.scenario,
        &cfg.scenario_arg,
        &cfg.strategy,
        seeds,
        shard,
        Aggregate {
            counts,
            invariants,
            workload_us_total,
            histograms: partial.histograms,
            per_seed,
            failed,
            wall_s,
            patterns: tally,
            pattern_k: cfg.pattern_k,
            possible: Some(possible),
        },
    )
}

/// Aggregated figures before rendering.
pub struct Aggregate {
    pub counts: Counts,
    pub invariants: Vec<InvariantResult>,
    pub workload_us_total: u64,
    pub histograms: Histograms,
    pub per_seed: Vec<SeedHash>,
    pub failed: Vec<FailedSeed>,
    pub wall_s: f64,
    pub patterns: Tally,
    pub pattern_k: u32,
    pub possible: Option<patterns::Possible>,
}

pub fn finish_report(
    scenario: &Scenario,
    scenario_arg: &str,
    strategy: &str,
    seeds: String,
    shard: Option<String>,
    a: Aggregate,
) -> ExploreReport {
    let throughput = throughput_per_s(a.counts.created_201, a.workload_us_total);
    let figures = Figures {
        scenario,
        strategy,
        counts: &a.counts,
        histograms: &a.histograms,
        invariants: &a.invariants,
        throughput_per_s: throughput,
    };
    let criteria = report::criteria(&figures);
    let seeds_run_list: Vec<u64> = a.per_seed.iter().map(|s| s.seed).collect();
    let coverage = a.patterns.finish(a.pattern_k, &seeds_run_list, a.possible);
    let explore_hash = combine_hashes(a.per_seed.iter().map(|s| (s.seed, s.trace_hash.as_str())));
    let seeds_run = a.per_seed.len() as u64;
    ExploreReport {
        scenario: scenario.name.clone(),
        scenario_arg: scenario_arg.into(),
        strategy: strategy.into(),
        seeds,
        shard,
        seeds_run,
        seeds_failed: a.failed,
        explore_hash,
        patterns: coverage,
        seeds_per_second: if a.wall_s > 0.0 {
            (seeds_run as f64 / a.wall_s * 10.0).round() / 10.0
        } else {
            0.0
        },
        wall_s: (a.wall_s * 1000.0).round() / 1000.0,
        counts: a.counts,
        invariants: a.invariants,
        workload_us_total: a.workload_us_total,
        latency_us: report::latency_json(&a.histograms),
        criteria,
        histograms: a.histograms.to_encoded(),
        per_seed: a.per_seed,
    }
}

/// Combines shard reports. Errors name the file and the problem.
pub fn merge(
    reports: Vec<(String, ExploreReport)>,
    scenario: &Scenario,
) -> Result<ExploreReport, SimError> {
    let Some((_, first)) = reports.first() else {
        return Err(SimError::BadInput("merge needs at least one JSON file".into()));
    };
    let (scenario_arg, strategy, seeds) =
        (first.scenario_arg.clone(), first.strategy.clone(), first.seeds.clone());
    let mut a = Aggregate {
        counts: Counts::default(),
        invariants: Vec::new(),
        workload_us_total: 0,
        histograms: Histograms::default(),
        per_seed: Vec::new(),
        failed: Vec::new(),
        wall_s: 0.0,
        patterns: Tally::default(),
        pattern_k: first.patterns.k,
        possible: first.patterns.possible.clone(),
    };
    for (file, r) in &reports {
        if r.patterns.k != first.patterns.k {
            let problem =
                format!("{file}: --pattern-k {} differs from {}", r.patterns.k, first.patterns.k);
            return Err(SimError::BadInput(problem));
        }
        a.patterns.add_seen(&r.patterns.seen, r.patterns.k);
        if r.scenario != first.scenario || r.strategy != strategy {
            let problem = format!(
                "{file}: scenario/strategy {}/{} differs from {}/{}",
                r.scenario, r.strategy, first.scenario, strategy
            );
            return Err(SimError::BadInput(problem));
        }
        let h = Histograms::from_encoded(&r.histograms)
            .map_err(|e| SimError::BadInput(format!("{file}: {e}")))?;
        a.histograms.merge(&h);
        a.counts.add(&r.counts);
        add_invariants(&mut a.invariants, &r.invariants);
        a.workload_us_total += r.workload_us_total;
        a.per_seed.extend(r.per_seed.iter().cloned());
        a.failed.extend(r.seeds_failed.iter().cloned());
        a.wall_s = a.wall_s.max(r.wall_s);
    }
    a.per_seed.sort_by_key(|s| s.seed);
    a.failed.sort_by_key(|f| f.seed);
    if let Some(w) = a.per_seed.windows(2).find(|w| w[0].seed == w[1].seed) {
        return Err(SimError::BadInput(format!(
            "seed {} appears in more than one input",
            w[0].seed
        )));
    }
    Ok(finish_report(scenario, &scenario_arg, &strategy, seeds, None, a))
}

/// The explore text report.
pub fn text(r: &ExploreReport, scenario: &Scenario) -> Result<String, SimError> {
    let histograms = Histograms::from_encoded(&r.histograms).map_err(SimError::BadInput)?;
    let throughput = throughput_per_s(r.counts.created_201, r.workload_us_total);
    let figures = Figures {
        scenario,
        strategy: &r.strategy,
        counts: &r.counts,
        histograms: &histograms,
        invariants: &r.invariants,
        throughput_per_s: throughput,
    };
    let shard = r.shard.as_ref().map(|s| format!(" (shard {s})")).unwrap_or_default();
    let header = vec![format!(
        "Seeds: {}{shard}, run {}, failed {}",
        r.seeds,
        r.seeds_run,
        r.seeds_failed.len()
    )];
    let mut out = report::text(&figures, &header);
    for f in &r.seeds_failed {
        out.push_str(&format!("\nFAILED seed={}\n", f.seed));
        for v in &f.violations {
            out.push_str(&format!("  {}: {}\n", v.invariant, v.detail));
        }
        out.push_str(&format!("  replay: {}\n", f.replay));
        if !f.shrink.is_empty() {
            out.push_str(&format!("  shrink: {}\n", f.shrink));
        }
    }
    out.push('\n');
    out.push_str(&patterns_text(&r.patterns));
    out.push_str(&format!("seeds_per_second: {}\n", r.seeds_per_second));
    out.push_str(&format!("explore-hash: {}\n", r.explore_hash));
    Ok(out)
}

/// The pattern-coverage section of the explore text report.
pub fn patterns_text(c: &Coverage) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let possible = match &c.possible {
        Some(p) => format!(
            " of {} possible ({}: {} schedules, {})",
            p.patterns.len(),
            p.command,
            p.schedules,
            if p.complete { "exhaustive" } else { "NOT exhaustive" }
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "pattern coverage: {} pair patterns seen{possible}, over {} competing pairs",
        c.seen.len(),
        c.pairs
    );
    let to_k = c.seeds_to_k.map_or("not reached".into(), |n| n.to_string());
    let _ = writeln!(out, "  seeds until every seen pattern was seen in {} seeds: {to_k}", c.k);
    if c.possible.is_some() {
        let saturation = c.seeds_to_saturation.map_or_else(
            || format!("not reached ({} never seen)", c.never_seen.len()),
            |n| n.to_string(),
        );
        let _ = writeln!(out, "  seeds until every possible pattern was seen: {saturation}");
    }
    let _ = writeln!(out, "  {:>6} {:>7}  pattern", "seeds", "pairs");
    for s in &c.seen {
        let mark = if s.possible == Some(false) { "  NOT POSSIBLE" } else { "" };
        let _ = writeln!(out, "  {:>6} {:>7}  {}{mark}", s.seeds, s.pairs, s.pattern);
    }
    for p in &c.never_seen {
        let _ = writeln!(out, "  never seen: {p}");
    }
    if !c.not_possible.is_empty() {
        let _ = writeln!(
            out,
            "  {} seen pattern(s) NOT POSSIBLE in check's 2-booking enumeration: a bug in the \
             strategy, the model or the pattern extraction, or an effect of a third booking",
            c.not_possible.len()
        );
    }
    out
}
