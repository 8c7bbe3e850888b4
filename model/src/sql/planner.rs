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

use super::LockStrength;
use super::expr::{AdvisoryFn, AggKind, BinOp, EXPR_DEPTH_MAX, ExistsPlan, Expr, Func};
use crate::catalog::{self, Catalog, Check, Column, Exclusion, ForeignKey, Table, UniqueIndex};
use crate::error::{Error, Result};
use crate::mvcc::Heap;
use crate::value::{self, ColumnType};
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

    // ---- SELECT ----

    fn query(&mut self, q: &ast::Query) -> Result<Select> {
        if q.with.is_some() {
            return Err(unsupported("WITH"));
        }
        if q.fetch.is_some() || q.for_clause.is_some() {
            return Err(unsupported("FETCH / FOR clause"));
        }
        let select = match q.body.as_ref() {
            ast::SetExpr::Select(s) => s,
            ast::SetExpr::Query(inner) => return self.query(inner),
            ast::SetExpr::Values(_) => return Err(unsupported("VALUES as a query")),
            ast::SetExpr::SetOperation { .. } => {
                return Err(unsupported("UNION / INTERSECT / EXCEPT"));
            }
            _ => return Err(unsupported("this query form")),
        };
        let mut plan = self.select_body(select)?;
        let scope = self.source_scope(&plan)?;
        self.order_by(q, &scope, &mut plan)?;
        self.limits(q, &mut plan)?;
        self.lock_clauses(q, &mut plan)?;
        Ok(plan)
    }

    fn source_scope(&self, plan: &Select) -> Result<Scope> {
        let mut scope = Scope::default();
        for s in &plan.sources {
            match s {
                Source::Table { table, alias } => {
                    let t = self.catalog.must_get(table)?;
                    scope.push(alias.clone(), t.columns.iter().map(|c| c.name.clone()).collect());
                }
                Source::Series { alias, .. } => scope.push(alias.clone(), vec![alias.clone()]),
            }
        }
        Ok(scope)
    }

    fn select_body(&mut self, s: &ast::Select) -> Result<Select> {
        if s.distinct.is_some() {
            return Err(unsupported("DISTINCT"));
        }
        if s.into.is_some() || !s.lateral_views.is_empty() || s.qualify.is_some() {
            return Err(unsupported("this SELECT clause"));
        }
        let (sources, mut join_filter) = self.plan_from(&s.from)?;
        let mut plan = Select {
            widths: Vec::new(),
            sources,
            filter: None,
            projection: Vec::new(),
            grouped: false,
            group_by: Vec::new(),
            aggregates: Vec::new(),
            having: None,
            order_by: Vec::new(),
            limit: None,
            offset: None,
            locks: Vec::new(),
        };
        let scope = self.source_scope(&plan)?;
        plan.widths = scope.entries.iter().map(|e| e.columns.len()).collect();
        let mut no_aggs = AggContext { aggregates: Vec::new(), allowed: false };
        let join_on = match join_filter.take() {
            Some(on) => Some(self.expr(&on, &scope, &mut no_aggs)?),
            None => None,
        };
        let where_ = match &s.selection {
            Some(w) => Some(self.expr(w, &scope, &mut no_aggs)?),
            None => None,
        };
        plan.filter = match (join_on, where_) {
            (Some(a), Some(b)) => Some(Expr::Binary(BinOp::And, Box::new(a), Box::new(b))),
            (a, b) => a.or(b),
        };
        if let ast::GroupByExpr::Expressions(exprs, _) = &s.group_by {
            for e in exprs {
                plan.group_by.push(self.expr(e, &scope, &mut no_aggs)?);
            }
        } else {
            return Err(unsupported("GROUP BY ALL"));
        }
        let mut aggs = AggContext { aggregates: Vec::new(), allowed: true };
        plan.projection = self.projection(&s.projection, &scope, &mut aggs)?;
        if let Some(h) = &s.having {
            plan.having = Some(self.expr(h, &scope, &mut aggs)?);
        }
        plan.grouped =
            !aggs.aggregates.is_empty() || !plan.group_by.is_empty() || plan.having.is_some();
        plan.aggregates = aggs.aggregates;
        if plan.grouped {
            check_grouping(&plan)?;
        }
        Ok(plan)
    }

    fn plan_from(
        &mut self,
        from: &[ast::TableWithJoins],
    ) -> Result<(Vec<Source>, Option<ast::Expr>)> {
        let mut sources = Vec::new();
        let mut on = None;
        for twj in from {
            sources.push(self.table_factor(&twj.relation)?);
            for join in &twj.joins {
                use ast::JoinOperator as J;
                let constraint = match &join.join_operator {
                    J::Join(c) | J::Inner(c) => c,
                    J::CrossJoin(c) => c,
                    other => {
                        return Err(unsupported(
                            format!("join {other:?}")
                                .split('(')
                                .next()
                                .unwrap_or("join")
                                .to_string(),
                        ));
                    }
                };
                match constraint {
                    ast::JoinConstraint::On(e) => {
                        if on.is_some() {
                            return Err(unsupported("more than one JOIN … ON"));
                        }
                        on = Some(e.clone());
                    }
                    ast::JoinConstraint::None => {}
                    _ => return Err(unsupported("JOIN USING / NATURAL")),
                }
                sources.push(self.table_factor(&join.relation)?);
            }
        }
        if sources.len() > 2 {
            return Err(unsupported("more than two tables in FROM"));
        }
        Ok((sources, on))
    }

    fn table_factor(&mut self, f: &ast::TableFactor) -> Result<Source> {
        let ast::TableFactor::Table { name, alias, args, .. } = f else {
            return Err(unsupported("this FROM item (subquery or function)"));
        };
        let table = object_name(name)?;
        let alias_name = alias.as_ref().map(|a| ident(&a.name));
        if let Some(args) = args {
            if table != "generate_series" {
                return Err(unsupported(format!("function {table} in FROM")));
            }
            let mut exprs = Vec::new();
            let mut no_aggs = AggContext { aggregates: Vec::new(), allowed: false };
            for a in &args.args {
                exprs.push(self.function_arg(a, &Scope::default(), &mut no_aggs)?);
            }
            let [start, end] = <[Expr; 2]>::try_from(exprs)
                .map_err(|_| unsupported("generate_series with other than two arguments"))?;
            let alias = alias_name.unwrap_or_else(|| "generate_series".to_string());
            return Ok(Source::Series { start, end, alias });
        }
        self.catalog.must_get(&table)?;
        let alias = alias_name.unwrap_or_else(|| table.clone());
        Ok(Source::Table { table, alias })
    }

    fn projection(
        &mut self,
        items: &[ast::SelectItem],
        scope: &Scope,
        aggs: &mut AggContext,
    ) -> Result<Vec<(String, Expr)>> {
        let mut out = Vec::new();
        for item in items {
            match item {
                ast::SelectItem::UnnamedExpr(e) => {
                    out.push((output_name(e), self.expr(e, scope, aggs)?));
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    out.push((ident(alias), self.expr(expr, scope, aggs)?));
                }
                ast::SelectItem::Wildcard(_) => {
                    if scope.entries.is_empty() {
                        return Err(errinput!(
                            "42601",
                            "SELECT * with no tables specified is not valid"
                        ));
                    }
                    for e in &scope.entries {
                        for (i, c) in e.columns.iter().enumerate() {
                            out.push((c.clone(), Expr::Column(e.offset + i)));
                        }
                    }
                }
                ast::SelectItem::QualifiedWildcard(
                    ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    let name = object_name(n)?;
                    let e = scope.entries.iter().find(|e| e.name == name).ok_or_else(|| {
                        errinput!("42P01", "missing FROM-clause entry for table \"{name}\"")
                    })?;
                    for (i, c) in e.columns.iter().enumerate() {
                        out.push((c.clone(), Expr::Column(e.offset + i)));
                    }
                }
                other => return Err(unsupported(format!("select item {other}"))),
            }
        }
        Ok(out)
    }

    fn order_by(&mut self, q: &ast::Query, scope: &Scope, plan: &mut Select) -> Result<()> {
        let Some(ob) = &q.order_by else { return Ok(()) };
        let ast::OrderByKind::Expressions(items) = &ob.kind else {
            return Err(unsupported("ORDER BY ALL"));
        };
        for item in items {
            let desc = matches!(item.options.sort, Some(ast::OrderBySort::Desc));
            // PostgreSQL: NULLS LAST is the default for ASC, NULLS FIRST for DESC.
            let nulls_first = item.options.nulls_first.unwrap_or(desc);
            let key = self.order_key(&item.expr, scope, plan)?;
            plan.order_by.push((key, desc, nulls_first));
        }
        Ok(())
    }

    fn order_key(&mut self, e: &ast::Expr, scope: &Scope, plan: &mut Select) -> Result<OrderKey> {
        if let ast::Expr::Value(v) = e
            && let ast::Value::Number(n, _) = &v.value
        {
            let pos: usize =
                n.parse().map_err(|_| errinput!("42601", "non-integer constant in ORDER BY"))?;
            if pos == 0 || pos > plan.projection.len() {
                return Err(errinput!("42P10", "ORDER BY position {pos} is not in select list"));
            }
            return Ok(OrderKey::Output(pos - 1));
        }
        if let ast::Expr::Identifier(i) = e {
            let name = ident(i);
            if let Some(pos) = plan.projection.iter().position(|(n, _)| *n == name) {
                return Ok(OrderKey::Output(pos));
            }
        }
        let mut aggs =
            AggContext { aggregates: std::mem::take(&mut plan.aggregates), allowed: plan.grouped };
        let expr = self.expr(e, scope, &mut aggs)?;
        plan.aggregates = aggs.aggregates;
        Ok(OrderKey::Expr(expr))
    }

    fn limits(&mut self, q: &ast::Query, plan: &mut Select) -> Result<()> {
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        match &q.limit_clause {
            None => {}
            Some(ast::LimitClause::LimitOffset { limit, offset, limit_by }) => {
                if !limit_by.is_empty() {
                    return Err(unsupported("LIMIT BY"));
                }
                if let Some(l) = limit {
                    plan.limit = Some(self.expr(l, &Scope::default(), &mut none)?);
                }
                if let Some(o) = offset {
                    plan.offset = Some(self.expr(&o.value, &Scope::default(), &mut none)?);
                }
            }
            Some(_) => return Err(unsupported("LIMIT offset, count")),
        }
        Ok(())
    }

    fn lock_clauses(&mut self, q: &ast::Query, plan: &mut Select) -> Result<()> {
        for lock in &q.locks {
            let strength =
                self.strengths.get(self.next_strength).copied().unwrap_or(match lock.lock_type {
                    ast::LockType::Update => LockStrength::Update,
                    ast::LockType::Share => LockStrength::Share,
                });
            self.next_strength += 1;
            let mut sources = Vec::new();
            for (i, s) in plan.sources.iter().enumerate() {
                if let Source::Table { alias, .. } = s {
                    let wanted = match &lock.of {
                        Some(n) => object_name(n)? == *alias,
                        None => true,
                    };
                    if wanted {
                        sources.push(i);
                    }
                }
            }
            if let (Some(n), true) = (&lock.of, sources.is_empty()) {
                return Err(errinput!(
                    "42P01",
                    "relation \"{}\" in FOR UPDATE clause not found in FROM clause",
                    object_name(n)?
                ));
            }
            if plan.grouped {
                return Err(errinput!(
                    "0A000",
                    "FOR {strength:?} is not allowed with aggregate functions"
                ));
            }
            plan.locks.push(LockClause {
                strength,
                sources,
                nowait: matches!(lock.nonblock, Some(ast::NonBlock::Nowait)),
                skip_locked: matches!(lock.nonblock, Some(ast::NonBlock::SkipLocked)),
            });
        }
        Ok(())
    }

    // ---- INSERT / UPDATE / DELETE ----

    fn insert(&mut self, i: &ast::Insert) -> Result<Insert> {
        let ast::TableObject::TableName(name) = &i.table else {
            return Err(unsupported("INSERT INTO a table function"));
        };
        let table_name = object_name(name)?;
        let table = self.catalog.must_get(&table_name)?;
        let alias =
            i.table_alias.as_ref().map(|a| ident(&a.alias)).unwrap_or_else(|| table_name.clone());
        let columns: Vec<usize> = if i.columns.is_empty() {
            (0..table.columns.len()).collect()
        } else {
            let mut cols = Vec::new();
            for c in &i.columns {
                let n = object_name(c)?;
                let idx = table.column_index(&n).ok_or_else(|| {
                    errinput!("42703", "column \"{n}\" of relation \"{table_name}\" does not exist")
                })?;
                cols.push(idx);
            }
            cols
        };
        let source = match &i.source {
            None => InsertSource::Values(vec![Vec::new()]),
            Some(q) => self.insert_source(q, columns.len(), i.columns.is_empty())?,
        };
        // PostgreSQL: without a column list the targets are the first N columns, N being the
        // width of the VALUES rows or the SELECT; the missing trailing ones get defaults.
        let columns = match &source {
            InsertSource::Values(rows) if i.columns.is_empty() && i.source.is_some() => {
                columns[..rows.first().map_or(0, Vec::len)].to_vec()
            }
            InsertSource::Select(s) if i.columns.is_empty() => {
                columns[..s.projection.len()].to_vec()
            }
            _ => columns,
        };
        let on_conflict = match &i.on {
            None => None,
            Some(ast::OnInsert::OnConflict(oc)) => Some(self.on_conflict(oc, table, &alias)?),
            Some(_) => return Err(unsupported("ON DUPLICATE KEY")),
        };
        let returning = self.returning(&i.returning, &Scope::table(table, &alias))?;
        Ok(Insert { table: table_name, columns, source, on_conflict, returning })
    }

    /// `width`: the number of target columns; `implicit`: no column list was written, so
    /// fewer expressions than columns is allowed (the trailing columns get defaults).
    fn insert_source(
        &mut self,
        q: &ast::Query,
        width: usize,
        implicit: bool,
    ) -> Result<InsertSource> {
        if let ast::SetExpr::Values(values) = q.body.as_ref() {
            let mut rows = Vec::new();
            let mut none = AggContext { aggregates: Vec::new(), allowed: false };
            let first_len = values.rows.first().map_or(0, |r| r.len());
            for row in &values.rows {
                if row.len() != first_len {
                    return Err(errinput!("42601", "VALUES lists must all be the same length"));
                }
                if row.len() > width {
                    return Err(errinput!(
                        "42601",
                        "INSERT has more expressions than target columns"
                    ));
                }
                if row.len() < width && !implicit {
                    return Err(errinput!(
                        "42601",
                        "INSERT has more target columns than expressions"
                    ));
                }
                let mut planned = Vec::new();
                for e in row.iter() {
                    match e {
                        ast::Expr::Identifier(i)
                            if i.quote_style.is_none()
                                && i.value.eq_ignore_ascii_case("default") =>
                        {
                            planned.push(Expr::Default)
                        }
                        e => planned.push(self.expr(e, &Scope::default(), &mut none)?),
                    }
                }
                rows.push(planned);
            }
            return Ok(InsertSource::Values(rows));
        }
        let select = self.query(q)?;
        if select.projection.len() > width {
            return Err(errinput!("42601", "INSERT has more expressions than target columns"));
        }
        if select.projection.len() < width && !implicit {
            return Err(errinput!("42601", "INSERT has more target columns than expressions"));
        }
        Ok(InsertSource::Select(Box::new(select)))
    }

    fn on_conflict(
        &mut self,
        oc: &ast::OnConflict,
        table: &Table,
        alias: &str,
    ) -> Result<OnConflict> {
        let arbiter = match &oc.conflict_target {
            None => None,
            Some(ast::ConflictTarget::Columns { columns, predicate }) => {
                if predicate.is_some() {
                    return Err(unsupported("ON CONFLICT (…) WHERE"));
                }
                let mut cols = Vec::new();
                for c in columns {
                    let n = ident(c);
                    cols.push(
                        table
                            .column_index(&n)
                            .ok_or_else(|| errinput!("42703", "column \"{n}\" does not exist"))?,
                    );
                }
                cols.sort_unstable();
                let found = table.uniques.iter().position(|u| {
                    let mut uc = u.columns.clone();
                    uc.sort_unstable();
                    uc == cols
                });
                match found {
                    Some(i) => Some((false, i)),
                    None => {
                        return Err(errinput!(
                            "42P10",
                            "there is no unique or exclusion constraint matching the ON CONFLICT specification"
                        ));
                    }
                }
            }
            Some(ast::ConflictTarget::OnConstraint(n)) => {
                let name = object_name(n)?;
                if let Some(i) = table.uniques.iter().position(|u| u.name == name) {
                    Some((false, i))
                } else if let Some(i) = table.exclusions.iter().position(|x| x.name == name) {
                    Some((true, i))
                } else {
                    return Err(errinput!(
                        "42704",
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        table.name
                    ));
                }
            }
        };
        let update = match &oc.action {
            ast::OnConflictAction::DoNothing => None,
            ast::OnConflictAction::DoUpdate(du) => {
                match arbiter {
                    None => {
                        return Err(errinput!(
                            "42601",
                            "ON CONFLICT DO UPDATE requires inference specification or constraint name"
                        ));
                    }
                    Some((true, _)) => {
                        return Err(errinput!(
                            "42809",
                            "ON CONFLICT DO UPDATE not supported with exclusion constraints"
                        ));
                    }
                    Some((false, _)) => {}
                }
                let mut scope = Scope::table(table, alias);
                scope.excluded = Some(table.columns.iter().map(|c| c.name.clone()).collect());
                let sets = self.assignments(&du.assignments, table, &scope)?;
                let mut none = AggContext { aggregates: Vec::new(), allowed: false };
                let filter = match &du.selection {
                    Some(w) => Some(self.expr(w, &scope, &mut none)?),
                    None => None,
                };
                Some((sets, filter))
            }
        };
        Ok(OnConflict { arbiter, update })
    }

    fn assignments(
        &mut self,
        list: &[ast::Assignment],
        table: &Table,
        scope: &Scope,
    ) -> Result<Vec<(usize, Expr)>> {
        let mut sets = Vec::new();
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        for a in list {
            let ast::AssignmentTarget::ColumnName(n) = &a.target else {
                return Err(unsupported("tuple assignment"));
            };
            let name = object_name(n)?;
            let idx = table.column_index(&name).ok_or_else(|| {
                errinput!(
                    "42703",
                    "column \"{name}\" of relation \"{}\" does not exist",
                    table.name
                )
            })?;
            if table.columns[idx].generated.is_some() {
                return Err(errinput!("428C9", "column \"{name}\" can only be updated to DEFAULT"));
            }
            let value = match &a.value {
                ast::Expr::Identifier(i)
                    if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
                {
                    Expr::Default
                }
                v => self.expr(v, scope, &mut none)?,
            };
            sets.push((idx, value));
        }
        Ok(sets)
    }

    fn returning(
        &mut self,
        r: &Option<Vec<ast::SelectItem>>,
        scope: &Scope,
    ) -> Result<Vec<(String, Expr)>> {
        let Some(items) = r else { return Ok(Vec::new()) };
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        self.projection(items, scope, &mut none)
    }

    fn single_table(&self, twj: &ast::TableWithJoins) -> Result<(String, String)> {
        if !twj.joins.is_empty() {
            return Err(unsupported("joins in UPDATE / DELETE"));
        }
        let ast::TableFactor::Table { name, alias, args: None, .. } = &twj.relation else {
            return Err(unsupported("this UPDATE / DELETE target"));
        };
        let table = object_name(name)?;
        self.catalog.must_get(&table)?;
        let alias = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table.clone());
        Ok((table, alias))
    }

    fn update(&mut self, u: &ast::Update) -> Result<Update> {
        if u.from.is_some() {
            return Err(unsupported("UPDATE … FROM"));
        }
        let (name, alias) = self.single_table(&u.table)?;
        let table = self.catalog.must_get(&name)?;
        let scope = Scope::table(table, &alias);
        let sets = self.assignments(&u.assignments, table, &scope)?;
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        let filter = match &u.selection {
            Some(w) => Some(self.expr(w, &scope, &mut none)?),
            None => None,
        };
        let returning = self.returning(&u.returning, &scope)?;
        Ok(Update { table: name, sets, filter, returning })
    }

    fn delete(&mut self, d: &ast::Delete) -> Result<Delete> {
        if d.using.is_some() || !d.tables.is_empty() {
            return Err(unsupported("DELETE … USING"));
        }
        let from = match &d.from {
            ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
        };
        let [twj] = from.as_slice() else {
            return Err(unsupported("DELETE from several tables"));
        };
        let (name, alias) = self.single_table(twj)?;
        let table = self.catalog.must_get(&name)?;
        let scope = Scope::table(table, &alias);
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        let filter = match &d.selection {
            Some(w) => Some(self.expr(w, &scope, &mut none)?),
            None => None,
        };
        let returning = self.returning(&d.returning, &scope)?;
        Ok(Delete { table: name, filter, returning })
    }

    // ---- DDL ----

    fn create_table(&mut self, c: &ast::CreateTable) -> Result<Plan> {
        let name = object_name(&c.name)?;
        if c.query.is_some() {
            return Err(unsupported("CREATE TABLE AS"));
        }
        let mut table = Table {
            name: name.clone(),
            columns: Vec::new(),
            uniques: Vec::new(),
            exclusions: Vec::new(),
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            heap: Heap::default(),
        };
        for col in &c.columns {
            let type_name = col.data_type.to_string();
            let (ty, serial) = ColumnType::from_sql_name(&type_name)
                .ok_or_else(|| unsupported(format!("type {type_name}")))?;
            let cname = ident(&col.name);
            if table.column_index(&cname).is_some() {
                return Err(errinput!("42701", "column \"{cname}\" specified more than once"));
            }
            table.columns.push(Column {
                name: cname,
                ty,
                not_null: serial,
                default: None,
                serial_next: serial.then_some(1),
                generated: None,
            });
        }
        let scope = Scope::table(&table, &name);
        for (ci, col) in c.columns.iter().enumerate() {
            for opt in &col.options {
                self.column_option(&mut table, ci, opt, &scope)?;
            }
        }
        for tc in &c.constraints {
            self.table_constraint(&mut table, tc, &scope)?;
        }
        for u in &table.uniques {
            if u.primary {
                for &ci in &u.columns {
                    table.columns[ci].not_null = true;
                }
            }
        }
        table.heap.indexes = vec![Default::default(); table.uniques.len()];
        Ok(Plan::CreateTable(Box::new(table), c.if_not_exists))
    }

    fn column_option(
        &mut self,
        table: &mut Table,
        ci: usize,
        opt: &ast::ColumnOptionDef,
        scope: &Scope,
    ) -> Result<()> {
        let cname = table.columns[ci].name.clone();
        let explicit = opt.name.as_ref().map(ident);
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        match &opt.option {
            ast::ColumnOption::Null => table.columns[ci].not_null = false,
            ast::ColumnOption::NotNull => table.columns[ci].not_null = true,
            ast::ColumnOption::Default(e) => {
                table.columns[ci].default = Some(self.expr(e, &Scope::default(), &mut none)?);
            }
            ast::ColumnOption::PrimaryKey(_) => {
                let name = explicit.unwrap_or_else(|| format!("{}_pkey", table.name));
                table.uniques.insert(0, UniqueIndex { name, columns: vec![ci], primary: true });
            }
            ast::ColumnOption::Unique(_) => {
                let name = explicit
                    .unwrap_or_else(|| catalog::generated_name(&table.name, &[&cname], "key"));
                table.uniques.push(UniqueIndex { name, columns: vec![ci], primary: false });
            }
            ast::ColumnOption::ForeignKey(fk) => {
                let name = explicit
                    .unwrap_or_else(|| catalog::generated_name(&table.name, &[&cname], "fkey"));
                let fk = self.foreign_key(table, name, vec![ci], fk)?;
                table.foreign_keys.push(fk);
            }
            ast::ColumnOption::Check(ck) => {
                let name = explicit
                    .unwrap_or_else(|| catalog::generated_name(&table.name, &[&cname], "check"));
                let expr = self.expr(&ck.expr, scope, &mut none)?;
                table.checks.push(Check { name, expr });
            }
            ast::ColumnOption::Generated { generation_expr: Some(e), .. } => {
                table.columns[ci].generated = Some(self.expr(e, scope, &mut none)?);
            }
            other => return Err(unsupported(format!("column option {other}"))),
        }
        Ok(())
    }

    fn column_list(&self, table: &Table, cols: impl Iterator<Item = String>) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for n in cols {
            out.push(
                table.column_index(&n).ok_or_else(|| {
                    errinput!("42703", "column \"{n}\" named in key does not exist")
                })?,
            );
        }
        Ok(out)
    }

    fn index_columns(&self, table: &Table, cols: &[ast::IndexColumn]) -> Result<Vec<usize>> {
        let mut names = Vec::new();
        for c in cols {
            match &c.column.expr {
                ast::Expr::Identifier(i) => names.push(ident(i)),
                other => return Err(unsupported(format!("index expression {other}"))),
            }
        }
        self.column_list(table, names.into_iter())
    }

    fn table_constraint(
        &mut self,
        table: &mut Table,
        tc: &ast::TableConstraint,
        scope: &Scope,
    ) -> Result<()> {
        use ast::TableConstraint as T;
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        match tc {
            T::PrimaryKey(pk) => {
                let columns = self.index_columns(table, &pk.columns)?;
                let name =
                    pk.name.as_ref().map(ident).unwrap_or_else(|| format!("{}_pkey", table.name));
                table.uniques.insert(0, UniqueIndex { name, columns, primary: true });
            }
            T::Unique(u) => {
                let columns = self.index_columns(table, &u.columns)?;
                let names: Vec<&str> =
                    columns.iter().map(|&i| table.columns[i].name.as_str()).collect();
                let name = u
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| catalog::generated_name(&table.name, &names, "key"));
                table.uniques.push(UniqueIndex { name, columns, primary: false });
            }
            T::ForeignKey(fk) => {
                let columns = self.column_list(table, fk.columns.iter().map(ident))?;
                let names: Vec<&str> =
                    columns.iter().map(|&i| table.columns[i].name.as_str()).collect();
                let name = fk
                    .name
                    .as_ref()
                    .map(ident)
                    .unwrap_or_else(|| catalog::generated_name(&table.name, &names, "fkey"));
                let fk = self.foreign_key(table, name, columns, fk)?;
                table.foreign_keys.push(fk);
            }
            T::Check(ck) => {
                let expr = self.expr(&ck.expr, scope, &mut none)?;
                let first = first_column(&expr).map(|i| table.columns[i].name.clone());
                let name = ck.name.as_ref().map(ident).unwrap_or_else(|| match first {
                    Some(c) => catalog::generated_name(&table.name, &[&c], "check"),
                    None => format!("{}_check", table.name),
                });
                table.checks.push(Check { name, expr });
            }
            T::Exclude(x) => self.exclusion(table, x, scope)?,
            other => return Err(unsupported(format!("table constraint {other}"))),
        }
        Ok(())
    }

    fn exclusion(
        &mut self,
        table: &mut Table,
        x: &ast::ExcludeConstraint,
        scope: &Scope,
    ) -> Result<()> {
        if let Some(m) = &x.index_method
            && !ident(m).eq_ignore_ascii_case("gist")
        {
            return Err(unsupported(format!("EXCLUDE USING {m}")));
        }
        let mut elements = Vec::new();
        for el in &x.elements {
            let col = self.index_columns(table, std::slice::from_ref(&el.column))?[0];
            let op = match &el.operator {
                ast::ExcludeConstraintOperator::Token(t) => t.clone(),
                ast::ExcludeConstraintOperator::PGOperator(p) => {
                    p.last().cloned().unwrap_or_default()
                }
            };
            let overlap = match op.as_str() {
                "=" => false,
                "&&" => true,
                other => return Err(unsupported(format!("exclusion operator {other}"))),
            };
            elements.push((col, overlap));
        }
        let mut none = AggContext { aggregates: Vec::new(), allowed: false };
        let filter = match &x.where_clause {
            Some(w) => Some(self.expr(w, scope, &mut none)?),
            None => None,
        };
        let names: Vec<&str> =
            elements.iter().map(|&(i, _)| table.columns[i].name.as_str()).collect();
        let name = x
            .name
            .as_ref()
            .map(ident)
            .unwrap_or_else(|| catalog::generated_name(&table.name, &names, "excl"));
        table.exclusions.push(Exclusion { name, elements, filter });
        Ok(())
    }

    fn foreign_key(
        &self,
        table: &Table,
        name: String,
        columns: Vec<usize>,
        fk: &ast::ForeignKeyConstraint,
    ) -> Result<ForeignKey> {
        for action in [&fk.on_delete, &fk.on_update].into_iter().flatten() {
            let text = action.to_string().to_ascii_uppercase();
            if text != "NO ACTION" && text != "RESTRICT" {
                return Err(unsupported(format!("ON DELETE/UPDATE {text}")));
            }
        }
        let parent_name = object_name(&fk.foreign_table)?;
        let parent =
            if parent_name == table.name { table } else { self.catalog.must_get(&parent_name)? };
        let parent_columns = if fk.referred_columns.is_empty() {
            parent.uniques.iter().find(|u| u.primary).map(|u| u.columns.clone()).ok_or_else(
                || {
                    errinput!(
                        "42830",
                        "there is no primary key for referenced table \"{parent_name}\""
                    )
                },
            )?
        } else {
            self.column_list(parent, fk.referred_columns.iter().map(ident))?
        };
        if !parent.uniques.iter().any(|u| u.columns == parent_columns) {
            return Err(errinput!(
                "42830",
                "there is no unique constraint matching given keys for referenced table \"{parent_name}\""
            ));
        }
        if parent_columns.len() != columns.len() {
            return Err(errinput!(
                "42830",
                "number of referencing and referenced columns for foreign key disagree"
            ));
        }
        Ok(ForeignKey { name, columns, parent: parent_name, parent_columns })
    }

    fn create_index(&mut self, c: &ast::CreateIndex) -> Result<Plan> {
        let table_name = object_name(&c.table_name)?;
        let table = self.catalog.must_get(&table_name)?;
        if c.predicate.is_some() {
            return Err(unsupported("partial unique index"));
        }
        let columns = self.index_columns(table, &c.columns)?;
        let name = match &c.name {
            Some(n) => object_name(n)?,
            None => {
                let names: Vec<&str> =
                    columns.iter().map(|&i| table.columns[i].name.as_str()).collect();
                catalog::generated_name(&table_name, &names, "idx")
            }
        };
        Ok(Plan::CreateUniqueIndex {
            table: table_name,
            index: UniqueIndex { name, columns, primary: false },
            if_not_exists: c.if_not_exists,
        })
    }

    // ---- expressions ----

    fn expr(&mut self, e: &ast::Expr, scope: &Scope, aggs: &mut AggContext) -> Result<Expr> {
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

    fn function_arg(
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

fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident(i),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map(ident).unwrap_or_default(),
        ast::Expr::Function(f) => {
            object_name(&f.name).map(|n| n.to_ascii_lowercase()).unwrap_or_default()
        }
        ast::Expr::Cast { expr, data_type, .. } => match expr.as_ref() {
            ast::Expr::Identifier(_)
            | ast::Expr::CompoundIdentifier(_)
            | ast::Expr::Function(_) => output_name(expr),
            _ => pg_type_label(data_type),
        },
        ast::Expr::Nested(inner) => output_name(inner),
        _ => "?column?".to_string(),
    }
}

/// The column label PostgreSQL gives `'x'::type`: the type's internal name.
fn pg_type_label(dt: &ast::DataType) -> String {
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

fn first_column(e: &Expr) -> Option<usize> {
    e.nodes()
        .into_iter()
        .filter_map(|x| match x {
            Expr::Column(i) => Some(*i),
            _ => None,
        })
        .min()
}

/// Every column a grouped SELECT's output reads directly must be grouped (42803).
fn check_grouping(plan: &Select) -> Result<()> {
    if plan.group_by.iter().any(|e| !matches!(e, Expr::Column(_))) {
        return Ok(());
    }
    let roots = plan.projection.iter().map(|(_, e)| e).chain(plan.having.iter());
    for root in roots {
        let ungrouped = root.nodes().into_iter().any(|x| match x {
            Expr::Column(i) => !plan.group_by.contains(&Expr::Column(*i)),
            _ => false,
        });
        if ungrouped {
            return Err(errinput!(
                "42803",
                "column in the select list must appear in the GROUP BY clause or be used in an \
                 aggregate function"
            ));
        }
    }
    Ok(())
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
