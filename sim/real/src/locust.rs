//! `roomsim validate --locust-stats FILE`: the simulation judged against a Locust run instead
//! of roomsim's own real side.
//!
//! WHAT: Locust's `--csv PREFIX` writes `PREFIX_stats.csv` (one row per request name: count,
//! failures, the 50 %…100 % response-time percentiles in ms) and `PREFIX_stats_history.csv`
//! (one row per second, with the `User Count`). The booking rows (`POST /v1/appointments …`,
//! the plan's `concurrent` and `conflict` tags of `sim/load/locustfile.py`) are room
//! assignment as a client sees it. The user count is the history's largest. The simulation
//! runs the scenario at that many users on loopback, as many rounds as Locust sent bookings
//! per user, and its room-assignment histogram is compared quantile by quantile
//! (`sim::compare`, the bands of `validate`).
//!
//! HOW A PERCENTILE TABLE BECOMES A HISTOGRAM: each booking row's `Request Count` samples are
//! placed by linear interpolation between its percentile points (0 % = `Min Response Time`),
//! so the synthetic histogram has Locust's sample size and, at every percentile Locust
//! printed, Locust's value; rows are merged.
//!
//! PRECISION: Locust keeps response times in whole ms (rounded to 10 ms above 100 ms, to
//! 100 ms above 1 s), so a difference within 1 ms passes whatever the ratio, like the
//! simulation's own 50 µs resolution does in `validate`.
//!
//! NOT COMPARED: conflict detection and rules evaluation (Locust's CSV has only whole-request
//! times; the locustfile prints the Server-Timing figures in its own report block), anomaly
//! incidence (Locust cannot see double bookings). Locust's users keep their HTTP connection
//! alive; the simulated clients open one per attempt (issue #16 item 3, not done), so the
//! connection set-up is charged on the simulated side only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdrhistogram::Histogram;
use sim::compare::{Comparison, compare_at_resolution, latency_histogram};
use sim::histograms::Metric;
use sim::world::Profile;

use crate::RealError;
use crate::setup::load_scenario;
use crate::table::{MetricRow, side_by_side};
use crate::validate::{on_loopback, round_days, scenario_at_level, sim_side};

/// Request names that are bookings (room assignment), as `sim/load/locustfile.py` names them.
pub const BOOKING_NAME_PREFIX: &str = "POST /v1/appointments";
/// Locust's time resolution: whole milliseconds.
pub const LOCUST_RESOLUTION_US: u64 = 1_000;
/// Synthetic samples per booking row at most (a guard against a huge count).
pub const SAMPLES_PER_ROW_MAX: u64 = 2_000_000;
/// Simulated rounds at most (each round is one booking per user).
pub const SIM_RUNS_MAX: u64 = 400;

/// One row of a Locust `_stats.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsRow {
    pub kind: String,
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    /// (quantile 0..=1, ms), rising; starts with (0, min).
    pub percentiles_ms: Vec<(f64, f64)>,
}

/// What `validate --locust-stats` judges.
#[derive(Clone, Debug)]
pub struct LocustConfig {
    pub stats: PathBuf,
    pub scenario: String,
    pub strategy: backend_core::booking::strategy::Strategy,
    pub profile: Arc<Profile>,
    pub profile_source: String,
    pub seed: u64,
}

/// The verdict of one comparison: the table row and the numbers behind it.
#[derive(Debug)]
pub struct LocustJudgement {
    pub users: u32,
    pub bookings: u64,
    pub rounds: u64,
    pub comparison: Comparison,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> RealError {
    RealError::BadInput(format!("--locust-stats {}: {what}", path.display()))
}

/// Splits one CSV line (Locust quotes a field only when it must; `""` is a quote).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// A CSV file's rows, each with its line number (1-based).
type CsvRows = Vec<(usize, Vec<String>)>;

/// A CSV file as a header and rows; errors name the file and the line.
fn read_csv(path: &Path) -> Result<(Vec<String>, CsvRows), RealError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else { return Err(bad(path, "empty file")) };
    let header = fields(header);
    let rows = lines.map(|(i, l)| (i + 1, fields(l))).collect();
    Ok((header, rows))
}

fn column(header: &[String], name: &str, path: &Path) -> Result<usize, RealError> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        bad(path, format!("no `{name}` column: not a Locust --csv stats file (header: {header:?})"))
    })
}

/// Parses a Locust `_stats.csv`.
pub fn parse_stats(path: &Path) -> Result<Vec<StatsRow>, RealError> {
    let (header, rows) = read_csv(path)?;
    let (kind, name) = (column(&header, "Type", path)?, column(&header, "Name", path)?);
    let requests = column(&header, "Request Count", path)?;
    let failures = column(&header, "Failure Count", path)?;
    let min = column(&header, "Min Response Time", path)?;
    // The percentile columns: "50%", "66%", …, "100%".
    let percentile_columns: Vec<(usize, f64)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| Some((i, h.strip_suffix('%')?.parse::<f64>().ok()? / 100.0)))
        .collect();
    if !percentile_columns.iter().any(|&(_, q)| q == 1.0) || percentile_columns.len() < 3 {
        return Err(bad(path, "no percentile columns (50%, …, 100%)"));
    }
    let mut out = Vec::new();
    for (line, row) in rows {
        let at = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
        let number = |i: usize| -> Result<u64, RealError> {
            at(i).trim().parse::<u64>().map_err(|_| {
                bad(path, format!("line {line}: `{}` in `{}` is not a count", at(i), header[i]))
            })
        };
        let requests = number(requests)?;
        let failures = number(failures)?;
        let mut percentiles_ms = Vec::new();
        if requests > 0 {
            let ms = |i: usize| -> Result<f64, RealError> {
                let v = at(i).trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
                v.ok_or_else(|| {
                    bad(path, format!("line {line}: `{}` in `{}` is not a time", at(i), header[i]))
                })
            };
            percentiles_ms.push((0.0, ms(min)?));
            for &(i, q) in &percentile_columns {
                let value = ms(i)?;
                let previous = percentiles_ms.last().map(|p| p.1).unwrap_or(0.0);
                // Locust rounds each percentile on its own; keep the table non-decreasing.
                percentiles_ms.push((q, value.max(previous)));
            }
        }
        out.push(StatsRow {
            kind: at(kind).to_string(),
            name: at(name).to_string(),
            requests,
            failures,
            percentiles_ms,
        });
    }
    Ok(out)
}

/// The largest `User Count` of a Locust `_stats_history.csv`.
pub fn users_from_history(path: &Path) -> Result<u32, RealError> {
    let (header, rows) = read_csv(path)?;
    let users = column(&header, "User Count", path)?;
    let mut most = 0;
    for (line, row) in rows {
        let text = row.get(users).map(String::as_str).unwrap_or("").trim();
        let count: u32 = text
            .parse()
            .map_err(|_| bad(path, format!("line {line}: `{text}` is not a user count")))?;
        most = most.max(count);
    }
    if most == 0 {
        return Err(bad(path, "no user ever ran (User Count is 0 throughout)"));
    }
    Ok(most)
}

/// `PREFIX_stats.csv` → `PREFIX_stats_history.csv`.
pub fn history_beside(stats: &Path) -> Result<PathBuf, RealError> {
    let name = stats.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let prefix = name.strip_suffix("_stats.csv").ok_or_else(|| {
        bad(stats, "expected Locust's PREFIX_stats.csv (written by --csv PREFIX)")
    })?;
    Ok(stats.with_file_name(format!("{prefix}_stats_history.csv")))
}

/// The booking rows' response times as one histogram of µs with Locust's sample size.
pub fn room_assignment(rows: &[StatsRow]) -> Histogram<u64> {
    let mut histogram = latency_histogram();
    for row in rows.iter().filter(|r| r.name.starts_with(BOOKING_NAME_PREFIX)) {
        let samples = row.requests.min(SAMPLES_PER_ROW_MAX);
        if samples == 0 || row.percentiles_ms.len() < 2 {
            continue;
        }
        for i in 0..samples {
            // Mid-points of `samples` equal slices of the quantile range.
            let u = (i as f64 + 0.5) / samples as f64;
            let ms = model::profile::inverse_cdf(&row.percentiles_ms, u);
            let us = (ms * 1_000.0).round().max(1.0) as u64;
            histogram.saturating_record(us);
        }
    }
    histogram
}

/// Runs the comparison: reads the files, simulates, judges room assignment.
pub fn judge_locust(config: &LocustConfig) -> Result<LocustJudgement, RealError> {
    let rows = parse_stats(&config.stats)?;
    let bookings: u64 =
        rows.iter().filter(|r| r.name.starts_with(BOOKING_NAME_PREFIX)).map(|r| r.requests).sum();
    if bookings == 0 {
        return Err(bad(
            &config.stats,
            format!(
                "no `{BOOKING_NAME_PREFIX} …` requests (run the locustfile's concurrent or conflict tag)"
            ),
        ));
    }
    let users = users_from_history(&history_beside(&config.stats)?)?;
    let real = room_assignment(&rows);
    let loaded = load_scenario(&config.scenario)?;
    let scenario = scenario_at_level(&loaded, users)?;
    let rounds = (bookings / u64::from(users)).clamp(1, SIM_RUNS_MAX);
    // A day per round, within the backend's horizon, as validate's real side books.
    let days = round_days(&loaded)?;
    eprintln!(
        "validate: simulating {rounds} rounds of {users} users against Locust's {bookings} bookings …"
    );
    let simulated = sim_side(
        on_loopback(&scenario),
        config.strategy,
        &config.profile,
        config.seed,
        rounds,
        &days,
        // Locust's HttpUser keeps one keep-alive session per user.
        sim::net::Connections::KeepAlive,
    )?;
    let comparison = compare_at_resolution(
        &real,
        simulated.histograms.get(Metric::RoomAssignment),
        LOCUST_RESOLUTION_US,
    );
    Ok(LocustJudgement { users, bookings, rounds, comparison })
}

/// `validate --locust-stats`: prints the table; out of band is a failed judgement (exit 1).
pub fn locust_command(config: &LocustConfig) -> Result<(), RealError> {
    let judgement = judge_locust(config)?;
    let row = MetricRow {
        metric: "room_assignment".to_string(),
        level: judgement.users,
        comparison: judgement.comparison,
    };
    println!("{}", side_by_side(std::slice::from_ref(&row)));
    println!(
        "Locust run {}: {} bookings at {} users; simulation: {} rounds, scenario {}, strategy {}, \
         seed {}, profile {}",
        config.stats.display(),
        judgement.bookings,
        judgement.users,
        judgement.rounds,
        config.scenario,
        config.strategy,
        config.seed,
        config.profile_source
    );
    println!(
        "note: Locust keeps connections alive, the simulated clients open one per attempt; only \
         room assignment is compared (Locust's CSV has whole requests only)"
    );
    if !row.comparison.passed() {
        return Err(RealError::OutOfBand(
            "validate --locust-stats: room assignment out of band (see the table above)".into(),
        ));
    }
    println!("validate: every judged quantile in band");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Type,Name,Request Count,Failure Count,Median Response Time,\
        Average Response Time,Min Response Time,Max Response Time,Average Content Size,\
        Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("roomsim-locust-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_stats_table_becomes_a_histogram_with_its_percentiles_and_size() {
        let dir = scratch("parse");
        let stats = dir.join("run_stats.csv");
        let text = format!(
            "{HEADER}\n\
             POST,POST /v1/appointments [concurrent],1000,0,4,5,1,40,300,20,0,4,5,5,6,8,10,14,20,30,40,40\n\
             POST,\"POST /v1/room-assignments:preview [rules]\",500,0,2,2,1,9,300,10,0,2,2,2,2,3,4,5,6,9,9,9\n\
             ,Aggregated,1500,0,3,4,1,40,300,30,0,3,4,4,5,7,9,12,18,30,40,40\n"
        );
        std::fs::write(&stats, text).unwrap();
        let rows = parse_stats(&stats).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].name, "POST /v1/room-assignments:preview [rules]");
        let h = room_assignment(&rows);
        assert_eq!(h.len(), 1000, "the booking row only, with Locust's count");
        let p50 = h.value_at_quantile(0.5) as f64 / 1000.0;
        let p95 = h.value_at_quantile(0.95) as f64 / 1000.0;
        assert!((3.9..=4.1).contains(&p50), "p50 {p50} ms");
        assert!((9.9..=10.1).contains(&p95), "p95 {p95} ms");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_user_count_comes_from_the_history_beside_the_stats() {
        let dir = scratch("history");
        let stats = dir.join("x_stats.csv");
        let history = history_beside(&stats).unwrap();
        assert_eq!(history, dir.join("x_stats_history.csv"));
        std::fs::write(
            &history,
            "Timestamp,User Count,Type,Name,Requests/s\n1,5,,Aggregated,0\n2,10,,Aggregated,3\n3,10,,Aggregated,4\n",
        )
        .unwrap();
        assert_eq!(users_from_history(&history).unwrap(), 10);
        assert!(history_beside(&dir.join("stats.txt")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_name_the_file_the_line_and_the_column() {
        let dir = scratch("bad");
        let stats = dir.join("b_stats.csv");
        std::fs::write(&stats, "a,b,c\n1,2,3\n").unwrap();
        let e = parse_stats(&stats).unwrap_err().to_string();
        assert!(e.contains("b_stats.csv") && e.contains("`Type`"), "{e}");
        std::fs::write(&stats, format!("{HEADER}\nPOST,POST /v1/appointments,many,0\n")).unwrap();
        let e = parse_stats(&stats).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("Request Count"), "{e}");
        let e = parse_stats(&dir.join("missing_stats.csv")).unwrap_err().to_string();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes a Locust stats + history pair whose booking row has `quantiles_ms`.
    fn locust_files(dir: &Path, requests: u64, users: u32, quantiles_ms: &[u64; 11]) -> PathBuf {
        let stats = dir.join("run_stats.csv");
        let cells: Vec<String> = quantiles_ms.iter().map(u64::to_string).collect();
        let row = format!(
            "POST,POST /v1/appointments [concurrent],{requests},0,{},1,{},{},300,10,0,{}",
            quantiles_ms[0],
            quantiles_ms[0].min(1),
            quantiles_ms[10],
            cells.join(",")
        );
        std::fs::write(&stats, format!("{HEADER}\n{row}\n")).unwrap();
        let history = format!("Timestamp,User Count\n1,{users}\n2,{users}\n");
        std::fs::write(dir.join("run_stats_history.csv"), history).unwrap();
        stats
    }

    /// The judgement can pass and fail: a Locust table built from the simulation's own
    /// quantiles (rounded to whole ms, as Locust keeps them) is in band; the same table five
    /// times slower is not.
    #[test]
    fn a_locust_run_like_the_simulation_passes_and_a_slower_one_fails() {
        let dir = scratch("judge");
        let (users, rounds, seed) = (5_u32, 40_u64, 7);
        let strategy = backend_core::booking::strategy::Strategy::Exclusion;
        let loaded = load_scenario("storm").unwrap();
        let scenario = on_loopback(&scenario_at_level(&loaded, users).unwrap());
        let profile = sim::world::default_profile();
        let days = round_days(&loaded).unwrap();
        let simulated =
            sim_side(scenario, strategy, &profile, seed, rounds, &days, Default::default())
                .unwrap();
        let h = simulated.histograms.get(Metric::RoomAssignment);
        let points = [0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0];
        let ms = |q: f64, factor: u64| (h.value_at_quantile(q) * factor).div_ceil(1_000);
        let config = |stats: PathBuf| LocustConfig {
            stats,
            scenario: "storm".into(),
            strategy,
            profile: profile.clone(),
            profile_source: "default".into(),
            seed,
        };
        let bookings = rounds * u64::from(users);
        let same = points.map(|q| ms(q, 1));
        let judged = judge_locust(&config(locust_files(&dir, bookings, users, &same))).unwrap();
        assert_eq!((judged.users, judged.rounds), (users, rounds));
        assert!(judged.comparison.passed(), "{:?}", judged.comparison);
        let slower = points.map(|q| ms(q, 5));
        let judged = judge_locust(&config(locust_files(&dir, bookings, users, &slower))).unwrap();
        assert!(!judged.comparison.passed(), "5× slower must fail: {:?}", judged.comparison);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fields_honour_quotes() {
        assert_eq!(fields("a,\"b,c\",\"d\"\"e\""), vec!["a", "b,c", "d\"e"]);
    }
}
