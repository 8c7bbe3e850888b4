//! The swimlane of the database sessions: one `g.lane` per session that ran statements, over
//! modelled time.
//!
//! WHAT: in each lane a light `rect.transaction` from a BEGIN to the COMMIT / ROLLBACK (or
//! the failure) that ends it, a `rect.statement` mark per executed statement (red when it
//! failed), an orange `rect.lock-wait` from a statement's `blocked` to its `completed …`,
//! and a red cross (`path.deadlock`) where a statement failed with 40P01. Lanes are keyed by
//! (server, session): after a db crash the restarted server numbers its sessions anew.
//!
//! WHY: lock waits and deadlocks are between sessions; side by side, who waited on whom is
//! visible.
//! NOT MODELLED: statement durations (see `timeline`): a statement is a 2 px mark.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Axis;
use crate::svg::escape;
use crate::timeline::{StatementEvent, Timeline};

const WIDTH: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 16.0;
const LANE_HEIGHT: f64 = 16.0;
const MARK_WIDTH: f64 = 2.0;

/// A lane: (server, session).
type LaneKey = (usize, u32);

fn failed(outcome: &str) -> bool {
    let last = outcome.rsplit(' ').next().unwrap_or("");
    last != "ok" && last != "blocked"
}

/// The swimlane as an `<svg id="swimlane">` with its legend.
pub fn render(timeline: &Timeline) -> String {
    // BTreeMap: lanes in (server, session) order (for determinism).
    let mut lanes: BTreeMap<LaneKey, Vec<&StatementEvent>> = BTreeMap::new();
    for event in &timeline.statements {
        lanes.entry((event.server, event.session)).or_default().push(event);
    }
    if lanes.is_empty() {
        return "<p id=\"swimlane\">No database statements were recorded (the stand-in \
                backend has no database).</p>"
            .to_string();
    }
    let servers = lanes.keys().map(|(server, _)| *server).max().unwrap_or(0) + 1;
    let end_us = timeline.statements.iter().map(|e| e.at_us).max().unwrap_or(0);
    let start_us = timeline.statements.iter().map(|e| e.at_us).min().unwrap_or(0);
    let axis = Axis::new(start_us as f64, end_us as f64, LEFT, WIDTH - RIGHT - MARK_WIDTH);
    let bottom = TOP + LANE_HEIGHT * lanes.len() as f64;
    let height = bottom + 48.0;
    let mut svg = format!(
        "<svg id=\"swimlane\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"Database sessions over modelled time\">"
    );
    axis.ticks(&mut svg, TOP, bottom, |us| format!("{:.2} ms", us / 1_000.0));
    let (mut waits, mut deadlocks) = (0, 0);
    for (index, ((server, session), events)) in lanes.iter().enumerate() {
        let y = TOP + LANE_HEIGHT * index as f64;
        let name =
            if servers > 1 { format!("db{server} s{session}") } else { format!("s{session}") };
        let _ = write!(
            svg,
            "<g class=\"lane\" data-session=\"{}\"><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" \
             text-anchor=\"end\">{}</text>",
            escape(&name),
            LEFT - 6.0,
            y + LANE_HEIGHT - 4.0,
            escape(&name)
        );
        let (w, d) = lane(&mut svg, events, &axis, y);
        waits += w;
        deadlocks += d;
        svg.push_str("</g>");
    }
    legend(&mut svg, bottom + 28.0);
    svg.push_str("</svg>");
    let _ = write!(
        svg,
        "<p id=\"swimlane-summary\">{} sessions, {} statements, {waits} lock waits, {deadlocks} \
         deadlocks (40P01); the backend received {} deadlock errors.</p>",
        lanes.len(),
        timeline.statements.iter().filter(|e| !e.outcome.starts_with("completed")).count(),
        timeline.deadlocks.len()
    );
    svg
}

/// Draws one lane's transactions, statements, lock waits and deadlocks; returns the counts
/// of lock waits and deadlocks drawn.
fn lane(svg: &mut String, events: &[&StatementEvent], axis: &Axis, y: f64) -> (u32, u32) {
    let mut open_since: Option<u64> = None;
    let mut blocked_since: Option<u64> = None;
    let mut marks = String::new();
    let (mut waits, mut deadlocks) = (0, 0);
    let band = |svg: &mut String, from: u64, to: u64| {
        let (x0, x1) = (axis.x(from as f64), axis.x(to as f64));
        let _ = write!(
            svg,
            "<rect class=\"transaction\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            y + 1.0,
            (x1 - x0).max(MARK_WIDTH),
            LANE_HEIGHT - 2.0
        );
    };
    for event in events {
        let x = axis.x(event.at_us as f64);
        if event.outcome == "blocked" {
            blocked_since = Some(event.at_us);
        } else if event.outcome.starts_with("completed")
            && let Some(since) = blocked_since.take()
        {
            waits += 1;
            let x0 = axis.x(since as f64);
            let _ = write!(
                marks,
                "<rect class=\"lock-wait\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                     height=\"6\"><title>lock wait {:.3} ms: {}</title></rect>",
                y + 5.0,
                (x - x0).max(1.0),
                (event.at_us - since) as f64 / 1_000.0,
                escape(&event.fingerprint)
            );
        }
        if !event.outcome.starts_with("completed") {
            let class = if failed(&event.outcome) { "statement error" } else { "statement" };
            let _ = write!(
                marks,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{MARK_WIDTH}\" \
                 height=\"{:.1}\"><title>{:.3} ms {} [{}] {}</title></rect>",
                y + 3.0,
                LANE_HEIGHT - 6.0,
                event.at_us as f64 / 1_000.0,
                event.kind,
                escape(&event.fingerprint),
                escape(&event.outcome)
            );
        }
        if event.outcome.ends_with("40P01") {
            deadlocks += 1;
            let (top, bottom) = (y + 2.0, y + LANE_HEIGHT - 2.0);
            let _ = write!(
                marks,
                "<path class=\"deadlock\" d=\"M{:.1} {top:.1} L{:.1} {bottom:.1} M{:.1} {top:.1} \
                 L{:.1} {bottom:.1}\"><title>deadlock (40P01) at {:.3} ms</title></path>",
                x - 5.0,
                x + 5.0,
                x + 5.0,
                x - 5.0,
                event.at_us as f64 / 1_000.0
            );
        }
        // A transaction ends at COMMIT / ROLLBACK, or at a failure (the block is aborted).
        match event.kind {
            "begin" if !failed(&event.outcome) => {
                open_since.get_or_insert(event.at_us);
            }
            "commit" | "rollback" => {
                if let Some(since) = open_since.take() {
                    band(svg, since, event.at_us);
                }
            }
            _ if failed(&event.outcome) => {
                if let Some(since) = open_since.take() {
                    band(svg, since, event.at_us);
                }
            }
            _ => {}
        }
    }
    if let (Some(since), Some(last)) = (open_since, events.last()) {
        band(svg, since, last.at_us);
    }
    svg.push_str(&marks);
    (waits, deadlocks)
}

fn legend(svg: &mut String, y: f64) {
    let items = [
        ("rect", "legend-transaction", "transaction (BEGIN to its end)"),
        ("rect", "legend-statement", "statement"),
        ("rect", "legend-statement error", "failed statement"),
        ("rect", "legend-lock-wait", "lock wait"),
        ("path", "legend-deadlock", "deadlock (40P01)"),
    ];
    let mut x = LEFT;
    for (shape, class, text) in items {
        let swatch = if shape == "rect" {
            format!(
                "<rect class=\"{class}\" x=\"{x}\" y=\"{}\" width=\"14\" height=\"10\"/>",
                y - 9.0
            )
        } else {
            format!(
                "<path class=\"{class}\" d=\"M{x} {} L{} {y} M{} {} L{x} {y}\"/>",
                y - 9.0,
                x + 10.0,
                x + 10.0,
                y - 9.0
            )
        };
        let _ = write!(
            svg,
            "<g class=\"legend\">{swatch}<text x=\"{}\" y=\"{y}\" font-size=\"11\">{}</text></g>",
            x + 18.0,
            escape(text)
        );
        x += 22.0 + 6.5 * text.len() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_us: u64, session: u32, kind: &'static str, outcome: &str) -> StatementEvent {
        StatementEvent {
            at_us,
            server: 0,
            session,
            kind,
            fingerprint: "select ?".into(),
            outcome: outcome.into(),
        }
    }

    #[test]
    fn lanes_waits_and_deadlocks_are_drawn() {
        let timeline = Timeline {
            statements: vec![
                event(10, 1, "begin", "ok"),
                event(12, 2, "begin", "ok"),
                event(20, 1, "update", "ok"),
                event(30, 2, "update", "blocked"),
                event(35, 1, "update", "40P01"),
                event(40, 2, "update", "completed ok"),
                event(50, 2, "commit", "ok"),
            ],
            ..Timeline::default()
        };
        let svg = render(&timeline);
        assert_eq!(svg.matches("<g class=\"lane\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"lock-wait\"").count(), 1);
        assert_eq!(svg.matches("<path class=\"deadlock\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"transaction\"").count(), 2);
        // The completion is not a second statement mark.
        assert_eq!(svg.matches("<rect class=\"statement").count(), 6);
        assert_eq!(svg.matches("<rect class=\"statement error\"").count(), 1);
    }
}
