//! Planning SELECT: FROM sources and joins, the projection, WHERE / GROUP BY / HAVING,
//! ORDER BY, LIMIT / OFFSET and row-lock clauses (FOR UPDATE …).

use super::{
    AggContext, LockClause, OrderKey, Planner, Scope, Select, Source, expressions::pg_type_label,
    ident, object_name, unsupported,
};
use crate::errinput;
use crate::error::Result;
use crate::sql::LockStrength;
use crate::sql::expr::{BinOp, Expr};
use sqlparser::ast;

impl<'a> Planner<'a> {
    pub(super) fn query(&mut self, q: &ast::Query) -> Result<Select> {
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

    pub(super) fn table_factor(&mut self, f: &ast::TableFactor) -> Result<Source> {
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

    pub(super) fn projection(
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
