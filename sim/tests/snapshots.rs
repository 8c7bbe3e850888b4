//! insta snapshots of the text and JSON reports of every built-in scenario at fixed seeds,
//! backend-core on the model engine, default strategy.
//!
//! Snapshots live in the top-level `snapshots/` folder. After an intended change, review with
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test -p sim --test sim_tests snapshots::`
//! and read the diff). A change here means a report or a simulated behaviour changed. These
//! run in the same process as the other sim tests, after and beside them: a run's report
//! must not depend on what else the process ran (see `determinism.rs`'s crash test).

use std::sync::Arc;

use scenarios::Scenario;
use sim::report;
use sim::world::{self, RunConfig};

const SEED: u64 = 1;

#[test]
fn reports_of_every_scenario() {
    for (name, _) in scenarios::BUILTIN {
        let scenario = Arc::new(Scenario::builtin(name).unwrap().scenario);
        let config = RunConfig {
            guard: Default::default(),
            scenario: scenario.clone(),
            seed: SEED,
            strategy: "exclusion".into(),
            keep_trace: false,
            profile: world::default_profile(),
            connections: Default::default(),
        };
        let o = world::run(&config).unwrap().outcome;
        let text = report::run_text(&o, &scenario, name);
        let json = report::run_json(&o, &scenario, name);
        insta::with_settings!({snapshot_path => "../../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(format!("{name}-seed{SEED}-text"), text);
            insta::assert_json_snapshot!(format!("{name}-seed{SEED}-json"), json);
        });
    }
}
