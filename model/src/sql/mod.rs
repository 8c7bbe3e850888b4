//! SQL front end: statement splitting, transaction-control statements, and the planner.
//!
//! LIFE OF A SUBMITTED STRING
//! 1. [`split_statements`] cuts the string at top-level `;` (outside quotes and comments).
//! 2. Each piece is either a transaction/session control statement, parsed here by keyword
//!    ([`parse_control`]: BEGIN, COMMIT, SAVEPOINT, SET, …, where PostgreSQL's grammar is
//!    wider than sqlparser's, e.g. `DEFERRABLE`), or handed to sqlparser (PostgreSqlDialect)
//!    and converted once into a closed [`planner::Plan`]. sqlparser has no `FOR NO KEY
//!    UPDATE` / `FOR KEY SHARE`; [`rewrite_lock_strengths`] blanks the extra keywords and
//!    remembers the strengths in order.
//!
//! NOT MODELLED
//! Dollar-quoted strings and nested block comments in the splitter.

pub mod expr;
pub mod planner;

use crate::error::{Error, Result};

/// Limit on statements in one submitted string.
pub const STATEMENTS_PER_SUBMIT_MAX: usize = 1024;

/// Splits at top-level semicolons. Returns (byte offset, text) pairs of non-empty pieces.
pub fn split_statements(sql: &str) -> Vec<(usize, &str)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                push_piece(&mut out, sql, start, i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push_piece(&mut out, sql, start, sql.len());
    out
}

fn push_piece<'a>(out: &mut Vec<(usize, &'a str)>, sql: &'a str, start: usize, end: usize) {
    let piece = &sql[start.min(sql.len())..end.min(sql.len())];
    if has_code(piece) {
        out.push((start, piece));
    }
}

/// Whether the text has anything besides whitespace and `--` comments (no copy is made:
/// this runs on every submitted statement).
fn has_code(sql: &str) -> bool {
    let text = sql.trim_start();
    if !text.is_empty() && !text.starts_with("--") {
        return true; // The first line's text before any `--` holds this non-blank char.
    }
    text.lines().any(|l| !l.split("--").next().unwrap_or("").trim().is_empty())
}

/// Uppercase words of a statement outside quotes, with their byte offsets.
fn words(sql: &str) -> Vec<(usize, String)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' || b == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b {
                i += 1;
            }
            i += 1;
        } else if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if b.is_ascii_alphabetic() || b == b'_' {
            let s = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((s, sql[s..i].to_ascii_uppercase()));
        } else {
            i += 1;
        }
    }
    out
}

/// Row-lock strengths of `FOR …` clauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockStrength {
    KeyShare,
    Share,
    NoKeyUpdate,
    Update,
}

/// Blanks `NO KEY` / `KEY` in `FOR NO KEY UPDATE` / `FOR KEY SHARE` so sqlparser accepts the
/// clause, and returns each `FOR <strength>` clause's strength in text order.
pub fn rewrite_lock_strengths(sql: &str) -> (String, Vec<LockStrength>) {
    let w = words(sql);
    let mut text = sql.to_string();
    let mut strengths = Vec::new();
    let mut i = 0;
    while i < w.len() {
        if w[i].1 != "FOR" {
            i += 1;
            continue;
        }
        let next = |k: usize| w.get(i + k).map(|x| x.1.as_str());
        let (strength, blank) = match (next(1), next(2), next(3)) {
            (Some("UPDATE"), _, _) => (LockStrength::Update, None),
            (Some("SHARE"), _, _) => (LockStrength::Share, None),
            (Some("NO"), Some("KEY"), Some("UPDATE")) => {
                (LockStrength::NoKeyUpdate, Some((w[i + 1].0, w[i + 3].0)))
            }
            (Some("KEY"), Some("SHARE"), _) => {
                (LockStrength::KeyShare, Some((w[i + 1].0, w[i + 2].0)))
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if let Some((from, to)) = blank {
            text.replace_range(from..to, &" ".repeat(to - from));
        }
        strengths.push(strength);
        i += 2;
    }
    (text, strengths)
}

/// Isolation levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

/// Transaction modes from BEGIN / SET TRANSACTION.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxnModes {
    pub isolation: Option<Isolation>,
    pub read_only: Option<bool>,
    pub deferrable: Option<bool>,
}

/// Transaction and session control statements.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// BEGIN or START TRANSACTION (the flag: which, for the command tag).
    Begin(TxnModes, bool),
    SetTransaction(TxnModes),
    Commit,
    Rollback,
    Savepoint(String),
    RollbackTo(String),
    Release(String),
    /// SET [LOCAL] name = value (value as text, unquoted), or RESET (value None).
    Set {
        name: String,
        value: Option<String>,
        local: bool,
    },
    Show(String),
    /// Accepted and ignored: CREATE EXTENSION, ANALYZE, VACUUM, CREATE INDEX (non-unique).
    NoOp(&'static str),
}

fn syntax_error_at(word: &str) -> Error {
    Error::Syntax(format!("syntax error at or near \"{word}\""))
}

/// Parses a control statement, or returns None when the statement is not one.
pub fn parse_control(sql: &str) -> Option<Result<Control>> {
    let w: Vec<String> = words(sql).into_iter().map(|x| x.1).collect();
    let first = w.first()?.as_str();
    let second = w.get(1).map(String::as_str);
    let rest = |from: usize| w.get(from..).unwrap_or(&[]).to_vec();
    Some(match (first, second) {
        ("BEGIN", _) => parse_modes(&skip_noise(rest(1))).map(|m| Control::Begin(m, false)),
        ("START", Some("TRANSACTION")) => parse_modes(&rest(2)).map(|m| Control::Begin(m, true)),
        ("SET", Some("TRANSACTION")) => parse_modes(&rest(2)).map(Control::SetTransaction),
        ("COMMIT" | "END", _) => Ok(Control::Commit),
        ("ROLLBACK" | "ABORT", _) => {
            let r = skip_noise(rest(1));
            match r.first().map(String::as_str) {
                None => Ok(Control::Rollback),
                Some("TO") => savepoint_name(sql, &r[1..]).map(Control::RollbackTo),
                Some(other) => Err(syntax_error_at(other)),
            }
        }
        ("SAVEPOINT", _) => savepoint_name(sql, &rest(1)).map(Control::Savepoint),
        ("RELEASE", _) => savepoint_name(sql, &rest(1)).map(Control::Release),
        ("SET", _) => parse_set(sql),
        ("RESET", Some(name)) => {
            Ok(Control::Set { name: name.to_ascii_lowercase(), value: None, local: false })
        }
        ("SHOW", Some(name)) => Ok(Control::Show(name.to_ascii_lowercase())),
        ("CREATE", Some("EXTENSION")) => Ok(Control::NoOp("CREATE EXTENSION")),
        ("ANALYZE" | "ANALYSE", _) => Ok(Control::NoOp("ANALYZE")),
        ("VACUUM", _) => Ok(Control::NoOp("VACUUM")),
        ("CREATE", Some("INDEX")) => Ok(Control::NoOp("CREATE INDEX")),
        _ => return None,
    })
}

fn skip_noise(mut w: Vec<String>) -> Vec<String> {
    if matches!(w.first().map(String::as_str), Some("WORK" | "TRANSACTION")) {
        w.remove(0);
    }
    w
}

fn savepoint_name(sql: &str, w: &[String]) -> Result<String> {
    let w: Vec<&String> = w.iter().filter(|x| x.as_str() != "SAVEPOINT").collect();
    let Some(upper) = w.first() else {
        return Err(Error::Syntax("syntax error at end of input".into()));
    };
    // Recover the original spelling (identifiers fold to lower case unless quoted).
    let _ = sql;
    Ok(upper.to_ascii_lowercase())
}

fn parse_modes(w: &[String]) -> Result<TxnModes> {
    let mut modes = TxnModes::default();
    let mut i = 0;
    while i < w.len() {
        let pair = (w[i].as_str(), w.get(i + 1).map(String::as_str));
        match pair {
            ("ISOLATION", Some("LEVEL")) => {
                let (level, used) =
                    match (w.get(i + 2).map(String::as_str), w.get(i + 3).map(String::as_str)) {
                        (Some("READ"), Some("COMMITTED" | "UNCOMMITTED")) => {
                            (Isolation::ReadCommitted, 4)
                        }
                        (Some("REPEATABLE"), Some("READ")) => (Isolation::RepeatableRead, 4),
                        (Some("SERIALIZABLE"), _) => (Isolation::Serializable, 3),
                        (Some(other), _) => return Err(syntax_error_at(other)),
                        (None, _) => {
                            return Err(Error::Syntax("syntax error at end of input".into()));
                        }
                    };
                modes.isolation = Some(level);
                i += used;
            }
            ("READ", Some("ONLY")) => {
                modes.read_only = Some(true);
                i += 2;
            }
            ("READ", Some("WRITE")) => {
                modes.read_only = Some(false);
                i += 2;
            }
            ("DEFERRABLE", _) => {
                modes.deferrable = Some(true);
                i += 1;
            }
            ("NOT", Some("DEFERRABLE")) => {
                modes.deferrable = Some(false);
                i += 2;
            }
            (other, _) => return Err(syntax_error_at(other)),
        }
    }
    Ok(modes)
}

fn parse_set(sql: &str) -> Result<Control> {
    let body = sql.trim_start();
    let body = body[3..].trim_start();
    let (local, body) = match body.split_once(char::is_whitespace) {
        Some((kw, rest)) if kw.eq_ignore_ascii_case("local") => (true, rest.trim_start()),
        Some((kw, rest)) if kw.eq_ignore_ascii_case("session") => (false, rest.trim_start()),
        _ => (false, body),
    };
    let name_end = body.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(body.len());
    let name = body[..name_end].to_ascii_lowercase();
    let mut value = body[name_end..].trim_start();
    if let Some(v) = value.strip_prefix('=') {
        value = v;
    } else if value.len() >= 2 && value[..2].eq_ignore_ascii_case("to") {
        value = &value[2..];
    } else {
        return Err(Error::Syntax("syntax error at or near \"SET\"".into()));
    }
    let value = value.trim().trim_end_matches(';').trim().trim_matches('\'').to_string();
    if name.is_empty() {
        return Err(Error::Syntax("syntax error at or near \"SET\"".into()));
    }
    Ok(Control::Set { name, value: Some(value), local })
}

/// Parses a duration setting (`'10ms'`, `'1s'`, `'2min'`, `1000` = ms) into milliseconds.
pub fn parse_duration_ms(name: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let invalid =
        || crate::errinput!("22023", "invalid value for parameter \"{name}\": \"{value}\"");
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "us" => return Ok(n / 1000),
        _ => return Err(invalid()),
    };
    n.checked_mul(factor).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Semicolons inside strings do not split; empty pieces are dropped.
    #[test]
    fn splits_at_top_level_semicolons() {
        let parts = split_statements("select ';'; ; begin; -- x;\n commit");
        let texts: Vec<&str> = parts.iter().map(|p| p.1.trim()).collect();
        assert_eq!(texts, vec!["select ';'", "begin", "-- x;\n commit"]);
    }

    /// FOR NO KEY UPDATE / FOR KEY SHARE are rewritten and their strengths kept in order.
    #[test]
    fn lock_strengths_are_rewritten() {
        let (text, s) =
            rewrite_lock_strengths("select 1 from t for no key update of t for key share");
        assert_eq!(s, vec![LockStrength::NoKeyUpdate, LockStrength::KeyShare]);
        assert!(!text.to_ascii_uppercase().contains("KEY"));
        assert_eq!(text.len(), "select 1 from t for no key update of t for key share".len());
    }

    /// BEGIN modes including DEFERRABLE parse; bad levels are syntax errors.
    #[test]
    fn control_statements() {
        let c = parse_control("BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE");
        let modes = TxnModes {
            isolation: Some(Isolation::Serializable),
            read_only: Some(true),
            deferrable: Some(true),
        };
        assert_eq!(c.unwrap().unwrap(), Control::Begin(modes, false));
        assert!(parse_control("begin isolation level bogus").unwrap().is_err());
        let set = parse_control("SET LOCAL deadlock_timeout = '10ms'").unwrap().unwrap();
        assert_eq!(
            set,
            Control::Set {
                name: "deadlock_timeout".into(),
                value: Some("10ms".into()),
                local: true
            }
        );
        assert_eq!(parse_duration_ms("x", "2s").unwrap(), 2000);
        assert!(parse_control("select 1").is_none());
    }
}
