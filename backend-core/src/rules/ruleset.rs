//! Rule sets as data: parsing TOML and JSON into a typed, validated [`RuleSet`].
//!
//! FORMAT
//!
//! ```toml
//! version = 7
//! clinic_id = "…"            # optional: absent means "any clinic" (a template)
//! [[rules]]
//! key = "required_equipment" # required; `id = "H06"` and `kind = "hard"` are optional checks
//! weight = 50                # integer ≥ 0; 0 disables the rule
//! enabled = true             # optional, default true
//! params = { match = "all_of" }
//! message = "…"              # optional human text shown when a hard rule rejects a room
//! ```
//!
//! VALIDATION
//!
//! The document is parsed to a generic value first (a syntax error names line and column),
//! then each rule record on its own, so every error names the rule (its key, or its position
//! when the key itself is bad) and the field: unknown rule key, id or kind that contradicts the
//! key, negative or oversized weight, duplicate rule, unknown or wrongly typed parameter.
//! A rule missing from the set is disabled.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::catalogue::{RuleId, RuleKind, RuleParams};

/// Largest accepted weight: keeps weight × magnitude sums far from i64 overflow.
pub const RULE_WEIGHT_MAX: i64 = 1_000_000;
/// Most rule records in one set.
pub const RULES_COUNT_MAX: usize = 128;
/// Longest accepted rule message (bytes).
pub const RULE_MESSAGE_BYTES_MAX: usize = 500;

/// One configured rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    pub enabled: bool,
    pub weight: i64,
    pub params: RuleParams,
    /// Overrides the engine's default rejection message (hard rules).
    pub message: Option<String>,
}

impl Rule {
    /// A rule with its catalogue weight and default parameters.
    pub fn default_for(id: RuleId) -> Rule {
        Rule {
            id,
            enabled: true,
            weight: id.default_weight(),
            params: RuleParams::default_for(id),
            message: None,
        }
    }

    /// Enabled with a positive weight: the rule filters (hard) or scores (soft).
    pub fn is_active(&self) -> bool {
        self.enabled && self.weight > 0
    }
}

/// A validated rule set: at most one record per rule, ordered by rule code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub version: u64,
    pub clinic_id: Option<Uuid>,
    rules: Vec<Rule>,
}

/// A malformed rule set. Every variant names the rule (and field) at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    #[error("rule set is not valid {format}: {message}")]
    Syntax { format: &'static str, message: String },
    #[error("rule set field `{field}`: {message}")]
    BadHeader { field: String, message: String },
    #[error("rule set has {count} rules, more than the {max} allowed")]
    TooManyRules { count: usize, max: usize },
    #[error("rules[{index}]: unknown rule key `{key}`")]
    UnknownRule { index: usize, key: String },
    #[error("rules[{index}] field `{field}`: {message}")]
    BadRecord { index: usize, field: String, message: String },
    #[error("rule `{key}`: id `{id}` does not match the key (expected `{expected}`)")]
    IdMismatch { key: String, id: String, expected: &'static str },
    #[error("rule `{key}`: kind `{kind}` does not match the key (expected `{expected}`)")]
    KindMismatch { key: String, kind: String, expected: &'static str },
    #[error("rule `{key}` appears twice (rules[{first_index}] and rules[{index}])")]
    DuplicateRule { key: String, first_index: usize, index: usize },
    #[error("rule `{key}` field `weight`: {weight} is negative")]
    NegativeWeight { key: String, weight: i64 },
    #[error("rule `{key}` field `weight`: {weight} is more than the {max} allowed")]
    WeightTooLarge { key: String, weight: i64, max: i64 },
    #[error("rule `{key}` field `params.{field}`: {message}")]
    BadParameter { key: String, field: String, message: String },
}

impl RuleSetError {
    /// Stable machine-readable code for problem+json bodies. Every rule-set error is the
    /// author's to fix (none is retryable), so the code is all a caller needs to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            // The document as a whole does not parse.
            Self::Syntax { .. } => "RULESET_SYNTAX",
            // The document parses but a record or header is malformed.
            Self::BadHeader { .. } | Self::BadRecord { .. } | Self::TooManyRules { .. } => {
                "RULESET_INVALID"
            }
            Self::UnknownRule { .. } => "RULESET_UNKNOWN_RULE",
            Self::IdMismatch { .. } | Self::KindMismatch { .. } => "RULESET_INVALID",
            Self::DuplicateRule { .. } => "RULESET_DUPLICATE_RULE",
            Self::NegativeWeight { .. } | Self::WeightTooLarge { .. } => "RULESET_BAD_WEIGHT",
            Self::BadParameter { .. } => "RULESET_BAD_PARAMETER",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    version: u64,
    #[serde(default)]
    clinic_id: Option<Uuid>,
    #[serde(default)]
    score_levels: Option<Vec<String>>,
    #[serde(default)]
    rules: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default = "enabled_default")]
    enabled: bool,
    weight: i64,
    #[serde(default = "params_default")]
    params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize)]
struct RawSet {
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    clinic_id: Option<Uuid>,
    rules: Vec<RawRule>,
}

fn enabled_default() -> bool {
    true
}

fn params_default() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl RuleSet {
    /// A set with every catalogue rule at its default weight and parameters.
    pub fn catalogue_defaults(version: u64) -> RuleSet {
        let rules = RuleId::ALL.iter().map(|&id| Rule::default_for(id)).collect();
        RuleSet { version, clinic_id: None, rules }
    }

    /// Builds a set from rules; duplicates are rejected and the rules ordered by code.
    pub fn new(
        version: u64,
        clinic_id: Option<Uuid>,
        rules: Vec<Rule>,
    ) -> Result<Self, RuleSetError> {
        let mut sorted: Vec<(usize, Rule)> = rules.into_iter().enumerate().collect();
        sorted.sort_by_key(|(index, rule)| (rule.id, *index));
        for pair in sorted.windows(2) {
            if pair[0].1.id == pair[1].1.id {
                return Err(RuleSetError::DuplicateRule {
                    key: pair[0].1.id.key().to_string(),
                    first_index: pair[0].0,
                    index: pair[1].0,
                });
            }
        }
        for (_, rule) in &sorted {
            check_weight(rule.id, rule.weight)?;
            assert_eq!(rule.params.id(), rule.id, "rule parameters belong to another rule");
        }
        let rules = sorted.into_iter().map(|(_, rule)| rule).collect();
        Ok(RuleSet { version, clinic_id, rules })
    }

    pub fn from_toml(text: &str) -> Result<RuleSet, RuleSetError> {
        let value: serde_json::Value = toml::from_str(text)
            .map_err(|e| RuleSetError::Syntax { format: "TOML", message: e.to_string() })?;
        Self::from_value(value)
    }

    pub fn from_json(text: &str) -> Result<RuleSet, RuleSetError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| RuleSetError::Syntax { format: "JSON", message: e.to_string() })?;
        Self::from_value(value)
    }

    /// Parses an already-decoded document (e.g. a `jsonb` column).
    pub fn from_value(value: serde_json::Value) -> Result<RuleSet, RuleSetError> {
        let header: RawHeader = serde_path_to_error::deserialize(value).map_err(|e| {
            RuleSetError::BadHeader { field: e.path().to_string(), message: e.inner().to_string() }
        })?;
        if let Some(levels) = &header.score_levels
            && levels != &["hard", "medium", "soft"]
        {
            return Err(RuleSetError::BadHeader {
                field: "score_levels".into(),
                message: format!("must be [\"hard\", \"medium\", \"soft\"], got {levels:?}"),
            });
        }
        if header.rules.len() > RULES_COUNT_MAX {
            let count = header.rules.len();
            return Err(RuleSetError::TooManyRules { count, max: RULES_COUNT_MAX });
        }
        let mut rules = Vec::with_capacity(header.rules.len());
        for (index, record) in header.rules.into_iter().enumerate() {
            rules.push(parse_rule(index, record)?);
        }
        RuleSet::new(header.version, header.clinic_id, rules)
    }

    /// The set as JSON (the `rule_policies.body` representation).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.to_raw()).expect("rule set serializes to JSON")
    }

    /// The set as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.to_raw()).expect("rule set serializes to TOML")
    }

    fn to_raw(&self) -> RawSet {
        let rules = self.rules.iter().map(|rule| RawRule {
            id: Some(rule.id.code().to_string()),
            key: rule.id.key().to_string(),
            kind: Some(rule.id.kind().as_str().to_string()),
            enabled: rule.enabled,
            weight: rule.weight,
            params: rule.params.to_value(),
            message: rule.message.clone(),
        });
        RawSet { version: self.version, clinic_id: self.clinic_id, rules: rules.collect() }
    }

    /// All configured rules, ordered by code.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The configured record for `id`, active or not.
    pub fn get(&self, id: RuleId) -> Option<&Rule> {
        self.rules.binary_search_by_key(&id, |rule| rule.id).ok().map(|index| &self.rules[index])
    }

    /// The record for `id` if it is active (enabled, weight > 0).
    pub fn active(&self, id: RuleId) -> Option<&Rule> {
        self.get(id).filter(|rule| rule.is_active())
    }

    /// Active rules of one kind, in code order.
    pub fn active_of(&self, kind: RuleKind) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |rule| rule.id.kind() == kind && rule.is_active())
    }
}

fn check_weight(id: RuleId, weight: i64) -> Result<(), RuleSetError> {
    if weight < 0 {
        return Err(RuleSetError::NegativeWeight { key: id.key().into(), weight });
    }
    if weight > RULE_WEIGHT_MAX {
        let key = id.key().into();
        return Err(RuleSetError::WeightTooLarge { key, weight, max: RULE_WEIGHT_MAX });
    }
    Ok(())
}

fn parse_rule(index: usize, record: serde_json::Value) -> Result<Rule, RuleSetError> {
    let raw: RawRule =
        serde_path_to_error::deserialize(record).map_err(|e| RuleSetError::BadRecord {
            index,
            field: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    let Some(id) = RuleId::from_key(&raw.key) else {
        return Err(RuleSetError::UnknownRule { index, key: raw.key });
    };
    if let Some(code) = raw.id.filter(|code| code != id.code()) {
        return Err(RuleSetError::IdMismatch { key: raw.key, id: code, expected: id.code() });
    }
    let expected = id.kind().as_str();
    if let Some(kind) = raw.kind.filter(|kind| kind != expected) {
        return Err(RuleSetError::KindMismatch { key: raw.key, kind, expected });
    }
    check_weight(id, raw.weight)?;
    if let Some(message) = &raw.message
        && message.len() > RULE_MESSAGE_BYTES_MAX
    {
        return Err(RuleSetError::BadRecord {
            index,
            field: "message".into(),
            message: format!("{} bytes, more than {}", message.len(), RULE_MESSAGE_BYTES_MAX),
        });
    }
    let params = RuleParams::parse(id, raw.params).map_err(|e| RuleSetError::BadParameter {
        key: raw.key.clone(),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    params.check().map_err(|field| RuleSetError::BadParameter {
        key: raw.key.clone(),
        field: field.to_string(),
        message: "must be at least 1".to_string(),
    })?;
    Ok(Rule { id, enabled: raw.enabled, weight: raw.weight, params, message: raw.message })
}
