//! The real-PostgreSQL side of roomsim: the same backend over real sockets and a real database,
//! a load generator, calibration, and the side-by-side judgement of the simulation.
//!
//! COMMANDS (wired into `roomsim` by the binary's CLI, sim/roomsim, via [`RealCommand`] and
//! [`run`])
//!
//! ```text
//! roomsim db setup    --database-url URL [--scenario S] [--fixture F|-] [--print-env]
//! roomsim db cleanup  --database-url URL
//! roomsim serve       --database-url URL --listen 127.0.0.1:8000 [--pool N]
//! roomsim load        --target http://127.0.0.1:8000 --users 50 --spawn-rate 10 --run-time 2m
//!                     [--tags concurrent,conflict,rules] [--rate R] [--html F] [--csv P]
//! roomsim calibrate   --database-url URL --out profile.toml
//! roomsim validate    --scenario storm --database-url URL [--concurrency 10,25,50]
//! ```
//!
//! WALL CLOCK
//!
//! Unlike the simulation (`sim`), this crate talks to real processes: it measures real time
//! (`tokio::time::Instant`, which is the OS monotonic clock outside turmoil) and reads
//! `SystemTime` only for report timestamps. Its request *streams* are still seeded.
//!
//! DEPENDENCIES: this crate uses the simulation (`sim`: the workload, the clinic's ids, the
//! world that `validate` runs, the distribution comparison); the simulation never uses it.
//!
//! EXIT CODES: those of every `roomsim` command (sim/roomsim/roomsim/src/exit.rs); which error gives
//! which code is decided in one place, sim/roomsim/src/error.rs.

pub mod calibrate;
mod cli;
pub mod clinic;
pub mod cpu_time;
pub mod database;
pub mod load;
pub mod load_run;
pub mod locust;
pub mod monitor;
pub mod probe;
pub mod report;
pub mod serve;
pub mod setup;
pub mod stats;
pub mod table;
pub mod throughput;
pub mod validate;
pub mod wait_events;
pub mod workload;

pub use cli::{
    CalibrateArgs, DatabaseArgs, DbCommand, LoadArgs, RealCommand, ServeArgs, SetupArgs,
    ThroughputArgs, ValidateArgs,
};

use std::path::Path;
use std::time::Duration;

/// The one error type of the real-PostgreSQL commands.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// A flag, file, URL or environment problem found before the run.
    #[error("{0}")]
    BadInput(String),
    /// The database could not be reached or is not set up.
    #[error("database: {0}")]
    Database(String),
    /// The run started but could not complete (target died, too many failures).
    #[error("run failed: {0}")]
    RunFailed(String),
    /// The run completed and its judgement failed (out of band, anomalies missing).
    #[error("{0}")]
    OutOfBand(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl RealError {
    pub fn io(path: &Path, error: std::io::Error) -> RealError {
        RealError::Io { path: path.display().to_string(), message: error.to_string() }
    }
}

/// Parses a run time like `90s`, `2m`, `1h`, `500ms` or `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_string());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}`: expected a number, e.g. 90s, 2m, 1h, 500ms"));
        }
        let value: u64 = rest[..digits].parse().map_err(|_| format!("`{text}`: too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" | "" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            unit => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h)")),
        };
        rest = &rest[unit_len..];
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("`{text}`: too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Runs one real-PostgreSQL command (the CLI prints the error and maps it to the exit code).
pub fn run(cmd: RealCommand) -> Result<(), RealError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| RealError::RunFailed(format!("cannot start the tokio runtime: {e}")))?;
    match cmd {
        // The simulation builds its own runtimes: validate drives the real side on this one
        // and runs the simulation outside it.
        RealCommand::Validate(args) => match &args.locust_stats {
            Some(stats) => args.locust_config(stats).and_then(|c| locust::locust_command(&c)),
            None => args.config().and_then(|config| validate::validate_command(config, &runtime)),
        },
        cmd => runtime.block_on(cmd.execute()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("2x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse_duration("m").unwrap_err().contains("expected a number"));
        assert!(parse_duration("").is_err());
    }
}
