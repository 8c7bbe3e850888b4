//! Rule-set parsing: the shipped default sets, round trips, and every class of malformed
//! input, each checked for the rule and field its error names.

use backend_core::rules::{
    DEFAULT_RULESET_JSON, DEFAULT_RULESET_TOML, RuleId, RuleKind, RuleSet, RuleSetError,
    default_rule_set,
};

/// The JSON default must be the TOML default converted. `REGENERATE_RULESETS=1` rewrites it.
#[test]
fn default_json_equals_default_toml() {
    let from_toml = RuleSet::from_toml(DEFAULT_RULESET_TOML).expect("default.toml parses");
    if std::env::var_os("REGENERATE_RULESETS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rulesets/default.json");
        std::fs::write(path, from_toml.to_json() + "\n").expect("write default.json");
        return;
    }
    let from_json = RuleSet::from_json(DEFAULT_RULESET_JSON).expect("default.json parses");
    assert_eq!(from_toml, from_json);
}

#[test]
fn default_set_is_full_and_disables_only_s12() {
    let set = default_rule_set();
    assert_eq!(set.rules().len(), RuleId::ALL.len());
    assert_eq!(set.active_of(RuleKind::Hard).count(), 16);
    assert_eq!(set.active_of(RuleKind::Soft).count(), 23);
    assert!(set.get(RuleId::ConsolidateRooms).is_some());
    assert!(set.active(RuleId::ConsolidateRooms).is_none());
}

#[test]
fn toml_and_json_round_trip() {
    let set = default_rule_set();
    assert_eq!(RuleSet::from_toml(&set.to_toml()).unwrap(), set);
    assert_eq!(RuleSet::from_json(&set.to_json()).unwrap(), set);
}

fn toml_with(rules: &str) -> Result<RuleSet, RuleSetError> {
    RuleSet::from_toml(&format!("version = 2\n{rules}"))
}

#[test]
fn minimal_set_parses_with_defaults_and_missing_rules_are_absent() {
    let set = toml_with("[[rules]]\nkey = \"capacity\"\nweight = 7\n").unwrap();
    assert_eq!(set.version, 2);
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.active(RuleId::Capacity).unwrap().weight, 7);
    assert!(set.get(RuleId::RoomActive).is_none());
}

#[test]
fn unknown_rule_key_is_named() {
    let err = toml_with("[[rules]]\nkey = \"room_colour\"\nweight = 1\n").unwrap_err();
    assert_eq!(err, RuleSetError::UnknownRule { index: 0, key: "room_colour".into() });
    assert!(err.to_string().contains("room_colour"), "{err}");
    assert_eq!(err.code(), "RULESET_UNKNOWN_RULE");
}

#[test]
fn wrong_parameter_type_names_rule_and_field() {
    let text = "[[rules]]\nkey = \"doctor_room_stability\"\nweight = 20\n\
                [rules.params]\ngap_minutes = \"thirty\"\n";
    let err = toml_with(text).unwrap_err();
    let RuleSetError::BadParameter { key, field, .. } = &err else { panic!("{err:?}") };
    assert_eq!((key.as_str(), field.as_str()), ("doctor_room_stability", "gap_minutes"));
    assert!(err.to_string().contains("params.gap_minutes"), "{err}");
}

#[test]
fn nested_parameter_errors_carry_the_path() {
    let json = r#"{"version":1,"rules":[{"key":"prohibited_tags","weight":100,
        "params":{"pairs":[{"room_tag":"mri_zone","prohibits":5}]}}]}"#;
    let err = RuleSet::from_json(json).unwrap_err();
    let RuleSetError::BadParameter { field, .. } = &err else { panic!("{err:?}") };
    assert_eq!(field, "pairs[0].prohibits");
}

#[test]
fn unknown_parameter_is_rejected() {
    let text = "[[rules]]\nkey = \"capacity\"\nweight = 1\nparams = { staf_count = 2 }\n";
    let err = toml_with(text).unwrap_err();
    assert!(matches!(&err, RuleSetError::BadParameter { key, .. } if key == "capacity"), "{err:?}");
    assert!(err.to_string().contains("staf_count"), "{err}");
}

#[test]
fn negative_and_oversized_weights_are_rejected() {
    let err = toml_with("[[rules]]\nkey = \"capacity\"\nweight = -5\n").unwrap_err();
    assert_eq!(err, RuleSetError::NegativeWeight { key: "capacity".into(), weight: -5 });
    let err = toml_with("[[rules]]\nkey = \"capacity\"\nweight = 10000000000\n").unwrap_err();
    assert!(matches!(err, RuleSetError::WeightTooLarge { .. }), "{err:?}");
    let err = toml_with("[[rules]]\nkey = \"capacity\"\nweight = \"heavy\"\n").unwrap_err();
    assert!(
        matches!(&err, RuleSetError::BadRecord { index: 0, field, .. } if field == "weight"),
        "{err:?}"
    );
}

#[test]
fn duplicate_rule_names_both_positions() {
    let text = "[[rules]]\nkey = \"capacity\"\nweight = 1\n\
                [[rules]]\nkey = \"accessibility\"\nweight = 1\n\
                [[rules]]\nkey = \"capacity\"\nweight = 2\n";
    let err = toml_with(text).unwrap_err();
    let expected = RuleSetError::DuplicateRule { key: "capacity".into(), first_index: 0, index: 2 };
    assert_eq!(err, expected);
}

#[test]
fn id_and_kind_must_match_the_key() {
    let err = toml_with("[[rules]]\nid = \"H01\"\nkey = \"capacity\"\nweight = 1\n").unwrap_err();
    assert!(matches!(err, RuleSetError::IdMismatch { expected: "H07", .. }), "{err:?}");
    let err =
        toml_with("[[rules]]\nkind = \"soft\"\nkey = \"capacity\"\nweight = 1\n").unwrap_err();
    assert!(matches!(err, RuleSetError::KindMismatch { expected: "hard", .. }), "{err:?}");
}

#[test]
fn syntax_and_header_errors_are_reported() {
    let err = RuleSet::from_toml("version = ").unwrap_err();
    assert!(matches!(err, RuleSetError::Syntax { format: "TOML", .. }), "{err:?}");
    let err = RuleSet::from_json("{\"version\": 1,").unwrap_err();
    assert!(matches!(err, RuleSetError::Syntax { format: "JSON", .. }), "{err:?}");
    let err = RuleSet::from_json("{\"version\": -1}").unwrap_err();
    assert!(matches!(&err, RuleSetError::BadHeader { field, .. } if field == "version"), "{err:?}");
    let err = RuleSet::from_json("{\"version\": 1, \"colour\": 2}").unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    let err = RuleSet::from_json(r#"{"version":1,"score_levels":["soft","hard"]}"#).unwrap_err();
    assert!(matches!(&err, RuleSetError::BadHeader { field, .. } if field == "score_levels"));
    let err = RuleSet::from_json(r#"{"version":1,"rules":[{"weight":1}]}"#).unwrap_err();
    assert!(matches!(&err, RuleSetError::BadRecord { index: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("key"), "{err}");
}

#[test]
fn weight_zero_or_disabled_rules_are_inactive() {
    let text = "[[rules]]\nkey = \"capacity\"\nweight = 0\n\
                [[rules]]\nkey = \"accessibility\"\nweight = 5\nenabled = false\n";
    let set = toml_with(text).unwrap();
    assert!(set.active(RuleId::Capacity).is_none());
    assert!(set.active(RuleId::Accessibility).is_none());
    assert_eq!(set.get(RuleId::Capacity).unwrap().weight, 0);
}

#[test]
fn zero_divisors_are_rejected() {
    let text = "[[rules]]\nkey = \"walking_distance\"\nweight = 1\nparams = { per_m = 0 }\n";
    let err = toml_with(text).unwrap_err();
    let expected = RuleSetError::BadParameter {
        key: "walking_distance".into(),
        field: "per_m".into(),
        message: "must be at least 1".into(),
    };
    assert_eq!(err, expected);
}

/// Every shipped example rule set parses (TOML or JSON by extension) and round-trips.
#[test]
fn example_rule_sets_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rulesets/examples");
    let mut paths: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    paths.sort();
    assert!(paths.len() >= 2, "examples missing in {dir}");
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => RuleSet::from_toml(&text),
            Some("json") => RuleSet::from_json(&text),
            _ => continue,
        };
        let set = parsed.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(set.active_of(RuleKind::Hard).count() >= 10, "{}", path.display());
        assert_eq!(RuleSet::from_json(&set.to_json()).unwrap(), set);
    }
}

/// The rule-set README documents every rule of the catalogue.
#[test]
fn readme_lists_every_rule() {
    let readme = include_str!("../rulesets/README.md");
    for rule in RuleId::ALL {
        let row = format!("| {} | `{}` | {} |", rule.code(), rule.key(), rule.kind().as_str());
        assert!(readme.contains(&row), "rulesets/README.md lacks {row}");
    }
}
