//! The scenarios crate's one error type.
//!
//! Every error names the file it came from; validation errors also name the field (a dotted
//! path such as `workload.bookers` or `clinic.rooms[3].capacity`) and the problem in words.

use std::path::PathBuf;

/// What went wrong while loading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read scenario file: {source}")]
    Io { file: PathBuf, source: std::io::Error },
    /// The file is not valid TOML or does not match the schema (unknown field, wrong type).
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    /// A value is out of range or inconsistent with another value.
    #[error("{file}: field `{field}`: {problem}")]
    Invalid { file: PathBuf, field: String, problem: String },
    /// `Scenario::builtin` was given a name that is not built in.
    #[error("unknown built-in scenario `{name}` (known: {known})")]
    UnknownBuiltin { name: String, known: String },
}

impl ScenarioError {
    /// The field a validation error is about, if the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            // Only validation errors are about one field; TOML errors carry their own position.
            ScenarioError::Invalid { field, .. } => Some(field),
            ScenarioError::Io { .. } => None,
            ScenarioError::Parse { .. } => None,
            ScenarioError::UnknownBuiltin { .. } => None,
        }
    }

    /// Whether the user can fix this by editing input (every case today: the scenarios crate
    /// has no internal failure modes; a programmer error panics instead).
    pub fn is_input_error(&self) -> bool {
        match self {
            // A missing or unreadable file is the user's path.
            ScenarioError::Io { .. } => true,
            // Bad TOML or schema mismatch is the user's file.
            ScenarioError::Parse { .. } => true,
            // Out-of-range values are the user's file.
            ScenarioError::Invalid { .. } => true,
            // A mistyped `--scenario` name.
            ScenarioError::UnknownBuiltin { .. } => true,
        }
    }
}
