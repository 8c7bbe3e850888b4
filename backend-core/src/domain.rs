//! The clinic domain: clinics, rooms, doctors, patients, appointment types, appointments and
//! booking requests, plus the injected sources of time and identity.
//!
//! WHAT IT IS
//!
//! Plain data with serde on everything that crosses HTTP or lives in a scenario file. The rules
//! engine and the allocator are pure functions over these types; the booking transactions store
//! them. Times are `chrono::DateTime<Utc>`, every interval is half-open `[start, end)`, and ids
//! are `uuid::Uuid`.
//!
//! INJECTED TIME AND IDS
//!
//! Library code never reads the wall clock or draws random ids: callers pass a [`Clock`] and an
//! [`IdSource`]. Production uses [`SystemClock`] and [`RandomIds`]; the simulation supplies its
//! simulated clock and a seeded generator; tests use [`ManualClock`] and [`SequentialIds`].
//!
//! VALIDATION
//!
//! [`BookingRequest::validate`] checks what can be checked without the database (time order,
//! duration limits, string and list sizes) and returns a [`ValidationError`] naming the field.
//! Existence checks (unknown clinic, a room of another clinic) need the database and belong to
//! the booking layer.
//!
//! NOT MODELLED
//!
//! Clinic time zones: opening hours are minutes after midnight UTC. Recurring series, holidays
//! other than explicit closure windows, and slots that cross midnight are not modelled.

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest accepted booking.
pub const BOOKING_DURATION_MINUTES_MAX: i64 = 12 * 60;
/// Longest accepted free-text name or key (bytes).
pub const NAME_BYTES_MAX: usize = 200;
/// Longest accepted tag or appointment-type key (bytes).
pub const KEY_BYTES_MAX: usize = 64;
/// Most equipment tags a request may name.
pub const NEEDS_EQUIPMENT_COUNT_MAX: usize = 32;
/// Most companions a request may bring.
pub const COMPANIONS_COUNT_MAX: u32 = 20;
/// Minutes in a day: the exclusive upper bound of an opening-hours minute.
pub const DAY_MINUTES: u16 = 24 * 60;

/// One day's opening window, in minutes after midnight UTC, half-open `[open, close)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayHours {
    pub weekday: Weekday,
    pub open_minute: u16,
    pub close_minute: u16,
}

/// A weekly schedule. An empty list means "always open" (no restriction).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningHours {
    #[serde(default)]
    pub days: Vec<DayHours>,
}

impl OpeningHours {
    /// Open every day from `open_minute` to `close_minute`.
    pub fn daily(open_minute: u16, close_minute: u16) -> Self {
        assert!(open_minute < close_minute, "opening hours must open before they close");
        assert!(close_minute <= DAY_MINUTES, "close_minute past midnight");
        let weekdays = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ];
        let days = weekdays.iter().map(|&weekday| DayHours { weekday, open_minute, close_minute });
        OpeningHours { days: days.collect() }
    }

    /// Whether `[start, end)` lies inside one day's opening window.
    pub fn covers(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        if self.days.is_empty() {
            return true;
        }
        let start_minute = minute_of_day(start);
        let day_start = start - Duration::minutes(i64::from(start_minute));
        let end_minute = (end - day_start).num_minutes();
        self.days.iter().any(|day| {
            day.weekday == start.weekday()
                && start_minute >= day.open_minute
                && end_minute <= i64::from(day.close_minute)
        })
    }
}

/// Minutes after midnight UTC (seconds are ignored).
pub fn minute_of_day(at: DateTime<Utc>) -> u16 {
    let minute = at.hour() * 60 + at.minute();
    u16::try_from(minute).expect("minute of day fits u16")
}

/// A half-open `[start, end)` window: a closure, a maintenance block, a holiday.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub reason: String,
}

impl TimeWindow {
    /// Whether the window intersects `[start, end)`.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start < end && start < self.end
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clinic {
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub opening_hours: OpeningHours,
    /// Whole-clinic closures (holidays, outages).
    #[serde(default)]
    pub closures: Vec<TimeWindow>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenderPolicy {
    #[default]
    Any,
    MaleOnly,
    FemaleOnly,
    /// Shared bays: everyone present at once has the same gender.
    SameGender,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Female,
    Male,
    #[default]
    Other,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomStatus {
    #[default]
    Active,
    Maintenance,
    OutOfService,
}

/// Transmission-based precautions a patient needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum Isolation {
    #[default]
    None,
    Contact,
    Droplet,
    Airborne,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Room {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub name: String,
    /// e.g. `exam`, `procedure`, `isolation`, `infusion`.
    pub room_type: String,
    /// People the room holds at once (patient, companions, staff).
    pub capacity: u32,
    /// Equipment tags such as `ecg`, `slit_lamp`, `gyn_table`, `av_cart`.
    pub equipment: BTreeSet<String>,
    /// Property tags such as `soundproof`, `sterile_procedure`, `mri_zone`, `paediatric`.
    pub tags: BTreeSet<String>,
    pub accessible: bool,
    /// Airborne-infection isolation room (negative pressure).
    pub aiir: bool,
    pub air_changes_per_hour: u32,
    pub zone: String,
    pub gender_policy: GenderPolicy,
    pub min_age_years: Option<u32>,
    pub max_age_years: Option<u32>,
    pub status: RoomStatus,
    /// Maintenance and closure windows.
    pub closures: Vec<TimeWindow>,
    /// `None`: the clinic's hours apply.
    pub opening_hours: Option<OpeningHours>,
    /// Concurrent patients (chairs or bays); 0 and 1 both mean a single-occupancy room.
    pub chairs: u32,
    /// When non-empty, only these specialties may use the room.
    pub allowed_specialties: Vec<String>,
    pub prohibited_specialties: Vec<String>,
    /// Floor-plan position for walking distances (S03).
    pub x_m: i32,
    pub y_m: i32,
    pub distance_to_entrance_m: u32,
    pub distance_to_checkin_m: u32,
}

impl Room {
    /// Concurrent patients the room takes (at least one).
    pub fn chairs_effective(&self) -> u32 {
        self.chairs.max(1)
    }

    /// Manhattan walking distance to another room, in metres.
    pub fn distance_to_m(&self, other: &Room) -> u32 {
        self.x_m.abs_diff(other.x_m) + self.y_m.abs_diff(other.y_m)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Doctor {
    pub id: Uuid,
    pub clinic_id: Uuid,
    pub name: String,
    pub specialty: String,
    /// Ranked, best first.
    pub preferred_rooms: Vec<Uuid>,
    pub zone: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Patient {
    pub id: Uuid,
    pub name: String,
    pub age_years: u32,
    pub gender: Gender,
    /// Needs an accessible room (H08) and a short walk (S15).
    pub mobility_needs: bool,
    pub isolation: Isolation,
    pub immunocompromised: bool,
    /// Free tags matched by H13, e.g. `implant_unsafe`.
    pub tags: BTreeSet<String>,
}

impl Patient {
    pub fn is_infectious(&self) -> bool {
        self.isolation != Isolation::None
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppointmentType {
    /// Stable key used in requests, e.g. `follow_up`, `minor_procedure`.
    pub key: String,
    pub name: String,
    /// Empty: any room type.
    pub allowed_room_types: Vec<String>,
    pub required_equipment: BTreeSet<String>,
    pub preferred_equipment: BTreeSet<String>,
    pub duration_minutes: u32,
    pub turnover_minutes: u32,
    /// Gynaecology, psychiatry, bad news: prefers a private room (S19).
    pub sensitive: bool,
    /// Visit tags matched by H13, e.g. `sterile_procedure`.
    pub tags: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Held,
    #[default]
    Booked,
    CheckedIn,
    Done,
    Cancelled,
    /// Booked without a room (fallback `book_without_room`).
    RoomPending,
}

impl AppointmentStatus {
    /// Statuses that occupy their room (the exclusion constraint's predicate).
    pub fn blocks_room(self) -> bool {
        matches!(self, Self::Held | Self::Booked | Self::CheckedIn)
    }

    /// Statuses that occupy the doctor and the patient (H15).
    pub fn blocks_participants(self) -> bool {
        matches!(self, Self::Held | Self::Booked | Self::CheckedIn | Self::RoomPending)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Booked => "booked",
            Self::CheckedIn => "checked_in",
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::RoomPending => "room_pending",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: Uuid,
    pub clinic_id: Uuid,
    #[serde(default)]
    pub room_id: Option<Uuid>,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    pub appointment_type: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Minutes the room stays blocked after `end` (cleaning, airborne clearance).
    #[serde(default)]
    pub turnover_minutes: u32,
    pub status: AppointmentStatus,
    /// The patient needed isolation (feeds S16 and the same-gender bay check).
    #[serde(default)]
    pub infectious: bool,
    #[serde(default)]
    pub patient_gender: Option<Gender>,
}

impl Appointment {
    /// End of the room's blocked range: `end + turnover`.
    pub fn blocked_end(&self) -> DateTime<Utc> {
        self.end + Duration::minutes(i64::from(self.turnover_minutes))
    }
}

/// What to do when no room is feasible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum FallbackMode {
    /// 409 with alternatives.
    #[default]
    Reject,
    /// No booking; the alternatives are the answer.
    Suggest,
    /// Book with `status = room_pending` and no room.
    BookWithoutRoom,
}

/// Per-request needs on top of the patient record and appointment type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Needs {
    #[schema(max_items = 32)]
    pub equipment: Vec<String>,
    pub accessible: bool,
    pub isolation: Isolation,
    #[schema(maximum = 20)]
    pub companions: u32,
    pub interpreter: bool,
    pub video: bool,
    pub private_room: bool,
    /// The pod of the assigned nurse or medical assistant (S20).
    #[schema(min_length = 1, max_length = 64)]
    pub nurse_pod: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    pub clinic_id: Uuid,
    pub doctor_id: Uuid,
    pub patient_id: Uuid,
    /// The key of one of the clinic's appointment types (at most 64 bytes).
    #[schema(min_length = 1, max_length = 64)]
    pub appointment_type: String,
    pub start: DateTime<Utc>,
    /// After `start`, at most 12 hours later.
    pub end: DateTime<Utc>,
    /// A pinned room (H16): the engine only validates it.
    #[serde(default)]
    pub room_id: Option<Uuid>,
    #[serde(default)]
    pub needs: Needs,
    #[serde(default)]
    pub fallback: FallbackMode,
    /// When rescheduling: the room the patient was already told (S22).
    #[serde(default)]
    pub previous_room_id: Option<Uuid>,
}

/// A request field that fails validation. Every variant names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("end: {end} is not after start {start}")]
    EndNotAfterStart { start: DateTime<Utc>, end: DateTime<Utc> },
    #[error("end: booking lasts {minutes} minutes, more than the {max} allowed")]
    DurationTooLong { minutes: i64, max: i64 },
    #[error("{field}: must not be empty")]
    Empty { field: &'static str },
    #[error("{field}: {bytes} bytes, more than the {max} allowed")]
    TooLong { field: &'static str, bytes: usize, max: usize },
    #[error("{field}: {count} entries, more than the {max} allowed")]
    TooMany { field: &'static str, count: usize, max: usize },
    /// PostgreSQL rejects NUL in text (22021); other control characters are never a key.
    #[error("{field}: contains the control character U+{code_point:04X}")]
    ControlCharacter { field: &'static str, code_point: u32 },
    #[error(
        "start: {start} is outside the clinic's booking horizon {earliest} .. {latest} \
         ({past_days} days back, {future_days} days ahead of now)"
    )]
    OutsideHorizon {
        start: DateTime<Utc>,
        earliest: DateTime<Utc>,
        latest: DateTime<Utc>,
        past_days: i64,
        future_days: i64,
    },
}

/// How far from now a booking may start: records are kept for 5 years back (bookings are
/// entered late, fixtures replay past days), appointments are offered 2 years ahead.
pub const BOOKING_HORIZON_PAST_DAYS: i64 = 5 * 365 + 1;
pub const BOOKING_HORIZON_FUTURE_DAYS: i64 = 2 * 365 + 1;

impl ValidationError {
    /// The request field at fault (JSON path).
    pub fn field(&self) -> &'static str {
        match self {
            Self::EndNotAfterStart { .. } | Self::DurationTooLong { .. } => "end",
            Self::OutsideHorizon { .. } => "start",
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::TooMany { field, .. }
            | Self::ControlCharacter { field, .. } => field,
        }
    }

    /// Stable machine-readable code for problem+json bodies.
    pub fn code(&self) -> &'static str {
        match self {
            // The time range itself is unusable.
            Self::EndNotAfterStart { .. } => "INVALID_TIME_RANGE",
            // A policy limit, not a malformed value.
            Self::DurationTooLong { .. } => "DURATION_TOO_LONG",
            Self::OutsideHorizon { .. } => "OUTSIDE_BOOKING_HORIZON",
            // Malformed or oversized values.
            Self::Empty { .. }
            | Self::TooLong { .. }
            | Self::TooMany { .. }
            | Self::ControlCharacter { .. } => "INVALID_FIELD",
        }
    }
}

impl BookingRequest {
    /// Checks what needs no database: time order, duration and size limits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.end <= self.start {
            return Err(ValidationError::EndNotAfterStart { start: self.start, end: self.end });
        }
        let minutes = (self.end - self.start).num_minutes();
        if minutes > BOOKING_DURATION_MINUTES_MAX {
            return Err(ValidationError::DurationTooLong {
                minutes,
                max: BOOKING_DURATION_MINUTES_MAX,
            });
        }
        check_key("appointment_type", &self.appointment_type)?;
        if self.needs.equipment.len() > NEEDS_EQUIPMENT_COUNT_MAX {
            return Err(ValidationError::TooMany {
                field: "needs.equipment",
                count: self.needs.equipment.len(),
                max: NEEDS_EQUIPMENT_COUNT_MAX,
            });
        }
        for tag in &self.needs.equipment {
            check_key("needs.equipment", tag)?;
        }
        if self.needs.companions > COMPANIONS_COUNT_MAX {
            return Err(ValidationError::TooMany {
                field: "needs.companions",
                count: self.needs.companions as usize,
                max: COMPANIONS_COUNT_MAX as usize,
            });
        }
        if let Some(pod) = &self.needs.nurse_pod {
            check_key("needs.nurse_pod", pod)?;
        }
        Ok(())
    }

    pub fn duration_minutes(&self) -> i64 {
        (self.end - self.start).num_minutes()
    }

    /// Checks that the booking starts within the booking horizon around `now`.
    pub fn validate_horizon(&self, now: DateTime<Utc>) -> Result<(), ValidationError> {
        let (past_days, future_days) = (BOOKING_HORIZON_PAST_DAYS, BOOKING_HORIZON_FUTURE_DAYS);
        let earliest = now - chrono::Duration::days(past_days);
        let latest = now + chrono::Duration::days(future_days);
        if self.start < earliest || self.start > latest {
            return Err(ValidationError::OutsideHorizon {
                start: self.start,
                earliest,
                latest,
                past_days,
                future_days,
            });
        }
        Ok(())
    }
}

/// A key-like text field: not empty, at most [`KEY_BYTES_MAX`] bytes, no control characters
/// (NUL in particular: PostgreSQL rejects it in text with 22021).
pub fn check_key(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if value.len() > KEY_BYTES_MAX {
        return Err(ValidationError::TooLong { field, bytes: value.len(), max: KEY_BYTES_MAX });
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ValidationError::ControlCharacter { field, code_point: u32::from(c) });
    }
    Ok(())
}

/// The source of "now". Library code never reads the wall clock itself.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The source of new ids. Library code never draws random ids itself.
pub trait IdSource: Send + Sync {
    fn next_id(&self) -> Uuid;
}

/// The wall clock, for production. The simulation never uses it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set by hand.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(now: DateTime<Utc>) -> Self {
        ManualClock { now: Mutex::new(now) }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().expect("clock mutex poisoned") = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}

/// Random version-4 UUIDs for production, keyed by the process's random hasher state.
/// The simulation never uses it.
#[derive(Debug)]
pub struct RandomIds {
    state: RandomState,
    counter: AtomicU64,
}

impl Default for RandomIds {
    fn default() -> Self {
        RandomIds { state: RandomState::new(), counter: AtomicU64::new(0) }
    }
}

impl IdSource for RandomIds {
    fn next_id(&self) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let half = |salt: u64| {
            let mut hasher = self.state.build_hasher();
            hasher.write_u64(n);
            hasher.write_u64(salt);
            hasher.finish()
        };
        let bits = (u128::from(half(0)) << 64) | u128::from(half(1));
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    }
}

/// Deterministic ids from a seed (splitmix64), for tests and reproducible runs.
#[derive(Debug)]
pub struct SequentialIds {
    seed: u64,
    counter: AtomicU64,
}

impl SequentialIds {
    pub fn new(seed: u64) -> Self {
        SequentialIds { seed, counter: AtomicU64::new(0) }
    }
}

impl IdSource for SequentialIds {
    fn next_id(&self) -> Uuid {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let high = splitmix64(self.seed ^ n.wrapping_mul(2));
        let low = splitmix64(self.seed ^ n.wrapping_mul(2).wrapping_add(1));
        let bits = (u128::from(high) << 64) | u128::from(low);
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    }
}

/// The splitmix64 mixer: a cheap, well-distributed step for deterministic streams.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // 2025-03-10 is a Monday.
        Utc.with_ymd_and_hms(2025, 3, 10, h, m, 0).unwrap()
    }

    fn request(start: DateTime<Utc>, end: DateTime<Utc>) -> BookingRequest {
        BookingRequest {
            clinic_id: Uuid::nil(),
            doctor_id: Uuid::nil(),
            patient_id: Uuid::nil(),
            appointment_type: "follow_up".into(),
            start,
            end,
            room_id: None,
            needs: Needs::default(),
            fallback: FallbackMode::Reject,
            previous_room_id: None,
        }
    }

    #[test]
    fn validate_rejects_bad_time_ranges_naming_end() {
        let err = request(at(9, 0), at(9, 0)).validate().unwrap_err();
        assert_eq!(err.field(), "end");
        assert_eq!(err.code(), "INVALID_TIME_RANGE");
        let err = request(at(9, 0), at(8, 0)).validate().unwrap_err();
        assert!(matches!(err, ValidationError::EndNotAfterStart { .. }));
        let err = request(at(0, 0), at(12, 1)).validate().unwrap_err();
        assert_eq!(err, ValidationError::DurationTooLong { minutes: 721, max: 720 });
        assert!(request(at(9, 0), at(9, 20)).validate().is_ok());
    }

    #[test]
    fn validate_rejects_oversized_fields() {
        let mut r = request(at(9, 0), at(9, 20));
        r.appointment_type = "x".repeat(KEY_BYTES_MAX + 1);
        assert_eq!(r.validate().unwrap_err().field(), "appointment_type");
        r.appointment_type = String::new();
        assert_eq!(r.validate().unwrap_err(), ValidationError::Empty { field: "appointment_type" });
        r.appointment_type = "follow_up".into();
        r.needs.equipment = vec!["ecg".into(); NEEDS_EQUIPMENT_COUNT_MAX + 1];
        assert_eq!(r.validate().unwrap_err().field(), "needs.equipment");
        r.needs.equipment = vec![];
        r.needs.companions = COMPANIONS_COUNT_MAX + 1;
        assert_eq!(r.validate().unwrap_err().field(), "needs.companions");
    }

    #[test]
    fn request_json_rejects_unknown_fields_and_parses_fallback() {
        let body = r#"{"clinic_id":"00000000-0000-0000-0000-000000000001",
            "doctor_id":"00000000-0000-0000-0000-000000000002",
            "patient_id":"00000000-0000-0000-0000-000000000003",
            "appointment_type":"follow_up","start":"2025-03-10T09:00:00Z",
            "end":"2025-03-10T09:20:00Z","needs":{"equipment":["ecg"],"isolation":"airborne"},
            "fallback":"book_without_room"}"#;
        let parsed: BookingRequest = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.fallback, FallbackMode::BookWithoutRoom);
        assert_eq!(parsed.needs.isolation, Isolation::Airborne);
        let bad = body.replace("\"fallback\"", "\"fallbak\"");
        let err = serde_json::from_str::<BookingRequest>(&bad).unwrap_err().to_string();
        assert!(err.contains("fallbak"), "{err}");
    }

    #[test]
    fn opening_hours_cover_only_whole_slots_on_open_days() {
        let hours = OpeningHours::daily(8 * 60, 17 * 60);
        assert!(hours.covers(at(8, 0), at(8, 30)));
        assert!(hours.covers(at(16, 30), at(17, 0)));
        assert!(!hours.covers(at(7, 59), at(8, 30)));
        assert!(!hours.covers(at(16, 45), at(17, 1)));
        let monday_only = OpeningHours {
            days: vec![DayHours { weekday: Weekday::Tue, open_minute: 0, close_minute: 1440 }],
        };
        assert!(!monday_only.covers(at(9, 0), at(10, 0)));
        assert!(OpeningHours::default().covers(at(0, 0), at(23, 0)));
    }

    #[test]
    fn sequential_ids_are_deterministic_and_distinct() {
        let a = SequentialIds::new(7);
        let b = SequentialIds::new(7);
        let first = a.next_id();
        assert_eq!(first, b.next_id());
        assert_ne!(first, a.next_id());
        assert_ne!(first, SequentialIds::new(8).next_id());
        let random = RandomIds::default();
        assert_ne!(random.next_id(), random.next_id());
    }

    #[test]
    fn statuses_block_rooms_and_participants_as_documented() {
        assert!(AppointmentStatus::Booked.blocks_room());
        assert!(!AppointmentStatus::RoomPending.blocks_room());
        assert!(AppointmentStatus::RoomPending.blocks_participants());
        assert!(!AppointmentStatus::Cancelled.blocks_participants());
        assert!(!AppointmentStatus::Done.blocks_room());
    }
}
