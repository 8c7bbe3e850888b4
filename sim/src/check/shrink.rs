//! `roomsim shrink`: from a failing run seed to the smallest reproduction `check` can find.
//!
//! The seed is run again to learn which invariants it breaks. Its workload plan (the same
//! stream the run draws it from) gives every booking's request; bookings whose rooms could
//! collide (their times overlap, turnover included) form candidate pairs, the pairs sent
//! closest together first (those are the ones that raced). Each candidate is checked alone,
//! in the run's clinic with the run's strategy, from 0 preemptions up to the bound: the first
//! schedule that breaks one of the run's invariants is the reproduction, with the fewest
//! bookings (single bookings with one crash point, then pairs, then triples of the first six
//! bookings the closest pairs name), then the fewest preemptions, then the fewest statements.
//!
//! NOT MODELLED: the bookings committed before the pair in the run (the reproduction starts
//! from the clinic's seed data), client faults other than a crash and retry.

use std::sync::Arc;

use super::scope::{GivenBookings, ScopeBooking};
use super::search::{CheckConfig, CheckReport, run_check};
use crate::SimError;
use crate::ids::ClinicIds;
use crate::seeds::{Seeds, Stream};
use crate::workload::{self, PlannedBooking};
use crate::world::{self, RunConfig};

/// The limits of one shrink.
#[derive(Clone, Copy, Debug)]
pub struct ShrinkLimits {
    /// Highest preemption bound tried per candidate.
    pub preemptions_max: u32,
    /// Candidate pairs tried (the closest in send time first).
    pub pairs_max: usize,
    /// Schedules per candidate check.
    pub schedules_max: u64,
    /// Schedules in all, over every candidate (the search stops there, reported).
    pub schedules_total_max: u64,
}

impl Default for ShrinkLimits {
    fn default() -> ShrinkLimits {
        ShrinkLimits {
            preemptions_max: 2,
            pairs_max: 100,
            schedules_max: 5_000,
            schedules_total_max: 100_000,
        }
    }
}

/// The reproduction found.
#[derive(Debug)]
pub struct Reproduction {
    /// The run's booking indices (0-based, as in its trace).
    pub bookings: Vec<u32>,
    /// The check that reproduces it (`given` holds the bookings), and its report.
    pub config: CheckConfig,
    pub report: CheckReport,
}

#[derive(Debug)]
pub struct ShrinkReport {
    pub seed: u64,
    /// Invariants the run broke (none: nothing to shrink).
    pub run_invariants: Vec<String>,
    /// Candidate checks run, and their schedules in all.
    pub checks: u32,
    pub schedules: u64,
    /// The search stopped at `schedules_total_max` before trying every candidate.
    pub budget_spent: bool,
    pub found: Option<Reproduction>,
}

/// Runs the seed, then searches for the smallest reproduction of what it broke.
pub fn shrink(run: &RunConfig, limits: ShrinkLimits) -> Result<ShrinkReport, SimError> {
    let result = world::run(run)?;
    let mut run_invariants: Vec<String> =
        result.outcome.violations.iter().map(|v| v.invariant.clone()).collect();
    run_invariants.sort();
    run_invariants.dedup();
    let mut report = ShrinkReport {
        seed: run.seed,
        run_invariants,
        checks: 0,
        schedules: 0,
        budget_spent: false,
        found: None,
    };
    if report.run_invariants.is_empty() {
        return Ok(report);
    }
    let scenario = &run.scenario;
    let ids = ClinicIds::new(scenario);
    let plan = workload::plan(scenario, &mut Seeds::new(run.seed).rng(Stream::Workload));
    let keyed = plan.iter().any(|b| b.idempotency_key.is_some());
    let pairs = candidate_pairs(&plan, scenario, limits.pairs_max);
    // Fewest bookings first: one booking with a crash and retry (lost or duplicated answers),
    // then pairs, then triples of the first six bookings the closest pairs name.
    let mut singles: Vec<u32> = Vec::new();
    for index in pairs.iter().flat_map(|&(a, b)| [a, b]) {
        if !singles.contains(&index) {
            singles.push(index);
        }
    }
    let mut stages: Vec<(Vec<Vec<u32>>, u32)> = vec![
        (singles.iter().take(4).map(|&i| vec![i]).collect(), 1),
        (pairs.iter().map(|&(a, b)| vec![a, b]).collect(), 0),
    ];
    let busiest: Vec<u32> = singles.iter().copied().take(6).collect();
    let mut triples = Vec::new();
    for (x, &a) in busiest.iter().enumerate() {
        for (y, &b) in busiest.iter().enumerate().skip(x + 1) {
            for &c in busiest.iter().skip(y + 1) {
                triples.push(vec![a, b, c]);
            }
        }
    }
    stages.push((triples, 0));
    for (candidates, crash_points) in stages {
        // One booking has no other session to switch to: every bound runs the same schedules.
        let single = candidates.first().is_some_and(|c| c.len() == 1);
        let preemptions_max = if single { 0 } else { limits.preemptions_max };
        for preemptions in 0..=preemptions_max {
            for candidate in &candidates {
                if report.schedules >= limits.schedules_total_max {
                    report.budget_spent = true;
                    return Ok(report);
                }
                let config = candidate_config(
                    run,
                    &plan,
                    &ids,
                    candidate,
                    keyed,
                    crash_points,
                    preemptions,
                    limits,
                );
                let checked = run_check(&config)?;
                report.checks += 1;
                report.schedules += checked.schedules;
                let reproduces = checked.counterexample.as_ref().is_some_and(|c| {
                    c.violations.iter().any(|v| report.run_invariants.contains(&v.invariant))
                });
                if reproduces {
                    report.found =
                        Some(Reproduction { bookings: candidate.clone(), config, report: checked });
                    return Ok(report);
                }
            }
        }
    }
    Ok(report)
}

/// Pairs of bookings whose rooms could collide (their times, turnover included, overlap), the
/// ones sent closest together first; at most `pairs_max`.
fn candidate_pairs(
    plan: &[PlannedBooking],
    scenario: &scenarios::Scenario,
    pairs_max: usize,
) -> Vec<(u32, u32)> {
    let turnover = |b: &PlannedBooking| {
        let types = &scenario.clinic.appointment_types;
        types.iter().find(|t| t.name == b.appointment_type).map_or(0, |t| t.turnover_min)
    };
    let end = |b: &PlannedBooking| b.start_min + b.duration_min + turnover(b);
    let mut pairs: Vec<(u64, u32, u32)> = Vec::new();
    for (i, a) in plan.iter().enumerate() {
        for b in &plan[i + 1..] {
            if a.start_min < end(b) && b.start_min < end(a) {
                pairs.push((a.send_at_us.abs_diff(b.send_at_us), a.index, b.index));
            }
        }
    }
    pairs.sort();
    pairs.into_iter().take(pairs_max).map(|(_, a, b)| (a, b)).collect()
}

#[allow(clippy::too_many_arguments)]
fn candidate_config(
    run: &RunConfig,
    plan: &[PlannedBooking],
    ids: &ClinicIds,
    candidate: &[u32],
    keyed: bool,
    crash_points: u32,
    preemptions: u32,
    limits: ShrinkLimits,
) -> CheckConfig {
    let scenario = &run.scenario;
    let bookings = candidate
        .iter()
        .map(|&i| {
            let b = &plan[i as usize];
            ScopeBooking {
                doctor: b.doctor.clone(),
                patient: b.patient.clone(),
                appointment_type: b.appointment_type.clone(),
                start_min: b.start_min,
                body: world::clients::request_body(b, scenario, ids).to_string(),
            }
        })
        .collect();
    let names: Vec<String> = candidate.iter().map(|i| format!("#{i}")).collect();
    let label = format!(
        "booking{} {} of {} seed {}",
        if candidate.len() == 1 { "" } else { "s" },
        names.join(" and "),
        scenario.name,
        run.seed
    );
    CheckConfig {
        bookings: candidate.len() as u32,
        crash_points,
        idempotency_key: keyed,
        preemptions: Some(preemptions),
        max_schedules: limits.schedules_max,
        fallback: scenario.workload.fallback.as_str().to_string(),
        given: Some(Arc::new(GivenBookings { scenario: (**scenario).clone(), bookings, label })),
        ..CheckConfig::new(
            &run.strategy,
            candidate.len() as u32,
            scenario.clinic.rooms.len() as u32,
        )
    }
}
