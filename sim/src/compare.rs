//! Side-by-side statistics of two latency histograms: real PostgreSQL against the simulation.
//!
//! WHAT IS COMPARED
//!
//! Both inputs are HdrHistograms of microseconds over the same operation and workload. For each
//! quantile in [`QUANTILES`] we report real and simulated values and their ratio `sim / real`.
//! Three quantiles are judged against a symmetric pass band (the issue's "within ±x %"):
//!
//! ```text
//!   p50  |sim/real - 1| <= 0.15
//!   p95  |sim/real - 1| <= 0.25
//!   p99  |sim/real - 1| <= 0.50
//! ```
//!
//! RESOLUTION: a simulated figure measured on the simulation's clock is only known to its
//! resolution (25 µs, `crate::timescale::RESOLUTION_US`), so [`compare_at_resolution`] also
//! passes a quantile whose absolute difference is within that resolution (a 213 µs real p50
//! against a 250 µs simulated one is as close as a 50 µs clock could say); the ratio is still
//! printed.
//!
//! A quantile is judged only when both histograms hold at least [`TAIL_SAMPLES_MIN`] samples
//! beyond it (`n·(1-q) >= 100`, so p99 needs 10 000 samples); otherwise it is reported as
//! "not judged" and cannot fail the comparison. p90 is reported for information only.
//!
//! DISTRIBUTION DISTANCES
//!
//! Both are computed over the union of the recorded bucket edges (`value_iterated_to`, the
//! highest equivalent value of each bucket), treating every sample as sitting at its bucket's
//! upper edge, which is how `value_at_quantile` reports values too:
//!
//! * KS D = max over edges of |F_sim(x) - F_real(x)|; an effect size, logged, not gated (at
//!   large n the KS test rejects harmless shifts; see latency-validation.md §4).
//! * W1 = ∫ |F_sim - F_real| dx, summed as |ΔF|·Δx between consecutive edges, divided by the
//!   real mean so it is unitless. Sensitive to tail magnitude, which KS is not.
//!
//! NOT MODELLED: confidence intervals of the real quantiles (the band is the tolerance);
//! Anderson–Darling (offline only).

use hdrhistogram::Histogram;

/// The quantiles of the side-by-side table, ascending.
pub const QUANTILES: [f64; 4] = [0.50, 0.90, 0.95, 0.99];

/// A quantile is judged only with at least this many samples beyond it in both histograms.
pub const TAIL_SAMPLES_MIN: u64 = 100;

/// The pass band of a quantile: `|sim/real - 1| <= tolerance`. `None`: reported, not judged.
pub fn band_tolerance(quantile: f64) -> Option<f64> {
    // Exact comparisons are fine: the keys are the constants of QUANTILES.
    if quantile == 0.50 {
        Some(0.15)
    } else if quantile == 0.95 {
        Some(0.25)
    } else if quantile == 0.99 {
        Some(0.50)
    } else {
        None
    }
}

/// The judgement of one quantile.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Too few samples beyond the quantile (or no samples at all) to judge it.
    NotJudged,
    /// No band for this quantile: shown for information.
    Info,
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::NotJudged => "n/j",
            Verdict::Info => "info",
        }
    }
}

/// One row of the side-by-side table.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantileRow {
    pub quantile: f64,
    pub real_us: u64,
    pub sim_us: u64,
    /// `sim_us / real_us`; NaN when the real value is 0 or a histogram is empty.
    pub ratio: f64,
    pub tolerance: Option<f64>,
    pub verdict: Verdict,
}

/// The comparison of one metric at one concurrency level.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub real_count: u64,
    pub sim_count: u64,
    pub real_mean_us: f64,
    pub sim_mean_us: f64,
    pub rows: Vec<QuantileRow>,
    /// Kolmogorov–Smirnov D; `None` when a histogram is empty.
    pub ks_d: Option<f64>,
    /// Wasserstein-1 divided by the real mean; `None` when a histogram is empty or the real mean
    /// is 0.
    pub w1_over_mean: Option<f64>,
}

impl Comparison {
    /// True when no judged quantile is out of its band.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|row| row.verdict != Verdict::Fail)
    }

    /// Number of quantiles that were actually judged (pass or fail).
    pub fn judged_count(&self) -> usize {
        let judged = |row: &&QuantileRow| matches!(row.verdict, Verdict::Pass | Verdict::Fail);
        self.rows.iter().filter(judged).count()
    }
}

/// Compares a simulated histogram against a real one.
pub fn compare(real: &Histogram<u64>, sim: &Histogram<u64>) -> Comparison {
    compare_at_resolution(real, sim, 0)
}

/// [`compare`], with differences of at most `resolution_us` in band whatever the ratio.
pub fn compare_at_resolution(
    real: &Histogram<u64>,
    sim: &Histogram<u64>,
    resolution_us: u64,
) -> Comparison {
    let rows = QUANTILES.iter().map(|&q| quantile_row(real, sim, q, resolution_us)).collect();
    let (ks_d, w1) = match (Cdf::of(real), Cdf::of(sim)) {
        (Some(real_cdf), Some(sim_cdf)) => {
            let (d, w1) = distances(&real_cdf, &sim_cdf);
            (Some(d), Some(w1))
        }
        _ => (None, None),
    };
    let real_mean_us = if real.is_empty() { 0.0 } else { real.mean() };
    let w1_over_mean = w1.filter(|_| real_mean_us > 0.0).map(|w1| w1 / real_mean_us);
    Comparison {
        real_count: real.len(),
        sim_count: sim.len(),
        real_mean_us,
        sim_mean_us: if sim.is_empty() { 0.0 } else { sim.mean() },
        rows,
        ks_d,
        w1_over_mean,
    }
}

fn quantile_row(
    real: &Histogram<u64>,
    sim: &Histogram<u64>,
    quantile: f64,
    resolution_us: u64,
) -> QuantileRow {
    assert!(quantile > 0.0 && quantile < 1.0, "quantile {quantile} outside (0, 1)");
    let tolerance = band_tolerance(quantile);
    if real.is_empty() || sim.is_empty() {
        let verdict = if tolerance.is_some() { Verdict::NotJudged } else { Verdict::Info };
        return QuantileRow {
            quantile,
            real_us: 0,
            sim_us: 0,
            ratio: f64::NAN,
            tolerance,
            verdict,
        };
    }
    let real_us = real.value_at_quantile(quantile);
    let sim_us = sim.value_at_quantile(quantile);
    let ratio = if real_us == 0 { f64::NAN } else { sim_us as f64 / real_us as f64 };
    let verdict = match tolerance {
        None => Verdict::Info,
        Some(tolerance) => {
            let n = real.len().min(sim.len());
            let tail_samples = (n as f64 * (1.0 - quantile)).floor() as u64;
            if tail_samples < TAIL_SAMPLES_MIN || ratio.is_nan() {
                Verdict::NotJudged
            } else if (ratio - 1.0).abs() <= tolerance || real_us.abs_diff(sim_us) <= resolution_us
            {
                Verdict::Pass
            } else {
                Verdict::Fail
            }
        }
    };
    QuantileRow { quantile, real_us, sim_us, ratio, tolerance, verdict }
}

/// An empirical CDF as a step function: `points[i] = (edge, samples <= edge)`, edges ascending.
#[derive(Debug)]
struct Cdf {
    points: Vec<(u64, u64)>,
    total: u64,
}

impl Cdf {
    fn of(histogram: &Histogram<u64>) -> Option<Cdf> {
        if histogram.is_empty() {
            return None;
        }
        let mut cumulative = 0_u64;
        let mut points = Vec::new();
        for step in histogram.iter_recorded() {
            cumulative += step.count_since_last_iteration();
            points.push((step.value_iterated_to(), cumulative));
        }
        assert_eq!(cumulative, histogram.len(), "recorded counts must sum to the length");
        Some(Cdf { points, total: cumulative })
    }
}

/// KS D and (unnormalised) W1 of two CDFs, by one merge walk over the union of their edges.
fn distances(real: &Cdf, sim: &Cdf) -> (f64, f64) {
    let (mut i, mut j) = (0_usize, 0_usize);
    let (mut f_real, mut f_sim) = (0.0_f64, 0.0_f64);
    let mut ks_d = 0.0_f64;
    let mut w1 = 0.0_f64;
    let mut previous_edge: Option<u64> = None;
    while i < real.points.len() || j < sim.points.len() {
        let next_real = real.points.get(i).map(|p| p.0).unwrap_or(u64::MAX);
        let next_sim = sim.points.get(j).map(|p| p.0).unwrap_or(u64::MAX);
        let edge = next_real.min(next_sim);
        if let Some(previous) = previous_edge {
            w1 += (f_real - f_sim).abs() * (edge - previous) as f64;
        }
        if next_real == edge {
            f_real = real.points[i].1 as f64 / real.total as f64;
            i += 1;
        }
        if next_sim == edge {
            f_sim = sim.points[j].1 as f64 / sim.total as f64;
            j += 1;
        }
        ks_d = ks_d.max((f_real - f_sim).abs());
        previous_edge = Some(edge);
    }
    assert!((f_real - 1.0).abs() < 1e-9 && (f_sim - 1.0).abs() < 1e-9, "CDFs must end at 1");
    (ks_d, w1)
}

/// A fresh latency histogram: 1 µs .. 60 s, 3 significant figures (0.1 % quantisation).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

#[cfg(test)]
mod tests {
    //! Known distributions are built deterministically from their quantile functions
    //! (sample i = F⁻¹((i + 0.5) / n)), so each expected figure is exact up to HDR quantisation.
    use super::*;

    fn from_quantile_fn(n: u64, inverse_cdf: impl Fn(f64) -> f64) -> Histogram<u64> {
        let mut histogram = latency_histogram();
        for i in 0..n {
            let u = (i as f64 + 0.5) / n as f64;
            histogram.record(inverse_cdf(u).round().max(1.0) as u64).unwrap();
        }
        histogram
    }

    fn uniform(n: u64, low_us: f64, high_us: f64) -> Histogram<u64> {
        from_quantile_fn(n, |u| low_us + u * (high_us - low_us))
    }

    fn exponential(n: u64, mean_us: f64) -> Histogram<u64> {
        from_quantile_fn(n, |u| -mean_us * (1.0 - u).ln())
    }

    fn row(c: &Comparison, q: f64) -> &QuantileRow {
        c.rows.iter().find(|r| r.quantile == q).unwrap()
    }

    #[test]
    fn identical_distributions_pass_with_zero_distance() {
        let real = exponential(20_000, 2_000.0);
        let c = compare(&real, &real.clone());
        assert!(c.passed());
        assert_eq!(c.judged_count(), 3, "20k samples judge p50, p95 and p99");
        assert_eq!(c.ks_d, Some(0.0));
        assert_eq!(c.w1_over_mean, Some(0.0));
        assert!(c.rows.iter().all(|r| r.ratio == 1.0));
    }

    #[test]
    fn exponential_quantiles_match_the_closed_form() {
        let c = compare(&exponential(20_000, 1_000.0), &exponential(20_000, 1_000.0));
        // p50 of Exp(mean 1000 µs) = 1000·ln 2 = 693 µs; p99 = 1000·ln 100 = 4605 µs.
        let p50 = row(&c, 0.5).real_us as f64;
        let p99 = row(&c, 0.99).real_us as f64;
        assert!((p50 - 693.1).abs() / 693.1 < 0.005, "p50 {p50}");
        assert!((p99 - 4605.2).abs() / 4605.2 < 0.005, "p99 {p99}");
    }

    #[test]
    fn uniform_scale_gives_known_ks_and_w1() {
        // U(0, 1000) against U(0, 2000): D = 1/2 (at x = 1000), W1 = 500, real mean 500.
        let real = uniform(50_000, 0.0, 1_000.0);
        let sim = uniform(50_000, 0.0, 2_000.0);
        let c = compare(&real, &sim);
        let d = c.ks_d.unwrap();
        let w1 = c.w1_over_mean.unwrap();
        assert!((d - 0.5).abs() < 0.01, "KS D {d}");
        assert!((w1 - 1.0).abs() < 0.02, "W1/mean {w1}");
        // Ratios are 2: every judged quantile fails.
        assert!(!c.passed());
        assert_eq!(row(&c, 0.5).verdict, Verdict::Fail);
        assert!((row(&c, 0.5).ratio - 2.0).abs() < 0.01);
    }

    #[test]
    fn constant_shift_moves_w1_by_the_shift() {
        // A +100 µs shift of U(1000, 2000): W1 = 100, real mean 1500.
        let real = uniform(10_000, 1_000.0, 2_000.0);
        let sim = uniform(10_000, 1_100.0, 2_100.0);
        let c = compare(&real, &sim);
        let w1_us = c.w1_over_mean.unwrap() * c.real_mean_us;
        assert!((w1_us - 100.0).abs() < 3.0, "W1 {w1_us} µs");
        assert!((c.ks_d.unwrap() - 0.1).abs() < 0.01, "KS D {:?}", c.ks_d);
        // p50 ratio 1600/1500 = 1.067: inside ±15 %.
        assert_eq!(row(&c, 0.5).verdict, Verdict::Pass);
    }

    #[test]
    fn bands_are_asymmetric_per_quantile() {
        // sim = 1.2 × real: p50 (±15 %) fails, p95 (±25 %) and p99 (±50 %) pass.
        let real = exponential(20_000, 1_000.0);
        let sim = exponential(20_000, 1_200.0);
        let c = compare(&real, &sim);
        assert_eq!(row(&c, 0.5).verdict, Verdict::Fail);
        assert_eq!(row(&c, 0.9).verdict, Verdict::Info);
        assert_eq!(row(&c, 0.95).verdict, Verdict::Pass);
        assert_eq!(row(&c, 0.99).verdict, Verdict::Pass);
        assert!(!c.passed());
    }

    #[test]
    fn sparse_tails_are_not_judged() {
        // 2 000 samples: p95 has 100 beyond it (judged), p99 only 20 (not judged) even though
        // the simulated tail is three times the real one.
        let real = uniform(2_000, 100.0, 1_000.0);
        let sim = from_quantile_fn(2_000, |u| if u > 0.98 { 3_000.0 } else { 100.0 + u * 900.0 });
        let c = compare(&real, &sim);
        assert_eq!(row(&c, 0.99).verdict, Verdict::NotJudged);
        assert_eq!(row(&c, 0.95).verdict, Verdict::Pass);
        assert!(c.passed());
        assert_eq!(c.judged_count(), 2);
    }

    #[test]
    fn differences_within_the_resolution_pass_whatever_the_ratio() {
        let (mut real, mut sim) = (latency_histogram(), latency_histogram());
        for _ in 0..1_000 {
            real.record(213).unwrap();
            sim.record(250).unwrap();
        }
        assert!(!compare(&real, &sim).passed(), "ratio 1.17 is out of the p50 band");
        assert!(compare_at_resolution(&real, &sim, 50).passed(), "37 µs apart, 50 µs clock");
        assert!(!compare_at_resolution(&real, &sim, 30).passed(), "37 µs apart, 30 µs clock");
    }

    #[test]
    fn empty_histograms_are_not_judged_and_have_no_distance() {
        let c = compare(&latency_histogram(), &exponential(1_000, 10.0));
        assert!(c.passed());
        assert_eq!(c.judged_count(), 0);
        assert_eq!(c.ks_d, None);
        assert_eq!(c.w1_over_mean, None);
    }
}
