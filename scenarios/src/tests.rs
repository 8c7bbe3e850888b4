//! Loader tests: every built-in scenario loads, and each kind of bad input is rejected with an
//! error naming the file, the field and the problem.

use super::*;

fn storm_text() -> &'static str {
    BUILTIN.iter().find(|(n, _)| *n == "storm").unwrap().1
}

fn invalid(text: &str) -> (String, String) {
    match Scenario::parse(text, Path::new("test.toml")) {
        Err(ScenarioError::Invalid { file, field, problem }) => {
            assert_eq!(file, Path::new("test.toml"));
            (field, problem)
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn every_builtin_loads_and_is_named_after_itself() {
    for (name, _) in BUILTIN {
        let loaded = Scenario::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&loaded.scenario.name, name);
        assert!(!loaded.scenario.clinic.rooms.is_empty());
        assert!(loaded.scenario.clinic.generate.is_none(), "generator must be expanded");
    }
}

#[test]
fn builtin_files_open_with_goal_and_method_comments() {
    for (name, text) in BUILTIN {
        let head: String = text.lines().take_while(|l| l.starts_with('#')).collect();
        assert!(head.contains("Goal:"), "{name} lacks a Goal comment");
        assert!(head.contains("Method:"), "{name} lacks a Method comment");
    }
}

#[test]
fn storm_has_fifty_simultaneous_auto_assigned_bookings() {
    let s = Scenario::builtin("storm").unwrap().scenario;
    assert_eq!(s.bookings_total(), 50);
    assert_eq!(s.workload.arrival, Arrival::Simultaneous);
    assert_eq!(s.workload.room_choice, RoomChoice::Auto);
    assert_eq!(s.clinic.rooms.len(), 30);
    assert_eq!(s.clinic.rooms[0].name, "room-01");
    assert!(s.criteria.all_bookings_succeed);
}

#[test]
fn conflict_has_ten_rooms_and_fifty_attempts() {
    let s = Scenario::builtin("conflict").unwrap().scenario;
    assert_eq!(s.clinic.rooms.len(), 10);
    assert_eq!(s.bookings_total(), 50);
}

#[test]
fn generated_equipment_skips_empty_tags() {
    let s = Scenario::builtin("all").unwrap().scenario;
    let generated: Vec<_> = s.clinic.rooms.iter().filter(|r| r.name.starts_with("room-")).collect();
    assert_eq!(generated.len(), 20);
    assert!(generated[0].equipment.is_empty());
    assert_eq!(generated[1].equipment, vec!["ecg".to_string()]);
    assert!(generated[0].accessible && !generated[1].accessible);
}

#[test]
fn unknown_field_is_a_parse_error_naming_the_key() {
    let text = storm_text().replace("bookers = 50", "bookers = 50\nbookerz = 3");
    let err = Scenario::parse(&text, Path::new("x.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("x.toml: "), "{msg}");
    assert!(msg.contains("bookerz"), "{msg}");
}

#[test]
fn wrong_type_is_a_parse_error() {
    let text = storm_text().replace("bookers = 50", "bookers = \"many\"");
    let err = Scenario::parse(&text, Path::new("x.toml")).unwrap_err();
    assert!(matches!(err, ScenarioError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("bookers"), "{err}");
}

#[test]
fn out_of_range_bookers_names_the_field() {
    let (field, problem) = invalid(&storm_text().replace("bookers = 50", "bookers = 0"));
    assert_eq!(field, "workload.bookers");
    assert!(problem.contains("out of range"), "{problem}");
}

#[test]
fn bad_times_and_dates_name_the_field() {
    let (field, _) = invalid(&storm_text().replace("opens = \"08:00\"", "opens = \"8am\""));
    assert_eq!(field, "clinic.opens");
    let (field, _) = invalid(&storm_text().replace("2026-03-02", "2026-02-30"));
    assert_eq!(field, "clinic.day");
    let (field, problem) = invalid(&storm_text().replace("first = \"09:00\"", "first = \"17:50\""));
    assert_eq!(field, "workload.slots");
    assert!(problem.contains("open"), "{problem}");
}

#[test]
fn duplicate_and_dangling_names_are_rejected() {
    let dup = Scenario::builtin("rules").unwrap();
    let mut text = BUILTIN.iter().find(|(n, _)| *n == "rules").unwrap().1.to_string();
    text = text.replacen("name = \"exam-2\"", "name = \"exam-1\"", 1);
    let (field, problem) = invalid(&text);
    assert_eq!(field, "clinic.rooms[1].name");
    assert!(problem.contains("duplicate"), "{problem}");
    let text = BUILTIN.iter().find(|(n, _)| *n == "rules").unwrap().1;
    let text = text.replacen("preferred_rooms = [\"exam-4\"]", "preferred_rooms = [\"nope\"]", 1);
    let (field, problem) = invalid(&text);
    assert_eq!(field, "clinic.doctors[2].preferred_rooms[0]");
    assert!(problem.contains("nope"), "{problem}");
    assert_eq!(dup.scenario.clinic.doctors[2].name, "dr-gyn");
}

#[test]
fn faults_must_end_before_the_simulation_limit() {
    let text = format!(
        "{}\n[[faults]]\nkind = \"partition\"\nat_ms = 59990\nduration_ms = 100\n",
        storm_text()
    );
    let (field, problem) = invalid(&text);
    assert_eq!(field, "faults[0]");
    assert!(problem.contains("simulation_ms_max"), "{problem}");
    let text = format!(
        "{}\n[[faults]]\nkind = \"loss\"\nlink = \"backend_db\"\nat_ms = 1\nduration_ms = 5\nrate = 1.5\n",
        storm_text()
    );
    assert_eq!(invalid(&text).0, "faults[0].rate");
}

#[test]
fn disjoint_participants_need_a_patient_per_booking() {
    let text = storm_text().replace("patients = 50", "patients = 49");
    let (field, problem) = invalid(&text);
    assert_eq!(field, "workload.participants");
    assert!(problem.contains("50"), "{problem}");
}

#[test]
fn missing_file_and_unknown_builtin_are_named() {
    let err = Scenario::load(Path::new("/nonexistent/s.toml")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/s.toml"), "{err}");
    let err = Scenario::resolve("stormy").unwrap_err();
    assert!(err.to_string().contains("stormy"), "{err}");
    let err = Scenario::builtin("stormy").unwrap_err();
    assert!(err.to_string().contains("known: storm, conflict"), "{err}");
}

#[test]
fn rules_source_is_builtin_or_relative_path() {
    let loaded = Scenario::builtin("storm").unwrap();
    assert_eq!(loaded.rules_source(), RulesSource::Builtin("default".into()));
    let text = storm_text().replace("rules = \"default\"", "rules = \"sets/mine.toml\"");
    let loaded = Scenario::parse(&text, Path::new("/tmp/sc/my.toml")).unwrap();
    assert_eq!(loaded.rules_source(), RulesSource::File("/tmp/sc/sets/mine.toml".into()));
}

#[test]
fn a_user_file_loads_from_disk() {
    let dir = std::env::temp_dir().join(format!("scenarios-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mine.toml");
    std::fs::write(&path, storm_text().replace("name = \"storm\"", "name = \"mine\"")).unwrap();
    let loaded = Scenario::resolve(path.to_str().unwrap()).unwrap();
    assert_eq!(loaded.scenario.name, "mine");
    assert_eq!(loaded.origin, path);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_scenario_is_validated_again_and_names_its_origin() {
    let storm = Scenario::builtin("storm").unwrap();
    let ten = storm.changed(|s| s.workload.bookers = 10).unwrap();
    assert_eq!(ten.scenario.workload.bookers, 10);
    assert_eq!(ten.origin, storm.origin);
    // storm's participants are disjoint: 50 patients, so 51 bookers break that rule.
    match storm.changed(|s| s.workload.bookers = 51) {
        Err(ScenarioError::Invalid { file, field, problem }) => {
            assert_eq!(file, storm.origin);
            assert_eq!(field, "workload.participants", "{problem}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}
