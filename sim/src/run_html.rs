//! `--html FILE`: one self-contained page of a run (`roomsim run`) or of an explore.
//!
//! WHAT: a run's page has (a) the bookings on a room × clinic-time chart, the rows in a room
//! overlap drawn red (`bookings`), (b) a swimlane of the database sessions' statements over
//! modelled time, with transactions, lock waits and deadlocks (`swimlane`), and (c) the
//! latency histograms the run recorded (`latency`). Explore's page (`explore_page`) shows the
//! outcome of every seed, the bookings' outcomes over all seeds, the invariants and the
//! failing seeds with their replay commands.
//!
//! WHY: a violation's text names rows and times; a picture shows at a glance which bookings
//! collided and which sessions waited on whom. Everything is inline (CSS, SVG, a small
//! script): nothing is fetched, the file can be mailed or attached to a CI run. The page is a
//! pure function of the run (no wall clock), so the same seed gives the same page.
//!
//! The inline script records JavaScript errors and checks, in the browser, that every chart
//! drew; it writes the result to `body[data-render-check]` for the headless-Chromium test
//! (`tests/run_html.rs`), as the real side's load report does.
//!
//! NOT MODELLED: zooming or filtering (a 50-booking run fits one screen; the SVG `<title>`s
//! give each mark's details on hover), statement service durations (see `timeline`).

mod bookings;
mod explore_page;
mod latency;
mod swimlane;

use std::fmt::Write as _;
use std::path::Path;

use scenarios::Scenario;

use crate::error::SimError;
use crate::outcome::RunOutcome;
use crate::report;
use crate::svg::escape;
use crate::timeline::Timeline;

pub use explore_page::render_explore;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:8px 0 20px}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}\
th{background:#f3f3f3}td.l,th.l{text-align:left}\
code{font-size:12px;background:#f7f7f7;padding:1px 4px}\
.fail{color:#b00;font-weight:bold}.ok{color:#070}figure{margin:8px 0 24px}\
svg text{font-family:system-ui,sans-serif}\
rect.booking,rect.legend-booking{fill:#4e79a7;stroke:#fff;stroke-width:0.5}\
rect.booking.violating,rect.legend-booking.violating{fill:#d62728}\
rect.booking.inactive,rect.legend-booking.inactive{fill:#bbb}\
rect.turnover{fill:#4e79a7;opacity:0.3}rect.turnover.violating{fill:#d62728}\
rect.transaction,rect.legend-transaction{fill:#dde6f2}\
rect.lock-wait,rect.legend-lock-wait{fill:#ff7f0e}\
rect.statement,rect.legend-statement{fill:#555}\
rect.statement.error,rect.legend-statement.error{fill:#d62728}\
path.deadlock,path.legend-deadlock{stroke:#d62728;stroke-width:2;fill:none}\
rect.seed.pass{fill:#59a14f}rect.seed.fail{fill:#d62728}rect.bar{fill:#4e79a7}";

/// Collects JavaScript errors before anything else runs.
const ERROR_TRAP: &str = "<script>window.__errors=[];window.addEventListener('error',\
function(e){window.__errors.push(String(e.message))});</script>";

/// Counts, in the browser, the drawn marks of every kind the page has and the charts whose
/// line has a size; writes them with the error count to `body[data-render-check]`.
const RENDER_CHECK: &str = "<script>(function(){\
function drawn(sel){return [].slice.call(document.querySelectorAll(sel)).filter(function(e){\
var b=e.getBBox();return b.width>0&&b.height>0}).length+'/'+document.querySelectorAll(sel).length}\
var c=[].slice.call(document.querySelectorAll('svg.chart'));\
var charts=c.filter(function(s){var l=s.querySelector('polyline');if(!l)return false;\
var b=l.getBBox();return (b.width>0||b.height>0)&&s.getBoundingClientRect().width>0}).length;\
document.body.setAttribute('data-render-check','bookings='+drawn('rect.booking')+\
' lanes='+document.querySelectorAll('g.lane').length+' statements='+drawn('rect.statement')+\
' seeds='+drawn('rect.seed')+' charts='+charts+'/'+c.length+' errors='+window.__errors.length);\
document.body.setAttribute('data-js-errors',window.__errors.join(' | '));\
})();</script>";

/// The page's frame around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style>{ERROR_TRAP}</head><body>{body}{RENDER_CHECK}</body></html>\n",
        escape(title)
    )
}

/// A two-column table of (field, value) rows; values are escaped, `fail` rows marked.
fn field_table(id: &str, rows: &[(&str, String, bool)]) -> String {
    let mut out =
        format!("<table id=\"{id}\"><tr><th class=\"l\">Field</th><th class=\"l\">Value</th></tr>");
    for (field, value, fail) in rows {
        let class = if *fail { "l fail" } else { "l" };
        let _ = write!(
            out,
            "<tr><td class=\"l\">{field}</td><td class=\"{class}\">{}</td></tr>",
            escape(value)
        );
    }
    out.push_str("</table>");
    out
}

/// The page of one run. `timeline` is the run's (kept when its trace is kept, see
/// `world::RunResult::timeline`).
pub fn render_run(
    outcome: &RunOutcome,
    timeline: &Timeline,
    scenario: &Scenario,
    scenario_arg: &str,
) -> String {
    let o = outcome;
    let title = format!("roomsim run: {} / {} / seed {}", o.scenario, o.strategy, o.seed);
    let replay = report::replay_command(scenario_arg, &o.strategy, o.guard, o.seed);
    let violations_total: u64 = o.invariants.iter().map(|i| i.violations).sum();
    let mut body = format!("<h1>{}</h1>", escape(&title));
    body.push_str(&field_table(
        "run",
        &[
            ("Scenario", o.scenario.clone(), false),
            ("Strategy", o.strategy.clone(), false),
            ("Seed", o.seed.to_string(), false),
            ("Verdict", if o.passed() { "passed" } else { "FAILED" }.to_string(), !o.passed()),
            ("Bookings", o.counts.bookings.to_string(), false),
            ("Created (201)", o.counts.created_201.to_string(), false),
            ("Conflicts (409)", o.counts.conflicts_409.to_string(), false),
            ("Invariant violations", violations_total.to_string(), violations_total > 0),
            ("Workload (modelled)", format!("{:.3} ms", o.workload_us as f64 / 1_000.0), false),
            ("Trace hash", o.trace_hash.clone(), false),
            ("Replay", replay, false),
        ],
    ));
    body.push_str("<h2>Bookings by room</h2>");
    body.push_str(&bookings::render(timeline, scenario));
    if !o.violations.is_empty() {
        body.push_str("<h3>Violations</h3><ul id=\"violations\">");
        for v in &o.violations {
            let _ = write!(body, "<li><b>{}</b>: {}</li>", escape(&v.invariant), escape(&v.detail));
        }
        body.push_str("</ul>");
    }
    body.push_str("<h2>Database sessions</h2>");
    body.push_str(&swimlane::render(timeline));
    body.push_str("<h2>Latencies (modelled)</h2>");
    body.push_str(&latency::render(&o.histograms));
    page(&title, &body)
}

/// Writes `content` to `path` through a temporary file in the same directory and a rename,
/// so a failure never leaves half a page. Any failure is bad input naming the path (exit 2).
pub fn write_page(path: &Path, content: &str) -> Result<(), SimError> {
    crate::files::write_whole("--html", path, content)
}

/// Horizontal scale of a chart: maps [min, max] to [left, right] pixels.
#[derive(Clone, Copy, Debug)]
struct Axis {
    min: f64,
    max: f64,
    left: f64,
    right: f64,
}

impl Axis {
    fn new(min: f64, max: f64, left: f64, right: f64) -> Axis {
        let max = if max - min < 1e-9 { min + 1.0 } else { max };
        Axis { min, max, left, right }
    }

    fn x(&self, value: f64) -> f64 {
        self.left + (value - self.min) / (self.max - self.min) * (self.right - self.left)
    }

    /// Five ticks with labels from `label`, drawn from `top` to `bottom`.
    fn ticks(&self, svg: &mut String, top: f64, bottom: f64, label: impl Fn(f64) -> String) {
        let values = (0..=4).map(|i| self.min + (self.max - self.min) * f64::from(i) / 4.0);
        self.ticks_at(svg, top, bottom, values, label);
    }

    /// A tick at every multiple of `step` in the range.
    fn ticks_every(
        &self,
        svg: &mut String,
        top: f64,
        bottom: f64,
        step: f64,
        label: impl Fn(f64) -> String,
    ) {
        let first = (self.min / step).ceil() as i64;
        let last = (self.max / step).floor() as i64;
        let values = (first..=last).map(|k| k as f64 * step);
        self.ticks_at(svg, top, bottom, values, label);
    }

    fn ticks_at(
        &self,
        svg: &mut String,
        top: f64,
        bottom: f64,
        values: impl Iterator<Item = f64>,
        label: impl Fn(f64) -> String,
    ) {
        for value in values {
            let x = self.x(value);
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                bottom + 12.0,
                escape(&label(value))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_their_title_and_carry_the_checks() {
        let html = page("a <b>", "<p>x</p>");
        assert!(html.contains("<title>a &lt;b&gt;</title>"));
        assert!(html.contains("data-render-check"));
        assert!(!html.contains("src=") && !html.contains("<link"), "nothing fetched");
    }

    #[test]
    fn write_page_leaves_nothing_behind_on_failure() {
        let dir =
            std::env::temp_dir().join(format!("roomsim-run-html-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("no-such-dir").join("page.html");
        let error = write_page(&missing, "x").unwrap_err();
        assert!(error.to_string().contains("no-such-dir"), "{error}");
        let good = dir.join("page.html");
        write_page(&good, "<html></html>").unwrap();
        assert_eq!(std::fs::read_to_string(&good).unwrap(), "<html></html>");
        let left: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 1, "only the page: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn axis_maps_ends_to_edges() {
        let axis = Axis::new(10.0, 20.0, 100.0, 300.0);
        assert_eq!(axis.x(10.0), 100.0);
        assert_eq!(axis.x(20.0), 300.0);
        assert_eq!(Axis::new(5.0, 5.0, 0.0, 10.0).x(6.0), 10.0, "an empty range is widened");
    }
}
