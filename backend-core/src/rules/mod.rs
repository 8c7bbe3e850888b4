//! The rules engine: rule sets as data, the catalogue, scoring and explanations.
//!
//! A [`RuleSet`] (parsed from TOML or JSON, versioned per clinic) configures up to 16 hard and
//! 24 soft rules of the [`catalogue`], each with typed parameters and an integer
//! weight. [`EvalContext::evaluate_room`] scores one room for one slot:
//!
//! 1. every active hard rule is checked; a failure adds `weight × magnitude` to the hard
//!    penalty and is recorded as a [`Violation`] with a human-readable message (hard rules
//!    filter rooms but are still counted, so the least-infeasible room can be named);
//! 2. every active soft rule adds `weight × magnitude` to the soft penalty and is recorded as a
//!    [`Contribution`] (the explanation of the chosen room);
//! 3. the result is a [`RoomEvaluation`] with a lexicographic [`Score`].
//!
//! Evaluation is a pure function of (rule set, snapshot, request, slot): same input, same
//! score and same explanation, in rule-code order. The [`PolicyCache`] keeps parsed rule sets
//! per (clinic, version).

pub mod cache;
pub mod catalogue;
mod evaluation;
pub mod ruleset;
pub mod score;

pub use cache::{CacheStats, POLICY_CACHE_CLINICS_MAX, PolicyCache};
pub use catalogue::*;
pub use evaluation::{Contribution, EvalContext, Rejection, RoomEvaluation, Slot, Violation};
pub use ruleset::{
    RULE_MESSAGE_BYTES_MAX, RULE_WEIGHT_MAX, RULES_COUNT_MAX, Rule, RuleSet, RuleSetError,
};
pub use score::Score;

/// The default full rule set, as shipped in `backend-core/rulesets/default.toml`.
pub const DEFAULT_RULESET_TOML: &str = include_str!("../../rulesets/default.toml");
/// The same rule set as JSON (`backend-core/rulesets/default.json`).
pub const DEFAULT_RULESET_JSON: &str = include_str!("../../rulesets/default.json");

/// The default full rule set, parsed.
pub fn default_rule_set() -> RuleSet {
    RuleSet::from_toml(DEFAULT_RULESET_TOML).expect("rulesets/default.toml is valid")
}
