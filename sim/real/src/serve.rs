//! backend-core as a real HTTP service: `api_router` over tokio TCP with the sqlx `PgDb`, the
//! wall clock and random ids — the same router the simulation serves over turmoil TCP.
//!
//! [`Server::start`] is used both by `roomsim serve` (which then runs until killed) and by
//! `roomsim validate`/`calibrate` (which start it in-process on an ephemeral port and stop it
//! after the run, closing the pool so PostgreSQL publishes its statistics).
//!
//! NOT MODELLED: TLS, graceful drain on SIGINT (the process is simply killed), a CPU-cost
//! charge (production charges nothing; the simulation's hook is virtual time).

use std::net::SocketAddr;
use std::sync::Arc;

use backend_core::booking::Strategy;
use backend_core::booking::work::WorkCharge;
use backend_core::config::ApiConfig;
use backend_core::db::Db;
use backend_core::db::guard::GuardMode;
use backend_core::db::pg::PgDb;
use backend_core::domain::{RandomIds, SystemClock};
use backend_core::http::serve::{ServeLimits, serve};
use backend_core::http::{ApiContext, api_router};
use tokio::sync::oneshot;

use super::RealError;
use super::database::{DbTarget, check_schema};

/// Pool sizes accepted by `--pool`.
pub const POOL_CONNECTIONS_MAX: u32 = 500;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub target: DbTarget,
    pub listen: String,
    pub pool_connections: u32,
    pub strategy: Strategy,
    /// Seeds the backend's retry jitter.
    pub seed: u64,
    /// Header and body read timeouts.
    pub limits: ServeLimits,
    /// The transaction guard (`late-begin` only to reproduce issue #12's leak).
    pub guard: GuardMode,
}

impl ServeConfig {
    /// An in-process server on an ephemeral loopback port (validate, calibrate, throughput).
    pub fn ephemeral(
        target: &DbTarget,
        pool_connections: u32,
        strategy: Strategy,
        seed: u64,
    ) -> Self {
        let listen = "127.0.0.1:0".to_string();
        ServeConfig {
            target: target.clone(),
            listen,
            pool_connections,
            strategy,
            seed,
            limits: ServeLimits::default(),
            guard: GuardMode::default(),
        }
    }
}

/// A running server.
pub struct Server {
    pub address: SocketAddr,
    pub db: PgDb,
    pub context: ApiContext,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// TCP connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicU64>,
}

/// Parses a strategy name into a bad-input error listing the valid ones.
pub fn parse_strategy(name: &str) -> Result<Strategy, RealError> {
    name.parse::<Strategy>().map_err(|e| RealError::BadInput(format!("--strategy: {e}")))
}

impl Server {
    /// Connects, checks the schema, binds and serves in the background.
    pub async fn start(config: &ServeConfig) -> Result<Server, RealError> {
        Server::start_wrapped(config, &|db| db, None).await
    }

    /// As [`Server::start`], with the `Db` the API sees wrapped (calibration times it).
    pub async fn start_wrapped(
        config: &ServeConfig,
        wrap: &(dyn Fn(Arc<dyn Db>) -> Arc<dyn Db> + Sync),
        work: Option<Arc<dyn WorkCharge>>,
    ) -> Result<Server, RealError> {
        Server::start_instrumented(config, wrap, work, &|router| router).await
    }

    /// [`Server::start_wrapped`] plus a layer around the router (calibration reads responses).
    pub async fn start_instrumented(
        config: &ServeConfig,
        wrap: &(dyn Fn(Arc<dyn Db>) -> Arc<dyn Db> + Sync),
        work: Option<Arc<dyn WorkCharge>>,
        layer: &(dyn Fn(axum::Router) -> axum::Router + Sync),
    ) -> Result<Server, RealError> {
        let pool = config.pool_connections;
        if pool == 0 || pool > POOL_CONNECTIONS_MAX {
            return Err(RealError::BadInput(format!(
                "--pool {pool}: must be 1..={POOL_CONNECTIONS_MAX}"
            )));
        }
        let listen: SocketAddr = config.listen.parse().map_err(|e| {
            RealError::BadInput(format!("--listen `{}`: not an address ({e})", config.listen))
        })?;
        let db = config.target.pool_guarded(pool, config.guard).await?;
        check_schema(&db, &config.target).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| RealError::BadInput(format!("--listen {listen}: cannot listen ({e})")))?;
        let address = listener.local_addr().map_err(|e| RealError::RunFailed(e.to_string()))?;
        let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = accepted.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        let api_config = ApiConfig { strategy: config.strategy, ..ApiConfig::default() };
        let shared_db: Arc<dyn Db> = Arc::new(db.clone());
        let context = ApiContext::new(
            wrap(shared_db),
            Arc::new(SystemClock),
            Arc::new(RandomIds::default()),
            api_config,
            config.seed,
        );
        let context = match work {
            Some(work) => context.with_work_charge(work),
            None => context,
        };
        let router = layer(api_router(context.clone()));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let limits = ServeLimits { body_bytes_max: context.config.body_bytes_max, ..config.limits };
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            serve(listener, router, limits, shutdown).await
        });
        Ok(Server { address, db, context, shutdown: Some(shutdown), task, accepted })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// TCP connections the server accepted so far (one per client connection).
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs until the server fails (it normally runs until the process is killed).
    pub async fn wait(mut self) -> Result<(), RealError> {
        let result = (&mut self.task).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RealError::RunFailed(format!("server stopped: {e}"))),
            Err(e) => Err(RealError::RunFailed(format!("server task failed: {e}"))),
        }
    }

    /// Stops accepting, lets open requests finish, closes the database pool.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.task).await;
        self.db.pool().close().await;
    }
}

/// `roomsim serve`: serves until killed.
pub async fn serve_command(config: ServeConfig) -> Result<(), RealError> {
    // Logs to stderr: every 5xx, retry and rollback, with the request id (RUST_LOG filters;
    // default info).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let server = Server::start(&config).await?;
    eprintln!(
        "roomsim serve: listening on {} (strategy {}, pool {}, database {})",
        server.base_url(),
        config.strategy,
        config.pool_connections,
        config.target.describe()
    );
    server.wait().await
}
