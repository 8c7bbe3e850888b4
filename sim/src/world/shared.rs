//! The state of one run that the hosts, the clients, the driver and the results share: the
//! trace, the histograms, the clients' records, the in-run checks ([`Shared`]), and the
//! database side the driver acts on and the results read ([`DbSide`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use model::Engine;
use model::io::Server;

use crate::client_faults::ClientFaults;
use crate::histograms::Histograms;
use crate::live::LiveChecker;
use crate::model_db::{DeadlockLog, StatementTap};
use crate::observations::BookingRecord;
use crate::trace::SharedTrace;

/// The database side of one run: the model engine, its servers, the backend's deadlock log.
pub(super) struct DbSide {
    pub(super) engine: Rc<RefCell<Engine>>,
    pub(super) servers: Rc<RefCell<Vec<Server>>>,
    pub(super) deadlocks: DeadlockLog,
    /// The peer address of every session the db host opened, in session-id order.
    pub(super) opened: Rc<RefCell<Vec<std::net::SocketAddr>>>,
    /// Every statement the backend sent (`crate::model_db`'s tap).
    pub(super) tap: StatementTap,
    /// The cores the database and the backend share, if the profile models one machine.
    pub(super) cores: Option<Arc<model::io::Cores>>,
}

pub(super) struct Shared {
    pub(super) trace: SharedTrace,
    pub(super) histograms: Arc<Mutex<Histograms>>,
    pub(super) records: Rc<RefCell<Vec<Option<BookingRecord>>>>,
    /// In-run invariant checks (clients and the driver feed it; all on this thread).
    pub(super) live: Rc<RefCell<LiveChecker>>,
    /// The backend listens (set by its host after binding; the clients wait for it).
    pub(super) backend_listening: Rc<Cell<bool>>,
    /// Sessions still inside a transaction once the run was quiet (see `driver::settle`).
    pub(super) open_at_end: RefCell<Vec<String>>,
    pub(super) client_faults: Rc<ClientFaults>,
    /// HTTP connections the clients opened (each booker adds its count when it ends).
    pub(super) connections_opened: Rc<Cell<u64>>,
    /// HTTP connections the backend accepted (every incarnation of the host).
    pub(super) connections_accepted: Arc<std::sync::atomic::AtomicU64>,
    /// The backend's own counters (`/metrics`), over every incarnation of the host.
    pub(super) backend_metrics: Arc<backend_core::metrics::Metrics>,
}
