//! Evaluation of one room for one slot against a rule set.
//!
//! PREPARATION
//!
//! [`EvalContext::new`] does the per-request work once: per-room timelines (sorted interval
//! lists), the doctor's appointments sorted by start, the visit's tags, the occupant count, the
//! required equipment, the clinic's shortest entrance distance. Every room and every candidate
//! time afterwards is cheap: a handful of comparisons and a binary search per rule.
//!
//! TWO SPEEDS
//!
//! `evaluate_room(.., explain = false)` only computes magnitudes and the score (the hot path,
//! run for every room and candidate time). Rules that cannot change with the time
//! ([`RuleId::depends_on_time`] is false: equipment, capacity, zone, …) are evaluated once per
//! room in [`EvalContext::new`]; the fast path adds the 14 time-dependent ones. With
//! `explain = true` every rule is checked in code order, every hit gets a human-readable
//! detail, and every active soft rule is listed even when it costs nothing; the allocator asks
//! for that only for the rooms it reports on. Both paths agree on score and violations (a
//! property test checks it at shifted slots).
//!
//! MAGNITUDES
//!
//! Each rule yields an integer magnitude ≥ 0; the penalty is `weight × magnitude`. The
//! function for rule `Hnn`/`Snn` below documents its magnitude. H15 (participant double
//! booking) does not depend on the room and is checked once per slot by the allocator.
//!
//! NOT MODELLED
//!
//! H14 counts blocks overlapping the slot, an upper bound of peak concurrency. S11 measures
//! utilisation over the whole snapshot (the booking day), not per session.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::catalogue::*;
use super::ruleset::{Rule, RuleSet};
use super::score::Score;
use crate::domain::{Appointment, Gender, GenderPolicy, Isolation, Room};
use crate::schedule::{
    Block, ClinicSnapshot, EpochMicros, EvalStats, MINUTE_US, RoomTimeline, epoch_us, from_epoch_us,
};

/// A candidate time, half-open `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Slot {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Slot {
        assert!(start < end, "a slot must end after it starts");
        Slot { start, end }
    }

    /// The same duration, moved by `minutes`.
    pub fn shifted(self, minutes: i64) -> Slot {
        let by = Duration::minutes(minutes);
        Slot { start: self.start + by, end: self.end + by }
    }
}

/// A violated hard rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: RuleId,
    pub magnitude: i64,
    pub penalty: i64,
    /// Human-readable; empty unless the evaluation was explained.
    pub message: String,
}

/// One soft rule's share of a room's score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contribution {
    pub rule: RuleId,
    pub weight: i64,
    pub magnitude: i64,
    /// `−weight × magnitude`.
    pub penalty: i64,
    /// Human-readable; empty when the rule costs nothing or the evaluation was not explained.
    pub detail: String,
}

/// Why a room was not chosen: its first failing hard rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub room_id: Uuid,
    pub room_name: String,
    pub rule: RuleId,
    pub message: String,
}

/// The evaluation of one room for one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoomEvaluation {
    pub room_id: Uuid,
    #[serde(skip)]
    pub room_index: usize,
    pub slot: Slot,
    pub score: Score,
    /// Minutes the room stays blocked after the appointment (H03 by type, H09 clearance).
    pub turnover_minutes: u32,
    /// Violated hard rules, in code order.
    pub violations: Vec<Violation>,
    /// Soft rules, every active one; empty unless the evaluation was explained (the fast
    /// path only computes the score).
    pub contributions: Vec<Contribution>,
}

impl RoomEvaluation {
    pub fn is_feasible(&self) -> bool {
        self.violations.is_empty()
    }

    /// "Why this room": the `count` most expensive soft contributions, costliest first (ties
    /// in rule-code order). Rules that cost nothing are left out.
    pub fn top_contributions(&self, count: usize) -> Vec<&Contribution> {
        let mut costly: Vec<&Contribution> =
            self.contributions.iter().filter(|c| c.penalty < 0).collect();
        costly.sort_by_key(|c| (c.penalty, c.rule));
        costly.truncate(count);
        costly
    }

    /// The first failing hard rule, as a rejection of this room.
    pub fn rejection(&self, room: &Room) -> Option<Rejection> {
        assert_eq!(room.id, self.room_id, "rejection built for another room");
        self.violations.first().map(|violation| Rejection {
            room_id: room.id,
            room_name: room.name.clone(),
            rule: violation.rule,
            message: violation.message.clone(),
        })
    }
}

/// Per-request facts shared by every room and slot.
pub struct EvalContext<'a> {
    pub rules: &'a RuleSet,
    pub snapshot: &'a ClinicSnapshot,
    pub request: &'a crate::domain::BookingRequest,
    timelines: Vec<RoomTimeline>,
    /// Room ids (as integers) sorted, with their index in `snapshot.rooms`.
    room_index_by_id: Vec<(u128, usize)>,
    /// The doctor's participant-blocking appointments, sorted by start.
    doctor_visits: Vec<Visit>,
    /// Appointments that block the doctor or the patient (H15), in snapshot order.
    participant_appointments: Vec<Appointment>,
    /// Patient, appointment-type and derived tags (H13), for determinism a BTreeSet.
    visit_tags: BTreeSet<&'a str>,
    required_equipment: BTreeSet<&'a str>,
    occupants_without_staff: u32,
    needs_accessible: bool,
    airborne: bool,
    infectious: bool,
    entrance_distance_m_min: u32,
    /// Busy minutes per room over the snapshot (S11).
    busy_minutes: Vec<i64>,
    /// Per room: the score and violations of the rules that do not depend on time.
    static_parts: Vec<Accumulator>,
    /// Active rules that depend on time (H15 excluded), in code order.
    timed_rules: Vec<&'a Rule>,
    /// Active rules an explained evaluation checks (H15 excluded).
    explained_rules_count: u64,
    /// Work done while preparing the static parts.
    preparation_stats: EvalStats,
}

/// Score, violations and (when explaining) contributions gathered rule by rule.
#[derive(Clone, Debug, Default)]
struct Accumulator {
    score: Score,
    violations: Vec<Violation>,
    contributions: Vec<Contribution>,
}

/// A doctor's appointment, in integer time.
#[derive(Clone, Copy, Debug)]
struct Visit {
    start_us: EpochMicros,
    end_us: EpochMicros,
    room_id: Option<Uuid>,
    id: Uuid,
}

/// Writes `detail` only when explaining and the rule hit; returns the magnitude.
fn hit(magnitude: i64, detail: Option<&mut String>, text: impl FnOnce() -> String) -> i64 {
    if magnitude > 0
        && let Some(detail) = detail
    {
        *detail = text();
    }
    magnitude
}

/// A distance magnitude: whole units of `per_m` metres (a zero unit counts as one metre).
fn per_metres(metres: i64, per_m: u32) -> i64 {
    metres / i64::from(per_m.max(1))
}

/// `at` as `HH:MM` (what `at.format("%H:%M")` prints, without parsing a format string).
fn hhmm(at: DateTime<Utc>) -> String {
    format!("{:02}:{:02}", at.hour(), at.minute())
}

impl<'a> EvalContext<'a> {
    pub fn new(
        rules: &'a RuleSet,
        snapshot: &'a ClinicSnapshot,
        request: &'a crate::domain::BookingRequest,
    ) -> EvalContext<'a> {
        let rooms = snapshot.rooms.iter().enumerate();
        let mut room_index_by_id: Vec<(u128, usize)> =
            rooms.map(|(index, room)| (room.id.as_u128(), index)).collect();
        room_index_by_id.sort_unstable();
        let timelines = build_timelines(snapshot, &room_index_by_id);
        let busy_minutes = timelines.iter().map(RoomTimeline::busy_minutes).collect();
        let (doctor_visits, participant_appointments) = participants(snapshot, request);
        let patient = &snapshot.patient;
        let airborne = patient.isolation == Isolation::Airborne
            || request.needs.isolation == Isolation::Airborne;
        let infectious = patient.is_infectious() || request.needs.isolation != Isolation::None;
        let mut visit_tags: BTreeSet<&str> = patient.tags.iter().map(String::as_str).collect();
        visit_tags.extend(snapshot.appointment_type.tags.iter().map(String::as_str));
        if infectious {
            visit_tags.insert("infectious");
        }
        if airborne {
            visit_tags.insert("airborne");
        }
        if patient.immunocompromised {
            visit_tags.insert("immunocompromised");
        }
        let mut required_equipment: BTreeSet<&str> =
            snapshot.appointment_type.required_equipment.iter().map(String::as_str).collect();
        required_equipment.extend(request.needs.equipment.iter().map(String::as_str));
        let occupants_without_staff =
            1 + request.needs.companions + u32::from(request.needs.interpreter);
        let entrance_distance_m_min =
            snapshot.rooms.iter().map(|r| r.distance_to_entrance_m).min().unwrap_or(0);
        let timed_rules = rules
            .rules()
            .iter()
            .filter(|r| r.is_active() && r.id.depends_on_time())
            .filter(|r| r.id != RuleId::ParticipantNoDoubleBooking)
            .collect();
        let explained_rules_count = rules
            .rules()
            .iter()
            .filter(|r| r.is_active() && r.id != RuleId::ParticipantNoDoubleBooking)
            .count() as u64;
        let mut ctx = EvalContext {
            rules,
            snapshot,
            request,
            timelines,
            room_index_by_id,
            doctor_visits,
            participant_appointments,
            visit_tags,
            required_equipment,
            occupants_without_staff,
            needs_accessible: patient.mobility_needs || request.needs.accessible,
            airborne,
            infectious,
            entrance_distance_m_min,
            busy_minutes,
            static_parts: Vec::new(),
            timed_rules,
            explained_rules_count,
            preparation_stats: EvalStats::default(),
        };
        ctx.prepare_static_parts();
        ctx
    }

    /// Evaluates the time-independent rules of every room once (at the requested slot; the
    /// slot does not matter to them).
    fn prepare_static_parts(&mut self) {
        let mut stats = EvalStats::default();
        let slot = self.requested_slot();
        let untimed =
            self.rules.rules().iter().filter(|r| r.is_active() && !r.id.depends_on_time());
        let parts = (0..self.snapshot.rooms.len())
            .map(|room_index| {
                let facts = self.slot_facts(room_index, slot);
                let mut part = Accumulator::default();
                for rule in untimed.clone() {
                    self.apply(rule, &facts, false, &mut stats, &mut part);
                }
                part
            })
            .collect();
        self.static_parts = parts;
        self.preparation_stats = stats;
    }

    /// The work done once per request by [`EvalContext::new`] (static rule checks).
    pub fn preparation_stats(&self) -> EvalStats {
        self.preparation_stats
    }

    /// The requested slot.
    pub fn requested_slot(&self) -> Slot {
        Slot::new(self.request.start, self.request.end)
    }

    /// The appointments that occupy the doctor or the patient (input to H15).
    pub fn participant_appointments(&self) -> &[Appointment] {
        &self.participant_appointments
    }

    pub fn timeline(&self, room_index: usize) -> &RoomTimeline {
        &self.timelines[room_index]
    }

    /// Index in `snapshot.rooms` of the room with `room_id`.
    pub fn room_index(&self, room_id: Uuid) -> Option<usize> {
        let key = room_id.as_u128();
        let found = self.room_index_by_id.binary_search_by_key(&key, |&(id, _)| id);
        found.ok().map(|position| self.room_index_by_id[position].1)
    }

    /// Minutes the room stays blocked after this visit: the type's turnover, raised to the
    /// room type's minimum (H03) and to the airborne clearance time (H09).
    pub fn turnover_minutes(&self, room: &Room) -> u32 {
        let mut turnover = self.snapshot.appointment_type.turnover_minutes;
        if let Some(RuleParams::NoRoomOverlap(p)) = self.params(RuleId::NoRoomOverlap) {
            let by_type = p.turnover_minutes_by_room_type.get(&room.room_type).copied();
            turnover = turnover.max(by_type.unwrap_or(0));
        }
        if self.airborne
            && let Some(RuleParams::AirborneIsolation(p)) = self.params(RuleId::AirborneIsolation)
        {
            let clear = if room.air_changes_per_hour >= 12 {
                p.clear_minutes_at_12_ach
            } else {
                p.clear_minutes_at_6_ach
            };
            turnover = turnover.max(clear);
        }
        turnover
    }

    fn params(&self, id: RuleId) -> Option<&'a RuleParams> {
        self.rules.active(id).map(|rule| &rule.params)
    }

    fn slot_facts(&self, room_index: usize, slot: Slot) -> SlotFacts<'a> {
        let room = &self.snapshot.rooms[room_index];
        let turnover_minutes = self.turnover_minutes(room);
        let end_us = epoch_us(slot.end);
        SlotFacts {
            room,
            room_index,
            slot,
            turnover_minutes,
            start_us: epoch_us(slot.start),
            end_us,
            blocked_end_us: end_us + i64::from(turnover_minutes) * MINUTE_US,
        }
    }

    /// Scores `snapshot.rooms[room_index]` for `slot`. Pure: same input, same output.
    ///
    /// The fast path (`explain = false`) starts from the room's precomputed time-independent
    /// part and checks only the time-dependent rules; explained evaluations check every rule
    /// in code order. Both give the same score and the same violated rules.
    pub fn evaluate_room(
        &self,
        room_index: usize,
        slot: Slot,
        explain: bool,
        stats: &mut EvalStats,
    ) -> RoomEvaluation {
        let facts = self.slot_facts(room_index, slot);
        stats.rooms_evaluated += 1;
        let mut acc =
            if explain { Accumulator::default() } else { self.static_parts[room_index].clone() };
        let room_independent = |rule: &&Rule| rule.id != RuleId::ParticipantNoDoubleBooking;
        if explain {
            let active = self.rules.rules().iter().filter(|rule| rule.is_active());
            for rule in active.filter(room_independent) {
                self.apply(rule, &facts, true, stats, &mut acc);
            }
        } else {
            for rule in &self.timed_rules {
                self.apply(rule, &facts, false, stats, &mut acc);
            }
            acc.violations.sort_by_key(|violation| violation.rule);
        }
        let Accumulator { score, violations, contributions } = acc;
        assert_eq!(score.hard == 0, violations.is_empty(), "hard score and violations disagree");
        RoomEvaluation {
            room_id: facts.room.id,
            room_index,
            slot,
            score,
            turnover_minutes: facts.turnover_minutes,
            violations,
            contributions,
        }
    }

    /// An infeasible room's explained violations, from its fast evaluation `fast` (made by
    /// [`Self::evaluate_room`] with `explain = false`): what `evaluate_room(fast.room_index,
    /// fast.slot, true, stats)` gives except the soft contributions (left empty), with the
    /// same effect on `stats`, at a fraction of the cost. The allocator uses it for the rooms
    /// it only reports as rejected, whose contributions nobody reads.
    ///
    /// The same because both paths agree on score and violations (the module doc); only the
    /// violated hard rules are checked again, for their text; an explained evaluation checks
    /// every active rule but H15 (counted), and of those only the time-dependent ones examine
    /// intervals, exactly as the fast path's checks of them did (run again for the count).
    pub fn explain_violations(
        &self,
        fast: &RoomEvaluation,
        stats: &mut EvalStats,
    ) -> RoomEvaluation {
        let facts = self.slot_facts(fast.room_index, fast.slot);
        stats.rooms_evaluated += 1;
        stats.rule_checks += self.explained_rules_count;
        for rule in &self.timed_rules {
            self.check(rule, &facts, None, stats);
        }
        let mut uncounted = EvalStats::default();
        let violations = fast
            .violations
            .iter()
            .map(|violation| {
                let rule = self.rules.get(violation.rule).expect("a violated rule is configured");
                let mut detail = String::new();
                let magnitude = self.check(rule, &facts, Some(&mut detail), &mut uncounted);
                assert_eq!(magnitude, violation.magnitude, "rule {} re-checked", rule.id);
                Violation { message: rule_message(rule, detail), ..violation.clone() }
            })
            .collect();
        RoomEvaluation {
            room_id: fast.room_id,
            room_index: fast.room_index,
            slot: fast.slot,
            score: fast.score,
            turnover_minutes: fast.turnover_minutes,
            violations,
            contributions: Vec::new(),
        }
    }

    /// Checks one rule and adds its penalty (and, when explaining, its text) to `acc`.
    fn apply(
        &self,
        rule: &Rule,
        facts: &SlotFacts,
        explain: bool,
        stats: &mut EvalStats,
        acc: &mut Accumulator,
    ) {
        stats.rule_checks += 1;
        let mut detail = String::new();
        let magnitude = self.check(rule, facts, explain.then_some(&mut detail), stats);
        assert!(magnitude >= 0, "rule {} produced a negative magnitude", rule.id);
        let penalty = rule.weight.saturating_mul(magnitude).saturating_neg();
        let (weight, id) = (rule.weight, rule.id);
        match rule.id.kind() {
            RuleKind::Hard if magnitude > 0 => {
                acc.score.penalize_hard(weight, magnitude);
                let message = rule_message(rule, detail);
                acc.violations.push(Violation { rule: id, magnitude, penalty, message });
            }
            RuleKind::Hard => {}
            RuleKind::Soft => {
                acc.score.penalize_soft(weight, magnitude);
                if explain {
                    let contribution =
                        Contribution { rule: id, weight, magnitude, penalty, detail };
                    acc.contributions.push(contribution);
                }
            }
        }
    }

    fn check(&self, rule: &Rule, f: &SlotFacts, d: Option<&mut String>, s: &mut EvalStats) -> i64 {
        match &rule.params {
            RuleParams::RoomActive(p) => self.h01_room_active(p, f, d),
            RuleParams::SameClinicSite(p) => self.h02_same_clinic_site(p, f, d),
            RuleParams::NoRoomOverlap(_) => self.h03_no_room_overlap(f, d, s),
            RuleParams::WithinRoomHours(p) => self.h04_within_hours(p, f, d),
            RuleParams::RoomTypeAllowed(p) => self.h05_room_type_allowed(p, f, d),
            RuleParams::RequiredEquipment(p) => self.h06_required_equipment(p, f, d),
            RuleParams::Capacity(p) => self.h07_capacity(p, f, d),
            RuleParams::Accessibility(_) => self.h08_accessibility(f, d),
            RuleParams::AirborneIsolation(p) => self.h09_airborne_isolation(p, f, d),
            RuleParams::RoomGenderPolicy(_) => self.h10_gender_policy(f, d, s),
            RuleParams::AgePolicy(_) => self.h11_age_policy(f, d),
            RuleParams::SpecialtyRestriction(_) => self.h12_specialty(f, d),
            RuleParams::ProhibitedTags(p) => self.h13_prohibited_tags(p, f, d),
            RuleParams::ConcurrentCapacity(_) => self.h14_concurrent_capacity(f, d, s),
            RuleParams::ParticipantNoDoubleBooking(_) => 0,
            RuleParams::PinnedRoom(_) => self.h16_pinned_room(f, d),
            RuleParams::DoctorPreferredRoom(p) => self.s01_preferred_room(p, f, d),
            RuleParams::DoctorRoomStability(p) => self.s02_room_stability(p, f, d),
            RuleParams::WalkingDistance(p) => self.s03_walking_distance(p, f, d),
            RuleParams::DepartmentZoneMatch(_) => self.s04_zone_match(f, d),
            RuleParams::PreferredEquipment(_) => self.s05_preferred_equipment(f, d),
            RuleParams::SmallestSufficientRoom(p) => self.s06_smallest_room(p, f, d),
            RuleParams::AvoidScarceRoom(p) => self.s07_scarce_room(p, f, d),
            RuleParams::PrivateRoomPref(_) => self.s08_private_room(f, d),
            RuleParams::TurnoverSlack(p) => self.s09_turnover_slack(p, f, d, s),
            RuleParams::GapFragmentation(p) => self.s10_fragmentation(p, f, d, s),
            RuleParams::LoadBalance(p) => self.s11_load_balance(p, f, d),
            RuleParams::ConsolidateRooms(_) => self.s12_consolidate(f, d),
            RuleParams::ProviderRoomRatio(p) => self.s13_provider_rooms(p, f, d),
            RuleParams::PatientRoomContinuity(_) => self.s14_patient_continuity(f, d),
            RuleParams::MobilityNearEntrance(p) => self.s15_mobility_entrance(p, f, d),
            RuleParams::ImmunocompromisedSeparation(p) => self.s16_immuno_separation(p, f, d, s),
            RuleParams::InfectiousNearExit(p) => self.s17_infectious_exit(p, f, d),
            RuleParams::AgeZonePref(p) => self.s18_age_zone(p, f, d),
            RuleParams::PrivacyRoom(p) => self.s19_privacy(p, f, d),
            RuleParams::NursePodMatch(_) => self.s20_nurse_pod(f, d),
            RuleParams::PreMaintenanceBuffer(p) => self.s21_maintenance_buffer(p, f, d),
            RuleParams::PublishedRoomStability(_) => self.s22_published_room(f, d),
            RuleParams::TelehealthCartPref(p) => self.s23_av_cart(p, f, d),
            RuleParams::WaitingAreaProximity(p) => self.s24_waiting_area(p, f, d),
        }
    }
}

/// What every rule looks at: the room and the slot with its blocked end.
struct SlotFacts<'r> {
    room: &'r Room,
    room_index: usize,
    slot: Slot,
    turnover_minutes: u32,
    start_us: EpochMicros,
    end_us: EpochMicros,
    /// `slot.end + turnover`.
    blocked_end_us: EpochMicros,
}

impl SlotFacts<'_> {
    fn blocked_end(&self) -> DateTime<Utc> {
        from_epoch_us(self.blocked_end_us)
    }
}

/// The doctor's visits sorted by start, and the appointments occupying doctor or patient.
fn participants(
    snapshot: &ClinicSnapshot,
    request: &crate::domain::BookingRequest,
) -> (Vec<Visit>, Vec<Appointment>) {
    let blocking = snapshot.appointments.iter().filter(|a| a.status.blocks_participants());
    let mut visits = Vec::new();
    let mut appointments = Vec::new();
    for a in blocking {
        let doctor = a.doctor_id == request.doctor_id;
        if doctor {
            let (start_us, end_us) = (epoch_us(a.start), epoch_us(a.end));
            visits.push(Visit { start_us, end_us, room_id: a.room_id, id: a.id });
        }
        if doctor || a.patient_id == request.patient_id {
            appointments.push(a.clone());
        }
    }
    visits.sort_unstable_by_key(|v| (v.start_us, v.id.as_u128()));
    (visits, appointments)
}

/// The rule's configured message, if any, with `{detail}` replaced by the engine's detail.
fn rule_message(rule: &Rule, detail: String) -> String {
    match &rule.message {
        Some(template) if !detail.is_empty() => template.replace("{detail}", &detail),
        _ => detail,
    }
}

fn build_timelines(
    snapshot: &ClinicSnapshot,
    room_index_by_id: &[(u128, usize)],
) -> Vec<RoomTimeline> {
    let mut blocks: Vec<Vec<Block>> = vec![Vec::new(); snapshot.rooms.len()];
    // Day sheets usually list a room's appointments together: remember the last lookup.
    let mut last: Option<(u128, usize)> = None;
    for (index, appointment) in snapshot.appointments.iter().enumerate() {
        let Some(room_id) = appointment.room_id else { continue };
        if !appointment.status.blocks_room() {
            continue;
        }
        let key = room_id.as_u128();
        let room_index = match last {
            Some((last_key, room_index)) if last_key == key => room_index,
            _ => {
                let found = room_index_by_id.binary_search_by_key(&key, |&(id, _)| id);
                let Ok(position) = found else {
                    continue; // A room outside the snapshot cannot be chosen.
                };
                last = Some(room_index_by_id[position]);
                room_index_by_id[position].1
            }
        };
        let end_us = epoch_us(appointment.end);
        let turnover_us = i64::from(appointment.turnover_minutes) * MINUTE_US;
        blocks[room_index].push(Block {
            start_us: epoch_us(appointment.start),
            end_us,
            blocked_end_us: end_us + turnover_us,
            appointment_index: u32::try_from(index).expect("appointment index fits u32"),
            appointment_id: appointment.id,
        });
    }
    blocks.into_iter().map(RoomTimeline::from_blocks).collect()
}

// Hard rules. Magnitude 1 per violated condition unless stated.
impl EvalContext<'_> {
    /// H01: the room's status is bookable and no closure window overlaps the blocked range.
    fn h01_room_active(&self, p: &RoomActiveParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let room = f.room;
        if !p.statuses.contains(&room.status) {
            return hit(1, d, || format!("room {} is {:?}", room.name, room.status));
        }
        if !p.check_closures {
            return 0;
        }
        if room.closures.is_empty() {
            return 0;
        }
        let blocked_end = f.blocked_end();
        let closed = room.closures.iter().find(|c| c.overlaps(f.slot.start, blocked_end));
        let magnitude = i64::from(closed.is_some());
        hit(magnitude, d, || {
            let c = closed.expect("closure found");
            format!("room {} closed {}–{} ({})", room.name, hhmm(c.start), hhmm(c.end), c.reason)
        })
    }

    /// H02: the room belongs to the requested clinic.
    fn h02_same_clinic_site(
        &self,
        p: &SameClinicSiteParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let foreign = f.room.clinic_id != self.request.clinic_id && !p.allow_cross_site;
        hit(i64::from(foreign), d, || format!("room {} belongs to another clinic", f.room.name))
    }

    /// H03: magnitude = number of room-blocking appointments the blocked range overlaps
    /// (single-occupancy rooms; multi-chair rooms are H14's).
    fn h03_no_room_overlap(&self, f: &SlotFacts, d: Option<&mut String>, s: &mut EvalStats) -> i64 {
        if f.room.chairs_effective() > 1 {
            return 0;
        }
        let timeline = &self.timelines[f.room_index];
        let mut first: Option<Block> = None;
        let mut count = 0;
        for block in timeline.overlapping(f.start_us, f.blocked_end_us, s) {
            first.get_or_insert(*block);
            count += 1;
        }
        hit(count, d, || {
            let b = first.expect("a conflicting block");
            let id = self.snapshot.appointments[b.appointment_index as usize].id;
            format!(
                "room {} busy {}–{} (blocked to {}) with appointment {id}",
                f.room.name,
                hhmm(from_epoch_us(b.start_us)),
                hhmm(from_epoch_us(b.end_us)),
                hhmm(from_epoch_us(b.blocked_end_us))
            )
        })
    }

    /// H04: the slot lies within the clinic's and the room's opening hours and outside clinic
    /// closures.
    fn h04_within_hours(
        &self,
        p: &WithinRoomHoursParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let clinic = &self.snapshot.clinic;
        let (start, end) = (f.slot.start, f.slot.end);
        let mut magnitude = 0;
        if p.check_clinic_hours {
            magnitude += i64::from(!clinic.opening_hours.covers(start, end));
            magnitude += i64::from(clinic.closures.iter().any(|c| c.overlaps(start, end)));
        }
        if p.check_room_hours {
            let room_hours = f.room.opening_hours.as_ref();
            magnitude += i64::from(room_hours.is_some_and(|hours| !hours.covers(start, end)));
        }
        hit(magnitude, d, || {
            format!(
                "{}–{} is outside the opening hours of room {}",
                hhmm(start),
                hhmm(end),
                f.room.name
            )
        })
    }

    /// H05: the room type is allowed for the appointment type (empty list: any type).
    fn h05_room_type_allowed(
        &self,
        p: &RoomTypeAllowedParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let kind = &self.snapshot.appointment_type;
        let extra = p.extra_allowed.get(&kind.key).map(Vec::as_slice).unwrap_or_default();
        if kind.allowed_room_types.is_empty() && extra.is_empty() {
            return 0;
        }
        let room_type = &f.room.room_type;
        let allowed = kind.allowed_room_types.contains(room_type) || extra.contains(room_type);
        hit(i64::from(!allowed), d, || {
            format!("room type {room_type} is not allowed for {}", kind.key)
        })
    }

    /// H06: magnitude = missing required tags (`all_of`), or 1 when none is present
    /// (`any_of`). Required = the type's tags plus the request's needs.
    fn h06_required_equipment(
        &self,
        p: &RequiredEquipmentParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let equipment = &f.room.equipment;
        let missing = self.required_equipment.iter().filter(|tag| !equipment.contains(**tag));
        let missing_count = missing.clone().count() as i64;
        let magnitude = match p.match_mode {
            EquipmentMatch::AllOf => missing_count,
            EquipmentMatch::AnyOf => {
                let required = self.required_equipment.len() as i64;
                i64::from(required > 0 && missing_count == required)
            }
        };
        hit(magnitude, d, || {
            let tags: Vec<&str> = missing.copied().collect();
            format!("room {} lacks required equipment: {}", f.room.name, tags.join(", "))
        })
    }

    /// H07: magnitude = occupants beyond the room's capacity.
    fn h07_capacity(&self, p: &CapacityParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let needed = self.occupants_without_staff + p.staff_count;
        let shortfall = i64::from(needed) - i64::from(f.room.capacity);
        hit(shortfall.max(0), d, || {
            format!("room {} holds {}, the visit needs {needed}", f.room.name, f.room.capacity)
        })
    }

    /// H08: a patient who needs an accessible room gets one.
    fn h08_accessibility(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let violated = self.needs_accessible && !f.room.accessible;
        hit(i64::from(violated), d, || format!("room {} is not accessible", f.room.name))
    }

    /// H09: an airborne-isolation patient gets a negative-pressure room with enough air changes
    /// (or, if allowed, a room tagged `single_room`).
    fn h09_airborne_isolation(
        &self,
        p: &AirborneIsolationParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        if !self.airborne {
            return 0;
        }
        let room = f.room;
        let aiir = room.aiir && room.air_changes_per_hour >= p.air_changes_per_hour_min;
        let fallback = p.fallback_single_room_door_closed && room.tags.contains("single_room");
        hit(i64::from(!aiir && !fallback), d, || {
            format!(
                "room {} is not an airborne isolation room with ≥{} air changes per hour",
                room.name, p.air_changes_per_hour_min
            )
        })
    }

    /// H10: male/female-only rooms; same-gender bays: magnitude = overlapping appointments
    /// of patients of another (known) gender.
    fn h10_gender_policy(&self, f: &SlotFacts, d: Option<&mut String>, s: &mut EvalStats) -> i64 {
        let gender = self.snapshot.patient.gender;
        let magnitude = match f.room.gender_policy {
            GenderPolicy::Any => 0,
            GenderPolicy::MaleOnly => i64::from(gender != Gender::Male),
            GenderPolicy::FemaleOnly => i64::from(gender != Gender::Female),
            GenderPolicy::SameGender => {
                let timeline = &self.timelines[f.room_index];
                let others = timeline.overlapping(f.start_us, f.blocked_end_us, s).filter(|b| {
                    let other =
                        self.snapshot.appointments[b.appointment_index as usize].patient_gender;
                    other.is_some_and(|other| other != gender)
                });
                others.count() as i64
            }
        };
        hit(magnitude, d, || {
            format!("room {} is {:?}; patient is {gender:?}", f.room.name, f.room.gender_policy)
        })
    }

    /// H11: the patient's age lies within the room's min/max age.
    fn h11_age_policy(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let age = self.snapshot.patient.age_years;
        let too_young = f.room.min_age_years.is_some_and(|min| age < min);
        let too_old = f.room.max_age_years.is_some_and(|max| age > max);
        hit(i64::from(too_young || too_old), d, || {
            format!(
                "room {} is for ages {:?}–{:?}; patient is {age}",
                f.room.name, f.room.min_age_years, f.room.max_age_years
            )
        })
    }

    /// H12: the doctor's specialty is allowed (if the room lists any) and not prohibited.
    fn h12_specialty(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let specialty = &self.snapshot.doctor.specialty;
        let room = f.room;
        let not_allowed =
            !room.allowed_specialties.is_empty() && !room.allowed_specialties.contains(specialty);
        let prohibited = room.prohibited_specialties.contains(specialty);
        hit(i64::from(not_allowed || prohibited), d, || {
            format!("room {} is not available to specialty {specialty}", room.name)
        })
    }

    /// H13: magnitude = (room tag, visit tag) pairs that prohibit this visit.
    fn h13_prohibited_tags(
        &self,
        p: &ProhibitedTagsParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let clashes = p.pairs.iter().filter(|pair| {
            f.room.tags.contains(&pair.room_tag)
                && self.visit_tags.contains(pair.prohibits.as_str())
        });
        hit(clashes.clone().count() as i64, d, || {
            let pair = clashes.clone().next().expect("a clash");
            format!("room {} is {}, which prohibits {}", f.room.name, pair.room_tag, pair.prohibits)
        })
    }

    /// H14: multi-chair rooms: magnitude = overlapping appointments − chairs + 1 when full.
    fn h14_concurrent_capacity(
        &self,
        f: &SlotFacts,
        d: Option<&mut String>,
        s: &mut EvalStats,
    ) -> i64 {
        let chairs = f.room.chairs_effective();
        if chairs <= 1 {
            return 0;
        }
        let timeline = &self.timelines[f.room_index];
        let concurrent = timeline.overlapping(f.start_us, f.blocked_end_us, s).count() as i64;
        let excess = concurrent - i64::from(chairs) + 1;
        hit(excess.max(0), d, || {
            format!("room {} has all {chairs} chairs taken at {}", f.room.name, hhmm(f.slot.start))
        })
    }

    /// H16: a pinned request may only use its pinned room.
    fn h16_pinned_room(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let pinned = self.request.room_id;
        let other = pinned.is_some_and(|pinned| pinned != f.room.id);
        hit(i64::from(other), d, || {
            format!("the request pins room {}", pinned.expect("pinned room"))
        })
    }
}

// Soft rules.
impl EvalContext<'_> {
    /// S01: magnitude = rank − 1 in the doctor's ranked list, `unlisted_magnitude` if absent
    /// (0 when the doctor ranks no rooms).
    fn s01_preferred_room(
        &self,
        p: &PreferredRoomParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let ranked = &self.snapshot.doctor.preferred_rooms;
        if ranked.is_empty() {
            return 0;
        }
        match ranked.iter().position(|id| *id == f.room.id) {
            Some(rank) => hit(rank as i64, d, || format!("rank {} of {}", rank + 1, ranked.len())),
            None => hit(i64::from(p.unlisted_magnitude), d, || "not in the doctor's list".into()),
        }
    }

    /// The doctor's appointments just before and just after the slot.
    fn doctor_neighbours(&self, f: &SlotFacts) -> (Option<Visit>, Option<Visit>) {
        let index = self.doctor_visits.partition_point(|v| v.start_us < f.start_us);
        let before = index.checked_sub(1).map(|i| self.doctor_visits[i]);
        (before, self.doctor_visits.get(index).copied())
    }

    /// S02: magnitude = consecutive doctor appointments (gap ≤ `gap_minutes`) in another room.
    fn s02_room_stability(&self, p: &GapParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let gap_max = i64::from(p.gap_minutes);
        let (before, after) = self.doctor_neighbours(f);
        let moved = |visit: Option<Visit>, gap_us: fn(&Visit, &SlotFacts) -> i64| {
            visit.is_some_and(|v| {
                let elsewhere = v.room_id.is_some_and(|room| room != f.room.id);
                elsewhere && gap_us(&v, f) / MINUTE_US <= gap_max
            })
        };
        let before_moved = moved(before, |v, f| f.start_us - v.end_us);
        let after_moved = moved(after, |v, f| v.start_us - f.end_us);
        let magnitude = i64::from(before_moved) + i64::from(after_moved);
        hit(magnitude, d, || format!("doctor changes room {magnitude} time(s) around this visit"))
    }

    /// S03: magnitude = metres walked from the doctor's previous room and to the next one,
    /// divided by `per_m`.
    fn s03_walking_distance(
        &self,
        p: &DistanceParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let (before, after) = self.doctor_neighbours(f);
        let distance_m = |visit: Option<Visit>| {
            let room_id = visit.and_then(|v| v.room_id);
            let index = room_id.and_then(|id| self.room_index(id));
            index.map_or(0, |i| i64::from(self.snapshot.rooms[i].distance_to_m(f.room)))
        };
        let metres = distance_m(before) + distance_m(after);
        hit(per_metres(metres, p.per_m), d, || format!("doctor walks {metres} m"))
    }

    /// S04: the room is outside the doctor's zone.
    fn s04_zone_match(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let zone = &self.snapshot.doctor.zone;
        let outside = !zone.is_empty() && *zone != f.room.zone;
        hit(i64::from(outside), d, || format!("zone {} is not the doctor's {zone}", f.room.zone))
    }

    /// S05: magnitude = preferred equipment tags the room lacks.
    fn s05_preferred_equipment(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let preferred = &self.snapshot.appointment_type.preferred_equipment;
        let missing = preferred.iter().filter(|tag| !f.room.equipment.contains(*tag));
        hit(missing.clone().count() as i64, d, || {
            let tags: Vec<&str> = missing.map(String::as_str).collect();
            format!("lacks preferred {}", tags.join(", "))
        })
    }

    /// S06: magnitude = spare capacity (capacity − occupants).
    fn s06_smallest_room(&self, p: &CapacityParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let needed = i64::from(self.occupants_without_staff + p.staff_count);
        let spare = (i64::from(f.room.capacity) - needed).max(0);
        hit(spare, d, || format!("capacity {} > needed {needed}", f.room.capacity))
    }

    /// S07: magnitude = scarce features the room has and the visit does not need.
    fn s07_scarce_room(&self, p: &ScarceParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let room = f.room;
        let allowed = &self.snapshot.appointment_type.allowed_room_types;
        let scarce_type = p.scarce_room_types.contains(&room.room_type)
            && (allowed.is_empty() || allowed.iter().any(|t| !p.scarce_room_types.contains(t)));
        let unused_aiir = p.aiir && room.aiir && !self.airborne;
        let unused_access = p.accessible && room.accessible && !self.needs_accessible;
        let magnitude = i64::from(scarce_type) + i64::from(unused_aiir) + i64::from(unused_access);
        hit(magnitude, d, || format!("uses {magnitude} scarce feature(s) it does not need"))
    }

    /// S08: a visit asking for privacy lands in a shared (multi-chair) room.
    fn s08_private_room(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let shared = self.request.needs.private_room && f.room.chairs_effective() > 1;
        hit(i64::from(shared), d, || format!("room {} is shared", f.room.name))
    }

    /// The blocks before and after the slot in this room, and the gaps to them in minutes.
    fn room_gaps(&self, f: &SlotFacts, s: &mut EvalStats) -> (Option<i64>, Option<i64>) {
        let (before, after) = self.timelines[f.room_index].neighbours(f.start_us, s);
        let gap_before = before.map(|b| (f.start_us - b.blocked_end_us) / MINUTE_US);
        let gap_after = after.map(|b| (b.start_us - f.blocked_end_us) / MINUTE_US);
        (gap_before, gap_after)
    }

    /// S09: magnitude = minutes short of `pref_gap_minutes` before and after.
    fn s09_turnover_slack(
        &self,
        p: &TurnoverSlackParams,
        f: &SlotFacts,
        d: Option<&mut String>,
        s: &mut EvalStats,
    ) -> i64 {
        let wanted = i64::from(p.pref_gap_minutes);
        let (before, after) = self.room_gaps(f, s);
        let short = |gap: Option<i64>| gap.map_or(0, |gap| (wanted - gap.max(0)).max(0));
        let magnitude = short(before) + short(after);
        hit(magnitude, d, || format!("{magnitude} min short of {wanted} min slack"))
    }

    /// S10: magnitude = leftover gaps shorter than `min_bookable_minutes` the slot creates.
    fn s10_fragmentation(
        &self,
        p: &FragmentationParams,
        f: &SlotFacts,
        d: Option<&mut String>,
        s: &mut EvalStats,
    ) -> i64 {
        let (before, after) = self.room_gaps(f, s);
        let min = i64::from(p.min_bookable_minutes);
        let small = |gap: Option<i64>| i64::from(gap.is_some_and(|gap| gap > 0 && gap < min));
        let magnitude = small(before) + small(after);
        hit(magnitude, d, || format!("leaves {magnitude} gap(s) under {min} min"))
    }

    /// S11: utilisation in units of `unit_minutes`; magnitude = (u + d)² − u².
    fn s11_load_balance(
        &self,
        p: &LoadBalanceParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let unit = i64::from(p.unit_minutes.max(1));
        let used = self.busy_minutes[f.room_index] / unit;
        let added = (f.blocked_end_us - f.start_us) / MINUTE_US / unit;
        // (u + d)² − u² = d (2u + d): no cancellation, saturating on absurd data.
        let magnitude = added.saturating_mul(used.saturating_mul(2).saturating_add(added));
        hit(magnitude, d, || format!("room already busy {} min", self.busy_minutes[f.room_index]))
    }

    /// S12: the room has no appointment yet in the snapshot (opens a room).
    fn s12_consolidate(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let unused = self.timelines[f.room_index].blocks().is_empty();
        hit(i64::from(unused), d, || format!("opens room {}", f.room.name))
    }

    /// S13: magnitude = rooms beyond the doctor's limit held within `session_minutes`.
    fn s13_provider_rooms(
        &self,
        p: &ProviderRoomRatioParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        let doctor = &self.snapshot.doctor;
        let max = p.max_rooms_by_specialty.get(&doctor.specialty).copied().unwrap_or(p.max_rooms);
        let window_us = i64::from(p.session_minutes) * MINUTE_US;
        let (from_us, to_us) = (f.start_us - window_us, f.end_us + window_us);
        // A doctor has few visits a day: scan them all (sorted, so stop after the window).
        let in_session = self.doctor_visits.iter().take_while(|v| v.start_us < to_us);
        let other_rooms = in_session.filter(|v| v.end_us > from_us).filter_map(|v| v.room_id);
        // Distinct rooms other than this one, without allocating: count first occurrences.
        let mut rooms_count: i64 = 1;
        for (position, room) in other_rooms.clone().enumerate() {
            let seen = other_rooms.clone().take(position).any(|earlier| earlier == room);
            rooms_count += i64::from(room != f.room.id && !seen);
        }
        let excess = (rooms_count - i64::from(max)).max(0);
        hit(excess, d, || format!("doctor would hold {rooms_count} rooms (limit {max})"))
    }

    /// S14: the room differs from the patient's last room in the series.
    fn s14_patient_continuity(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let last = self.snapshot.patient_last_room_id;
        let moved = last.is_some_and(|last| last != f.room.id);
        hit(i64::from(moved), d, || "not the patient's previous room".into())
    }

    /// S15: mobility-flagged patients: magnitude = metres to the entrance / `per_m`.
    fn s15_mobility_entrance(
        &self,
        p: &DistanceParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        if !self.needs_accessible {
            return 0;
        }
        let metres = i64::from(f.room.distance_to_entrance_m);
        hit(per_metres(metres, p.per_m), d, || format!("{metres} m from the entrance"))
    }

    /// S16: immunocompromised patients: magnitude = shortfall of the clean window since the
    /// room's last infectious use, in `unit_minutes` (rounded up).
    fn s16_immuno_separation(
        &self,
        p: &CleanWindowParams,
        f: &SlotFacts,
        d: Option<&mut String>,
        s: &mut EvalStats,
    ) -> i64 {
        if !self.snapshot.patient.immunocompromised || p.clean_window_minutes == 0 {
            return 0;
        }
        let since_us = f.start_us - i64::from(p.clean_window_minutes) * MINUTE_US;
        let timeline = &self.timelines[f.room_index];
        let recent = timeline
            .overlapping(since_us, f.start_us, s)
            .filter(|b| self.snapshot.appointments[b.appointment_index as usize].infectious);
        let last_end_us = recent.map(|b| b.blocked_end_us).max();
        let short = last_end_us.map_or(0, |end_us| ((end_us - since_us) / MINUTE_US).max(0));
        let unit = i64::from(p.unit_minutes.max(1));
        hit((short + unit - 1) / unit, d, || {
            format!("infectious use {short} min inside the clean window")
        })
    }

    /// S17: infectious patients: magnitude = extra metres to the exit compared with the
    /// clinic's nearest room, / `per_m`.
    fn s17_infectious_exit(
        &self,
        p: &DistanceParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        if !self.infectious {
            return 0;
        }
        let extra = f.room.distance_to_entrance_m.saturating_sub(self.entrance_distance_m_min);
        let magnitude = per_metres(i64::from(extra), p.per_m);
        hit(magnitude, d, || format!("{extra} m further from the exit than the nearest room"))
    }

    /// S18: a child outside a paediatric room, or an adult inside one.
    fn s18_age_zone(&self, p: &AgeZoneParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let child = self.snapshot.patient.age_years <= p.child_age_max_years;
        let paediatric = f.room.tags.contains(&p.paediatric_tag);
        hit(i64::from(child != paediatric), d, || {
            let who = if child { "child" } else { "adult" };
            format!("{who} in room {} (paediatric: {paediatric})", f.room.name)
        })
    }

    /// S19: a sensitive visit in a room without any privacy tag.
    fn s19_privacy(&self, p: &PrivacyParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let sensitive = self.snapshot.appointment_type.sensitive;
        let private = p.room_tags.iter().any(|tag| f.room.tags.contains(tag));
        hit(i64::from(sensitive && !private), d, || format!("room {} lacks privacy", f.room.name))
    }

    /// S20: the room is outside the assigned nurse's pod.
    fn s20_nurse_pod(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let pod = self.request.needs.nurse_pod.as_ref();
        let outside = pod.is_some_and(|pod| *pod != f.room.zone);
        hit(i64::from(outside), d, || format!("zone {} is outside the nurse's pod", f.room.zone))
    }

    /// S21: magnitude = minutes short of `buffer_minutes` before the next closure window.
    fn s21_maintenance_buffer(
        &self,
        p: &BufferParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        if f.room.closures.is_empty() {
            return 0;
        }
        let buffer = i64::from(p.buffer_minutes);
        let blocked_end = f.blocked_end();
        let next = f.room.closures.iter().filter(|c| c.start >= blocked_end).map(|c| c.start).min();
        let gap = next.map(|start| (start - blocked_end).num_minutes());
        let short = gap.map_or(0, |gap| (buffer - gap).max(0));
        hit(short, d, || format!("maintenance starts {} min after the visit", gap.unwrap_or(0)))
    }

    /// S22: a rescheduled visit moves away from the room the patient was told.
    fn s22_published_room(&self, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let previous = self.request.previous_room_id;
        let moved = previous.is_some_and(|previous| previous != f.room.id);
        hit(i64::from(moved), d, || "moves the visit away from its published room".into())
    }

    /// S23: interpreter or video visits in a room without the AV cart.
    fn s23_av_cart(&self, p: &CartParams, f: &SlotFacts, d: Option<&mut String>) -> i64 {
        let wants = self.request.needs.interpreter || self.request.needs.video;
        let missing = wants && !f.room.equipment.contains(&p.cart_tag);
        hit(i64::from(missing), d, || format!("room {} has no {}", f.room.name, p.cart_tag))
    }

    /// S24: elderly patients: magnitude = metres from check-in / `per_m`.
    fn s24_waiting_area(
        &self,
        p: &WaitingAreaParams,
        f: &SlotFacts,
        d: Option<&mut String>,
    ) -> i64 {
        if self.snapshot.patient.age_years < p.elderly_age_min_years {
            return 0;
        }
        let metres = i64::from(f.room.distance_to_checkin_m);
        hit(per_metres(metres, p.per_m), d, || format!("{metres} m from check-in"))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// Goal: `explain_violations` gives an infeasible room the violations, score and stats of
    /// a full explained evaluation. Method: generated clinics, partly filled (time conflicts,
    /// H03) and with varied rooms (equipment, type, capacity failures), several slots and
    /// patients; every infeasible room compared both ways.
    #[test]
    fn explained_violations_match_a_full_explained_evaluation() {
        use crate::domain::Isolation;
        use crate::rules::default_rule_set;
        use crate::schedule::fixture::{Fixture, at};

        let rules = default_rule_set();
        let mut compared = 0;
        for seed in 0..6 {
            let mut fixture = Fixture::generated(12, seed);
            fixture.fill_rooms(3 + seed as usize % 3, 90);
            fixture
                .snapshot
                .appointments
                .retain(|a| a.room_id.is_none_or(|r| r.as_u128() % 3 != 0));
            if seed % 2 == 1 {
                fixture.snapshot.patient.isolation = Isolation::Airborne;
            }
            for (hour, minute) in [(1, 0), (3, 30), (4, 45), (9, 0)] {
                fixture.request.start = at(hour, minute);
                fixture.request.end = at(hour, minute) + Duration::minutes(20);
                let ctx = EvalContext::new(&rules, &fixture.snapshot, &fixture.request);
                let slot = ctx.requested_slot();
                for room_index in 0..fixture.snapshot.rooms.len() {
                    let mut scratch = EvalStats::default();
                    let fast = ctx.evaluate_room(room_index, slot, false, &mut scratch);
                    if fast.is_feasible() {
                        continue;
                    }
                    let (mut full_stats, mut new_stats) = (scratch, scratch);
                    let full = ctx.evaluate_room(room_index, slot, true, &mut full_stats);
                    let new = ctx.explain_violations(&fast, &mut new_stats);
                    assert_eq!(new.violations, full.violations, "seed {seed} room {room_index}");
                    assert!(new.violations.iter().all(|v| !v.message.is_empty()));
                    assert_eq!(new.score, full.score);
                    assert_eq!((new.room_id, new.room_index), (full.room_id, full.room_index));
                    assert_eq!(
                        (new.slot, new.turnover_minutes),
                        (full.slot, full.turnover_minutes)
                    );
                    assert_eq!(new_stats, full_stats, "seed {seed} room {room_index}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 50, "only {compared} infeasible rooms compared");
    }

    #[test]
    fn hhmm_prints_what_strftime_printed() {
        for (h, m, s) in [(0, 0, 0), (9, 5, 59), (13, 45, 1), (23, 59, 59)] {
            let at = Utc.with_ymd_and_hms(2026, 3, 2, h, m, s).unwrap();
            assert_eq!(hhmm(at), at.format("%H:%M").to_string());
        }
    }
}
