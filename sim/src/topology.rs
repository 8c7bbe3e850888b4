//! The shape of the turmoil world, shared by everything that builds, runs or reports it: the
//! port the backend listens on ([`BACKEND_PORT`]). A leaf: it imports nothing from the crate.

/// The backend's HTTP port.
pub const BACKEND_PORT: u16 = 8080;
