//! Planning INSERT (VALUES / SELECT sources, ON CONFLICT), UPDATE and DELETE, with their
//! SET assignments and RETURNING lists.

use super::{
    AggContext, Delete, Insert, InsertSource, OnConflict, Planner, Scope, Update, ident,
    object_name, unsupported,
};
use crate::catalog::Table;
use crate::errinput;
use crate::error::Result;
use crate::sql::expr::Expr;
use sqlparser::ast;

impl<'a> Planner<'a> {
    pub(super) fn insert(&mut self, i: &ast::Insert) -> Result<Insert> {
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

    pub(super) fn update(&mut self, u: &ast::Update) -> Result<Update> {
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

    pub(super) fn delete(&mut self, d: &ast::Delete) -> Result<Delete> {
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
}
