//! The search: depth-first over scheduling choices with replay from the start, an optional
//! preemption bound, the invariants at the end of each schedule, and the report.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use backend_core::config::ApiConfig;
use backend_core::http::{ApiContext, api_router};
use scenarios::Scenario;
use tower::ServiceExt;

use super::scheduler::{BookingFuture, BookingIds, Event, FixedClock, Hub, Slot, run_schedule};
use crate::SimError;
use crate::ids::ClinicIds;
use crate::invariants;
use crate::observations::{AnswerDetail, BookingKey, BookingRecord, DbObservations, Outcome};
use crate::outcome::Violation;
use crate::world::engine::{prepare_engine, strategy};

/// Bookings and rooms a scope may have.
pub const BOOKINGS_MAX: u32 = 4;
pub const ROOMS_MAX: u32 = 3;

#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub strategy: String,
    pub bookings: u32,
    pub rooms: u32,
    /// CHESS-style preemption bound; `None` = unbounded (exhaustive).
    pub preemptions: Option<u32>,
    pub max_schedules: u64,
}

#[derive(Debug)]
pub struct CheckReport {
    pub scope: String,
    pub schedules: u64,
    /// True when every schedule within the bound was run (no cap hit).
    pub complete: bool,
    pub seconds: f64,
    /// The violating schedule with the fewest steps: its violations and events.
    pub counterexample: Option<(Vec<Violation>, Vec<Event>)>,
    pub violating_schedules: u64,
}

impl CheckReport {
    pub fn verdict_line(&self, config: &CheckConfig) -> String {
        match (self.complete, config.preemptions) {
            (true, None) => format!("exhaustive for {}", self.scope),
            (true, Some(k)) => format!("bounded: {k} preemptions ({})", self.scope),
            (false, _) => format!(
                "bounded: stopped at --max-schedules {} ({})",
                config.max_schedules, self.scope
            ),
        }
    }
}

/// The clinic of the scope: the `conflict` scenario cut to `rooms` rooms.
fn scope_scenario(rooms: u32) -> Result<Scenario, SimError> {
    let mut scenario = Scenario::builtin("conflict")?.scenario;
    scenario.clinic.rooms.truncate(rooms as usize);
    Ok(scenario)
}

/// The booking bodies: every booking at 09:00 for 30 minutes, its own doctor and patient.
fn bodies(scenario: &Scenario, ids: &ClinicIds, bookings: u32) -> Vec<String> {
    let day = scenario.clinic.day.clone();
    (0..bookings as usize)
        .map(|i| {
            let kind = &scenario.clinic.appointment_types[0];
            let end_min = 9 * 60 + kind.duration_min;
            serde_json::json!({
                "clinic_id": ids.clinic,
                "doctor_id": ids.doctor(&scenario.clinic.doctors[i].name),
                "patient_id": ids.patient(&scenario.clinic.patients[i].name),
                "appointment_type": kind.name,
                "start": format!("{day}T09:00:00Z"),
                "end": format!("{day}T{:02}:{:02}:00Z", end_min / 60, end_min % 60),
                "room_id": null,
                "needs": {"accessible": false, "isolation": "none"},
                "fallback": "reject",
            })
            .to_string()
        })
        .collect()
}

pub fn run_check(config: &CheckConfig) -> Result<CheckReport, SimError> {
    if !(2..=BOOKINGS_MAX).contains(&config.bookings) && config.bookings != 1 {
        return Err(SimError::BadInput(format!(
            "--bookings {}: must be 1 to {BOOKINGS_MAX}",
            config.bookings
        )));
    }
    if !(1..=ROOMS_MAX).contains(&config.rooms) {
        return Err(SimError::BadInput(format!(
            "--rooms {}: must be 1 to {ROOMS_MAX}",
            config.rooms
        )));
    }
    let strategy = strategy(&config.strategy)?;
    let scenario = scope_scenario(config.rooms)?;
    let ids = ClinicIds::new(&scenario);
    let template = prepare_engine(&scenario, &ids, strategy, 0)?;
    let bodies = bodies(&scenario, &ids, config.bookings);
    let day_s = scenarios::parse_day_unix_s(&scenario.clinic.day).expect("validated");
    let now = chrono::DateTime::from_timestamp(day_s + 60, 0).expect("a valid day");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::HostFailed(format!("tokio runtime: {e}")))?;
    let scope = format!(
        "{} bookings x {} rooms, strategy {}",
        config.bookings, config.rooms, config.strategy
    );
    let started = Instant::now();
    let mut prefix: Vec<usize> = Vec::new();
    let mut report = CheckReport {
        scope,
        schedules: 0,
        complete: false,
        seconds: 0.0,
        counterexample: None,
        violating_schedules: 0,
    };
    loop {
        if report.schedules >= config.max_schedules {
            break;
        }
        let mut engine = template.fork(0).expect("a prepared engine forks");
        let hub = Arc::new(Mutex::new(Hub {
            slots: (0..bodies.len()).map(|_| Slot::default()).collect(),
        }));
        let futures: Vec<BookingFuture> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let db = super::scheduler::CheckDb { hub: hub.clone(), slot: i };
                let mut api = ApiConfig { strategy, ..ApiConfig::default() };
                api.retry.backoff_base_ms = 1;
                api.retry.backoff_cap_ms = 1;
                let ctx = ApiContext::new(
                    Arc::new(db),
                    Arc::new(FixedClock(now)),
                    Arc::new(BookingIds { booking: i as u64, next: AtomicU64::new(0) }),
                    api,
                    i as u64,
                );
                let request = http::Request::post("/v1/appointments")
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("check-key-{i}"))
                    .body(axum::body::Body::from(body.clone()))
                    .expect("a valid request");
                let router = api_router(ctx);
                let future: BookingFuture = Box::pin(async move {
                    let response = router.oneshot(request).await.expect("infallible");
                    let status = response.status().as_u16();
                    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                        .await
                        .unwrap_or_default();
                    (status, String::from_utf8_lossy(&bytes).into_owned())
                });
                future
            })
            .collect();
        let outcome =
            runtime.block_on(run_schedule(&mut engine, &hub, futures, &prefix, config.preemptions));
        report.schedules += 1;
        let violations = verdict(&scenario, &ids, &mut engine, &outcome)?;
        if !violations.is_empty() {
            report.violating_schedules += 1;
            let shorter = report
                .counterexample
                .as_ref()
                .is_none_or(|(_, events)| outcome.events.len() < events.len());
            if shorter {
                report.counterexample = Some((violations, outcome.events.clone()));
            }
        }
        // Next prefix: the deepest choice with an untried alternative, incremented.
        let mut choices: Vec<(usize, usize)> =
            outcome.choices.iter().map(|&(index, count, _)| (index, count)).collect();
        while let Some(&(index, count)) = choices.last() {
            if index + 1 < count {
                break;
            }
            choices.pop();
        }
        let Some(last) = choices.last_mut() else {
            report.complete = true;
            break;
        };
        last.0 += 1;
        prefix = choices.iter().map(|&(index, _)| index).collect();
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The run's invariants on the final state and the answers.
fn verdict(
    scenario: &Scenario,
    ids: &ClinicIds,
    engine: &mut model::Engine,
    outcome: &super::scheduler::Outcome,
) -> Result<Vec<Violation>, SimError> {
    let rows = crate::world::engine::final_rows(engine, ids)?;
    let kind = &scenario.clinic.appointment_types[0];
    let records: Vec<BookingRecord> = outcome
        .answers
        .iter()
        .enumerate()
        .map(|(i, answer)| {
            let (outcome, leaked) = match answer {
                None => (Outcome::Unfinished, None),
                Some((status, text)) => {
                    (classify(*status, text, ids), invariants::leaked_db_error(text))
                }
            };
            BookingRecord {
                index: i as u32,
                key: BookingKey {
                    doctor: scenario.clinic.doctors[i].name.clone(),
                    patient: scenario.clinic.patients[i].name.clone(),
                    appointment_type: kind.name.clone(),
                    start_min: 9 * 60,
                },
                outcome,
                answered_at_us: 0,
                leaked,
                attempts: 1,
                timeouts: 0,
                lost: 0,
                answer: AnswerDetail::default(),
            }
        })
        .collect();
    // Session hygiene is not observed by `check` yet (its sessions close with each schedule).
    let observations = DbObservations {
        deadlocks: outcome.deadlocks.iter().map(|d| (0, d.clone())).collect(),
        ..DbObservations::default()
    };
    let (_, mut violations) = invariants::check_all(scenario, &rows, &records, &observations);
    if let Some(stuck) = &outcome.stuck {
        violations
            .push(Violation { invariant: "every_request_answered".into(), detail: stuck.clone() });
    }
    Ok(violations)
}

fn classify(status: u16, text: &str, ids: &ClinicIds) -> Outcome {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let alternatives = json["alternatives"].as_array().map_or(0, |a| a.len() as u32);
    match status {
        201 => Outcome::Created {
            id: json["id"].as_str().unwrap_or_default().to_string(),
            room: json["room"]["id"]
                .as_str()
                .map(|r| ids.name_of_text(r).unwrap_or_else(|| r.to_string())),
        },
        409 => Outcome::Conflict {
            alternatives,
            room_unavailable: json["code"].as_str() == Some("ROOM_UNAVAILABLE"),
        },
        400..=499 => Outcome::Rejected { status },
        _ => Outcome::ServerError { status },
    }
}
