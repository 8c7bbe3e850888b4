//! The rule catalogue: every rule the engine knows, its code (`H06`), key
//! (`required_equipment`), kind, default weight and typed parameters.
//!
//! One table (the `catalogue!` invocation below) generates [`RuleId`] and [`RuleParams`], so a
//! rule cannot exist in one without the other. Parameters are plain structs with serde defaults
//! and `deny_unknown_fields`: a misspelt parameter is an error, not a silent default.
//! The meaning of each rule and its magnitude is documented where it is evaluated
//! (`rules/evaluation/`: `hard.rs`, `soft.rs`), and in
//! `../shared/reference/room-rules.md` §1.3–1.4.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::RoomStatus;

/// Hard rules filter rooms; soft rules rank the rooms that pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Hard,
    Soft,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Hard => "hard",
            RuleKind::Soft => "soft",
        }
    }
}

macro_rules! catalogue {
    ($( $variant:ident $code:literal $key:literal $kind:ident $weight:literal $params:ident; )*)
    => {
        /// One rule of the catalogue. Ordered by code (hard rules first), which is the
        /// evaluation and explanation order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId { $( $variant ),* }

        impl RuleId {
            /// Every rule, in evaluation order.
            pub const ALL: &'static [RuleId] = &[ $( RuleId::$variant ),* ];

            /// `H01` … `H16`, `S01` … `S24`.
            pub fn code(self) -> &'static str {
                match self { $( RuleId::$variant => $code ),* }
            }

            /// The snake_case key used in rule-set files.
            pub fn key(self) -> &'static str {
                match self { $( RuleId::$variant => $key ),* }
            }

            pub fn kind(self) -> RuleKind {
                match self { $( RuleId::$variant => RuleKind::$kind ),* }
            }

            /// The catalogue's proposed weight.
            pub fn default_weight(self) -> i64 {
                match self { $( RuleId::$variant => $weight ),* }
            }

            pub fn from_key(key: &str) -> Option<RuleId> {
                match key { $( $key => Some(RuleId::$variant), )* _ => None }
            }
        }

        /// The typed parameters of one rule; the variant names the rule.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum RuleParams { $( $variant($params) ),* }

        impl RuleParams {
            pub fn id(&self) -> RuleId {
                match self { $( RuleParams::$variant(_) => RuleId::$variant ),* }
            }

            /// The catalogue defaults for `id`.
            pub fn default_for(id: RuleId) -> RuleParams {
                match id { $( RuleId::$variant => RuleParams::$variant($params::default()) ),* }
            }

            /// Parses `value` as the parameters of `id`; the error carries the field path.
            pub(crate) fn parse(
                id: RuleId,
                value: serde_json::Value,
            ) -> Result<RuleParams, serde_path_to_error::Error<serde_json::Error>> {
                match id {
                    $( RuleId::$variant => {
                        serde_path_to_error::deserialize(value).map(RuleParams::$variant)
                    } )*
                }
            }

            pub(crate) fn to_value(&self) -> serde_json::Value {
                let value = match self {
                    $( RuleParams::$variant(p) => serde_json::to_value(p) ),*
                };
                value.expect("rule parameters serialize to JSON")
            }
        }
    };
}

catalogue! {
    RoomActive "H01" "room_active" Hard 100000 RoomActiveParams;
    SameClinicSite "H02" "same_clinic_site" Hard 100000 SameClinicSiteParams;
    NoRoomOverlap "H03" "no_room_overlap" Hard 1000 NoRoomOverlapParams;
    WithinRoomHours "H04" "within_room_hours" Hard 1000 WithinRoomHoursParams;
    RoomTypeAllowed "H05" "room_type_allowed" Hard 100 RoomTypeAllowedParams;
    RequiredEquipment "H06" "required_equipment" Hard 50 RequiredEquipmentParams;
    Capacity "H07" "capacity" Hard 50 CapacityParams;
    Accessibility "H08" "accessibility" Hard 100 NoParams;
    AirborneIsolation "H09" "airborne_isolation" Hard 1000 AirborneIsolationParams;
    RoomGenderPolicy "H10" "room_gender_policy" Hard 50 NoParams;
    AgePolicy "H11" "age_policy" Hard 100 NoParams;
    SpecialtyRestriction "H12" "specialty_restriction" Hard 50 NoParams;
    ProhibitedTags "H13" "prohibited_tags" Hard 100 ProhibitedTagsParams;
    ConcurrentCapacity "H14" "concurrent_capacity" Hard 1000 NoParams;
    ParticipantNoDoubleBooking "H15" "participant_no_double_booking" Hard 1000 ParticipantParams;
    PinnedRoom "H16" "pinned_room" Hard 100000 NoParams;
    DoctorPreferredRoom "S01" "doctor_preferred_room" Soft 10 PreferredRoomParams;
    DoctorRoomStability "S02" "doctor_room_stability" Soft 20 GapParams;
    WalkingDistance "S03" "walking_distance" Soft 1 DistanceParams;
    DepartmentZoneMatch "S04" "department_zone_match" Soft 15 NoParams;
    PreferredEquipment "S05" "preferred_equipment" Soft 20 NoParams;
    SmallestSufficientRoom "S06" "smallest_sufficient_room" Soft 1 CapacityParams;
    AvoidScarceRoom "S07" "avoid_scarce_room" Soft 15 ScarceParams;
    PrivateRoomPref "S08" "private_room_pref" Soft 8 NoParams;
    TurnoverSlack "S09" "turnover_slack" Soft 1 TurnoverSlackParams;
    GapFragmentation "S10" "gap_fragmentation" Soft 5 FragmentationParams;
    LoadBalance "S11" "load_balance" Soft 1 LoadBalanceParams;
    ConsolidateRooms "S12" "consolidate_rooms" Soft 30 NoParams;
    ProviderRoomRatio "S13" "provider_room_ratio" Soft 25 ProviderRoomRatioParams;
    PatientRoomContinuity "S14" "patient_room_continuity" Soft 10 NoParams;
    MobilityNearEntrance "S15" "mobility_near_entrance" Soft 1 DistanceParams;
    ImmunocompromisedSeparation "S16" "immunocompromised_separation" Soft 30 CleanWindowParams;
    InfectiousNearExit "S17" "infectious_end_of_day_or_exit" Soft 10 DistanceParams;
    AgeZonePref "S18" "age_zone_pref" Soft 10 AgeZoneParams;
    PrivacyRoom "S19" "privacy_room" Soft 15 PrivacyParams;
    NursePodMatch "S20" "nurse_pod_match" Soft 10 NoParams;
    PreMaintenanceBuffer "S21" "pre_maintenance_buffer" Soft 5 BufferParams;
    PublishedRoomStability "S22" "published_room_stability" Soft 50 NoParams;
    TelehealthCartPref "S23" "telehealth_cart_pref" Soft 10 CartParams;
    WaitingAreaProximity "S24" "waiting_area_proximity" Soft 1 WaitingAreaParams;
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.key())
    }
}

/// On the wire a rule is `"H06 required_equipment"`, as in explanations.
impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl RuleId {
    /// Whether the rule's magnitude can change with the slot's time. The others depend only
    /// on the room and the request, so the engine evaluates them once per room and request.
    pub fn depends_on_time(self) -> bool {
        use RuleId::*;
        matches!(
            self,
            RoomActive // closure windows
                | NoRoomOverlap
                | WithinRoomHours
                | RoomGenderPolicy // same-gender bays look at who is there
                | ConcurrentCapacity
                | ParticipantNoDoubleBooking
                | DoctorRoomStability
                | WalkingDistance
                | TurnoverSlack
                | GapFragmentation
                | LoadBalance
                | ProviderRoomRatio
                | ImmunocompromisedSeparation
                | PreMaintenanceBuffer
        )
    }
}

impl RuleParams {
    /// Values the types admit but the rules cannot use: zero divisors. Returns the field.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let positive = |field, value: u32| if value == 0 { Err(field) } else { Ok(()) };
        match self {
            RuleParams::WalkingDistance(p)
            | RuleParams::MobilityNearEntrance(p)
            | RuleParams::InfectiousNearExit(p) => positive("per_m", p.per_m),
            RuleParams::WaitingAreaProximity(p) => positive("per_m", p.per_m),
            RuleParams::LoadBalance(p) => positive("unit_minutes", p.unit_minutes),
            RuleParams::ImmunocompromisedSeparation(p) => positive("unit_minutes", p.unit_minutes),
            _ => Ok(()),
        }
    }
}

/// Number of hard rules in the catalogue.
pub const HARD_RULES_COUNT: usize = 16;
/// Number of soft rules in the catalogue.
pub const SOFT_RULES_COUNT: usize = 24;

const _: () = assert!(HARD_RULES_COUNT + SOFT_RULES_COUNT == 40);

/// For rules without parameters: only `{}` is accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// H01: which room statuses are bookable, and whether closure windows block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomActiveParams {
    pub statuses: Vec<RoomStatus>,
    pub check_closures: bool,
}

impl Default for RoomActiveParams {
    fn default() -> Self {
        RoomActiveParams { statuses: vec![RoomStatus::Active], check_closures: true }
    }
}

/// H02: whether a room of another clinic may be used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SameClinicSiteParams {
    pub allow_cross_site: bool,
}

/// H03: minimum turnover per room type, on top of the appointment type's own turnover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoRoomOverlapParams {
    pub turnover_minutes_by_room_type: BTreeMap<String, u32>,
}

impl Default for NoRoomOverlapParams {
    fn default() -> Self {
        let map = [("exam", 5), ("procedure", 15)];
        let map = map.iter().map(|&(room_type, minutes)| (room_type.to_string(), minutes));
        NoRoomOverlapParams { turnover_minutes_by_room_type: map.collect() }
    }
}

/// H04: which opening hours apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WithinRoomHoursParams {
    pub check_clinic_hours: bool,
    pub check_room_hours: bool,
}

impl Default for WithinRoomHoursParams {
    fn default() -> Self {
        WithinRoomHoursParams { check_clinic_hours: true, check_room_hours: true }
    }
}

/// H05: extra allowed room types per appointment type, on top of the type's own list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomTypeAllowedParams {
    pub extra_allowed: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentMatch {
    #[default]
    AllOf,
    AnyOf,
}

/// H06: how required equipment (type + request needs) must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequiredEquipmentParams {
    #[serde(rename = "match")]
    pub match_mode: EquipmentMatch,
}

/// H07 and S06: occupants = 1 patient + companions + staff + interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacityParams {
    pub staff_count: u32,
}

impl Default for CapacityParams {
    fn default() -> Self {
        CapacityParams { staff_count: 1 }
    }
}

/// H09: airborne isolation needs an AIIR with enough air changes; the room then stays empty
/// for a clearance time that depends on the air changes per hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AirborneIsolationParams {
    pub air_changes_per_hour_min: u32,
    /// Allow a room tagged `single_room` (door closed) when no AIIR fits.
    pub fallback_single_room_door_closed: bool,
    /// 99.9 % removal at 6 ACH.
    pub clear_minutes_at_6_ach: u32,
    /// 99.9 % removal at 12 ACH or more.
    pub clear_minutes_at_12_ach: u32,
}

impl Default for AirborneIsolationParams {
    fn default() -> Self {
        AirborneIsolationParams {
            air_changes_per_hour_min: 6,
            fallback_single_room_door_closed: false,
            clear_minutes_at_6_ach: 69,
            clear_minutes_at_12_ach: 35,
        }
    }
}

/// One H13 pair: a room tag that prohibits a visit tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProhibitedPair {
    pub room_tag: String,
    pub prohibits: String,
}

/// H13: room tags that prohibit visit tags (patient tags, appointment-type tags, and the
/// derived tags `infectious`, `airborne`, `immunocompromised`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProhibitedTagsParams {
    pub pairs: Vec<ProhibitedPair>,
}

impl Default for ProhibitedTagsParams {
    fn default() -> Self {
        let pair = |room_tag: &str, prohibits: &str| ProhibitedPair {
            room_tag: room_tag.into(),
            prohibits: prohibits.into(),
        };
        ProhibitedTagsParams {
            pairs: vec![
                pair("sterile_procedure", "infectious"),
                pair("mri_zone", "implant_unsafe"),
            ],
        }
    }
}

/// H15: which participants must not be double-booked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParticipantParams {
    pub check_doctor: bool,
    pub check_patient: bool,
}

impl Default for ParticipantParams {
    fn default() -> Self {
        ParticipantParams { check_doctor: true, check_patient: true }
    }
}

/// S01: magnitude is rank − 1 for listed rooms, `unlisted_magnitude` otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreferredRoomParams {
    pub unlisted_magnitude: u32,
}

impl Default for PreferredRoomParams {
    fn default() -> Self {
        PreferredRoomParams { unlisted_magnitude: 3 }
    }
}

/// S02: consecutive appointments closer than this count as "consecutive".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GapParams {
    pub gap_minutes: u32,
}

impl Default for GapParams {
    fn default() -> Self {
        GapParams { gap_minutes: 30 }
    }
}

/// S03, S15, S17: magnitude is metres / `per_m`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistanceParams {
    pub per_m: u32,
}

impl Default for DistanceParams {
    fn default() -> Self {
        DistanceParams { per_m: 10 }
    }
}

/// S07: scarce features a visit should not use needlessly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScarceParams {
    pub scarce_room_types: Vec<String>,
    pub aiir: bool,
    pub accessible: bool,
}

impl Default for ScarceParams {
    fn default() -> Self {
        ScarceParams { scarce_room_types: vec!["procedure".into()], aiir: true, accessible: true }
    }
}

/// S09: minutes of slack wanted before and after, beyond turnover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnoverSlackParams {
    pub pref_gap_minutes: u32,
}

impl Default for TurnoverSlackParams {
    fn default() -> Self {
        TurnoverSlackParams { pref_gap_minutes: 10 }
    }
}

/// S10: a leftover gap shorter than this is unbookable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FragmentationParams {
    pub min_bookable_minutes: u32,
}

impl Default for FragmentationParams {
    fn default() -> Self {
        FragmentationParams { min_bookable_minutes: 15 }
    }
}

/// S11: utilisation is counted in units of `unit_minutes`; magnitude (u+d)² − u².
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadBalanceParams {
    pub unit_minutes: u32,
}

impl Default for LoadBalanceParams {
    fn default() -> Self {
        LoadBalanceParams { unit_minutes: 30 }
    }
}

/// S13: rooms a doctor may hold within `session_minutes` of the slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderRoomRatioParams {
    pub max_rooms: u32,
    pub max_rooms_by_specialty: BTreeMap<String, u32>,
    pub session_minutes: u32,
}

impl Default for ProviderRoomRatioParams {
    fn default() -> Self {
        ProviderRoomRatioParams {
            max_rooms: 2,
            max_rooms_by_specialty: [("dermatology".to_string(), 3)].into_iter().collect(),
            session_minutes: 60,
        }
    }
}

/// S16: an immunocompromised patient wants `clean_window_minutes` since the last infectious
/// use; magnitude is the shortfall in units of `unit_minutes` (rounded up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanWindowParams {
    pub clean_window_minutes: u32,
    pub unit_minutes: u32,
}

impl Default for CleanWindowParams {
    fn default() -> Self {
        CleanWindowParams { clean_window_minutes: 120, unit_minutes: 10 }
    }
}

/// S18: children (age ≤ `child_age_max_years`) belong in rooms tagged `paediatric_tag`,
/// adults outside them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgeZoneParams {
    pub child_age_max_years: u32,
    pub paediatric_tag: String,
}

impl Default for AgeZoneParams {
    fn default() -> Self {
        AgeZoneParams { child_age_max_years: 15, paediatric_tag: "paediatric".into() }
    }
}

/// S19: a sensitive visit wants a room with any of these tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyParams {
    pub room_tags: Vec<String>,
}

impl Default for PrivacyParams {
    fn default() -> Self {
        PrivacyParams { room_tags: vec!["soundproof".into(), "ensuite_changing".into()] }
    }
}

/// S21: minutes wanted between the blocked end and the next maintenance block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferParams {
    pub buffer_minutes: u32,
}

impl Default for BufferParams {
    fn default() -> Self {
        BufferParams { buffer_minutes: 15 }
    }
}

/// S23: the equipment tag of the audio-video cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartParams {
    pub cart_tag: String,
}

impl Default for CartParams {
    fn default() -> Self {
        CartParams { cart_tag: "av_cart".into() }
    }
}

/// S24: patients at least `elderly_age_min_years` old want a short walk from check-in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WaitingAreaParams {
    pub elderly_age_min_years: u32,
    pub per_m: u32,
}

impl Default for WaitingAreaParams {
    fn default() -> Self {
        WaitingAreaParams { elderly_age_min_years: 75, per_m: 10 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_16_hard_then_24_soft_rules_with_unique_codes_and_keys() {
        let hard = RuleId::ALL.iter().filter(|r| r.kind() == RuleKind::Hard).count();
        let soft = RuleId::ALL.iter().filter(|r| r.kind() == RuleKind::Soft).count();
        assert_eq!((hard, soft), (HARD_RULES_COUNT, SOFT_RULES_COUNT));
        let codes: std::collections::BTreeSet<_> = RuleId::ALL.iter().map(|r| r.code()).collect();
        let keys: std::collections::BTreeSet<_> = RuleId::ALL.iter().map(|r| r.key()).collect();
        assert_eq!(codes.len(), 40);
        assert_eq!(keys.len(), 40);
        for (index, rule) in RuleId::ALL.iter().enumerate() {
            assert_eq!(RuleId::from_key(rule.key()), Some(*rule));
            assert_eq!(RuleParams::default_for(*rule).id(), *rule);
            let expected = if index < HARD_RULES_COUNT { 'H' } else { 'S' };
            assert!(rule.code().starts_with(expected), "{} out of order", rule.code());
        }
    }
}
