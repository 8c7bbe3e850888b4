//! The scenario schema: plain serde types, one per TOML table.
//!
//! Every struct denies unknown fields so a typo is an error, not a silently ignored knob.
//! Durations crossing into the file carry their unit in the name (`window_ms`, `latency_us_min`,
//! `duration_min`); they are *modelled* durations — the simulation's time-scale factor is
//! applied by `sim`, never written here. Documented field by field in `scenarios/README.md`.

use serde::{Deserialize, Serialize};

/// One scenario file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name used in reports and replay commands.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub clinic: Clinic,
    /// The rule set: a built-in name known to backend-core (e.g. `"default"`), or a path to a
    /// `.toml` / `.json` rule-set file relative to the scenario file.
    pub rules: String,
    pub workload: Workload,
    #[serde(default)]
    pub backend: Backend,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub faults: Vec<Fault>,
    pub criteria: Criteria,
    #[serde(default)]
    pub limits: Limits,
}

/// Clinic data: explicit lists, optionally extended by a generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clinic {
    pub name: String,
    /// The booking day, `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Opening and closing time, `HH:MM` (UTC).
    pub opens: String,
    pub closes: String,
    #[serde(default)]
    pub rooms: Vec<Room>,
    #[serde(default)]
    pub doctors: Vec<Doctor>,
    #[serde(default)]
    pub patients: Vec<Patient>,
    pub appointment_types: Vec<AppointmentType>,
    /// Generator parameters: appended after the explicit lists by `Scenario::load`.
    #[serde(default)]
    pub generate: Option<Generate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Room {
    pub name: String,
    /// e.g. `exam`, `procedure`, `isolation`, `infusion`.
    pub room_type: String,
    pub capacity: u32,
    #[serde(default)]
    pub equipment: Vec<String>,
    #[serde(default)]
    pub accessible: bool,
    /// Airborne-infection isolation room (negative pressure).
    #[serde(default)]
    pub aiir: bool,
    #[serde(default = "default_zone")]
    pub zone: String,
    /// `active`, `maintenance` or `out_of_service`.
    #[serde(default = "default_status")]
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doctor {
    pub name: String,
    pub specialty: String,
    /// Room names, most preferred first.
    #[serde(default)]
    pub preferred_rooms: Vec<String>,
    #[serde(default = "default_zone")]
    pub zone: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    pub name: String,
    #[serde(default = "default_age")]
    pub age_years: u32,
    #[serde(default)]
    pub needs_accessible: bool,
    #[serde(default)]
    pub airborne: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentType {
    pub name: String,
    pub duration_min: u32,
    /// Room types this appointment may use.
    pub room_types: Vec<String>,
    #[serde(default)]
    pub required_equipment: Vec<String>,
    /// Cleaning time after the appointment during which the room stays blocked.
    #[serde(default)]
    pub turnover_min: u32,
}

/// Deterministic generator: names `room-01…`, `doctor-01…`, `patient-001…`; attributes cycle
/// through the given lists (no randomness, so the clinic is the same for every seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    #[serde(default)]
    pub rooms: u32,
    #[serde(default)]
    pub doctors: u32,
    #[serde(default)]
    pub patients: u32,
    /// Room types assigned round-robin to generated rooms.
    #[serde(default = "default_room_types")]
    pub room_types: Vec<String>,
    /// Equipment tags; generated room i gets tag i mod len (and every room gets none if empty).
    #[serde(default)]
    pub equipment: Vec<String>,
    /// Specialties assigned round-robin to generated doctors.
    #[serde(default = "default_specialties")]
    pub specialties: Vec<String>,
    /// Every n-th generated room is accessible (0 = none).
    #[serde(default)]
    pub accessible_every: u32,
}

/// The booking workload the client host runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Concurrent booking tasks on the clients host.
    pub bookers: u32,
    /// Bookings each booker makes, one after another.
    #[serde(default = "one")]
    pub bookings_per_booker: u32,
    pub arrival: Arrival,
    /// Arrivals spread over this window (ignored for `simultaneous`).
    #[serde(default)]
    pub window_ms: u64,
    pub slots: Slots,
    /// How doctors and patients are picked for each booking.
    pub participants: Participants,
    /// `auto`: the backend picks the room; `requested`: the client asks for a room drawn from
    /// the clinic's rooms (the backend validates it).
    #[serde(default)]
    pub room_choice: RoomChoice,
    pub fallback: Fallback,
    /// Send an `Idempotency-Key` header with every booking.
    #[serde(default = "yes")]
    pub idempotency_keys: bool,
    /// After a lost response (connection error or timeout) the client retries the same booking.
    #[serde(default = "yes")]
    pub retry_lost_response: bool,
    /// Attempts after the first, per booking.
    #[serde(default = "default_client_retries")]
    pub client_retries_max: u32,
    /// The client gives up on one attempt after this long (a recorded timeout).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Every booker sends at time zero.
    Simultaneous,
    /// Each booker's first send time is uniform in `[0, window_ms)`.
    Uniform,
    /// Poisson process over the window: exponential gaps with mean `window_ms / bookings`.
    Poisson,
}

/// Start times offered to the workload: `count` starts, `step_min` apart from `first`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slots {
    /// `HH:MM`, within opening hours.
    pub first: String,
    pub step_min: u32,
    pub count: u32,
    /// `round_robin`: booking i uses slot i mod count; `random`: uniform draw.
    pub pick: SlotPick,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotPick {
    RoundRobin,
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Participants {
    /// Booking i: slot i mod count, doctor (i / count) mod doctors, patient i — no doctor or
    /// patient is ever asked to be in two places (needs `round_robin` slots).
    Disjoint,
    /// Doctor, patient and appointment type drawn uniformly (participant conflicts happen).
    Random,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomChoice {
    #[default]
    Auto,
    Requested,
}

/// What the backend does when no room is free (sent in every request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    Reject,
    Suggest,
    BookWithoutRoom,
}

impl Fallback {
    /// The wire name used in the booking request.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Reject => "reject",
            Fallback::Suggest => "suggest",
            Fallback::BookWithoutRoom => "book_without_room",
        }
    }
}

/// The backend's pool towards the db host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
    /// Strategy retries on 40001 / 40P01.
    #[serde(default = "default_db_retries")]
    pub db_retries_max: u32,
    /// Read the clinic's rule policy into the backend's cache before the first booking, as a
    /// service that has already served bookings holds it (`validate` sets this: its real side's
    /// backend is warm after its first request). Off: the first bookings of a run all miss the
    /// cache and read the policy, as right after a start.
    #[serde(default)]
    pub warm_policy_cache: bool,
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            pool_size: default_pool_size(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
            db_retries_max: default_db_retries(),
            warm_policy_cache: false,
        }
    }
}

/// One-way message latency on every link, and background message loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default = "default_latency_us_min")]
    pub latency_us_min: u64,
    #[serde(default = "default_latency_us_max")]
    pub latency_us_max: u64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_us_min: default_latency_us_min(),
            latency_us_max: default_latency_us_max(),
        }
    }
}

/// A timed fault, applied by the simulation driver between steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Backend ↔ db partition for `duration_ms`, then repair.
    Partition { at_ms: u64, duration_ms: u64 },
    /// Messages on `link` fail with probability `rate` per send for `duration_ms` (a failed
    /// send breaks the TCP connection: the response is lost).
    Loss { at_ms: u64, duration_ms: u64, link: Link, rate: f64 },
    /// The backend host crashes, and restarts `restart_after_ms` later.
    BackendCrash { at_ms: u64, restart_after_ms: u64 },
    /// The db host crashes (in-flight transactions abort, committed data survives) and
    /// restarts `restart_after_ms` later.
    DbCrash { at_ms: u64, restart_after_ms: u64 },
    /// Clients that give up mid-request, as `curl -m` or a Locust stop does: from `at_ms` for
    /// `duration_ms`, each attempt is abandoned with probability `rate` after a delay drawn
    /// uniformly from 0..=`after_us_max` modelled µs (before the send, while the backend
    /// works, between its statements, during COMMIT): the client closes the connection, then
    /// retries as after a timeout (same Idempotency-Key).
    ClientAbort { at_ms: u64, duration_ms: u64, rate: f64, after_us_max: u64 },
    /// Slow clients: from `at_ms` for `duration_ms`, each attempt with probability `rate`
    /// writes its request `chunk_bytes` at a time, `gap_us` modelled µs apart (slow headers
    /// and a slow body; the backend's read timeouts bound them).
    SlowClients { at_ms: u64, duration_ms: u64, rate: f64, chunk_bytes: u32, gap_us: u64 },
    /// The backend's database connections reset: from `at_ms` for `duration_ms`, each
    /// statement, with probability `rate`, finds its connection dropped — half of them before
    /// the statement is sent, half after it was sent and before its reply (the outcome of a
    /// COMMIT is then unknown). The server sees the disconnect and aborts the session.
    DbConnectionDrop { at_ms: u64, duration_ms: u64, rate: f64 },
}

impl Fault {
    /// When the fault starts, in modelled ms.
    pub fn at_ms(&self) -> u64 {
        match self {
            Fault::Partition { at_ms, .. } => *at_ms,
            Fault::Loss { at_ms, .. } => *at_ms,
            Fault::BackendCrash { at_ms, .. } => *at_ms,
            Fault::DbCrash { at_ms, .. } => *at_ms,
            Fault::ClientAbort { at_ms, .. } => *at_ms,
            Fault::SlowClients { at_ms, .. } => *at_ms,
            Fault::DbConnectionDrop { at_ms, .. } => *at_ms,
        }
    }

    /// When the fault ends (repair / restart), in modelled ms.
    pub fn end_ms(&self) -> u64 {
        match self {
            Fault::Partition { at_ms, duration_ms } => at_ms + duration_ms,
            Fault::Loss { at_ms, duration_ms, .. } => at_ms + duration_ms,
            Fault::BackendCrash { at_ms, restart_after_ms } => at_ms + restart_after_ms,
            Fault::DbCrash { at_ms, restart_after_ms } => at_ms + restart_after_ms,
            Fault::ClientAbort { at_ms, duration_ms, .. } => at_ms + duration_ms,
            Fault::SlowClients { at_ms, duration_ms, .. } => at_ms + duration_ms,
            Fault::DbConnectionDrop { at_ms, duration_ms, .. } => at_ms + duration_ms,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    ClientsBackend,
    BackendDb,
}

/// Success criteria; each is shown ✓/✗ in the report. Latency and throughput targets that are
/// missed are findings in the report, not invariant violations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criteria {
    /// Every booking ends 201 with a room.
    #[serde(default)]
    pub all_bookings_succeed: bool,
    pub room_assignment_p95_ms: Option<u64>,
    pub conflict_detection_p95_ms: Option<u64>,
    /// Rules evaluation per slot, at p100 (max).
    pub rules_evaluation_ms_max: Option<u64>,
    #[serde(default = "yes")]
    pub no_deadlocks: bool,
    #[serde(default = "yes")]
    pub no_double_bookings: bool,
    /// Every 409 carries at least one alternative when one exists.
    #[serde(default)]
    pub alternatives_suggested: bool,
    /// When every room is taken the backend answers per the fallback mode (409 with
    /// alternatives / 201 room_pending), never 5xx.
    #[serde(default)]
    pub graceful_fallback: bool,
    pub throughput_per_s_min: Option<u32>,
}

/// Simulation limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// A run that has not finished after this much modelled time fails with a recorded timeout.
    #[serde(default = "default_simulation_ms_max")]
    pub simulation_ms_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { simulation_ms_max: default_simulation_ms_max() }
    }
}

fn default_zone() -> String {
    "main".into()
}
fn default_status() -> String {
    "active".into()
}
fn default_age() -> u32 {
    40
}
fn default_room_types() -> Vec<String> {
    vec!["exam".into()]
}
fn default_specialties() -> Vec<String> {
    vec!["general".into()]
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_client_retries() -> u32 {
    3
}
fn default_request_timeout_ms() -> u64 {
    2_000
}
fn default_pool_size() -> u32 {
    10
}
fn default_acquire_timeout_ms() -> u64 {
    1_000
}
/// backend-core's `RetryPolicy::default().retries_max` (the crates do not depend on each other).
fn default_db_retries() -> u32 {
    10
}
fn default_latency_us_min() -> u64 {
    50
}
fn default_latency_us_max() -> u64 {
    200
}
fn default_simulation_ms_max() -> u64 {
    60_000
}
