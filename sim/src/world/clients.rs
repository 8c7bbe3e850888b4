//! The clients host: one task per booker, each booking sent over HTTP with its retries,
//! client-side faults and timeouts, on the booker's own keep-alive connection or a fresh one
//! per attempt (`RunConfig::connections`, see `net::Session`); the answer classified into a [`ClientOutcome`] and a
//! [`BookingRecord`], Server-Timing folded into the histograms, and the in-run checks fed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use scenarios::{Scenario, parse_day_unix_s};

use crate::client_faults::ClientFaults;
use crate::histograms::{Histograms, Metric};
use crate::ids::ClinicIds;
use crate::invariants;
use crate::live::{Acknowledged, LiveChecker};
use crate::net::{self, Connections, Session};
use crate::observations::{
    AnswerDetail, BookingKey, BookingRecord, ClientOutcome, OfferedAlternative,
};
use crate::timescale::{TICK, TIME_SCALE, modelled_us, scaled_ms, scaled_us};
use crate::topology::BACKEND_PORT;
use crate::trace::SharedTrace;
use crate::workload::PlannedBooking;

use super::shared::Shared;

/// Client backoff between attempts, modelled µs per attempt number.
pub const CLIENT_BACKOFF_US: u64 = 500;

pub(super) fn add_clients(
    sim: &mut turmoil::Sim<'static>,
    scenario: &Arc<Scenario>,
    plan: Vec<PlannedBooking>,
    connections: Connections,
    shared: &Shared,
) {
    let scenario = scenario.clone();
    let records = shared.records.clone();
    let trace = shared.trace.clone();
    let histograms = shared.histograms.clone();
    let live = shared.live.clone();
    let ids = Arc::new(ClinicIds::new(&scenario));
    let listening = shared.backend_listening.clone();
    let faults = shared.client_faults.clone();
    let opened = shared.connections_opened.clone();
    sim.client("clients", async move {
        // The workload starts once the backend listens, as a load test starts against a
        // service that is up: a client polled before the backend host in the first step
        // found no listener, lost its first attempt and retried after the backoff, which
        // added ~0.5 ms to room assignment in about 40 % of 1-user runs on loopback.
        while !listening.get() {
            tokio::time::sleep(TICK).await;
        }
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for booker in 0..scenario.workload.bookers {
            let mine: Vec<_> = plan.iter().filter(|b| b.booker == booker).cloned().collect();
            let ctx = ClientCtx {
                scenario: scenario.clone(),
                ids: ids.clone(),
                records: records.clone(),
                trace: trace.clone(),
                histograms: histograms.clone(),
                live: live.clone(),
                faults: faults.clone(),
                start,
                connections,
                opened: opened.clone(),
            };
            tasks.push(tokio::task::spawn_local(run_booker(mine, ctx)));
        }
        for task in tasks {
            task.await?;
        }
        Ok(())
    });
}

#[derive(Clone)]
struct ClientCtx {
    scenario: Arc<Scenario>,
    ids: Arc<ClinicIds>,
    records: Rc<RefCell<Vec<Option<BookingRecord>>>>,
    trace: SharedTrace,
    histograms: Arc<Mutex<Histograms>>,
    live: Rc<RefCell<LiveChecker>>,
    faults: Rc<ClientFaults>,
    start: tokio::time::Instant,
    connections: Connections,
    /// HTTP connections the bookers opened (summed as each booker ends).
    opened: Rc<std::cell::Cell<u64>>,
}

fn now_us() -> u64 {
    modelled_us(turmoil::sim_elapsed().unwrap_or_default())
}

async fn run_booker(bookings: Vec<PlannedBooking>, ctx: ClientCtx) {
    // The booker's way to the backend: one keep-alive connection, as a Locust user's.
    let mut session = Session::new("backend", BACKEND_PORT, ctx.connections);
    for booking in bookings {
        let intended = ctx.start + scaled_us(booking.send_at_us);
        tokio::time::sleep_until(intended).await;
        let record = book_with_retries(&booking, &ctx, &mut session).await;
        // Room assignment is the latency of bookings that were assigned a room; 409s and
        // room_pending bookings are counted in the report, not averaged in.
        if matches!(record.outcome, ClientOutcome::Created { room: Some(_), .. }) {
            let latency_us = modelled_us(intended.elapsed());
            ctx.histograms.lock().expect("histograms").record(Metric::RoomAssignment, latency_us);
        }
        ctx.records.borrow_mut()[booking.index as usize] = Some(record);
    }
    ctx.opened.set(ctx.opened.get() + session.opened());
}

async fn book_with_retries(
    b: &PlannedBooking,
    ctx: &ClientCtx,
    session: &mut Session,
) -> BookingRecord {
    let w = &ctx.scenario.workload;
    let body = request_body(b, &ctx.scenario, &ctx.ids);
    let mut headers = Vec::new();
    if let Some(key) = &b.idempotency_key {
        headers.push(("idempotency-key", key.clone()));
    }
    let mut leaked = None;
    let mut outcome = ClientOutcome::Unanswered;
    let mut detail = AnswerDetail::default();
    let (mut attempts, mut timeouts, mut lost) = (0, 0, 0);
    for attempt in 0..=w.client_retries_max {
        if attempt > 0 {
            tokio::time::sleep(scaled_us(CLIENT_BACKOFF_US * attempt as u64)).await;
        }
        attempts += 1;
        trace(ctx, format!("send #{} attempt {attempt}", b.index));
        let sent_at_us = now_us();
        let faults = ctx.faults.draw(sent_at_us);
        let request = net::post_json("backend", "/v1/appointments", &headers, &body);
        // A client that gives up closes its connection at a random moment of the request
        // (`client_faults`); for the backend it is a disconnect, for the client a timeout.
        // An attempt cut short drops its connection (`Session::send`), so a kept-alive
        // connection never carries a half-read answer into the next attempt.
        let timeout = scaled_ms(w.request_timeout_ms);
        let (limit, gives_up) = match faults.abort_after_us.map(scaled_us) {
            Some(abort) if abort < timeout => (abort, true),
            _ => (timeout, false),
        };
        let sent = tokio::time::timeout(limit, session.send(request, faults.pace));
        let answer = match sent.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                lost += 1;
                trace(ctx, format!("lost #{} attempt {attempt}: {failure:?}", b.index));
                if w.retry_lost_response { continue } else { break }
            }
            Err(_) => {
                timeouts += 1;
                let what = if gives_up { "abort" } else { "timeout" };
                trace(ctx, format!("{what} #{} attempt {attempt}", b.index));
                if w.retry_lost_response { continue } else { break }
            }
        };
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        trace(ctx, format!("answer #{} {} {text}", b.index, answer.status));
        if let Some(what) = invariants::leaked_db_error(&text) {
            ctx.live.borrow_mut().raw_db_error(now_us(), b.index, attempt, &what);
            leaked = leaked.or(Some(what));
        }
        record_server_timing(&answer.headers, answer.status, &ctx.histograms);
        if answer.status == 409 && text.contains("IDEMPOTENCY_IN_FLIGHT") {
            continue;
        }
        let parsed: Answer = serde_json::from_str(&text).unwrap_or_default();
        outcome = classify(answer.status, &parsed, &ctx.ids);
        detail = answer_detail(sent_at_us, answer.status, &parsed, &text, b, ctx);
        // A 503 carries Retry-After: the service asks for a retry (DATABASE_UNAVAILABLE: a
        // COMMIT's outcome may be unknown). A client holding an Idempotency-Key retries.
        let retry_asked = answer.status == 503 && b.idempotency_key.is_some();
        if retry_asked && w.retry_lost_response && attempt < w.client_retries_max {
            trace(ctx, format!("retry-after #{} attempt {attempt}", b.index));
            continue;
        }
        if let ClientOutcome::Created { id, room } = &outcome {
            let turnover_min = parsed.turnover_minutes.unwrap_or(0);
            ctx.live.borrow_mut().created(Acknowledged {
                booking: b.index,
                id: id.clone(),
                room: room.clone(),
                doctor: b.doctor.clone(),
                patient: b.patient.clone(),
                start_min: b.start_min,
                end_min: b.start_min + b.duration_min,
                blocked_until_min: b.start_min + b.duration_min + turnover_min,
                at_us: now_us(),
            });
        }
        break;
    }
    let key = BookingKey {
        doctor: b.doctor.clone(),
        patient: b.patient.clone(),
        appointment_type: b.appointment_type.clone(),
        start_min: b.start_min,
    };
    let answered_at_us = now_us();
    BookingRecord {
        index: b.index,
        key,
        outcome,
        answered_at_us,
        leaked,
        attempts,
        timeouts,
        lost,
        answer: detail,
    }
}

fn trace(ctx: &ClientCtx, text: String) {
    ctx.trace.lock().expect("trace").record(now_us(), "client", text);
}

/// The patient's needs, from the scenario (H08 accessibility, H09 airborne isolation).
fn needs(b: &PlannedBooking, scenario: &Scenario) -> serde_json::Value {
    let patient = scenario.clinic.patients.iter().find(|p| p.name == b.patient);
    let accessible = patient.is_some_and(|p| p.needs_accessible);
    let airborne = patient.is_some_and(|p| p.airborne);
    serde_json::json!({
        "accessible": accessible,
        "isolation": if airborne { "airborne" } else { "none" },
    })
}

/// The booking request in backend-core's shape (room-rules.md §4).
pub(crate) fn request_body(
    b: &PlannedBooking,
    scenario: &Scenario,
    ids: &ClinicIds,
) -> serde_json::Value {
    let day_s = parse_day_unix_s(&scenario.clinic.day).expect("validated by the scenarios crate");
    let at = |min: u32| {
        let t = chrono::DateTime::from_timestamp(day_s + min as i64 * 60, 0).expect("valid day");
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    serde_json::json!({
        "clinic_id": ids.clinic,
        "doctor_id": ids.doctor(&b.doctor),
        "patient_id": ids.patient(&b.patient),
        "appointment_type": b.appointment_type,
        "start": at(b.start_min),
        "end": at(b.start_min + b.duration_min),
        "room_id": b.room.as_deref().map(|r| ids.room(r)),
        "needs": needs(b, scenario),
        "fallback": scenario.workload.fallback.as_str(),
    })
}

/// The fields of an answer the client looks at; serde skips every other field without
/// building it (the 201 body carries a multi-kilobyte explanation the client never reads).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Answer {
    id: Option<String>,
    room: Option<AnswerRoom>,
    start: Option<String>,
    end: Option<String>,
    booked: Option<bool>,
    code: Option<String>,
    alternatives: AlternativesCount,
    /// The room's turnover after the visit (201), for the in-run room-overlap check.
    turnover_minutes: Option<u32>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct AnswerRoom {
    id: Option<String>,
}

/// Alternatives are a list, or an object of lists (room-rules.md §4): the number of entries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct AlternativesCount(u32);

impl<'de> serde::Deserialize<'de> for AlternativesCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AlternativesCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list or an object of lists")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(AlternativesCount(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut n = 0;
                while let Some((_, v)) =
                    map.next_entry::<serde::de::IgnoredAny, AlternativesCount>()?
                {
                    n += v.0;
                }
                Ok(AlternativesCount(n))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(AlternativesCount(0))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// [`classify`] of an answer's body text (a malformed body reads as an empty answer).
pub(crate) fn classify_body(status: u16, body: &str, ids: &ClinicIds) -> ClientOutcome {
    classify(status, &serde_json::from_str(body).unwrap_or_default(), ids)
}

fn classify(status: u16, answer: &Answer, ids: &ClinicIds) -> ClientOutcome {
    match status {
        201 => ClientOutcome::Created {
            id: answer.id.clone().unwrap_or_default(),
            room: answer
                .room
                .as_ref()
                .and_then(|r| r.id.as_deref())
                .map(|r| ids.name_of_text(r).unwrap_or(r.to_string())),
        },
        // The `suggest` fallback: no booking, alternatives offered.
        200 if answer.booked == Some(false) => {
            ClientOutcome::Conflict { alternatives: answer.alternatives.0, room_unavailable: true }
        }
        409 => ClientOutcome::Conflict {
            alternatives: answer.alternatives.0,
            room_unavailable: answer.code.as_deref() == Some("ROOM_UNAVAILABLE"),
        },
        400..=499 => ClientOutcome::Rejected { status },
        _ => ClientOutcome::ServerError { status },
    }
}

/// The room and blocked range of a 201, and every alternative offered by a 409 or a
/// `suggest` 200, for the `alternatives_correct` invariant.
/// A 201 is read from the typed `answer` (its multi-kilobyte explanation is never built);
/// any other answer is small and parsed whole from `text`.
fn answer_detail(
    sent_at_us: u64,
    status: u16,
    answer: &Answer,
    text: &str,
    b: &PlannedBooking,
    ctx: &ClientCtx,
) -> AnswerDetail {
    let day_s =
        parse_day_unix_s(&ctx.scenario.clinic.day).expect("validated by the scenarios crate");
    // Minutes of the clinic day of an RFC 3339 time (0 when absent or unreadable).
    let minute = |text: Option<&str>| {
        let at = text.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        at.map_or(0, |t| u32::try_from((t.timestamp() - day_s).max(0) / 60).unwrap_or(u32::MAX))
    };
    let room = |text: Option<&str>| {
        text.map(|text| ctx.ids.name_of_text(text).unwrap_or_else(|| text.to_string()))
    };
    let mut detail = AnswerDetail { sent_at_us, ..AnswerDetail::default() };
    if status == 201 {
        let turnover_min = answer.turnover_minutes.unwrap_or(0);
        let (start, end) = (minute(answer.start.as_deref()), minute(answer.end.as_deref()));
        let booked_room = answer.room.as_ref().and_then(|r| r.id.as_deref());
        detail.booked = room(booked_room).map(|r| (r, start, end + turnover_min));
        return detail;
    }
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let requested = (b.start_min, b.start_min + b.duration_min);
    let offered = |item: &serde_json::Value, visit: Option<(u32, u32)>| {
        // A bare room name (no ids, no times) is read too.
        let name = item.as_str().map(str::to_string).or_else(|| room(item["room_id"].as_str()))?;
        let visit =
            visit.or_else(|| Some((minute(item["start"].as_str()), minute(item["end"].as_str()))));
        Some(OfferedAlternative { room: name, visit_min: visit.filter(|_| !item.is_string()) })
    };
    match &json["alternatives"] {
        serde_json::Value::Array(list) => {
            detail.alternatives = list.iter().filter_map(|item| offered(item, None)).collect();
        }
        serde_json::Value::Object(kinds) => {
            for (kind, list) in kinds {
                let visit = (kind == "same_time_other_rooms").then_some(requested);
                let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
                detail.alternatives.extend(items.iter().filter_map(|item| offered(item, visit)));
            }
        }
        _ => {}
    }
    detail
}

/// `Server-Timing: conflict;dur=0.080, lock;dur=…` (simulated ms) → modelled µs. Not
/// `rules`: the backend's cost model records the charged rules cost at µs precision itself,
/// summed per request (`cpu::record_rules_per_request`), which the 25 µs clock cannot show.
fn record_server_timing(
    headers: &http::HeaderMap,
    status: u16,
    histograms: &Arc<Mutex<Histograms>>,
) {
    let Some(value) = headers.get("server-timing").and_then(|v| v.to_str().ok()) else { return };
    for part in value.split(',') {
        let mut fields = part.trim().split(';');
        let name = fields.next().unwrap_or_default();
        let metric = match name {
            "conflict" => Metric::ConflictDetection,
            "lock" => Metric::LockWait,
            _ => continue,
        };
        let dur = fields.find_map(|f| f.strip_prefix("dur=")).and_then(|d| d.parse::<f64>().ok());
        if let Some(ms) = dur {
            let us = (ms * 1_000.0 / TIME_SCALE as f64).round() as u64;
            let mut histograms = histograms.lock().expect("histograms");
            match metric {
                Metric::ConflictDetection => histograms.record_by_status(metric, status, us),
                _ => histograms.record(metric, us),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ClinicIds {
        ClinicIds::new(&Scenario::builtin("storm").unwrap().scenario)
    }

    /// What the client takes from an answer text: the outcome and a 201's turnover.
    fn classify_text(status: u16, body: &str, ids: &ClinicIds) -> (ClientOutcome, u32) {
        let answer: Answer = serde_json::from_str(body).unwrap_or_default();
        (classify(status, &answer, ids), answer.turnover_minutes.unwrap_or(0))
    }

    /// The typed answer reads what the client needs and skips the rest; alternatives count
    /// as a list or as an object of lists; a malformed body is no panic.
    #[test]
    fn classify_reads_only_what_it_needs() {
        let ids = ids();
        let room = ids.room("room-03");
        let body = format!(
            r#"{{"id":"a1","room":{{"id":"{room}","name":"room-03"}},"turnover_minutes":5,
               "assignment":{{"explanation":[{{"rule":"S01","weight":10}}]}}}}"#
        );
        let (outcome, turnover) = classify_text(201, &body, &ids);
        assert_eq!(
            outcome,
            ClientOutcome::Created { id: "a1".into(), room: Some("room-03".into()) }
        );
        assert_eq!(turnover, 5);
        let pending = classify_text(201, r#"{"id":"a2","room":null}"#, &ids);
        assert_eq!(pending, (ClientOutcome::Created { id: "a2".into(), room: None }, 0));
        let list = r#"{"code":"ROOM_UNAVAILABLE","alternatives":[{"a":1},{"b":[2]}]}"#;
        assert_eq!(
            classify_text(409, list, &ids).0,
            ClientOutcome::Conflict { alternatives: 2, room_unavailable: true }
        );
        let object = r#"{"code":"DOCTOR_BUSY","alternatives":{"x":[1,2],"y":[3],"z":null}}"#;
        assert_eq!(
            classify_text(409, object, &ids).0,
            ClientOutcome::Conflict { alternatives: 3, room_unavailable: false }
        );
        let suggest = r#"{"booked":false,"alternatives":[1]}"#;
        assert_eq!(
            classify_text(200, suggest, &ids).0,
            ClientOutcome::Conflict { alternatives: 1, room_unavailable: true }
        );
        assert_eq!(
            classify_text(500, "not json", &ids).0,
            ClientOutcome::ServerError { status: 500 }
        );
        assert_eq!(
            classify_text(201, "not json", &ids).0,
            ClientOutcome::Created { id: "".into(), room: None }
        );
    }
}
