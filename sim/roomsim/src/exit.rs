//! The documented process exit codes of `roomsim`, the same for every command (`run`,
//! `explore`, `check`, `compare`, `serve`, `load`, `validate`, …). The mapping from errors to
//! these codes is in one place: `crate::error` (`Error::exit_code`).
//!
//! Scripts and CI can tell "found a problem" from "could not run". Unmet latency or throughput
//! targets are shown ✗ in reports but do not change the exit code.

/// Success: every invariant held on every seed, the judgement passed, the command did its work.
pub const OK: u8 = 0;
/// A finding or a failed run: an invariant violated on some seed (each failing seed is printed
/// with its exact replay command), a counterexample, a regression, a comparison with real
/// PostgreSQL out of band, a real run that could not complete or write its reports.
pub const FAILED: u8 = 1;
/// Bad input: flags, scenario or profile files, rule sets, JSON to merge, an unreachable
/// database or target, missing migrations.
pub const BAD_INPUT: u8 = 2;
