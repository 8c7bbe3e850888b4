//! The hosts of the world besides the clients: the backend and the db. With the model
//! backend, backend-core's router over a pool of model sessions and the model engine's server
//! (`model_world`); with `--backend stand-in`, the stand-in backend alone (no db host).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::error::SimError;
use crate::histograms::Metric;
use crate::ids::ClinicIds;
use crate::model_db::DeadlockLog;
use crate::model_world;
use crate::net;
use crate::pool::{ConnectFn, Pool, WaitObserver};
use crate::seeds::{Seeds, Stream};
use crate::stand_in;
use crate::timescale::scaled_ms;
use crate::topology::BACKEND_PORT;

use super::config::RunConfig;
use super::shared::{DbSide, Shared};

/// Registers the model backend and the db host; the db side the driver and results use.
pub(super) fn add_model_hosts(
    sim: &mut turmoil::Sim<'static>,
    config: &RunConfig,
    seeds: &Seeds,
    shared: &Shared,
) -> Result<DbSide, SimError> {
    let strategy = model_world::strategy(&config.strategy)?;
    let ids = ClinicIds::new(&config.scenario);
    let engine = model_world::prepared_engine(&config.scenario, &ids, strategy, config.seed)?;
    let engine = Rc::new(RefCell::new(engine));
    let servers = Rc::new(RefCell::new(Vec::new()));
    let deadlocks: DeadlockLog = Arc::new(Mutex::new(Vec::new()));
    let cores = model_world::shared_cores(&config.profile);
    model_world::add_db_host(
        sim,
        engine.clone(),
        seeds,
        &config.profile,
        servers.clone(),
        cores.clone(),
    );
    let sinks = model_world::BackendSinks {
        histograms: shared.histograms.clone(),
        deadlocks: deadlocks.clone(),
        listening: shared.backend_listening.clone(),
    };
    let machine = model_world::Machine { profile: config.profile.clone(), cores };
    let backend = model_world::BackendSpec {
        scenario: config.scenario.clone(),
        strategy,
        guard: config.guard,
    };
    model_world::add_backend_host(sim, backend, seeds, sinks, machine);
    Ok(DbSide::Model { engine, servers, deadlocks })
}

/// Registers the stand-in backend (its store is the whole database side).
pub(super) fn add_stand_in_backend(
    sim: &mut turmoil::Sim<'static>,
    config: &RunConfig,
    seeds: &Seeds,
    shared: &Shared,
    store: Arc<Mutex<stand_in::Store>>,
) {
    let scenario = config.scenario.clone();
    let naive = config.strategy == "naive";
    let trace = shared.trace.clone();
    let histograms = shared.histograms.clone();
    let db_rng = Arc::new(Mutex::new(seeds.rng(Stream::DbScheduler)));
    let listening = shared.backend_listening.clone();
    sim.host("backend", move || {
        let listening = listening.clone();
        let connect: ConnectFn<()> = Arc::new(|| Box::pin(async { Ok(()) }));
        let sink = histograms.clone();
        let on_wait: WaitObserver =
            Arc::new(move |us| sink.lock().expect("histograms").record(Metric::PoolWait, us));
        let backend = stand_in::Backend {
            scenario: scenario.clone(),
            store: store.clone(),
            pool: Pool::new(
                scenario.backend.pool_size,
                scaled_ms(scenario.backend.acquire_timeout_ms),
                connect,
                on_wait,
            ),
            rng: db_rng.clone(),
            trace: trace.clone(),
            naive,
            ids: Arc::new(ClinicIds::new(&scenario)),
        };
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BACKEND_PORT)).await?;
            listening.set(true);
            axum::serve(net::TurmoilListener(listener), stand_in::router(backend)).await?;
            Ok(())
        }
    });
}
