//! Planned expressions and their evaluation.
//!
//! WHAT THIS DOES
//! [`Expr`] is the closed expression tree the planner produces: column references are already
//! resolved to positions in the row being evaluated, parameters to indexes, functions to
//! [`Func`]. [`eval`] evaluates an expression against a row with SQL's three-valued logic.
//! Functions with side effects (advisory locks, `pg_sleep`, `gen_random_uuid`, `now()`) are
//! delegated to the caller through [`Effects`], so this module stays pure.
//!
//! NOT MODELLED
//! Integer overflow promotion to numeric, numeric/float types, string functions beyond
//! `length`/`lower`/`upper` on text, CASE, subqueries other than EXISTS.

use crate::error::Error;
use crate::value::{self, ColumnType};
use crate::{Range, Value};
use std::cmp::Ordering;

/// Nesting limit for planned expressions (evaluation recurses over the tree).
pub const EXPR_DEPTH_MAX: usize = 64;

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    Concat,
    Overlap,
    Contains,
    ContainedBy,
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Now,
    Lower,
    Upper,
    MakeRange(ColumnType),
    Coalesce,
    Greatest,
    Least,
    Abs,
    Length,
    IsEmpty,
    GenRandomUuid,
    PgSleep,
    /// Advisory lock functions: which one is named by the fields.
    Advisory(AdvisoryFn),
}

/// The advisory lock function family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvisoryFn {
    /// Transaction-level (`_xact_`) or session-level.
    pub xact: bool,
    pub shared: bool,
    /// `pg_try_…`: return false instead of waiting.
    pub try_only: bool,
    /// `pg_advisory_unlock…`.
    pub unlock: bool,
    /// `pg_advisory_unlock_all`.
    pub unlock_all: bool,
}

/// Aggregate kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
}

/// A planned expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    /// `$n`, zero-based.
    Param(usize),
    /// A column of the current row.
    Column(usize),
    /// `excluded.col` in ON CONFLICT DO UPDATE.
    Excluded(usize),
    /// The DEFAULT keyword in an INSERT's VALUES.
    Default,
    /// The result of the n-th aggregate of a grouped SELECT.
    Aggregate(usize),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    IsNull(Box<Expr>, bool),
    InList(Box<Expr>, Vec<Expr>, bool),
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    Cast(Box<Expr>, ColumnType),
    Func(Func, Vec<Expr>),
    /// `[NOT] EXISTS (subquery)`.
    Exists(Box<ExistsPlan>, bool),
}

/// A planned EXISTS subquery over one table. Its filter reads rows laid out as the inner
/// table's columns followed by the enclosing row's values (correlation).
#[derive(Clone, Debug, PartialEq)]
pub struct ExistsPlan {
    pub table: String,
    pub filter: Option<Expr>,
    pub inner_width: usize,
}

/// What a function with side effects needs from the executor. The executor may refuse to
/// continue (an error) or park the statement (a wait), both carried by `E`.
pub trait Effects<E: From<Error>> {
    /// now(): the transaction's start time, microseconds since the epoch.
    fn now_us(&mut self) -> i64;
    /// Advisory locks, pg_sleep, gen_random_uuid.
    fn call(&mut self, func: Func, args: &[Value]) -> Result<Value, E>;
    /// Whether the subquery returns a row for the enclosing row `outer`.
    fn exists(&mut self, plan: &ExistsPlan, outer: &[Value]) -> Result<bool, E>;
}

/// The inputs an expression reads.
pub struct Row<'a> {
    pub values: &'a [Value],
    pub params: &'a [Value],
    pub excluded: Option<&'a [Value]>,
    pub aggregates: &'a [Value],
}

impl<'a> Row<'a> {
    /// A row with only values and parameters.
    pub fn new(values: &'a [Value], params: &'a [Value]) -> Row<'a> {
        Row { values, params, excluded: None, aggregates: &[] }
    }
}

fn index<'v>(values: &'v [Value], i: usize, what: &str) -> Result<&'v Value, Error> {
    values.get(i).ok_or_else(|| Error::other("42P02", format!("there is no {what} ${}", i + 1)))
}

/// Evaluates an expression.
pub fn eval<E: From<Error>>(expr: &Expr, row: &Row, fx: &mut dyn Effects<E>) -> Result<Value, E> {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Param(i) => index(row.params, *i, "parameter")?.clone(),
        Expr::Column(i) => row.values.get(*i).cloned().unwrap_or(Value::Null),
        Expr::Excluded(i) => row.excluded.and_then(|e| e.get(*i)).cloned().unwrap_or(Value::Null),
        Expr::Default => Value::Null,
        Expr::Aggregate(i) => row.aggregates.get(*i).cloned().unwrap_or(Value::Null),
        Expr::Binary(BinOp::And, a, b) => {
            let left = eval(a, row, fx)?;
            if left == Value::Bool(false) {
                return Ok(left);
            }
            logic_and(left, eval(b, row, fx)?)?
        }
        Expr::Binary(BinOp::Or, a, b) => {
            let left = eval(a, row, fx)?;
            if left == Value::Bool(true) {
                return Ok(left);
            }
            logic_or(left, eval(b, row, fx)?)?
        }
        Expr::Binary(op, a, b) => {
            if let (Some(x), Some(y)) = (leaf(a, row), leaf(b, row))
                && let Some(v) = compare_refs(*op, x, y)
            {
                return Ok(v);
            }
            binary(*op, eval(a, row, fx)?, eval(b, row, fx)?)?
        }
        Expr::Not(e) => match eval(e, row, fx)? {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(!b),
            v => return Err(type_error("NOT", &v).into()),
        },
        Expr::Neg(e) => match eval(e, row, fx)? {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(i.checked_neg().ok_or_else(out_of_range)?),
            v => return Err(type_error("-", &v).into()),
        },
        Expr::IsNull(e, negated) => Value::Bool((eval(e, row, fx)? == Value::Null) != *negated),
        Expr::InList(e, list, negated) => in_list(e, list, *negated, row, fx)?,
        Expr::Between(e, low, high, negated) => {
            let v = eval(e, row, fx)?;
            let ge = binary(BinOp::GtEq, v.clone(), eval(low, row, fx)?)?;
            let le = binary(BinOp::LtEq, v, eval(high, row, fx)?)?;
            let both = logic_and(ge, le)?;
            if *negated { negate(both) } else { both }
        }
        Expr::Cast(e, ty) => cast(eval(e, row, fx)?, *ty)?,
        Expr::Exists(plan, negated) => Value::Bool(fx.exists(plan, row.values)? != *negated),
        Expr::Func(f, args) => {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(eval(a, row, fx)?);
            }
            call_builtin(*f, values, fx)?
        }
    })
}

fn in_list<E: From<Error>>(
    e: &Expr,
    list: &[Expr],
    negated: bool,
    row: &Row,
    fx: &mut dyn Effects<E>,
) -> Result<Value, E> {
    if let Some(v) = leaf(e, row)
        && let Some(result) = in_list_refs(v, list, row)
    {
        return Ok(if negated { negate(result) } else { result });
    }
    let v = eval(e, row, fx)?;
    let mut result = Value::Bool(false);
    for item in list {
        let eq = binary(BinOp::Eq, v.clone(), eval(item, row, fx)?)?;
        result = logic_or(result, eq)?;
        if result == Value::Bool(true) {
            break;
        }
    }
    Ok(if negated { negate(result) } else { result })
}

/// The value of a leaf expression (literal, parameter, column), borrowed; None for anything
/// else and for a reference `eval` would answer otherwise (a missing parameter's error, a
/// missing column's NULL), so the caller falls back to `eval`.
fn leaf<'x>(e: &'x Expr, row: &Row<'x>) -> Option<&'x Value> {
    match e {
        Expr::Literal(v) => Some(v),
        Expr::Param(i) => row.params.get(*i),
        Expr::Column(i) => row.values.get(*i),
        _ => None,
    }
}

/// [`binary`] of a comparison on borrowed operands, without copying them, when that gives
/// `binary`'s answer for sure: a NULL operand (NULL), or two values of one type that compare
/// (no unknown-literal coercion, no type error). None: not a comparison, or ask `binary`.
fn compare_refs(op: BinOp, a: &Value, b: &Value) -> Option<Value> {
    if !matches!(op, BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq) {
        return None;
    }
    if *a == Value::Null || *b == Value::Null {
        return Some(Value::Null);
    }
    if std::mem::discriminant(a) != std::mem::discriminant(b) {
        return None;
    }
    let ord = value::compare(a, b)?;
    Some(Value::Bool(comparison_holds(op, ord)))
}

/// Whether `a op b` holds when `a` compares to `b` as `ord` (`op` is a comparison; GtEq is
/// the remaining case).
fn comparison_holds(op: BinOp, ord: Ordering) -> bool {
    match op {
        BinOp::Eq => ord == Ordering::Equal,
        BinOp::NotEq => ord != Ordering::Equal,
        BinOp::Lt => ord == Ordering::Less,
        BinOp::LtEq => ord != Ordering::Greater,
        BinOp::Gt => ord == Ordering::Greater,
        _ => ord != Ordering::Less,
    }
}

/// [`in_list`] over borrowed leaves when every comparison is answered by [`compare_refs`]
/// (same fold, same short cut at the first true); None: ask `in_list`.
fn in_list_refs(v: &Value, list: &[Expr], row: &Row<'_>) -> Option<Value> {
    let mut result = Value::Bool(false);
    for item in list {
        let eq = compare_refs(BinOp::Eq, v, leaf(item, row)?)?;
        result = logic_or(result, eq).ok()?;
        if result == Value::Bool(true) {
            break;
        }
    }
    Some(result)
}

fn negate(v: Value) -> Value {
    match v {
        Value::Bool(b) => Value::Bool(!b),
        other => other,
    }
}

fn out_of_range() -> Error {
    Error::other("22003", "bigint out of range")
}

fn type_error(op: &str, v: &Value) -> Error {
    Error::other("42883", format!("operator does not exist: {op} {}", value::value_type_name(v)))
}

fn binary_type_error(op: BinOp, a: &Value, b: &Value) -> Error {
    Error::other(
        "42883",
        format!(
            "operator does not exist: {} {} {}",
            value::value_type_name(a),
            op_symbol(op),
            value::value_type_name(b)
        ),
    )
}

fn op_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Eq => "=",
        BinOp::NotEq => "<>",
        BinOp::Lt => "<",
        BinOp::LtEq => "<=",
        BinOp::Gt => ">",
        BinOp::GtEq => ">=",
        BinOp::And => "AND",
        BinOp::Or => "OR",
        BinOp::Plus => "+",
        BinOp::Minus => "-",
        BinOp::Multiply => "*",
        BinOp::Divide => "/",
        BinOp::Modulo => "%",
        BinOp::Concat => "||",
        BinOp::Overlap => "&&",
        BinOp::Contains => "@>",
        BinOp::ContainedBy => "<@",
    }
}

fn as_bool(v: &Value) -> Result<Option<bool>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Text(s) => match value::parse_text(s, ColumnType::Bool) {
            Ok(Value::Bool(b)) => Ok(Some(b)),
            _ => Err(Error::other(
                "22P02",
                format!("invalid input syntax for type boolean: \"{s}\""),
            )),
        },
        other => Err(Error::other(
            "42804",
            format!(
                "argument of AND/OR must be type boolean, not type {}",
                value::value_type_name(other)
            ),
        )),
    }
}

fn logic_and(a: Value, b: Value) -> Result<Value, Error> {
    Ok(match (as_bool(&a)?, as_bool(&b)?) {
        (Some(false), _) | (_, Some(false)) => Value::Bool(false),
        (Some(true), Some(true)) => Value::Bool(true),
        _ => Value::Null,
    })
}

fn logic_or(a: Value, b: Value) -> Result<Value, Error> {
    Ok(match (as_bool(&a)?, as_bool(&b)?) {
        (Some(true), _) | (_, Some(true)) => Value::Bool(true),
        (Some(false), Some(false)) => Value::Bool(false),
        _ => Value::Null,
    })
}

/// Whether a WHERE result lets the row through (only a true does).
pub fn is_true(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

/// Applies a non-logical binary operator.
pub fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, Error> {
    if a == Value::Null || b == Value::Null {
        return Ok(Value::Null);
    }
    match op {
        BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            let (a, b) = resolve_unknown(a, b)?;
            let ord = value::compare(&a, &b).ok_or_else(|| binary_type_error(op, &a, &b))?;
            Ok(Value::Bool(comparison_holds(op, ord)))
        }
        BinOp::And => logic_and(a, b),
        BinOp::Or => logic_or(a, b),
        BinOp::Concat => Ok(Value::Text(value::to_pg_text(&a) + &value::to_pg_text(&b))),
        BinOp::Overlap | BinOp::Contains | BinOp::ContainedBy => range_op(op, a, b),
        _ => arithmetic(op, a, b),
    }
}

/// A text operand compared with a typed one is read with the other type's input function,
/// as PostgreSQL resolves an unknown-typed literal (so `1 = 'abc'` is 22P02).
fn resolve_unknown(a: Value, b: Value) -> Result<(Value, Value), Error> {
    let convert = |text: Value, other: &Value| -> Result<Value, Error> {
        match value::type_of(other) {
            Some(ty) if ty != ColumnType::Text => {
                value::coerce(text, ty).map_err(|(code, message)| Error::Other { code, message })
            }
            _ => Ok(text),
        }
    };
    match (&a, &b) {
        (Value::Text(_), Value::Text(_)) => Ok((a, b)),
        (Value::Text(_), other) => {
            let other = other.clone();
            Ok((convert(a, &other)?, b))
        }
        (other, Value::Text(_)) => {
            let other = other.clone();
            Ok((a, convert(b, &other)?))
        }
        _ => Ok((a, b)),
    }
}

fn to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn arithmetic(op: BinOp, a: Value, b: Value) -> Result<Value, Error> {
    if let (Value::Timestamp(_), Value::Timestamp(_)) = (&a, &b) {
        return Err(Error::FeatureNotSupported("interval arithmetic is not supported".into()));
    }
    let (x, y) = match (to_int(&a), to_int(&b)) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(binary_type_error(op, &a, &b)),
    };
    let result = match op {
        BinOp::Plus => x.checked_add(y),
        BinOp::Minus => x.checked_sub(y),
        BinOp::Multiply => x.checked_mul(y),
        BinOp::Divide | BinOp::Modulo => {
            if y == 0 {
                return Err(Error::other("22012", "division by zero"));
            }
            if op == BinOp::Divide { x.checked_div(y) } else { x.checked_rem(y) }
        }
        _ => None,
    };
    result.map(Value::Int).ok_or_else(out_of_range)
}

fn as_range(v: &Value, other: &Value) -> Option<Range> {
    match v {
        Value::Range(r) => Some((**r).clone()),
        Value::Text(s) => {
            let kind = value::type_of(other).unwrap_or(ColumnType::TsTzRange);
            match value::parse_text(s, kind) {
                Ok(Value::Range(r)) => Some(*r),
                _ => None,
            }
        }
        _ => None,
    }
}

fn range_op(op: BinOp, a: Value, b: Value) -> Result<Value, Error> {
    let err = || binary_type_error(op, &a, &b);
    match op {
        BinOp::Overlap => {
            let (x, y) = (as_range(&a, &b).ok_or_else(err)?, as_range(&b, &a).ok_or_else(err)?);
            Ok(Value::Bool(value::ranges_overlap(&x, &y)))
        }
        BinOp::Contains => contains(&a, &b).ok_or_else(err).map(Value::Bool),
        _ => contains(&b, &a).ok_or_else(err).map(Value::Bool),
    }
}

fn contains(outer: &Value, inner: &Value) -> Option<bool> {
    let outer_range = as_range(outer, inner)?;
    match inner {
        Value::Range(r) => Some(value::range_contains_range(&outer_range, r)),
        Value::Text(s) => match value::parse_text(s, ColumnType::TsTzRange) {
            Ok(Value::Range(r)) => Some(value::range_contains_range(&outer_range, &r)),
            _ => {
                let point_type = match outer_range.lower.as_ref().or(outer_range.upper.as_ref()) {
                    Some(Value::Int(_)) => ColumnType::BigInt,
                    _ => ColumnType::Timestamptz,
                };
                let point = value::parse_text(s, point_type).ok()?;
                Some(value::range_contains_point(&outer_range, &point))
            }
        },
        point => Some(value::range_contains_point(&outer_range, point)),
    }
}

/// An explicit cast (`::type`).
pub fn cast(v: Value, ty: ColumnType) -> Result<Value, Error> {
    match (&v, ty) {
        (Value::Int(_), ColumnType::Bool)
        | (Value::Bool(_), ColumnType::Int | ColumnType::BigInt) => {
            return Ok(match v {
                Value::Int(i) => Value::Bool(i != 0),
                Value::Bool(b) => Value::Int(b as i64),
                other => other,
            });
        }
        _ => {}
    }
    value::coerce(v, ty).map_err(|(code, message)| {
        let code = if code == "42804" { "42846" } else { code };
        Error::Other { code, message }
    })
}

fn call_builtin<E: From<Error>>(
    f: Func,
    args: Vec<Value>,
    fx: &mut dyn Effects<E>,
) -> Result<Value, E> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    Ok(match f {
        Func::Now => Value::Timestamp(fx.now_us()),
        Func::Lower | Func::Upper => match arg(0) {
            Value::Range(r) => {
                let bound = if f == Func::Lower { r.lower } else { r.upper };
                bound.unwrap_or(Value::Null)
            }
            Value::Text(s) => {
                Value::Text(if f == Func::Lower { s.to_lowercase() } else { s.to_uppercase() })
            }
            Value::Null => Value::Null,
            other => {
                return Err(
                    type_error(if f == Func::Lower { "lower" } else { "upper" }, &other).into()
                );
            }
        },
        Func::IsEmpty => match arg(0) {
            Value::Range(r) => Value::Bool(r.empty),
            _ => Value::Null,
        },
        Func::MakeRange(kind) => {
            let flags = match arg(2) {
                Value::Text(s) => s,
                Value::Null if args.len() < 3 => "[)".to_string(),
                _ => {
                    return Err(Error::other(
                        "22000",
                        "range constructor flags argument must not be null",
                    )
                    .into());
                }
            };
            let range = value::make_range(arg(0), arg(1), &flags, kind)
                .map_err(|(code, message)| Error::Other { code, message })?;
            Value::Range(Box::new(range))
        }
        Func::Coalesce => args.into_iter().find(|v| *v != Value::Null).unwrap_or(Value::Null),
        Func::Greatest | Func::Least => extreme(f == Func::Greatest, args)?,
        Func::Abs => match arg(0) {
            Value::Int(i) => Value::Int(i.checked_abs().ok_or_else(out_of_range)?),
            _ => Value::Null,
        },
        Func::Length => match arg(0) {
            Value::Text(s) => Value::Int(s.chars().count() as i64),
            _ => Value::Null,
        },
        Func::GenRandomUuid | Func::PgSleep | Func::Advisory(_) => fx.call(f, &args)?,
    })
}

fn extreme(greatest: bool, args: Vec<Value>) -> Result<Value, Error> {
    let mut best = Value::Null;
    for v in args {
        if v == Value::Null {
            continue;
        }
        if best == Value::Null {
            best = v;
            continue;
        }
        let ord = value::compare(&v, &best).ok_or_else(|| type_error("GREATEST/LEAST", &v))?;
        if (ord == Ordering::Greater) == greatest && ord != Ordering::Equal {
            best = v;
        }
    }
    Ok(best)
}

impl Expr {
    /// Every node of the tree, root first (iterative: planned trees are bounded by
    /// [`EXPR_DEPTH_MAX`] but walks need no recursion).
    pub fn nodes(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            out.push(e);
            match e {
                Expr::Func(_, args) => stack.extend(args.iter()),
                Expr::Binary(_, a, b) => stack.extend([&**a, &**b]),
                Expr::Not(a) | Expr::Neg(a) | Expr::IsNull(a, _) | Expr::Cast(a, _) => {
                    stack.push(a)
                }
                Expr::InList(a, list, _) => {
                    stack.push(a);
                    stack.extend(list.iter());
                }
                Expr::Between(a, b, c, _) => stack.extend([&**a, &**b, &**c]),
                _ => {}
            }
        }
        out
    }
}

/// Whether an expression calls a function with side effects (advisory locks, pg_sleep,
/// gen_random_uuid).
pub fn has_effects(expr: &Expr) -> bool {
    expr.nodes().iter().any(|e| {
        matches!(e, Expr::Func(Func::Advisory(_) | Func::PgSleep | Func::GenRandomUuid, _))
    })
}

/// Effects for contexts where side-effecting functions are not allowed (CHECK, DEFAULT, …):
/// only `now()` is answered.
pub struct NoEffects {
    pub now_us: i64,
}

impl Effects<Error> for NoEffects {
    fn now_us(&mut self) -> i64 {
        self.now_us
    }
    fn call(&mut self, func: Func, _args: &[Value]) -> Result<Value, Error> {
        Err(Error::FeatureNotSupported(format!("{func:?} is not supported in this context")))
    }
    fn exists(&mut self, _plan: &ExistsPlan, _outer: &[Value]) -> Result<bool, Error> {
        Err(Error::FeatureNotSupported("EXISTS is not supported in this context".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(e: &Expr) -> Result<Value, Error> {
        eval(e, &Row::new(&[], &[]), &mut NoEffects { now_us: 0 })
    }

    /// Division by zero is 22012; NULL propagates through comparisons and AND/OR follow
    /// three-valued logic.
    #[test]
    fn arithmetic_and_logic() {
        let div = Expr::Binary(
            BinOp::Divide,
            Box::new(Expr::Literal(Value::Int(1))),
            Box::new(Expr::Literal(Value::Int(0))),
        );
        assert_eq!(ev(&div).unwrap_err().sqlstate(), "22012");
        let null_eq = Expr::Binary(
            BinOp::Eq,
            Box::new(Expr::Literal(Value::Null)),
            Box::new(Expr::Literal(Value::Int(1))),
        );
        assert_eq!(ev(&null_eq).unwrap(), Value::Null);
        let or = Expr::Binary(
            BinOp::Or,
            Box::new(null_eq.clone()),
            Box::new(Expr::Literal(Value::Bool(true))),
        );
        assert_eq!(ev(&or).unwrap(), Value::Bool(true));
        let and =
            Expr::Binary(BinOp::And, Box::new(null_eq), Box::new(Expr::Literal(Value::Bool(true))));
        assert_eq!(ev(&and).unwrap(), Value::Null);
        let modulo = Expr::Binary(
            BinOp::Modulo,
            Box::new(Expr::Literal(Value::Int(30))),
            Box::new(Expr::Literal(Value::Int(3))),
        );
        assert_eq!(ev(&modulo).unwrap(), Value::Int(0));
    }
}
