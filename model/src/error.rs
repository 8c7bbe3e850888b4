//! The engine's one error enum.
//!
//! WHAT THIS DOES
//! Every failure a statement can produce is an [`Error`]. Each variant maps to exactly one
//! SQLSTATE ([`Error::sqlstate`]) and says whether a client should retry the whole
//! transaction ([`Error::is_retryable`]). [`Error::into_sql_error`] produces the public
//! [`crate::SqlError`] with PostgreSQL's primary message, DETAIL and constraint name.
//!
//! NOT MODELLED
//! HINT and CONTEXT lines are not carried (the public type has no field for them).

use crate::SqlError;

/// An engine error. Messages are PostgreSQL's primary messages, word for word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// 40001, with the primary message (concurrent update / delete / read-write dependencies)
    /// and an optional DETAIL (the SSI reason code).
    Serialization {
        message: String,
        detail: Option<String>,
    },
    /// 40P01 deadlock detected.
    Deadlock {
        detail: String,
    },
    /// 55P03: NOWAIT, lock_timeout.
    LockNotAvailable(String),
    /// 57014 statement_timeout.
    QueryCanceled(String),
    /// A constraint violation: 23505, 23P01, 23503, 23514, 23502.
    Constraint {
        code: &'static str,
        message: String,
        detail: Option<String>,
        constraint: Option<String>,
    },
    /// 25P02 current transaction is aborted.
    InFailedTransaction,
    /// 0A000 feature not supported: names the construct.
    FeatureNotSupported(String),
    /// 42601 syntax error; the position (sqlparser's line and column) goes to DETAIL.
    Syntax(String),
    SyntaxAt {
        message: String,
        position: String,
    },
    /// Any other error with its SQLSTATE: undefined table/column, bad input, division by zero.
    Other {
        code: &'static str,
        message: String,
    },
}

impl Error {
    /// The five-character SQLSTATE.
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::Serialization { .. } => "40001",
            Error::Deadlock { .. } => "40P01",
            Error::LockNotAvailable(_) => "55P03",
            Error::QueryCanceled(_) => "57014",
            Error::Constraint { code, .. } => code,
            Error::InFailedTransaction => "25P02",
            Error::FeatureNotSupported(_) => "0A000",
            Error::Syntax(_) | Error::SyntaxAt { .. } => "42601",
            Error::Other { code, .. } => code,
        }
    }

    /// Whether retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            // Serialization failures are transient by definition (PostgreSQL's HINT says so).
            Error::Serialization { .. } => true,
            // A deadlock victim's retry usually finds the other transaction gone.
            Error::Deadlock { .. } => true,
            // Lock waits that timed out may succeed once the holder ends.
            Error::LockNotAvailable(_) => true,
            // A statement timeout may succeed under less load, but is not a conflict: no.
            Error::QueryCanceled(_) => false,
            // Constraint violations repeat on retry: the conflicting data is committed.
            Error::Constraint { .. } => false,
            // The transaction must be rolled back first; retrying the statement alone fails.
            Error::InFailedTransaction => false,
            // Bad SQL stays bad.
            Error::FeatureNotSupported(_) | Error::Syntax(_) | Error::SyntaxAt { .. } => false,
            Error::Other { .. } => false,
        }
    }

    /// 40001 "could not serialize access due to concurrent update".
    pub fn concurrent_update() -> Error {
        Error::Serialization {
            message: "could not serialize access due to concurrent update".into(),
            detail: None,
        }
    }

    /// 40001 "could not serialize access due to concurrent delete".
    pub fn concurrent_delete() -> Error {
        Error::Serialization {
            message: "could not serialize access due to concurrent delete".into(),
            detail: None,
        }
    }

    /// 40001 from SSI with its reason code.
    pub fn rw_dependency(reason: impl Into<String>) -> Error {
        Error::Serialization {
            message: "could not serialize access due to read/write dependencies among \
                      transactions"
                .into(),
            detail: Some(format!("Reason code: {}.", reason.into())),
        }
    }

    /// An error with a SQLSTATE and message.
    pub fn other(code: &'static str, message: impl Into<String>) -> Error {
        Error::Other { code, message: message.into() }
    }

    /// The public form of the error.
    pub fn into_sql_error(self) -> SqlError {
        let code = self.sqlstate().to_string();
        let (message, detail, constraint) = match self {
            Error::Serialization { message, detail } => (message, detail, None),
            Error::Deadlock { detail } => ("deadlock detected".to_string(), Some(detail), None),
            Error::LockNotAvailable(m) | Error::QueryCanceled(m) => (m, None, None),
            Error::Constraint { message, detail, constraint, .. } => (message, detail, constraint),
            Error::InFailedTransaction => (
                "current transaction is aborted, commands ignored until end of transaction block"
                    .to_string(),
                None,
                None,
            ),
            Error::FeatureNotSupported(m) => (m, None, None),
            Error::Syntax(m) => (m, None, None),
            Error::SyntaxAt { message, position } => (message, Some(position), None),
            Error::Other { message, .. } => (message, None, None),
        };
        SqlError { code, message, detail, constraint }
    }
}

/// Builds an [`Error::Other`] with a formatted message: `errinput!("42P01", "relation ...")`.
#[macro_export]
macro_rules! errinput {
    ($code:expr, $($arg:tt)*) => {
        $crate::error::Error::Other { code: $code, message: format!($($arg)*) }
    };
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLSTATEs and the retry policy follow PostgreSQL's classes.
    #[test]
    fn sqlstate_and_policy() {
        assert_eq!(Error::concurrent_update().sqlstate(), "40001");
        assert!(Error::concurrent_update().is_retryable());
        assert!(!Error::InFailedTransaction.is_retryable());
        let e = Error::rw_dependency("Canceled on identification as a pivot, during write");
        let s = e.into_sql_error();
        assert_eq!(
            s.detail.as_deref(),
            Some("Reason code: Canceled on identification as a pivot, during write.")
        );
    }
}
