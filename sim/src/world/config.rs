//! What to run: [`RunConfig`], the model database's latency profile (`--profile`), and the
//! strategy names each backend accepts.

use std::sync::{Arc, OnceLock};

use backend_core::booking::strategy::Strategy;
use backend_core::db::guard::GuardMode;
use scenarios::Scenario;

use crate::error::SimError;
use crate::stand_in;
use crate::topology::BackendKind;

use super::profile::Profile;

/// What to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub scenario: Arc<Scenario>,
    pub seed: u64,
    pub strategy: String,
    /// The backend's transaction guard: the production one, or a planted broken variant.
    pub guard: GuardMode,
    /// Keep every trace event (for `--trace`); the hash is computed either way.
    pub keep_trace: bool,
    pub backend: BackendKind,
    /// Service times of the model database and the backend's CPU costs (`--profile FILE`;
    /// default `model/profiles/default.toml`). Ignored by the stand-in backend.
    pub profile: Arc<Profile>,
}

/// The committed default profile, parsed once per process.
pub fn default_profile() -> Arc<Profile> {
    static DEFAULT: OnceLock<Arc<Profile>> = OnceLock::new();
    DEFAULT.get_or_init(|| Arc::new(Profile::default_profile())).clone()
}

/// `--profile FILE`, or the committed default; the error names the file and the field.
pub fn load_profile(path: Option<&std::path::Path>) -> Result<Arc<Profile>, SimError> {
    match path {
        None => Ok(default_profile()),
        Some(path) => Profile::load(path)
            .map(Arc::new)
            .map_err(|e| SimError::BadInput(format!("--profile: {e}"))),
    }
}

/// The strategies a backend can run: (name, broken).
pub fn strategies(backend: BackendKind) -> Vec<(&'static str, bool)> {
    match backend {
        BackendKind::Model => Strategy::ALL.iter().map(|s| (s.name(), s.is_broken())).collect(),
        BackendKind::StandIn => stand_in::STRATEGIES.to_vec(),
    }
}

/// Checks a strategy name; the error lists the valid names.
pub fn check_strategy(name: &str, backend: BackendKind) -> Result<(), SimError> {
    if strategies(backend).iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    let known: Vec<_> = strategies(backend).iter().map(|(n, _)| *n).collect();
    Err(SimError::BadInput(format!("unknown strategy `{name}` (known: {})", known.join(", "))))
}
