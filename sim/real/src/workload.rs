//! What the real load generator sends: the fixture (ids written by `roomsim db setup`) and the
//! seeded request stream of each user.
//!
//! TASKS AND TAGS
//!
//! Like the clinic plan's Locust file, every task carries one tag; `--tags` selects tasks:
//!
//! * `concurrent` — `POST /v1/appointments` spread over many days and slots: concurrent
//!   bookings that rarely collide (throughput, room-assignment latency).
//! * `conflict` — `POST /v1/appointments` aimed at a few hot slots of one day, so most
//!   requests race for the same rooms (conflict detection, 409 with alternatives). Each user
//!   moves to the next business day after [`CONFLICT_REQUESTS_PER_DAY`] conflict requests, so
//!   the hot slots keep producing real races instead of filling up after the first few
//!   bookings and answering every later request with an instant 409.
//! * `rules` — `POST /v1/room-assignments:preview`: the rules engine and allocator, no write.
//!
//! DETERMINISM
//!
//! Each user draws from its own ChaCha8 stream seeded from (seed, user index), so the request
//! *sequence* of a user is a pure function of the seed; what the server answers and when is
//! real time and is not.
//!
//! NOT MODELLED: think-time distributions (a fixed `--wait-ms` only), cancellations.

use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RealError;

/// Days the `concurrent` task spreads bookings over.
pub const DAYS_SPREAD_MAX: i64 = 250;
/// Hot slots of the `conflict` task (09:00, 09:15, … of its current day).
pub const HOT_SLOTS_MAX: i64 = 4;
/// Conflict requests a user sends for one day's hot slots before moving to the next day.
pub const CONFLICT_REQUESTS_PER_DAY: u64 = 20;
/// The clinic's opening hours for generated slots, [open, close).
pub const OPEN_HOUR: i64 = 8;
pub const CLOSE_HOUR: i64 = 18;

/// The ids a load run books against, written by `roomsim db setup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub clinic_id: Uuid,
    pub doctor_ids: Vec<Uuid>,
    pub patient_ids: Vec<Uuid>,
    pub room_ids: Vec<Uuid>,
    /// Appointment type codes accepted by the API (e.g. "follow_up").
    pub appointment_types: Vec<String>,
    /// The first day bookings are made for (UTC).
    pub first_day: NaiveDate,
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Fixture, RealError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RealError::BadInput(format!(
                "fixture {}: {e} (run `roomsim db setup` first, or pass --fixture)",
                path.display()
            ))
        })?;
        let fixture: Fixture = serde_json::from_str(&text)
            .map_err(|e| RealError::BadInput(format!("fixture {}: {e}", path.display())))?;
        fixture
            .validate()
            .map_err(|what| RealError::BadInput(format!("fixture {}: {what}", path.display())))?;
        Ok(fixture)
    }

    /// Writes the fixture, creating its folder; a temporary file renamed into place, so a
    /// reader never sees half a fixture.
    pub fn save(&self, path: &Path) -> Result<(), RealError> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|e| RealError::io(folder, e))?;
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        std::fs::write(&partial, self.to_json()).map_err(|e| RealError::io(&partial, e))?;
        std::fs::rename(&partial, path).map_err(|e| RealError::io(path, e))
    }

    /// The fixture file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a fixture always serialises") + "\n"
    }

    /// `export NAME='value'` lines for `eval "$(roomsim db setup --print-env)"`, named as
    /// in the clinic's load-test plan: TEST_CLINIC_ID, TEST_DOCTOR_ID, TEST_PATIENT_ID,
    /// TEST_ROOM_1_ID … TEST_ROOM_N_ID, TEST_APPOINTMENT_TYPE, TEST_FIRST_DAY, and
    /// ROOMSIM_FIXTURE when the fixture was written to a file.
    pub fn env_lines(&self, written_to: Option<&Path>) -> String {
        let mut vars = vec![
            ("TEST_CLINIC_ID".to_string(), self.clinic_id.to_string()),
            ("TEST_DOCTOR_ID".to_string(), self.doctor_ids[0].to_string()),
            ("TEST_PATIENT_ID".to_string(), self.patient_ids[0].to_string()),
        ];
        for (index, room) in self.room_ids.iter().enumerate() {
            vars.push((format!("TEST_ROOM_{}_ID", index + 1), room.to_string()));
        }
        vars.push(("TEST_APPOINTMENT_TYPE".to_string(), self.appointment_types[0].clone()));
        vars.push(("TEST_FIRST_DAY".to_string(), self.first_day.to_string()));
        if let Some(path) = written_to {
            vars.push(("ROOMSIM_FIXTURE".to_string(), path.display().to_string()));
        }
        let quote = |value: &str| format!("'{}'", value.replace('\'', r"'\''"));
        vars.iter().map(|(name, value)| format!("export {name}={}\n", quote(value))).collect()
    }

    /// Every list must be non-empty; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (field, count) in [
            ("doctor_ids", self.doctor_ids.len()),
            ("patient_ids", self.patient_ids.len()),
            ("room_ids", self.room_ids.len()),
            ("appointment_types", self.appointment_types.len()),
        ] {
            if count == 0 {
                return Err(format!("field `{field}` is empty"));
            }
        }
        Ok(())
    }
}

/// The `n`-th Monday-to-Friday day on or after `first` (clinics are closed at weekends).
pub fn business_day(first: NaiveDate, n: i64) -> NaiveDate {
    assert!(n >= 0, "business day index {n} is negative");
    let mut date = first;
    while date.weekday().number_from_monday() > 5 {
        date = date.succ_opt().expect("dates far from the end of time");
    }
    // Whole weeks first, then single days: at most 4 + 2 steps in the loop below.
    date += ChronoDuration::weeks(n / 5);
    let mut left = n % 5;
    while left > 0 {
        date = date.succ_opt().expect("dates far from the end of time");
        if date.weekday().number_from_monday() <= 5 {
            left -= 1;
        }
    }
    date
}

/// One kind of request a user can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Task {
    Concurrent,
    Conflict,
    Rules,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Concurrent, Task::Conflict, Task::Rules];

    pub fn tag(self) -> &'static str {
        match self {
            Task::Concurrent => "concurrent",
            Task::Conflict => "conflict",
            Task::Rules => "rules",
        }
    }

    /// The request name in reports (Locust's "Name").
    pub fn request_name(self) -> &'static str {
        match self {
            Task::Concurrent => "POST /v1/appointments [concurrent]",
            Task::Conflict => "POST /v1/appointments [conflict]",
            Task::Rules => "POST /v1/room-assignments:preview [rules]",
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Task::Concurrent | Task::Conflict => "/v1/appointments",
            Task::Rules => "/v1/room-assignments:preview",
        }
    }

    /// True for tasks that create appointments (their latency is "room assignment").
    pub fn books(self) -> bool {
        matches!(self, Task::Concurrent | Task::Conflict)
    }

    /// Parses `--tags concurrent,conflict,rules`.
    pub fn parse_tags(tags: &[String]) -> Result<Vec<Task>, RealError> {
        let mut tasks = Vec::new();
        for tag in tags {
            let tag = tag.trim();
            let Some(task) = Task::ALL.iter().find(|t| t.tag() == tag) else {
                let valid: Vec<&str> = Task::ALL.iter().map(|t| t.tag()).collect();
                return Err(RealError::BadInput(format!(
                    "--tags: unknown tag `{tag}` (valid: {})",
                    valid.join(", ")
                )));
            };
            if !tasks.contains(task) {
                tasks.push(*task);
            }
        }
        if tasks.is_empty() {
            return Err(RealError::BadInput("--tags: no tag given".to_string()));
        }
        tasks.sort();
        Ok(tasks)
    }

    /// The tags a scenario selects when `--tags` is not given.
    pub fn defaults_for_scenario(scenario: &str) -> Vec<Task> {
        match scenario {
            "conflict" => vec![Task::Conflict],
            "rules" => vec![Task::Rules],
            "all" => Task::ALL.to_vec(),
            _ => vec![Task::Concurrent],
        }
    }
}

/// One request ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRequest {
    pub task: Task,
    pub body: String,
    /// Sent as the `Idempotency-Key` header when present.
    pub idempotency_key: Option<String>,
}

/// The request stream of one user.
#[derive(Debug)]
pub struct UserWorkload<'a> {
    fixture: &'a Fixture,
    tasks: &'a [Task],
    rng: ChaCha8Rng,
    /// Conflict requests sent so far (picks the hot slots' day).
    conflict_requests: u64,
}

impl<'a> UserWorkload<'a> {
    pub fn new(fixture: &'a Fixture, tasks: &'a [Task], seed: u64, user: u64) -> Self {
        assert!(!tasks.is_empty(), "a workload needs at least one task");
        // Spread users across the stream space: ChaCha's stream id is the user index.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(user);
        UserWorkload { fixture, tasks, rng, conflict_requests: 0 }
    }

    pub fn next_request(&mut self) -> PlannedRequest {
        let task = self.tasks[self.rng.random_range(0..self.tasks.len())];
        let (day, minute_of_day, length_min) = match task {
            Task::Conflict => {
                let day = (self.conflict_requests / CONFLICT_REQUESTS_PER_DAY) as i64;
                self.conflict_requests += 1;
                let slot = 15 * self.rng.random_range(0..HOT_SLOTS_MAX);
                (day % DAYS_SPREAD_MAX, OPEN_HOUR * 60 + 60 + slot, 15)
            }
            _ => {
                let slots_per_day = (CLOSE_HOUR - OPEN_HOUR) * 4;
                let slot = self.rng.random_range(0..slots_per_day - 2);
                let length = if self.rng.random_bool(0.5) { 15 } else { 30 };
                (self.rng.random_range(0..DAYS_SPREAD_MAX), OPEN_HOUR * 60 + slot * 15, length)
            }
        };
        let f = self.fixture;
        let doctor = f.doctor_ids[self.rng.random_range(0..f.doctor_ids.len())];
        let patient = f.patient_ids[self.rng.random_range(0..f.patient_ids.len())];
        let kind = &f.appointment_types[self.rng.random_range(0..f.appointment_types.len())];
        let date = business_day(f.first_day, day);
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        let start = Utc.from_utc_datetime(&midnight) + ChronoDuration::minutes(minute_of_day);
        let end = start + ChronoDuration::minutes(length_min);
        let body = serde_json::json!({
            "clinic_id": f.clinic_id,
            "doctor_id": doctor,
            "patient_id": patient,
            "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "appointment_type": kind,
            "room_id": null,
            "fallback": "suggest",
        });
        let key = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        PlannedRequest { task, body: body.to_string(), idempotency_key: Some(key.to_string()) }
    }
}

/// Where `db setup` writes the fixture and `load` reads it when neither `--fixture` nor
/// `ROOMSIM_FIXTURE` names a file: outside any working tree, in the user's state folder,
/// `$XDG_STATE_HOME/roomsim/` (else `$HOME/.local/state/roomsim/`, else the temporary
/// folder's `roomsim/`), one file per schema so several scenarios can sit side by side in
/// one database: `fixture.json`, or `fixture-SCHEMA.json` with `--schema SCHEMA`.
pub fn default_fixture_path(schema: Option<&str>) -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let state = match (non_empty("XDG_STATE_HOME"), non_empty("HOME")) {
        (Some(state), _) => PathBuf::from(state),
        (None, Some(home)) => PathBuf::from(home).join(".local/state"),
        (None, None) => std::env::temp_dir(),
    };
    let file = match schema {
        Some(schema) => format!("fixture-{schema}.json"),
        None => "fixture.json".to_string(),
    };
    state.join("roomsim").join(file)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn fixture() -> Fixture {
        Fixture {
            clinic_id: Uuid::from_u128(1),
            doctor_ids: (10..15).map(Uuid::from_u128).collect(),
            patient_ids: (100..150).map(Uuid::from_u128).collect(),
            room_ids: (200..210).map(Uuid::from_u128).collect(),
            appointment_types: vec!["follow_up".to_string()],
            first_day: NaiveDate::from_ymd_opt(2031, 3, 3).unwrap(),
        }
    }

    #[test]
    fn streams_are_seeded_per_user() {
        let f = fixture();
        let tasks = Task::ALL;
        let take = |seed, user| {
            let mut w = UserWorkload::new(&f, &tasks, seed, user);
            (0..20).map(|_| w.next_request()).collect::<Vec<_>>()
        };
        assert_eq!(take(7, 3), take(7, 3));
        assert_ne!(take(7, 3), take(7, 4));
        assert_ne!(take(7, 3), take(8, 3));
    }

    #[test]
    fn conflict_requests_hit_few_slots() {
        let f = fixture();
        let tasks = [Task::Conflict];
        let mut w = UserWorkload::new(&f, &tasks, 1, 0);
        let mut starts = std::collections::BTreeSet::new();
        for _ in 0..CONFLICT_REQUESTS_PER_DAY {
            let r = w.next_request();
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            starts.insert(body["start"].as_str().unwrap().to_string());
        }
        // One day, at most HOT_SLOTS_MAX distinct slots from 09:00 on (20 draws hit several).
        assert!((2..=HOT_SLOTS_MAX as usize).contains(&starts.len()), "{starts:?}");
        let hot: Vec<String> =
            (0..HOT_SLOTS_MAX).map(|i| format!("2031-03-03T09:{:02}:00Z", 15 * i)).collect();
        assert!(starts.iter().all(|s| hot.contains(s)), "{starts:?}");
        // Then the next business day's hot slots: the slots never fill up for good.
        let days: std::collections::BTreeSet<String> = (0..10 * CONFLICT_REQUESTS_PER_DAY)
            .map(|_| {
                let r = w.next_request();
                let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                body["start"].as_str().unwrap()[..10].to_string()
            })
            .collect();
        assert_eq!(days.len(), 10, "{days:?}");
        assert!(days.contains("2031-03-04"), "{days:?}");
    }

    #[test]
    fn business_days_skip_weekends() {
        let friday = NaiveDate::from_ymd_opt(2031, 3, 7).unwrap();
        let saturday = NaiveDate::from_ymd_opt(2031, 3, 8).unwrap();
        let monday = NaiveDate::from_ymd_opt(2031, 3, 10).unwrap();
        assert_eq!(business_day(friday, 0), friday);
        assert_eq!(business_day(friday, 1), monday);
        assert_eq!(business_day(saturday, 0), monday);
        assert_eq!(business_day(monday, 5), NaiveDate::from_ymd_opt(2031, 3, 17).unwrap());
        assert_eq!(business_day(friday, 6), NaiveDate::from_ymd_opt(2031, 3, 17).unwrap());
        for n in 0..40 {
            assert!(business_day(saturday, n).weekday().number_from_monday() <= 5);
        }
    }

    #[test]
    fn tags_parse_and_reject_unknown_names() {
        let tags = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(Task::parse_tags(&tags("rules,concurrent")).unwrap().len(), 2);
        let err = Task::parse_tags(&tags("rules,bogus")).unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("concurrent"), "{err}");
    }

    #[test]
    fn env_lines_name_the_plan_variables_and_quote_values() {
        let mut f = fixture();
        f.appointment_types = vec!["it's".to_string()];
        let lines = f.env_lines(Some(Path::new("/state/roomsim/fixture.json")));
        let expected_room = format!("export TEST_ROOM_10_ID='{}'\n", Uuid::from_u128(209));
        assert!(lines.contains(&expected_room), "{lines}");
        assert!(lines.starts_with(&format!("export TEST_CLINIC_ID='{}'\n", f.clinic_id)));
        assert!(lines.contains(&format!("export TEST_DOCTOR_ID='{}'\n", f.doctor_ids[0])));
        assert!(lines.contains(&format!("export TEST_PATIENT_ID='{}'\n", f.patient_ids[0])));
        assert!(lines.contains("export TEST_APPOINTMENT_TYPE='it'\\''s'\n"), "{lines}");
        assert!(lines.contains("export TEST_FIRST_DAY='2031-03-03'\n"));
        assert!(lines.ends_with("export ROOMSIM_FIXTURE='/state/roomsim/fixture.json'\n"));
        assert_eq!(lines.lines().count(), 3 + f.room_ids.len() + 3);
    }

    #[test]
    fn the_default_fixture_is_per_schema_and_outside_the_working_tree() {
        let plain = default_fixture_path(None);
        let schema = default_fixture_path(Some("ward_b"));
        assert!(plain.ends_with("roomsim/fixture.json"), "{}", plain.display());
        assert!(schema.ends_with("roomsim/fixture-ward_b.json"), "{}", schema.display());
        let here = std::env::current_dir().unwrap();
        assert!(!plain.starts_with(&here), "{} is inside {}", plain.display(), here.display());
    }

    #[test]
    fn fixture_errors_name_the_file_and_field() {
        let dir = std::env::temp_dir().join(format!("roomsim-fixture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.json");
        let mut f = fixture();
        f.room_ids.clear();
        f.save(&path).unwrap();
        let err = Fixture::load(&path).unwrap_err().to_string();
        assert!(err.contains("f.json") && err.contains("room_ids"), "{err}");
        std::fs::write(&path, "{").unwrap();
        assert!(Fixture::load(&path).unwrap_err().to_string().contains("f.json"));
    }
}
