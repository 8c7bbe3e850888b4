//! Explore's `--html FILE`: the outcome of every seed, the bookings' outcomes over all seeds,
//! the invariants, the failing seeds with their replay commands, and the merged latencies.
//!
//! WHAT: a strip with one `rect.seed` per seed in seed order (`pass` green, `fail` red); past
//! [`SEED_CELLS_MAX`] seeds one cell stands for a run of consecutive seeds and is red when any
//! of them failed. Everything comes from the [`ExploreReport`] (so `merge`d shards could be
//! drawn the same way); wall-clock figures (seeds/s) are left out, so the page is a pure
//! function of the seeds. At most [`FAILING_SEEDS_SHOWN_MAX`] failing seeds are listed (each
//! with its replay command and the command that draws it); the JSON report has every one.
//! NOT MODELLED: per-seed latency distributions (explore keeps only the merged histograms).

use std::fmt::Write as _;

use super::{Axis, field_table, latency, page};
use crate::explore::ExploreReport;
use crate::histograms::Histograms;
use crate::svg::escape;

/// Cells of the per-seed strip at most (about 60 bytes each).
pub const SEED_CELLS_MAX: usize = 1_000;
/// Failing seeds listed at most (about 1.5 KB each); the JSON report has them all.
pub const FAILING_SEEDS_SHOWN_MAX: usize = 100;
const WIDTH: f64 = 960.0;
const LEFT: f64 = 16.0;
const RIGHT: f64 = 16.0;

/// The page of an explore (or merged) report.
pub fn render_explore(report: &ExploreReport) -> String {
    let r = report;
    let title = format!("roomsim explore: {} / {} / seeds {}", r.scenario, r.strategy, r.seeds);
    let failed = r.seeds_failed.len();
    let mut body = format!("<h1>{}</h1>", escape(&title));
    body.push_str(&field_table(
        "explore",
        &[
            ("Scenario", r.scenario_arg.clone(), false),
            ("Strategy", r.strategy.clone(), false),
            ("Seeds", r.seeds.clone(), false),
            ("Shard", r.shard.clone().unwrap_or_else(|| "all".into()), false),
            ("Seeds run", r.seeds_run.to_string(), false),
            ("Seeds failed", failed.to_string(), failed > 0),
            ("Pair patterns seen", pattern_summary(r), !r.patterns.not_possible.is_empty()),
            ("Explore hash", r.explore_hash.clone(), false),
        ],
    ));
    body.push_str("<h2>Outcome per seed</h2>");
    body.push_str(&seed_strip(r));
    body.push_str("<h2>Bookings' outcomes, all seeds</h2>");
    body.push_str(&outcome_bars(r));
    body.push_str(
        "<h2>Invariants</h2><table id=\"invariants\"><tr><th class=\"l\">Invariant</th>\
         <th>Checked</th><th>Violations</th></tr>",
    );
    for i in &r.invariants {
        let class = if i.violations > 0 { "fail" } else { "ok" };
        let _ = write!(
            body,
            "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
            escape(&i.name),
            i.checked,
            i.violations
        );
    }
    body.push_str("</table>");
    body.push_str("<h2>Failing seeds</h2>");
    failing_seeds(&mut body, r);
    body.push_str("<h2>Pair patterns (coverage)</h2>");
    pattern_table(&mut body, r);
    body.push_str("<h2>Latencies, all seeds merged (modelled)</h2>");
    match Histograms::from_encoded(&r.histograms) {
        Ok(histograms) => body.push_str(&latency::render(&histograms)),
        Err(e) => {
            let _ = write!(body, "<p class=\"fail\">histograms unreadable: {}</p>", escape(&e));
        }
    }
    page(&title, &body)
}

/// "14 of 17 possible".
fn pattern_summary(r: &ExploreReport) -> String {
    let c = &r.patterns;
    match &c.possible {
        Some(p) => format!("{} of {} possible", c.seen.len(), p.patterns.len()),
        None => c.seen.len().to_string(),
    }
}

/// Every seen pattern with its seeds and pairs (NOT POSSIBLE ones red), then the possible
/// patterns never seen, and the seeds to k and to saturation.
fn pattern_table(body: &mut String, r: &ExploreReport) {
    let c = &r.patterns;
    let to_k = c.seeds_to_k.map_or("not reached".into(), |n| n.to_string());
    let saturation = c.seeds_to_saturation.map_or("not reached".into(), |n| n.to_string());
    let source = c.possible.as_ref().map_or(String::new(), |p| {
        format!(" Possible: <code>{}</code> ({} schedules).", escape(&p.command), p.schedules)
    });
    let _ = write!(
        body,
        "<p id=\"pattern-summary\">{} competing pairs. Seeds until every seen pattern was seen \
         in {} seeds: {to_k}; until every possible pattern was seen: {saturation}.{source}</p>\
         <table id=\"patterns\"><tr><th>Seeds</th><th>Pairs</th><th class=\"l\">Pattern</th>\
         </tr>",
        c.pairs, c.k
    );
    for p in &c.seen {
        let (class, mark) = if p.possible == Some(false) {
            (" class=\"fail pattern\"", " (NOT POSSIBLE)")
        } else {
            (" class=\"pattern\"", "")
        };
        let _ = write!(
            body,
            "<tr{class}><td>{}</td><td>{}</td><td class=\"l\"><code>{}</code>{mark}</td></tr>",
            p.seeds,
            p.pairs,
            escape(&p.pattern)
        );
    }
    for p in &c.never_seen {
        let _ = write!(
            body,
            "<tr class=\"never-seen\"><td>0</td><td>0</td><td class=\"l\"><code>{}</code> \
             (possible, never seen)</td></tr>",
            escape(p)
        );
    }
    body.push_str("</table>");
}

fn seed_strip(r: &ExploreReport) -> String {
    let seeds = &r.per_seed;
    if seeds.is_empty() {
        return "<p id=\"seed-strip\">No seeds ran.</p>".into();
    }
    let per_cell = seeds.len().div_ceil(SEED_CELLS_MAX);
    let cells = seeds.len().div_ceil(per_cell);
    let axis = Axis::new(0.0, cells as f64, LEFT, WIDTH - RIGHT);
    let height = 64.0;
    let mut svg = format!(
        "<svg id=\"seed-strip\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"Outcome of every seed, in seed order\">"
    );
    for (index, chunk) in seeds.chunks(per_cell).enumerate() {
        let failed = chunk.iter().filter(|s| !s.passed).count();
        let class = if failed > 0 { "seed fail" } else { "seed pass" };
        let (first, last) = (chunk[0].seed, chunk[chunk.len() - 1].seed);
        let what = if per_cell == 1 {
            format!("seed {first}: {}", if failed > 0 { "FAILED" } else { "passed" })
        } else {
            format!("seeds {first}..={last}: {failed} of {} failed", chunk.len())
        };
        let x0 = axis.x(index as f64);
        let width = (axis.x(index as f64 + 1.0) - x0).max(0.5);
        let _ = write!(
            svg,
            "<rect class=\"{class}\" data-seed=\"{first}\" x=\"{x0:.2}\" y=\"4\" \
             width=\"{width:.2}\" height=\"28\"><title>{what}</title></rect>"
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"50\" font-size=\"11\">seed {} (left) to seed {} (right); \
         one cell per {per_cell} seed(s); green passed, red failed</text></svg>",
        seeds[0].seed,
        seeds[seeds.len() - 1].seed
    );
    let passed = seeds.iter().filter(|s| s.passed).count();
    let _ = write!(
        svg,
        "<p id=\"seed-summary\">{passed} seeds passed, {} failed.</p>",
        seeds.len() - passed
    );
    svg
}

fn outcome_bars(r: &ExploreReport) -> String {
    let c = &r.counts;
    let bars = [
        ("created (201) with a room", c.created_201 - c.room_pending.min(c.created_201)),
        ("created (201) room pending", c.room_pending),
        ("409 room unavailable", c.room_unavailable),
        ("409 other conflict", c.conflicts_409 - c.room_unavailable.min(c.conflicts_409)),
        ("other 4xx", c.other_4xx),
        ("5xx", c.errors_5xx),
        ("no definite answer", c.unanswered),
    ];
    let largest = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let bar_height = 18.0;
    let label_width = 200.0;
    let height = bar_height * bars.len() as f64 + 8.0;
    let axis = Axis::new(0.0, largest as f64, label_width, WIDTH - RIGHT - 60.0);
    let mut svg = format!(
        "<svg id=\"outcomes\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"How the bookings of all seeds ended\">"
    );
    for (index, (label, count)) in bars.iter().enumerate() {
        let y = 4.0 + bar_height * index as f64;
        let x1 = axis.x(*count as f64);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar\" x=\"{label_width}\" y=\"{y:.1}\" width=\"{:.1}\" \
             height=\"{:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{count}</text>",
            label_width - 6.0,
            y + 12.0,
            escape(label),
            x1 - label_width,
            bar_height - 4.0,
            x1 + 4.0,
            y + 12.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn failing_seeds(body: &mut String, r: &ExploreReport) {
    if r.seeds_failed.is_empty() {
        body.push_str("<p id=\"failing-seeds\" class=\"ok\">No seed violated an invariant.</p>");
        return;
    }
    body.push_str(
        "<table id=\"failing-seeds\"><tr><th>Seed</th><th>First violation (ms)</th>\
         <th class=\"l\">Violations (first kept)</th><th class=\"l\">Replay</th></tr>",
    );
    for f in r.seeds_failed.iter().take(FAILING_SEEDS_SHOWN_MAX) {
        let first = f
            .first_violation_us
            .map_or_else(|| "after the run".to_string(), |us| format!("{:.3}", us as f64 / 1e3));
        let mut violations = String::new();
        for v in &f.violations {
            let _ =
                write!(violations, "<b>{}</b>: {}<br>", escape(&v.invariant), escape(&v.detail));
        }
        // The same run drawn: the replay command without the event dump, with `--html`.
        let picture = format!("{} --html seed-{}.html", f.replay.replace(" --trace", ""), f.seed);
        let _ = write!(
            body,
            "<tr class=\"failing-seed\"><td>{}</td><td>{}</td><td class=\"l\">{violations}</td>\
             <td class=\"l\"><code class=\"replay\">{}</code><br>its picture: \
             <code class=\"picture\">{}</code>{}</td></tr>",
            f.seed,
            escape(&first),
            escape(&f.replay),
            escape(&picture),
            if f.shrink.is_empty() {
                String::new()
            } else {
                format!(
                    "<br>its smallest reproduction: <code class=\"shrink\">{}</code>",
                    escape(&f.shrink)
                )
            }
        );
    }
    body.push_str("</table>");
    let hidden = r.seeds_failed.len().saturating_sub(FAILING_SEEDS_SHOWN_MAX);
    if hidden > 0 {
        let _ = write!(
            body,
            "<p id=\"failing-seeds-more\">{hidden} more failing seeds: see the JSON report \
             (<code>--format json</code>).</p>"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::{Aggregate, FailedSeed, SeedHash, finish_report};

    fn report(seeds: u64, failing_every: u64) -> ExploreReport {
        let scenario = scenarios::Scenario::resolve("storm").unwrap().scenario;
        let passed = |seed: u64| !seed.is_multiple_of(failing_every);
        let per_seed = (0..seeds)
            .map(|seed| SeedHash { seed, trace_hash: format!("{seed:032x}"), passed: passed(seed) })
            .collect();
        let failed = (0..seeds)
            .filter(|seed| !passed(*seed))
            .map(|seed| FailedSeed {
                seed,
                first_violation_us: Some(1_000),
                violations: vec![],
                replay: format!(
                    "roomsim run --scenario storm --strategy naive --seed {seed} --trace"
                ),
                shrink: format!("roomsim shrink --scenario storm --strategy naive --seed {seed}"),
            })
            .collect();
        let aggregate = Aggregate {
            counts: Default::default(),
            invariants: vec![],
            workload_us_total: 0,
            histograms: Histograms::default(),
            per_seed,
            failed,
            wall_s: 1.0,
            patterns: crate::patterns::Tally::default(),
            pattern_k: 3,
            possible: None,
        };
        let range = format!("0..{seeds}");
        finish_report(&scenario, "storm", "naive", range, None, aggregate)
    }

    #[test]
    fn many_seeds_share_cells_and_the_failing_list_is_cut() {
        // 2,500 seeds: 3 a cell, 834 cells; every 10th fails, so every cell holding a
        // multiple of 10 is red. 250 failing seeds: 100 listed.
        let html = render_explore(&report(2_500, 10));
        assert_eq!(html.matches("<rect class=\"seed ").count(), 834);
        let red =
            (0..834_u64).filter(|cell| (cell * 3..(cell * 3 + 3).min(2_500)).any(|s| s % 10 == 0));
        assert_eq!(html.matches("<rect class=\"seed fail\"").count(), red.count());
        assert_eq!(html.matches("<tr class=\"failing-seed\">").count(), FAILING_SEEDS_SHOWN_MAX);
        assert!(html.contains("150 more failing seeds"), "the rest is pointed to");
        assert!(html.contains("--seed 990 --trace") && !html.contains("--seed 1000 --trace"));
        assert!(html.contains("--seed 10 --html seed-10.html"), "the command that draws a seed");
    }

    #[test]
    fn few_seeds_get_a_cell_each() {
        let html = render_explore(&report(7, 3));
        assert_eq!(html.matches("<rect class=\"seed ").count(), 7);
        assert_eq!(html.matches("<rect class=\"seed fail\"").count(), 3, "seeds 0, 3, 6");
        assert!(html.contains("data-seed=\"6\""));
    }
}
