//! The booking use case: from a parsed request to an answer, in rounds.
//!
//! WHAT: [`book`] takes a validated [`BookingRequest`] (and its Idempotency-Key claim, if any)
//! and runs the booking to its end, returning a [`BookingAnswer`] (created, replayed, or
//! suggestions) or an [`Error`] (conflict, infeasible pinned room, no room, ...). It owns:
//!
//! 1. The replay of a completed request with the same Idempotency-Key (looked up first).
//! 2. Rounds: snapshot reads outside any transaction ([`prepare`]: policy version check through
//!    the cache, clinic, doctor, patient, type, rooms, the day's appointments), the allocator
//!    (pure; its CPU cost charged through the [`WorkCharge`] hook), `decide` and the strategy's
//!    transaction on the top `candidates_max` ranked rooms (`candidates`).
//! 3. Decide: participant busy → 409; pinned room infeasible → 422; no room → 409 (reject),
//!    suggestions (suggest) or a room_pending booking (book_without_room).
//! 4. The re-allocation budget: when every candidate was taken by bookings that committed after
//!    the snapshot, the next round reads a fresh snapshot: at most `reallocations_max` times.
//!    `book_without_room` books room_pending only in the last round. When even the last
//!    transaction finds every candidate taken, one more snapshot is read (with the time search
//!    on) and the request answers ROOM_UNAVAILABLE (or suggestions) from it: the all-taken
//!    fallback. Every round's allocator run adds to [`Timing`] `rules`, its reads to `db`.
//!
//! Nothing is half-written: every write happens in the one transaction of a round.
//!
//! WHY THE 201 IS RENDERED THROUGH AN INJECTED RENDERER: the created answer is stored with the
//! Idempotency-Key inside the booking transaction, before COMMIT, so that a replay returns the
//! very bytes of the first answer. The body must therefore exist before the service returns,
//! yet its JSON shape is the HTTP layer's. The caller passes [`RenderCreated`]; the service
//! calls it (at most once per placement, see `RenderOnce`) from inside the transaction and
//! returns the same [`StoredAnswer`] in [`BookingAnswer::Created`]. Every other answer is
//! returned as data ([`BookingAnswer::Suggestions`] carries the allocation) and rendered by
//! the caller.
//!
//! The service knows nothing of HTTP: the caller maps the answer to a status, headers and a
//! body (`http::appointments`), and passes what the service needs as a [`BookingContext`].

use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::Strategy;
use super::body_cache::BodyCache;
use super::retry::RetryPolicy;
use super::snapshot::{enum_to_str, load_policy, load_snapshot};
use super::timing::Timing;
use super::transaction::{
    AppointmentRow, BookingPlan, Candidate, IdempotencyClaim, Placement, StoredAnswer, TxnOutcome,
    lookup_idempotency_key, run_booking,
};
use super::work::{Work, WorkCharge};
use crate::allocator::{
    AllocateError, Allocation, AllocatorConfig, Decision, Participant, allocate,
};
use crate::db::Conn;
use crate::domain::{BookingRequest, Clock, FallbackMode, IdSource, Isolation};
use crate::error::{Error, ProblemExtensions, Result};
use crate::metrics::{BookingOutcome, Metrics};
use crate::rules::{PolicyCache, RuleSet};
use crate::schedule::ClinicSnapshot;

/// What a booking needs besides the request and the connection: settings and shared services.
pub struct BookingContext<'a> {
    pub strategy: Strategy,
    pub retry: &'a RetryPolicy,
    /// Ranked rooms one transaction tries.
    pub candidates_max: usize,
    /// Fresh snapshots read after a transaction found every candidate taken.
    pub reallocations_max: u32,
    pub allocator: &'a AllocatorConfig,
    /// Rooms of one clinic, and appointments of one clinic-day, the snapshot may load.
    pub rooms_max: usize,
    pub day_appointments_max: usize,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub metrics: &'a Metrics,
    pub policy_cache: &'a PolicyCache,
    pub bodies: &'a BodyCache,
    /// The CPU-cost hook, charged after every allocator run.
    pub work: &'a dyn WorkCharge,
    /// Jitter for retry backoff; seeded, so a simulated run replays exactly.
    pub retry_rng: &'a Mutex<ChaCha8Rng>,
}

/// How a booking ended, when it did not end in an [`Error`].
#[derive(Debug)]
pub enum BookingAnswer {
    /// Booked (into a room, or room_pending): the answer the injected renderer built, the same
    /// one stored with the Idempotency-Key.
    Created { answer: StoredAnswer, room_pending: bool },
    /// The Idempotency-Key's stored answer, from an earlier request with the same body.
    Replayed(StoredAnswer),
    /// No booking (fallback `suggest`): the allocation whose alternatives answer the request.
    Suggestions(Box<Allocation>),
}

/// A booking that committed: what the 201 body is rendered from.
#[derive(Clone, Copy)]
pub struct CreatedBooking<'a> {
    pub prepared: &'a Prepared,
    pub row: &'a AppointmentRow,
    pub candidates: &'a [Candidate],
    pub placement: &'a Placement,
}

/// Renders the answer to a committed booking (see the module doc for why it is injected).
pub type RenderCreated<'r> = dyn Fn(&CreatedBooking<'_>) -> StoredAnswer + Send + Sync + 'r;

/// What the allocation phase produced for a request.
pub struct Prepared {
    pub request: BookingRequest,
    pub snapshot: ClinicSnapshot,
    pub allocation: Allocation,
}

/// Books `request`, as the module doc describes. `claim` is the request's Idempotency-Key
/// with the hash of its body; `timing` accumulates the phases over every round.
pub async fn book(
    ctx: &BookingContext<'_>,
    conn: &mut dyn Conn,
    request: BookingRequest,
    claim: Option<&IdempotencyClaim>,
    render_created: &RenderCreated<'_>,
    timing: &mut Timing,
) -> Result<BookingAnswer> {
    if let Some(replay) = stored_replay(conn, claim, timing).await? {
        return Ok(replayed(ctx, replay));
    }
    let mut round = Round { request, reallocations: 0, row_id: None };
    loop {
        match book_round(ctx, conn, claim, render_created, &mut round, timing).await? {
            RoundEnd::Answer(answer) => return Ok(answer),
            RoundEnd::AllTaken => {
                // Every candidate was taken by concurrent bookings since the snapshot: read a
                // fresh one and allocate again.
                round.reallocations += 1;
                ctx.metrics.reallocation();
            }
        }
    }
}

/// Reads the request's inputs and runs the allocator (shared with the preview, which books
/// nothing).
pub async fn prepare(
    ctx: &BookingContext<'_>,
    conn: &mut dyn Conn,
    request: BookingRequest,
    allocator: &AllocatorConfig,
    timing: &mut Timing,
) -> Result<Prepared> {
    let read_started = Instant::now();
    let read = read_inputs(ctx, conn, &request).await;
    timing.db += read_started.elapsed();
    let (policy, snapshot) = read?;
    let allocation = run_allocator(ctx, &policy, &snapshot, &request, allocator, timing).await?;
    Ok(Prepared { request, snapshot, allocation })
}

async fn read_inputs(
    ctx: &BookingContext<'_>,
    conn: &mut dyn Conn,
    request: &BookingRequest,
) -> Result<(Arc<RuleSet>, ClinicSnapshot)> {
    let policy = load_policy(conn, ctx.policy_cache, ctx.bodies, request.clinic_id).await?;
    let (rooms_max, appointments_max) = (ctx.rooms_max, ctx.day_appointments_max);
    let snapshot = load_snapshot(conn, ctx.bodies, request, rooms_max, appointments_max).await?;
    Ok((policy, snapshot))
}

async fn run_allocator(
    ctx: &BookingContext<'_>,
    policy: &RuleSet,
    snapshot: &ClinicSnapshot,
    request: &BookingRequest,
    allocator: &AllocatorConfig,
    timing: &mut Timing,
) -> Result<Allocation> {
    let started = Instant::now();
    let allocation = allocate(policy, snapshot, request, allocator);
    let allocation = allocation.map_err(allocate_error)?;
    ctx.work.charge(Work::RulesEvaluation(allocation.stats)).await;
    timing.rules += started.elapsed();
    let started = Instant::now();
    ctx.work.charge(Work::ConflictDetection(allocation.stats)).await;
    timing.conflict += started.elapsed();
    Ok(allocation)
}

fn allocate_error(error: AllocateError) -> Error {
    match error {
        AllocateError::Invalid(validation) => Error::Validation(validation),
        AllocateError::PinnedRoomNotInClinic { room_id, .. } => Error::UnknownReference {
            field: "room_id".into(),
            entity: "room",
            id: room_id.to_string(),
            scope: " in this clinic",
        },
        // The snapshot was read for this very request: a mismatch is our bug.
        AllocateError::SnapshotMismatch { .. } | AllocateError::TooLarge { .. } => {
            Error::Internal(error.to_string())
        }
    }
}

/// The state carried from one allocation round of a booking to the next.
struct Round {
    request: BookingRequest,
    /// Fresh snapshots read because every candidate of the previous round was taken.
    reallocations: u32,
    /// The appointment id, drawn once at the first transaction and kept across rounds.
    row_id: Option<Uuid>,
}

enum RoundEnd {
    Answer(BookingAnswer),
    /// The transaction found every candidate taken; the request goes to the next round.
    AllTaken,
}

/// One round: snapshot → allocator → decide → transaction.
async fn book_round(
    ctx: &BookingContext<'_>,
    conn: &mut dyn Conn,
    claim: Option<&IdempotencyClaim>,
    render_created: &RenderCreated<'_>,
    round: &mut Round,
    timing: &mut Timing,
) -> Result<RoundEnd> {
    let reallocations_max = ctx.reallocations_max;
    // Past the budget, this round only reads the state to answer from: no transaction, and
    // the allocator also searches other times so the answer has alternatives.
    let exhausted = round.reallocations > reallocations_max;
    let searching = exhausted
        .then(|| AllocatorConfig { suggest_times_when_assigned: true, ..ctx.allocator.clone() });
    let allocator = searching.as_ref().unwrap_or(ctx.allocator);
    let before = *timing;
    let prepared = prepare(ctx, conn, round.request.clone(), allocator, timing).await?;
    let decided = decide(ctx, &prepared);
    if found_in_snapshot(&decided) {
        // The conflict was detected by reading the day and running the allocator: that is
        // this request's conflict detection (Server-Timing `conflict`), not zero.
        timing.conflict += (timing.db - before.db) + (timing.rules - before.rules);
    }
    if !matches!(decided, Ok(Some(_))) {
        // A duplicate of this request may have committed since the first lookup: its own
        // booking then makes this one look infeasible. The booking and its key commit
        // together, so a snapshot that saw the booking is followed by a lookup that sees the
        // key: replay rather than reject.
        if let Some(replay) = stored_replay(conn, claim, timing).await? {
            return Ok(RoundEnd::Answer(replayed(ctx, replay)));
        }
    }
    let Some(candidates) = decided? else {
        ctx.metrics.booking(BookingOutcome::Rejected);
        return Ok(RoundEnd::Answer(BookingAnswer::Suggestions(Box::new(prepared.allocation))));
    };
    if exhausted {
        assert!(!candidates.is_empty(), "book_without_room never ends a round all-taken");
        let detail = format!(
            "rooms were free, but every ranked room was booked concurrently in \
             {reallocations_max} re-allocations; retry"
        );
        return answer_all_taken(ctx, prepared, detail).map(RoundEnd::Answer);
    }
    let id = *round.row_id.get_or_insert_with(|| ctx.ids.next_id());
    let row = appointment_row(ctx, &prepared, id);
    // The room_pending fallback applies only once re-allocation cannot find a room either.
    let last_round = round.reallocations == reallocations_max;
    let book_without_room = prepared.request.fallback == FallbackMode::BookWithoutRoom
        && (candidates.is_empty() || last_round);
    let once = RenderOnce::new(|placement: &Placement| {
        let created =
            CreatedBooking { prepared: &prepared, row: &row, candidates: &candidates, placement };
        render_created(&created)
    });
    let render = |placement: &Placement| once.render(placement);
    let plan = BookingPlan {
        strategy: ctx.strategy,
        row: &row,
        candidates: &candidates,
        book_without_room,
        idempotency: claim,
        render_created: &render,
    };
    let report = run_booking(conn, &plan, ctx.retry, ctx.retry_rng, ctx.metrics).await?;
    timing.db += report.db_time;
    timing.conflict += report.conflict_time;
    for _ in 0..report.room_conflicts {
        ctx.metrics.room_conflict();
    }
    match report.outcome {
        TxnOutcome::AllTaken => {
            assert!(!book_without_room, "the room_pending fallback never ends all-taken");
            Ok(RoundEnd::AllTaken)
        }
        TxnOutcome::Committed(placement) => {
            let room_pending = placement.room_id.is_none();
            let answer = render(&placement);
            let outcome =
                if room_pending { BookingOutcome::RoomPending } else { BookingOutcome::Booked };
            ctx.metrics.booking(outcome);
            Ok(RoundEnd::Answer(BookingAnswer::Created { answer, room_pending }))
        }
        replay @ TxnOutcome::Replay { .. } => Ok(RoundEnd::Answer(replayed(ctx, replay))),
    }
}

/// Whether the decision is a conflict found in the snapshot (no transaction will run): a busy
/// doctor or patient, no feasible room (409 or suggestions), a pinned room that is taken.
fn found_in_snapshot(decided: &Result<Option<Vec<Candidate>>>) -> bool {
    matches!(
        decided,
        Ok(None)
            | Err(Error::RoomUnavailable { .. }
                | Error::ParticipantUnavailable { .. }
                | Error::PinnedRoomInfeasible { .. })
    )
}

/// A stored answer found for the request's key (before, during or between rounds).
fn replayed(ctx: &BookingContext<'_>, outcome: TxnOutcome) -> BookingAnswer {
    let TxnOutcome::Replay { status_code, body } = outcome else {
        unreachable!("an idempotency-key lookup yields a replay or nothing")
    };
    ctx.metrics.booking(BookingOutcome::Replayed);
    BookingAnswer::Replayed(StoredAnswer { status_code, body })
}

/// Rooms were free in the snapshot but none could be had: the fallback's answer, from
/// `prepared` (the caller makes sure it is fresh).
fn answer_all_taken(
    ctx: &BookingContext<'_>,
    prepared: Prepared,
    detail: String,
) -> Result<BookingAnswer> {
    if prepared.request.fallback == FallbackMode::Suggest {
        ctx.metrics.booking(BookingOutcome::Rejected);
        return Ok(BookingAnswer::Suggestions(Box::new(prepared.allocation)));
    }
    Err(room_unavailable(&prepared.allocation, detail))
}

/// The stored answer for the request's key, if it has one and it completed.
async fn stored_replay(
    conn: &mut dyn Conn,
    claim: Option<&IdempotencyClaim>,
    timing: &mut Timing,
) -> Result<Option<TxnOutcome>> {
    let Some(claim) = claim else { return Ok(None) };
    let started = Instant::now();
    let stored = lookup_idempotency_key(conn, claim).await;
    timing.db += started.elapsed();
    stored
}

/// The candidates to try, `None` for "answer with suggestions", or an error.
fn decide(ctx: &BookingContext<'_>, prepared: &Prepared) -> Result<Option<Vec<Candidate>>> {
    let allocation = &prepared.allocation;
    match &allocation.outcome {
        Decision::ParticipantBusy { conflicts } => {
            let doctor = conflicts.iter().any(|c| c.participant == Participant::Doctor);
            let field = if doctor { "doctor_id" } else { "patient_id" };
            let mut extensions = ProblemExtensions::new();
            extensions.insert("conflicts".into(), json!(conflicts));
            extensions.insert("alternatives".into(), alternatives_json(allocation));
            Err(Error::ParticipantUnavailable { field, extensions: Box::new(extensions) })
        }
        Decision::PinnedRoomRejected { rejection } => {
            let mut extensions = ProblemExtensions::new();
            extensions.insert("rejection".into(), json!(rejection));
            extensions.insert("alternatives".into(), alternatives_json(allocation));
            Err(Error::PinnedRoomInfeasible {
                room_id: rejection.room_id.to_string(),
                reason: format!("{} {}", rejection.rule.code(), rejection.message),
                extensions: Box::new(extensions),
            })
        }
        Decision::NoRoom { fallback: FallbackMode::Suggest } => Ok(None),
        Decision::NoRoom { .. } => {
            Err(room_unavailable(allocation, "no room satisfies every hard rule".into()))
        }
        Decision::RoomPending { .. } => Ok(Some(Vec::new())),
        Decision::Assigned { .. } => Ok(Some(candidates(ctx, prepared))),
    }
}

/// The ranked rooms the transaction may try: only the pinned one when a room was pinned.
fn candidates(ctx: &BookingContext<'_>, prepared: &Prepared) -> Vec<Candidate> {
    let ranked = prepared.allocation.ranked.iter();
    let pinned = prepared.request.room_id;
    let eligible = ranked.filter(|room| pinned.is_none_or(|id| id == room.room_id));
    let candidates: Vec<Candidate> = eligible
        .take(ctx.candidates_max.max(1))
        .map(|room| Candidate {
            room_id: room.room_id,
            turnover_minutes: room.turnover_minutes,
            score: room.score.to_string(),
        })
        .collect();
    assert!(!candidates.is_empty(), "an Assigned outcome has at least one ranked room");
    candidates
}

fn appointment_row(ctx: &BookingContext<'_>, prepared: &Prepared, id: Uuid) -> AppointmentRow {
    let request = &prepared.request;
    let patient = &prepared.snapshot.patient;
    AppointmentRow {
        id,
        clinic_id: request.clinic_id,
        doctor_id: request.doctor_id,
        patient_id: request.patient_id,
        appointment_type: request.appointment_type.clone(),
        starts_at: request.start,
        ends_at: request.end,
        infectious: patient.is_infectious() || request.needs.isolation != Isolation::None,
        patient_gender: Some(enum_to_str(&patient.gender)),
        policy_version: i64::try_from(prepared.allocation.policy_version).unwrap_or(i64::MAX),
        created_at: ctx.clock.now(),
    }
}

/// Renders each placement's answer once: the transaction stores it with the Idempotency-Key
/// and the service returns it, so without this it was rendered twice per booking.
struct RenderOnce<F> {
    render: F,
    rendered: Mutex<Option<(Placement, StoredAnswer)>>,
}

impl<F: Fn(&Placement) -> StoredAnswer> RenderOnce<F> {
    fn new(render: F) -> Self {
        RenderOnce { render, rendered: Mutex::new(None) }
    }

    fn render(&self, placement: &Placement) -> StoredAnswer {
        let mut rendered = self.rendered.lock().expect("render cache lock poisoned");
        if let Some((cached, answer)) = rendered.as_ref()
            && cached == placement
        {
            return answer.clone();
        }
        let answer = (self.render)(placement);
        *rendered = Some((placement.clone(), answer.clone()));
        answer
    }
}

fn alternatives_json(allocation: &Allocation) -> Value {
    json!(allocation.alternatives)
}

fn room_unavailable(allocation: &Allocation, detail: String) -> Error {
    let mut extensions = ProblemExtensions::new();
    extensions.insert("policy_version".into(), json!(allocation.policy_version));
    extensions.insert("alternatives".into(), alternatives_json(allocation));
    extensions.insert("least_infeasible".into(), json!(allocation.least_infeasible));
    extensions.insert("rejected".into(), json!(allocation.rejected));
    Error::RoomUnavailable { detail, extensions: Box::new(extensions) }
}
