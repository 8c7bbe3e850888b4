//! The simulation's one error type. Which exit code each variant gives is decided by the
//! `roomsim` binary (sim/roomsim/src/error.rs), in the one place it maps every command's.

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A scenario file failed to load.
    #[error(transparent)]
    Scenario(#[from] scenarios::ScenarioError),
    /// A flag, name or input file is wrong.
    #[error("{0}")]
    BadInput(String),
    /// A simulated host returned an error or panicked: a bug in the simulated software or
    /// in the harness, reported with the seed.
    #[error("a simulated host failed: {0}")]
    HostFailed(String),
}
