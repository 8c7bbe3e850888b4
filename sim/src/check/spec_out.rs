//! `check --spec-out FILE`: the shortest counterexample as a PostgreSQL isolation-tester spec
//! that `roomsim spec FILE --database-url URL --diff` replays on real PostgreSQL.
//!
//! setup = the scope's migrations and clinic seed (parameters written in as literals); one
//! spec session per database connection the schedule opened (`b1` is booking 1's first
//! connection, `b1c2` its second, e.g. after a crash); one step per statement with its exact
//! parameter values; one permutation in the order the scheduler ran them; a crash becomes a
//! `ROLLBACK` of the crashed connection (what PostgreSQL does when a backend's client goes);
//! and a final session `check` whose steps select the violating rows: appointment pairs that
//! overlap in a room (with turnover), for a doctor, or for a patient, and the appointments.
//!
//! When the counterexample is a deadlock, the connection that got 40P01 gets
//! `deadlock_timeout = '100ms'` and the others `'10s'`, so PostgreSQL picks the same victim
//! whatever the harness's timing (model/specs/README.md, "Timing").
//!
//! The clinic's rule policy is stored as text with braces; `roomsim spec` ends a SQL block at
//! the first `}` outside a quoted string or comment, so the spec reads back whole.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use backend_core::db::SqlValue;

use super::search::{CheckConfig, Counterexample};
use crate::SimError;
use crate::ids::ClinicIds;
use crate::world::engine::{setup_statements, strategy};

/// Active appointment pairs that overlap; `{key}` is the column shared and `{until}` the
/// end that counts (rooms stay blocked through turnover).
const OVERLAP_SQL: &str = "SELECT a.{key} AS {key}, a.starts_at AS first_starts_at, \
     b.starts_at AS second_starts_at FROM appointments a JOIN appointments b \
     ON a.{key} = b.{key} AND a.id < b.id \
     AND a.starts_at < b.{until} AND b.starts_at < a.{until} \
     WHERE a.status IN ('held', 'booked', 'checked_in') \
     AND b.status IN ('held', 'booked', 'checked_in') ORDER BY 1, 2, 3;";

/// A parameter as an SQL literal. Uuids and timestamps are cast, so the literal means the
/// same wherever the parameter stood; text is a plain (untyped) string literal.
fn literal(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Bool(b) => b.to_string(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Text(t) => format!("'{}'", t.replace('\'', "''")),
        SqlValue::Uuid(u) => format!("'{u}'::uuid"),
        SqlValue::Timestamp(t) => {
            format!("'{}'::timestamptz", t.format("%Y-%m-%d %H:%M:%S%.6f+00"))
        }
    }
}

/// `sql` with `$1`, `$2`, … replaced by the literals of `params` (outside quoted strings).
pub fn inline_params(sql: &str, params: &[SqlValue]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            let index: usize = digits.parse().unwrap_or(0);
            match index.checked_sub(1).and_then(|i| params.get(i)) {
                Some(value) => out.push_str(&literal(value)),
                None => {
                    out.push('$');
                    out.push_str(&digits);
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// One statement on one line, ending in `;` (steps and setup read better that way).
fn one_line(sql: &str) -> String {
    let words: Vec<&str> = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect();
    let mut text = words.join(" ");
    if !text.ends_with(';') {
        text.push(';');
    }
    text
}

/// The spec text of a counterexample.
pub fn render(config: &CheckConfig, counterexample: &Counterexample) -> Result<String, SimError> {
    let scenario = config.scenario()?;
    let ids = ClinicIds::new(&scenario);
    let mut setup = setup_statements(&scenario, &ids, strategy(&config.strategy)?)?;
    if let Some(given) = &config.given {
        setup.extend(given.prior.iter().cloned());
    }
    let events = &counterexample.events;
    // Spec session names per connection: b<booking> for a booking's first, b<booking>c<k> after.
    let mut names: BTreeMap<usize, String> = BTreeMap::new();
    let mut per_booking: BTreeMap<usize, usize> = BTreeMap::new();
    for e in events {
        names.entry(e.connection).or_insert_with(|| {
            let k = per_booking.entry(e.session).or_insert(0);
            *k += 1;
            match *k {
                1 => format!("b{}", e.session + 1),
                k => format!("b{}c{k}", e.session + 1),
            }
        });
    }
    let victims: Vec<usize> = events
        .iter()
        .filter(|e| e.outcome.ends_with("ERROR 40P01"))
        .map(|e| e.connection)
        .collect();
    let mut steps: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    let mut permutation: Vec<String> = Vec::new();
    let mut blocked: BTreeMap<usize, bool> = BTreeMap::new();
    for e in events {
        let session = &names[&e.connection];
        let list = steps.entry(e.connection).or_default();
        if e.is_statement() {
            let name = format!("{session}_{}", list.len() + 1);
            list.push((name.clone(), one_line(&inline_params(&e.sql, &e.params))));
            permutation.push(name);
            blocked.insert(e.connection, e.outcome == "blocked");
        } else if e.outcome.starts_with("unblocked") {
            blocked.insert(e.connection, false);
        } else if e.outcome.starts_with("CRASH") {
            if blocked.get(&e.connection).copied().unwrap_or(false) {
                return Err(SimError::BadInput(
                    "--spec-out: the counterexample crashes a backend while its statement \
                     waits for a lock, which an isolation spec cannot express (a step cannot \
                     be issued to a waiting session)"
                        .into(),
                ));
            }
            let name = format!("{session}_crash");
            list.push((name.clone(), "ROLLBACK;".into()));
            permutation.push(name);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `roomsim check --spec-out`: the shortest violating schedule of"
    );
    let _ = writeln!(out, "# {}.", config.scope());
    for v in &counterexample.violations {
        let _ = writeln!(out, "# Broken: {}: {}", v.invariant, v.detail);
    }
    let _ = writeln!(out, "# One session per database connection, one step per statement as the");
    let _ = writeln!(
        out,
        "# booking code sent it (parameters written in); a crash is the connection's ROLLBACK."
    );
    let _ =
        writeln!(out, "# Replay on PostgreSQL: roomsim spec THIS.spec --database-url URL --diff");
    let setup_sql: Vec<String> = setup
        .iter()
        .map(|(sql, params)| {
            let text = inline_params(sql, params);
            let text = text.trim_end();
            if text.ends_with(';') { text.to_string() } else { format!("{text};") }
        })
        .collect();
    let _ = writeln!(out, "setup {{\n{}\n}}", setup_sql.join("\n"));
    for (connection, list) in &steps {
        let _ = writeln!(out, "\nsession {}", names[connection]);
        if !victims.is_empty() {
            let timeout = if victims.contains(connection) { "100ms" } else { "10s" };
            let _ = writeln!(out, "setup {{ SET deadlock_timeout = '{timeout}'; }}");
        }
        for (name, sql) in list {
            let _ = writeln!(out, "step {name} {{ {sql} }}");
        }
    }
    let _ = writeln!(out, "\nsession check");
    for (step, key, until) in [
        ("room_overlaps", "room_id", "blocked_until"),
        ("doctor_overlaps", "doctor_id", "ends_at"),
        ("patient_overlaps", "patient_id", "ends_at"),
    ] {
        let sql = OVERLAP_SQL.replace("{key}", key).replace("{until}", until);
        let _ = writeln!(out, "step {step} {{ {sql} }}");
        permutation.push(step.to_string());
    }
    let _ = writeln!(
        out,
        "step appointments {{ SELECT room_id, doctor_id, patient_id, starts_at, ends_at, status \
         FROM appointments ORDER BY starts_at, room_id, doctor_id; }}"
    );
    permutation.push("appointments".into());
    let _ = writeln!(out, "\npermutation {}", permutation.join(" "));
    Ok(out)
}

/// Writes the spec to `path` whole or not at all.
pub fn write(path: &Path, text: &str) -> Result<(), SimError> {
    crate::files::write_whole("--spec-out", path, text)
}
