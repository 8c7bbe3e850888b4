//! Latency profile: how long the database takes to serve one statement, per statement kind.
//!
//! The engine core is timing-free; the async server ([`crate::io`]) charges each statement a
//! service time drawn from this profile in virtual time. A profile is a TOML file with one
//! table per statement kind (`select`, `insert`, `update`, `delete`, `begin`, `commit`,
//! `rollback`, `ddl`, `other`); each kind is either
//!
//! - a LOGNORMAL body `{ median_us, sigma }` with an optional TAIL `{ p, scale_us }`: with
//!   probability `p` an exponential extra delay of mean `scale_us` is added (a body + tail
//!   mixture, like FoundationDB's sim2 latency), or
//! - an EMPIRICAL quantile table `quantiles = [[q, us], …]` sampled by inverse CDF with linear
//!   interpolation (what `roomsim calibrate` will write from HdrHistogram data).
//!
//! Every sample is clamped to `service_us_max`. Validation names the offending field
//! (`kinds.select.sigma: …`).
//!
//! Two optional sections refine it:
//!
//! - STATEMENT CLASSES `[classes."INSERT INTO appointments"]`: a statement whose text starts
//!   with the quoted prefix (the longest matching prefix wins) takes this distribution instead
//!   of its kind's — one kind can hide very different costs (an appointment INSERT checks three
//!   exclusion constraints, an idempotency-key INSERT one b-tree). A class may add
//!   `us_per_row = X`: its table is then the time of the statement returning NO rows, and
//!   every row it returns adds X µs (reading and decoding the rows). The day's appointments
//!   SELECT returns one row per booking of the day, so it costs more as a day fills: 5.8 µs a
//!   row in the committed profile (2026-12-06, `roomsim calibrate`), +0.3 ms at a 50-booking
//!   storm's end. (The first fit, ~50 µs a row levelling off, was the backend's query reading
//!   the clinic's whole history: see "Not modelled" below.) Without it the table holds the
//!   rows of the days `calibrate` happened to book on, and validate's levels, each booking up
//!   to N rows a day, all cost the same.
//! - `[wal] commit_flush_share = S` (0 ≤ S ≤ 0.95): the share of a COMMIT's drawn time that
//!   is its WAL flush when its transaction wrote. The server then makes the commit wait for
//!   the log's one flusher (group commit, `crate::io::wal`) and applies it, visible and its
//!   locks released, only after the flush, as PostgreSQL does. Absent: 0, no flush.
//! - `[cpu]`: the BACKEND's costs on the measured machine (rules evaluation per check, CPU per
//!   HTTP request, the cores it shares with the database). They describe the service, not
//!   PostgreSQL, so this crate only accepts the table and leaves it to the simulation's cost
//!   model (`sim::world::cpu_profile`), which reads the same file. [`validate_quantile_table`]
//!   and [`inverse_cdf`] are shared with it, so one file has one set of rules.
//!
//! Not modelled: load dependence of a single statement (contention comes from the shared
//! cores and the locks, not from the table), correlation between consecutive statements, and
//! the rows a plan READS: there is no planner, so a query that scans too much costs what its
//! table and its returned rows say (the backend's day sheet once read a clinic's whole
//! history on PostgreSQL; calibrate's per-row fit showed it, the simulation could not).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Deserialize;

/// Every statement kind a profile must describe, in the order they are validated.
pub const STATEMENT_KINDS: [&str; 9] =
    ["select", "insert", "update", "delete", "begin", "commit", "rollback", "ddl", "other"];

/// No single statement is charged more than this (a guard against a fat-tailed profile).
pub const SERVICE_US_MAX: u64 = 10_000_000;

/// The committed default profile (measured by `roomsim calibrate`; see its header comment).
pub const DEFAULT_PROFILE_TOML: &str = include_str!("../profiles/default.toml");

/// What is wrong with a profile: the field path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {field}: {reason}")]
pub struct ProfileError {
    /// The file (or `<string>`) the profile came from.
    pub source_name: String,
    /// Dotted path of the offending field, e.g. `kinds.select.sigma`.
    pub field: String,
    pub reason: String,
}

/// Service-time distribution of one statement kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceTime {
    LogNormal {
        median_us: f64,
        sigma: f64,
        tail: Option<Tail>,
    },
    /// `(quantile, µs)` points, quantiles rising from 0 to 1, values non-decreasing.
    Empirical {
        quantiles: Vec<(f64, f64)>,
    },
}

impl ServiceTime {
    /// The median service time, µs (the tail, a rare addition, left out).
    pub fn median_us(&self) -> f64 {
        match self {
            ServiceTime::LogNormal { median_us, .. } => *median_us,
            ServiceTime::Empirical { quantiles } => inverse_cdf(quantiles, 0.5),
        }
    }

    /// The mean service time of the draws below the [`BODY_QUANTILE`], µs (the tail, a rare
    /// addition, left out): what a sum of many draws grows with. Unlike the median it moves
    /// smoothly when the draws come from two modes in changing shares (a one-row SELECT on
    /// this VM takes ~17 or ~70 µs, the share of each changing from second to second), where
    /// the median jumps from one mode to the other.
    pub fn body_mean_us(&self) -> f64 {
        match self {
            ServiceTime::LogNormal { median_us, sigma, .. } => {
                median_us * (sigma * sigma / 2.0).exp()
            }
            ServiceTime::Empirical { quantiles } => {
                let mut area = 0.0;
                for pair in quantiles.windows(2) {
                    let ((q0, v0), (q1, v1)) = (pair[0], pair[1]);
                    if q0 >= BODY_QUANTILE {
                        break;
                    }
                    let (q1c, v1c) = match q1 > BODY_QUANTILE {
                        true => (BODY_QUANTILE, inverse_cdf(quantiles, BODY_QUANTILE)),
                        false => (q1, v1),
                    };
                    area += (q1c - q0) * (v0 + v1c) / 2.0;
                }
                area / BODY_QUANTILE
            }
        }
    }
}

/// Where [`ServiceTime::body_mean_us`] stops: the rarest 1 % of draws are left out.
pub const BODY_QUANTILE: f64 = 0.99;

/// An occasional slow statement: with probability `p`, add Exp(mean `scale_us`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tail {
    pub p: f64,
    pub scale_us: f64,
}

/// Per-statement-kind service times.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyProfile {
    /// Keyed by statement kind; BTreeMap for determinism of iteration.
    kinds: BTreeMap<&'static str, ServiceTime>,
    /// Statement-text prefix → service time, longest prefix first.
    classes: Vec<(String, ServiceTime)>,
    /// Statement-text prefix → µs per returned row (classes with `us_per_row` only).
    row_costs: BTreeMap<String, f64>,
    /// `[wal] commit_flush_share`: the share of a writing transaction's COMMIT draw that is
    /// its WAL flush (`crate::io::wal`); 0: no flush modelled.
    commit_flush_share: f64,
}

/// Largest `[wal] commit_flush_share` accepted: some of a COMMIT is not the flush.
pub const COMMIT_FLUSH_SHARE_MAX: f64 = 0.95;

/// Largest `us_per_row` accepted (a guard against a wild fit).
pub const US_PER_ROW_MAX: f64 = 10_000.0;

/// Longest statement-class prefix accepted.
pub const CLASS_PREFIX_CHARS_MAX: usize = 200;
/// Statement classes at most.
pub const CLASSES_MAX: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    kinds: BTreeMap<String, RawKind>,
    #[serde(default)]
    classes: BTreeMap<String, RawKind>,
    /// The backend's costs: read and validated by the simulation's cost model, not here.
    #[serde(rename = "cpu")]
    _backend_cpu: Option<toml::Table>,
    /// The machine-speed probe taken at calibration: read by the simulation's profile.
    #[serde(rename = "machine")]
    _machine: Option<toml::Table>,
    wal: Option<RawWal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWal {
    commit_flush_share: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    median_us: Option<f64>,
    sigma: Option<f64>,
    tail: Option<Tail>,
    quantiles: Option<Vec<(f64, f64)>>,
    /// Classes only: µs each returned row adds to the table's (zero-row) time.
    us_per_row: Option<f64>,
}

impl LatencyProfile {
    /// The committed default profile `model/profiles/default.toml` (parsed once per process:
    /// `ServerConfig::default()` asks for it on every server start).
    pub fn default_profile() -> LatencyProfile {
        static PARSED: std::sync::OnceLock<LatencyProfile> = std::sync::OnceLock::new();
        PARSED
            .get_or_init(|| {
                LatencyProfile::from_toml_str(DEFAULT_PROFILE_TOML, "profiles/default.toml")
                    .expect("the committed default profile must be valid")
            })
            .clone()
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<LatencyProfile, ProfileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            source_name: name.clone(),
            field: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        LatencyProfile::from_toml_str(&text, &name)
    }

    /// Parses and validates a profile; `source_name` is used in error messages.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<LatencyProfile, ProfileError> {
        let err = |field: String, reason: String| ProfileError {
            source_name: source_name.to_string(),
            field,
            reason,
        };
        let raw: RawProfile =
            toml::from_str(text).map_err(|e| err("(toml)".into(), e.message().to_string()))?;
        for name in raw.kinds.keys() {
            if !STATEMENT_KINDS.contains(&name.as_str()) {
                let reason = format!("unknown statement kind; expected one of {STATEMENT_KINDS:?}");
                return Err(err(format!("kinds.{name}"), reason));
            }
        }
        let mut kinds = BTreeMap::new();
        for kind in STATEMENT_KINDS {
            let Some(raw_kind) = raw.kinds.get(kind) else {
                return Err(err(format!("kinds.{kind}"), "missing".into()));
            };
            if raw_kind.us_per_row.is_some() {
                let reason = "only a statement class has a cost per row".to_string();
                return Err(err(format!("kinds.{kind}.us_per_row"), reason));
            }
            let service =
                validate_kind(raw_kind).map_err(|(f, r)| err(format!("kinds.{kind}.{f}"), r))?;
            kinds.insert(kind, service);
        }
        if raw.classes.len() > CLASSES_MAX {
            return Err(err("classes".into(), format!("at most {CLASSES_MAX} classes")));
        }
        let mut classes = Vec::new();
        let mut row_costs = BTreeMap::new();
        for (prefix, raw_class) in &raw.classes {
            let field = format!("classes.\"{prefix}\"");
            if prefix.trim().is_empty() || prefix.chars().count() > CLASS_PREFIX_CHARS_MAX {
                let reason = format!("the prefix must be 1..={CLASS_PREFIX_CHARS_MAX} characters");
                return Err(err(field, reason));
            }
            let service =
                validate_kind(raw_class).map_err(|(f, r)| err(format!("{field}.{f}"), r))?;
            classes.push((prefix.clone(), service));
            if let Some(us) = raw_class.us_per_row {
                if !(0.0..=US_PER_ROW_MAX).contains(&us) {
                    let reason = format!("must be between 0 and {US_PER_ROW_MAX}, got {us}");
                    return Err(err(format!("{field}.us_per_row"), reason));
                }
                row_costs.insert(prefix.clone(), us);
            }
        }
        // Longest prefix first, so the most specific class matches.
        classes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let commit_flush_share = match raw.wal {
            None => 0.0,
            Some(wal) => check_commit_flush_share(wal.commit_flush_share)
                .map_err(|r| err("wal.commit_flush_share".into(), r))?,
        };
        Ok(LatencyProfile { kinds, classes, row_costs, commit_flush_share })
    }

    /// What the `rows` a statement returned add to its drawn time: its class's `us_per_row`
    /// each (zero for a class without one, and for statements of no class). Draws nothing.
    pub fn row_cost(&self, sql: &str, rows: usize) -> Duration {
        let Some((prefix, _)) = self.class_of(sql) else { return Duration::ZERO };
        let us = self.row_costs.get(prefix).copied().unwrap_or(0.0) * rows as f64;
        Duration::from_micros((us.round() as u64).min(SERVICE_US_MAX))
    }

    /// This profile with the classes `take` picks replaced by `other`'s (table and cost per
    /// row; a class `other` lacks is kept as it is).
    pub fn with_classes_from(
        &self,
        other: &LatencyProfile,
        take: impl Fn(&str) -> bool,
    ) -> LatencyProfile {
        let mut result = self.clone();
        for (prefix, service) in result.classes.iter_mut() {
            if !take(prefix) {
                continue;
            }
            let Some((_, theirs)) = other.classes.iter().find(|(p, _)| p == prefix) else {
                continue;
            };
            *service = theirs.clone();
            match other.row_costs.get(prefix.as_str()) {
                Some(&us) => result.row_costs.insert(prefix.clone(), us),
                None => result.row_costs.remove(prefix.as_str()),
            };
        }
        result
    }

    /// The share of a writing transaction's COMMIT draw that is its WAL flush (`[wal]
    /// commit_flush_share`; 0 when absent: no flush modelled). See `crate::io::wal`.
    pub fn commit_flush_share(&self) -> f64 {
        self.commit_flush_share
    }

    /// This profile with `[wal] commit_flush_share = share` (0: none); an error names why a
    /// share is refused.
    pub fn with_commit_flush_share(&self, share: f64) -> Result<LatencyProfile, String> {
        let commit_flush_share = check_commit_flush_share(share)?;
        Ok(LatencyProfile { commit_flush_share, ..self.clone() })
    }

    /// The class's µs per returned row, if it has one.
    pub fn us_per_row(&self, prefix: &str) -> Option<f64> {
        self.row_costs.get(prefix).copied()
    }

    /// The distribution for one statement: its class (longest matching prefix of the text),
    /// else its kind's.
    pub fn statement_service_time(&self, kind: &str, sql: &str) -> &ServiceTime {
        self.class_of(sql).map(|(_, service)| service).unwrap_or_else(|| self.service_time(kind))
    }

    /// The class (prefix, distribution) of the statement `sql`: the longest matching prefix.
    fn class_of(&self, sql: &str) -> Option<&(String, ServiceTime)> {
        let text = sql.trim_start();
        self.classes.iter().find(|(prefix, _)| text.starts_with(prefix.as_str()))
    }

    /// Draws one service time for the statement `sql` of `kind` (class first, then kind). Draws
    /// exactly as many random numbers as [`LatencyProfile::sample`] does for the same table.
    pub fn sample_statement<R: Rng + ?Sized>(
        &self,
        kind: &str,
        sql: &str,
        rng: &mut R,
    ) -> Duration {
        sample_service(self.statement_service_time(kind, sql), rng)
    }

    /// The statement classes (prefix, distribution), longest prefix first.
    pub fn classes(&self) -> &[(String, ServiceTime)] {
        &self.classes
    }

    /// The same profile with every service time multiplied by `factor` (a machine `factor`
    /// times slower; `validate` scales the committed profile by its machine-speed probe).
    /// Values stay within [`SERVICE_US_MAX`]; the shape (sigma, tail probability) is kept.
    pub fn scaled(&self, factor: f64) -> LatencyProfile {
        self.scaled_by_class(factor, |_| None)
    }

    /// The same profile with each class's service times multiplied by `class_factor(prefix)`
    /// when it gives one, and every other table (kinds, other classes) by `factor`.
    pub fn scaled_by_class(
        &self,
        factor: f64,
        class_factor: impl Fn(&str) -> Option<f64>,
    ) -> LatencyProfile {
        let scale = |service: &ServiceTime, factor: f64| {
            assert!(factor.is_finite() && factor > 0.0, "scale factor {factor}");
            scale_service(service, factor)
        };
        let row_costs = self
            .row_costs
            .iter()
            .map(|(prefix, us)| {
                let factor = class_factor(prefix).unwrap_or(factor);
                (prefix.clone(), (us * factor).min(US_PER_ROW_MAX))
            })
            .collect();
        LatencyProfile {
            row_costs,
            commit_flush_share: self.commit_flush_share,
            kinds: self.kinds.iter().map(|(kind, s)| (*kind, scale(s, factor))).collect(),
            classes: self
                .classes
                .iter()
                .map(|(prefix, s)| {
                    (prefix.clone(), scale(s, class_factor(prefix).unwrap_or(factor)))
                })
                .collect(),
        }
    }
}

fn check_commit_flush_share(share: f64) -> Result<f64, String> {
    match (0.0..=COMMIT_FLUSH_SHARE_MAX).contains(&share) {
        true => Ok(share),
        false => Err(format!("must be 0..={COMMIT_FLUSH_SHARE_MAX} (0: no flush), got {share}")),
    }
}

/// `service` times `factor`, within [`SERVICE_US_MAX`]; the shape (sigma, tail probability) kept.
fn scale_service(service: &ServiceTime, factor: f64) -> ServiceTime {
    match service {
        ServiceTime::LogNormal { median_us, sigma, tail } => ServiceTime::LogNormal {
            median_us: (median_us * factor).min(SERVICE_US_MAX as f64),
            sigma: *sigma,
            tail: tail
                .map(|t| Tail { scale_us: (t.scale_us * factor).min(SERVICE_US_MAX as f64), ..t }),
        },
        ServiceTime::Empirical { quantiles } => {
            ServiceTime::Empirical { quantiles: scale_table(quantiles, factor) }
        }
    }
}

impl LatencyProfile {
    /// The distribution for `kind` (unknown kinds use `other`).
    pub fn service_time(&self, kind: &str) -> &ServiceTime {
        self.kinds.get(kind).or_else(|| self.kinds.get("other")).expect("validated: has other")
    }

    /// Draws one service time for a statement of `kind`.
    pub fn sample<R: Rng + ?Sized>(&self, kind: &str, rng: &mut R) -> Duration {
        sample_service(self.service_time(kind), rng)
    }
}

/// One draw from a service-time distribution.
fn sample_service<R: Rng + ?Sized>(service: &ServiceTime, rng: &mut R) -> Duration {
    let us = match service {
        ServiceTime::LogNormal { median_us, sigma, tail } => {
            let body = LogNormal::new(median_us.ln(), *sigma).expect("validated sigma");
            let mut us = body.sample(rng);
            if let Some(tail) = tail
                && rng.random::<f64>() < tail.p
            {
                us += Exp::new(1.0 / tail.scale_us).expect("validated scale").sample(rng);
            }
            us
        }
        ServiceTime::Empirical { quantiles } => inverse_cdf(quantiles, rng.random::<f64>()),
    };
    Duration::from_micros((us.round() as u64).min(SERVICE_US_MAX))
}

/// Checks one kind's table; on error returns (field, reason).
fn validate_kind(raw: &RawKind) -> Result<ServiceTime, (String, String)> {
    let bad = |f: &str, r: &str| Err((f.to_string(), r.to_string()));
    match (&raw.quantiles, raw.median_us, raw.sigma) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            bad("quantiles", "give either quantiles or median_us/sigma, not both")
        }
        (Some(q), None, None) => {
            if raw.tail.is_some() {
                return bad("tail", "a tail only applies to a lognormal body");
            }
            validate_quantiles(q).map(|()| ServiceTime::Empirical { quantiles: q.clone() })
        }
        (None, None, _) => bad("median_us", "missing (or give quantiles)"),
        (None, Some(_), None) => bad("sigma", "missing"),
        (None, Some(median_us), Some(sigma)) => {
            if !(median_us > 0.0 && median_us <= SERVICE_US_MAX as f64) {
                return bad("median_us", "must be > 0 and <= 10000000");
            }
            if !(0.0..=3.0).contains(&sigma) {
                return bad("sigma", "must be between 0 and 3");
            }
            if let Some(tail) = raw.tail {
                if !(0.0..1.0).contains(&tail.p) {
                    return bad("tail.p", "must be in [0, 1)");
                }
                if !(tail.scale_us > 0.0 && tail.scale_us <= SERVICE_US_MAX as f64) {
                    return bad("tail.scale_us", "must be > 0 and <= 10000000");
                }
            }
            Ok(ServiceTime::LogNormal { median_us, sigma, tail: raw.tail })
        }
    }
}

fn validate_quantiles(q: &[(f64, f64)]) -> Result<(), (String, String)> {
    validate_quantile_table(q).map_err(|reason| ("quantiles".to_string(), reason))
}

/// Checks an empirical `[[q, value], …]` table: at least two points, quantiles from 0 to 1
/// strictly rising, values non-decreasing and within 0..=[`SERVICE_US_MAX`]. The reason when
/// not.
pub fn validate_quantile_table(q: &[(f64, f64)]) -> Result<(), String> {
    let bad = |r: String| Err(r);
    if q.len() < 2 {
        return bad("needs at least two points".into());
    }
    if q[0].0 != 0.0 || q[q.len() - 1].0 != 1.0 {
        return bad("must start at quantile 0 and end at quantile 1".into());
    }
    for (i, pair) in q.windows(2).enumerate() {
        if pair[1].0 <= pair[0].0 {
            return bad(format!("point {}: quantiles must rise strictly", i + 1));
        }
        if pair[1].1 < pair[0].1 {
            return bad(format!("point {}: values must not decrease", i + 1));
        }
    }
    if q.iter().any(|&(_, us)| !(0.0..=SERVICE_US_MAX as f64).contains(&us)) {
        return bad("values must be between 0 and 10000000 µs".into());
    }
    Ok(())
}

/// An empirical table with every value multiplied by `factor` (within [`SERVICE_US_MAX`]).
pub fn scale_table(quantiles: &[(f64, f64)], factor: f64) -> Vec<(f64, f64)> {
    quantiles.iter().map(|&(q, v)| (q, (v * factor).min(SERVICE_US_MAX as f64))).collect()
}

/// Linear interpolation between the quantile points around `u` (a validated table, `u` in
/// 0..=1): how an empirical table is sampled.
pub fn inverse_cdf(q: &[(f64, f64)], u: f64) -> f64 {
    let i = q.partition_point(|&(qq, _)| qq <= u).clamp(1, q.len() - 1);
    let ((q0, v0), (q1, v1)) = (q[i - 1], q[i]);
    v0 + (v1 - v0) * ((u - q0) / (q1 - q0)).clamp(0.0, 1.0)
}

/// Characters of a statement's text that name its class: enough to tell backend-core's
/// statements apart, short enough for a profile's `[classes."…"]` keys.
pub const CLASS_CHARS: usize = 64;
const _: () = assert!(CLASS_CHARS <= CLASS_PREFIX_CHARS_MAX);

/// A statement's class: the first [`CLASS_CHARS`] characters of its text (leading
/// whitespace skipped), so the class is a prefix a profile matches the statement by
/// (`roomsim calibrate` writes its tables by class; `roomsim validate` compares round trips
/// by class).
pub fn statement_class(sql: &str) -> &str {
    let text = sql.trim_start();
    match text.char_indices().nth(CLASS_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The statement kind used to pick a service time (the engine's classifier).
pub fn statement_kind(sql: &str) -> &'static str {
    crate::statement_kind(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_body_mean_moves_smoothly_where_the_median_jumps_between_two_modes() {
        // Two modes, ~10 and ~70 µs, the fast one taking 49 % and then 59 % of the draws.
        let modes = |fast: f64, tail_us: f64| ServiceTime::Empirical {
            quantiles: vec![
                (0.0, 10.0),
                (fast, 10.0),
                (fast + 0.02, 70.0),
                (0.99, 70.0),
                (1.0, tail_us),
            ],
        };
        let (even, fast) = (modes(0.49, 1_000.0), modes(0.59, 1_000.0));
        assert!((even.median_us() - 40.0).abs() < 1e-9 && (fast.median_us() - 10.0).abs() < 1e-9);
        let expected = |f: f64| (f * 10.0 + 0.02 * 40.0 + (0.97 - f) * 70.0) / 0.99;
        assert!((even.body_mean_us() - expected(0.49)).abs() < 1e-9, "{}", even.body_mean_us());
        assert!((fast.body_mean_us() - expected(0.59)).abs() < 1e-9, "{}", fast.body_mean_us());
        // The median moved by 30 µs, the mean by 6; the rarest 1 % does not count.
        assert!((even.body_mean_us() - fast.body_mean_us()).abs() < 7.0);
        assert_eq!(modes(0.49, 100_000.0).body_mean_us(), even.body_mean_us());
        let lognormal = ServiceTime::LogNormal { median_us: 100.0, sigma: 0.5, tail: None };
        assert!((lognormal.body_mean_us() - 100.0 * 0.125_f64.exp()).abs() < 1e-9);
    }

    #[test]
    fn default_profile_loads_and_samples_in_range() {
        let p = LatencyProfile::default_profile();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut samples: Vec<u128> =
            (0..2000).map(|_| p.sample("select", &mut rng).as_micros()).collect();
        samples.sort();
        let median = samples[1000];
        assert!((30..=400).contains(&median), "select median {median} µs out of PG's range");
    }

    #[test]
    fn errors_name_the_field() {
        let text = DEFAULT_PROFILE_TOML.replacen("sigma = 0.35", "sigma = -1.0", 1);
        let e = LatencyProfile::from_toml_str(&text, "x.toml").unwrap_err();
        assert!(e.field.starts_with("kinds.") && e.field.ends_with(".sigma"), "{e}");
        let bad_select = "[kinds.select]\nmedian_us = 5\nsigma = -1.0\n";
        let e = LatencyProfile::from_toml_str(bad_select, "x.toml").unwrap_err();
        assert_eq!(e.field, "kinds.select.sigma", "{e}");
        let e = LatencyProfile::from_toml_str("[kinds.select]\nmedian_us = 5\nsigma=0.1\n", "y")
            .unwrap_err();
        assert_eq!(e.field, "kinds.insert", "{e}");
        let e = LatencyProfile::from_toml_str("[kinds.selec]\n", "z").unwrap_err();
        assert_eq!(e.field, "kinds.selec", "{e}");
    }

    #[test]
    fn classes_override_kinds_by_longest_prefix() {
        let text = format!(
            "{DEFAULT_KINDS}\n\
             [classes.\"INSERT INTO appointments\"]\nquantiles = [[0.0, 400.0], [1.0, 400.0]]\n\
             [classes.\"INSERT\"]\nquantiles = [[0.0, 7.0], [1.0, 7.0]]\n"
        );
        let p = LatencyProfile::from_toml_str(&text, "t").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sql = "INSERT INTO appointments (id) VALUES ($1) ON CONFLICT DO NOTHING";
        assert_eq!(p.sample_statement("insert", sql, &mut rng), Duration::from_micros(400));
        let key = "INSERT INTO idempotency_keys (key) VALUES ($1)";
        assert_eq!(p.sample_statement("insert", key, &mut rng), Duration::from_micros(7));
        let default = LatencyProfile::from_toml_str(DEFAULT_KINDS, "k").unwrap();
        assert_eq!(p.statement_service_time("select", "SELECT 1"), default.service_time("select"));
        let with_cpu = format!("{DEFAULT_KINDS}\n[cpu]\nanything = [[0.5, 1.0]]\n");
        assert!(LatencyProfile::from_toml_str(&with_cpu, "c").is_ok(), "[cpu] is the sim's");
        let bad = format!("{DEFAULT_KINDS}\n[classes.\"X\"]\nsigma = 1.0\n");
        let e = LatencyProfile::from_toml_str(&bad, "b").unwrap_err();
        assert_eq!(e.field, "classes.\"X\".median_us", "{e}");
    }

    #[test]
    fn a_class_cost_per_row_adds_to_its_draw_and_scales_with_it() {
        let text = format!(
            "{DEFAULT_KINDS}\n\
             [classes.\"SELECT id FROM appointments\"]\nquantiles = [[0.0, 100.0], [1.0, 100.0]]\n\
             us_per_row = 25.0\n\
             [classes.\"SELECT body\"]\nquantiles = [[0.0, 50.0], [1.0, 50.0]]\n"
        );
        let p = LatencyProfile::from_toml_str(&text, "t").unwrap();
        let day = "SELECT id FROM appointments WHERE day = $1";
        assert_eq!(p.row_cost(day, 0), Duration::ZERO);
        assert_eq!(p.row_cost(day, 50), Duration::from_micros(1_250));
        assert_eq!(p.row_cost("SELECT body FROM rooms", 30), Duration::ZERO, "no us_per_row");
        assert_eq!(p.row_cost("SELECT 1", 1), Duration::ZERO, "no class");
        let halved = p.scaled(0.5);
        assert_eq!(halved.row_cost(day, 50), Duration::from_micros(625));
        assert_eq!(halved.us_per_row("SELECT id FROM appointments"), Some(12.5));
        let plain = p.with_classes_from(
            &LatencyProfile::from_toml_str(&text.replace("us_per_row = 25.0\n", ""), "x").unwrap(),
            |_| true,
        );
        assert_eq!(plain.row_cost(day, 50), Duration::ZERO, "taken over with the other's rows");
        assert_eq!(
            plain.with_classes_from(&halved, |c| c.starts_with("SELECT id")).row_cost(day, 50),
            Duration::from_micros(625)
        );
        // Where it may stand: a class, within range.
        let on_kind = DEFAULT_KINDS.replacen("sigma = 0.3\n", "sigma = 0.3\nus_per_row = 1\n", 1);
        let e = LatencyProfile::from_toml_str(&on_kind, "k").unwrap_err();
        assert_eq!(e.field, "kinds.select.us_per_row", "{e}");
        let negative = text.replace("us_per_row = 25.0", "us_per_row = -1.0");
        let e = LatencyProfile::from_toml_str(&negative, "n").unwrap_err();
        assert_eq!(e.field, "classes.\"SELECT id FROM appointments\".us_per_row", "{e}");
    }

    /// The default profile's `[kinds]` tables alone (no `[classes]`, no `[cpu]`).
    const DEFAULT_KINDS: &str = "[kinds.select]\nmedian_us = 80\nsigma = 0.3\n\
        [kinds.insert]\nmedian_us = 120\nsigma = 0.3\n[kinds.update]\nmedian_us = 120\nsigma = 0.3\n\
        [kinds.delete]\nmedian_us = 120\nsigma = 0.3\n[kinds.begin]\nmedian_us = 60\nsigma = 0.3\n\
        [kinds.commit]\nmedian_us = 260\nsigma = 0.3\n[kinds.rollback]\nmedian_us = 60\nsigma = 0.3\n\
        [kinds.ddl]\nmedian_us = 2000\nsigma = 0.5\n[kinds.other]\nmedian_us = 60\nsigma = 0.3\n";

    #[test]
    fn the_commit_flush_share_is_optional_checked_and_kept_by_scaling() {
        let none = LatencyProfile::from_toml_str(DEFAULT_KINDS, "k").unwrap();
        assert_eq!(none.commit_flush_share(), 0.0, "absent: no flush");
        let text = format!("{DEFAULT_KINDS}\n[wal]\ncommit_flush_share = 0.75\n");
        let with = LatencyProfile::from_toml_str(&text, "w").unwrap();
        assert_eq!(with.commit_flush_share(), 0.75);
        assert_eq!(with.scaled(3.0).commit_flush_share(), 0.75, "a share, not a time");
        assert_eq!(none.with_commit_flush_share(0.5).unwrap().commit_flush_share(), 0.5);
        assert!(none.with_commit_flush_share(0.99).unwrap_err().contains("0.99"));
        for bad in ["commit_flush_share = 1.5", "commit_flush_share = -0.1", "flush = 0.5"] {
            let text = format!("{DEFAULT_KINDS}\n[wal]\n{bad}\n");
            let e = LatencyProfile::from_toml_str(&text, "w").unwrap_err();
            assert!(
                e.field == "wal.commit_flush_share" || e.reason.contains("flush"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn scaling_multiplies_every_service_time_and_keeps_the_shape() {
        let p = LatencyProfile::default_profile();
        let doubled = p.scaled(2.0);
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        for kind in STATEMENT_KINDS {
            for _ in 0..50 {
                let (one, two) = (p.sample(kind, &mut a), doubled.sample(kind, &mut b));
                let expected = one.as_micros() as i128 * 2;
                assert!((two.as_micros() as i128 - expected).abs() <= 1, "{kind}: {one:?} {two:?}");
            }
        }
        assert_eq!(p.scaled(1.0), p);
        assert_eq!(doubled.classes().len(), p.classes().len());
    }

    #[test]
    fn empirical_table_interpolates() {
        let q = [(0.0, 100.0), (0.5, 200.0), (1.0, 1000.0)];
        assert_eq!(inverse_cdf(&q, 0.0), 100.0);
        assert_eq!(inverse_cdf(&q, 0.25), 150.0);
        assert_eq!(inverse_cdf(&q, 0.75), 600.0);
        assert!(validate_quantiles(&[(0.0, 5.0), (0.5, 4.0), (1.0, 9.0)]).is_err());
    }

    #[test]
    fn statement_kinds() {
        assert_eq!(statement_kind("BEGIN ISOLATION LEVEL SERIALIZABLE"), "begin");
        assert_eq!(statement_kind("UPDATE t SET v=1;"), "update");
        assert_eq!(statement_kind("  select 1"), "select");
        assert_eq!(statement_kind("CREATE TABLE t (id int)"), "ddl");
        assert_eq!(statement_kind("abort"), "rollback");
        assert_eq!(statement_kind("SAVEPOINT a"), "other");
    }
}
