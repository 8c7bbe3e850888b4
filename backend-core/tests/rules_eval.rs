//! One test per rule of the catalogue. Method: start from `Fixture::single_room()`, whose
//! room breaks no rule (asserted by `baseline_breaks_no_rule`), change exactly one fact, and
//! check that exactly the rule under test fires with the expected magnitude, plus a message.
//! Each test also checks the negative side where it is not the baseline itself.

use backend_core::allocator::fixture::{Fixture, at, fixture_id};
use backend_core::allocator::{EvalStats, participant_conflicts};
use backend_core::domain::{
    Appointment, AppointmentStatus, DayHours, Gender, GenderPolicy, Isolation, OpeningHours,
    RoomStatus, TimeWindow,
};
use backend_core::rules::{
    EvalContext, ParticipantParams, RoomEvaluation, RuleId, RuleParams, RuleSet, Score,
    default_rule_set,
};
use chrono::{Duration, Weekday};

fn evaluate_with(rules: &RuleSet, f: &Fixture) -> RoomEvaluation {
    let ctx = EvalContext::new(rules, &f.snapshot, &f.request);
    ctx.evaluate_room(0, ctx.requested_slot(), true, &mut EvalStats::default())
}

fn evaluate(f: &Fixture) -> RoomEvaluation {
    evaluate_with(&default_rule_set(), f)
}

/// Asserts that `rule` is the only hard violation, with `magnitude`, and returns its message.
fn assert_only_violation(f: &Fixture, rule: RuleId, magnitude: i64) -> String {
    let evaluation = evaluate(f);
    let found: Vec<(RuleId, i64)> =
        evaluation.violations.iter().map(|v| (v.rule, v.magnitude)).collect();
    assert_eq!(found, vec![(rule, magnitude)], "violations: {:?}", evaluation.violations);
    let weight = default_rule_set().get(rule).unwrap().weight;
    assert_eq!(evaluation.score.hard, -weight * magnitude);
    let message = evaluation.violations[0].message.clone();
    assert!(!message.is_empty(), "{rule} needs a message");
    message
}

/// The soft magnitude of `rule`, after checking no hard rule fired and no other soft rule
/// costs anything.
fn soft_only(f: &Fixture, rule: RuleId) -> i64 {
    let evaluation = evaluate(f);
    assert!(evaluation.violations.is_empty(), "hard: {:?}", evaluation.violations);
    let mut magnitude = 0;
    for c in &evaluation.contributions {
        if c.rule == rule {
            magnitude = c.magnitude;
            assert_eq!(c.penalty, -c.weight * c.magnitude);
            if c.magnitude > 0 {
                assert!(!c.detail.is_empty(), "{rule} needs a detail");
            }
        } else {
            assert_eq!(c.magnitude, 0, "unexpected {}: {}", c.rule, c.detail);
        }
    }
    magnitude
}

fn booked(n: u64, start_min: i64, end_min: i64) -> Appointment {
    let f = Fixture::single_room();
    Appointment {
        id: fixture_id(5, n),
        clinic_id: f.snapshot.clinic.id,
        room_id: Some(f.snapshot.rooms[0].id),
        doctor_id: fixture_id(3, 99),
        patient_id: fixture_id(4, 99),
        appointment_type: "follow_up".into(),
        start: at(0, 0) + Duration::minutes(start_min),
        end: at(0, 0) + Duration::minutes(end_min),
        turnover_minutes: 0,
        status: AppointmentStatus::Booked,
        infectious: false,
        patient_gender: None,
    }
}

#[test]
fn baseline_breaks_no_rule() {
    let evaluation = evaluate(&Fixture::single_room());
    assert_eq!(evaluation.score, Score::ZERO, "{evaluation:#?}");
    assert_eq!(evaluation.turnover_minutes, 5);
    // Explained evaluations list every active soft rule (23 in the default set).
    assert_eq!(evaluation.contributions.len(), 23);
}

#[test]
fn h01_room_status_and_closures() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].status = RoomStatus::Maintenance;
    assert!(assert_only_violation(&f, RuleId::RoomActive, 1).contains("Maintenance"));
    f.snapshot.rooms[0].status = RoomStatus::Active;
    // A closure starting inside the turnover still blocks (09:20–09:25 is blocked).
    let closure = TimeWindow { start: at(9, 22), end: at(10, 0), reason: "deep clean".into() };
    f.snapshot.rooms[0].closures = vec![closure];
    assert!(assert_only_violation(&f, RuleId::RoomActive, 1).contains("deep clean"));
    f.snapshot.rooms[0].closures[0].start = at(9, 25);
    // Now only the maintenance buffer (S21) objects.
    assert_eq!(soft_only(&f, RuleId::PreMaintenanceBuffer), 15);
}

#[test]
fn h02_room_of_another_clinic() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].clinic_id = fixture_id(1, 2);
    assert!(assert_only_violation(&f, RuleId::SameClinicSite, 1).contains("another clinic"));
}

#[test]
fn h03_overlap_includes_both_turnovers_and_half_open_ends() {
    let mut f = Fixture::single_room();
    // 08:30–08:55 with 5 min turnover blocks to 09:00: back-to-back is allowed.
    let mut earlier = booked(1, 8 * 60 + 30, 8 * 60 + 55);
    earlier.turnover_minutes = 5;
    f.snapshot.appointments = vec![earlier.clone()];
    assert_eq!(soft_only(&f, RuleId::TurnoverSlack), 10, "no slack before");
    earlier.turnover_minutes = 6;
    f.snapshot.appointments = vec![earlier];
    let message = assert_only_violation(&f, RuleId::NoRoomOverlap, 1);
    assert!(message.contains("08:30") && message.contains(&fixture_id(5, 1).to_string()));
    // The new visit's own turnover (5 min) reaches 09:25: a 09:25 start is free, 09:24 not.
    f.snapshot.appointments = vec![booked(2, 9 * 60 + 25, 10 * 60)];
    evaluate(&f).violations.is_empty().then_some(()).expect("09:25 is free");
    f.snapshot.appointments =
        vec![booked(2, 9 * 60 + 24, 10 * 60), booked(3, 9 * 60 + 10, 9 * 60 + 12)];
    assert_only_violation(&f, RuleId::NoRoomOverlap, 2);
    // Cancelled appointments do not block.
    f.snapshot.appointments.iter_mut().for_each(|a| a.status = AppointmentStatus::Cancelled);
    assert!(evaluate(&f).violations.is_empty());
}

#[test]
fn h03_turnover_by_room_type_extends_the_blocked_range() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].room_type = "procedure".into();
    f.snapshot.appointment_type.allowed_room_types.push("procedure".into());
    let ctx_rules = default_rule_set();
    let evaluation = evaluate_with(&ctx_rules, &f);
    assert_eq!(evaluation.turnover_minutes, 15);
    f.snapshot.appointments = vec![booked(1, 9 * 60 + 34, 10 * 60)];
    assert_only_violation(&f, RuleId::NoRoomOverlap, 1);
    f.snapshot.appointments = vec![booked(1, 9 * 60 + 35, 10 * 60)];
    assert!(evaluate(&f).violations.is_empty());
}

#[test]
fn h04_opening_hours_and_clinic_closures() {
    let mut f = Fixture::single_room();
    f.request.start = at(18, 50);
    f.request.end = at(19, 10);
    assert!(assert_only_violation(&f, RuleId::WithinRoomHours, 1).contains("18:50"));
    let mut f = Fixture::single_room();
    let tuesday = DayHours { weekday: Weekday::Tue, open_minute: 0, close_minute: 1440 };
    f.snapshot.rooms[0].opening_hours = Some(OpeningHours { days: vec![tuesday] });
    assert_only_violation(&f, RuleId::WithinRoomHours, 1);
    let mut f = Fixture::single_room();
    let holiday = TimeWindow { start: at(0, 0), end: at(23, 59), reason: "holiday".into() };
    f.snapshot.clinic.closures = vec![holiday];
    assert_only_violation(&f, RuleId::WithinRoomHours, 1);
}

#[test]
fn h05_room_type_must_be_allowed() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].room_type = "infusion".into();
    assert!(assert_only_violation(&f, RuleId::RoomTypeAllowed, 1).contains("infusion"));
    let text = "version = 1\n[[rules]]\nkey = \"room_type_allowed\"\nweight = 100\n\
                [rules.params.extra_allowed]\nfollow_up = [\"infusion\"]\n";
    let rules = RuleSet::from_toml(text).unwrap();
    assert!(evaluate_with(&rules, &f).violations.is_empty(), "extra_allowed admits infusion");
}

#[test]
fn h06_required_equipment_counts_missing_tags_including_request_needs() {
    let mut f = Fixture::single_room();
    f.request.needs.equipment = vec!["suction".into(), "o2".into()];
    assert!(assert_only_violation(&f, RuleId::RequiredEquipment, 2).contains("o2, suction"));
    f.snapshot.rooms[0].equipment.insert("o2".into());
    assert_only_violation(&f, RuleId::RequiredEquipment, 1);
    let text = "version = 1\n[[rules]]\nkey = \"required_equipment\"\nweight = 50\n\
                params = { match = \"any_of\" }\n";
    let rules = RuleSet::from_toml(text).unwrap();
    assert!(evaluate_with(&rules, &f).violations.is_empty(), "any_of: ecg is present");
}

#[test]
fn h07_capacity_counts_companions_staff_and_interpreter() {
    let mut f = Fixture::single_room();
    f.request.needs.companions = 2;
    f.request.needs.interpreter = true;
    // 1 patient + 2 companions + 1 interpreter + 1 staff = 5 in a room for 2.
    let message = assert_only_violation(&f, RuleId::Capacity, 3);
    assert!(message.contains("needs 5"), "{message}");
}

#[test]
fn h08_accessibility_for_mobility_needs_or_request() {
    let mut f = Fixture::single_room();
    f.snapshot.patient.mobility_needs = true;
    assert_only_violation(&f, RuleId::Accessibility, 1);
    let mut f = Fixture::single_room();
    f.request.needs.accessible = true;
    assert_only_violation(&f, RuleId::Accessibility, 1);
    f.snapshot.rooms[0].accessible = true;
    // Accessible now: no hard violation; the walk to the entrance (0 m) costs nothing.
    assert_eq!(soft_only(&f, RuleId::MobilityNearEntrance), 0);
}

#[test]
fn h09_airborne_needs_aiir_with_enough_air_changes_and_sets_clearance() {
    let mut f = Fixture::single_room();
    f.snapshot.patient.isolation = Isolation::Airborne;
    let message = assert_only_violation(&f, RuleId::AirborneIsolation, 1);
    assert!(message.contains("≥6"), "{message}");
    f.snapshot.rooms[0].aiir = true;
    f.snapshot.rooms[0].air_changes_per_hour = 6;
    let evaluation = evaluate(&f);
    assert!(evaluation.violations.is_empty(), "{:?}", evaluation.violations);
    assert_eq!(evaluation.turnover_minutes, 69, "clearance at 6 ACH");
    f.snapshot.rooms[0].air_changes_per_hour = 12;
    assert_eq!(evaluate(&f).turnover_minutes, 35, "clearance at 12 ACH");
    f.snapshot.rooms[0].air_changes_per_hour = 5;
    assert_only_violation(&f, RuleId::AirborneIsolation, 1);
}

#[test]
fn h10_gender_policies() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].gender_policy = GenderPolicy::MaleOnly;
    assert_only_violation(&f, RuleId::RoomGenderPolicy, 1);
    f.snapshot.rooms[0].gender_policy = GenderPolicy::FemaleOnly;
    assert!(evaluate(&f).violations.is_empty());
    // A two-chair same-gender bay with a male patient already there.
    f.snapshot.rooms[0].gender_policy = GenderPolicy::SameGender;
    f.snapshot.rooms[0].chairs = 2;
    let mut other = booked(1, 9 * 60, 10 * 60);
    other.patient_gender = Some(Gender::Male);
    f.snapshot.appointments = vec![other];
    assert_only_violation(&f, RuleId::RoomGenderPolicy, 1);
    f.snapshot.appointments[0].patient_gender = Some(Gender::Female);
    assert!(evaluate(&f).violations.is_empty());
}

#[test]
fn h11_age_limits() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].max_age_years = Some(17);
    assert_only_violation(&f, RuleId::AgePolicy, 1);
    f.snapshot.rooms[0].max_age_years = None;
    f.snapshot.rooms[0].min_age_years = Some(41);
    assert_only_violation(&f, RuleId::AgePolicy, 1);
    f.snapshot.rooms[0].min_age_years = Some(40);
    assert!(evaluate(&f).violations.is_empty());
}

#[test]
fn h12_specialty_allowed_and_prohibited_lists() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].allowed_specialties = vec!["dermatology".into()];
    assert!(assert_only_violation(&f, RuleId::SpecialtyRestriction, 1).contains("general"));
    f.snapshot.rooms[0].allowed_specialties.push("general".into());
    assert!(evaluate(&f).violations.is_empty());
    f.snapshot.rooms[0].prohibited_specialties = vec!["general".into()];
    assert_only_violation(&f, RuleId::SpecialtyRestriction, 1);
}

#[test]
fn h13_prohibited_tag_pairs() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].tags.insert("sterile_procedure".into());
    assert!(evaluate(&f).violations.is_empty(), "no infectious patient yet");
    f.snapshot.patient.isolation = Isolation::Contact;
    let message = assert_only_violation(&f, RuleId::ProhibitedTags, 1);
    assert!(message.contains("sterile_procedure") && message.contains("infectious"));
    f.snapshot.rooms[0].tags.insert("mri_zone".into());
    f.snapshot.patient.tags.insert("implant_unsafe".into());
    assert_only_violation(&f, RuleId::ProhibitedTags, 2);
}

#[test]
fn h14_multi_chair_rooms_allow_overlap_up_to_chairs() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].chairs = 2;
    f.snapshot.appointments = vec![booked(1, 9 * 60, 10 * 60)];
    assert!(evaluate(&f).violations.is_empty(), "one chair is still free");
    f.snapshot.appointments.push(booked(2, 8 * 60 + 50, 9 * 60 + 10));
    assert!(assert_only_violation(&f, RuleId::ConcurrentCapacity, 1).contains("2 chairs"));
}

#[test]
fn h15_participant_double_booking_is_detected_without_turnover() {
    let f = Fixture::single_room();
    let mut doctor_busy = booked(1, 9 * 60 + 10, 9 * 60 + 30);
    doctor_busy.doctor_id = f.request.doctor_id;
    doctor_busy.room_id = None;
    doctor_busy.status = AppointmentStatus::RoomPending;
    let mut patient_busy = booked(2, 8 * 60 + 40, 9 * 60);
    patient_busy.patient_id = f.request.patient_id;
    patient_busy.turnover_minutes = 30;
    let appointments = vec![doctor_busy, patient_busy];
    let (start, end) = (f.request.start, f.request.end);
    let params = ParticipantParams::default();
    let (doctor, patient) = (f.request.doctor_id, f.request.patient_id);
    let found = participant_conflicts(&appointments, doctor, patient, start, end, &params);
    assert_eq!(found.len(), 1, "patient's 08:40–09:00 ends at 09:00 (turnover ignored)");
    assert_eq!(found[0].with_appointment, fixture_id(5, 1));
    let end_later = end + Duration::minutes(1);
    let params = ParticipantParams { check_doctor: false, check_patient: true };
    assert!(
        participant_conflicts(&appointments, doctor, patient, start, end_later, &params).is_empty()
    );
}

#[test]
fn h16_pinned_room_excludes_every_other_room() {
    let mut f = Fixture::single_room();
    f.request.room_id = Some(fixture_id(2, 77));
    assert!(
        assert_only_violation(&f, RuleId::PinnedRoom, 1).contains(&fixture_id(2, 77).to_string())
    );
    f.request.room_id = Some(f.snapshot.rooms[0].id);
    assert!(evaluate(&f).violations.is_empty());
}

#[test]
fn s01_doctor_preferred_room_rank() {
    let mut f = Fixture::single_room();
    let room = f.snapshot.rooms[0].id;
    f.snapshot.doctor.preferred_rooms = vec![fixture_id(2, 8), fixture_id(2, 9), room];
    assert_eq!(soft_only(&f, RuleId::DoctorPreferredRoom), 2);
    f.snapshot.doctor.preferred_rooms = vec![fixture_id(2, 8)];
    assert_eq!(soft_only(&f, RuleId::DoctorPreferredRoom), 3, "unlisted_magnitude");
    f.snapshot.doctor.preferred_rooms.clear();
    assert_eq!(soft_only(&f, RuleId::DoctorPreferredRoom), 0);
}

fn doctor_elsewhere(f: &Fixture, n: u64, start_min: i64, end_min: i64, room_n: u64) -> Appointment {
    let mut a = booked(n, start_min, end_min);
    a.doctor_id = f.request.doctor_id;
    a.room_id = Some(fixture_id(2, room_n));
    a
}

#[test]
fn s02_doctor_room_stability_within_gap() {
    let mut f = Fixture::single_room();
    f.snapshot.doctor.preferred_rooms.clear();
    f.snapshot.appointments = vec![doctor_elsewhere(&f, 1, 8 * 60 + 30, 8 * 60 + 50, 9)];
    assert_eq!(soft_only(&f, RuleId::DoctorRoomStability), 1);
    f.snapshot.appointments.push(doctor_elsewhere(&f, 2, 9 * 60 + 50, 10 * 60, 9));
    assert_eq!(soft_only(&f, RuleId::DoctorRoomStability), 2, "both within 30 min");
    f.snapshot.appointments[1].start = at(9, 51);
    assert_eq!(soft_only(&f, RuleId::DoctorRoomStability), 1, "31 min after: not consecutive");
}

#[test]
fn s03_walking_distance_between_consecutive_rooms() {
    let mut f = Fixture::single_room();
    let mut far = Fixture::plain_room(f.snapshot.clinic.id, 9);
    far.x_m = 30;
    far.y_m = 25;
    far.capacity = 2;
    f.snapshot.rooms.push(far);
    // Evaluate room 0 with the doctor's previous visit 3 h earlier in room 9 (no S02).
    f.snapshot.appointments = vec![doctor_elsewhere(&f, 1, 5 * 60, 5 * 60 + 20, 9)];
    let evaluation = evaluate(&f);
    let c = evaluation.contributions.iter().find(|c| c.rule == RuleId::WalkingDistance).unwrap();
    assert_eq!(c.magnitude, 5, "55 m / 10");
    assert!(c.detail.contains("55 m"));
}

#[test]
fn s04_zone_match() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].zone = "B".into();
    assert_eq!(soft_only(&f, RuleId::DepartmentZoneMatch), 1);
}

#[test]
fn s05_preferred_equipment() {
    let mut f = Fixture::single_room();
    f.snapshot.appointment_type.preferred_equipment.insert("dermatoscope".into());
    assert_eq!(soft_only(&f, RuleId::PreferredEquipment), 1);
    f.snapshot.rooms[0].equipment.remove("otoscope");
    assert_eq!(soft_only(&f, RuleId::PreferredEquipment), 2);
}

#[test]
fn s06_smallest_sufficient_room() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].capacity = 6;
    assert_eq!(soft_only(&f, RuleId::SmallestSufficientRoom), 4);
}

#[test]
fn s07_scarce_features_used_needlessly() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].accessible = true;
    assert_eq!(soft_only(&f, RuleId::AvoidScarceRoom), 1);
    f.request.needs.accessible = true;
    assert_eq!(soft_only(&f, RuleId::AvoidScarceRoom), 0, "needed, so not wasted");
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].room_type = "procedure".into();
    f.snapshot.appointment_type.allowed_room_types.push("procedure".into());
    f.snapshot.rooms[0].aiir = true;
    // Procedure room and AIIR both unused. A 10-minute visit keeps the procedure room's
    // 15-minute turnover under one S11 unit (25 < 30 min).
    f.request.end = at(9, 10);
    assert_eq!(soft_only(&f, RuleId::AvoidScarceRoom), 2);
}

#[test]
fn s08_private_room_preference() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].chairs = 3;
    assert_eq!(soft_only(&f, RuleId::PrivateRoomPref), 0);
    f.request.needs.private_room = true;
    assert_eq!(soft_only(&f, RuleId::PrivateRoomPref), 1);
}

#[test]
fn s09_s10_slack_and_fragmentation_around_neighbours() {
    let mut f = Fixture::single_room();
    // Previous visit blocked to 08:52 (8 min gap); next starts 09:30 (gap 5 after 09:25).
    f.snapshot.appointments =
        vec![booked(1, 8 * 60 + 30, 8 * 60 + 52), booked(2, 9 * 60 + 30, 10 * 60)];
    let evaluation = evaluate(&f);
    let magnitude = |rule| {
        evaluation.contributions.iter().find(|c| c.rule == rule).map(|c| c.magnitude).unwrap()
    };
    assert_eq!(magnitude(RuleId::TurnoverSlack), 2 + 5);
    assert_eq!(magnitude(RuleId::GapFragmentation), 2, "8 and 5 min gaps are unbookable");
}

#[test]
fn s11_load_balance_is_quadratic_in_utilisation() {
    let mut f = Fixture::single_room();
    f.snapshot.appointments = vec![booked(1, 0, 60), booked(2, 60, 120)];
    f.request.start = at(9, 0);
    f.request.end = at(9, 55);
    // used 120/30 = 4 units, added (55+5)/30 = 2: (4+2)² − 4² = 20.
    assert_eq!(soft_only(&f, RuleId::LoadBalance), 20);
}

#[test]
fn s12_consolidate_rooms_when_enabled() {
    let f = Fixture::single_room();
    let text = "version = 1\n[[rules]]\nkey = \"consolidate_rooms\"\nweight = 30\n";
    let rules = RuleSet::from_toml(text).unwrap();
    assert_eq!(evaluate_with(&rules, &f).score.soft, -30, "opens an unused room");
    let mut f = f;
    f.snapshot.appointments = vec![booked(1, 0, 30)];
    assert_eq!(evaluate_with(&rules, &f).score.soft, 0);
}

#[test]
fn s13_provider_room_ratio() {
    let mut f = Fixture::single_room();
    f.snapshot.doctor.preferred_rooms.clear();
    f.snapshot.appointments = vec![
        doctor_elsewhere(&f, 1, 7 * 60 + 30, 7 * 60 + 40, 8),
        doctor_elsewhere(&f, 2, 9 * 60 + 30, 9 * 60 + 40, 9),
    ];
    // Rooms 9 (and this one) within 60 min; room 8 ended 80 min before: 2 rooms, limit 2.
    let evaluation = evaluate(&f);
    let c = evaluation.contributions.iter().find(|c| c.rule == RuleId::ProviderRoomRatio).unwrap();
    assert_eq!(c.magnitude, 0);
    f.snapshot.appointments[0].start = at(8, 0);
    f.snapshot.appointments[0].end = at(8, 10);
    let evaluation = evaluate(&f);
    let c = evaluation.contributions.iter().find(|c| c.rule == RuleId::ProviderRoomRatio).unwrap();
    assert_eq!(c.magnitude, 1, "3 rooms in the session, limit 2");
    f.snapshot.doctor.specialty = "dermatology".into();
    let evaluation = evaluate(&f);
    let c = evaluation.contributions.iter().find(|c| c.rule == RuleId::ProviderRoomRatio).unwrap();
    assert_eq!(c.magnitude, 0, "dermatology may hold 3");
}

#[test]
fn s14_patient_room_continuity() {
    let mut f = Fixture::single_room();
    f.snapshot.patient_last_room_id = Some(fixture_id(2, 5));
    assert_eq!(soft_only(&f, RuleId::PatientRoomContinuity), 1);
    f.snapshot.patient_last_room_id = Some(f.snapshot.rooms[0].id);
    assert_eq!(soft_only(&f, RuleId::PatientRoomContinuity), 0);
}

#[test]
fn s15_mobility_near_entrance() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].accessible = true;
    f.snapshot.rooms[0].distance_to_entrance_m = 47;
    f.request.needs.accessible = true;
    assert_eq!(soft_only(&f, RuleId::MobilityNearEntrance), 4);
}

#[test]
fn s16_immunocompromised_separation_after_infectious_use() {
    let mut f = Fixture::single_room();
    f.snapshot.patient.immunocompromised = true;
    let mut infectious = booked(1, 7 * 60, 7 * 60 + 30);
    infectious.infectious = true;
    f.snapshot.appointments = vec![infectious];
    // Ended 07:30; clean window to 09:00 needs 07:00 → 30 min short → 3 units.
    assert_eq!(soft_only(&f, RuleId::ImmunocompromisedSeparation), 3);
    f.snapshot.appointments[0].infectious = false;
    assert_eq!(soft_only(&f, RuleId::ImmunocompromisedSeparation), 0);
}

#[test]
fn s17_infectious_patient_far_from_exit() {
    let mut f = Fixture::single_room();
    f.snapshot.patient.isolation = Isolation::Droplet;
    let mut near = Fixture::plain_room(f.snapshot.clinic.id, 9);
    near.distance_to_entrance_m = 3;
    f.snapshot.rooms[0].distance_to_entrance_m = 58;
    f.snapshot.rooms.push(near);
    let evaluation = evaluate(&f);
    let c = evaluation.contributions.iter().find(|c| c.rule == RuleId::InfectiousNearExit).unwrap();
    assert_eq!(c.magnitude, 5, "55 m further / 10");
}

#[test]
fn s18_children_in_paediatric_rooms() {
    let mut f = Fixture::single_room();
    f.snapshot.patient.age_years = 8;
    assert_eq!(soft_only(&f, RuleId::AgeZonePref), 1);
    f.snapshot.rooms[0].tags.insert("paediatric".into());
    assert_eq!(soft_only(&f, RuleId::AgeZonePref), 0);
    f.snapshot.patient.age_years = 30;
    assert_eq!(soft_only(&f, RuleId::AgeZonePref), 1, "adult in a paediatric room");
}

#[test]
fn s19_privacy_for_sensitive_visits() {
    let mut f = Fixture::single_room();
    f.snapshot.appointment_type.sensitive = true;
    assert_eq!(soft_only(&f, RuleId::PrivacyRoom), 1);
    f.snapshot.rooms[0].tags.insert("soundproof".into());
    assert_eq!(soft_only(&f, RuleId::PrivacyRoom), 0);
}

#[test]
fn s20_nurse_pod() {
    let mut f = Fixture::single_room();
    f.request.needs.nurse_pod = Some("C".into());
    assert_eq!(soft_only(&f, RuleId::NursePodMatch), 1);
    f.request.needs.nurse_pod = Some("A".into());
    assert_eq!(soft_only(&f, RuleId::NursePodMatch), 0);
}

#[test]
fn s21_pre_maintenance_buffer() {
    let mut f = Fixture::single_room();
    let block = TimeWindow { start: at(9, 32), end: at(10, 0), reason: "cleaning".into() };
    f.snapshot.rooms[0].closures = vec![block];
    // Blocked to 09:25; maintenance at 09:32: 7 min, 8 short of 15.
    assert_eq!(soft_only(&f, RuleId::PreMaintenanceBuffer), 8);
}

#[test]
fn s22_published_room_stability() {
    let mut f = Fixture::single_room();
    f.request.previous_room_id = Some(fixture_id(2, 3));
    assert_eq!(soft_only(&f, RuleId::PublishedRoomStability), 1);
}

#[test]
fn s23_av_cart_for_interpreter_or_video() {
    let mut f = Fixture::single_room();
    f.request.needs.video = true;
    assert_eq!(soft_only(&f, RuleId::TelehealthCartPref), 1);
    f.snapshot.rooms[0].equipment.insert("av_cart".into());
    assert_eq!(soft_only(&f, RuleId::TelehealthCartPref), 0);
}

#[test]
fn s24_waiting_area_proximity_for_elderly() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].distance_to_checkin_m = 90;
    assert_eq!(soft_only(&f, RuleId::WaitingAreaProximity), 0, "age 40");
    f.snapshot.patient.age_years = 80;
    assert_eq!(soft_only(&f, RuleId::WaitingAreaProximity), 9);
}

#[test]
fn hard_violations_are_all_counted_in_code_order() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].status = RoomStatus::OutOfService;
    f.snapshot.rooms[0].equipment.clear();
    f.request.needs.companions = 1;
    let evaluation = evaluate(&f);
    let rules: Vec<RuleId> = evaluation.violations.iter().map(|v| v.rule).collect();
    assert_eq!(rules, vec![RuleId::RoomActive, RuleId::RequiredEquipment, RuleId::Capacity]);
    assert_eq!(evaluation.score.hard, -(100_000 + 50 + 50));
}

#[test]
fn custom_messages_wrap_the_detail() {
    let f = {
        let mut f = Fixture::single_room();
        f.snapshot.rooms[0].equipment.clear();
        f
    };
    let text = "version = 1\n[[rules]]\nkey = \"required_equipment\"\nweight = 50\n\
                message = \"Not here: {detail}\"\n";
    let rules = RuleSet::from_toml(text).unwrap();
    let evaluation = evaluate_with(&rules, &f);
    assert_eq!(
        evaluation.violations[0].message,
        "Not here: room Exam 0 lacks required equipment: ecg"
    );
}

#[test]
fn disabled_rules_do_not_fire() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].status = RoomStatus::Maintenance;
    let mut rules = default_rule_set();
    let mut records = rules.rules().to_vec();
    records.iter_mut().filter(|r| r.id == RuleId::RoomActive).for_each(|r| r.enabled = false);
    rules = RuleSet::new(rules.version, None, records).unwrap();
    assert!(evaluate_with(&rules, &f).violations.is_empty());
    assert!(matches!(rules.get(RuleId::RoomActive).unwrap().params, RuleParams::RoomActive(_)));
}

#[test]
fn top_contributions_are_the_costliest_soft_rules() {
    let mut f = Fixture::single_room();
    f.snapshot.rooms[0].zone = "B".into(); // S04: 15
    f.snapshot.rooms[0].capacity = 5; // S06: 3
    f.request.previous_room_id = Some(fixture_id(2, 3)); // S22: 50
    f.snapshot.patient_last_room_id = Some(fixture_id(2, 3)); // S14: 10
    let evaluation = evaluate(&f);
    let top: Vec<(RuleId, i64)> =
        evaluation.top_contributions(3).iter().map(|c| (c.rule, c.penalty)).collect();
    let expected = vec![
        (RuleId::PublishedRoomStability, -50),
        (RuleId::DepartmentZoneMatch, -15),
        (RuleId::PatientRoomContinuity, -10),
    ];
    assert_eq!(top, expected);
    assert_eq!(evaluation.score.soft, -(50 + 15 + 10 + 3));
}

#[test]
fn extreme_inputs_saturate_instead_of_panicking() {
    let mut f = Fixture::single_room();
    // A zero clean window means "no separation" (and must not form an empty interval).
    f.snapshot.patient.immunocompromised = true;
    let text = "version = 1\n[[rules]]\nkey = \"immunocompromised_separation\"\nweight = 30\n\
                params = { clean_window_minutes = 0 }\n[[rules]]\nkey = \"load_balance\"\n\
                weight = 1\nparams = { unit_minutes = 1 }\n";
    let rules = RuleSet::from_toml(text).unwrap();
    // Absurd turnovers in stored data: utilisation² would overflow i64 without saturation.
    let mut huge = booked(1, 0, 60);
    huge.turnover_minutes = u32::MAX;
    f.snapshot.appointments = vec![huge.clone(), {
        huge.id = fixture_id(5, 2);
        huge
    }];
    let evaluation = evaluate_with(&rules, &f);
    // S11 with unit 1 min: u = busy minutes, d = 20 + 5 turnover; penalty d (2u + d).
    let used = 2 * (60 + i64::from(u32::MAX));
    assert_eq!(evaluation.score.soft, -(25 * (2 * used + 25)));
}
