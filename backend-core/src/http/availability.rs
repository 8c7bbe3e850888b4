//! GET /v1/rooms/availability?clinic_id=…&from=…&to=…[&appointment_type=…]
//!
//! WHAT: the free intervals of each of the clinic's rooms within `[from, to)`, from the rooms'
//! blocked ranges (turnover included). With `appointment_type`, only rooms of an allowed type
//! and intervals at least the type's duration long are listed. A free interval is not a
//! promise: rules (equipment, hours, isolation) are applied only when booking or previewing.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::error::query_rejection;
use super::{ApiContext, Timing, with_timing};
use crate::allocator::{ClinicSnapshot, room_free_intervals};
use crate::booking::body_cache::BodyCache;
use crate::booking::snapshot::{load_appointments, load_clinic, load_rooms};
use crate::db::SqlValue;
use crate::domain::AppointmentType;
use crate::error::{Error, Result};

pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/rooms/availability", get(availability))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AvailabilityQuery {
    clinic_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    appointment_type: Option<String>,
}

async fn availability(
    State(ctx): State<ApiContext>,
    query: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let response = match free_rooms(&ctx, query).await {
        Ok(body) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string())
                .into_response()
        }
        Err(error) => error.into_response(),
    };
    // Interval arithmetic is negligible next to the queries: all of it counts as db.
    let timing = Timing { db: started.elapsed(), ..Timing::default() };
    with_timing(response, &timing)
}

async fn free_rooms(
    ctx: &ApiContext,
    query: Result<Query<AvailabilityQuery>, QueryRejection>,
) -> Result<serde_json::Value> {
    let Query(query) = query.map_err(query_rejection)?;
    if let Some(key) = &query.appointment_type {
        crate::domain::check_key("appointment_type", key).map_err(Error::Validation)?;
    }
    if query.to <= query.from {
        return Err(Error::invalid("to", "must be after `from`"));
    }
    let hours_max = ctx.config.availability_window_hours_max;
    if query.to - query.from > Duration::hours(hours_max) {
        return Err(Error::invalid("to", format!("window longer than {hours_max} hours")));
    }
    let mut conn = ctx.db.acquire().await?;
    let bodies = &ctx.bodies;
    let clinic = load_clinic(conn.as_mut(), bodies, query.clinic_id).await?;
    let kind = match &query.appointment_type {
        Some(key) => Some(load_type(conn.as_mut(), bodies, query.clinic_id, key).await?),
        None => None,
    };
    let rooms_max = ctx.config.rooms_max;
    let mut rooms = load_rooms(conn.as_mut(), bodies, query.clinic_id, rooms_max).await?;
    if let Some(kind) = &kind {
        let allowed = &kind.allowed_room_types;
        rooms.retain(|room| allowed.is_empty() || allowed.contains(&room.room_type));
    }
    let window = (query.from, query.to);
    let limit = ctx.config.day_appointments_max;
    let appointments = load_appointments(conn.as_mut(), query.clinic_id, window, limit).await?;
    let snapshot = ClinicSnapshot { clinic, rooms, appointments, ..ClinicSnapshot::default() };
    let min_length = Duration::minutes(kind.as_ref().map_or(1, |k| i64::from(k.duration_minutes)));
    let rooms: Vec<serde_json::Value> = room_free_intervals(&snapshot, query.from, query.to)
        .into_iter()
        .map(|(room_id, free)| {
            let name = snapshot.rooms.iter().find(|r| r.id == room_id).map(|r| r.name.clone());
            let free: Vec<_> = free
                .into_iter()
                .filter(|w| w.end - w.start >= min_length)
                .map(|w| json!({ "start": w.start, "end": w.end }))
                .collect();
            json!({ "room_id": room_id, "name": name, "free": free })
        })
        .collect();
    Ok(json!({ "clinic_id": query.clinic_id, "from": query.from, "to": query.to, "rooms": rooms }))
}

async fn load_type(
    conn: &mut dyn crate::db::Conn,
    bodies: &BodyCache,
    clinic_id: Uuid,
    key: &str,
) -> Result<AppointmentType> {
    let rows = conn
        .execute(
            "SELECT body FROM appointment_types WHERE clinic_id = $1 AND key = $2",
            &[SqlValue::Uuid(clinic_id), SqlValue::Text(key.to_string())],
        )
        .await?;
    match rows.rows.first().and_then(|row| row.first()) {
        Some(SqlValue::Text(body)) => {
            let parse = |body: &str| {
                serde_json::from_str(body).map_err(|error| {
                    Error::Internal(format!("stored appointment type unreadable: {error}"))
                })
            };
            bodies.appointment_types.get_or_parse(body, parse).map(|kind| kind.as_ref().clone())
        }
        _ => Err(Error::UnknownReference {
            field: "appointment_type".into(),
            entity: "appointment type",
            id: key.to_string(),
            scope: " in this clinic",
        }),
    }
}
