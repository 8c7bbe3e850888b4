//! The profile a run draws its costs from: one TOML file (`--profile FILE`, default
//! `model/profiles/default.toml`, written by `roomsim calibrate`) read twice —
//!
//! - its statement tables (`[kinds]`, `[classes]`) by the model (`model::profile::
//!   LatencyProfile`): what PostgreSQL takes per statement;
//! - its `[cpu]` table here ([`BackendCpu`]): what the BACKEND takes, charged by the cost model
//!   next door (`cpu.rs`).
//!
//! `[cpu]` holds `rules_ns_per_check = [[q, ns], …]` (the rules evaluation's CPU per rule
//! check; a run charges `checks × draw`), optionally `request_us = [[q, us], …]` (the backend's
//! CPU per HTTP request outside statements and rules: HTTP, JSON, the handler, the client's
//! side) and `cores = N` (the cores the database and the backend SHARE on the measured
//! machine; with it statements and the backend's CPU run on one pool of N cores, so CPU
//! contention emerges under load — `model::io::Cores`), and optionally `quantum_us = Q` (the
//! kernel's time slice on those shared cores, modelled µs, a whole number of 25 µs ticks: a
//! piece of work holds a core for at most Q while other work waits, then queues again —
//! round-robin, issue #17; absent or 0: each piece runs to its end; calibrate writes
//! [`QUANTUM_US_CALIBRATED`]), and optionally `offpath_us = U` (needs `cores`: µs of CPU the
//! machine spends per request after answering it, on the shared cores; a knob for validate,
//! not measured by calibrate — sim/README.md), and optionally `statement_core_fraction = F`
//! (needs `cores`; 0 < F ≤ 1, absent: 1): the share of a statement's drawn round trip that
//! holds a core — the rest (wake-ups, the WAL flush's wait) passes without one; written by
//! calibrate from the machine's CPU per booking (issue #17), and optionally
//! `backend_workers = W` (needs `cores`; absent or 0: no limit): the threads the backend's CPU
//! work runs on — a request's CPU and a rules evaluation each hold one of W workers while they
//! wait for a core and run on it, as the real side's tokio tasks run one at a time on its
//! worker threads (`world::cpu`), and optionally `busy_cost_factor = B` (needs `cores`;
//! 0 < B ≤ 1, absent: 1): the backend's CPU costs (a request's CPU, a rules evaluation) on a
//! BUSY machine as a share of their cost on an idle one — a piece charged while the backend
//! serves another request beside its own costs B times its draw (issue #17: the real rules
//! evaluation of a 201 takes 25 µs at 1 user and 15-17 µs at 10-50 users; warm caches, no
//! wake-up from idle; `world::cpu::InFlight`), and optionally `sharing = "…"` (needs
//! `cores` and `quantum_us` unless "one-pool"; absent: "one-pool"): how waiting work shares
//! the cores (`model::io::Sharing`) — "one-pool" (FIFO), "two-groups" (the database's
//! statements and the service's work as two scheduling groups, as a kernel with autogroups
//! shares the cores between PostgreSQL's group and the shell's), "ping-pong-first" (two groups, and
//! a statement sent right after its session's previous reply before any other database work),
//! "ping-pong-cooperative" (ping-pong first, and the service's pieces run to their end rather than
//! take turns among themselves, as tokio tasks on worker threads), and
//! optionally `resume_share = S` (needs `cores` and `request_us`; 0 ≤ S < 1, absent: 0): the share
//! of a request's drawn CPU that the backend spends AFTER its statements' replies, a tick on a core
//! after each reply (from the draw, while it lasts; what is left after the handler), instead of
//! before its handler — as a real service task must be run on a core again after each reply before
//! it sends its next statement (`world::cpu::ResumeCpu`; sim/README.md, session 27).
//! Tables follow the model's rules for empirical tables
//! (`model::profile::validate_quantile_table`); errors name the field (`cpu.request_us: …`).
//!
//! `[machine]` (optional, [`MachineSpeed`]) is the machine-speed probe `roomsim calibrate`
//! took beside its measurements (`real::probe`): the backend's allocation of a fixed clinic
//! (ns) and a `SELECT 1` round trip (µs). `validate` reports the same probe, but scales the
//! profile by its statement probe (`real::probe`: a short calibration; [`Profile::scaled_each`]
//! and the statement classes one by one), which tracked this VM's speed where this did not.

use std::path::Path;

use model::io::Sharing;
use model::io::cores::CORES_MAX;
use model::profile::{
    LatencyProfile, ProfileError, SERVICE_US_MAX, inverse_cdf, scale_table, validate_quantile_table,
};
use rand::Rng;
use serde::Deserialize;

use crate::timescale::RESOLUTION_US;

/// A run's costs: the database's statements and the backend's CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Per statement kind and class (the model's part of the file).
    pub statements: LatencyProfile,
    /// The backend's costs (`[cpu]`), when the profile measured them.
    pub backend_cpu: Option<BackendCpu>,
    /// The machine-speed probe taken when the profile was measured (`[machine]`).
    pub machine: Option<MachineSpeed>,
}

/// A machine's speed by a short probe (`[machine]` of a profile; measured by `real::probe`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpeed {
    /// backend-core's `allocate` on a fixed 60-room clinic, median ns per call: the backend's
    /// CPU speed.
    pub allocation_ns: f64,
    /// `SELECT 1` round trip to PostgreSQL over loopback, median µs: the database's speed
    /// per statement, network stack included.
    pub select_one_us: f64,
}

impl MachineSpeed {
    /// Largest speed ratio a profile is scaled by (either way): beyond it the machines are too
    /// different for a linear scale to mean anything.
    pub const RATIO_MAX: f64 = 4.0;

    fn check(&self) -> Result<(), String> {
        for (name, value) in
            [("allocation_ns", self.allocation_ns), ("select_one_us", self.select_one_us)]
        {
            if !(value.is_finite() && value > 0.0 && value <= SERVICE_US_MAX as f64 * 1_000.0) {
                return Err(format!("{name}: {value} is not a positive time"));
            }
        }
        Ok(())
    }

    /// (statements, backend CPU): how much slower `self` (now) is than `recorded`, each ratio
    /// clamped to 1/[`Self::RATIO_MAX`]..=[`Self::RATIO_MAX`].
    pub fn ratios_to(&self, recorded: &MachineSpeed) -> (f64, f64) {
        let clamp = |r: f64| r.clamp(1.0 / Self::RATIO_MAX, Self::RATIO_MAX);
        (
            clamp(self.select_one_us / recorded.select_one_us),
            clamp(self.allocation_ns / recorded.allocation_ns),
        )
    }
}

/// The backend's measured costs (`[cpu]`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendCpu {
    /// ns per rule check.
    rules_ns_per_check: Vec<(f64, f64)>,
    /// µs per rules evaluation whatever its checks (`None`: 0).
    rules_fixed_us: Option<f64>,
    /// µs per HTTP request outside statements and rules.
    request_us: Option<Vec<(f64, f64)>>,
    /// Cores shared by the database and the backend.
    cores: Option<u32>,
    /// Time slice on the shared cores, modelled µs (`None`: run to completion).
    quantum_us: Option<u64>,
    /// The machine's CPU per request off the request's own path, µs (`None`: none).
    offpath_us: Option<f64>,
    /// Share of a statement's draw that holds a core (`None`: all of it).
    statement_core_fraction: Option<f64>,
    /// Threads the backend's CPU work runs on (`None`: as many as want one).
    backend_workers: Option<u32>,
    /// The backend's CPU costs on a busy machine, as a share of an idle one's (`None`: 1).
    busy_cost_factor: Option<f64>,
    /// How waiting work shares the shared cores.
    sharing: Sharing,
    /// Share of a request's CPU spent after its statements' replies (`None`: 0).
    resume_share: Option<f64>,
}

/// The time slice `roomsim calibrate` writes (`[cpu] quantum_us`), modelled µs: one tick,
/// processor sharing on the simulation's clock. NOT measured (the kernel's slices are
/// milliseconds, and 1.5 ms or 0.75 ms slices changed nothing): at 50 µs (then the tick)
/// validate's double-booking incidence of the broken strategies at 25 and 50 users came
/// within 2× of PostgreSQL's, run to completion it was 2-5× low (sim/README.md, "Time
/// slicing"). The clock went to 25 µs ticks and the slice stayed 50 µs, two ticks, until
/// 2026-12-06 ~19:30: at one tick, rules evaluation's p95 at 25 and 50 users came into band
/// (0.77 and 0.92 of real against 0.48 and 0.47 at 50 µs, one real side), the rest unchanged
/// and the incidence still within 2×.
pub const QUANTUM_US_CALIBRATED: u64 = crate::timescale::RESOLUTION_US;

/// How the shared cores are shared, as `roomsim calibrate` writes it (`[cpu] sharing`): NOT
/// measured. Ping-pong cooperative since 2026-12-08: in six paired validate runs against one
/// real side each (storm three times, conflict and `all` twice; sim/README.md, "Session 32")
/// it had 58 judged quantiles out of band where one pool had 80, and kept the broken
/// strategies' double-booking incidence within 2× of PostgreSQL's.
pub const SHARING_CALIBRATED: Sharing = Sharing::PingPongCooperative;

/// Longest `[cpu] quantum_us` (1 s; CFS/EEVDF slices are milliseconds).
pub const QUANTUM_US_MAX: u64 = 1_000_000;

/// The file as this module reads it: only `[cpu]` (the model reads and checks the rest).
#[derive(Deserialize)]
struct RawFile {
    cpu: Option<RawCpu>,
    machine: Option<MachineSpeed>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCpu {
    rules_ns_per_check: Vec<(f64, f64)>,
    rules_fixed_us: Option<f64>,
    request_us: Option<Vec<(f64, f64)>>,
    cores: Option<u32>,
    quantum_us: Option<u64>,
    offpath_us: Option<f64>,
    statement_core_fraction: Option<f64>,
    backend_workers: Option<u32>,
    busy_cost_factor: Option<f64>,
    sharing: Option<String>,
    resume_share: Option<f64>,
}

impl Profile {
    /// The committed default profile (`model/profiles/default.toml`).
    pub fn default_profile() -> Profile {
        Profile::from_toml_str(model::profile::DEFAULT_PROFILE_TOML, "profiles/default.toml")
            .expect("the committed default profile must be valid")
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            source_name: name.clone(),
            field: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Profile::from_toml_str(&text, &name)
    }

    /// Parses and validates both parts; `source_name` is used in error messages.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Profile, ProfileError> {
        let statements = LatencyProfile::from_toml_str(text, source_name)?;
        let backend_cpu = BackendCpu::from_toml_str(text, source_name)?;
        let machine = machine_from_toml_str(text, source_name)?;
        Ok(Profile { statements, backend_cpu, machine })
    }

    /// The profile of a machine `statements` times slower per statement, `rules` times in
    /// the rules' cost per check and `request` times in the backend's CPU per request; the
    /// recorded probe stays.
    pub fn scaled_each(&self, statements: f64, rules: f64, request: f64) -> Profile {
        Profile {
            statements: self.statements.scaled(statements),
            backend_cpu: self.backend_cpu.as_ref().map(|cpu| cpu.scaled_each(rules, request)),
            machine: self.machine,
        }
    }

    /// The same profile with another off-path CPU per request (`[cpu] offpath_us`, µs;
    /// `None` or 0 = none). Errors name the reason (no `[cpu]` table or no shared cores, not
    /// a time).
    pub fn with_offpath_us(&self, offpath_us: Option<f64>) -> Result<Profile, String> {
        self.with_cpu(|cpu| cpu.with_offpath_us(offpath_us))
    }

    /// The same profile with another time slice on its shared cores (`quantum_us`: modelled
    /// µs, `None` or 0 = run to completion, on one pool). Errors name the reason (no `[cpu]` table, a
    /// slice that is not a whole number of ticks).
    pub fn with_quantum_us(&self, quantum_us: Option<u64>) -> Result<Profile, String> {
        self.with_cpu(|cpu| cpu.with_quantum_us(quantum_us))
    }

    /// The same profile with another statement core fraction (`[cpu]
    /// statement_core_fraction`, 0 < f ≤ 1). Errors name the reason (no `[cpu]` table or no
    /// shared cores, out of range).
    pub fn with_statement_core_fraction(&self, fraction: f64) -> Result<Profile, String> {
        self.with_cpu(|cpu| {
            check_core_fraction(fraction, cpu.cores)?;
            Ok(BackendCpu { statement_core_fraction: Some(fraction), ..cpu.clone() })
        })
    }

    /// The same profile with another sharing of its shared cores (`[cpu] sharing`). Errors
    /// name the reason (no `[cpu]` table, no cores or quantum).
    pub fn with_sharing(&self, sharing: Sharing) -> Result<Profile, String> {
        self.with_cpu(|cpu| cpu.with_sharing(sharing))
    }

    /// The same profile with another resume share (`[cpu] resume_share`, 0 ≤ s < 1). Errors
    /// name the reason (no `[cpu]` table, no cores or request CPU, out of range).
    pub fn with_resume_share(&self, share: f64) -> Result<Profile, String> {
        self.with_cpu(|cpu| cpu.with_resume_share(share))
    }

    /// The same profile with another busy-machine cost factor (`[cpu] busy_cost_factor`,
    /// 0 < b ≤ 1). Errors name the reason (no `[cpu]` table or no shared cores, out of range).
    pub fn with_busy_cost_factor(&self, factor: f64) -> Result<Profile, String> {
        self.with_cpu(|cpu| {
            check_busy_cost_factor(factor, cpu.cores)?;
            Ok(BackendCpu { busy_cost_factor: Some(factor), ..cpu.clone() })
        })
    }

    /// The same profile with another WAL flush share of a writing COMMIT (`[wal]
    /// commit_flush_share`, 0 ≤ s ≤ 0.95; 0: no flush modelled; `model::io::wal`).
    pub fn with_commit_flush_share(&self, share: f64) -> Result<Profile, String> {
        let statements = self.statements.with_commit_flush_share(share)?;
        Ok(Profile { statements, ..self.clone() })
    }

    /// The same profile with another number of backend worker threads (`[cpu]
    /// backend_workers`; `None` or 0 = no limit). Errors name the reason (no `[cpu]` table or
    /// no shared cores, too many).
    pub fn with_backend_workers(&self, workers: Option<u32>) -> Result<Profile, String> {
        self.with_cpu(|cpu| cpu.with_backend_workers(workers))
    }

    /// The same profile with its `[cpu]` table changed by `change` (which checks the new
    /// value); an error without a `[cpu]` table, which every such knob needs.
    fn with_cpu(
        &self,
        change: impl FnOnce(&BackendCpu) -> Result<BackendCpu, String>,
    ) -> Result<Profile, String> {
        let Some(cpu) = &self.backend_cpu else {
            return Err("the profile has no [cpu] table (no shared cores)".into());
        };
        Ok(Profile { backend_cpu: Some(change(cpu)?), ..self.clone() })
    }
}

/// The `[machine]` table of a profile file, if it has one.
fn machine_from_toml_str(
    text: &str,
    source_name: &str,
) -> Result<Option<MachineSpeed>, ProfileError> {
    let err = |field: &str, reason: String| ProfileError {
        source_name: source_name.to_string(),
        field: field.to_string(),
        reason,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| err("(toml)", e.message().to_string()))?;
    let Some(machine) = raw.machine else { return Ok(None) };
    machine.check().map_err(|reason| err("machine", reason))?;
    Ok(Some(machine))
}

/// A time in µs: finite, 0 to [`SERVICE_US_MAX`].
fn check_us(us: f64) -> Result<(), String> {
    if !(us.is_finite() && (0.0..=SERVICE_US_MAX as f64).contains(&us)) {
        return Err(format!("{us}: must be a time in µs from 0 to {SERVICE_US_MAX}"));
    }
    Ok(())
}

/// An off-path CPU per request is a time, spent on shared cores: it needs `cores`.
fn check_offpath_us(us: f64, cores: Option<u32>) -> Result<(), String> {
    check_us(us)?;
    if cores.is_none() {
        return Err("needs `cores`: the off-path CPU is spent on the shared cores".into());
    }
    Ok(())
}

/// A statement core fraction: more than 0, at most 1, on shared cores.
fn check_core_fraction(fraction: f64, cores: Option<u32>) -> Result<(), String> {
    if !(fraction.is_finite() && fraction > 0.0 && fraction <= 1.0) {
        return Err(format!("{fraction}: must be more than 0 and at most 1"));
    }
    if cores.is_none() {
        return Err("needs `cores`: it is the share of a statement that holds a shared core".into());
    }
    Ok(())
}

/// A busy-machine cost factor: more than 0, at most 1, on shared cores.
fn check_busy_cost_factor(factor: f64, cores: Option<u32>) -> Result<(), String> {
    if !(factor.is_finite() && factor > 0.0 && factor <= 1.0) {
        return Err(format!("{factor}: must be more than 0 and at most 1"));
    }
    if cores.is_none() {
        return Err("needs `cores`: it discounts the CPU the shared cores spend".into());
    }
    Ok(())
}

/// A resume share: 0 ≤ s < 1, of a request CPU (`request_us`) on shared cores.
fn check_resume_share(share: f64, cores: Option<u32>, request_us: bool) -> Result<(), String> {
    if !(share.is_finite() && (0.0..1.0).contains(&share)) {
        return Err(format!("{share}: must be at least 0 and less than 1"));
    }
    if cores.is_none() || !request_us {
        return Err(
            "needs `cores` and `request_us`: it moves request CPU on the shared cores".into()
        );
    }
    Ok(())
}

/// The names of [`Sharing`]'s values, as `[cpu] sharing` and `validate --sharing` spell them.
pub const SHARING_NAMES: [(&str, Sharing); 4] = [
    ("one-pool", Sharing::OnePool),
    ("two-groups", Sharing::TwoGroups),
    ("ping-pong-first", Sharing::PingPongFirst),
    ("ping-pong-cooperative", Sharing::PingPongCooperative),
];

/// The [`Sharing`] named `name` ([`SHARING_NAMES`]); an error lists the names.
pub fn parse_sharing(name: &str) -> Result<Sharing, String> {
    let found = SHARING_NAMES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    found.ok_or_else(|| {
        let names: Vec<&str> = SHARING_NAMES.iter().map(|(n, _)| *n).collect();
        format!("{name:?}: must be one of {}", names.join(", "))
    })
}

/// The name of `sharing` ([`SHARING_NAMES`]).
pub fn sharing_name(sharing: Sharing) -> &'static str {
    SHARING_NAMES.iter().find(|(_, s)| *s == sharing).map_or("?", |(n, _)| n)
}

/// Sharing other than one pool works in slices of the shared cores: `cores` and a quantum.
fn check_sharing(
    sharing: Sharing,
    cores: Option<u32>,
    quantum_us: Option<u64>,
) -> Result<(), String> {
    if sharing == Sharing::OnePool {
        return Ok(());
    }
    let name = sharing_name(sharing);
    if cores.is_none() {
        return Err(format!("{name:?} needs `cores`: it shares the shared cores"));
    }
    if quantum_us.is_none() {
        return Err(format!("{name:?} needs `quantum_us` (not 0): it shares the cores in slices"));
    }
    Ok(())
}

/// Backend worker threads: 1 to [`CORES_MAX`] (0 means no limit), on shared cores.
fn check_backend_workers(workers: u32, cores: Option<u32>) -> Result<(), String> {
    if workers as usize > CORES_MAX {
        return Err(format!("{workers}: must be 1..={CORES_MAX}, or 0 for no limit"));
    }
    if cores.is_none() {
        return Err("needs `cores`: the workers are threads on the shared cores".into());
    }
    Ok(())
}

/// A time slice must be a whole number of the simulation's 25 µs ticks (the clock moves in
/// ticks) and at most [`QUANTUM_US_MAX`]; 0 means none.
fn check_quantum_us(q: u64) -> Result<(), String> {
    if !q.is_multiple_of(RESOLUTION_US) || q > QUANTUM_US_MAX {
        return Err(format!(
            "{q} µs: must be a multiple of {RESOLUTION_US} µs (the clock's tick) up to \
             {QUANTUM_US_MAX}, or 0 for none"
        ));
    }
    Ok(())
}

impl BackendCpu {
    /// Median µs per HTTP request outside statements and rules, when measured.
    pub fn request_us_median(&self) -> Option<f64> {
        self.request_us.as_deref().map(|q| model::profile::inverse_cdf(q, 0.5))
    }

    /// Median µs of a rules evaluation of `checks` checks: the fixed part plus `checks` ×
    /// the median ns per check.
    pub fn rules_us_median_at(&self, checks: u64) -> f64 {
        let per_check_ns = model::profile::inverse_cdf(&self.rules_ns_per_check, 0.5);
        self.rules_fixed_us.unwrap_or(0.0) + per_check_ns * checks as f64 / 1_000.0
    }

    /// µs every rules evaluation costs whatever its checks (`[cpu] rules_fixed_us`).
    pub fn rules_fixed_us(&self) -> Option<f64> {
        self.rules_fixed_us
    }

    /// The `[cpu]` table of a profile file, if it has one.
    fn from_toml_str(text: &str, source_name: &str) -> Result<Option<BackendCpu>, ProfileError> {
        let err = |field: &str, reason: String| ProfileError {
            source_name: source_name.to_string(),
            field: field.to_string(),
            reason,
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| err("(toml)", e.message().to_string()))?;
        let Some(cpu) = raw.cpu else { return Ok(None) };
        validate_quantile_table(&cpu.rules_ns_per_check)
            .map_err(|r| err("cpu.rules_ns_per_check", r))?;
        if let Some(us) = cpu.rules_fixed_us {
            check_us(us).map_err(|r| err("cpu.rules_fixed_us", r))?;
        }
        if let Some(quantiles) = &cpu.request_us {
            validate_quantile_table(quantiles).map_err(|r| err("cpu.request_us", r))?;
        }
        if let Some(n) = cpu.cores
            && !(1..=CORES_MAX).contains(&(n as usize))
        {
            return Err(err("cpu.cores", format!("must be 1..={CORES_MAX}")));
        }
        if let Some(q) = cpu.quantum_us {
            check_quantum_us(q).map_err(|r| err("cpu.quantum_us", r))?;
        }
        if let Some(us) = cpu.offpath_us {
            check_offpath_us(us, cpu.cores).map_err(|r| err("cpu.offpath_us", r))?;
        }
        if let Some(f) = cpu.statement_core_fraction {
            check_core_fraction(f, cpu.cores).map_err(|r| err("cpu.statement_core_fraction", r))?;
        }
        if let Some(w) = cpu.backend_workers {
            check_backend_workers(w, cpu.cores).map_err(|r| err("cpu.backend_workers", r))?;
        }
        if let Some(b) = cpu.busy_cost_factor {
            check_busy_cost_factor(b, cpu.cores).map_err(|r| err("cpu.busy_cost_factor", r))?;
        }
        if let Some(share) = cpu.resume_share {
            check_resume_share(share, cpu.cores, cpu.request_us.is_some())
                .map_err(|r| err("cpu.resume_share", r))?;
        }
        let quantum_us = cpu.quantum_us.filter(|&q| q > 0);
        let sharing = match &cpu.sharing {
            Some(name) => parse_sharing(name).map_err(|r| err("cpu.sharing", r))?,
            None => Sharing::OnePool,
        };
        check_sharing(sharing, cpu.cores, quantum_us).map_err(|r| err("cpu.sharing", r))?;
        Ok(Some(BackendCpu {
            rules_ns_per_check: cpu.rules_ns_per_check,
            rules_fixed_us: cpu.rules_fixed_us.filter(|&us| us > 0.0),
            request_us: cpu.request_us,
            cores: cpu.cores,
            quantum_us,
            offpath_us: cpu.offpath_us.filter(|&us| us > 0.0),
            statement_core_fraction: cpu.statement_core_fraction,
            backend_workers: cpu.backend_workers.filter(|&w| w > 0),
            busy_cost_factor: cpu.busy_cost_factor,
            sharing,
            resume_share: cpu.resume_share.filter(|&s| s > 0.0),
        }))
    }

    /// Draws the CPU cost of one rules evaluation of `rule_checks` checks, in µs (fractional:
    /// the caller decides how to spend it on a coarser clock).
    pub fn sample_rules_us<R: Rng + ?Sized>(&self, rule_checks: u64, rng: &mut R) -> f64 {
        let ns = inverse_cdf(&self.rules_ns_per_check, rng.random::<f64>());
        let fixed_us = self.rules_fixed_us.unwrap_or(0.0);
        (fixed_us + ns * rule_checks as f64 / 1_000.0).min(SERVICE_US_MAX as f64)
    }

    /// Draws the backend's CPU for one HTTP request outside statements and rules, in µs.
    /// `None` without `request_us`.
    pub fn sample_request_us<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<f64> {
        let quantiles = self.request_us.as_ref()?;
        Some(inverse_cdf(quantiles, rng.random::<f64>()).min(SERVICE_US_MAX as f64))
    }

    /// Cores shared by the database and the backend (`cores`), if the profile says.
    pub fn shared_cores(&self) -> Option<u32> {
        self.cores
    }

    /// The time slice on the shared cores, modelled µs (`[cpu] quantum_us`); `None`: every
    /// piece of work runs to its end.
    pub fn quantum_us(&self) -> Option<u64> {
        self.quantum_us
    }

    /// The machine's CPU per request OFF the request's own path, µs (`[cpu] offpath_us`):
    /// what the machine spends per request beyond what the request's statements, rules and
    /// request CPU hold (see `world::cpu::RequestCpu`). `None`: nothing.
    pub fn offpath_us(&self) -> Option<f64> {
        self.offpath_us
    }

    /// The same costs with another off-path CPU per request (`None` or 0: none); checked as
    /// the profile key is.
    pub fn with_offpath_us(&self, offpath_us: Option<f64>) -> Result<BackendCpu, String> {
        if let Some(us) = offpath_us {
            check_offpath_us(us, self.cores)?;
        }
        Ok(BackendCpu { offpath_us: offpath_us.filter(|&us| us > 0.0), ..self.clone() })
    }

    /// Threads the backend's CPU work (request CPU, rules) runs on (`[cpu] backend_workers`);
    /// `None`: every piece of work takes a core for itself.
    pub fn backend_workers(&self) -> Option<u32> {
        self.backend_workers
    }

    /// The same costs with another number of backend workers (`None` or 0: no limit);
    /// checked as the profile key is.
    pub fn with_backend_workers(&self, workers: Option<u32>) -> Result<BackendCpu, String> {
        if let Some(w) = workers {
            check_backend_workers(w, self.cores)?;
        }
        Ok(BackendCpu { backend_workers: workers.filter(|&w| w > 0), ..self.clone() })
    }

    /// The same costs with another time slice (`None` or 0: run to completion, and then the
    /// cores one pool, whatever the sharing: grouped sharing works in slices); checked as the
    /// profile key is.
    pub fn with_quantum_us(&self, quantum_us: Option<u64>) -> Result<BackendCpu, String> {
        if let Some(q) = quantum_us {
            check_quantum_us(q)?;
        }
        let quantum_us = quantum_us.filter(|&q| q > 0);
        // Without slices the cores can only be one pool (grouped sharing works in slices).
        let sharing = if quantum_us.is_none() { Sharing::OnePool } else { self.sharing };
        check_sharing(sharing, self.cores, quantum_us).map_err(|e| format!("with sharing {e}"))?;
        Ok(BackendCpu { quantum_us, sharing, ..self.clone() })
    }

    /// How waiting work shares the shared cores (`[cpu] sharing`; one pool when absent).
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// The share of a request's drawn CPU (`request_us`) spent after its statements' replies,
    /// a tick per reply, instead of before its handler (`[cpu] resume_share`; 0 when absent;
    /// `world::cpu::ResumeCpu`).
    pub fn resume_share(&self) -> f64 {
        self.resume_share.unwrap_or(0.0)
    }

    /// The same costs with another resume share; checked as the profile key is.
    pub fn with_resume_share(&self, share: f64) -> Result<BackendCpu, String> {
        check_resume_share(share, self.cores, self.request_us.is_some())?;
        Ok(BackendCpu { resume_share: Some(share).filter(|&s| s > 0.0), ..self.clone() })
    }

    /// The same costs with another sharing; checked as the profile key is.
    pub fn with_sharing(&self, sharing: Sharing) -> Result<BackendCpu, String> {
        check_sharing(sharing, self.cores, self.quantum_us)?;
        Ok(BackendCpu { sharing, ..self.clone() })
    }

    /// The rules' cost per check `rules` times, the request CPU `request` times as long (a
    /// slower backend); the time slice is the kernel's and stays.
    pub fn scaled_each(&self, rules: f64, request: f64) -> BackendCpu {
        BackendCpu {
            rules_ns_per_check: scale_table(&self.rules_ns_per_check, rules),
            rules_fixed_us: self.rules_fixed_us.map(|us| us * rules),
            request_us: self.request_us.as_ref().map(|table| scale_table(table, request)),
            cores: self.cores,
            quantum_us: self.quantum_us,
            offpath_us: self.offpath_us.map(|us| us * request),
            statement_core_fraction: self.statement_core_fraction,
            backend_workers: self.backend_workers,
            busy_cost_factor: self.busy_cost_factor,
            sharing: self.sharing,
            resume_share: self.resume_share,
        }
    }

    /// The backend's CPU costs on a busy machine as a share of an idle one's (`[cpu]
    /// busy_cost_factor`; 1 when absent).
    pub fn busy_cost_factor(&self) -> f64 {
        self.busy_cost_factor.unwrap_or(1.0)
    }

    /// The share of a statement's drawn round trip that holds a shared core
    /// (`[cpu] statement_core_fraction`; 1 when absent).
    pub fn statement_core_fraction(&self) -> f64 {
        self.statement_core_fraction.unwrap_or(1.0)
    }
}

/// The committed default profile's statement tables, without its `[cpu]`: what tests put a
/// `[cpu]` table of their own after.
#[cfg(test)]
pub(crate) fn default_statements_toml() -> &'static str {
    let text = model::profile::DEFAULT_PROFILE_TOML;
    &text[..text.find("\n[cpu]").expect("the default profile has [cpu]")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The default profile's statement tables, without its `[cpu]`.
    fn statements_only() -> String {
        default_statements_toml().to_string()
    }

    /// Each of `tails` after the `[cpu]` table `cpu` is refused, the error naming `field`.
    fn each_refused_naming(cpu: &str, field: &str, tails: &[&str]) {
        for tail in tails {
            let bad = format!("{}\n{cpu}{tail}\n", statements_only());
            let e = Profile::from_toml_str(&bad, "b").unwrap_err();
            assert_eq!(e.field, field, "{bad}: {e}");
        }
    }

    #[test]
    fn the_resume_share_is_optional_checked_and_kept_by_scaling() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let request = "request_us = [[0.0, 300.0], [1.0, 500.0]]\ncores = 2\n";
        let base = statements_only();
        let read = |tail: &str| {
            let text = format!("{base}\n{cpu}{request}{tail}\n");
            Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap()
        };
        assert_eq!(read("").resume_share(), 0.0, "absent: all before the handler");
        let half = read("resume_share = 0.5");
        assert_eq!(half.resume_share(), 0.5);
        assert_eq!(half.scaled_each(2.0, 2.0).resume_share(), 0.5, "a share, not a time");
        assert_eq!(read("").with_resume_share(0.25).unwrap().resume_share(), 0.25);
        assert!(read("").with_resume_share(1.0).unwrap_err().contains("less than 1"));
        let bad = ["resume_share = 1.0", "resume_share = -0.1", "resume_share = nan"];
        each_refused_naming(&format!("{cpu}{request}"), "cpu.resume_share", &bad);
        each_refused_naming(cpu, "cpu.resume_share", &["cores = 2\nresume_share = 0.5"]);
    }

    #[test]
    fn the_sharing_is_one_pool_unless_named_and_the_others_need_cores_and_a_quantum() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let base = statements_only();
        let read = |tail: &str| {
            let text = format!("{base}\n{cpu}{tail}\n");
            Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap()
        };
        assert_eq!(read("cores = 2\nquantum_us = 25").sharing(), Sharing::OnePool, "absent");
        for (name, sharing) in SHARING_NAMES {
            let named = read(&format!("cores = 2\nquantum_us = 25\nsharing = \"{name}\""));
            assert_eq!(named.sharing(), sharing);
            assert_eq!(named.scaled_each(2.0, 2.0).sharing(), sharing, "kept when scaled");
            assert_eq!(parse_sharing(sharing_name(sharing)), Ok(sharing));
        }
        let grouped = read("cores = 2\nquantum_us = 25\nsharing = \"two-groups\"");
        assert_eq!(grouped.with_sharing(Sharing::OnePool).unwrap().sharing(), Sharing::OnePool);
        let whole = grouped.with_quantum_us(Some(0)).unwrap();
        assert_eq!(whole.sharing(), Sharing::OnePool, "without slices, one pool");
        assert_eq!(whole.quantum_us, None);
        let e = whole.with_sharing(Sharing::TwoGroups).unwrap_err();
        assert!(e.contains("quantum_us"), "{e}");
        let e = read("cores = 2").with_sharing(Sharing::TwoGroups).unwrap_err();
        assert!(e.contains("\"two-groups\" needs `quantum_us`"), "{e}");
        assert!(parse_sharing("round-robin").unwrap_err().contains("one-pool, two-groups"));
        let bad = [
            "sharing = \"two-groups\"",
            "cores = 2\nsharing = \"two-groups\"",
            "cores = 2\nquantum_us = 0\nsharing = \"two-groups\"",
            "cores = 2\nquantum_us = 25\nsharing = \"fair\"",
        ];
        each_refused_naming(cpu, "cpu.sharing", &bad);
        each_refused_naming(cpu, "(toml)", &["cores = 2\nquantum_us = 25\nsharing = 2"]);
    }

    #[test]
    fn rules_cost_scales_with_checks_and_tables_are_validated() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 1000.0], [1.0, 3000.0]]\n";
        let profile =
            Profile::from_toml_str(&format!("{}\n{cpu}", statements_only()), "t").unwrap();
        let backend = profile.backend_cpu.expect("[cpu] read");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let us = backend.sample_rules_us(100, &mut rng);
        assert!((100.0..=300.0).contains(&us), "100 checks × 1–3 µs: {us}");
        let none = Profile::from_toml_str(&statements_only(), "k").unwrap();
        assert_eq!(none.backend_cpu, None, "no [cpu] table");
        let bad = format!("{}\n[cpu]\nrules_ns_per_check = [[0.5, 1.0]]\n", statements_only());
        let e = Profile::from_toml_str(&bad, "b").unwrap_err();
        assert_eq!(e.field, "cpu.rules_ns_per_check", "{e}");
        let bad = format!("{}\n{cpu}unknown = 1\n", statements_only());
        assert_eq!(Profile::from_toml_str(&bad, "b").unwrap_err().field, "(toml)");
    }

    #[test]
    fn request_cost_and_shared_cores_are_optional_and_validated() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let base = statements_only();
        let text = format!("{base}\n{cpu}request_us = [[0.0, 300.0], [1.0, 500.0]]\ncores = 2\n");
        let backend = Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let us = backend.sample_request_us(&mut rng).unwrap();
            assert!((300.0..=500.0).contains(&us), "{us}");
        }
        assert_eq!(backend.shared_cores(), Some(2));
        let without = Profile::from_toml_str(&format!("{base}\n{cpu}"), "t").unwrap();
        let without = without.backend_cpu.unwrap();
        assert_eq!(without.sample_request_us(&mut rng), None);
        assert_eq!(without.shared_cores(), None);
        assert_eq!(backend.quantum_us(), None, "no quantum_us: run to completion");
        let sliced = format!("{base}\n{cpu}cores = 2\nquantum_us = 1500\n");
        let sliced = Profile::from_toml_str(&sliced, "t").unwrap();
        assert_eq!(sliced.backend_cpu.as_ref().unwrap().quantum_us(), Some(1_500));
        let off = sliced.with_quantum_us(Some(0)).unwrap();
        assert_eq!(off.backend_cpu.as_ref().unwrap().quantum_us(), None, "0 turns it off");
        assert_eq!(off.backend_cpu.unwrap().scaled_each(2.0, 2.0).quantum_us(), None);
        let scaled = sliced.scaled_each(2.0, 2.0, 2.0);
        assert_eq!(scaled.backend_cpu.unwrap().quantum_us(), Some(1_500), "not scaled");
        assert!(sliced.with_quantum_us(Some(1_520)).is_err(), "not a whole tick");
        let zero = format!("{base}\n{cpu}cores = 2\nquantum_us = 0\n");
        let zero = Profile::from_toml_str(&zero, "t").unwrap().backend_cpu.unwrap();
        assert_eq!(zero.quantum_us(), None);
        let quanta = ["cores = 2\nquantum_us = 76", "cores = 2\nquantum_us = 2000050"];
        each_refused_naming(cpu, "cpu.quantum_us", &quanta);
        let bad = format!("{base}\n{cpu}cores = 0\n");
        assert_eq!(Profile::from_toml_str(&bad, "b").unwrap_err().field, "cpu.cores");
        let bad = format!("{base}\n{cpu}request_us = [[0.0, 9.0], [0.5, 1.0], [1.0, 9.0]]\n");
        assert_eq!(Profile::from_toml_str(&bad, "b").unwrap_err().field, "cpu.request_us");
    }

    #[test]
    fn a_fixed_rules_cost_is_added_per_evaluation_scaled_and_checked() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 1000.0], [1.0, 1000.0]]\n";
        let base = statements_only();
        let text = format!("{base}\n{cpu}rules_fixed_us = 15.0\n");
        let backend = Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(backend.sample_rules_us(10, &mut rng), 25.0, "15 + 10 × 1 µs");
        assert_eq!(backend.sample_rules_us(0, &mut rng), 15.0);
        assert_eq!(backend.rules_us_median_at(100), 115.0);
        let slower = backend.scaled_each(2.0, 1.0);
        assert_eq!(slower.rules_fixed_us(), Some(30.0), "scaled with the rules");
        assert_eq!(slower.sample_rules_us(10, &mut rng), 50.0);
        let without = Profile::from_toml_str(&format!("{base}\n{cpu}"), "t").unwrap();
        let without = without.backend_cpu.unwrap();
        assert_eq!(without.rules_fixed_us(), None);
        assert_eq!(without.sample_rules_us(10, &mut rng), 10.0, "per check only");
        let fixed = ["rules_fixed_us = -1.0", "rules_fixed_us = inf"];
        each_refused_naming(cpu, "cpu.rules_fixed_us", &fixed);
    }

    #[test]
    fn the_off_path_cpu_is_optional_needs_shared_cores_and_scales_with_the_request_cpu() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let base = statements_only();
        let text = format!("{base}\n{cpu}cores = 2\noffpath_us = 800.0\n");
        let backend = Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap();
        assert_eq!(backend.offpath_us(), Some(800.0));
        assert_eq!(backend.scaled_each(3.0, 0.5).offpath_us(), Some(400.0), "× request");
        assert_eq!(backend.with_offpath_us(Some(0.0)).unwrap().offpath_us(), None, "0: none");
        assert_eq!(backend.with_offpath_us(None).unwrap().offpath_us(), None);
        let without = Profile::from_toml_str(&format!("{base}\n{cpu}cores = 2\n"), "t").unwrap();
        assert_eq!(without.backend_cpu.as_ref().unwrap().offpath_us(), None, "absent: none");
        assert_eq!(
            without.with_offpath_us(Some(5.0)).unwrap().backend_cpu.unwrap().offpath_us(),
            Some(5.0)
        );
        let offpath =
            ["cores = 2\noffpath_us = -1.0", "cores = 2\noffpath_us = nan", "offpath_us = 10.0"];
        each_refused_naming(cpu, "cpu.offpath_us", &offpath);
        let no_cores = Profile::from_toml_str(&format!("{base}\n{cpu}"), "t").unwrap();
        assert!(no_cores.with_offpath_us(Some(10.0)).unwrap_err().contains("cores"));
        assert!(without.with_offpath_us(Some(-3.0)).is_err());
    }

    #[test]
    fn the_busy_cost_factor_is_optional_checked_and_kept_by_scaling() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let base = statements_only();
        let text = format!("{base}\n{cpu}cores = 2\nbusy_cost_factor = 0.6\n");
        let backend = Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap();
        assert_eq!(backend.busy_cost_factor(), 0.6);
        assert_eq!(backend.scaled_each(3.0, 0.5).busy_cost_factor(), 0.6, "a ratio");
        let without = Profile::from_toml_str(&format!("{base}\n{cpu}cores = 2\n"), "t").unwrap();
        let factor_of = |p: &Profile| p.backend_cpu.as_ref().unwrap().busy_cost_factor();
        assert_eq!(factor_of(&without), 1.0, "absent: a busy machine costs what an idle one does");
        assert_eq!(factor_of(&without.with_busy_cost_factor(0.5).unwrap()), 0.5);
        assert!(without.with_busy_cost_factor(1.5).is_err(), "out of range");
        let no_cores = Profile::from_toml_str(&format!("{base}\n{cpu}"), "t").unwrap();
        assert!(no_cores.with_busy_cost_factor(0.5).unwrap_err().contains("cores"));
        let factors = [
            "cores = 2\nbusy_cost_factor = 0.0",
            "cores = 2\nbusy_cost_factor = 1.01",
            "cores = 2\nbusy_cost_factor = inf",
            "busy_cost_factor = 0.5",
        ];
        each_refused_naming(cpu, "cpu.busy_cost_factor", &factors);
    }

    #[test]
    fn the_statement_core_fraction_is_optional_checked_and_kept_by_scaling() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let base = statements_only();
        let text = format!("{base}\n{cpu}cores = 2\nstatement_core_fraction = 0.9\n");
        let backend = Profile::from_toml_str(&text, "t").unwrap().backend_cpu.unwrap();
        assert_eq!(backend.statement_core_fraction(), 0.9);
        assert_eq!(backend.scaled_each(3.0, 0.5).statement_core_fraction(), 0.9, "a ratio");
        let without = Profile::from_toml_str(&format!("{base}\n{cpu}cores = 2\n"), "t").unwrap();
        let cpu_of = |p: &Profile| p.backend_cpu.as_ref().unwrap().statement_core_fraction();
        assert_eq!(cpu_of(&without), 1.0, "absent: the whole draw");
        assert_eq!(cpu_of(&without.with_statement_core_fraction(0.8).unwrap()), 0.8);
        assert!(without.with_statement_core_fraction(1.2).is_err(), "out of range");
        let no_cores = Profile::from_toml_str(&format!("{base}\n{cpu}"), "t").unwrap();
        assert!(no_cores.with_statement_core_fraction(0.8).unwrap_err().contains("cores"));
        let fractions = [
            "cores = 2\nstatement_core_fraction = 0.0",
            "cores = 2\nstatement_core_fraction = 1.5",
            "cores = 2\nstatement_core_fraction = nan",
            "statement_core_fraction = 0.9",
        ];
        each_refused_naming(cpu, "cpu.statement_core_fraction", &fractions);
    }

    #[test]
    fn backend_workers_are_optional_checked_and_kept_by_scaling() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 10.0], [1.0, 10.0]]\n";
        let base = statements_only();
        let text = format!("{base}\n{cpu}cores = 2\nbackend_workers = 2\n");
        let profile = Profile::from_toml_str(&text, "t").unwrap();
        let backend = profile.backend_cpu.clone().unwrap();
        assert_eq!(backend.backend_workers(), Some(2));
        assert_eq!(backend.scaled_each(3.0, 0.5).backend_workers(), Some(2), "threads stay");
        let zero = format!("{base}\n{cpu}cores = 2\nbackend_workers = 0\n");
        let zero = Profile::from_toml_str(&zero, "t").unwrap().backend_cpu.unwrap();
        assert_eq!(zero.backend_workers(), None, "0: no limit");
        let workers = |p: &Profile| p.backend_cpu.as_ref().unwrap().backend_workers();
        assert_eq!(workers(&profile.with_backend_workers(Some(4)).unwrap()), Some(4));
        assert_eq!(workers(&profile.with_backend_workers(Some(0)).unwrap()), None);
        let workers_bad = ["cores = 2\nbackend_workers = 100000", "backend_workers = 2"];
        each_refused_naming(cpu, "cpu.backend_workers", &workers_bad);
        let no_cores = Profile::from_toml_str(&format!("{base}\n{cpu}"), "t").unwrap();
        assert!(no_cores.with_backend_workers(Some(2)).unwrap_err().contains("cores"));
    }

    #[test]
    fn a_machine_probe_is_read_checked_and_its_ratios_scale_both_parts() {
        let cpu = "[cpu]\nrules_ns_per_check = [[0.0, 1000.0], [1.0, 1000.0]]\nrequest_us = [[0.0, 300.0], [1.0, 300.0]]\n";
        let machine = "[machine]\nallocation_ns = 40000.0\nselect_one_us = 50.0\n";
        let text = format!("{}\n{cpu}{machine}", statements_only());
        let profile = Profile::from_toml_str(&text, "m").unwrap();
        let recorded = profile.machine.expect("[machine] read");
        assert_eq!(recorded, MachineSpeed { allocation_ns: 40_000.0, select_one_us: 50.0 });
        let now = MachineSpeed { allocation_ns: 60_000.0, select_one_us: 100.0 };
        assert_eq!(now.ratios_to(&recorded), (2.0, 1.5));
        let far = MachineSpeed { allocation_ns: 4.0e6, select_one_us: 1.0 };
        assert_eq!(
            far.ratios_to(&recorded),
            (1.0 / MachineSpeed::RATIO_MAX, MachineSpeed::RATIO_MAX)
        );
        let (statements, cpu_factor) = now.ratios_to(&recorded);
        let scaled = profile.scaled_each(statements, cpu_factor, cpu_factor);
        assert_eq!(scaled.machine, Some(recorded), "the recorded probe stays");
        assert_eq!(scaled.statements, profile.statements.scaled(2.0));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let backend = scaled.backend_cpu.unwrap();
        assert_eq!(backend.sample_rules_us(10, &mut rng), 15.0, "1 µs × 10 checks × 1.5");
        assert_eq!(backend.sample_request_us(&mut rng), Some(450.0));
        let bad = format!(
            "{}\n[machine]\nallocation_ns = -1.0\nselect_one_us = 50.0\n",
            statements_only()
        );
        assert_eq!(Profile::from_toml_str(&bad, "b").unwrap_err().field, "machine");
        let none = Profile::from_toml_str(&statements_only(), "n").unwrap();
        assert_eq!(none.machine, None);
    }

    #[test]
    fn the_committed_default_measures_the_backend() {
        let profile = Profile::default_profile();
        let backend = profile.backend_cpu.expect("the default profile has [cpu]");
        assert_eq!(backend.shared_cores(), Some(2));
        assert!(backend.request_us.is_some());
    }
}
