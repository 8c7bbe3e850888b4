//! Values: column types, parsing of text input, PostgreSQL text output, comparison and ranges.
//!
//! WHAT THIS DOES
//! The engine stores every datum as a [`Value`] (defined in `api.rs`). This module knows the
//! SQL column types the model accepts ([`ColumnType`]), turns text input into typed values the
//! way PostgreSQL's input functions do (`'2025-03-10 09:00:00+00'`, `'[1,5)'`, uuids), prints
//! values the way PostgreSQL's output functions do (`2025-03-10 09:00:00+00`, `t`, ranges with
//! quoted bounds), and implements the range operators (`&&`, `@>`, `lower`, `upper`).
//!
//! WHY
//! Error DETAIL lines (`Key (id)=(1) already exists.`) and the spec runner's JSON compare text
//! output with PostgreSQL's byte for byte, so output formatting lives in one place.
//!
//! NOT MODELLED
//! - Time zones other than UTC: the server is assumed to run with `TimeZone = 'UTC'`.
//! - Fractional-second output beyond microseconds, infinity timestamps, BC dates.
//! - Range canonicalisation for int4range is done (`[a,b)` form); other discrete ranges no.

use crate::{Range, Value};
use std::cmp::Ordering;

/// The column types a table may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    BigInt,
    Text,
    Bool,
    Uuid,
    Timestamptz,
    TsTzRange,
    Int4Range,
    /// jsonb, carried as opaque text.
    Jsonb,
}

impl ColumnType {
    /// Maps a SQL type name (lower case, as sqlparser prints it) to a column type and whether
    /// it is a serial (sequence-backed) column. `None` for unsupported types.
    pub fn from_sql_name(name: &str) -> Option<(ColumnType, bool)> {
        let name = name.trim().to_ascii_lowercase();
        let base = name.split('(').next().unwrap_or("").trim();
        let found = match base {
            "int" | "integer" | "int4" | "smallint" | "int2" => (ColumnType::Int, false),
            "bigint" | "int8" => (ColumnType::BigInt, false),
            "serial" | "serial4" => (ColumnType::Int, true),
            "bigserial" | "serial8" => (ColumnType::BigInt, true),
            "text" | "varchar" | "character varying" | "string" => (ColumnType::Text, false),
            "bool" | "boolean" => (ColumnType::Bool, false),
            "uuid" => (ColumnType::Uuid, false),
            "timestamptz" | "timestamp with time zone" => (ColumnType::Timestamptz, false),
            "tstzrange" => (ColumnType::TsTzRange, false),
            "int4range" => (ColumnType::Int4Range, false),
            "jsonb" | "json" => (ColumnType::Jsonb, false),
            _ => return None,
        };
        Some(found)
    }

    /// PostgreSQL's name for the type, as used in error messages.
    pub fn pg_name(self) -> &'static str {
        match self {
            ColumnType::Int => "integer",
            ColumnType::BigInt => "bigint",
            ColumnType::Text => "text",
            ColumnType::Bool => "boolean",
            ColumnType::Uuid => "uuid",
            ColumnType::Timestamptz => "timestamp with time zone",
            ColumnType::TsTzRange => "tstzrange",
            ColumnType::Int4Range => "int4range",
            ColumnType::Jsonb => "jsonb",
        }
    }
}

/// Why a text could not be read as a value: (SQLSTATE, message).
pub type InputError = (&'static str, String);

fn invalid_input(type_name: &str, text: &str) -> InputError {
    let code = if type_name.starts_with("timestamp") { "22007" } else { "22P02" };
    (code, format!("invalid input syntax for type {type_name}: \"{text}\""))
}

/// Coerces a value to a column type (assignment or explicit cast). Text is parsed with the
/// type's input function; other mismatches are errors (42804 for assignment).
pub fn coerce(value: Value, to: ColumnType) -> Result<Value, InputError> {
    match (value, to) {
        (Value::Null, _) => Ok(Value::Null),
        (Value::Int(i), ColumnType::Int) => {
            if i32::try_from(i).is_err() {
                return Err(("22003", "integer out of range".to_string()));
            }
            Ok(Value::Int(i))
        }
        (Value::Int(i), ColumnType::BigInt) => Ok(Value::Int(i)),
        (Value::Int(i), ColumnType::Text | ColumnType::Jsonb) => Ok(Value::Text(i.to_string())),
        (Value::Bool(b), ColumnType::Bool) => Ok(Value::Bool(b)),
        (Value::Uuid(u), ColumnType::Uuid) => Ok(Value::Uuid(u)),
        (Value::Timestamp(t), ColumnType::Timestamptz) => Ok(Value::Timestamp(t)),
        (Value::Range(r), ColumnType::TsTzRange | ColumnType::Int4Range) => Ok(Value::Range(r)),
        (Value::Text(s), t) => parse_text(&s, t),
        (v, ColumnType::Text | ColumnType::Jsonb) => Ok(Value::Text(to_pg_text(&v))),
        (v, t) => Err(("42804", format!("cannot cast {} to {}", value_type_name(&v), t.pg_name()))),
    }
}

/// PostgreSQL's name of a value's type (for messages).
pub fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "unknown",
        Value::Bool(_) => "boolean",
        Value::Int(_) => "integer",
        Value::Text(_) => "text",
        Value::Uuid(_) => "uuid",
        Value::Timestamp(_) => "timestamp with time zone",
        Value::Range(r) => match r.lower.as_ref().or(r.upper.as_ref()) {
            Some(Value::Int(_)) => "int4range",
            _ => "tstzrange",
        },
    }
}

/// Parses text input for a type.
pub fn parse_text(text: &str, to: ColumnType) -> Result<Value, InputError> {
    let trimmed = text.trim();
    match to {
        ColumnType::Text | ColumnType::Jsonb => Ok(Value::Text(text.to_string())),
        ColumnType::Int | ColumnType::BigInt => match trimmed.parse::<i64>() {
            Ok(i) => coerce(Value::Int(i), to),
            Err(_) => Err(invalid_input(to.pg_name(), text)),
        },
        ColumnType::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "t" | "true" | "yes" | "on" | "1" | "y" => Ok(Value::Bool(true)),
            "f" | "false" | "no" | "off" | "0" | "n" => Ok(Value::Bool(false)),
            _ => Err(invalid_input("boolean", text)),
        },
        ColumnType::Uuid => parse_uuid(trimmed).ok_or_else(|| invalid_input("uuid", text)),
        ColumnType::Timestamptz => match parse_timestamp_us(trimmed) {
            Some(t) => Ok(Value::Timestamp(t)),
            None if looks_like_timestamp(trimmed) => {
                Err(("22008", format!("date/time field value out of range: \"{text}\"")))
            }
            None => Err(invalid_input("timestamp with time zone", text)),
        },
        ColumnType::TsTzRange | ColumnType::Int4Range => parse_range(trimmed, to)
            .map(|r| Value::Range(Box::new(r)))
            .ok_or_else(|| ("22P02", format!("malformed range literal: \"{text}\""))),
    }
}

/// Whether text has a timestamp's shape (digits and separators in place), so a parse failure
/// is a field out of range rather than bad syntax.
fn looks_like_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

fn parse_uuid(text: &str) -> Option<Value> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let hex = hex.trim_start_matches('{').trim_end_matches('}');
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(hex, 16).ok().map(Value::Uuid)
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

fn parse_digits(text: &str, count: usize) -> Option<i64> {
    if text.len() != count || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|+HH[:MM]|-HH[:MM]]` into microseconds since
/// the epoch (UTC). A missing zone means UTC (the server's TimeZone).
pub fn parse_timestamp_us(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() < 10 {
        return None;
    }
    let (date, rest) = text.split_at(10);
    let mut parts = date.split('-');
    let year = parse_digits(parts.next()?, 4)?;
    let month = parse_digits(parts.next()?, 2)?;
    let day = parse_digits(parts.next()?, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    let rest = rest.trim_start_matches(['T', ' ']);
    if rest.is_empty() {
        return Some(micros);
    }
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    micros += parse_clock_us(clock.trim())?;
    micros -= parse_zone_us(zone.trim())?;
    Some(micros)
}

fn parse_clock_us(clock: &str) -> Option<i64> {
    let mut fields = clock.split(':');
    let hour = parse_digits(fields.next()?, 2)?;
    let minute = parse_digits(fields.next()?, 2)?;
    let (second, fraction_us) = match fields.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let second = parse_digits(whole, 2)?;
            if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let padded = format!("{frac:0<6}");
            (second, padded.parse::<i64>().ok()?)
        }
    };
    if fields.next().is_some() || hour > 24 || minute > 59 || second > 60 {
        return None;
    }
    Some(((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction_us)
}

fn parse_zone_us(zone: &str) -> Option<i64> {
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let body = &zone[1..];
    let (hours, minutes) = match body.split_once(':') {
        Some((h, m)) => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?),
        None if body.len() == 4 => (body[..2].parse().ok()?, body[2..].parse().ok()?),
        None => (body.parse::<i64>().ok()?, 0),
    };
    Some(sign * (hours * 60 + minutes) * 60_000_000)
}

/// Formats a timestamp as PostgreSQL does with TimeZone UTC: `2025-03-10 09:00:00+00`.
pub fn format_timestamp(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / 1_000_000;
    let fraction = in_day % 1_000_000;
    let clock = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    let frac = if fraction == 0 {
        String::new()
    } else {
        format!(".{fraction:06}").trim_end_matches('0').to_string()
    };
    format!("{year:04}-{month:02}-{day:02} {clock}{frac}+00")
}

fn format_uuid(u: u128) -> String {
    let h = format!("{u:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// PostgreSQL's text output of a value (NULL prints as the empty string; callers that need
/// to tell NULL apart check for it first).
pub fn to_pg_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Text(s) => s.clone(),
        Value::Uuid(u) => format_uuid(*u),
        Value::Timestamp(t) => format_timestamp(*t),
        Value::Range(r) => format_range(r),
    }
}

fn format_range(r: &Range) -> String {
    if r.empty {
        return "empty".to_string();
    }
    let bound = |v: &Option<Value>| match v {
        None => String::new(),
        Some(Value::Timestamp(t)) => format!("\"{}\"", format_timestamp(*t)),
        Some(v) => to_pg_text(v),
    };
    format!(
        "{}{},{}{}",
        if r.lower_inclusive { '[' } else { '(' },
        bound(&r.lower),
        bound(&r.upper),
        if r.upper_inclusive { ']' } else { ')' }
    )
}

/// Builds a range from bounds and a `'[)'`-style flags string, canonicalising int ranges and
/// detecting empty ranges. Errors with 22000 when lower > upper, as PostgreSQL does.
pub fn make_range(
    lower: Value,
    upper: Value,
    flags: &str,
    kind: ColumnType,
) -> Result<Range, InputError> {
    let fb: Vec<char> = flags.chars().collect();
    if fb.len() != 2 || !matches!(fb[0], '[' | '(') || !matches!(fb[1], ']' | ')') {
        return Err(("42601", "invalid range bound flags".to_string()));
    }
    let to_bound = |v: Value| -> Result<Option<Value>, InputError> {
        match v {
            Value::Null => Ok(None),
            other => {
                let t = if kind == ColumnType::Int4Range {
                    ColumnType::Int
                } else {
                    ColumnType::Timestamptz
                };
                coerce(other, t).map(Some)
            }
        }
    };
    let mut range = Range {
        lower: to_bound(lower)?,
        upper: to_bound(upper)?,
        lower_inclusive: fb[0] == '[',
        upper_inclusive: fb[1] == ']',
        empty: false,
    };
    canonicalise(&mut range)?;
    Ok(range)
}

fn canonicalise(range: &mut Range) -> Result<(), InputError> {
    if range.lower.is_none() {
        range.lower_inclusive = false;
    }
    if range.upper.is_none() {
        range.upper_inclusive = false;
    }
    if let Some(Value::Int(l)) = range.lower
        && !range.lower_inclusive
    {
        range.lower = Some(Value::Int(l + 1));
        range.lower_inclusive = true;
    }
    if let Some(Value::Int(u)) = range.upper
        && range.upper_inclusive
    {
        range.upper = Some(Value::Int(u + 1));
        range.upper_inclusive = false;
    }
    if let (Some(l), Some(u)) = (&range.lower, &range.upper) {
        match l.cmp(u) {
            Ordering::Greater => {
                return Err((
                    "22000",
                    "range lower bound must be less than or equal to range upper bound".to_string(),
                ));
            }
            Ordering::Equal if !(range.lower_inclusive && range.upper_inclusive) => {
                *range = Range {
                    lower: None,
                    upper: None,
                    lower_inclusive: false,
                    upper_inclusive: false,
                    empty: true,
                };
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_range(text: &str, kind: ColumnType) -> Option<Range> {
    if text.eq_ignore_ascii_case("empty") {
        return Some(Range {
            lower: None,
            upper: None,
            lower_inclusive: false,
            upper_inclusive: false,
            empty: true,
        });
    }
    let open = text.chars().next()?;
    let close = text.chars().last()?;
    if !matches!(open, '[' | '(') || !matches!(close, ']' | ')') || text.len() < 3 {
        return None;
    }
    let inner = &text[1..text.len() - 1];
    let (l, u) = inner.split_once(',')?;
    let bound = |s: &str| -> Option<Value> {
        let s = s.trim().trim_matches('"');
        if s.is_empty() {
            return Some(Value::Null);
        }
        let t =
            if kind == ColumnType::Int4Range { ColumnType::Int } else { ColumnType::Timestamptz };
        parse_text(s, t).ok()
    };
    let flags = format!("{open}{close}");
    make_range(bound(l)?, bound(u)?, &flags, kind).ok()
}

/// Whether two ranges overlap (`&&`). Empty ranges overlap nothing.
pub fn ranges_overlap(a: &Range, b: &Range) -> bool {
    if a.empty || b.empty {
        return false;
    }
    lower_below_upper(a, b) && lower_below_upper(b, a)
}

/// Whether range `a`'s lower bound lies before range `b`'s upper bound (so they can meet).
fn lower_below_upper(a: &Range, b: &Range) -> bool {
    match (&a.lower, &b.upper) {
        (None, _) | (_, None) => true,
        (Some(l), Some(u)) => match l.cmp(u) {
            Ordering::Less => true,
            Ordering::Equal => a.lower_inclusive && b.upper_inclusive,
            Ordering::Greater => false,
        },
    }
}

/// Whether `outer` contains the point `v` (`@>` with an element).
pub fn range_contains_point(outer: &Range, v: &Value) -> bool {
    if outer.empty {
        return false;
    }
    let above_lower = match &outer.lower {
        None => true,
        Some(l) => v > l || (v == l && outer.lower_inclusive),
    };
    let below_upper = match &outer.upper {
        None => true,
        Some(u) => v < u || (v == u && outer.upper_inclusive),
    };
    above_lower && below_upper
}

/// Whether `outer` contains range `inner` (`@>` with a range).
pub fn range_contains_range(outer: &Range, inner: &Range) -> bool {
    if inner.empty {
        return true;
    }
    if outer.empty {
        return false;
    }
    let lower_ok = match (&outer.lower, &inner.lower) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => {
            o < i || (o == i && (outer.lower_inclusive || !inner.lower_inclusive))
        }
    };
    let upper_ok = match (&outer.upper, &inner.upper) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => {
            o > i || (o == i && (outer.upper_inclusive || !inner.upper_inclusive))
        }
    };
    lower_ok && upper_ok
}

/// SQL comparison of two non-null values, coercing text to the other side's type (the way an
/// unknown-typed literal is resolved). `None` when the types cannot be compared.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Uuid(x), Value::Uuid(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Range(x), Value::Range(y)) => Some(x.cmp(y)),
        (Value::Text(s), other) => {
            let coerced = coerce(Value::Text(s.clone()), type_of(other)?).ok()?;
            compare(&coerced, other)
        }
        (other, Value::Text(s)) => compare(&Value::Text(s.clone()), other).map(Ordering::reverse),
        _ => None,
    }
}

/// The column type a non-null value belongs to.
pub fn type_of(value: &Value) -> Option<ColumnType> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => ColumnType::Bool,
        Value::Int(_) => ColumnType::BigInt,
        Value::Text(_) => ColumnType::Text,
        Value::Uuid(_) => ColumnType::Uuid,
        Value::Timestamp(_) => ColumnType::Timestamptz,
        Value::Range(r) => match r.lower.as_ref().or(r.upper.as_ref()) {
            Some(Value::Int(_)) => ColumnType::Int4Range,
            _ => ColumnType::TsTzRange,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps round-trip through PostgreSQL's input and output formats.
    #[test]
    fn timestamp_round_trip() {
        let t = parse_timestamp_us("2025-03-10T09:00:00Z").unwrap();
        assert_eq!(format_timestamp(t), "2025-03-10 09:00:00+00");
        assert_eq!(parse_timestamp_us("2025-03-10 09:00:00+00"), Some(t));
        assert_eq!(parse_timestamp_us("2025-03-10 10:00:00+01"), Some(t));
        assert_eq!(parse_timestamp_us("2025-03-10 09:00:00.5+00"), Some(t + 500_000));
        assert_eq!(format_timestamp(t + 500_000), "2025-03-10 09:00:00.5+00");
        assert_eq!(parse_timestamp_us("nonsense"), None);
    }

    /// Adjacent half-open ranges do not overlap; overlapping ones do.
    #[test]
    fn range_overlap_rules() {
        let r = |a: i64, b: i64| {
            make_range(Value::Int(a), Value::Int(b), "[)", ColumnType::Int4Range).unwrap()
        };
        assert!(!ranges_overlap(&r(10, 11), &r(11, 12)));
        assert!(ranges_overlap(&r(10, 12), &r(11, 13)));
        assert_eq!(format_range(&r(1, 5)), "[1,5)");
        let closed = make_range(Value::Int(1), Value::Int(5), "[]", ColumnType::Int4Range).unwrap();
        assert_eq!(format_range(&closed), "[1,6)");
        assert!(range_contains_point(&r(1, 5), &Value::Int(4)));
        assert!(!range_contains_point(&r(1, 5), &Value::Int(5)));
    }

    /// Text input is parsed per type with PostgreSQL's error messages.
    #[test]
    fn text_input_errors() {
        let err = parse_text("abc", ColumnType::Int).unwrap_err();
        assert_eq!(err, ("22P02", "invalid input syntax for type integer: \"abc\"".to_string()));
        let u = parse_text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ColumnType::Uuid).unwrap();
        assert_eq!(to_pg_text(&u), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        let range = parse_text(
            "[\"2025-03-10 09:00:00+00\",\"2025-03-10 10:00:00+00\")",
            ColumnType::TsTzRange,
        )
        .unwrap();
        assert_eq!(to_pg_text(&range), "[\"2025-03-10 09:00:00+00\",\"2025-03-10 10:00:00+00\")");
    }
}
