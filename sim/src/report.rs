//! Reports: the clinic plan's text format and JSON, for one run or an explored seed range.
//!
//! Text opens with "ROOM ASSIGNMENT PERFORMANCE REPORT" and gives, under the plan's headings
//! ("Room Assignment Latencies:", "Conflict Detection Latencies:", "Rules Engine Evaluation
//! Latencies:"), Average / p50 / p95 / p99 and "Target Met: ✓ YES / ✗ NO" (modelled
//! time, the time scale removed), "Total Appointments Created", throughput, invariants and
//! the scenario's criteria ✓/✗. JSON carries the same figures plus seed(s), scenario,
//! strategy, trace hash, invariant counts, violations and base64 histograms.
//! Missed latency/throughput targets are shown ✗ but are not invariant violations.

use std::fmt::Write as _;

use backend_core::db::guard::GuardMode;
use scenarios::Scenario;
use serde_json::{Value, json};

use crate::histograms::{Histograms, Metric, Summary};
use crate::outcome::{Counts, Criterion, InvariantResult, RunOutcome};

/// The figures a report is made of (one run, or many seeds merged).
pub struct Figures<'a> {
    pub scenario: &'a Scenario,
    pub strategy: &'a str,
    pub counts: &'a Counts,
    pub histograms: &'a Histograms,
    pub invariants: &'a [InvariantResult],
    /// Bookings per second of modelled time.
    pub throughput_per_s: f64,
}

impl<'a> Figures<'a> {
    /// The figures of one run.
    pub fn of_run(o: &'a RunOutcome, scenario: &'a Scenario) -> Figures<'a> {
        Figures {
            scenario,
            strategy: &o.strategy,
            counts: &o.counts,
            histograms: &o.histograms,
            invariants: &o.invariants,
            throughput_per_s: o.throughput_per_s(),
        }
    }
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1_000.0)
}

/// Evaluates the scenario's success criteria.
pub fn criteria(f: &Figures) -> Vec<Criterion> {
    let c = &f.scenario.criteria;
    let mut out = Vec::new();
    let mut add = |name: &str, target: String, actual: String, met: bool| {
        out.push(Criterion { name: name.into(), target, actual, met });
    };
    let invariant = |name: &str| {
        f.invariants.iter().filter(|i| i.name == name).map(|i| i.violations).sum::<u64>()
    };
    if c.all_bookings_succeed {
        let ok = f.counts.created_201 - f.counts.room_pending;
        add(
            "all bookings succeed",
            format!("{}", f.counts.bookings),
            format!("{ok}"),
            ok == f.counts.bookings,
        );
    }
    let latency = [
        ("room assignment p95", c.room_assignment_p95_ms, Metric::RoomAssignment, false),
        ("conflict detection p95", c.conflict_detection_p95_ms, Metric::ConflictDetection, false),
        (
            "rules evaluation per slot (max)",
            c.rules_evaluation_ms_max,
            Metric::RulesEvaluation,
            true,
        ),
    ];
    for (name, target_ms, metric, use_max) in latency {
        if let Some(target_ms) = target_ms {
            let s = f.histograms.summary(metric);
            if s.count == 0 {
                // Nothing to judge (e.g. no booking was assigned a room): not a pass.
                add(name, format!("< {target_ms} ms"), "no samples".into(), false);
                continue;
            }
            let value = if use_max { s.max_us } else { s.p95_us };
            add(name, format!("< {target_ms} ms"), ms(value), value < target_ms * 1_000);
        }
    }
    if c.no_deadlocks {
        let n = invariant("no_deadlock");
        add("no deadlocks", "0".into(), n.to_string(), n == 0);
    }
    if c.no_double_bookings {
        let n = invariant("no_room_overlap")
            + invariant("no_doctor_double_booking")
            + invariant("no_patient_double_booking");
        add("no double bookings", "0".into(), n.to_string(), n == 0);
    }
    if c.alternatives_suggested {
        let (with, all) = (f.counts.conflicts_with_alternatives, f.counts.room_unavailable);
        // Present is not enough: every offered alternative must be right (invariant 9).
        let wrong = invariant("alternatives_correct");
        let actual = if wrong == 0 {
            with.to_string()
        } else {
            format!("{with} ({wrong} wrong alternatives: see alternatives_correct violations)")
        };
        add(
            "alternatives suggested",
            format!("{all} of {all} room conflicts, all correct"),
            actual,
            with == all && wrong == 0,
        );
    }
    if c.graceful_fallback {
        let bad = f.counts.errors_5xx + f.counts.unanswered;
        add("graceful fallback (no 5xx, no unanswered)", "0".into(), bad.to_string(), bad == 0);
    }
    if let Some(t) = c.throughput_per_s_min {
        let actual = f.throughput_per_s;
        add(
            "throughput",
            format!(">= {t} bookings/s"),
            format!("{actual:.1} bookings/s"),
            actual >= t as f64,
        );
    }
    out
}

fn mark(met: bool) -> &'static str {
    if met { "✓" } else { "✗" }
}

fn latency_block(
    out: &mut String,
    title: &str,
    note: &str,
    s: &Summary,
    target: Option<(u64, bool)>,
) {
    // The headings and the "Target Met: ✓ YES" form are the clinic load-test plan's.
    let _ = writeln!(out, "{title} Latencies:");
    let _ = writeln!(out, "  Samples: {}{note}", s.count);
    let _ = writeln!(out, "  Average: {}", ms(s.mean_us));
    let _ = writeln!(out, "  p50: {}", ms(s.p50_us));
    let _ = writeln!(out, "  p95: {}", ms(s.p95_us));
    let _ = writeln!(out, "  p99: {}", ms(s.p99_us));
    match target {
        Some((target_ms, use_max)) => {
            let value = if use_max { s.max_us } else { s.p95_us };
            let what = if use_max { "max" } else { "p95" };
            let met = value < target_ms * 1_000;
            let verdict = if met { "✓ YES" } else { "✗ NO" };
            let _ = writeln!(out, "  Target Met: {verdict} ({what} < {target_ms} ms)");
        }
        None => {
            let _ = writeln!(out, "  Target Met: - (no target in this scenario)");
        }
    }
}

/// The text report body (no header lines about seeds: the caller adds those).
pub fn text(f: &Figures, header: &[String]) -> String {
    let mut out = String::new();
    let c = &f.scenario.criteria;
    out.push_str("ROOM ASSIGNMENT PERFORMANCE REPORT\n==================================\n");
    for line in header {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "Scenario: {}  Strategy: {}", f.scenario.name, f.strategy);
    let _ = writeln!(out, "Times are modelled time (time scale removed).\n");
    let blocks = [
        (
            "Room Assignment",
            "",
            Metric::RoomAssignment,
            c.room_assignment_p95_ms.map(|t| (t, false)),
        ),
        (
            "Conflict Detection",
            "",
            Metric::ConflictDetection,
            c.conflict_detection_p95_ms.map(|t| (t, false)),
        ),
        (
            "Rules Engine Evaluation",
            " (one per answer: its evaluations summed, as Server-Timing `rules`)",
            Metric::RulesEvaluation,
            c.rules_evaluation_ms_max.map(|t| (t, true)),
        ),
    ];
    for (title, note, metric, target) in blocks {
        latency_block(&mut out, title, note, &f.histograms.summary(metric), target);
        out.push('\n');
    }
    for (title, metric) in [("Pool Wait", Metric::PoolWait), ("Lock Wait", Metric::LockWait)] {
        let s = f.histograms.summary(metric);
        let _ = writeln!(
            out,
            "{title}: n = {}, p50 {}, p95 {}, p99 {}",
            s.count,
            ms(s.p50_us),
            ms(s.p95_us),
            ms(s.p99_us)
        );
    }
    let k = f.counts;
    let _ = writeln!(out, "\nTotal Appointments Created: {}", k.created_201);
    let _ = writeln!(
        out,
        "Bookings: {} ({} attempts), 409: {} ({} room unavailable, {} with alternatives), other 4xx: {}, 5xx: {}, unanswered: {}",
        k.bookings,
        k.attempts,
        k.conflicts_409,
        k.room_unavailable,
        k.conflicts_with_alternatives,
        k.other_4xx,
        k.errors_5xx,
        k.unanswered
    );
    let _ = writeln!(
        out,
        "Timeouts: {}, connection failures: {}, room pending: {}",
        k.timeouts, k.connection_failures, k.room_pending
    );
    let _ = writeln!(out, "Throughput: {:.1} bookings/s\n", f.throughput_per_s);
    out.push_str("Invariants:\n");
    for i in f.invariants {
        let _ = writeln!(
            out,
            "  {} {} (checked {}, violations {})",
            mark(i.violations == 0),
            i.name,
            i.checked,
            i.violations
        );
    }
    out.push_str("\nSuccess criteria:\n");
    for c in criteria(f) {
        let _ =
            writeln!(out, "  {} {}: target {}, actual {}", mark(c.met), c.name, c.target, c.actual);
    }
    out
}

/// The latency summaries as JSON.
pub fn latency_json(h: &Histograms) -> Value {
    let mut map = serde_json::Map::new();
    for metric in Metric::ALL {
        let key = serde_json::to_value(metric).expect("metric names serialize");
        let key = key.as_str().expect("metric names are strings").to_string();
        map.insert(key, serde_json::to_value(h.summary(metric)).expect("summaries serialize"));
    }
    Value::Object(map)
}

/// The replay command for one seed.
pub fn replay_command(scenario_arg: &str, strategy: &str, guard: GuardMode, seed: u64) -> String {
    let guard = match guard {
        GuardMode::Safe => String::new(),
        other => format!(" --guard {other}"),
    };
    format!(
        "roomsim run --scenario {scenario_arg} --strategy {strategy}{guard} --seed {seed} --trace"
    )
}

/// The shrink command for one failing seed (`roomsim shrink`: its smallest reproduction).
pub fn shrink_command(scenario_arg: &str, strategy: &str, seed: u64) -> String {
    format!("roomsim shrink --scenario {scenario_arg} --strategy {strategy} --seed {seed}")
}

/// One run as JSON.
pub fn run_json(o: &RunOutcome, scenario: &Scenario, scenario_arg: &str) -> Value {
    let f = Figures::of_run(o, scenario);
    let mut out = json!({
        "seed": o.seed,
        "scenario": o.scenario,
        "strategy": o.strategy,
        "trace_hash": o.trace_hash,
        "pair_patterns": o.patterns,
        "passed": o.passed(),
        "counts": o.counts,
        "total_appointments_created": o.counts.created_201,
        "throughput_per_s": (o.throughput_per_s() * 10.0).round() / 10.0,
        "workload_us": o.workload_us,
        "events": o.events_count,
        "invariants": o.invariants,
        "violations": o.violations,
        "latency_us": latency_json(&o.histograms),
        "criteria": criteria(&f),
        "histograms": o.histograms.to_encoded(),
        "replay": replay_command(scenario_arg, &o.strategy, o.guard, o.seed),
    });
    if o.pattern_statements_unmatched > 0 {
        out["pattern_statements_unmatched"] = json!(o.pattern_statements_unmatched);
    }
    // Only runs that caught something in-run carry these (passing reports are unchanged).
    if let Some(first) = o.first_violation_us {
        out["first_violation_us"] = json!(first);
        out["in_run_violations_count"] = json!(o.in_run_count);
        out["in_run_violations"] = json!(o.in_run);
    }
    out
}

/// One run as text.
pub fn run_text(o: &RunOutcome, scenario: &Scenario, scenario_arg: &str) -> String {
    let f = Figures::of_run(o, scenario);
    let mut out = text(&f, &[format!("Seed: {}", o.seed)]);
    if let Some(first) = o.first_violation_us {
        let _ = writeln!(
            out,
            "\nFirst violation at {} (modelled); caught during the run ({}):",
            ms(first),
            o.in_run_count
        );
        for v in &o.in_run {
            let _ = writeln!(out, "  [{} us] {}: {}", v.at_us, v.invariant, v.detail);
        }
    }
    if !o.violations.is_empty() || o.first_violation_us.is_some() {
        out.push_str("\nViolations:\n");
        for v in &o.violations {
            let _ = writeln!(out, "  {}: {}", v.invariant, v.detail);
        }
        let _ = writeln!(
            out,
            "\nreplay: {}",
            replay_command(scenario_arg, &o.strategy, o.guard, o.seed)
        );
    }
    let pairs: u64 = o.patterns.values().sum();
    let _ = writeln!(
        out,
        "\npair patterns: {} competing pairs (per room, doctor or patient), {} distinct orders of their key statements",
        pairs,
        o.patterns.len()
    );
    let _ = writeln!(out, "trace-hash: {}", o.trace_hash);
    out
}
