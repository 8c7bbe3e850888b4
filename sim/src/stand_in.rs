//! A stand-in booking backend: the harness self-test of `--backend stand-in` (the system under
//! test is backend-core's `api_router` over the model engine, `world::hosts`).
//!
//! It is deliberately small and NOT the system under test: an axum router with one route,
//! `POST /v1/appointments`, over an in-memory store that survives backend crashes (it plays
//! the database). It exists so the world, workload, faults, invariants, histograms, reports,
//! explore, merge and determinism can be tested end to end on their own; the world's clients
//! talk to it only over HTTP, exactly as they talk to backend-core.
//!
//! Strategies: `exclusion` (safe: the insert re-checks the room atomically, like an EXCLUDE
//! constraint, and tries the next-ranked room on conflict) and `naive` (BROKEN: checks when it
//! reads, inserts later without re-checking — double-books under concurrency). Each
//! "statement" holds a pooled connection for a service time drawn from the db-scheduler
//! stream (60–140 µs modelled), so concurrent bookings genuinely interleave.
//!
//! Not modelled by the stand-in: SQL, MVCC, row locks, deadlocks, the rule engine (rooms
//! are ranked by name among those passing H01/H05/H06/H08/H09), db-side faults (partition
//! backend↔db and db crash have no db host to act on).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use scenarios::Scenario;
use serde::Deserialize;

use crate::observations::Appointment;
use crate::pool::Pool;
use crate::timescale::{modelled_us, scaled_us};
use crate::trace::SharedTrace;

/// Strategies the stand-in knows: (name, broken).
pub const STRATEGIES: &[(&str, bool)] = &[("exclusion", false), ("naive", true)];

/// The database the stand-in plays: committed rows and stored idempotent answers.
#[derive(Default)]
pub struct Store {
    pub rows: Vec<Appointment>,
    // BTreeMap: replayed answers are looked up by key, never iterated (ordered anyway).
    idempotent: BTreeMap<String, (u16, String)>,
    in_flight: BTreeSet<String>,
    next_id: u64,
}

#[derive(Clone)]
pub struct Backend {
    pub scenario: Arc<Scenario>,
    pub store: Arc<Mutex<Store>>,
    pub pool: Pool<()>,
    pub rng: Arc<Mutex<ChaCha8Rng>>,
    pub trace: SharedTrace,
    pub naive: bool,
    pub ids: Arc<crate::ids::ClinicIds>,
}

/// The booking request as the stand-in reads it (backend-core's shape, names resolved).
struct BookingRequest {
    doctor_id: String,
    patient_id: String,
    appointment_type: String,
    start_min: u32,
    room_id: Option<String>,
}

#[derive(Deserialize)]
struct WireRequest {
    doctor_id: uuid::Uuid,
    patient_id: uuid::Uuid,
    appointment_type: String,
    start: chrono::DateTime<chrono::Utc>,
    room_id: Option<uuid::Uuid>,
}

impl Backend {
    fn parse(&self, body: &str) -> Option<BookingRequest> {
        let wire: WireRequest = serde_json::from_str(body).ok()?;
        let day_s = scenarios::parse_day_unix_s(&self.scenario.clinic.day)?;
        let start_min = u32::try_from((wire.start.timestamp() - day_s) / 60).ok()?;
        Some(BookingRequest {
            doctor_id: self.ids.name(&wire.doctor_id),
            patient_id: self.ids.name(&wire.patient_id),
            appointment_type: wire.appointment_type,
            start_min,
            room_id: wire.room_id.map(|r| self.ids.name(&r)),
        })
    }
}

pub fn router(backend: Backend) -> axum::Router {
    axum::Router::new().route("/v1/appointments", post(book)).with_state(backend)
}

async fn book(State(b): State<Backend>, headers: HeaderMap, body: String) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(key) = &key {
        let mut store = b.store.lock().expect("store");
        if let Some((status, body)) = store.idempotent.get(key).cloned() {
            return answer(status, body, "");
        }
        if !store.in_flight.insert(key.clone()) {
            return answer(409, "{\"code\":\"IDEMPOTENCY_IN_FLIGHT\"}".into(), "");
        }
    }
    let Some(req) = b.parse(&body) else {
        return answer(400, "{\"code\":\"BAD_REQUEST\"}".into(), "");
    };
    let Ok(_conn) = b.pool.acquire().await else {
        if let Some(key) = &key {
            b.store.lock().expect("store").in_flight.remove(key);
        }
        return answer(503, "{\"code\":\"POOL_TIMEOUT\"}".into(), "");
    };
    let (status, body, timing) = b.book_with_connection(&req).await;
    if let Some(key) = key {
        let mut store = b.store.lock().expect("store");
        store.in_flight.remove(&key);
        store.idempotent.insert(key, (status, body.clone()));
    }
    answer(status, body, &timing)
}

fn answer(status: u16, body: String, timing: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("the stand-in only uses valid codes");
    let mut response = (status, body).into_response();
    if !timing.is_empty() {
        let value = http::HeaderValue::from_str(timing).expect("timing text is ASCII");
        response.headers_mut().insert("server-timing", value);
    }
    response
}

impl Backend {
    async fn statement(&self, kind: &str) {
        let service_us = self.rng.lock().expect("rng").random_range(60..=140);
        tokio::time::sleep(scaled_us(service_us)).await;
        let at_us = modelled_us(turmoil::sim_elapsed().unwrap_or_default());
        let mut trace = self.trace.lock().expect("trace");
        trace.record(at_us, "db", format!("{kind} {service_us}us"));
        trace.record_statement(0, kind, "ok");
    }

    /// Returns (status, body, Server-Timing).
    async fn book_with_connection(&self, req: &BookingRequest) -> (u16, String, String) {
        self.statement("select").await; // the day's appointments
        let started = tokio::time::Instant::now();
        let Some(kind) =
            self.scenario.clinic.appointment_types.iter().find(|t| t.name == req.appointment_type)
        else {
            return (422, "{\"code\":\"UNKNOWN_TYPE\"}".into(), String::new());
        };
        let end = req.start_min + kind.duration_min;
        let blocked = end + kind.turnover_min;
        let candidates = self.rank_rooms(req, kind);
        // Charged CPU cost (the WorkCharge model): 2 µs per room evaluated, 1 µs per row checked.
        tokio::time::sleep(scaled_us(2 * self.scenario.clinic.rooms.len() as u64)).await;
        let rules_us = modelled_us(started.elapsed());
        let rows_count = self.store.lock().expect("store").rows.len() as u64;
        tokio::time::sleep(scaled_us(1 + rows_count)).await;
        let free_at_read: Vec<String> = candidates
            .iter()
            .filter(|r| self.room_free(r, req.start_min, blocked))
            .cloned()
            .collect();
        let busy_at_read = self.participant_busy(req, end);
        let conflict_us = modelled_us(started.elapsed()) - rules_us;
        let timing = format!("rules;dur={:.3}, conflict;dur={:.3}", ms(rules_us), ms(conflict_us));
        self.statement("insert").await;
        // BROKEN (naive): decides on what it read before the insert, no re-check.
        let busy = if self.naive { busy_at_read } else { self.participant_busy(req, end) };
        if busy {
            return (409, "{\"code\":\"PARTICIPANT_BUSY\",\"alternatives\":[]}".into(), timing);
        }
        let room = if self.naive {
            free_at_read.first().cloned()
        } else {
            candidates.iter().find(|r| self.room_free(r, req.start_min, blocked)).cloned()
        };
        let Some(room) = room else {
            let body = serde_json::json!({"code":"ROOM_UNAVAILABLE","alternatives": self.alternatives(kind)});
            return (409, body.to_string(), timing);
        };
        let id = self.insert(req, &room, end, blocked);
        self.statement("commit").await;
        let body =
            serde_json::json!({"id": id, "status": "booked", "room": {"id": self.ids.room(&room)}});
        (201, body.to_string(), timing)
    }

    fn rank_rooms(&self, req: &BookingRequest, kind: &scenarios::AppointmentType) -> Vec<String> {
        let patient = self.scenario.clinic.patients.iter().find(|p| p.name == req.patient_id);
        let mut rooms: Vec<String> = self
            .scenario
            .clinic
            .rooms
            .iter()
            .filter(|r| r.status == "active" && kind.room_types.contains(&r.room_type))
            .filter(|r| kind.required_equipment.iter().all(|e| r.equipment.contains(e)))
            .filter(|r| {
                patient.is_none_or(|p| {
                    (!p.needs_accessible || r.accessible) && (!p.airborne || r.aiir)
                })
            })
            .map(|r| r.name.clone())
            .collect();
        if let Some(asked) = &req.room_id {
            rooms.retain(|r| r == asked);
        }
        rooms
    }

    fn room_free(&self, room: &str, start: u32, blocked_until: u32) -> bool {
        let store = self.store.lock().expect("store");
        !store.rows.iter().any(|a| {
            a.active
                && a.room.as_deref() == Some(room)
                && a.start_min < blocked_until
                && start < a.blocked_until_min
        })
    }

    fn participant_busy(&self, req: &BookingRequest, end: u32) -> bool {
        let store = self.store.lock().expect("store");
        store.rows.iter().any(|a| {
            a.active
                && (a.doctor == req.doctor_id || a.patient == req.patient_id)
                && a.start_min < end
                && req.start_min < a.end_min
        })
    }

    fn alternatives(&self, kind: &scenarios::AppointmentType) -> Vec<String> {
        // Later start times in the first allowed room, one per hour: a coarse suggestion.
        let first =
            self.scenario.clinic.rooms.iter().find(|r| kind.room_types.contains(&r.room_type));
        first.map(|r| vec![r.name.clone()]).unwrap_or_default()
    }

    fn insert(&self, req: &BookingRequest, room: &str, end: u32, blocked: u32) -> String {
        let mut store = self.store.lock().expect("store");
        store.next_id += 1;
        let id = format!("a-{}", store.next_id);
        let written_at_us = modelled_us(turmoil::sim_elapsed().unwrap_or_default());
        let txn = format!("booking-txn-{}", store.next_id);
        store.rows.push(Appointment {
            id: id.clone(),
            room: Some(room.to_string()),
            doctor: req.doctor_id.clone(),
            patient: req.patient_id.clone(),
            appointment_type: req.appointment_type.clone(),
            start_min: req.start_min,
            end_min: end,
            blocked_until_min: blocked,
            active: true,
            txn,
            written_at_us,
        });
        id
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}
