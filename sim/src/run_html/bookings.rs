//! The room × clinic-time chart of a run's final appointment rows.
//!
//! WHAT: one lane per room (the scenario's rooms in file order, then any other room a row
//! names, then `(no room)` for rows booked without one), one `rect.booking` per row over its
//! visit, and a lighter `rect.turnover` to the end of its blocked range. Rows in a room
//! overlap (`invariants::room_overlap_ids`, what `no_room_overlap` reports) carry the class
//! `violating` and are drawn red; inactive rows are grey.
//!
//! Rows of one lane that overlap in time are stacked in levels of the lane.
//!
//! WHY: a double booking is two red bars on one lane at the same time.
//! NOT MODELLED: doctor and patient double bookings are listed under the chart (the run's
//! violations) but not drawn.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use scenarios::Scenario;

use super::Axis;
use crate::invariants::room_overlap_ids;
use crate::observations::Appointment;
use crate::svg::escape;
use crate::timeline::Timeline;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 24.0;
/// A lane's height when no rows of it overlap; a lane with overlaps grows so each of its
/// levels keeps at least `LEVEL_HEIGHT_MIN`.
const LANE_HEIGHT: f64 = 22.0;
const LEVEL_HEIGHT_MIN: f64 = 9.0;
const NO_ROOM: &str = "(no room)";

fn minutes_of(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    Some(h.trim().parse::<u32>().ok()? * 60 + m.trim().parse::<u32>().ok()?)
}

fn hhmm(min: f64) -> String {
    let min = min.round() as u32;
    format!("{:02}:{:02}", min / 60, min % 60)
}

/// The chart as an `<svg id="bookings">` with its legend.
pub fn render(timeline: &Timeline, scenario: &Scenario) -> String {
    let rows = &timeline.rows;
    let violating = room_overlap_ids(rows);
    let mut lanes: Vec<String> = scenario.clinic.rooms.iter().map(|r| r.name.clone()).collect();
    for row in rows {
        let lane = row.room.clone().unwrap_or_else(|| NO_ROOM.to_string());
        if !lanes.contains(&lane) {
            lanes.push(lane);
        }
    }
    // The rows' span in whole half hours (the clinic's opening hours when there are none).
    let opens = minutes_of(&scenario.clinic.opens).unwrap_or(0);
    let closes = minutes_of(&scenario.clinic.closes).unwrap_or(24 * 60);
    let first = rows.iter().map(|r| r.start_min).min().map_or(opens, |m| m / 30 * 30);
    let last =
        rows.iter().map(|r| r.blocked_until_min).max().map_or(closes, |m| m.div_ceil(30) * 30);
    let axis = Axis::new(f64::from(first), f64::from(last), LEFT, WIDTH - RIGHT);
    let levels = levels(rows);
    let lane_of = |row: &Appointment| {
        let name = row.room.as_deref().unwrap_or(NO_ROOM);
        lanes.iter().position(|l| l == name).unwrap_or(0)
    };
    // Each lane's top and height (taller where rows overlap).
    let mut lane_levels = vec![1_u32; lanes.len()];
    for (row, (_, of_levels)) in rows.iter().zip(&levels) {
        let lane = lane_of(row);
        lane_levels[lane] = lane_levels[lane].max(*of_levels);
    }
    let mut lane_top = Vec::with_capacity(lanes.len());
    let mut lane_height = Vec::with_capacity(lanes.len());
    let mut y = TOP;
    for of_levels in &lane_levels {
        let height = LANE_HEIGHT.max(f64::from(*of_levels) * LEVEL_HEIGHT_MIN + 4.0);
        lane_top.push(y);
        lane_height.push(height);
        y += height;
    }
    let bottom = y;
    let height = bottom + 48.0;
    let mut svg = format!(
        "<svg id=\"bookings\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" \
         aria-label=\"Bookings by room over the clinic day\">"
    );
    let step_min = if last - first > 6 * 60 { 60.0 } else { 30.0 };
    axis.ticks_every(&mut svg, TOP, bottom, step_min, hhmm);
    for (index, lane) in lanes.iter().enumerate() {
        let (y, lane_h) = (lane_top[index], lane_height[index]);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
             <line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/>",
            LEFT - 6.0,
            y + lane_h / 2.0 + 4.0,
            escape(lane),
            WIDTH - RIGHT
        );
    }
    // Rows in the engine's order (ORDER BY id); rows of one lane that overlap in time are
    // stacked (each lane split into as many levels as it needs), so both stay visible.
    for (row, (level, of_levels)) in rows.iter().zip(&levels) {
        let lane_name = row.room.as_deref().unwrap_or(NO_ROOM);
        let lane = lane_of(row);
        let is_violating = violating.contains(&row.id);
        let state = match (is_violating, row.active) {
            (true, _) => " violating",
            (false, false) => " inactive",
            (false, true) => "",
        };
        let h = (lane_height[lane] - 4.0) / f64::from(*of_levels);
        let y = lane_top[lane] + 2.0 + h * f64::from(*level);
        let (x0, x1) = (axis.x(f64::from(row.start_min)), axis.x(f64::from(row.end_min)));
        let x2 = axis.x(f64::from(row.blocked_until_min));
        let _ = write!(
            svg,
            "<rect class=\"turnover{state}\" x=\"{x1:.1}\" y=\"{y:.1}\" width=\"{:.1}\" \
             height=\"{h:.1}\"/><rect class=\"booking{state}\" data-id=\"{}\" x=\"{x0:.1}\" \
             y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{} {}–{} (room blocked to \
             {}), {}, doctor {}, patient {}, {}</title></rect>",
            (x2 - x1).max(0.0),
            escape(&row.id),
            (x1 - x0).max(1.0),
            escape(lane_name),
            hhmm(f64::from(row.start_min)),
            hhmm(f64::from(row.end_min)),
            hhmm(f64::from(row.blocked_until_min)),
            escape(&row.appointment_type),
            escape(&row.doctor),
            escape(&row.patient),
            if is_violating { "IN A ROOM OVERLAP" } else { "no room overlap" }
        );
    }
    legend(&mut svg, bottom + 28.0);
    svg.push_str("</svg>");
    let _ = write!(
        svg,
        "<p id=\"bookings-summary\">{} rows, {} in a room overlap (red).</p>",
        rows.len(),
        violating.len()
    );
    svg
}

/// For each row (in order): its level within its lane and the level count of its cluster
/// (the rows it overlaps, transitively), packing each lane's rows greedily by start so no
/// two rows of one level overlap in time; a row that overlaps nothing gets the whole lane.
fn levels(rows: &[Appointment]) -> Vec<(u32, u32)> {
    let mut by_lane: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        by_lane.entry(row.room.as_deref()).or_default().push(index);
    }
    let mut out = vec![(0, 1); rows.len()];
    for indexes in by_lane.values_mut() {
        indexes.sort_by_key(|i| (rows[*i].start_min, *i));
        // A cluster is a run of rows that overlap one another transitively; each cluster
        // has its own levels. `level_ends`: the blocked end of the last row of each level.
        let mut level_ends: Vec<u32> = Vec::new();
        let mut cluster: Vec<usize> = Vec::new();
        for &i in indexes.iter() {
            let row = &rows[i];
            if level_ends.iter().all(|end| *end <= row.start_min) {
                for &member in &cluster {
                    out[member].1 = level_ends.len() as u32;
                }
                cluster.clear();
                level_ends.clear();
            }
            cluster.push(i);
            let level = match level_ends.iter().position(|end| *end <= row.start_min) {
                Some(level) => level,
                None => {
                    level_ends.push(0);
                    level_ends.len() - 1
                }
            };
            level_ends[level] = row.blocked_until_min;
            out[i].0 = level as u32;
        }
        for &member in &cluster {
            out[member].1 = level_ends.len() as u32;
        }
    }
    out
}

fn legend(svg: &mut String, y: f64) {
    let items = [
        ("booking", "visit"),
        ("turnover", "turnover (room still blocked)"),
        ("booking violating", "in a room overlap (no_room_overlap)"),
        ("booking inactive", "inactive row"),
    ];
    let mut x = LEFT;
    for (class, text) in items {
        // Legend swatches are not bookings: their class is the look only, under `legend`.
        let class = class.replace("booking", "legend-booking");
        let _ = write!(
            svg,
            "<g class=\"legend\"><rect class=\"{class}\" x=\"{x}\" y=\"{}\" width=\"14\" \
             height=\"10\"/><text x=\"{}\" y=\"{y}\" font-size=\"11\">{}</text></g>",
            y - 9.0,
            x + 18.0,
            escape(text)
        );
        x += 22.0 + 6.5 * text.len() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, room: &str, start_min: u32) -> Appointment {
        Appointment {
            id: id.into(),
            room: Some(room.into()),
            doctor: "d".into(),
            patient: format!("p{id}"),
            appointment_type: "checkup".into(),
            start_min,
            end_min: start_min + 30,
            blocked_until_min: start_min + 40,
            active: true,
            txn: "t".into(),
            written_at_us: 0,
        }
    }

    #[test]
    fn overlapping_rows_are_violating_and_others_not() {
        let scenario = scenarios::Scenario::resolve("conflict").unwrap().scenario;
        let timeline = Timeline {
            rows: vec![
                row("a", "R1", 540),
                row("b", "R1", 560),
                row("c", "R2", 540),
                row("d", "R1", 700),
            ],
            ..Timeline::default()
        };
        let svg = render(&timeline, &scenario);
        assert_eq!(svg.matches("<rect class=\"booking").count(), 4);
        assert_eq!(svg.matches("<rect class=\"booking violating\"").count(), 2);
        assert!(svg.contains("data-id=\"c\" "), "{svg}");
        assert!(svg.contains(">R2</text>"), "a lane per room named by the rows");
        // a and b overlap: two levels in R1; c alone in R2; d later in R1, alone.
        assert_eq!(levels(&timeline.rows), vec![(0, 2), (1, 2), (0, 1), (0, 1)]);
    }
}
