//! Planning expressions: column references, operators, literals, casts, function calls and
//! aggregates, and EXISTS subqueries (the statement planners share these).

use super::{AggContext, AggSpec, Planner, Scope, Source, ident, object_name, unsupported};
use crate::error::Result;
use crate::sql::expr::{AdvisoryFn, AggKind, BinOp, EXPR_DEPTH_MAX, ExistsPlan, Expr, Func};
use crate::value::ColumnType;
use crate::{Value, errinput};
use sqlparser::ast;

impl<'a> Planner<'a> {
    pub(super) fn expr(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        aggs: &mut AggContext,
    ) -> Result<Expr> {
        self.expr_at(e, scope, aggs, 0)
    }

    fn expr_at(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        aggs: &mut AggContext,
        depth: usize,
    ) -> Result<Expr> {
        if depth > EXPR_DEPTH_MAX {
            return Err(errinput!("54001", "expression nesting exceeds {EXPR_DEPTH_MAX} levels"));
        }
        let d = depth + 1;
        let sub = |p: &mut Self, x: &ast::Expr, aggs: &mut AggContext| -> Result<Box<Expr>> {
            p.expr_at(x, scope, aggs, d).map(Box::new)
        };
        use ast::Expr as A;
        Ok(match e {
            A::Identifier(i) => scope.resolve(None, &ident(i))?,
            A::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => scope.resolve(Some(&ident(t)), &ident(c))?,
                [_, t, c] => scope.resolve(Some(&ident(t)), &ident(c))?,
                _ => return Err(unsupported(format!("name {e}"))),
            },
            A::Value(v) => literal(&v.value)?,
            A::Nested(inner) => return self.expr_at(inner, scope, aggs, d),
            A::BinaryOp { left, op, right } => {
                let op = bin_op(op)?;
                Expr::Binary(op, sub(self, left, aggs)?, sub(self, right, aggs)?)
            }
            A::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Not => Expr::Not(sub(self, expr, aggs)?),
                ast::UnaryOperator::Minus => match self.expr_at(expr, scope, aggs, d)? {
                    Expr::Literal(Value::Int(i)) => Expr::Literal(Value::Int(-i)),
                    other => Expr::Neg(Box::new(other)),
                },
                ast::UnaryOperator::Plus => return self.expr_at(expr, scope, aggs, d),
                other => return Err(unsupported(format!("operator {other}"))),
            },
            A::IsNull(x) => Expr::IsNull(sub(self, x, aggs)?, false),
            A::IsNotNull(x) => Expr::IsNull(sub(self, x, aggs)?, true),
            A::IsTrue(x) => Expr::Binary(
                BinOp::Eq,
                sub(self, x, aggs)?,
                Box::new(Expr::Literal(Value::Bool(true))),
            ),
            A::IsFalse(x) => Expr::Binary(
                BinOp::Eq,
                sub(self, x, aggs)?,
                Box::new(Expr::Literal(Value::Bool(false))),
            ),
            A::In { expr, target: ast::InTarget::List(list), negated, .. } => {
                let mut items = Vec::new();
                for x in list {
                    items.push(self.expr_at(x, scope, aggs, d)?);
                }
                Expr::InList(sub(self, expr, aggs)?, items, *negated)
            }
            A::Between { expr, negated, low, high } => Expr::Between(
                sub(self, expr, aggs)?,
                sub(self, low, aggs)?,
                sub(self, high, aggs)?,
                *negated,
            ),
            A::Cast { expr, data_type, .. } => {
                let ty = cast_type(data_type)?;
                Expr::Cast(sub(self, expr, aggs)?, ty)
            }
            A::TypedString(ts) => {
                let ty = cast_type(&ts.data_type)?;
                Expr::Cast(Box::new(literal(&ts.value.value)?), ty)
            }
            A::Function(f) => self.function(f, scope, aggs, d)?,
            A::Exists { subquery, negated } => {
                Expr::Exists(Box::new(self.exists(subquery, scope)?), *negated)
            }
            other => {
                let text = other.to_string();
                let short: String = text.chars().take(40).collect();
                return Err(unsupported(format!("expression {short}")));
            }
        })
    }

    /// `EXISTS (SELECT … FROM one_table [WHERE …])`, possibly correlated.
    fn exists(&mut self, q: &ast::Query, outer: &Scope) -> Result<ExistsPlan> {
        let ast::SetExpr::Select(sel) = q.body.as_ref() else {
            return Err(unsupported("EXISTS over this query form"));
        };
        let simple = q.with.is_none() && q.locks.is_empty() && sel.having.is_none();
        let grouped = !matches!(&sel.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty());
        let [from] = sel.from.as_slice() else {
            return Err(unsupported("EXISTS over other than one table"));
        };
        if !simple || grouped || !from.joins.is_empty() {
            return Err(unsupported("EXISTS with joins, grouping or locking"));
        }
        let Source::Table { table, alias } = self.table_factor(&from.relation)? else {
            return Err(unsupported("EXISTS over generate_series"));
        };
        let t = self.catalog.must_get(&table)?;
        let mut scope = Scope::table(t, &alias);
        scope.outer = Some(Box::new(outer.clone()));
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        let filter = match &sel.selection {
            Some(w) => Some(self.expr(w, &scope, &mut none)?),
            None => None,
        };
        Ok(ExistsPlan { table, filter, inner_width: t.columns.len() })
    }

    pub(super) fn function_arg(
        &mut self,
        a: &ast::FunctionArg,
        scope: &Scope,
        aggs: &mut AggContext,
    ) -> Result<Expr> {
        match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => self.expr(e, scope, aggs),
            _ => Err(unsupported("named or wildcard function arguments")),
        }
    }

    fn function(
        &mut self,
        f: &ast::Function,
        scope: &Scope,
        aggs: &mut AggContext,
        depth: usize,
    ) -> Result<Expr> {
        let name = object_name(&f.name)?.to_ascii_lowercase();
        if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
            return Err(unsupported(format!("window or filtered aggregate {name}")));
        }
        let (raw_args, star) = match &f.args {
            ast::FunctionArguments::None => (Vec::new(), false),
            ast::FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
                    return Err(unsupported(format!("DISTINCT or clauses in {name}()")));
                }
                let star = matches!(
                    list.args.as_slice(),
                    [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]
                );
                (if star { Vec::new() } else { list.args.clone() }, star)
            }
            ast::FunctionArguments::Subquery(_) => {
                return Err(unsupported("subquery function argument"));
            }
        };
        if let Some(kind) = agg_kind(&name, star) {
            return self.aggregate(&name, kind, &raw_args, scope, aggs, depth);
        }
        let mut args = Vec::new();
        for a in &raw_args {
            match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                    args.push(self.expr_at(e, scope, aggs, depth + 1)?)
                }
                _ => return Err(unsupported(format!("argument form in {name}()"))),
            }
        }
        let func =
            builtin(&name).ok_or_else(|| errinput!("42883", "function {name}() does not exist"))?;
        check_arity(&name, func, args.len())?;
        Ok(Expr::Func(func, args))
    }

    fn aggregate(
        &mut self,
        name: &str,
        kind: AggKind,
        raw: &[ast::FunctionArg],
        scope: &Scope,
        aggs: &mut AggContext,
        depth: usize,
    ) -> Result<Expr> {
        if !aggs.allowed {
            return Err(errinput!("42803", "aggregate functions are not allowed here"));
        }
        let arg = match (kind, raw) {
            (AggKind::CountStar, []) => None,
            (_, [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))]) => {
                let mut inner = AggContext { aggregates: Vec::new(), allowed: false };
                Some(self.expr_at(e, scope, &mut inner, depth + 1).map_err(|err| {
                    if err.sqlstate() == "42803" {
                        errinput!("42803", "aggregate function calls cannot be nested")
                    } else {
                        err
                    }
                })?)
            }
            _ => {
                return Err(errinput!(
                    "42883",
                    "function {name} does not exist with these arguments"
                ));
            }
        };
        aggs.aggregates.push(AggSpec { kind, arg });
        Ok(Expr::Aggregate(aggs.aggregates.len() - 1))
    }
}

fn agg_kind(name: &str, star: bool) -> Option<AggKind> {
    Some(match (name, star) {
        ("count", true) => AggKind::CountStar,
        ("count", false) => AggKind::Count,
        ("sum", false) => AggKind::Sum,
        ("min", false) => AggKind::Min,
        ("max", false) => AggKind::Max,
        _ => return None,
    })
}

fn builtin(name: &str) -> Option<Func> {
    let adv = |xact, shared, try_only, unlock| {
        Func::Advisory(AdvisoryFn { xact, shared, try_only, unlock, unlock_all: false })
    };
    Some(match name {
        "now" | "current_timestamp" | "transaction_timestamp" => Func::Now,
        "lower" => Func::Lower,
        "upper" => Func::Upper,
        "isempty" => Func::IsEmpty,
        "tstzrange" => Func::MakeRange(ColumnType::TsTzRange),
        "int4range" => Func::MakeRange(ColumnType::Int4Range),
        "coalesce" => Func::Coalesce,
        "greatest" => Func::Greatest,
        "least" => Func::Least,
        "abs" => Func::Abs,
        "length" | "char_length" => Func::Length,
        "gen_random_uuid" => Func::GenRandomUuid,
        "pg_sleep" => Func::PgSleep,
        "pg_advisory_lock" => adv(false, false, false, false),
        "pg_advisory_lock_shared" => adv(false, true, false, false),
        "pg_try_advisory_lock" => adv(false, false, true, false),
        "pg_try_advisory_lock_shared" => adv(false, true, true, false),
        "pg_advisory_xact_lock" => adv(true, false, false, false),
        "pg_advisory_xact_lock_shared" => adv(true, true, false, false),
        "pg_try_advisory_xact_lock" => adv(true, false, true, false),
        "pg_try_advisory_xact_lock_shared" => adv(true, true, true, false),
        "pg_advisory_unlock" => adv(false, false, false, true),
        "pg_advisory_unlock_shared" => adv(false, true, false, true),
        "pg_advisory_unlock_all" => Func::Advisory(AdvisoryFn {
            xact: false,
            shared: false,
            try_only: false,
            unlock: true,
            unlock_all: true,
        }),
        _ => return None,
    })
}

fn check_arity(name: &str, f: Func, n: usize) -> Result<()> {
    let ok = match f {
        Func::Now | Func::GenRandomUuid => n == 0,
        Func::Lower | Func::Upper | Func::Abs | Func::Length | Func::IsEmpty | Func::PgSleep => {
            n == 1
        }
        Func::MakeRange(_) => n == 2 || n == 3,
        Func::Coalesce | Func::Greatest | Func::Least => n >= 1,
        Func::Advisory(a) if a.unlock_all => n == 0,
        Func::Advisory(_) => n == 1 || n == 2,
    };
    if ok {
        Ok(())
    } else {
        Err(errinput!("42883", "function {name} with {n} arguments does not exist"))
    }
}

fn cast_type(dt: &ast::DataType) -> Result<ColumnType> {
    let name = dt.to_string();
    match ColumnType::from_sql_name(&name) {
        Some((ty, false)) => Ok(ty),
        _ => Err(unsupported(format!("cast to {name}"))),
    }
}

fn bin_op(op: &ast::BinaryOperator) -> Result<BinOp> {
    use ast::BinaryOperator as B;
    Ok(match op {
        B::Eq => BinOp::Eq,
        B::NotEq => BinOp::NotEq,
        B::Lt => BinOp::Lt,
        B::LtEq => BinOp::LtEq,
        B::Gt => BinOp::Gt,
        B::GtEq => BinOp::GtEq,
        B::And => BinOp::And,
        B::Or => BinOp::Or,
        B::Plus => BinOp::Plus,
        B::Minus => BinOp::Minus,
        B::Multiply => BinOp::Multiply,
        B::Divide => BinOp::Divide,
        B::Modulo => BinOp::Modulo,
        B::StringConcat => BinOp::Concat,
        B::PGOverlap => BinOp::Overlap,
        B::AtArrow => BinOp::Contains,
        B::ArrowAt => BinOp::ContainedBy,
        other => return Err(unsupported(format!("operator {other}"))),
    })
}

fn literal(v: &ast::Value) -> Result<Expr> {
    use ast::Value as V;
    Ok(Expr::Literal(match v {
        V::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => return Err(unsupported(format!("numeric literal {n}"))),
        },
        V::SingleQuotedString(s) | V::EscapedStringLiteral(s) => Value::Text(s.clone()),
        V::Boolean(b) => Value::Bool(*b),
        V::Null => Value::Null,
        V::Placeholder(p) => {
            let n: usize = p
                .trim_start_matches('$')
                .parse()
                .map_err(|_| errinput!("42601", "bad parameter {p}"))?;
            if n == 0 {
                return Err(errinput!("42P02", "there is no parameter $0"));
            }
            return Ok(Expr::Param(n - 1));
        }
        other => return Err(unsupported(format!("literal {other}"))),
    }))
}

/// The column label PostgreSQL gives `'x'::type`: the type's internal name.
pub(super) fn pg_type_label(dt: &ast::DataType) -> String {
    match ColumnType::from_sql_name(&dt.to_string()) {
        Some((ColumnType::Int, _)) => "int4",
        Some((ColumnType::BigInt, _)) => "int8",
        Some((ColumnType::Bool, _)) => "bool",
        Some((ColumnType::Timestamptz, _)) => "timestamptz",
        Some((ColumnType::Text, _)) => "text",
        Some((ColumnType::Uuid, _)) => "uuid",
        Some((ColumnType::TsTzRange, _)) => "tstzrange",
        Some((ColumnType::Int4Range, _)) => "int4range",
        Some((ColumnType::Jsonb, _)) => "jsonb",
        None => "?column?",
    }
    .to_string()
}
