//! `roomsim compare OLD.json NEW.json`: two run or explore JSON reports side by side, with a
//! regression verdict for CI gates.
//!
//! WHAT: for every latency metric (room assignment, conflict detection, rules evaluation, pool
//! wait, lock wait) the mean, p50, p95 and p99 of the old and the new report's recorded
//! histograms, the change in percent and a verdict. A row is a REGRESSION only when both
//! hold:
//!
//! 1. the new value exceeds the old by more than the threshold (`--threshold-percent`,
//!    default [`THRESHOLD_PERCENT_DEFAULT`] %), and
//! 2. the two-sample Kolmogorov–Smirnov test on the metric's two histograms rejects "same
//!    distribution" at level `--alpha` (default [`ALPHA_DEFAULT`]) at the recorded sample
//!    sizes: D > c(α)·√((n+m)/(n·m)), c(α) = √(−ln(α/2)/2) (the asymptotic critical value).
//!
//! The same change the other way round is an improvement; a change past the threshold that
//! the KS test does not confirm is "noise"; within the threshold, "same". The exit code is 1
//! when any row is a regression (0 otherwise, 2 for unreadable input). Reports of different
//! scenarios or strategies are compared but a warning line says so.
//!
//! WHY both conditions: a threshold alone flags a few-sample p99 that moved by chance; a KS
//! test alone flags harmless shifts once samples are many (latency-validation.md §4).
//!
//! NOT MODELLED: multiple-comparison correction across metrics; throughput and counts are
//! not judged (they are printed by the reports themselves).

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::compare;
use crate::error::SimError;
use crate::histograms::{Histograms, Metric};

pub const THRESHOLD_PERCENT_DEFAULT: f64 = 10.0;
pub const ALPHA_DEFAULT: f64 = 0.01;

/// What `compare` reads from a run or explore JSON report.
#[derive(Debug, Deserialize)]
struct ReportFile {
    scenario: String,
    strategy: String,
    histograms: std::collections::BTreeMap<Metric, String>,
}

/// A loaded report: its label and histograms.
#[derive(Debug)]
pub struct Loaded {
    pub label: String,
    pub scenario: String,
    pub strategy: String,
    pub histograms: Histograms,
}

/// Reads a `run --format json` or `explore --format json` report; errors name the file.
pub fn load(path: &Path) -> Result<Loaded, SimError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| SimError::BadInput(format!("{name}: {e}")))?;
    let file: ReportFile = serde_json::from_str(&text).map_err(|e| {
        SimError::BadInput(format!("{name}: not a run or explore JSON report: {e}"))
    })?;
    let histograms = Histograms::from_encoded(&file.histograms)
        .map_err(|e| SimError::BadInput(format!("{name}: {e}")))?;
    Ok(Loaded { label: name, scenario: file.scenario, strategy: file.strategy, histograms })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Same,
    Noise,
    Improvement,
    Regression,
    /// A histogram is empty: nothing to compare.
    NotCompared,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Noise => "noise (KS: not different)",
            Verdict::Improvement => "improvement",
            Verdict::Regression => "REGRESSION",
            Verdict::NotCompared => "n/a",
        }
    }
}

/// One figure of one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub metric: Metric,
    pub figure: &'static str,
    pub old_us: f64,
    pub new_us: f64,
    /// `(new - old) / old · 100`; NaN when old is 0.
    pub change_percent: f64,
    pub verdict: Verdict,
}

/// The KS test of one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct KsTest {
    pub metric: Metric,
    pub old_count: u64,
    pub new_count: u64,
    pub d: Option<f64>,
    pub critical: Option<f64>,
}

impl KsTest {
    pub fn differs(&self) -> bool {
        matches!((self.d, self.critical), (Some(d), Some(c)) if d > c)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub rows: Vec<Row>,
    pub tests: Vec<KsTest>,
    pub threshold_percent: f64,
    pub alpha: f64,
}

impl Judgement {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|row| row.verdict == Verdict::Regression)
    }
}

/// c(α)·√((n+m)/(n·m)): the two-sample KS critical D at level α.
pub fn ks_critical(alpha: f64, n: u64, m: u64) -> f64 {
    assert!(alpha > 0.0 && alpha < 1.0, "alpha {alpha} outside (0, 1)");
    assert!(n > 0 && m > 0, "KS needs samples on both sides");
    let c = (-(alpha / 2.0).ln() / 2.0).sqrt();
    let (n, m) = (n as f64, m as f64);
    c * ((n + m) / (n * m)).sqrt()
}

fn figures(h: &Histogram<u64>) -> [(&'static str, f64); 4] {
    [
        ("mean", h.mean()),
        ("p50", h.value_at_quantile(0.50) as f64),
        ("p95", h.value_at_quantile(0.95) as f64),
        ("p99", h.value_at_quantile(0.99) as f64),
    ]
}

/// Judges `new` against `old` (see the module doc).
pub fn judge(old: &Histograms, new: &Histograms, threshold_percent: f64, alpha: f64) -> Judgement {
    let mut rows = Vec::new();
    let mut tests = Vec::new();
    for metric in Metric::ALL {
        let (a, b) = (old.get(metric), new.get(metric));
        let empty = a.is_empty() || b.is_empty();
        let test = KsTest {
            metric,
            old_count: a.len(),
            new_count: b.len(),
            d: if empty { None } else { compare::compare(a, b).ks_d },
            critical: (!empty).then(|| ks_critical(alpha, a.len(), b.len())),
        };
        let differs = test.differs();
        let figures_old = if empty { None } else { Some(figures(a)) };
        let figures_new = if empty { None } else { Some(figures(b)) };
        for index in 0..4 {
            let figure = ["mean", "p50", "p95", "p99"][index];
            let (old_us, new_us) = match (figures_old, figures_new) {
                (Some(o), Some(n)) => (o[index].1, n[index].1),
                _ => (0.0, 0.0),
            };
            let change_percent =
                if old_us > 0.0 { (new_us - old_us) / old_us * 100.0 } else { f64::NAN };
            let verdict = if empty {
                Verdict::NotCompared
            } else if change_percent.is_nan() || change_percent.abs() <= threshold_percent {
                Verdict::Same
            } else if !differs {
                Verdict::Noise
            } else if change_percent > 0.0 {
                Verdict::Regression
            } else {
                Verdict::Improvement
            };
            rows.push(Row { metric, figure, old_us, new_us, change_percent, verdict });
        }
        tests.push(test);
    }
    Judgement { rows, tests, threshold_percent, alpha }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::RoomAssignment => "room assignment",
        Metric::ConflictDetection => "conflict detection",
        Metric::RulesEvaluation => "rules evaluation",
        Metric::PoolWait => "pool wait",
        Metric::LockWait => "lock wait",
    }
}

/// The side-by-side table.
pub fn text(old: &Loaded, new: &Loaded, judgement: &Judgement) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "OLD: {} ({} / {})", old.label, old.scenario, old.strategy);
    let _ = writeln!(out, "NEW: {} ({} / {})", new.label, new.scenario, new.strategy);
    if old.scenario != new.scenario || old.strategy != new.strategy {
        let _ = writeln!(out, "WARNING: the reports are of different scenarios or strategies");
    }
    let _ = writeln!(
        out,
        "Regression = change > +{}% AND two-sample KS rejects equal distributions at alpha {}.\n",
        judgement.threshold_percent, judgement.alpha
    );
    let _ = writeln!(
        out,
        "{:<20} {:<5} {:>12} {:>12} {:>9}  verdict",
        "metric", "", "old (ms)", "new (ms)", "change"
    );
    for row in &judgement.rows {
        let change = if row.change_percent.is_nan() {
            "-".to_string()
        } else {
            format!("{:+.1}%", row.change_percent)
        };
        let _ = writeln!(
            out,
            "{:<20} {:<5} {:>12.3} {:>12.3} {:>9}  {}",
            metric_name(row.metric),
            row.figure,
            row.old_us / 1000.0,
            row.new_us / 1000.0,
            change,
            row.verdict.label()
        );
    }
    out.push_str("\nKS tests (D vs critical D at the recorded sample sizes):\n");
    for test in &judgement.tests {
        let line = match (test.d, test.critical) {
            (Some(d), Some(c)) => format!(
                "D = {d:.4}, critical {c:.4} (n = {}, m = {}): {}",
                test.old_count,
                test.new_count,
                if test.differs() { "differ" } else { "not different" }
            ),
            _ => format!("not tested (n = {}, m = {})", test.old_count, test.new_count),
        };
        let _ = writeln!(out, "  {:<20} {line}", metric_name(test.metric));
    }
    let verdict = if judgement.regressed() { "REGRESSION" } else { "no regression" };
    let _ = writeln!(out, "\nVerdict: {verdict}");
    out
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Histograms whose room-assignment samples are drawn uniformly in [low, low + width) µs.
    fn sampled(seed: u64, count: usize, low: u64, width: u64) -> Histograms {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut h = Histograms::default();
        for _ in 0..count {
            h.record(Metric::RoomAssignment, low + rng.random_range(0..width));
        }
        h
    }

    fn room_rows(j: &Judgement) -> Vec<&Row> {
        j.rows.iter().filter(|r| r.metric == Metric::RoomAssignment).collect()
    }

    #[test]
    fn the_critical_value_matches_the_tables() {
        // c(0.05) = 1.358, c(0.01) = 1.628 (two-sample KS, asymptotic).
        assert!((ks_critical(0.05, 100, 100) - 1.358 * (0.02f64).sqrt()).abs() < 1e-3);
        assert!((ks_critical(0.01, 400, 100) - 1.628 * (500.0f64 / 40_000.0).sqrt()).abs() < 1e-3);
    }

    #[test]
    fn a_real_shift_is_a_regression_and_the_reverse_an_improvement() {
        let old = sampled(1, 2_000, 10_000, 5_000);
        let slower = sampled(2, 2_000, 13_000, 5_000);
        let j = judge(&old, &slower, 10.0, 0.01);
        assert!(j.regressed(), "{j:?}");
        assert!(
            room_rows(&j).iter().any(|r| r.figure == "p50" && r.verdict == Verdict::Regression)
        );
        let back = judge(&slower, &old, 10.0, 0.01);
        assert!(!back.regressed());
        assert!(room_rows(&back).iter().all(|r| r.verdict == Verdict::Improvement));
        // Metrics without samples are not compared.
        let lock = j.rows.iter().find(|r| r.metric == Metric::LockWait).unwrap();
        assert_eq!(lock.verdict, Verdict::NotCompared);
    }

    #[test]
    fn the_same_distribution_is_not_a_regression() {
        let j =
            judge(&sampled(1, 2_000, 10_000, 5_000), &sampled(2, 2_000, 10_000, 5_000), 10.0, 0.01);
        assert!(!j.regressed());
        assert!(room_rows(&j).iter().all(|r| r.verdict == Verdict::Same), "{j:?}");
    }

    /// A change past the threshold that KS does not confirm (few samples) is noise, not a
    /// regression; the same change with many samples is a regression.
    #[test]
    fn a_large_change_on_few_samples_is_noise() {
        let few = judge(&sampled(3, 8, 10_000, 10_000), &sampled(4, 8, 12_000, 10_000), 10.0, 0.01);
        let p50 = room_rows(&few).into_iter().find(|r| r.figure == "p50").unwrap().clone();
        assert!(p50.change_percent > 10.0, "{p50:?}");
        assert_eq!(p50.verdict, Verdict::Noise);
        assert!(!few.regressed());
        let many = judge(
            &sampled(3, 5_000, 10_000, 10_000),
            &sampled(4, 5_000, 12_000, 10_000),
            10.0,
            0.01,
        );
        assert!(many.regressed());
    }
}
