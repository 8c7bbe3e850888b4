//! Properties of the allocator over random clinics, days and requests (proptest):
//!
//! 1. the chosen room never violates an enabled hard rule — checked both by the engine and by
//!    independent brute-force oracles (overlap, participants, status, equipment, capacity,
//!    accessibility, isolation);
//! 2. every alternative is feasible and the ranked list is ordered best first;
//! 3. evaluation is deterministic: the same input gives the same choice and explanation, and
//!    so does the same clinic with rooms and appointments listed in another order;
//! 4. the per-room interval index agrees with a brute-force overlap scan.

use std::collections::BTreeSet;

use backend_core::allocator::fixture::{Fixture, at, fixture_id};
use backend_core::allocator::{
    Allocation, AllocatorConfig, Block, ClinicSnapshot, Decision, EvalStats, RoomTimeline,
    allocate, epoch_us,
};
use backend_core::domain::{
    Appointment, AppointmentStatus, BookingRequest, FallbackMode, Gender, GenderPolicy, Isolation,
    Room, RoomStatus,
};
use backend_core::rules::{EvalContext, RoomEvaluation, RuleSet, Slot, default_rule_set};
use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

const EQUIPMENT: [&str; 4] = ["ecg", "otoscope", "o2", "slit_lamp"];

fn minute(m: i64) -> DateTime<Utc> {
    at(0, 0) + Duration::minutes(m)
}

fn room_strategy() -> impl Strategy<Value = Room> {
    (
        (
            prop::sample::select(vec!["exam", "exam", "exam", "procedure"]),
            2u32..6,
            0u8..16,
            any::<bool>(),
        ),
        (
            any::<bool>(),
            prop::sample::select(vec![2u32, 6, 12]),
            prop::sample::select(vec![1u32, 1, 1, 2]),
        ),
        (prop::sample::select(vec!["A", "B"]), 0u8..8, 0u8..10, 0u32..100),
    )
        .prop_map(|(a, b, c)| {
            let (room_type, capacity, equipment_bits, accessible) = a;
            let (aiir, ach, chairs) = b;
            let (zone, gender, status, distance) = c;
            let mut room = Fixture::plain_room(fixture_id(1, 1), 0);
            room.room_type = room_type.into();
            room.capacity = capacity;
            room.equipment = (0..4)
                .filter(|bit| equipment_bits & (1 << bit) != 0)
                .map(|bit| EQUIPMENT[bit].to_string())
                .collect();
            room.accessible = accessible;
            room.aiir = aiir;
            room.air_changes_per_hour = ach;
            room.chairs = chairs;
            room.zone = zone.into();
            room.gender_policy = match gender {
                0 => GenderPolicy::FemaleOnly,
                1 => GenderPolicy::MaleOnly,
                _ => GenderPolicy::Any,
            };
            room.status = if status == 0 { RoomStatus::Maintenance } else { RoomStatus::Active };
            room.distance_to_entrance_m = distance;
            room.x_m = distance as i32;
            room
        })
}

/// (room slot or none, start minute, duration, turnover, status, doctor is ours, patient is ours)
type RawAppointment = (Option<usize>, i64, i64, u32, u8, bool, bool);

fn appointment_strategy() -> impl Strategy<Value = RawAppointment> {
    (
        prop::option::weighted(0.9, 0usize..10),
        (7 * 12i64..18 * 12).prop_map(|five| five * 5),
        (1i64..12).prop_map(|five| five * 5),
        prop::sample::select(vec![0u32, 5, 15]),
        0u8..6,
        prop::bool::weighted(0.03),
        prop::bool::weighted(0.02),
    )
}

#[derive(Clone, Debug)]
struct Case {
    snapshot: ClinicSnapshot,
    request: BookingRequest,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let request = (
        (7 * 12i64..18 * 12).prop_map(|five| five * 5),
        (2i64..12).prop_map(|five| five * 5),
        prop::sample::select(vec![0u8, 0, 0, 1, 2, 3]),
        (
            prop::bool::weighted(0.2),
            prop::sample::select(vec![0u32, 0, 0, 1, 2]),
            prop::sample::select(vec![
                Isolation::None,
                Isolation::None,
                Isolation::None,
                Isolation::Airborne,
            ]),
        ),
        (0u8..3, prop::option::weighted(0.15, 0usize..10), 1u32..90, any::<bool>()),
    );
    (
        prop::collection::vec(room_strategy(), 1..10),
        prop::collection::vec(appointment_strategy(), 0..30),
        request,
    )
        .prop_map(|(rooms, appointments, request)| build_case(rooms, appointments, request))
}

type RawRequest = (i64, i64, u8, (bool, u32, Isolation), (u8, Option<usize>, u32, bool));

fn build_case(mut rooms: Vec<Room>, raw: Vec<RawAppointment>, request: RawRequest) -> Case {
    let mut f = Fixture::single_room();
    for (n, room) in rooms.iter_mut().enumerate() {
        room.id = fixture_id(2, n as u64 + 1);
        room.name = format!("Room {n}");
        room.clinic_id = f.snapshot.clinic.id;
    }
    let (start, duration, needs_bits, (accessible, companions, isolation), rest) = request;
    let (fallback, pinned, age, male) = rest;
    f.request.start = minute(start);
    f.request.end = minute(start + duration);
    f.request.needs.equipment = (0..4)
        .filter(|bit| needs_bits & (1 << bit) != 0)
        .map(|bit| EQUIPMENT[bit].into())
        .collect();
    f.request.needs.accessible = accessible;
    f.request.needs.companions = companions;
    f.request.needs.isolation = isolation;
    f.request.fallback =
        [FallbackMode::Reject, FallbackMode::Suggest, FallbackMode::BookWithoutRoom]
            [fallback as usize];
    f.request.room_id = pinned.filter(|&i| i < rooms.len()).map(|i| rooms[i].id);
    f.snapshot.patient.age_years = age;
    f.snapshot.patient.gender = if male { Gender::Male } else { Gender::Female };
    f.snapshot.appointment_type.required_equipment.clear();
    let statuses = [
        AppointmentStatus::Booked,
        AppointmentStatus::Held,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::Cancelled,
        AppointmentStatus::Done,
        AppointmentStatus::RoomPending,
    ];
    for (n, (room, start, duration, turnover, status, ours_doctor, ours_patient)) in
        raw.into_iter().enumerate()
    {
        let status = statuses[status as usize];
        let room_id = room.filter(|&i| i < rooms.len()).map(|i| rooms[i].id);
        f.snapshot.appointments.push(Appointment {
            id: fixture_id(5, n as u64 + 1),
            clinic_id: f.snapshot.clinic.id,
            room_id: if status == AppointmentStatus::RoomPending { None } else { room_id },
            doctor_id: if ours_doctor {
                f.request.doctor_id
            } else {
                fixture_id(3, 100 + n as u64)
            },
            patient_id: if ours_patient {
                f.request.patient_id
            } else {
                fixture_id(4, 100 + n as u64)
            },
            appointment_type: "follow_up".into(),
            start: minute(start),
            end: minute(start + duration),
            turnover_minutes: turnover,
            status,
            infectious: n % 7 == 0,
            patient_gender: Some(if n % 2 == 0 { Gender::Male } else { Gender::Female }),
        });
    }
    f.snapshot.doctor.preferred_rooms = rooms.iter().rev().take(2).map(|r| r.id).collect();
    f.snapshot.rooms = rooms;
    Case { snapshot: f.snapshot, request: f.request }
}

fn allocation_of(rules: &RuleSet, case: &Case) -> Allocation {
    allocate(rules, &case.snapshot, &case.request, &AllocatorConfig::default())
        .expect("generated cases are valid")
}

/// Brute force: a room-blocking appointment in `room` intersects `[start, blocked_end)`.
fn overlapping_count(
    snapshot: &ClinicSnapshot,
    room: &Room,
    start: DateTime<Utc>,
    blocked_end: DateTime<Utc>,
) -> usize {
    let blocks = snapshot
        .appointments
        .iter()
        .filter(|a| a.room_id == Some(room.id) && a.status.blocks_room());
    blocks.filter(|a| a.start < blocked_end && start < a.blocked_end()).count()
}

/// Independent oracles for the hard rules a wrong allocator would most likely break.
fn assert_room_really_feasible(case: &Case, room_id: uuid::Uuid, slot: Slot, turnover: u32) {
    let snapshot = &case.snapshot;
    let request = &case.request;
    let room = snapshot.rooms.iter().find(|r| r.id == room_id).expect("room exists");
    let blocked_end = slot.end + Duration::minutes(i64::from(turnover));
    let overlapping = overlapping_count(snapshot, room, slot.start, blocked_end);
    assert!(overlapping < room.chairs.max(1) as usize, "room {} double-booked", room.name);
    let people_busy = snapshot.appointments.iter().any(|a| {
        a.status.blocks_participants()
            && a.start < slot.end
            && slot.start < a.end
            && (a.doctor_id == request.doctor_id || a.patient_id == request.patient_id)
    });
    assert!(!people_busy, "participant double-booked");
    assert_eq!(room.status, RoomStatus::Active);
    let needed: BTreeSet<&String> = request.needs.equipment.iter().collect();
    assert!(needed.iter().all(|tag| room.equipment.contains(*tag)), "missing equipment");
    assert!(room.capacity >= 2 + request.needs.companions, "capacity");
    if request.needs.accessible {
        assert!(room.accessible, "accessibility");
    }
    if request.needs.isolation == Isolation::Airborne {
        assert!(room.aiir && room.air_changes_per_hour >= 6, "airborne isolation");
    }
    if let Some(pinned) = request.room_id {
        assert_eq!(pinned, room.id, "pinned room replaced");
    }
}

fn evaluate_at(rules: &RuleSet, case: &Case, room_id: uuid::Uuid, slot: Slot) -> RoomEvaluation {
    let ctx = EvalContext::new(rules, &case.snapshot, &case.request);
    let index = ctx.room_index(room_id).unwrap();
    ctx.evaluate_room(index, slot, false, &mut EvalStats::default())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn chosen_room_never_violates_a_hard_rule(case in case_strategy()) {
        let rules = default_rule_set();
        let allocation = allocation_of(&rules, &case);
        let slot = Slot::new(case.request.start, case.request.end);
        if let Decision::Assigned { room_id, score } = allocation.outcome {
            prop_assert!(score.is_feasible());
            let evaluation = evaluate_at(&rules, &case, room_id, slot);
            prop_assert!(evaluation.violations.is_empty(), "{:?}", evaluation.violations);
            assert_room_really_feasible(&case, room_id, slot, evaluation.turnover_minutes);
            prop_assert_eq!(allocation.explanation.as_ref().unwrap().room_id, room_id);
        }
        if matches!(allocation.outcome, Decision::NoRoom { .. } | Decision::RoomPending { .. }) {
            prop_assert!(allocation.ranked.is_empty(), "a fallback despite a feasible room");
        }
        if allocation.ranked.is_empty() && !case.snapshot.rooms.is_empty() {
            let busy = matches!(allocation.outcome, Decision::ParticipantBusy { .. });
            if !busy {
                prop_assert!(allocation.least_infeasible.is_some());
            }
        }
    }

    #[test]
    fn alternatives_are_feasible_and_ranked(case in case_strategy()) {
        let rules = default_rule_set();
        let config =
            AllocatorConfig { suggest_times_when_assigned: true, ..AllocatorConfig::default() };
        let allocation = allocate(&rules, &case.snapshot, &case.request, &config).unwrap();
        let slot = Slot::new(case.request.start, case.request.end);
        let ordered = allocation.ranked.windows(2).all(|w| w[0].score >= w[1].score);
        prop_assert!(ordered, "ranked order");
        let participants_free = !matches!(allocation.outcome, Decision::ParticipantBusy { .. });
        for ranked in &allocation.ranked {
            prop_assert!(ranked.score.is_feasible());
            if participants_free {
                assert_room_really_feasible(&case, ranked.room_id, slot, ranked.turnover_minutes);
            }
        }
        let others = &allocation.alternatives.same_time_other_rooms;
        prop_assert!(others.len() <= config.alternatives_max);
        prop_assert_eq!(others.as_slice(), &allocation.ranked[allocation.ranked.len().min(1)..]
            [..others.len()]);
        let timed = allocation.alternatives.same_room_other_times.iter()
            .chain(&allocation.alternatives.next_feasible);
        for suggestion in timed {
            let at_time = Slot::new(suggestion.start, suggestion.end);
            prop_assert!(suggestion.start > case.request.start);
            let evaluation = evaluate_at(&rules, &case, suggestion.room_id, at_time);
            prop_assert!(evaluation.is_feasible(), "{:?}", evaluation.violations);
            prop_assert_eq!(evaluation.score, suggestion.score);
            let turnover = evaluation.turnover_minutes;
            assert_room_really_feasible(&case, suggestion.room_id, at_time, turnover);
        }
        let next = &allocation.alternatives.next_feasible;
        prop_assert!(next.windows(2).all(|w| w[0].start < w[1].start));
    }

    #[test]
    fn evaluation_is_deterministic_and_order_independent(case in case_strategy()) {
        let rules = default_rule_set();
        let first = allocation_of(&rules, &case);
        let again = allocation_of(&rules, &case);
        prop_assert_eq!(&first, &again);
        let mut shuffled = case.clone();
        shuffled.snapshot.rooms.reverse();
        shuffled.snapshot.appointments.reverse();
        let other = allocation_of(&rules, &shuffled);
        prop_assert_eq!(&first.outcome, &other.outcome);
        prop_assert_eq!(&first.ranked, &other.ranked);
        prop_assert_eq!(&first.rejected, &other.rejected);
        prop_assert_eq!(&first.alternatives, &other.alternatives);
        prop_assert_eq!(&first.least_infeasible, &other.least_infeasible);
        // Explanations compared as serialized (the snapshot-local room index is not part of it).
        let json = |a: &Allocation| serde_json::to_value(&a.explanation).unwrap();
        prop_assert_eq!(json(&first), json(&other));
    }

    #[test]
    fn fast_and_explained_evaluations_agree(case in case_strategy(), shift_steps in 0i64..40) {
        let rules = default_rule_set();
        let ctx = EvalContext::new(&rules, &case.snapshot, &case.request);
        let slot = ctx.requested_slot().shifted(shift_steps * 15);
        let mut stats = EvalStats::default();
        for index in 0..case.snapshot.rooms.len() {
            let fast = ctx.evaluate_room(index, slot, false, &mut stats);
            let explained = ctx.evaluate_room(index, slot, true, &mut stats);
            prop_assert_eq!(fast.score, explained.score);
            prop_assert_eq!(fast.turnover_minutes, explained.turnover_minutes);
            let rules_of = |e: &RoomEvaluation| {
                e.violations.iter().map(|v| (v.rule, v.magnitude)).collect::<Vec<_>>()
            };
            prop_assert_eq!(rules_of(&fast), rules_of(&explained));
            let soft: i64 = explained.contributions.iter().map(|c| c.penalty).sum();
            prop_assert_eq!(soft, explained.score.soft);
        }
    }

    #[test]
    fn interval_index_matches_brute_force(
        raw in prop::collection::vec((0i64..200, 1i64..40, 0i64..20), 0..60),
        start in 0i64..220,
        length in 1i64..50,
    ) {
        let blocks: Vec<Block> = raw.iter().enumerate().map(|(n, &(s, d, t))| Block {
            start_us: epoch_us(minute(s)),
            end_us: epoch_us(minute(s + d)),
            blocked_end_us: epoch_us(minute(s + d + t)),
            appointment_index: n as u32,
            appointment_id: fixture_id(5, n as u64),
        }).collect();
        let timeline = RoomTimeline::from_blocks(blocks.clone());
        let (from, to) = (epoch_us(minute(start)), epoch_us(minute(start + length)));
        let mut stats = EvalStats::default();
        let mut found: Vec<u32> = timeline.overlapping(from, to, &mut stats)
            .map(|b| b.appointment_index).collect();
        found.sort_unstable();
        let expected: Vec<u32> = blocks.iter()
            .filter(|b| b.start_us < to && from < b.blocked_end_us)
            .map(|b| b.appointment_index).collect();
        prop_assert_eq!(found, expected);
        let conflict = timeline.first_conflict(from, to, &mut stats);
        let any = blocks.iter().any(|b| b.start_us < to && from < b.blocked_end_us);
        prop_assert_eq!(conflict.is_some(), any);
    }
}
