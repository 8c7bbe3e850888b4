//! Validation of a parsed scenario: ranges, formats and cross references.
//!
//! Runs after serde (which already rejected unknown fields and wrong types) and after the
//! clinic generator, so the checked lists are the ones the simulation will use. The first
//! problem found is reported with its dotted field path; validation never panics on input.

use std::collections::BTreeSet;

use crate::schema::{Fault, Participants, Scenario, SlotPick};

/// Concurrent booking tasks in one run.
pub const BOOKERS_MAX: u32 = 1_000;
/// Bookings in one run (bookers × bookings_per_booker).
pub const BOOKINGS_MAX: u32 = 10_000;
pub const ROOMS_MAX: u32 = 500;
pub const DOCTORS_MAX: u32 = 1_000;
pub const PATIENTS_MAX: u32 = 20_000;
pub const POOL_SIZE_MAX: u32 = 256;
pub const LATENCY_US_MAX: u64 = 1_000_000;
pub const SIMULATION_MS_MAX: u64 = 3_600_000;
pub const FAULTS_MAX: usize = 64;
pub const DURATION_MIN_MAX: u32 = 24 * 60;

/// A validation failure: (field path, problem).
pub type Problem = (String, String);

fn fail<T>(field: impl Into<String>, problem: impl Into<String>) -> Result<T, Problem> {
    Err((field.into(), problem.into()))
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), Problem> {
    if value < min || value > max {
        return fail(field, format!("{value} is out of range {min}..={max}"));
    }
    Ok(())
}

/// Parses `HH:MM` into minutes since midnight.
pub fn parse_hhmm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Parses `YYYY-MM-DD` into seconds since the Unix epoch at 00:00 UTC.
pub fn parse_day_unix_s(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    if d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    // days_from_civil (Howard Hinnant), valid for the proleptic Gregorian calendar.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

fn check_unique<'a>(field: &str, names: impl Iterator<Item = &'a String>) -> Result<(), Problem> {
    // BTreeSet: the first duplicate reported is the same on every run (for determinism).
    let mut seen = BTreeSet::new();
    for (index, name) in names.enumerate() {
        if name.trim().is_empty() {
            return fail(format!("{field}[{index}].name"), "must not be empty");
        }
        if !seen.insert(name.as_str()) {
            return fail(format!("{field}[{index}].name"), format!("duplicate name `{name}`"));
        }
    }
    Ok(())
}

/// Checks everything; the first problem wins.
pub fn validate(s: &Scenario) -> Result<(), Problem> {
    if s.name.trim().is_empty() {
        return fail("name", "must not be empty");
    }
    if s.rules.trim().is_empty() {
        return fail("rules", "must name a built-in rule set or a rule-set file");
    }
    let (opens, closes) = validate_clinic(s)?;
    validate_workload(s, opens, closes)?;
    validate_backend_network(s)?;
    validate_faults(s)?;
    validate_criteria(s)
}

fn validate_clinic(s: &Scenario) -> Result<(u32, u32), Problem> {
    let c = &s.clinic;
    if parse_day_unix_s(&c.day).is_none() {
        return fail("clinic.day", format!("`{}` is not a date YYYY-MM-DD", c.day));
    }
    let opens = parse_hhmm(&c.opens).ok_or(("clinic.opens".into(), "not HH:MM".into()))?;
    let closes = parse_hhmm(&c.closes).ok_or(("clinic.closes".into(), "not HH:MM".into()))?;
    if closes <= opens {
        return fail("clinic.closes", "must be after clinic.opens");
    }
    check_range("clinic.rooms", c.rooms.len() as u32, 1, ROOMS_MAX)?;
    check_range("clinic.doctors", c.doctors.len() as u32, 1, DOCTORS_MAX)?;
    check_range("clinic.patients", c.patients.len() as u32, 1, PATIENTS_MAX)?;
    check_unique("clinic.rooms", c.rooms.iter().map(|r| &r.name))?;
    check_unique("clinic.doctors", c.doctors.iter().map(|d| &d.name))?;
    check_unique("clinic.patients", c.patients.iter().map(|p| &p.name))?;
    check_unique("clinic.appointment_types", c.appointment_types.iter().map(|t| &t.name))?;
    validate_rooms(s)?;
    validate_doctors_types(s)?;
    Ok((opens, closes))
}

fn validate_rooms(s: &Scenario) -> Result<(), Problem> {
    for (index, room) in s.clinic.rooms.iter().enumerate() {
        let field = format!("clinic.rooms[{index}]");
        check_range(&format!("{field}.capacity"), room.capacity, 1, 100)?;
        if !["active", "maintenance", "out_of_service"].contains(&room.status.as_str()) {
            return fail(
                format!("{field}.status"),
                format!("`{}` is not one of active, maintenance, out_of_service", room.status),
            );
        }
        if room.room_type.trim().is_empty() {
            return fail(format!("{field}.room_type"), "must not be empty");
        }
    }
    Ok(())
}

fn validate_doctors_types(s: &Scenario) -> Result<(), Problem> {
    let c = &s.clinic;
    let rooms: BTreeSet<&str> = c.rooms.iter().map(|r| r.name.as_str()).collect();
    for (index, doctor) in c.doctors.iter().enumerate() {
        for (k, room) in doctor.preferred_rooms.iter().enumerate() {
            if !rooms.contains(room.as_str()) {
                let field = format!("clinic.doctors[{index}].preferred_rooms[{k}]");
                return fail(field, format!("no room named `{room}`"));
            }
        }
    }
    if c.appointment_types.is_empty() {
        return fail("clinic.appointment_types", "at least one appointment type is needed");
    }
    let room_types: BTreeSet<&str> = c.rooms.iter().map(|r| r.room_type.as_str()).collect();
    for (index, t) in c.appointment_types.iter().enumerate() {
        let field = format!("clinic.appointment_types[{index}]");
        check_range(&format!("{field}.duration_min"), t.duration_min, 1, DURATION_MIN_MAX)?;
        check_range(&format!("{field}.turnover_min"), t.turnover_min, 0, 240)?;
        if t.room_types.is_empty() {
            return fail(format!("{field}.room_types"), "at least one room type is needed");
        }
        for (k, rt) in t.room_types.iter().enumerate() {
            if !room_types.contains(rt.as_str()) {
                let problem = format!("no room has room_type `{rt}`");
                return fail(format!("{field}.room_types[{k}]"), problem);
            }
        }
    }
    Ok(())
}

fn validate_workload(s: &Scenario, opens: u32, closes: u32) -> Result<(), Problem> {
    let w = &s.workload;
    check_range("workload.bookers", w.bookers, 1, BOOKERS_MAX)?;
    check_range("workload.bookings_per_booker", w.bookings_per_booker, 1, BOOKINGS_MAX)?;
    let total = w.bookers.saturating_mul(w.bookings_per_booker);
    if total > BOOKINGS_MAX {
        return fail("workload", format!("{total} bookings exceed the limit {BOOKINGS_MAX}"));
    }
    check_range("workload.window_ms", w.window_ms, 0, s.limits.simulation_ms_max)?;
    check_range("workload.client_retries_max", w.client_retries_max, 0, 20)?;
    check_range("workload.request_timeout_ms", w.request_timeout_ms, 1, 600_000)?;
    let first = parse_hhmm(&w.slots.first)
        .ok_or(("workload.slots.first".to_string(), "not HH:MM".to_string()))?;
    check_range("workload.slots.count", w.slots.count, 1, 1_000)?;
    check_range("workload.slots.step_min", w.slots.step_min, 1, DURATION_MIN_MAX)?;
    let longest = s.clinic.appointment_types.iter().map(|t| t.duration_min).max().unwrap_or(0);
    let last_end = first + (w.slots.count - 1) * w.slots.step_min + longest;
    if first < opens || last_end > closes {
        let problem = format!(
            "slots run {}..{} (minutes of day) but the clinic is open {opens}..{closes}",
            first, last_end
        );
        return fail("workload.slots", problem);
    }
    if w.participants == Participants::Disjoint {
        if w.slots.pick != SlotPick::RoundRobin {
            return fail("workload.participants", "`disjoint` needs slots.pick = round_robin");
        }
        if (s.clinic.patients.len() as u32) < total {
            let problem = format!("`disjoint` needs a patient per booking ({total})");
            return fail("workload.participants", problem);
        }
    }
    Ok(())
}

fn validate_backend_network(s: &Scenario) -> Result<(), Problem> {
    check_range("backend.pool_size", s.backend.pool_size, 1, POOL_SIZE_MAX)?;
    check_range("backend.acquire_timeout_ms", s.backend.acquire_timeout_ms, 1, 600_000)?;
    check_range("backend.db_retries_max", s.backend.db_retries_max, 0, 50)?;
    let n = &s.network;
    check_range("network.latency_us_min", n.latency_us_min, 0, LATENCY_US_MAX)?;
    check_range("network.latency_us_max", n.latency_us_max, 0, LATENCY_US_MAX)?;
    if n.latency_us_max < n.latency_us_min {
        return fail("network.latency_us_max", "must be at least network.latency_us_min");
    }
    check_range("limits.simulation_ms_max", s.limits.simulation_ms_max, 1, SIMULATION_MS_MAX)
}

fn validate_faults(s: &Scenario) -> Result<(), Problem> {
    if s.faults.len() > FAULTS_MAX {
        return fail("faults", format!("{} faults exceed the limit {FAULTS_MAX}", s.faults.len()));
    }
    for (index, fault) in s.faults.iter().enumerate() {
        let field = format!("faults[{index}]");
        if fault.end_ms() >= s.limits.simulation_ms_max {
            let problem = format!(
                "ends at {} ms, after limits.simulation_ms_max = {}",
                fault.end_ms(),
                s.limits.simulation_ms_max
            );
            return fail(field, problem);
        }
        if fault.end_ms() == fault.at_ms() {
            return fail(field, "has zero duration");
        }
        let rate = match fault {
            Fault::Loss { rate, .. }
            | Fault::ClientAbort { rate, .. }
            | Fault::SlowClients { rate, .. }
            | Fault::DbConnectionDrop { rate, .. } => Some(*rate),
            _ => None,
        };
        if let Some(rate) = rate
            && !(rate > 0.0 && rate <= 1.0)
        {
            return fail(format!("{field}.rate"), format!("{rate} is not in (0, 1]"));
        }
        match fault {
            Fault::ClientAbort { after_us_max, .. } => {
                let name = format!("{field}.after_us_max");
                check_range(&name, *after_us_max, 1, CLIENT_DELAY_US_MAX)?;
            }
            Fault::SlowClients { chunk_bytes, gap_us, .. } => {
                check_range(&format!("{field}.chunk_bytes"), u64::from(*chunk_bytes), 1, 65_536)?;
                check_range(&format!("{field}.gap_us"), *gap_us, 1, CLIENT_DELAY_US_MAX)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Longest client-side delay a fault may draw: 10 s, modelled.
pub const CLIENT_DELAY_US_MAX: u64 = 10_000_000;

fn validate_criteria(s: &Scenario) -> Result<(), Problem> {
    let c = &s.criteria;
    let limits = [
        ("criteria.room_assignment_p95_ms", c.room_assignment_p95_ms),
        ("criteria.conflict_detection_p95_ms", c.conflict_detection_p95_ms),
        ("criteria.rules_evaluation_ms_max", c.rules_evaluation_ms_max),
    ];
    for (field, value) in limits {
        if let Some(v) = value {
            check_range(field, v, 1, 600_000)?;
        }
    }
    if let Some(t) = c.throughput_per_s_min {
        check_range("criteria.throughput_per_s_min", t, 1, 1_000_000)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse_and_reject() {
        assert_eq!(parse_day_unix_s("1970-01-01"), Some(0));
        assert_eq!(parse_day_unix_s("2026-03-02"), Some(1_772_409_600));
        assert_eq!(parse_day_unix_s("2026-02-29"), None);
        assert_eq!(parse_day_unix_s("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_day_unix_s("2026-3-02"), None);
        assert_eq!(parse_hhmm("09:30"), Some(570));
        assert_eq!(parse_hhmm("24:00"), None);
        assert_eq!(parse_hhmm("9:30"), None);
    }
}
