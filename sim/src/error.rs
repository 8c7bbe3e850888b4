//! The sim crate's one error type and its exit-code policy.

use crate::exit;

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

impl SimError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            // The user's scenario file.
            SimError::Scenario(_) => exit::BAD_INPUT,
            // The user's flags or files.
            SimError::BadInput(_) => exit::BAD_INPUT,
            // Something in the simulated world broke: a finding, like a violated invariant.
            SimError::HostFailed(_) => exit::INVARIANT_VIOLATED,
        }
    }
}
