//! Evaluation of one room for one slot against a rule set: the context, the scoring loop and
//! the dispatch to the rules, which live in [`hard`] (H01–H16) and [`soft`] (S01–S24).
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
//! function for rule `Hnn`/`Snn` (in [`hard`] or [`soft`]) documents its magnitude. H15
//! (participant double booking) does not depend on the room and is checked once per slot by
//! the allocator.
//!
//! NOT MODELLED
//!
//! H14 counts blocks overlapping the slot, an upper bound of peak concurrency. S11 measures
//! utilisation over the whole snapshot (the booking day), not per session.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde::Serialize;
use uuid::Uuid;

mod hard;
mod soft;

use super::catalogue::*;
use super::ruleset::{Rule, RuleSet};
use super::score::Score;
use crate::domain::{Appointment, Isolation, Room};
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

    fn check(
        &self,
        rule: &Rule,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        match &rule.params {
            RuleParams::RoomActive(params) => self.h01_room_active(params, facts, detail),
            RuleParams::SameClinicSite(params) => self.h02_same_clinic_site(params, facts, detail),
            RuleParams::NoRoomOverlap(_) => self.h03_no_room_overlap(facts, detail, stats),
            RuleParams::WithinRoomHours(params) => self.h04_within_hours(params, facts, detail),
            RuleParams::RoomTypeAllowed(params) => {
                self.h05_room_type_allowed(params, facts, detail)
            }
            RuleParams::RequiredEquipment(params) => {
                self.h06_required_equipment(params, facts, detail)
            }
            RuleParams::Capacity(params) => self.h07_capacity(params, facts, detail),
            RuleParams::Accessibility(_) => self.h08_accessibility(facts, detail),
            RuleParams::AirborneIsolation(params) => {
                self.h09_airborne_isolation(params, facts, detail)
            }
            RuleParams::RoomGenderPolicy(_) => self.h10_gender_policy(facts, detail, stats),
            RuleParams::AgePolicy(_) => self.h11_age_policy(facts, detail),
            RuleParams::SpecialtyRestriction(_) => self.h12_specialty(facts, detail),
            RuleParams::ProhibitedTags(params) => self.h13_prohibited_tags(params, facts, detail),
            RuleParams::ConcurrentCapacity(_) => self.h14_concurrent_capacity(facts, detail, stats),
            RuleParams::ParticipantNoDoubleBooking(_) => 0,
            RuleParams::PinnedRoom(_) => self.h16_pinned_room(facts, detail),
            RuleParams::DoctorPreferredRoom(params) => {
                self.s01_preferred_room(params, facts, detail)
            }
            RuleParams::DoctorRoomStability(params) => {
                self.s02_room_stability(params, facts, detail)
            }
            RuleParams::WalkingDistance(params) => self.s03_walking_distance(params, facts, detail),
            RuleParams::DepartmentZoneMatch(_) => self.s04_zone_match(facts, detail),
            RuleParams::PreferredEquipment(_) => self.s05_preferred_equipment(facts, detail),
            RuleParams::SmallestSufficientRoom(params) => {
                self.s06_smallest_room(params, facts, detail)
            }
            RuleParams::AvoidScarceRoom(params) => self.s07_scarce_room(params, facts, detail),
            RuleParams::PrivateRoomPref(_) => self.s08_private_room(facts, detail),
            RuleParams::TurnoverSlack(params) => {
                self.s09_turnover_slack(params, facts, detail, stats)
            }
            RuleParams::GapFragmentation(params) => {
                self.s10_fragmentation(params, facts, detail, stats)
            }
            RuleParams::LoadBalance(params) => self.s11_load_balance(params, facts, detail),
            RuleParams::ConsolidateRooms(_) => self.s12_consolidate(facts, detail),
            RuleParams::ProviderRoomRatio(params) => self.s13_provider_rooms(params, facts, detail),
            RuleParams::PatientRoomContinuity(_) => self.s14_patient_continuity(facts, detail),
            RuleParams::MobilityNearEntrance(params) => {
                self.s15_mobility_entrance(params, facts, detail)
            }
            RuleParams::ImmunocompromisedSeparation(params) => {
                self.s16_immuno_separation(params, facts, detail, stats)
            }
            RuleParams::InfectiousNearExit(params) => {
                self.s17_infectious_exit(params, facts, detail)
            }
            RuleParams::AgeZonePref(params) => self.s18_age_zone(params, facts, detail),
            RuleParams::PrivacyRoom(params) => self.s19_privacy(params, facts, detail),
            RuleParams::NursePodMatch(_) => self.s20_nurse_pod(facts, detail),
            RuleParams::PreMaintenanceBuffer(params) => {
                self.s21_maintenance_buffer(params, facts, detail)
            }
            RuleParams::PublishedRoomStability(_) => self.s22_published_room(facts, detail),
            RuleParams::TelehealthCartPref(params) => self.s23_av_cart(params, facts, detail),
            RuleParams::WaitingAreaProximity(params) => {
                self.s24_waiting_area(params, facts, detail)
            }
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
