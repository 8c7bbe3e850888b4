//! The check report: verdict, rate, and the shortest counterexample as a side-by-side table
//! (one column per session: statement, then its result, SQLSTATE or blocked/unblocked).

use std::fmt::Write;

use super::search::{CheckConfig, CheckReport};
use super::shrink::ShrinkReport;
use crate::world::RunConfig;

/// Width of one session's column in the table, in characters.
const COLUMN_CHARS: usize = 58;

fn rate(report: &CheckReport) -> f64 {
    report.schedules as f64 / report.seconds.max(1e-9)
}

pub fn text(config: &CheckConfig, report: &CheckReport) -> String {
    let mut out = String::new();
    let verdict = if report.counterexample.is_some() { "VIOLATION" } else { "OK" };
    let _ = writeln!(out, "check: {verdict} — {}", report.verdict_line(config));
    let _ = writeln!(
        out,
        "schedules {} ({} violating, {} distinct end states; {} more cut short by the \
         partial-order reduction) in {:.2} s = {:.0} schedules/s",
        report.schedules,
        report.violating_schedules,
        report.distinct_end_states,
        report.pruned,
        report.seconds,
        rate(report)
    );
    if config.state_cache {
        let _ = writeln!(
            out,
            "states {} distinct; {} schedules stopped at a state explored before (visited-state \
             caching)",
            report.states, report.cache_hits
        );
    }
    let _ = writeln!(
        out,
        "pair patterns: {} (orders of two competing bookings' key statements; explore's coverage)",
        report.patterns.len()
    );
    let Some(counterexample) = &report.counterexample else { return out };
    let events = &counterexample.events;
    let steps = events.iter().filter(|e| e.is_statement()).count();
    let _ = writeln!(out, "shortest counterexample: {steps} statements");
    for v in &counterexample.violations {
        let _ = writeln!(out, "  invariant {}: {}", v.invariant, v.detail);
    }
    let _ = writeln!(out);
    let header: Vec<String> = (0..config.bookings)
        .map(|i| format!("{:<COLUMN_CHARS$}", format!("booking {}", i + 1)))
        .collect();
    let _ = writeln!(out, "{:>4}  {}", "step", header.join(" | "));
    for (step, event) in events.iter().enumerate() {
        let sql: String = event.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let cell = if sql.is_empty() {
            event.outcome_text()
        } else {
            format!("{sql} → {}", event.outcome_text())
        };
        let cell: String = if cell.chars().count() > COLUMN_CHARS {
            cell.chars().take(COLUMN_CHARS - 1).chain(['…']).collect()
        } else {
            cell
        };
        let cells: Vec<String> = (0..config.bookings as usize)
            .map(|i| {
                let text = if i == event.session { cell.as_str() } else { "" };
                format!("{text:<COLUMN_CHARS$}")
            })
            .collect();
        let _ = writeln!(out, "{:>4}  {}", step + 1, cells.join(" | ").trim_end());
    }
    out
}

pub fn json(config: &CheckConfig, report: &CheckReport) -> String {
    let counterexample = report.counterexample.as_ref().map(|c| {
        serde_json::json!({
            "violations": c.violations.iter().map(|v| serde_json::json!({"invariant": v.invariant, "detail": v.detail})).collect::<Vec<_>>(),
            "steps": c.events.iter().map(|e| serde_json::json!({
                "session": e.session + 1,
                "connection": e.connection + 1,
                "sql": e.sql,
                "params": e.params.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
                "outcome": e.outcome_text(),
            })).collect::<Vec<_>>(),
        })
    });
    let value = serde_json::json!({
        "strategy": config.strategy,
        "bookings": config.bookings,
        "rooms": config.rooms,
        "shape": config.shape.name(),
        "fallback": config.fallback,
        "crash_points": config.crash_points,
        "idempotency_key": config.idempotency_key,
        "preemptions": config.preemptions,
        "verdict": if report.counterexample.is_some() { "violation" } else { "ok" },
        "complete": report.complete,
        "summary": report.verdict_line(config),
        "schedules": report.schedules,
        "violating_schedules": report.violating_schedules,
        "seconds": report.seconds,
        "schedules_per_s": rate(report),
        "pruned": report.pruned,
        "reduction": config.reduction,
        "state_cache": config.state_cache,
        "cache_hits": report.cache_hits,
        "states": report.states,
        "distinct_end_states": report.distinct_end_states,
        "steps_max": report.steps_max,
        "pair_patterns": report.patterns,
        "counterexample": counterexample,
    });
    serde_json::to_string_pretty(&value).expect("json")
}

/// The shrink report: the run's verdict, then the reproduction's check report.
/// `scenario_arg` is the scenario as the user named it (for the replay command).
pub fn shrink_text(run: &RunConfig, scenario_arg: &str, report: &ShrinkReport) -> String {
    let mut out = String::new();
    let scenario = &run.scenario.name;
    if report.run_invariants.is_empty() {
        let _ = writeln!(
            out,
            "shrink: seed {} of {scenario} under {} breaks no invariant: nothing to shrink",
            report.seed, run.strategy
        );
        return out;
    }
    let _ = writeln!(
        out,
        "shrink: seed {} of {scenario} under {} breaks {}",
        report.seed,
        run.strategy,
        report.run_invariants.join(", ")
    );
    let tried = format!("{} checks, {} schedules", report.checks, report.schedules);
    match &report.found {
        None => {
            let _ = writeln!(
                out,
                "no reproduction with 1-3 bookings within the bounds ({tried}{}); replay the \
                 seed: {}",
                if report.budget_spent { ", schedule budget spent" } else { "" },
                crate::report::replay_command(scenario_arg, &run.strategy, run.guard, report.seed)
            );
        }
        Some(found) => {
            let names: Vec<String> = found.bookings.iter().map(|i| format!("#{i}")).collect();
            let _ = writeln!(
                out,
                "smallest reproduction: {} booking{} ({}), {} preemption{} ({tried})\n",
                found.bookings.len(),
                if found.bookings.len() == 1 { "" } else { "s" },
                names.join(", "),
                found.config.preemptions.unwrap_or(0),
                if found.config.preemptions == Some(1) { "" } else { "s" },
            );
            out.push_str(&text(&found.config, &found.report));
        }
    }
    out
}

pub fn shrink_json(run: &RunConfig, report: &ShrinkReport) -> String {
    let found = report.found.as_ref().map(|found| {
        let check: serde_json::Value =
            serde_json::from_str(&json(&found.config, &found.report)).expect("our own json");
        serde_json::json!({"bookings": found.bookings, "check": check})
    });
    let value = serde_json::json!({
        "scenario": run.scenario.name,
        "strategy": run.strategy,
        "seed": report.seed,
        "run_invariants": report.run_invariants,
        "checks": report.checks,
        "schedules": report.schedules,
        "budget_spent": report.budget_spent,
        "reproduction": found,
    });
    serde_json::to_string_pretty(&value).expect("json")
}
