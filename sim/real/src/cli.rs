//! The clap surface of the real-PostgreSQL commands and their dispatch.
//!
//! Parsing stays here; each command's work lives in its own module. Every flag that names a
//! database has the `DATABASE_URL` env twin.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use backend_core::db::schema::SchemaVariant;

use super::calibrate::{self, CalibrateConfig};
use super::database::{self, DbTarget};
use super::load::{self, LoadConfig, Target};
use super::locust::LocustConfig;
use super::monitor::Monitor;
use super::report::ReportExtras;
use super::serve::{self, ServeConfig};
use super::setup::{self, SetupConfig};
use super::throughput::{self, ThroughputConfig};
use super::validate::{CpuSplit, Knobs, ProbeSource, SimProfile, ValidateConfig};
use super::workload::{self, Fixture, Task};
use super::{RealError, parse_duration, report};
use backend_core::db::guard::GuardMode;
use backend_core::http::serve::ServeLimits;

/// The real-PostgreSQL subcommands of `roomsim`.
#[derive(Debug, Subcommand)]
pub enum RealCommand {
    /// Set up or clean the test database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Serve backend-core over real HTTP with real PostgreSQL.
    #[command(after_help = SERVE_ENDPOINTS)]
    Serve(ServeArgs),
    /// Send booking load to a running `roomsim serve`.
    Load(LoadArgs),
    /// Measure per-statement service times and write a latency profile.
    Calibrate(CalibrateArgs),
    /// Run a scenario on real PostgreSQL and in the simulation and compare them.
    Validate(Box<ValidateArgs>),
    /// Booking throughput through `serve` vs pgbench running the same booking SQL.
    Throughput(ThroughputArgs),
}

/// The endpoints `serve --help` lists (a test compares them with the OpenAPI document).
const SERVE_ENDPOINTS: &str = "\
Endpoints (the full reference: GET /openapi.json, or `roomsim openapi`):
  POST /v1/appointments                book a room (header Idempotency-Key honoured)
  POST /v1/room-assignments:preview    rank the rooms for a request, no write
  POST /v1/appointments/{id}/cancel    cancel an appointment (idempotent)
  GET  /v1/rooms/availability          free intervals per room (clinic_id, from, to)
  GET  /healthz                        database reachable
  GET  /metrics                        Prometheus text
  GET  /openapi.json                   the OpenAPI 3.1 document
Errors are application/problem+json; responses carry Server-Timing and X-Request-Id.";

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// HTTP users and pgbench clients.
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// The backend's database pool.
    #[arg(long, default_value_t = 20)]
    pub pool: u32,
    /// Duration of each side.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub run_time: Duration,
    #[arg(long, env = "ROOMSIM_SEED", default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Run migrations and seed the test clinic; prints the ids and writes the fixture file.
    Setup(SetupArgs),
    /// Remove the test appointments (and idempotency keys).
    Cleanup(DatabaseArgs),
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://root@127.0.0.1:5432/test.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: String,
    /// Work in this schema (SET search_path TO schema, public).
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
}

impl DatabaseArgs {
    pub fn target(&self) -> Result<DbTarget, RealError> {
        DbTarget::new(&self.database_url, self.schema.as_deref())
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Scenario whose clinic is seeded.
    #[arg(long, default_value = "storm")]
    pub scenario: String,
    /// Where the ids are written for `roomsim load` and the Locust file; `-`: printed as
    /// JSON on stdout. Default: $XDG_STATE_HOME/roomsim/fixture[-SCHEMA].json (else
    /// ~/.local/state/roomsim/…), outside the working tree.
    #[arg(long, env = "ROOMSIM_FIXTURE", value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    /// Print `export TEST_CLINIC_ID=…` lines (the load-test plan's variables) on stdout, for
    /// `eval "$(roomsim db setup --print-env)"`; the summary goes to stderr.
    #[arg(long)]
    pub print_env: bool,
    /// Create appointments without the no_room_overlap constraint (for BROKEN strategies).
    #[arg(long)]
    pub unguarded: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR")]
    pub listen: String,
    /// Database connections in the pool.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub pool: u32,
    /// Booking strategy (see `roomsim strategies`).
    #[arg(long, default_value = "exclusion")]
    pub strategy: String,
    /// Seed of the backend's retry jitter.
    #[arg(long, env = "ROOMSIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Longest wait for a request's headers (a slow or stalled client is disconnected).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_read_timeout: Duration,
    /// Longest wait for a request's body after its headers (then 408).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_read_timeout: Duration,
    /// The transaction guard around pooled sessions; `late-begin` is a planted bug, for
    /// reproducing the leaked-transaction bug of issue #12.
    #[arg(long, default_value = "safe", value_parser = parse_guard)]
    pub guard: GuardMode,
}

fn parse_guard(text: &str) -> Result<GuardMode, String> {
    text.parse()
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of a running `roomsim serve` (loopback only).
    #[arg(long, env = "ROOMSIM_TARGET", value_name = "URL")]
    pub target: String,
    /// Scenario: picks the default tags (storm: concurrent; conflict; rules; all).
    #[arg(long, default_value = "storm")]
    pub scenario: String,
    /// Closed-loop users.
    #[arg(long, default_value_t = 50)]
    pub users: u32,
    /// Users started per second.
    #[arg(long, default_value_t = 10.0)]
    pub spawn_rate: f64,
    /// How long to run: 30s, 2m, 1h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub run_time: Duration,
    /// Scenario parts to run: concurrent, conflict, rules.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Open loop: requests per second, latency measured from the intended send time.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Closed loop: wait between a user's requests.
    #[arg(long, default_value_t = 0)]
    pub wait_ms: u64,
    /// A new connection per request instead of one HTTP/1.1 keep-alive connection per user
    /// (the default, as Locust's HttpUser; the open loop shares a pool then).
    #[arg(long)]
    pub fresh_connections: bool,
    /// Seed of the request streams.
    #[arg(long, env = "ROOMSIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Per-request timeout.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 10_000_000)]
    pub requests_max: u64,
    /// Ids written by `roomsim db setup`; default: where `db setup` writes them (for
    /// `--schema`, that schema's file).
    #[arg(long, env = "ROOMSIM_FIXTURE", value_name = "FILE")]
    pub fixture: Option<PathBuf>,
    #[command(flatten)]
    pub reports: report::ReportArgs,
    /// Sample pg_stat_activity / pg_locks / deadlocks / index usage during the run.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// The schema whose index usage is reported (as given to `serve --schema`).
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
}

impl LoadArgs {
    pub fn config(&self) -> Result<LoadConfig, RealError> {
        let tasks = if self.tags.is_empty() {
            Task::defaults_for_scenario(&self.scenario)
        } else {
            Task::parse_tags(&self.tags)?
        };
        let config = LoadConfig {
            target: Target::parse(&self.target)?,
            tasks,
            users: self.users,
            spawn_rate_per_s: self.spawn_rate,
            run_time: self.run_time,
            rate_per_s: self.rate,
            wait_ms: self.wait_ms,
            seed: self.seed,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            requests_max: self.requests_max,
            progress: true,
            checkpoint: self.reports.checkpoint(),
            connections: sim::net::Connections::from_fresh_flag(self.fresh_connections),
        };
        config.validate()?;
        self.reports.check_destinations()?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Where the latency profile (TOML) is written.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Booking requests measured (some end in 409 before any transaction).
    #[arg(long, default_value_t = 2_000)]
    pub bookings: u32,
    /// Scenario whose clinic the bookings go to.
    #[arg(long, default_value = "storm")]
    pub scenario: String,
    #[arg(long, env = "ROOMSIM_SEED", default_value_t = 1)]
    pub seed: u64,
}

/// `validate --statement-probe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeWhen {
    /// first-level when the first --concurrency level is 1, else before.
    Auto,
    /// This run's own first (1-user) level.
    FirstLevel,
    /// A probe of its own, before the real side.
    Before,
}

impl ProbeWhen {
    /// Where the probe comes from for these levels.
    pub fn source(self, levels: &[u32]) -> ProbeSource {
        match self {
            ProbeWhen::Auto => ProbeSource::for_levels(levels),
            ProbeWhen::FirstLevel => ProbeSource::FirstLevel,
            ProbeWhen::Before => ProbeSource::BeforeRun,
        }
    }
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[arg(long, default_value = "storm")]
    pub scenario: String,
    /// PostgreSQL URL, e.g. postgres://root@127.0.0.1:5432/test (not used with
    /// --locust-stats).
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Work in this schema (SET search_path TO schema, public).
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
    /// Judge the simulation against a Locust run instead of running the real side: the
    /// `PREFIX_stats.csv` of `locust --csv PREFIX` (the user count is read from
    /// `PREFIX_stats_history.csv` beside it). Room assignment only; no database needed.
    #[arg(long, value_name = "FILE", conflicts_with = "profile_from_run")]
    pub locust_stats: Option<PathBuf>,
    /// Concurrency levels (closed-loop users).
    #[arg(long, value_delimiter = ',', default_value = "10,25,50")]
    pub concurrency: Vec<u32>,
    /// Run time per level on real PostgreSQL.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub run_time: Duration,
    /// Booking strategy.
    #[arg(long, default_value = "exclusion")]
    pub strategy: String,
    /// Latency profile for the simulation (default: the committed one).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Measure the simulation's profile during this run instead, at its first level (which
    /// must be 1): `calibrate` on the very requests judged, so the machine cannot drift
    /// between the two and the model itself is judged. Written beside the --html report.
    #[arg(long, conflicts_with = "profile")]
    pub profile_from_run: bool,
    /// Use the profile as recorded: do not scale it to this machine (by default it is scaled
    /// by a statement probe: each statement class by its mean now ÷ recorded, the backend's
    /// CPU by its median; the factors are printed; see --statement-probe).
    #[arg(long)]
    pub no_machine_scaling: bool,
    /// Where the statement probe that scales the profile comes from. `first-level`: this
    /// run's own first level (which must be 1 user) and its first level of 10 users or more,
    /// the very requests judged at one user, so the machine cannot drift between the probe
    /// and that level (it did by up to 40 %). `before`: a probe of its own just before the
    /// real side (500 requests of the scenario's 1-user level, and a short 10-user level).
    /// `auto`: first-level when the first --concurrency level is 1, else before.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN",
          conflicts_with_all = ["profile_from_run", "no_machine_scaling"])]
    pub statement_probe: ProbeWhen,
    /// Both sides: a new connection per request instead of one HTTP/1.1 keep-alive
    /// connection per simulated user (the default, as Locust's HttpUser).
    #[arg(long)]
    pub fresh_connections: bool,
    /// The simulation's time slice on the shared cores, modelled µs (a multiple of 25),
    /// instead of the profile's `[cpu] quantum_us`; 0 = run every piece of work to its end.
    /// Several values (comma-separated): the simulation runs once per value against the same
    /// real side, each judged (the --html report shows the first).
    #[arg(long, value_delimiter = ',', value_name = "US")]
    pub quantum_us: Vec<u64>,
    /// The simulation's off-path CPU per request (µs on this machine, after scaling: the
    /// machine's work for a request that its answer does not wait for) instead of the
    /// profile's `[cpu] offpath_us`; 0 = none. Several values: the simulation runs once per
    /// value (and per --quantum-us value) against the same real side, each judged.
    #[arg(long, value_delimiter = ',', value_name = "US")]
    pub offpath_us: Vec<f64>,
    /// The simulation's backend worker threads instead of the profile's `[cpu]
    /// backend_workers` (the real side runs its service on 2); 0 = no limit, every piece of
    /// the backend's CPU work takes a core for itself. Several values: the simulation runs
    /// once per value (and per --quantum-us and --offpath-us value), each judged.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub backend_workers: Vec<u32>,
    /// The simulation's statement core fraction (0 < F ≤ 1: the share of a statement's
    /// drawn round trip that holds a shared core) instead of the profile's `[cpu]
    /// statement_core_fraction`. Several values: one simulation per value, each judged.
    #[arg(long, value_delimiter = ',', value_name = "F")]
    pub core_fraction: Vec<f64>,
    /// The simulation's busy-machine cost factor (0 < B ≤ 1: a request's CPU and a rules
    /// evaluation charged while the backend serves another request cost B times their draw)
    /// instead of the profile's `[cpu] busy_cost_factor`. Several values: one simulation per
    /// value, each judged.
    #[arg(long, value_delimiter = ',', value_name = "B")]
    pub busy_cost_factor: Vec<f64>,
    /// The simulation's WAL flush share (0 ≤ S ≤ 0.95: the last S of a writing transaction's
    /// COMMIT waits for the log's one flusher, with group commit, and the commit becomes
    /// visible only after it) instead of the profile's `[wal] commit_flush_share`; 0 = no
    /// flush. Several values: one simulation per value, each judged.
    #[arg(long, value_delimiter = ',', value_name = "S")]
    pub commit_flush_share: Vec<f64>,
    /// How the simulation's waiting work shares its cores, instead of the profile's `[cpu]
    /// sharing`: `one-pool` (FIFO), `two-groups` (the database's statements and the service's
    /// work as two scheduling groups, as a kernel with autogroups shares the cores between
    /// PostgreSQL and the shell that started the service), `ping-pong-first` (two groups,
    /// and a statement sent right after its session's previous reply before the database's
    /// other work) or `ping-pong-cooperative` (ping-pong first, and the service's pieces not
    /// sliced among themselves, as tokio tasks on worker threads). Several (`one-pool,two-groups`): one simulation each, judged against the same real side.
    #[arg(long, value_delimiter = ',', value_name = "NAME", value_parser = sim::world::parse_sharing)]
    pub sharing: Vec<model::io::Sharing>,
    /// The share of a request's drawn CPU the simulated service spends after its statements'
    /// replies (a tick on a shared core after each reply, while the share lasts; the rest
    /// after the handler) instead of before its handler, instead of the profile's `[cpu]
    /// resume_share` (0 ≤ S < 1; 0 = all before). Several values: one simulation each.
    #[arg(long, value_delimiter = ',', value_name = "S")]
    pub resume_share: Vec<f64>,
    /// How the simulation divides the real machine's CPU: `machine` (the profile's statement
    /// core fraction: statements hold a core for all the CPU beyond the modelled request and
    /// rules CPU) or `processes` (from the 1-user level: statements hold a core for
    /// PostgreSQL's CPU, and this process's CPU beyond the modelled request and rules CPU is
    /// spent off the requests' path, `[cpu] offpath_us`). Both (`machine,processes`): one
    /// simulation each, judged against the same real side. Needs the statement probe.
    #[arg(long, value_delimiter = ',', value_name = "HOW")]
    pub cpu_split: Vec<CpuSplit>,
    /// Time every statement on both sides, at every level, and print their round trips by
    /// statement class (p50 / p95 / p99, real beside simulated): which statements the two
    /// sides part on under load. A diagnostic, not judged; the real service's statements are
    /// then timed at every level (a clock read and a histogram record each).
    #[arg(long)]
    pub statement_times: bool,
    /// Sample PostgreSQL's wait events (`pg_stat_activity`, every 5 ms, on a connection of
    /// its own) at every judged level and print where its sessions spend their time, by
    /// statement: on a core, waiting for a lock, for the WAL's flush, or idle in a
    /// transaction for the service. A diagnostic, not judged; the sampler costs a little CPU.
    #[arg(long)]
    pub wait_events: bool,
    /// Run the real side N times, one after another (1 to 5): the simulation is judged
    /// against the first; each further run is judged against the first with the same bands
    /// (a table of its own) and the simulation against it, so the output shows how far the
    /// real side moves between two runs of one command on this machine (the noise floor).
    #[arg(long, default_value_t = 1, value_name = "N", conflicts_with = "locust_stats")]
    pub real_repeats: u32,
    #[arg(long, env = "ROOMSIM_SEED", default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub reports: report::ReportArgs,
}

impl ValidateArgs {
    /// `--locust-stats`: what to compare against the Locust run.
    pub fn locust_config(&self, stats: &std::path::Path) -> Result<LocustConfig, RealError> {
        self.reports.check_destinations()?;
        let (profile, profile_source) = match &self.profile {
            Some(file) => (
                sim::world::load_profile(Some(file))
                    .map_err(|e| RealError::BadInput(e.to_string()))?,
                file.display().to_string(),
            ),
            None => (
                sim::world::default_profile(),
                "the committed default (model/profiles/default.toml)".to_string(),
            ),
        };
        Ok(LocustConfig {
            stats: stats.to_path_buf(),
            scenario: self.scenario.clone(),
            strategy: serve::parse_strategy(&self.strategy)?,
            profile,
            profile_source,
            seed: self.seed,
        })
    }

    pub fn config(&self) -> Result<ValidateConfig, RealError> {
        let Some(url) = &self.database_url else {
            return Err(RealError::BadInput(
                "validate needs --database-url URL (or DATABASE_URL), or --locust-stats FILE"
                    .to_string(),
            ));
        };
        let profile = match &self.profile {
            _ if self.profile_from_run => SimProfile::FromRun,
            Some(file) => SimProfile::Given {
                profile: sim::world::load_profile(Some(file))
                    .map_err(|e| RealError::BadInput(e.to_string()))?,
                source: file.display().to_string(),
            },
            None => SimProfile::committed(),
        };
        self.reports.check_destinations()?;
        let knobs = Knobs {
            quantum_us: self.quantum_us.clone(),
            offpath_us: self.offpath_us.clone(),
            backend_workers: self.backend_workers.clone(),
            core_fraction: self.core_fraction.clone(),
            busy_cost_factor: self.busy_cost_factor.clone(),
            commit_flush_share: self.commit_flush_share.clone(),
            sharing: self.sharing.clone(),
            resume_share: self.resume_share.clone(),
            cpu_split: self.cpu_split.clone(),
        };
        knobs.check(&sim::world::default_profile())?;
        // The split by process comes from the statement probe: refused before any run without.
        if knobs.cpu_split.contains(&CpuSplit::Processes) {
            let without = if self.profile_from_run {
                Some("--profile-from-run")
            } else if self.no_machine_scaling {
                Some("--no-machine-scaling")
            } else {
                None
            };
            if let Some(flag) = without {
                return Err(RealError::BadInput(format!(
                    "--cpu-split processes needs the statement probe, which {flag} leaves out"
                )));
            }
        }
        Ok(ValidateConfig {
            profile,
            machine_scaling: !self.no_machine_scaling,
            probe_source: self.statement_probe.source(&self.concurrency),
            knobs,
            target: DbTarget::new(url, self.schema.as_deref())?,
            scenario: self.scenario.clone(),
            levels: self.concurrency.clone(),
            run_time: self.run_time,
            strategy: serve::parse_strategy(&self.strategy)?,
            seed: self.seed,
            reports: self.reports.clone(),
            connections: sim::net::Connections::from_fresh_flag(self.fresh_connections),
            statement_times: self.statement_times,
            wait_events: self.wait_events,
            real_repeats: self.real_repeats,
        })
    }
}

impl RealCommand {
    pub async fn execute(self) -> Result<(), RealError> {
        match self {
            RealCommand::Load(args) => run_load_command(args).await,
            RealCommand::Db { command: DbCommand::Setup(args) } => setup_command(args).await,
            RealCommand::Db { command: DbCommand::Cleanup(args) } => {
                let target = args.target()?;
                let cleaned = database::cleanup(&target).await?;
                println!(
                    "removed {} appointments and {} idempotency keys from {}",
                    cleaned.appointments,
                    cleaned.idempotency_keys,
                    target.describe()
                );
                Ok(())
            }
            RealCommand::Serve(args) => {
                let limits = ServeLimits {
                    header_read_timeout: args.header_read_timeout,
                    body_read_timeout: args.body_read_timeout,
                    ..ServeLimits::default()
                };
                let config = ServeConfig {
                    target: args.database.target()?,
                    listen: args.listen.clone(),
                    pool_connections: args.pool,
                    strategy: serve::parse_strategy(&args.strategy)?,
                    seed: args.seed,
                    limits,
                    guard: args.guard,
                };
                serve::serve_command(config).await
            }
            RealCommand::Calibrate(args) => {
                let config = CalibrateConfig {
                    target: args.database.target()?,
                    out: args.out.clone(),
                    bookings: args.bookings,
                    scenario: args.scenario.clone(),
                    seed: args.seed,
                };
                calibrate::calibrate_command(config).await
            }
            RealCommand::Throughput(args) => {
                if args.clients == 0 || args.clients > load::USERS_MAX {
                    let why =
                        format!("--clients {}: must be 1..={}", args.clients, load::USERS_MAX);
                    return Err(RealError::BadInput(why));
                }
                let config = ThroughputConfig {
                    target: args.database.target()?,
                    clients: args.clients,
                    pool_connections: args.pool,
                    run_time: args.run_time,
                    seed: args.seed,
                };
                let figures = throughput::measure(&config).await?;
                print!("{}", throughput::describe(&config, &figures));
                Ok(())
            }
            RealCommand::Validate(args) => Err(RealError::BadInput(format!(
                "validate must be run through real::run ({args:?})"
            ))),
        }
    }
}

async fn setup_command(args: SetupArgs) -> Result<(), RealError> {
    let variant = if args.unguarded { SchemaVariant::Unguarded } else { SchemaVariant::Guarded };
    let target = args.database.target()?;
    let path = match &args.fixture {
        Some(path) => path.clone(),
        None => workload::default_fixture_path(target.schema.as_deref()),
    };
    let to_stdout = path.as_os_str() == "-";
    if to_stdout && args.print_env {
        let why = "--fixture - and --print-env both write to stdout; choose one";
        return Err(RealError::BadInput(why.to_string()));
    }
    let config = SetupConfig {
        target,
        scenario: args.scenario.clone(),
        variant,
        fixture_path: (!to_stdout).then(|| path.clone()),
    };
    let report = setup::setup(&config).await?;
    let summary = setup::describe(&report, &config);
    if to_stdout {
        eprint!("{summary}");
        print!("{}", report.fixture.to_json());
    } else if args.print_env {
        eprint!("{summary}");
        print!("{}", report.fixture.env_lines(config.fixture_path.as_deref()));
    } else {
        print!("{summary}");
    }
    Ok(())
}

async fn run_load_command(args: LoadArgs) -> Result<(), RealError> {
    let config = args.config()?;
    let fixture_path = match &args.fixture {
        Some(path) => path.clone(),
        None => workload::default_fixture_path(args.schema.as_deref()),
    };
    let fixture = Arc::new(Fixture::load(&fixture_path)?);
    let monitor_target = match &args.database_url {
        Some(url) => Some(DbTarget::new(url, args.schema.as_deref())?),
        None => None,
    };
    load::preflight(&config.target).await?;
    let monitor = match &monitor_target {
        Some(target) => Some(Monitor::start(&target.url, target.schema.as_deref()).await?),
        None => None,
    };
    let outcome = load::run_load(config, fixture).await;
    let extras = ReportExtras {
        monitor: match monitor {
            Some(monitor) => Some(monitor.finish().await),
            None => None,
        },
        ..ReportExtras::default()
    };
    print!("{}", report::text_summary(&outcome));
    if let Some(summary) = &extras.monitor {
        print!("{}", report::monitor_text(summary));
    }
    report::write_all(&args.reports, &outcome, Some(&extras))?;
    match &outcome.stopped_early {
        Some(reason) => Err(RealError::RunFailed(format!("{reason}; partial results written"))),
        None => Ok(()),
    }
}
