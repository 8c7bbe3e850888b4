//! The seed `roomsim db setup` writes: the simulation's own clinic mapping
//! (`sim::clinic::clinic_data` with the ids of `sim::ids`), so PostgreSQL holds exactly the
//! rows the model holds in a simulated run, plus the scenario's rule policy.
//!
//! RULES: a built-in rule-set name (`default`) is stored as backend-core's default TOML policy;
//! a rule-set file is read and stored as-is (TOML or JSON by extension).

use backend_core::rules::DEFAULT_RULESET_TOML;
use backend_core::seed::{ClinicSeed, PolicySeed};
use scenarios::{Loaded, RulesSource};

use super::RealError;
use sim::clinic::clinic_data;
use sim::ids::ClinicIds;

/// The seed of a loaded scenario's clinic.
pub fn clinic_seed(loaded: &Loaded) -> Result<ClinicSeed, RealError> {
    let ids = ClinicIds::new(&loaded.scenario);
    let data = clinic_data(&loaded.scenario, &ids);
    Ok(ClinicSeed {
        clinic: data.clinic,
        rooms: data.rooms,
        doctors: data.doctors,
        patients: data.patients,
        appointment_types: data.appointment_types,
        policy: Some(policy_seed(loaded)?),
    })
}

fn policy_seed(loaded: &Loaded) -> Result<PolicySeed, RealError> {
    match loaded.rules_source() {
        RulesSource::Builtin(builtin) if builtin == "default" => Ok(PolicySeed {
            version: 1,
            format: "toml".to_string(),
            body: DEFAULT_RULESET_TOML.to_string(),
        }),
        RulesSource::Builtin(other) => Err(RealError::BadInput(format!(
            "scenario {}: rules `{other}`: the only built-in rule set is `default`",
            loaded.scenario.name
        ))),
        RulesSource::File(path) => {
            let body = std::fs::read_to_string(&path).map_err(|e| RealError::io(&path, e))?;
            let is_json = path.extension().is_some_and(|e| e == "json");
            let format = if is_json { "json" } else { "toml" };
            Ok(PolicySeed { version: 1, format: format.to_string(), body })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenarios::Scenario;

    #[test]
    fn storm_seed_has_the_scenario_clinic_with_simulation_ids() {
        let loaded = Scenario::builtin("storm").unwrap();
        let seed = clinic_seed(&loaded).unwrap();
        let c = &loaded.scenario.clinic;
        assert_eq!(seed.rooms.len(), c.rooms.len());
        assert_eq!(seed.doctors.len(), c.doctors.len());
        assert_eq!(seed.patients.len(), c.patients.len());
        let ids = ClinicIds::new(&loaded.scenario);
        assert_eq!(seed.clinic.id, ids.clinic);
        assert_eq!(seed.doctors[0].id, ids.doctor(&c.doctors[0].name));
        assert_eq!(seed, clinic_seed(&loaded).unwrap(), "a pure function of the scenario");
        assert!(seed.policy.as_ref().unwrap().body.contains('['), "a TOML policy");
    }
}
