//! Typed response bodies of the booking hot path, serialised straight to bytes.
//!
//! WHAT: [`CreatedBody`] is the 201 body of a booking (also the body stored with an
//! Idempotency-Key). It borrows everything from the request's allocation and row, so building
//! it allocates nothing but the output string.
//!
//! WHY: the body used to be a `serde_json::Value` tree built with `json!` and then printed:
//! every uuid, time, rejection and contribution became an owned node first (about a tenth of
//! the simulation's CPU). The bytes must not change: clients and stored idempotent responses
//! see them, and the simulation's trace hash covers them. A `Value` object is a `BTreeMap`
//! (serde_json without `preserve_order`), so it printed its keys in alphabetical order; the
//! structs here therefore declare their fields alphabetically, and the domain types nested in
//! the body whose fields are not declared that way (`Contribution`, `Rejection`) are written
//! through [`SortedContribution`] / [`SortedRejection`]. The unit test compares the bytes with
//! the old `json!` construction.
//!
//! NOT MODELLED: the error (problem+json) and suggestion bodies still go through `Value`;
//! they are off the hot path of a successful booking.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};
use uuid::Uuid;

use crate::allocator::RankedRoom;
use crate::rules::{Contribution, Rejection};

/// The 201 body. Fields in alphabetical order (see the module doc).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BookingCreated)]
pub struct CreatedBody<'a> {
    /// Other rooms feasible at the same time, best first.
    #[schema(value_type = Vec<Object>)]
    pub alternatives: &'a [RankedRoom],
    pub appointment_type: &'a str,
    pub assignment: Assignment<'a>,
    pub clinic_id: Uuid,
    pub doctor_id: Uuid,
    pub end: DateTime<Utc>,
    pub id: Uuid,
    pub patient_id: Uuid,
    pub room: Option<BookedRoom<'a>>,
    pub start: DateTime<Utc>,
    /// `booked`, or `room_pending` (fallback `book_without_room`, no room).
    #[schema(value_type = String)]
    pub status: &'static str,
    pub turnover_minutes: u32,
}

/// The booked room; `name` is null when the room is not in the snapshot.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BookedRoom<'a> {
    pub id: Uuid,
    pub name: Option<&'a str>,
}

/// How the room was chosen. Fields in alphabetical order.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Assignment<'a> {
    /// The top-ranked room's rule contributions (null unless rank 0 was booked).
    #[serde(serialize_with = "contributions")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub explanation: Option<&'a [Contribution]>,
    pub policy_version: u64,
    /// Which ranked room was booked (0 = best); null when none was.
    pub rank: Option<usize>,
    /// Rooms that failed a hard rule, with the rule and message.
    #[serde(serialize_with = "rejections")]
    #[schema(value_type = Vec<Object>)]
    pub rejected: &'a [Rejection],
    pub score: &'a str,
}

impl CreatedBody<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a created body always serialises")
    }
}

fn contributions<S: Serializer>(
    list: &Option<&[Contribution]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match list {
        Some(list) => serializer.collect_seq(list.iter().map(SortedContribution)),
        None => serializer.serialize_none(),
    }
}

fn rejections<S: Serializer>(list: &&[Rejection], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(list.iter().map(SortedRejection))
}

/// A [`Contribution`] with its keys in alphabetical order.
pub struct SortedContribution<'a>(pub &'a Contribution);

impl Serialize for SortedContribution<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut out = serializer.serialize_struct("Contribution", 5)?;
        out.serialize_field("detail", &c.detail)?;
        out.serialize_field("magnitude", &c.magnitude)?;
        out.serialize_field("penalty", &c.penalty)?;
        out.serialize_field("rule", &c.rule)?;
        out.serialize_field("weight", &c.weight)?;
        out.end()
    }
}

/// A [`Rejection`] with its keys in alphabetical order.
pub struct SortedRejection<'a>(pub &'a Rejection);

impl Serialize for SortedRejection<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut out = serializer.serialize_struct("Rejection", 4)?;
        out.serialize_field("message", &r.message)?;
        out.serialize_field("room_id", &r.room_id)?;
        out.serialize_field("room_name", &r.room_name)?;
        out.serialize_field("rule", &r.rule)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::allocator::fixture::Fixture;
    use crate::allocator::{AllocatorConfig, allocate};
    use crate::rules::default_rule_set;

    /// The old construction: a `Value` tree (sorted keys), printed.
    fn old_body(body: &CreatedBody) -> String {
        let a = &body.assignment;
        json!({
            "id": body.id,
            "status": body.status,
            "clinic_id": body.clinic_id,
            "doctor_id": body.doctor_id,
            "patient_id": body.patient_id,
            "appointment_type": body.appointment_type,
            "start": body.start,
            "end": body.end,
            "room": body.room.as_ref().map(|r| json!({ "id": r.id, "name": r.name })),
            "turnover_minutes": body.turnover_minutes,
            "assignment": {
                "score": a.score,
                "policy_version": a.policy_version,
                "rank": a.rank,
                "explanation": a.explanation.map(|e| json!(e)),
                "rejected": a.rejected,
            },
            "alternatives": body.alternatives,
        })
        .to_string()
    }

    /// Goal: the typed body prints exactly the bytes of the old `json!` body, with and without
    /// an explanation, rejections, alternatives and a room. Method: a generated clinic whose
    /// rooms are partly infeasible (rejections) and partly feasible (alternatives), explained.
    #[test]
    fn typed_body_matches_the_old_value_bytes() {
        let mut fixture = Fixture::generated(12, 7);
        fixture.snapshot.appointments.clear();
        let rules = default_rule_set();
        let config = AllocatorConfig::default();
        let allocation = allocate(&rules, &fixture.snapshot, &fixture.request, &config).unwrap();
        assert!(!allocation.rejected.is_empty(), "the fixture should reject some rooms");
        let explanation = allocation.explanation.as_ref().expect("a room was assigned");
        assert!(!explanation.contributions.is_empty());
        let ranked = &allocation.ranked;
        assert!(ranked.len() >= 2, "the fixture should rank several rooms");
        let request = &fixture.request;
        let score = ranked[0].score.to_string();
        let mut body = CreatedBody {
            alternatives: &ranked[1..],
            appointment_type: &request.appointment_type,
            assignment: Assignment {
                explanation: Some(&explanation.contributions),
                policy_version: allocation.policy_version,
                rank: Some(0),
                rejected: &allocation.rejected,
                score: &score,
            },
            clinic_id: request.clinic_id,
            doctor_id: request.doctor_id,
            end: request.end,
            id: Uuid::from_u128(42),
            patient_id: request.patient_id,
            room: Some(BookedRoom { id: ranked[0].room_id, name: Some(&ranked[0].room_name) }),
            start: request.start,
            status: "booked",
            turnover_minutes: ranked[0].turnover_minutes,
        };
        assert_eq!(body.to_json(), old_body(&body));
        body.assignment.explanation = None;
        body.assignment.rank = None;
        body.room = None;
        body.alternatives = &[];
        body.status = "room_pending";
        assert_eq!(body.to_json(), old_body(&body));
        body.room = Some(BookedRoom { id: Uuid::from_u128(7), name: None });
        assert_eq!(body.to_json(), old_body(&body));
    }
}
