//! OUTPUT: the runner's reports as JSON lines or isolationtester-style text, PostgreSQL's
//! text form of model values, and the diff of two runs.
//!
//! JSON: one `{"permutation":[…],"events":[…]}` object per line. Integers are JSON numbers,
//! NULL is null, booleans are true/false, everything else is PostgreSQL's text output with
//! `TimeZone=UTC` (the PostgreSQL backend sets it) — e.g. `2010-04-01 10:00:00+00`,
//! `["2010-04-01 10:00:00+00","2010-04-01 11:00:00+00")`, `[1,5)`, `empty`.
//!
//! TEXT follows isolationtester's expected files: `starting permutation: …`, `step s1: SQL`,
//! ` <waiting ...>`, `step s1: <... completed>`, `ERROR:  message`, and result tables with
//! `|` separators, numbers right-aligned, and `(n rows)`.

use std::fmt::Write as _;

use super::parse::Spec;
use super::runner::{Event, PermutationResult, StepResult};
use crate::{Range, Value};

/// A model value as the JSON report shows it.
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        other => serde_json::Value::String(pg_text(other)),
    }
}

/// PostgreSQL's text output of a value (TimeZone UTC).
pub fn pg_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Text(s) => s.clone(),
        Value::Uuid(u) => {
            let h = format!("{u:032x}");
            format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
        }
        Value::Timestamp(us) => timestamp_text(*us),
        Value::Range(r) => range_text(r),
    }
}

fn range_text(r: &Range) -> String {
    if r.empty {
        return "empty".into();
    }
    let bound =
        |b: &Option<Value>| b.as_ref().map(|v| quote_bound(&pg_text(v))).unwrap_or_default();
    let open = if r.lower_inclusive && r.lower.is_some() { '[' } else { '(' };
    let close = if r.upper_inclusive && r.upper.is_some() { ']' } else { ')' };
    format!("{open}{},{}{close}", bound(&r.lower), bound(&r.upper))
}

/// range_out quotes a bound that is empty or holds a special character.
fn quote_bound(s: &str) -> String {
    let special = |c: char| c.is_whitespace() || "\"\\,()[]".contains(c);
    if !s.is_empty() && !s.chars().any(special) {
        return s.to_string();
    }
    let mut out = String::from('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]+00` from microseconds since the Unix epoch.
fn timestamp_text(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut s =
        format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push_str("+00");
    s
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One JSON object per permutation, one per line.
pub fn to_json_lines(results: &[PermutationResult]) -> String {
    let mut out = String::new();
    for r in results {
        out.push_str(&serde_json::to_string(r).expect("reports serialize"));
        out.push('\n');
    }
    out
}

/// isolationtester-style text.
pub fn to_text(spec: &Spec, results: &[PermutationResult]) -> String {
    let mut out = format!("Parsed test spec with {} sessions\n", spec.sessions.len());
    for r in results {
        let _ = write!(out, "\nstarting permutation: {}\n", r.permutation.join(" "));
        for event in &r.events {
            text_event(spec, event, &mut out);
        }
    }
    out
}

fn text_event(spec: &Spec, event: &Event, out: &mut String) {
    match event {
        Event::Step { step, blocked, result, .. } => {
            let sql = spec.step(step).map_or("", |(_, d)| d.sql.as_str());
            let waiting = if *blocked { " <waiting ...>" } else { "" };
            let _ = writeln!(out, "step {step}: {sql}{waiting}");
            if let Some(r) = result {
                text_outcome(r, out);
            }
        }
        Event::Completed { completed, result, .. } => {
            let _ = writeln!(out, "step {completed}: <... completed>");
            text_outcome(result, out);
        }
        Event::Stuck { stuck, .. } => {
            let _ = writeln!(out, "step {stuck}: <... never completed>");
        }
        Event::Control { control, result } => {
            let _ = writeln!(out, "{control} failed:");
            text_outcome(result, out);
        }
    }
}

fn text_outcome(o: &StepResult, out: &mut String) {
    match o {
        StepResult::Tag { .. } => {}
        StepResult::Error { message, .. } => {
            let _ = writeln!(out, "ERROR:  {message}");
        }
        StepResult::Rows { cols, rows } => text_table(cols, rows, out),
    }
}

fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text_table(cols: &[String], rows: &[Vec<serde_json::Value>], out: &mut String) {
    let mut widths: Vec<usize> = cols.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell_text(v).chars().count());
        }
    }
    let header: Vec<String> = cols.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
    let _ = writeln!(out, "{}", header.join("|"));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "{}", rule.join("+"));
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(v, w)| match v {
                serde_json::Value::Number(_) => format!("{:>w$}", cell_text(v)),
                _ => format!("{:<w$}", cell_text(v)),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("|"));
    }
    let n = rows.len();
    let _ = writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" });
}

/// Differences between two runs of the same spec, one message each (empty: they agree).
pub fn diff(
    file: &str,
    left_name: &str,
    left: &[PermutationResult],
    right_name: &str,
    right: &[PermutationResult],
) -> Vec<String> {
    let mut diffs = Vec::new();
    if left.len() != right.len() {
        diffs.push(format!(
            "{file}: {left_name} ran {} permutations, {right_name} ran {}",
            left.len(),
            right.len()
        ));
    }
    for (l, r) in left.iter().zip(right) {
        let perm = l.permutation.join(" ");
        let n = l.events.len().max(r.events.len());
        for i in 0..n {
            let (a, b) = (l.events.get(i), r.events.get(i));
            if a != b {
                let show = |e: Option<&Event>| {
                    e.map_or("(nothing)".to_string(), |e| serde_json::to_string(e).expect("json"))
                };
                let (n, a, b) = (i + 1, show(a), show(b));
                diffs.push(format!(
                    "{file}: permutation {perm}: event {n}:\n  {left_name:>8}: {a}\n  \
                     {right_name:>8}: {b}"
                ));
                break; // Later events usually differ as a consequence.
            }
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_text_forms() {
        assert_eq!(timestamp_text(1_270_116_000_000_000), "2010-04-01 10:00:00+00");
        assert_eq!(timestamp_text(-1), "1969-12-31 23:59:59.999999+00");
        assert_eq!(timestamp_text(1_500_000), "1970-01-01 00:00:01.5+00");
        let r = Range {
            lower: Some(Value::Timestamp(1_270_116_000_000_000)),
            upper: None,
            lower_inclusive: true,
            upper_inclusive: false,
            empty: false,
        };
        assert_eq!(pg_text(&Value::Range(Box::new(r))), "[\"2010-04-01 10:00:00+00\",)");
        assert_eq!(
            pg_text(&Value::Uuid(0xa0eebc999c0b4ef8bb6d6bb9bd380a11)),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }

    #[test]
    fn text_table_like_isolationtester() {
        let mut out = String::new();
        let rows = vec![vec![serde_json::json!("checking"), serde_json::json!(600)]];
        text_table(&["accountid".into(), "balance".into()], &rows, &mut out);
        assert_eq!(out, "accountid|balance\n---------+-------\nchecking |    600\n(1 row)\n");
    }
}
