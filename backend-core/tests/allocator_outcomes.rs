//! Allocator decisions on hand-built clinics: assignment and ranking, every fallback mode,
//! pinned rooms, participant conflicts, alternatives, bad input, and the work counters.

use backend_core::allocator::fixture::{Fixture, at, fixture_id};
use backend_core::allocator::{
    AllocateError, AllocatorConfig, Decision, Participant, allocate, room_free_intervals,
};
use backend_core::domain::{
    Appointment, AppointmentStatus, FallbackMode, RoomStatus, ValidationError,
};
use backend_core::rules::{RuleId, Score, default_rule_set};
use chrono::Duration;

/// Three rooms: 0 is plain, 1 is in another zone (S04 costs 15), 2 lacks the ECG (infeasible).
fn three_rooms() -> Fixture {
    let mut f = Fixture::single_room();
    let clinic = f.snapshot.clinic.id;
    let mut zone_b = Fixture::plain_room(clinic, 1);
    zone_b.zone = "B".into();
    let mut no_ecg = Fixture::plain_room(clinic, 2);
    no_ecg.equipment.remove("ecg");
    f.snapshot.rooms.extend([zone_b, no_ecg]);
    f.snapshot.doctor.preferred_rooms.clear();
    f
}

fn block_room(f: &mut Fixture, room: usize, n: u64, start_hour: u32, end_hour: u32) {
    let a = Appointment {
        id: fixture_id(5, n),
        clinic_id: f.snapshot.clinic.id,
        room_id: Some(f.snapshot.rooms[room].id),
        doctor_id: fixture_id(3, 50),
        patient_id: fixture_id(4, 50 + n),
        appointment_type: "follow_up".into(),
        start: at(start_hour, 0),
        end: at(end_hour, 0),
        turnover_minutes: 0,
        status: AppointmentStatus::Booked,
        infectious: false,
        patient_gender: None,
    };
    f.snapshot.appointments.push(a);
}

fn run(f: &Fixture) -> backend_core::allocator::Allocation {
    allocate(&default_rule_set(), &f.snapshot, &f.request, &AllocatorConfig::default()).unwrap()
}

#[test]
fn assigns_the_best_room_ranks_the_rest_and_explains() {
    let f = three_rooms();
    let allocation = run(&f);
    let rooms = &f.snapshot.rooms;
    assert_eq!(allocation.outcome, Decision::Assigned { room_id: rooms[0].id, score: Score::ZERO });
    let ranked: Vec<_> = allocation.ranked.iter().map(|r| (r.room_id, r.score.soft)).collect();
    assert_eq!(ranked, vec![(rooms[0].id, 0), (rooms[1].id, -15)]);
    assert_eq!(allocation.ranked[0].turnover_minutes, 5);
    assert_eq!(allocation.alternatives.same_time_other_rooms.len(), 1);
    assert_eq!(allocation.alternatives.same_time_other_rooms[0].room_id, rooms[1].id);
    let explanation = allocation.explanation.as_ref().unwrap();
    assert_eq!(explanation.room_id, rooms[0].id);
    assert_eq!(explanation.contributions.len(), 23);
    assert_eq!(allocation.rejected.len(), 1);
    assert_eq!(allocation.rejected[0].room_id, rooms[2].id);
    assert_eq!(allocation.rejected[0].rule, RuleId::RequiredEquipment);
    assert!(allocation.rejected[0].message.contains("ecg"));
    assert!(allocation.least_infeasible.is_none());
    assert!(allocation.alternatives.next_feasible.is_empty(), "no time search when assigned");
    assert_eq!(allocation.policy_version, 1);
}

#[test]
fn a_time_conflict_drops_the_room_and_the_next_ranked_wins() {
    let mut f = three_rooms();
    block_room(&mut f, 0, 1, 9, 10);
    let allocation = run(&f);
    let rooms = &f.snapshot.rooms;
    assert!(
        matches!(allocation.outcome, Decision::Assigned { room_id, .. } if room_id == rooms[1].id)
    );
    let rejected: Vec<_> = allocation.rejected.iter().map(|r| (r.room_id, r.rule)).collect();
    let mut expected =
        vec![(rooms[0].id, RuleId::NoRoomOverlap), (rooms[2].id, RuleId::RequiredEquipment)];
    expected.sort();
    assert_eq!(rejected, expected);
}

#[test]
fn reject_mode_names_least_infeasible_and_suggests_later_times() {
    let mut f = three_rooms();
    block_room(&mut f, 0, 1, 9, 10);
    block_room(&mut f, 1, 2, 8, 11);
    let allocation = run(&f);
    assert_eq!(allocation.outcome, Decision::NoRoom { fallback: FallbackMode::Reject });
    assert!(allocation.ranked.is_empty() && allocation.explanation.is_none());
    assert_eq!(allocation.rejected.len(), 3);
    // Room 2 only lacks equipment (−50) — less infeasible than a time conflict (−1000).
    let least = allocation.least_infeasible.as_ref().unwrap();
    assert_eq!(least.room_id, f.snapshot.rooms[2].id);
    assert_eq!(least.score.hard, -50);
    assert_eq!(least.violations[0].rule, RuleId::RequiredEquipment);
    // Room 0 frees at 10:00: the first 15-minute step that fits is 10:00 (4 steps later).
    let next = &allocation.alternatives.next_feasible;
    assert_eq!(next.len(), 3);
    assert_eq!((next[0].room_id, next[0].start), (f.snapshot.rooms[0].id, at(10, 0)));
    assert!(next.windows(2).all(|w| w[0].start < w[1].start));
    // The focus room (least infeasible, room 2) never becomes feasible: it lacks the ECG.
    assert!(allocation.alternatives.same_room_other_times.is_empty());
    assert!(allocation.stats.slots_searched >= 4);
}

#[test]
fn suggest_and_book_without_room_modes() {
    let mut f = Fixture::single_room();
    block_room(&mut f, 0, 1, 8, 12);
    f.request.fallback = FallbackMode::Suggest;
    let allocation = run(&f);
    assert_eq!(allocation.outcome, Decision::NoRoom { fallback: FallbackMode::Suggest });
    let same_room = &allocation.alternatives.same_room_other_times;
    assert_eq!(
        same_room.iter().map(|s| s.start).collect::<Vec<_>>(),
        [at(12, 0), at(12, 15), at(12, 30)]
    );
    f.request.fallback = FallbackMode::BookWithoutRoom;
    let allocation = run(&f);
    assert_eq!(
        allocation.outcome,
        Decision::RoomPending { score: Score { hard: 0, medium: -1, soft: 0 } }
    );
}

#[test]
fn a_failing_pinned_room_is_rejected_even_if_others_fit() {
    let mut f = three_rooms();
    f.request.room_id = Some(f.snapshot.rooms[2].id);
    let allocation = run(&f);
    let Decision::PinnedRoomRejected { rejection } = &allocation.outcome else {
        panic!("{:?}", allocation.outcome)
    };
    assert_eq!(rejection.rule, RuleId::RequiredEquipment);
    assert!(allocation.ranked.is_empty(), "H16 rules out the unpinned rooms");
    f.request.room_id = Some(f.snapshot.rooms[1].id);
    let allocation = run(&f);
    let room = f.snapshot.rooms[1].id;
    assert!(matches!(allocation.outcome, Decision::Assigned { room_id, .. } if room_id == room));
    f.request.room_id = Some(fixture_id(2, 999));
    let err = allocate(&default_rule_set(), &f.snapshot, &f.request, &AllocatorConfig::default());
    assert!(matches!(err, Err(AllocateError::PinnedRoomNotInClinic { .. })));
}

#[test]
fn a_busy_doctor_is_a_participant_conflict_not_a_room_problem() {
    let mut f = three_rooms();
    block_room(&mut f, 1, 1, 9, 10);
    f.snapshot.appointments[0].doctor_id = f.request.doctor_id;
    let allocation = run(&f);
    let Decision::ParticipantBusy { conflicts } = &allocation.outcome else {
        panic!("{:?}", allocation.outcome)
    };
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].participant, Participant::Doctor);
    // The next feasible time is when the doctor is free again.
    assert_eq!(allocation.alternatives.next_feasible[0].start, at(10, 0));
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut f = Fixture::single_room();
    f.request.end = f.request.start;
    let err = allocate(&default_rule_set(), &f.snapshot, &f.request, &AllocatorConfig::default())
        .unwrap_err();
    assert!(matches!(err, AllocateError::Invalid(ValidationError::EndNotAfterStart { .. })));
    let mut f = Fixture::single_room();
    f.request.appointment_type = "surgery".into();
    let err = allocate(&default_rule_set(), &f.snapshot, &f.request, &AllocatorConfig::default())
        .unwrap_err();
    assert_eq!(err.code(), "SNAPSHOT_MISMATCH");
    assert!(err.to_string().starts_with("appointment_type:"), "{err}");
    let mut f = Fixture::single_room();
    f.request.doctor_id = fixture_id(3, 2);
    let err = allocate(&default_rule_set(), &f.snapshot, &f.request, &AllocatorConfig::default())
        .unwrap_err();
    assert!(err.to_string().starts_with("doctor_id:"), "{err}");
}

#[test]
fn conflict_detection_is_logarithmic_in_appointments_per_room() {
    let mut f = Fixture::generated(60, 7);
    f.fill_rooms(1000, 1);
    f.request.start = at(20, 0);
    f.request.end = at(20, 20);
    f.snapshot.clinic.opening_hours = Default::default();
    let allocation = run(&f);
    // All rooms once, then the chosen and every rejected room again with explanations.
    let explained = 1 + allocation.rejected.len() as u64;
    assert!(matches!(allocation.outcome, Decision::Assigned { .. }));
    assert_eq!(allocation.stats.rooms_evaluated, 60 + explained);
    // 60 rooms × a few rules that look at timelines × (log2(1000) ≈ 10 + a few neighbours).
    assert!(
        allocation.stats.intervals_examined < (60 + explained) * 4 * 16,
        "examined {} intervals",
        allocation.stats.intervals_examined
    );
    assert!(allocation.stats.rule_checks >= 60 * 38);
}

#[test]
fn out_of_service_rooms_are_rejected_with_their_status() {
    let mut f = three_rooms();
    f.snapshot.rooms[0].status = RoomStatus::OutOfService;
    let allocation = run(&f);
    let rejection = allocation.rejected.iter().find(|r| r.room_id == f.snapshot.rooms[0].id);
    assert_eq!(rejection.unwrap().rule, RuleId::RoomActive);
}

#[test]
fn free_intervals_are_the_gaps_between_blocked_ranges() {
    let mut f = Fixture::single_room();
    block_room(&mut f, 0, 1, 9, 10);
    f.snapshot.appointments[0].turnover_minutes = 15;
    block_room(&mut f, 0, 2, 12, 13);
    let rooms = room_free_intervals(&f.snapshot, at(8, 0), at(14, 0));
    let free: Vec<_> = rooms[0].1.iter().map(|w| (w.start, w.end)).collect();
    let q = Duration::minutes(15);
    assert_eq!(
        free,
        vec![(at(8, 0), at(9, 0)), (at(10, 0) + q, at(12, 0)), (at(13, 0), at(14, 0))]
    );
}

/// `plain_rooms` identical rooms (every one scores the same for the fixture request).
fn identical_rooms(plain_rooms: u64) -> Fixture {
    let mut f = Fixture::single_room();
    let clinic = f.snapshot.clinic.id;
    f.snapshot.rooms = (0..plain_rooms).map(|n| Fixture::plain_room(clinic, n)).collect();
    f.snapshot.doctor.preferred_rooms.clear();
    f
}

fn first_room(f: &Fixture, config: &AllocatorConfig) -> uuid::Uuid {
    let allocation = allocate(&default_rule_set(), &f.snapshot, &f.request, config).unwrap();
    allocation.ranked[0].room_id
}

#[test]
fn equal_rooms_are_spread_over_concurrent_requests_but_each_request_ranks_stably() {
    use backend_core::allocator::TieBreak;
    let mut f = identical_rooms(30);
    let spread = AllocatorConfig::default();
    assert_eq!(spread.tie_break, TieBreak::Spread, "spreading is the default");
    let by_id = AllocatorConfig { tie_break: TieBreak::RoomId, ..AllocatorConfig::default() };
    let mut firsts = std::collections::BTreeSet::new();
    for patient in 0..25 {
        f.request.patient_id = fixture_id(4, 100 + patient);
        f.snapshot.patient.id = f.request.patient_id;
        let first = first_room(&f, &spread);
        assert_eq!(first, first_room(&f, &spread), "same request, same ranking");
        firsts.insert(first);
        assert_eq!(first_room(&f, &by_id), f.snapshot.rooms[0].id, "room-id order");
    }
    // 25 requests over 30 equal rooms: a fixed order would give 1 distinct first choice.
    assert!(firsts.len() >= 12, "first choices spread over only {} rooms", firsts.len());
}

#[test]
fn spreading_never_outranks_a_better_score() {
    let mut f = three_rooms();
    for patient in 0..20 {
        f.request.patient_id = fixture_id(4, 200 + patient);
        f.snapshot.patient.id = f.request.patient_id;
        let allocation = run(&f);
        let ranked: Vec<_> = allocation.ranked.iter().map(|r| r.room_id).collect();
        assert_eq!(ranked, vec![f.snapshot.rooms[0].id, f.snapshot.rooms[1].id]);
    }
}
