//! The planner: sqlparser's AST → the closed [`Plan`] the executor runs.
//!
//! WHAT THIS DOES
//! Converts each parsed statement once, resolving table and column names against the
//! catalog (42P01 / 42703 / 42702), mapping functions and operators to [`Func`] / [`BinOp`],
//! and rejecting anything outside the modelled subset with 0A000 naming the construct. The
//! executor never sees sqlparser types.
//!
//! NOT MODELLED
//! Subqueries other than in INSERT … SELECT, outer joins, more than two tables, DISTINCT,
//! window functions, CTEs, UNION, CASE, LIKE, views, schemas.
//!
//! LAYOUT
//! This file holds the plan types the executor runs, the entry point [`plan_sql`], the
//! name-resolution scope and [`assign`]. By statement kind: `query.rs` (SELECT),
//! `dml.rs` (INSERT / UPDATE / DELETE), `ddl.rs` (CREATE TABLE / CREATE INDEX) and
//! `expressions.rs` (expressions, functions, operators and literals, shared by all).

mod ddl;
mod dml;
mod expressions;
mod query;

use crate::catalog::{Catalog, Column, Table, UniqueIndex};
use crate::error::{Error, Result};
use crate::sql::LockStrength;
use crate::sql::expr::{AggKind, EXPR_DEPTH_MAX, Expr};
use crate::value;
use crate::{Value, errinput};
use sqlparser::ast;

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::FeatureNotSupported(format!("{what} is not supported by the model"))
}

/// A planned statement.
#[derive(Clone, Debug)]
pub enum Plan {
    Select(Box<Select>),
    Insert(Box<Insert>),
    Update(Box<Update>),
    Delete(Box<Delete>),
    CreateTable(Box<Table>, bool),
    CreateUniqueIndex { table: String, index: UniqueIndex, if_not_exists: bool },
    DropTable { names: Vec<String>, if_exists: bool },
    Truncate(Vec<String>),
}

/// A FROM item.
#[derive(Clone, Debug)]
pub enum Source {
    Table { table: String, alias: String },
    Series { start: Expr, end: Expr, alias: String },
}

/// A row-lock clause resolved to sources.
#[derive(Clone, Debug)]
pub struct LockClause {
    pub strength: LockStrength,
    /// Indexes into `Select::sources` (tables only).
    pub sources: Vec<usize>,
    pub nowait: bool,
    pub skip_locked: bool,
}

/// An aggregate to compute per group.
#[derive(Clone, Debug)]
pub struct AggSpec {
    pub kind: AggKind,
    pub arg: Option<Expr>,
}

/// A planned SELECT. Rows are the concatenation of the sources' columns.
#[derive(Clone, Debug)]
pub struct Select {
    pub sources: Vec<Source>,
    /// Width of each source's row (offsets are running sums).
    pub widths: Vec<usize>,
    pub filter: Option<Expr>,
    pub projection: Vec<(String, Expr)>,
    pub grouped: bool,
    pub group_by: Vec<Expr>,
    pub aggregates: Vec<AggSpec>,
    pub having: Option<Expr>,
    /// (expression over the source row, or projection index), descending, nulls first.
    pub order_by: Vec<(OrderKey, bool, bool)>,
    pub limit: Option<Expr>,
    pub offset: Option<Expr>,
    pub locks: Vec<LockClause>,
}

/// What an ORDER BY item sorts on.
#[derive(Clone, Debug)]
pub enum OrderKey {
    Expr(Expr),
    Output(usize),
}

/// Where INSERT rows come from.
#[derive(Clone, Debug)]
pub enum InsertSource {
    Values(Vec<Vec<Expr>>),
    Select(Box<Select>),
}

/// `SET col = expr, …` as (column index, expression) pairs.
pub type Assignments = Vec<(usize, Expr)>;

/// ON CONFLICT arbiters and action.
#[derive(Clone, Debug)]
pub struct OnConflict {
    /// None: every unique and exclusion constraint is an arbiter. Some: (is exclusion, index).
    pub arbiter: Option<(bool, usize)>,
    /// None = DO NOTHING; Some = DO UPDATE SET … [WHERE …].
    pub update: Option<(Assignments, Option<Expr>)>,
}

#[derive(Clone, Debug)]
pub struct Insert {
    pub table: String,
    pub columns: Vec<usize>,
    pub source: InsertSource,
    pub on_conflict: Option<OnConflict>,
    pub returning: Vec<(String, Expr)>,
}

#[derive(Clone, Debug)]
pub struct Update {
    pub table: String,
    pub sets: Vec<(usize, Expr)>,
    pub filter: Option<Expr>,
    pub returning: Vec<(String, Expr)>,
}

#[derive(Clone, Debug)]
pub struct Delete {
    pub table: String,
    pub filter: Option<Expr>,
    pub returning: Vec<(String, Expr)>,
}

/// Parses one statement's text (already lock-strength rewritten) into a plan.
pub fn plan_sql(sql: &str, strengths: &[LockStrength], catalog: &Catalog) -> Result<Plan> {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let statements = sqlparser::parser::Parser::new(&dialect)
        .with_recursion_limit(EXPR_DEPTH_MAX)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| syntax_error(&e.to_string()))?;
    let [statement] = statements.as_slice() else {
        return Err(Error::Syntax("syntax error: expected one statement".into()));
    };
    let mut planner = Planner { catalog, strengths: strengths.to_vec(), next_strength: 0 };
    planner.statement(statement)
}

/// PostgreSQL's wording for a parse error (`syntax error at or near "x"` / `at end of
/// input`), with sqlparser's line and column in DETAIL (the model has no cursor position
/// field).
fn syntax_error(parser_message: &str) -> Error {
    let (body, position) = match parser_message.rsplit_once(" at Line: ") {
        Some((b, p)) => (b, Some(format!("Line: {p}"))),
        None => (parser_message, None),
    };
    let message = match body.rsplit_once("found: ") {
        Some((_, "EOF")) | None => "syntax error at end of input".to_string(),
        Some((_, token)) => format!("syntax error at or near \"{}\"", token.trim_matches('"')),
    };
    match position {
        Some(position) => Error::SyntaxAt { message, position },
        None => Error::Syntax(message),
    }
}

struct Planner<'a> {
    catalog: &'a Catalog,
    strengths: Vec<LockStrength>,
    next_strength: usize,
}

/// One FROM entry visible to name resolution.
#[derive(Clone, Debug)]
struct ScopeEntry {
    name: String,
    columns: Vec<String>,
    offset: usize,
}

/// Name-resolution context for expressions.
#[derive(Clone, Debug, Default)]
struct Scope {
    entries: Vec<ScopeEntry>,
    /// Columns of `excluded.*` in ON CONFLICT DO UPDATE.
    excluded: Option<Vec<String>>,
    /// The enclosing query's scope (a correlated EXISTS subquery): its columns follow this
    /// scope's columns in the evaluated row.
    outer: Option<Box<Scope>>,
}

impl Scope {
    fn push(&mut self, name: String, columns: Vec<String>) {
        let offset = self.entries.last().map(|e| e.offset + e.columns.len()).unwrap_or(0);
        self.entries.push(ScopeEntry { name, columns, offset });
    }

    fn table(t: &Table, alias: &str) -> Scope {
        let mut s = Scope::default();
        s.push(alias.to_string(), t.columns.iter().map(|c| c.name.clone()).collect());
        s
    }

    fn width(&self) -> usize {
        self.entries.iter().map(|e| e.columns.len()).sum()
    }

    fn resolve(&self, qualifier: Option<&str>, column: &str) -> Result<Expr> {
        if let Some(found) = self.lookup(qualifier, column)? {
            return Ok(found);
        }
        let known_table =
            |s: &Scope| qualifier.is_some_and(|q| s.entries.iter().any(|e| e.name == q));
        let mut level: Option<&Scope> = Some(self);
        let mut any_table = false;
        while let Some(s) = level {
            any_table |= known_table(s);
            level = s.outer.as_deref();
        }
        match qualifier {
            Some(q) if !any_table => {
                Err(errinput!("42P01", "missing FROM-clause entry for table \"{q}\""))
            }
            Some(q) => Err(errinput!("42703", "column {q}.{column} does not exist")),
            None => Err(errinput!("42703", "column \"{column}\" does not exist")),
        }
    }

    /// Finds a column in this scope, then in enclosing ones (shifted past this scope's
    /// columns); Ok(None) when nowhere.
    fn lookup(&self, qualifier: Option<&str>, column: &str) -> Result<Option<Expr>> {
        if let (Some("excluded"), Some(cols)) = (qualifier, &self.excluded) {
            return match cols.iter().position(|c| c == column) {
                Some(i) => Ok(Some(Expr::Excluded(i))),
                None => Err(errinput!("42703", "column excluded.{column} does not exist")),
            };
        }
        let mut found = None;
        for entry in &self.entries {
            if qualifier.is_some_and(|q| q != entry.name) {
                continue;
            }
            if let Some(i) = entry.columns.iter().position(|c| c == column) {
                if found.is_some() {
                    return Err(errinput!("42702", "column reference \"{column}\" is ambiguous"));
                }
                found = Some(entry.offset + i);
            }
        }
        if let Some(i) = found {
            return Ok(Some(Expr::Column(i)));
        }
        let Some(outer) = &self.outer else { return Ok(None) };
        Ok(match outer.lookup(qualifier, column)? {
            Some(Expr::Column(i)) => Some(Expr::Column(self.width() + i)),
            other => other,
        })
    }
}

fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

fn object_name(n: &ast::ObjectName) -> Result<String> {
    match n.0.last() {
        Some(ast::ObjectNamePart::Identifier(i)) => Ok(ident(i)),
        _ => Err(unsupported(format!("name {n}"))),
    }
}

/// Aggregates collected while planning a grouped SELECT's expressions.
struct AggContext {
    aggregates: Vec<AggSpec>,
    allowed: bool,
}

impl<'a> Planner<'a> {
    fn statement(&mut self, s: &ast::Statement) -> Result<Plan> {
        use ast::Statement as S;
        match s {
            S::Query(q) => Ok(Plan::Select(Box::new(self.query(q)?))),
            S::Insert(i) => Ok(Plan::Insert(Box::new(self.insert(i)?))),
            S::Update(u) => Ok(Plan::Update(Box::new(self.update(u)?))),
            S::Delete(d) => Ok(Plan::Delete(Box::new(self.delete(d)?))),
            S::CreateTable(c) => self.create_table(c),
            S::CreateIndex(c) => self.create_index(c),
            S::Drop { object_type: ast::ObjectType::Table, if_exists, names, .. } => {
                let names = names.iter().map(object_name).collect::<Result<_>>()?;
                Ok(Plan::DropTable { names, if_exists: *if_exists })
            }
            S::Truncate(t) => {
                let names =
                    t.table_names.iter().map(|n| object_name(&n.name)).collect::<Result<_>>()?;
                Ok(Plan::Truncate(names))
            }
            other => {
                let text = other.to_string();
                let head: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                Err(unsupported(format!("statement {head}")))
            }
        }
    }
}

/// Assignment coercion of a value into a column: text literals are parsed, mismatched
/// types are 42804.
pub fn assign(v: Value, col: &Column) -> Result<Value> {
    value::coerce(v.clone(), col.ty).map_err(|(code, message)| {
        if code == "42804" {
            errinput!(
                "42804",
                "column \"{}\" is of type {} but expression is of type {}",
                col.name,
                col.ty.pg_name(),
                value::value_type_name(&v)
            )
        } else {
            Error::Other { code, message }
        }
    })
}
