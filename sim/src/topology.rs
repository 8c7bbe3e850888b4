//! The shape of the turmoil world, shared by everything that builds, runs or reports it:
//! which backend serves the bookings ([`BackendKind`]) and the port it listens on
//! ([`BACKEND_PORT`]). A leaf: it imports nothing from the crate.

/// The backend's HTTP port.
pub const BACKEND_PORT: u16 = 8080;

/// Which backend serves the bookings.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// backend-core's api_router over the model engine (the system under test).
    #[default]
    Model,
    /// The small stand-in of `stand_in.rs` (harness self-test; no SQL).
    StandIn,
}
