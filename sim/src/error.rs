//! The sim crate's error types and the one mapping from errors to exit codes
//! ([`crate::exit`]): the simulation's [`SimError`] and the real-PostgreSQL side's
//! [`RealError`], which a `SimError` carries when a real command fails.

use crate::exit;
use crate::real::RealError;

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
    /// A real-PostgreSQL command failed (`serve`, `load`, `validate`, …).
    #[error(transparent)]
    Real(#[from] RealError),
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
            SimError::HostFailed(_) => exit::FAILED,
            SimError::Real(error) => error.exit_code(),
        }
    }
}

impl RealError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            // Nothing ran: the user must fix a flag, a file or the environment.
            RealError::BadInput(_) => exit::BAD_INPUT,
            // Unreachable database, wrong URL, missing migrations: also fixed by the user.
            RealError::Database(_) => exit::BAD_INPUT,
            // The run itself failed; partial results were written.
            RealError::RunFailed(_) => exit::FAILED,
            // The judgement failed: this is the "found a problem" code.
            RealError::OutOfBand(_) => exit::FAILED,
            // A report could not be written: the run's results are incomplete.
            RealError::Io { .. } => exit::FAILED,
        }
    }
}
