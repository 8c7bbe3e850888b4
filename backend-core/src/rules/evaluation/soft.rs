//! The soft rules S01–S24: preferences that rank the feasible rooms. Each adds
//! `weight × magnitude` to the soft penalty; the method of each rule documents its magnitude.
//! Each method takes the rule's parameters, the slot's facts, the detail text to write when
//! explaining (see `hit`) and, for rules that walk a room's timeline, the work counters.

use crate::rules::catalogue::*;
use crate::schedule::{EvalStats, MINUTE_US};

use super::{EvalContext, SlotFacts, Visit, hit, per_metres};

impl EvalContext<'_> {
    /// S01: magnitude = rank − 1 in the doctor's ranked list, `unlisted_magnitude` if absent
    /// (0 when the doctor ranks no rooms).
    pub(super) fn s01_preferred_room(
        &self,
        params: &PreferredRoomParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let ranked = &self.snapshot.doctor.preferred_rooms;
        if ranked.is_empty() {
            return 0;
        }
        match ranked.iter().position(|id| *id == facts.room.id) {
            Some(rank) => {
                hit(rank as i64, detail, || format!("rank {} of {}", rank + 1, ranked.len()))
            }
            None => hit(i64::from(params.unlisted_magnitude), detail, || {
                "not in the doctor's list".into()
            }),
        }
    }

    /// The doctor's appointments just before and just after the slot.
    fn doctor_neighbours(&self, facts: &SlotFacts) -> (Option<Visit>, Option<Visit>) {
        let index = self.doctor_visits.partition_point(|v| v.start_us < facts.start_us);
        let before = index.checked_sub(1).map(|i| self.doctor_visits[i]);
        (before, self.doctor_visits.get(index).copied())
    }

    /// S02: magnitude = consecutive doctor appointments (gap ≤ `gap_minutes`) in another room.
    pub(super) fn s02_room_stability(
        &self,
        params: &GapParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let gap_max = i64::from(params.gap_minutes);
        let (before, after) = self.doctor_neighbours(facts);
        let moved = |visit: Option<Visit>, gap_us: fn(&Visit, &SlotFacts) -> i64| {
            visit.is_some_and(|v| {
                let elsewhere = v.room_id.is_some_and(|room| room != facts.room.id);
                elsewhere && gap_us(&v, facts) / MINUTE_US <= gap_max
            })
        };
        let before_moved = moved(before, |v, facts| facts.start_us - v.end_us);
        let after_moved = moved(after, |v, facts| v.start_us - facts.end_us);
        let magnitude = i64::from(before_moved) + i64::from(after_moved);
        hit(magnitude, detail, || {
            format!("doctor changes room {magnitude} time(s) around this visit")
        })
    }

    /// S03: magnitude = metres walked from the doctor's previous room and to the next one,
    /// divided by `per_m`.
    pub(super) fn s03_walking_distance(
        &self,
        params: &DistanceParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let (before, after) = self.doctor_neighbours(facts);
        let distance_m = |visit: Option<Visit>| {
            let room_id = visit.and_then(|v| v.room_id);
            let index = room_id.and_then(|id| self.room_index(id));
            index.map_or(0, |i| i64::from(self.snapshot.rooms[i].distance_to_m(facts.room)))
        };
        let metres = distance_m(before) + distance_m(after);
        hit(per_metres(metres, params.per_m), detail, || format!("doctor walks {metres} m"))
    }

    /// S04: the room is outside the doctor's zone.
    pub(super) fn s04_zone_match(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let zone = &self.snapshot.doctor.zone;
        let outside = !zone.is_empty() && *zone != facts.room.zone;
        hit(i64::from(outside), detail, || {
            format!("zone {} is not the doctor's {zone}", facts.room.zone)
        })
    }

    /// S05: magnitude = preferred equipment tags the room lacks.
    pub(super) fn s05_preferred_equipment(
        &self,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let preferred = &self.snapshot.appointment_type.preferred_equipment;
        let missing = preferred.iter().filter(|tag| !facts.room.equipment.contains(*tag));
        hit(missing.clone().count() as i64, detail, || {
            let tags: Vec<&str> = missing.map(String::as_str).collect();
            format!("lacks preferred {}", tags.join(", "))
        })
    }

    /// S06: magnitude = spare capacity (capacity − occupants).
    pub(super) fn s06_smallest_room(
        &self,
        params: &CapacityParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let needed = i64::from(self.occupants_without_staff + params.staff_count);
        let spare = (i64::from(facts.room.capacity) - needed).max(0);
        hit(spare, detail, || format!("capacity {} > needed {needed}", facts.room.capacity))
    }

    /// S07: magnitude = scarce features the room has and the visit does not need.
    pub(super) fn s07_scarce_room(
        &self,
        params: &ScarceParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let room = facts.room;
        let allowed = &self.snapshot.appointment_type.allowed_room_types;
        let scarce_type = params.scarce_room_types.contains(&room.room_type)
            && (allowed.is_empty()
                || allowed.iter().any(|t| !params.scarce_room_types.contains(t)));
        let unused_aiir = params.aiir && room.aiir && !self.airborne;
        let unused_access = params.accessible && room.accessible && !self.needs_accessible;
        let magnitude = i64::from(scarce_type) + i64::from(unused_aiir) + i64::from(unused_access);
        hit(magnitude, detail, || format!("uses {magnitude} scarce feature(s) it does not need"))
    }

    /// S08: a visit asking for privacy lands in a shared (multi-chair) room.
    pub(super) fn s08_private_room(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let shared = self.request.needs.private_room && facts.room.chairs_effective() > 1;
        hit(i64::from(shared), detail, || format!("room {} is shared", facts.room.name))
    }

    /// The blocks before and after the slot in this room, and the gaps to them in minutes.
    fn room_gaps(&self, facts: &SlotFacts, stats: &mut EvalStats) -> (Option<i64>, Option<i64>) {
        let (before, after) = self.timelines[facts.room_index].neighbours(facts.start_us, stats);
        let gap_before = before.map(|b| (facts.start_us - b.blocked_end_us) / MINUTE_US);
        let gap_after = after.map(|b| (b.start_us - facts.blocked_end_us) / MINUTE_US);
        (gap_before, gap_after)
    }

    /// S09: magnitude = minutes short of `pref_gap_minutes` before and after.
    pub(super) fn s09_turnover_slack(
        &self,
        params: &TurnoverSlackParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        let wanted = i64::from(params.pref_gap_minutes);
        let (before, after) = self.room_gaps(facts, stats);
        let short = |gap: Option<i64>| gap.map_or(0, |gap| (wanted - gap.max(0)).max(0));
        let magnitude = short(before) + short(after);
        hit(magnitude, detail, || format!("{magnitude} min short of {wanted} min slack"))
    }

    /// S10: magnitude = leftover gaps shorter than `min_bookable_minutes` the slot creates.
    pub(super) fn s10_fragmentation(
        &self,
        params: &FragmentationParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        let (before, after) = self.room_gaps(facts, stats);
        let min = i64::from(params.min_bookable_minutes);
        let small = |gap: Option<i64>| i64::from(gap.is_some_and(|gap| gap > 0 && gap < min));
        let magnitude = small(before) + small(after);
        hit(magnitude, detail, || format!("leaves {magnitude} gap(s) under {min} min"))
    }

    /// S11: utilisation in units of `unit_minutes`; magnitude = (u + d)² − u².
    pub(super) fn s11_load_balance(
        &self,
        params: &LoadBalanceParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let unit = i64::from(params.unit_minutes.max(1));
        let used = self.busy_minutes[facts.room_index] / unit;
        let added = (facts.blocked_end_us - facts.start_us) / MINUTE_US / unit;
        // (u + d)² − u² = d (2u + d): no cancellation, saturating on absurd data.
        let magnitude = added.saturating_mul(used.saturating_mul(2).saturating_add(added));
        hit(magnitude, detail, || {
            format!("room already busy {} min", self.busy_minutes[facts.room_index])
        })
    }

    /// S12: the room has no appointment yet in the snapshot (opens a room).
    pub(super) fn s12_consolidate(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let unused = self.timelines[facts.room_index].blocks().is_empty();
        hit(i64::from(unused), detail, || format!("opens room {}", facts.room.name))
    }

    /// S13: magnitude = rooms beyond the doctor's limit held within `session_minutes`.
    pub(super) fn s13_provider_rooms(
        &self,
        params: &ProviderRoomRatioParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let doctor = &self.snapshot.doctor;
        let max = params
            .max_rooms_by_specialty
            .get(&doctor.specialty)
            .copied()
            .unwrap_or(params.max_rooms);
        let window_us = i64::from(params.session_minutes) * MINUTE_US;
        let (from_us, to_us) = (facts.start_us - window_us, facts.end_us + window_us);
        // A doctor has few visits a day: scan them all (sorted, so stop after the window).
        let in_session = self.doctor_visits.iter().take_while(|v| v.start_us < to_us);
        let other_rooms = in_session.filter(|v| v.end_us > from_us).filter_map(|v| v.room_id);
        // Distinct rooms other than this one, without allocating: count first occurrences.
        let mut rooms_count: i64 = 1;
        for (position, room) in other_rooms.clone().enumerate() {
            let seen = other_rooms.clone().take(position).any(|earlier| earlier == room);
            rooms_count += i64::from(room != facts.room.id && !seen);
        }
        let excess = (rooms_count - i64::from(max)).max(0);
        hit(excess, detail, || format!("doctor would hold {rooms_count} rooms (limit {max})"))
    }

    /// S14: the room differs from the patient's last room in the series.
    pub(super) fn s14_patient_continuity(
        &self,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let last = self.snapshot.patient_last_room_id;
        let moved = last.is_some_and(|last| last != facts.room.id);
        hit(i64::from(moved), detail, || "not the patient's previous room".into())
    }

    /// S15: mobility-flagged patients: magnitude = metres to the entrance / `per_m`.
    pub(super) fn s15_mobility_entrance(
        &self,
        params: &DistanceParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        if !self.needs_accessible {
            return 0;
        }
        let metres = i64::from(facts.room.distance_to_entrance_m);
        hit(per_metres(metres, params.per_m), detail, || format!("{metres} m from the entrance"))
    }

    /// S16: immunocompromised patients: magnitude = shortfall of the clean window since the
    /// room's last infectious use, in `unit_minutes` (rounded up).
    pub(super) fn s16_immuno_separation(
        &self,
        params: &CleanWindowParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
        stats: &mut EvalStats,
    ) -> i64 {
        if !self.snapshot.patient.immunocompromised || params.clean_window_minutes == 0 {
            return 0;
        }
        let since_us = facts.start_us - i64::from(params.clean_window_minutes) * MINUTE_US;
        let timeline = &self.timelines[facts.room_index];
        let recent = timeline
            .overlapping(since_us, facts.start_us, stats)
            .filter(|b| self.snapshot.appointments[b.appointment_index as usize].infectious);
        let last_end_us = recent.map(|b| b.blocked_end_us).max();
        let short = last_end_us.map_or(0, |end_us| ((end_us - since_us) / MINUTE_US).max(0));
        let unit = i64::from(params.unit_minutes.max(1));
        hit((short + unit - 1) / unit, detail, || {
            format!("infectious use {short} min inside the clean window")
        })
    }

    /// S17: infectious patients: magnitude = extra metres to the exit compared with the
    /// clinic's nearest room, / `per_m`.
    pub(super) fn s17_infectious_exit(
        &self,
        params: &DistanceParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        if !self.infectious {
            return 0;
        }
        let extra = facts.room.distance_to_entrance_m.saturating_sub(self.entrance_distance_m_min);
        let magnitude = per_metres(i64::from(extra), params.per_m);
        hit(magnitude, detail, || format!("{extra} m further from the exit than the nearest room"))
    }

    /// S18: a child outside a paediatric room, or an adult inside one.
    pub(super) fn s18_age_zone(
        &self,
        params: &AgeZoneParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let child = self.snapshot.patient.age_years <= params.child_age_max_years;
        let paediatric = facts.room.tags.contains(&params.paediatric_tag);
        hit(i64::from(child != paediatric), detail, || {
            let who = if child { "child" } else { "adult" };
            format!("{who} in room {} (paediatric: {paediatric})", facts.room.name)
        })
    }

    /// S19: a sensitive visit in a room without any privacy tag.
    pub(super) fn s19_privacy(
        &self,
        params: &PrivacyParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let sensitive = self.snapshot.appointment_type.sensitive;
        let private = params.room_tags.iter().any(|tag| facts.room.tags.contains(tag));
        hit(i64::from(sensitive && !private), detail, || {
            format!("room {} lacks privacy", facts.room.name)
        })
    }

    /// S20: the room is outside the assigned nurse's pod.
    pub(super) fn s20_nurse_pod(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let pod = self.request.needs.nurse_pod.as_ref();
        let outside = pod.is_some_and(|pod| *pod != facts.room.zone);
        hit(i64::from(outside), detail, || {
            format!("zone {} is outside the nurse's pod", facts.room.zone)
        })
    }

    /// S21: magnitude = minutes short of `buffer_minutes` before the next closure window.
    pub(super) fn s21_maintenance_buffer(
        &self,
        params: &BufferParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        if facts.room.closures.is_empty() {
            return 0;
        }
        let buffer = i64::from(params.buffer_minutes);
        let blocked_end = facts.blocked_end();
        let next =
            facts.room.closures.iter().filter(|c| c.start >= blocked_end).map(|c| c.start).min();
        let gap = next.map(|start| (start - blocked_end).num_minutes());
        let short = gap.map_or(0, |gap| (buffer - gap).max(0));
        hit(short, detail, || {
            format!("maintenance starts {} min after the visit", gap.unwrap_or(0))
        })
    }

    /// S22: a rescheduled visit moves away from the room the patient was told.
    pub(super) fn s22_published_room(&self, facts: &SlotFacts, detail: Option<&mut String>) -> i64 {
        let previous = self.request.previous_room_id;
        let moved = previous.is_some_and(|previous| previous != facts.room.id);
        hit(i64::from(moved), detail, || "moves the visit away from its published room".into())
    }

    /// S23: interpreter or video visits in a room without the AV cart.
    pub(super) fn s23_av_cart(
        &self,
        params: &CartParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        let wants = self.request.needs.interpreter || self.request.needs.video;
        let missing = wants && !facts.room.equipment.contains(&params.cart_tag);
        hit(i64::from(missing), detail, || {
            format!("room {} has no {}", facts.room.name, params.cart_tag)
        })
    }

    /// S24: elderly patients: magnitude = metres from check-in / `per_m`.
    pub(super) fn s24_waiting_area(
        &self,
        params: &WaitingAreaParams,
        facts: &SlotFacts,
        detail: Option<&mut String>,
    ) -> i64 {
        if self.snapshot.patient.age_years < params.elderly_age_min_years {
            return 0;
        }
        let metres = i64::from(facts.room.distance_to_checkin_m);
        hit(per_metres(metres, params.per_m), detail, || format!("{metres} m from check-in"))
    }
}
