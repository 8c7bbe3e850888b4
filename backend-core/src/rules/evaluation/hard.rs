//! The hard rules H01–H16 (H15, participant double booking, is the allocator's: it does not
//! depend on the room). A hard rule filters rooms: any magnitude above 0 makes the room
//! infeasible. Magnitude 1 per violated condition unless stated. Each method takes the rule's
//! parameters, the slot's facts, the detail text to write when explaining (see `hit`) and, for
//! rules that walk a room's timeline, the work counters.

use crate::domain::{Gender, GenderPolicy};
use crate::rules::catalogue::*;
use crate::schedule::{Block, EvalStats, from_epoch_us};

use super::{EvalContext, SlotFacts, hhmm, hit};

impl EvalContext<'_> {
    /// H01: the room's status is bookable and no closure window overlaps the blocked range.
    pub(super) fn h01_room_active(
        &self,
        params: &RoomActiveParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let room = facts.room;
        if !params.statuses.contains(&room.status) {
            return hit(1, detail, || format!("room {} is {:?}", room.name, room.status));
        }
        if !params.check_closures {
            return 0;
        }
        if room.closures.is_empty() {
            return 0;
        }
        let blocked_end = facts.blocked_end();
        let closed = room.closures.iter().find(|c| c.overlaps(facts.slot.start, blocked_end));
        let magnitude = i64::from(closed.is_some());
        hit(magnitude, detail, || {
            let c = closed.expect("closure found");
            format!("room {} closed {}–{} ({})", room.name, hhmm(c.start), hhmm(c.end), c.reason)
        })
    }

    /// H02: the room belongs to the requested clinic.
    pub(super) fn h02_same_clinic_site(
        &self,
        params: &SameClinicSiteParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let foreign = facts.room.clinic_id != self.request.clinic_id && !params.allow_cross_site;
        hit(i64::from(foreign), detail, || {
            format!("room {} belongs to another clinic", facts.room.name)
        })
    }

    /// H03: magnitude = number of room-blocking appointments the blocked range overlaps
    /// (single-occupancy rooms; multi-chair rooms are H14's).
    pub(super) fn h03_no_room_overlap(
        &self,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        if facts.room.chairs_effective() > 1 {
            return 0;
        }
        let timeline = &self.timelines[facts.room_index];
        let mut first: Option<Block> = None;
        let mut count = 0;
        for block in timeline.overlapping(facts.start_us, facts.blocked_end_us, stats) {
            first.get_or_insert(*block);
            count += 1;
        }
        hit(count, detail, || {
            let b = first.expect("a conflicting block");
            let id = self.snapshot.appointments[b.appointment_index as usize].id;
            format!(
                "room {} busy {}–{} (blocked to {}) with appointment {id}",
                facts.room.name,
                hhmm(from_epoch_us(b.start_us)),
                hhmm(from_epoch_us(b.end_us)),
                hhmm(from_epoch_us(b.blocked_end_us))
            )
        })
    }

    /// H04: the slot lies within the clinic's and the room's opening hours and outside clinic
    /// closures.
    pub(super) fn h04_within_hours(
        &self,
        params: &WithinRoomHoursParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let clinic = &self.snapshot.clinic;
        let (start, end) = (facts.slot.start, facts.slot.end);
        let mut magnitude = 0;
        if params.check_clinic_hours {
            magnitude += i64::from(!clinic.opening_hours.covers(start, end));
            magnitude += i64::from(clinic.closures.iter().any(|c| c.overlaps(start, end)));
        }
        if params.check_room_hours {
            let room_hours = facts.room.opening_hours.as_ref();
            magnitude += i64::from(room_hours.is_some_and(|hours| !hours.covers(start, end)));
        }
        hit(magnitude, detail, || {
            format!(
                "{}–{} is outside the opening hours of room {}",
                hhmm(start),
                hhmm(end),
                facts.room.name
            )
        })
    }

    /// H05: the room type is allowed for the appointment type (empty list: any type).
    pub(super) fn h05_room_type_allowed(
        &self,
        params: &RoomTypeAllowedParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let kind = &self.snapshot.appointment_type;
        let extra = params.extra_allowed.get(&kind.key).map(Vec::as_slice).unwrap_or_default();
        if kind.allowed_room_types.is_empty() && extra.is_empty() {
            return 0;
        }
        let room_type = &facts.room.room_type;
        let allowed = kind.allowed_room_types.contains(room_type) || extra.contains(room_type);
        hit(i64::from(!allowed), detail, || {
            format!("room type {room_type} is not allowed for {}", kind.key)
        })
    }

    /// H06: magnitude = missing required tags (`all_of`), or 1 when none is present
    /// (`any_of`). Required = the type's tags plus the request's needs.
    pub(super) fn h06_required_equipment(
        &self,
        params: &RequiredEquipmentParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let equipment = &facts.room.equipment;
        let missing = self.required_equipment.iter().filter(|tag| !equipment.contains(**tag));
        let missing_count = missing.clone().count() as i64;
        let magnitude = match params.match_mode {
            EquipmentMatch::AllOf => missing_count,
            EquipmentMatch::AnyOf => {
                let required = self.required_equipment.len() as i64;
                i64::from(required > 0 && missing_count == required)
            }
        };
        hit(magnitude, detail, || {
            let tags: Vec<&str> = missing.copied().collect();
            format!("room {} lacks required equipment: {}", facts.room.name, tags.join(", "))
        })
    }

    /// H07: magnitude = occupants beyond the room's capacity.
    pub(super) fn h07_capacity(
        &self,
        params: &CapacityParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let needed = self.occupants_without_staff + params.staff_count;
        let shortfall = i64::from(needed) - i64::from(facts.room.capacity);
        hit(shortfall.max(0), detail, || {
            format!(
                "room {} holds {}, the visit needs {needed}",
                facts.room.name, facts.room.capacity
            )
        })
    }

    /// H08: a patient who needs an accessible room gets one.
    pub(super) fn h08_accessibility(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let violated = self.needs_accessible && !facts.room.accessible;
        hit(i64::from(violated), detail, || format!("room {} is not accessible", facts.room.name))
    }

    /// H09: an airborne-isolation patient gets a negative-pressure room with enough air changes
    /// (or, if allowed, a room tagged `single_room`).
    pub(super) fn h09_airborne_isolation(
        &self,
        params: &AirborneIsolationParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        if !self.airborne {
            return 0;
        }
        let room = facts.room;
        let aiir = room.aiir && room.air_changes_per_hour >= params.air_changes_per_hour_min;
        let fallback = params.fallback_single_room_door_closed && room.tags.contains("single_room");
        hit(i64::from(!aiir && !fallback), detail, || {
            format!(
                "room {} is not an airborne isolation room with ≥{} air changes per hour",
                room.name, params.air_changes_per_hour_min
            )
        })
    }

    /// H10: male/female-only rooms; same-gender bays: magnitude = overlapping appointments
    /// of patients of another (known) gender.
    pub(super) fn h10_gender_policy(
        &self,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        let gender = self.snapshot.patient.gender;
        let magnitude = match facts.room.gender_policy {
            GenderPolicy::Any => 0,
            GenderPolicy::MaleOnly => i64::from(gender != Gender::Male),
            GenderPolicy::FemaleOnly => i64::from(gender != Gender::Female),
            GenderPolicy::SameGender => {
                let timeline = &self.timelines[facts.room_index];
                let others =
                    timeline.overlapping(facts.start_us, facts.blocked_end_us, stats).filter(|b| {
                        let other =
                            self.snapshot.appointments[b.appointment_index as usize].patient_gender;
                        other.is_some_and(|other| other != gender)
                    });
                others.count() as i64
            }
        };
        hit(magnitude, detail, || {
            format!(
                "room {} is {:?}; patient is {gender:?}",
                facts.room.name, facts.room.gender_policy
            )
        })
    }

    /// H11: the patient's age lies within the room's min/max age.
    pub(super) fn h11_age_policy(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let age = self.snapshot.patient.age_years;
        let too_young = facts.room.min_age_years.is_some_and(|min| age < min);
        let too_old = facts.room.max_age_years.is_some_and(|max| age > max);
        hit(i64::from(too_young || too_old), detail, || {
            format!(
                "room {} is for ages {:?}–{:?}; patient is {age}",
                facts.room.name, facts.room.min_age_years, facts.room.max_age_years
            )
        })
    }

    /// H12: the doctor's specialty is allowed (if the room lists any) and not prohibited.
    pub(super) fn h12_specialty(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let specialty = &self.snapshot.doctor.specialty;
        let room = facts.room;
        let not_allowed =
            !room.allowed_specialties.is_empty() && !room.allowed_specialties.contains(specialty);
        let prohibited = room.prohibited_specialties.contains(specialty);
        hit(i64::from(not_allowed || prohibited), detail, || {
            format!("room {} is not available to specialty {specialty}", room.name)
        })
    }

    /// H13: magnitude = (room tag, visit tag) pairs that prohibit this visit.
    pub(super) fn h13_prohibited_tags(
        &self,
        params: &ProhibitedTagsParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let clashes = params.pairs.iter().filter(|pair| {
            facts.room.tags.contains(&pair.room_tag)
                && self.visit_tags.contains(pair.prohibits.as_str())
        });
        hit(clashes.clone().count() as i64, detail, || {
            let pair = clashes.clone().next().expect("a clash");
            format!(
                "room {} is {}, which prohibits {}",
                facts.room.name, pair.room_tag, pair.prohibits
            )
        })
    }

    /// H14: multi-chair rooms: magnitude = overlapping appointments − chairs + 1 when full.
    pub(super) fn h14_concurrent_capacity(
        &self,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        let chairs = facts.room.chairs_effective();
        if chairs <= 1 {
            return 0;
        }
        let timeline = &self.timelines[facts.room_index];
        let concurrent =
            timeline.overlapping(facts.start_us, facts.blocked_end_us, stats).count() as i64;
        let excess = concurrent - i64::from(chairs) + 1;
        hit(excess.max(0), detail, || {
            format!(
                "room {} has all {chairs} chairs taken at {}",
                facts.room.name,
                hhmm(facts.slot.start)
            )
        })
    }

    /// H16: a pinned request may only use its pinned room.
    pub(super) fn h16_pinned_room(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let pinned = self.request.room_id;
        let other = pinned.is_some_and(|pinned| pinned != facts.room.id);
        hit(i64::from(other), detail, || {
            format!("the request pins room {}", pinned.expect("pinned room"))
        })
    }
}
