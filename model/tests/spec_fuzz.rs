//! The differential fuzzer in CI: generated booking-shaped schedules on the model and on
//! PostgreSQL 15 (needs DATABASE_URL; skipped with a notice without it).
//!
//! - A FIXED seed (the same 110 schedules every run): any disagreement fails.
//! - A ROTATING seed (60 new schedules each run; the seed is printed, so a failure can be
//!   replayed with `roomsim spec --generate 60 --seed S --database-url URL --diff`): fails
//!   when agreement drops below [`ROTATING_AGREEMENT_PERCENT_MIN`]. Not zero tolerance:
//!   the fixed seed's 1,000 schedules all agree now, but 7 of seed 777's 1,000 still
//!   disagree with SERIALIZABLE (9 measured, 2 fixed since; specs/README.md), about 1 in
//!   140 schedules, which would make a strict rotating check fail about every third CI
//!   run. Every
//!   disagreement is printed either way.
//! - Both fail when more than a tenth of the schedules are timing-dependent on PostgreSQL,
//!   so the check cannot pass by excluding everything.
//!
//! About 30 s against a local PostgreSQL (the two runs per schedule go 6 at a time).

#![cfg(feature = "postgres")]

use model::spec::fuzz::{FuzzReport, fuzz};

const FIXED_SEED: u64 = 20_261_204;
const FIXED_COUNT: u64 = 110;
const ROTATING_COUNT: u64 = 60;
/// Agreement the rotating seed must reach, in percent of the schedules compared.
const ROTATING_AGREEMENT_PERCENT_MIN: f64 = 95.0;
const CONCURRENCY: usize = 6;
/// Timing-dependent schedules allowed, in percent of those run.
const TIMING_DEPENDENT_PERCENT_MAX: usize = 10;

fn check(report: &FuzzReport, strict: bool) {
    print!("{}", report.summary());
    let run = report.without_serializable.run + report.with_serializable.run;
    let excluded =
        report.without_serializable.timing_dependent + report.with_serializable.timing_dependent;
    let compared = run - excluded;
    let agreement = 100.0 * (compared - report.disagreements.len()) as f64 / compared.max(1) as f64;
    assert!(
        report.disagreements.is_empty() || (!strict && agreement >= ROTATING_AGREEMENT_PERCENT_MIN),
        "the model disagrees with PostgreSQL on {} generated schedules (seed {}); replay with \
         roomsim spec --generate {run} --seed {} --database-url URL --diff",
        report.disagreements.len(),
        report.seed,
        report.seed
    );
    assert!(
        excluded * 100 <= run * TIMING_DEPENDENT_PERCENT_MAX,
        "{excluded} of {run} schedules were timing-dependent on PostgreSQL"
    );
}

#[test]
fn generated_schedules_agree_with_postgres() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("notice: DATABASE_URL is not set; skipping the differential fuzzer");
        return;
    };
    let rotating = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    println!("fixed seed {FIXED_SEED}, rotating seed {rotating}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for (seed, count, strict) in
        [(FIXED_SEED, FIXED_COUNT, true), (rotating, ROTATING_COUNT, false)]
    {
        let report = runtime
            .block_on(fuzz(count, seed, &url, None, CONCURRENCY))
            .unwrap_or_else(|e| panic!("seed {seed}: cannot run on PostgreSQL: {e}"));
        check(&report, strict);
    }
}
