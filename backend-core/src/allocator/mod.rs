//! The allocator: for one booking request, rank every room of the clinic and decide.
//!
//! FLOW
//!
//! 1. Validate the request and check the snapshot matches it (clinic, doctor, patient, type).
//! 2. H15: are the doctor or the patient already booked at that time? (once, not per room)
//! 3. Evaluate every room for the requested slot (fast path, no text). Rooms with a hard
//!    violation (including a time conflict, H03/H14) are dropped; the rest are ranked by score.
//!    Ties are broken by [`TieBreak`]: by default `Spread` orders equally scored rooms by a
//!    mix of room id and the request (patient, doctor, start), so concurrent bookings of one
//!    slot try *different* rooms first instead of queueing on the same top-ranked row (on
//!    PostgreSQL every INSERT of a conflicting range waits for the holder to commit: a convoy
//!    that grows with the number of concurrent bookings). `RoomId` is the plain id order.
//!    Either way the order never depends on input order or on anything but the request.
//! 4. Explain: per-rule contributions of the chosen room, the first failing hard rule of every
//!    rejected room, and, when nothing is feasible, the least-infeasible room.
//! 5. Alternatives: top-k other rooms at the same time; when the request cannot be served as
//!    asked (or when configured), the same room at later times and the next feasible times
//!    in any room (bounded search: `search_steps_max` steps of `search_step_minutes`).
//! 6. The decision by fallback mode: `Assigned`, `NoRoom` (reject / suggest), `RoomPending`
//!    (book_without_room, medium −1), `PinnedRoomRejected` (422), `ParticipantBusy` (409).
//!
//! Pure: no I/O, no clock, no randomness. [`EvalStats`] counts rooms evaluated, rule checks
//! and intervals examined so the simulation can charge a CPU cost.
//!
//! NOT MODELLED
//!
//! Searching earlier times than requested (there is no "now" here), multi-room bookings,
//! and re-optimising existing appointments.

mod participants;

use std::cmp::Reverse;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use participants::{Participant, ParticipantConflict, participant_conflicts};
// The allocator's input and the interval index it shares with the rules engine live in
// `crate::schedule` (below both); re-exported here for the allocator's users.
pub use crate::schedule::fixture;
pub use crate::schedule::{
    Block, ClinicSnapshot, EpochMicros, EvalStats, MINUTE_US, RoomTimeline, epoch_us, from_epoch_us,
};

use crate::domain::{BookingRequest, FallbackMode, TimeWindow, ValidationError};
use crate::rules::{
    EvalContext, Rejection, RoomEvaluation, RuleId, RuleParams, RuleSet, Score, Slot, Violation,
};

/// Most rooms one clinic snapshot may hold.
pub const ROOMS_COUNT_MAX: usize = 1024;
/// Most appointments one snapshot may hold.
pub const APPOINTMENTS_COUNT_MAX: usize = 1_000_000;
/// Upper bound of `AllocatorConfig::search_steps_max`.
pub const SEARCH_STEPS_MAX: u32 = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AllocatorConfig {
    /// k: alternatives of each kind returned.
    pub alternatives_max: usize,
    /// Step of the time search for other times.
    pub search_step_minutes: u32,
    /// Candidate times tried, at most.
    pub search_steps_max: u32,
    /// Also search other times when a room was assigned (costs `search_steps_max` × rooms).
    pub suggest_times_when_assigned: bool,
    /// How rooms with equal scores are ordered.
    #[serde(default)]
    pub tie_break: TieBreak,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        AllocatorConfig {
            alternatives_max: 3,
            search_step_minutes: 15,
            search_steps_max: 48,
            suggest_times_when_assigned: false,
            tie_break: TieBreak::default(),
        }
    }
}

/// Order of rooms whose scores are equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// Lowest room id first: every request ranks equal rooms the same way.
    RoomId,
    /// A per-request order (a mix of room id and the request's patient, doctor and start):
    /// concurrent requests for one slot spread over equally good rooms. Deterministic: the
    /// same request always ranks the same way, retries included.
    #[default]
    Spread,
}

impl TieBreak {
    /// The secondary sort key of `room_id` for `request` (after the score).
    fn key(self, request: &BookingRequest, room_id: Uuid) -> u64 {
        match self {
            TieBreak::RoomId => 0,
            TieBreak::Spread => {
                let start_us = request.start.timestamp_micros() as u64;
                let request_key = fold_uuid(request.patient_id)
                    ^ fold_uuid(request.doctor_id).rotate_left(17)
                    ^ start_us.rotate_left(41);
                mix64(fold_uuid(room_id) ^ mix64(request_key))
            }
        }
    }
}

fn fold_uuid(id: Uuid) -> u64 {
    let (high, low) = id.as_u64_pair();
    high ^ low
}

/// splitmix64's finaliser: a fixed, well-spread bijection on u64 (no hasher state, so the
/// order is the same in every process).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A feasible room at the requested time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RankedRoom {
    pub room_id: Uuid,
    pub room_name: String,
    pub score: Score,
    /// Turnover to store with the appointment in this room.
    pub turnover_minutes: u32,
}

/// A feasible room at another time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimeSuggestion {
    pub room_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub score: Score,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Alternatives {
    pub same_time_other_rooms: Vec<RankedRoom>,
    pub same_room_other_times: Vec<TimeSuggestion>,
    pub next_feasible: Vec<TimeSuggestion>,
}

/// The best room among the infeasible ones, with all its violations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeastInfeasible {
    pub room_id: Uuid,
    pub score: Score,
    pub violations: Vec<Violation>,
}

/// What the allocator decided for one request (`Allocation::outcome`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// Book `ranked[0]`; on an exclusion violation try the next ranked room.
    Assigned { room_id: Uuid, score: Score },
    /// No feasible room; fallback `reject` (409) or `suggest` (answer with alternatives).
    NoRoom { fallback: FallbackMode },
    /// No feasible room; fallback `book_without_room`: book with status room_pending.
    RoomPending { score: Score },
    /// The pinned room fails a hard rule (422).
    PinnedRoomRejected { rejection: Rejection },
    /// The doctor or patient is already booked then (H15, 409).
    ParticipantBusy { conflicts: Vec<ParticipantConflict> },
}

/// The allocator's full answer (also the body of a room-assignment preview; its OpenAPI
/// schema keeps the nested allocator types as free-form objects).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RoomAssignmentPreview)]
pub struct Allocation {
    pub policy_version: u64,
    /// `{"kind": "assigned" | "no_room" | "room_pending" | "pinned_room_rejected" |
    /// "participant_busy", …}`.
    #[schema(value_type = Object)]
    pub outcome: Decision,
    /// Feasible rooms at the requested time, best first.
    #[schema(value_type = Vec<Object>)]
    pub ranked: Vec<RankedRoom>,
    /// The chosen room's evaluation with per-rule contributions.
    #[schema(value_type = Option<Object>)]
    pub explanation: Option<RoomEvaluation>,
    /// Every infeasible room with its first failing hard rule, in room-id order.
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
    #[schema(value_type = Object)]
    pub alternatives: Alternatives,
    #[schema(value_type = Option<Object>)]
    pub least_infeasible: Option<LeastInfeasible>,
    /// Counters of the work the allocator did.
    #[schema(value_type = Object)]
    pub stats: EvalStats,
}

/// Input the allocator cannot work with. Every variant names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{field}: the request names {requested} but the snapshot holds {snapshot}")]
    SnapshotMismatch { field: &'static str, requested: String, snapshot: String },
    #[error("room_id: room {room_id} is not a room of clinic {clinic_id}")]
    PinnedRoomNotInClinic { room_id: Uuid, clinic_id: Uuid },
    #[error("{what}: {count} entries, more than the {max} allowed")]
    TooLarge { what: &'static str, count: usize, max: usize },
}

impl AllocateError {
    /// Stable machine-readable code. All are the caller's input, none is retryable; a
    /// snapshot mismatch is the booking layer's bug rather than the client's.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(error) => error.code(),
            Self::SnapshotMismatch { .. } => "SNAPSHOT_MISMATCH",
            Self::PinnedRoomNotInClinic { .. } => "ROOM_NOT_IN_CLINIC",
            Self::TooLarge { .. } => "SNAPSHOT_TOO_LARGE",
        }
    }
}

fn check_snapshot(
    snapshot: &ClinicSnapshot,
    request: &BookingRequest,
) -> Result<(), AllocateError> {
    let ids = [
        ("clinic_id", request.clinic_id, snapshot.clinic.id),
        ("doctor_id", request.doctor_id, snapshot.doctor.id),
        ("patient_id", request.patient_id, snapshot.patient.id),
    ];
    for (field, requested, held) in ids {
        if requested != held {
            let (requested, snapshot) = (requested.to_string(), held.to_string());
            return Err(AllocateError::SnapshotMismatch { field, requested, snapshot });
        }
    }
    if request.appointment_type != snapshot.appointment_type.key {
        return Err(AllocateError::SnapshotMismatch {
            field: "appointment_type",
            requested: request.appointment_type.clone(),
            snapshot: snapshot.appointment_type.key.clone(),
        });
    }
    let limits = [
        ("rooms", snapshot.rooms.len(), ROOMS_COUNT_MAX),
        ("appointments", snapshot.appointments.len(), APPOINTMENTS_COUNT_MAX),
    ];
    for (what, count, max) in limits {
        if count > max {
            return Err(AllocateError::TooLarge { what, count, max });
        }
    }
    Ok(())
}

/// Ranks every room for `request` and decides the outcome. Pure and deterministic.
pub fn allocate(
    rules: &RuleSet,
    snapshot: &ClinicSnapshot,
    request: &BookingRequest,
    config: &AllocatorConfig,
) -> Result<Allocation, AllocateError> {
    request.validate()?;
    check_snapshot(snapshot, request)?;
    let ctx = EvalContext::new(rules, snapshot, request);
    let pinned_index = match request.room_id {
        Some(room_id) => {
            Some(ctx.room_index(room_id).ok_or(AllocateError::PinnedRoomNotInClinic {
                room_id,
                clinic_id: request.clinic_id,
            })?)
        }
        None => None,
    };
    // Includes the time-independent rule checks done once per room while preparing.
    let mut stats = ctx.preparation_stats();
    let slot = ctx.requested_slot();
    let conflicts = slot_participant_conflicts(&ctx, slot);
    let (feasible, infeasible) = evaluate_all(&ctx, slot, config.tie_break, &mut stats);
    let ranked: Vec<RankedRoom> = feasible.iter().map(|e| ranked_room(snapshot, e)).collect();
    let explanation =
        feasible.first().map(|best| ctx.evaluate_room(best.room_index, slot, true, &mut stats));
    // The infeasible rooms are reported by their violations only: explained without the soft
    // contributions (same violations, score and stats as a full explained evaluation).
    let explained: Vec<RoomEvaluation> =
        infeasible.iter().map(|e| ctx.explain_violations(e, &mut stats)).collect();
    let rejected = rejections(snapshot, &explained);
    let least_infeasible = if feasible.is_empty() { least_infeasible(&explained) } else { None };
    let outcome = decide(request, &ctx, &feasible, &explained, pinned_index, conflicts);
    let mut alternatives = Alternatives {
        same_time_other_rooms: ranked
            .iter()
            .skip(1)
            .take(config.alternatives_max)
            .cloned()
            .collect(),
        ..Alternatives::default()
    };
    let assigned = matches!(outcome, Decision::Assigned { .. });
    if !assigned || config.suggest_times_when_assigned {
        let focus = focus_room(&ctx, pinned_index, &feasible, &explained);
        search_times(&ctx, config, focus, &mut alternatives, &mut stats);
    }
    Ok(Allocation {
        policy_version: rules.version,
        outcome,
        ranked,
        explanation,
        rejected,
        alternatives,
        least_infeasible,
        stats,
    })
}

/// H15 at `slot`, if the rule is active.
fn slot_participant_conflicts(ctx: &EvalContext, slot: Slot) -> Vec<ParticipantConflict> {
    let Some(rule) = ctx.rules.active(RuleId::ParticipantNoDoubleBooking) else {
        return Vec::new();
    };
    let RuleParams::ParticipantNoDoubleBooking(params) = &rule.params else {
        unreachable!("H15 carries participant parameters");
    };
    let request = ctx.request;
    let appointments = ctx.participant_appointments();
    let (doctor, patient) = (request.doctor_id, request.patient_id);
    participant_conflicts(appointments, doctor, patient, slot.start, slot.end, params)
}

/// Evaluates every room at `slot` (fast path): feasible rooms ranked best first, and the
/// infeasible ones in room-id order.
fn evaluate_all(
    ctx: &EvalContext,
    slot: Slot,
    tie_break: TieBreak,
    stats: &mut EvalStats,
) -> (Vec<RoomEvaluation>, Vec<RoomEvaluation>) {
    let rooms = &ctx.snapshot.rooms;
    let (mut feasible, mut infeasible): (Vec<_>, Vec<_>) = (0..rooms.len())
        .map(|index| ctx.evaluate_room(index, slot, false, stats))
        .partition(RoomEvaluation::is_feasible);
    let request = ctx.request;
    feasible
        .sort_by_cached_key(|e| (Reverse(e.score), tie_break.key(request, e.room_id), e.room_id));
    infeasible.sort_by_key(|e| e.room_id);
    (feasible, infeasible)
}

fn ranked_room(snapshot: &ClinicSnapshot, evaluation: &RoomEvaluation) -> RankedRoom {
    RankedRoom {
        room_id: evaluation.room_id,
        room_name: snapshot.rooms[evaluation.room_index].name.clone(),
        score: evaluation.score,
        turnover_minutes: evaluation.turnover_minutes,
    }
}

fn rejections(snapshot: &ClinicSnapshot, explained: &[RoomEvaluation]) -> Vec<Rejection> {
    let rejection = |e: &RoomEvaluation| e.rejection(&snapshot.rooms[e.room_index]);
    let rejected: Vec<Rejection> = explained.iter().filter_map(rejection).collect();
    assert_eq!(rejected.len(), explained.len(), "every infeasible room has a first failure");
    rejected
}

/// The infeasible room with the best score (ties: lowest room id).
fn least_infeasible(explained: &[RoomEvaluation]) -> Option<LeastInfeasible> {
    let best = explained.iter().min_by_key(|e| (Reverse(e.score), e.room_id))?;
    Some(LeastInfeasible {
        room_id: best.room_id,
        score: best.score,
        violations: best.violations.clone(),
    })
}

fn decide(
    request: &BookingRequest,
    ctx: &EvalContext,
    feasible: &[RoomEvaluation],
    explained: &[RoomEvaluation],
    pinned_index: Option<usize>,
    conflicts: Vec<ParticipantConflict>,
) -> Decision {
    if !conflicts.is_empty() {
        return Decision::ParticipantBusy { conflicts };
    }
    if let Some(pinned) = pinned_index
        && let Some(failed) = explained.iter().find(|e| e.room_index == pinned)
    {
        let rejection = failed.rejection(&ctx.snapshot.rooms[pinned]);
        return Decision::PinnedRoomRejected { rejection: rejection.expect("a violation") };
    }
    if let Some(best) = feasible.first() {
        return Decision::Assigned { room_id: best.room_id, score: best.score };
    }
    match request.fallback {
        FallbackMode::Reject | FallbackMode::Suggest => {
            Decision::NoRoom { fallback: request.fallback }
        }
        FallbackMode::BookWithoutRoom => {
            Decision::RoomPending { score: Score { hard: 0, medium: -1, soft: 0 } }
        }
    }
}

/// The room whose other times are worth suggesting: the pinned room, else the chosen room,
/// else the least-infeasible room.
fn focus_room(
    ctx: &EvalContext,
    pinned_index: Option<usize>,
    feasible: &[RoomEvaluation],
    explained: &[RoomEvaluation],
) -> Option<usize> {
    if pinned_index.is_some() {
        return pinned_index;
    }
    if let Some(best) = feasible.first() {
        return Some(best.room_index);
    }
    let least = explained.iter().min_by_key(|e| (Reverse(e.score), e.room_id))?;
    debug_assert!(ctx.snapshot.rooms[least.room_index].id == least.room_id);
    Some(least.room_index)
}

/// Bounded forward search: up to `search_steps_max` later slots, `search_step_minutes` apart.
/// Fills `same_room_other_times` (the focus room) and `next_feasible` (best room per time).
fn search_times(
    ctx: &EvalContext,
    config: &AllocatorConfig,
    focus: Option<usize>,
    alternatives: &mut Alternatives,
    stats: &mut EvalStats,
) {
    let k = config.alternatives_max;
    let steps = config.search_steps_max.min(SEARCH_STEPS_MAX);
    let step_minutes = i64::from(config.search_step_minutes.max(1));
    let requested = ctx.requested_slot();
    for step in 1..=i64::from(steps) {
        let same_room_done = focus.is_none() || alternatives.same_room_other_times.len() >= k;
        if same_room_done && alternatives.next_feasible.len() >= k {
            break;
        }
        let slot = requested.shifted(step * step_minutes);
        stats.slots_searched += 1;
        if !slot_participant_conflicts(ctx, slot).is_empty() {
            continue;
        }
        if let Some(index) = focus.filter(|_| !same_room_done) {
            let evaluation = ctx.evaluate_room(index, slot, false, stats);
            if evaluation.is_feasible() {
                alternatives.same_room_other_times.push(suggestion(&evaluation));
            }
        }
        if alternatives.next_feasible.len() < k {
            let (feasible, _) = evaluate_all(ctx, slot, config.tie_break, stats);
            alternatives.next_feasible.extend(feasible.first().map(suggestion));
        }
    }
}

fn suggestion(evaluation: &RoomEvaluation) -> TimeSuggestion {
    TimeSuggestion {
        room_id: evaluation.room_id,
        start: evaluation.slot.start,
        end: evaluation.slot.end,
        score: evaluation.score,
    }
}

/// Free intervals of each room within `[from, to)`, for the availability endpoint. Rooms in
/// snapshot order; ignores rules (a free interval is not necessarily bookable).
pub fn room_free_intervals(
    snapshot: &ClinicSnapshot,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Uuid, Vec<TimeWindow>)> {
    let window = |(start, end)| TimeWindow { start, end, reason: String::new() };
    let rooms = snapshot.rooms.iter().map(|room| {
        let timeline = RoomTimeline::build(room.id, &snapshot.appointments);
        let free = timeline.free_intervals(from, to).into_iter().map(window).collect();
        (room.id, free)
    });
    rooms.collect()
}
