//! Planning DDL: CREATE TABLE (columns, defaults, NOT NULL, CHECK, unique, exclusion and
//! foreign-key constraints) and CREATE UNIQUE INDEX.

use super::{AggContext, Plan, Planner, Scope, ident, object_name, unsupported};
use crate::catalog::{self, Check, Column, Exclusion, ForeignKey, Table, UniqueIndex};
use crate::errinput;
use crate::error::Result;
use crate::mvcc::Heap;
use crate::sql::expr::Expr;
use crate::value::ColumnType;
use sqlparser::ast;

impl<'a> Planner<'a> {
    pub(super) fn create_table(&mut self, c: &ast::CreateTable) -> Result<Plan> {
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

    pub(super) fn create_index(&mut self, c: &ast::CreateIndex) -> Result<Plan> {
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
