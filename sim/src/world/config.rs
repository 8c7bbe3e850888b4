//! What to run: [`RunConfig`], the model database's latency profile (`--profile`), and the
//! strategy names the backend accepts.

use std::sync::{Arc, OnceLock};

use backend_core::booking::strategy::Strategy;
use backend_core::db::guard::GuardMode;
use scenarios::Scenario;

use crate::error::SimError;

use super::profile::Profile;
use crate::net::Connections;

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
    /// Service times of the model database and the backend's CPU costs (`--profile FILE`;
    /// default `model/profiles/default.toml`).
    pub profile: Arc<Profile>,
    /// How each booker reaches the backend: one keep-alive connection (default) or a fresh
    /// one per attempt (`--fresh-connections`). The one place the choice is made.
    pub connections: Connections,
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

/// The strategies the backend can run: (name, broken).
pub fn strategies() -> Vec<(&'static str, bool)> {
    Strategy::ALL.iter().map(|s| (s.name(), s.is_broken())).collect()
}

/// Checks a strategy name; the error lists the valid names.
pub fn check_strategy(name: &str) -> Result<(), SimError> {
    if strategies().iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    let known: Vec<_> = strategies().iter().map(|(n, _)| *n).collect();
    Err(SimError::BadInput(format!("unknown strategy `{name}` (known: {})", known.join(", "))))
}
