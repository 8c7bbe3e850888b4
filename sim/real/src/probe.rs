//! The machine-speed probe: how fast this machine is, measured in a second, so a latency
//! profile measured on one machine (or day) can be used on another (issue #17).
//!
//! WHAT: two medians, written by `roomsim calibrate` as the profile's `[machine]` table
//! (`sim::world::MachineSpeed`) and measured again by `validate`, which scales the profile by
//! the ratios now ÷ recorded ([`scale_to_this_machine`]):
//!
//! - `allocation_ns`: backend-core's `allocate` on a fixed clinic (60 rooms, 20 appointments
//!   per room-day, the default rule set; the fixture of `backend-core/benches/rules.rs`),
//!   median of [`CPU_BATCHES`] batches — the kind of CPU work the profile's `[cpu]` tables
//!   describe (rules evaluation, HTTP and JSON are all short pure-CPU bursts);
//! - `select_one_us`: a `SELECT 1` round trip on one connection to the database being
//!   measured, median of [`SELECT_SAMPLES`] — a statement's fixed part: loopback, the
//!   PostgreSQL backend's parse/plan/execute, the client's decode. It scales the statement
//!   tables.
//!
//! WHY medians of short runs: the probe must itself be robust to the noise it corrects for
//! (another process taking a core for a while moves a mean, not a median).
//!
//! NOT MODELLED: that statements with real work (index scans, constraint checks) may scale
//! differently from `SELECT 1`; memory bandwidth; a machine with a different core count
//! (the profile's `cores` stays as recorded).

use std::hint::black_box;
use std::time::Instant;

use backend_core::allocator::fixture::{Fixture, at};
use backend_core::allocator::{AllocatorConfig, allocate};
use backend_core::domain::OpeningHours;
use backend_core::rules::default_rule_set;
use sim::world::{MachineSpeed, Profile};

use crate::RealError;
use crate::database::DbTarget;

/// Batches of allocations timed.
pub const CPU_BATCHES: usize = 15;
/// Allocations per batch.
pub const CPU_CALLS_PER_BATCH: usize = 20;
/// `SELECT 1` round trips timed (after [`SELECT_WARMUP`] untimed ones).
pub const SELECT_SAMPLES: usize = 301;
const SELECT_WARMUP: usize = 20;

fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median ns of one `allocate` call on the fixed clinic.
pub fn allocation_ns() -> f64 {
    let rules = default_rule_set();
    let mut clinic = Fixture::generated(60, 42);
    clinic.snapshot.clinic.opening_hours = OpeningHours::default();
    clinic.fill_rooms(20, 20);
    clinic.request.start = at(8, 0);
    clinic.request.end = at(8, 20);
    let config = AllocatorConfig::default();
    let call = || {
        black_box(allocate(&rules, &clinic.snapshot, &clinic.request, &config).is_ok());
    };
    call(); // Warm the caches once.
    let batches = (0..CPU_BATCHES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..CPU_CALLS_PER_BATCH {
                call();
            }
            started.elapsed().as_nanos() as f64 / CPU_CALLS_PER_BATCH as f64
        })
        .collect();
    median(batches)
}

/// Median µs of a `SELECT 1` round trip to `target`.
pub async fn select_one_us(target: &DbTarget) -> Result<f64, RealError> {
    let db = target.pool(1).await?;
    let mut conn = db
        .pool()
        .acquire()
        .await
        .map_err(|e| RealError::Database(format!("{}: {e}", target.describe())))?;
    let mut samples = Vec::with_capacity(SELECT_SAMPLES);
    for index in 0..SELECT_WARMUP + SELECT_SAMPLES {
        let started = Instant::now();
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(|e| RealError::Database(format!("SELECT 1 on {}: {e}", target.describe())))?;
        if index >= SELECT_WARMUP {
            samples.push(started.elapsed().as_nanos() as f64 / 1_000.0);
        }
    }
    Ok(median(samples))
}

/// Both probes: this machine's speed now.
pub async fn measure(target: &DbTarget) -> Result<MachineSpeed, RealError> {
    let select_one_us = select_one_us(target).await?;
    Ok(MachineSpeed { allocation_ns: allocation_ns(), select_one_us })
}

/// The profile's `[machine]` table for `speed`.
pub fn toml_section(speed: &MachineSpeed) -> String {
    format!(
        "\n[machine]\n# machine-speed probe (sim/real/src/probe.rs): backend-core's allocate on \
         a fixed 60-room clinic, median ns; SELECT 1 round trip, median us\n\
         allocation_ns = {:.1}\nselect_one_us = {:.1}\n",
        speed.allocation_ns, speed.select_one_us
    )
}

/// `profile` scaled from the machine it recorded to `now`, and the line that says how; the
/// profile unchanged (and a line saying why) when it recorded no probe.
pub fn scale_to_this_machine(profile: &Profile, now: &MachineSpeed) -> (Profile, String) {
    let Some(recorded) = profile.machine else {
        let line = format!(
            "machine probe: SELECT 1 {:.1} us, allocation {:.1} us; the profile records no probe \
             (calibrate with this version to record one): NOT scaled",
            now.select_one_us,
            now.allocation_ns / 1_000.0
        );
        return (profile.clone(), line);
    };
    let (statements, backend_cpu) = now.ratios_to(&recorded);
    let line = format!(
        "machine probe: statements x{statements:.2} (SELECT 1 {:.1} us now, {:.1} us recorded), \
         backend CPU x{backend_cpu:.2} (allocation {:.1} us now, {:.1} us recorded)",
        now.select_one_us,
        recorded.select_one_us,
        now.allocation_ns / 1_000.0,
        recorded.allocation_ns / 1_000.0
    );
    (profile.scaled(statements, backend_cpu, Some(*now)), line)
}

/// A profile's text without its `[machine]` section (calibrate writes it last), e.g. to
/// record another probe in its place.
pub fn without_probe(text: &str) -> &str {
    text.find("\n[machine]").map_or(text, |at| &text[..=at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_round_trips_through_a_profile_and_scales_it() {
        let recorded = MachineSpeed { allocation_ns: 50_000.0, select_one_us: 40.0 };
        let text = format!(
            "{}{}",
            without_probe(model::profile::DEFAULT_PROFILE_TOML),
            toml_section(&recorded)
        );
        let profile = Profile::from_toml_str(&text, "probe").unwrap();
        assert_eq!(profile.machine, Some(recorded));
        let now = MachineSpeed { allocation_ns: 75_000.0, select_one_us: 60.0 };
        let (scaled, line) = scale_to_this_machine(&profile, &now);
        assert!(line.contains("statements x1.50") && line.contains("backend CPU x1.50"), "{line}");
        assert_eq!(scaled.statements, profile.statements.scaled(1.5));
        let unprobed =
            Profile::from_toml_str(without_probe(model::profile::DEFAULT_PROFILE_TOML), "unprobed")
                .unwrap();
        assert_eq!(unprobed.machine, None);
        let (same, line) = scale_to_this_machine(&unprobed, &now);
        assert!(line.contains("NOT scaled"), "{line}");
        assert_eq!(same, unprobed);
        // The committed profile records its probe, so validate scales it.
        assert!(Profile::default_profile().machine.is_some(), "the committed profile's probe");
    }

    #[test]
    fn the_cpu_probe_measures_something_positive() {
        let ns = allocation_ns();
        assert!(ns.is_finite() && ns > 100.0, "{ns}");
    }
}
