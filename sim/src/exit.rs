//! Documented process exit codes of `roomsim` (same for `run`, `explore`, `merge`).
//!
//! Scripts and CI can tell "found a bug" from "could not run". Unmet latency or throughput
//! targets are shown ✗ in reports but do not change the exit code.

/// Every invariant held on every seed.
pub const OK: u8 = 0;
/// An invariant was violated on at least one seed (each failing seed is printed with its exact
/// replay command).
pub const INVARIANT_VIOLATED: u8 = 1;
/// Bad input: flags, scenario file, rule set, JSON to merge.
pub const BAD_INPUT: u8 = 2;
