//! The binary's error type and the one mapping from errors (of every crate a command runs in)
//! to the exit codes of [`crate::exit`].

use model::spec::SpecError;
use real::RealError;
use sim::SimError;

use crate::exit;

/// Why a `roomsim` command failed: the simulation's error, the real side's, or the spec
/// runner's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Real(#[from] RealError),
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Sim(error) => match error {
                // The user's scenario file.
                SimError::Scenario(_) => exit::BAD_INPUT,
                // The user's flags or files.
                SimError::BadInput(_) => exit::BAD_INPUT,
                // Something in the simulated world broke: a finding, like a violated invariant.
                SimError::HostFailed(_) => exit::FAILED,
            },
            Error::Real(error) => match error {
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
            },
            Error::Spec(error) => match error {
                // An unparsable spec (file:line) or a wrong flag.
                SpecError::BadInput(_) => exit::BAD_INPUT,
                // No database to talk to: fixed by the user, like RealError::Database.
                SpecError::Backend(_) => exit::BAD_INPUT,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_policy() {
        let code = |error: Error| error.exit_code();
        assert_eq!(code(SimError::BadInput("x".into()).into()), exit::BAD_INPUT);
        assert_eq!(code(SimError::HostFailed("x".into()).into()), exit::FAILED);
        assert_eq!(code(RealError::BadInput("x".into()).into()), exit::BAD_INPUT);
        assert_eq!(code(RealError::Database("x".into()).into()), exit::BAD_INPUT);
        assert_eq!(code(RealError::RunFailed("x".into()).into()), exit::FAILED);
        assert_eq!(code(RealError::OutOfBand("x".into()).into()), exit::FAILED);
        assert_eq!(code(SpecError::BadInput("x".into()).into()), exit::BAD_INPUT);
        assert_ne!(exit::OK, exit::FAILED);
        assert_ne!(exit::FAILED, exit::BAD_INPUT);
    }
}
