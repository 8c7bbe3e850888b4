//! What a load run is given and what it gives back, as plain data: where it goes
//! ([`Target`]), how it is shaped ([`LoadConfig`]), which report files it writes
//! ([`ReportArgs`]) and what it measured ([`Outcomes`], [`LoadOutcome`]). The generator
//! (`load.rs`) fills these and the reports (`report/`) read them, so the reports never import
//! the generator.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::RealError;
use super::stats::Recorder;
use super::workload::Task;

/// Report flags shared by `load` and `validate`.
#[derive(Clone, Debug, Default, Args)]
pub struct ReportArgs {
    /// Write one self-contained HTML report.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write Locust-compatible PREFIX_stats.csv, _stats_history.csv and _failures.csv.
    #[arg(long, value_name = "PREFIX")]
    pub csv: Option<String>,
    /// Also write per-request-name rows to the history CSV (Locust's --csv-full-history).
    #[arg(long)]
    pub csv_full_history: bool,
    /// Write an HdrHistogram interval log (HistogramLogAnalyzer-compatible).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
}

impl ReportArgs {
    /// Refuses (before anything runs) a report file whose directory does not exist, naming
    /// the flag and the directory, so a long run does not end in an error with nothing saved.
    pub fn check_destinations(&self) -> Result<(), RealError> {
        let files = [
            ("--html", self.html.clone()),
            ("--csv", self.csv.as_ref().map(PathBuf::from)),
            ("--hlog", self.hlog.clone()),
        ];
        for (flag, file) in files {
            let Some(file) = file else { continue };
            let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else { continue };
            if !dir.is_dir() {
                return Err(RealError::BadInput(format!(
                    "{flag} {}: directory {} does not exist",
                    file.display(),
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// The files to checkpoint during a run (CSV and interval log), if any was asked for.
    pub fn checkpoint(&self) -> Option<ReportArgs> {
        (self.csv.is_some() || self.hlog.is_some())
            .then(|| ReportArgs { html: None, ..self.clone() })
    }

    /// The CSV / interval-log names of one `validate` level: `PREFIX-50u_stats.csv`,
    /// `run-50u.hlog` (each level is its own Locust-style run); the HTML name is unchanged.
    pub fn for_level(&self, level: u32) -> ReportArgs {
        let hlog = self.hlog.as_ref().map(|path| {
            let stem =
                path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let name = match path.extension() {
                Some(ext) => format!("{stem}-{level}u.{}", ext.to_string_lossy()),
                None => format!("{stem}-{level}u"),
            };
            path.with_file_name(name)
        });
        ReportArgs {
            html: self.html.clone(),
            csv: self.csv.as_ref().map(|prefix| format!("{prefix}-{level}u")),
            csv_full_history: self.csv_full_history,
            hlog,
        }
    }
}

/// Transport failures in a row after which the target is declared down.
pub const CONNECTION_FAILURES_MAX: u64 = 200;
/// Open-loop requests in flight at most.
pub const IN_FLIGHT_MAX: u64 = 10_000;
/// Closed-loop users at most.
pub const USERS_MAX: u32 = 10_000;
/// Progress lines on stderr are printed this often for runs at least this long.
pub const PROGRESS_INTERVAL_S: u64 = 10;

/// Where the load goes: a loopback HTTP base URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
}

impl Target {
    /// Accepts `http://127.0.0.1:PORT`, `http://localhost:PORT` or `http://[::1]:PORT`.
    pub fn parse(url: &str) -> Result<Target, RealError> {
        let bad = |why: &str| RealError::BadInput(format!("--target `{url}`: {why}"));
        let uri: http::Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1") {
            return Err(bad("the load generator only targets loopback (127.0.0.1)"));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad("give the base URL only, without a path"));
        }
        let port = uri.port_u16().unwrap_or(80);
        Ok(Target { base: format!("http://{host}:{port}") })
    }
}

/// How a load run is shaped.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: Target,
    pub tasks: Vec<Task>,
    pub users: u32,
    pub spawn_rate_per_s: f64,
    pub run_time: Duration,
    /// Open loop at this many requests per second; `None` is closed loop.
    pub rate_per_s: Option<f64>,
    pub wait_ms: u64,
    pub seed: u64,
    pub timeout: Duration,
    pub requests_max: u64,
    /// Print progress lines on stderr.
    pub progress: bool,
    /// Rewrite these CSV / interval-log files after every interval (the HTML field is ignored).
    pub checkpoint: Option<ReportArgs>,
    /// One keep-alive connection per user (default) or a fresh one per request.
    pub connections: sim::net::Connections,
}

impl LoadConfig {
    /// A closed-loop run against an in-process server: every user starts at once, no think
    /// time, 10 s request timeout, no request budget; callers adjust fields as needed.
    pub fn closed(
        base_url: &str,
        tasks: Vec<Task>,
        users: u32,
        run_time: Duration,
        seed: u64,
    ) -> Self {
        LoadConfig {
            target: Target::parse(base_url).expect("an in-process server listens on loopback"),
            tasks,
            users,
            spawn_rate_per_s: 1_000_000.0,
            run_time,
            rate_per_s: None,
            wait_ms: 0,
            seed,
            timeout: Duration::from_secs(10),
            requests_max: u64::MAX,
            progress: true,
            checkpoint: None,
            connections: sim::net::Connections::KeepAlive,
        }
    }

    pub fn validate(&self) -> Result<(), RealError> {
        let bad = |s: String| Err(RealError::BadInput(s));
        if self.users == 0 || self.users > USERS_MAX {
            return bad(format!("--users {}: must be 1..={USERS_MAX}", self.users));
        }
        if !(self.spawn_rate_per_s > 0.0 && self.spawn_rate_per_s.is_finite()) {
            return bad(format!("--spawn-rate {}: must be > 0", self.spawn_rate_per_s));
        }
        if let Some(rate) = self.rate_per_s
            && !(rate > 0.0 && rate <= 1_000_000.0)
        {
            return bad(format!("--rate {rate}: must be in (0, 1000000]"));
        }
        if self.run_time.is_zero() {
            return bad("--run-time: must be > 0".to_string());
        }
        if self.requests_max == 0 {
            return bad("--requests-max: must be > 0".to_string());
        }
        Ok(())
    }
}

/// Counts of booking outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// 201 with a room.
    pub booked: u64,
    /// 409: no feasible room (alternatives suggested).
    pub rejected: u64,
    /// 2xx of a preview.
    pub previewed: u64,
    pub failed: u64,
}

/// The result of a load run, complete or partial.
#[derive(Debug)]
pub struct LoadOutcome {
    pub recorder: Recorder,
    pub outcomes: Outcomes,
    pub elapsed: Duration,
    pub started_unix_s: u64,
    pub users_max: u32,
    /// Why the run stopped before its run time, if it did.
    pub stopped_early: Option<String>,
    pub config: LoadConfig,
    /// Rounds completed, for a [`run_rounds`] run.
    pub rounds: Option<u64>,
    /// HTTP connections the users opened (keep-alive: about one per user, plus reconnects;
    /// fresh: one per request; the open loop's shared pool is not counted).
    pub connections_opened: u64,
}

impl LoadOutcome {
    /// Bookings (201) per second of the run.
    pub fn bookings_per_s(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.outcomes.booked as f64 / seconds } else { 0.0 }
    }
}
