//! The catalog: tables, columns, constraints, sequences.
//!
//! WHAT THIS DOES
//! Holds each table's definition next to its heap ([`crate::mvcc::Heap`]). Constraint names
//! follow PostgreSQL's generated names (`t_pkey`, `t_a_b_key`, `t_col_check`, `t_col_fkey`,
//! `t_col_excl`) because error messages and the `constraint` field name them.
//!
//! NOT MODELLED
//! DDL is not transactional: CREATE/DROP/TRUNCATE take effect at once and survive ROLLBACK;
//! no table-level (heavyweight) locks, so DDL never blocks. No schemas (a `schema.` prefix is
//! ignored), no ALTER TABLE, no ON DELETE actions other than NO ACTION / RESTRICT.

use crate::mvcc::Heap;
use crate::sql::expr::Expr;
use crate::value::ColumnType;
use std::collections::BTreeMap;

/// A column.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub not_null: bool,
    /// DEFAULT expression, planned with no columns in scope.
    pub default: Option<Expr>,
    /// serial / bigserial: the next value its sequence hands out (never rolled back).
    pub serial_next: Option<i64>,
    /// GENERATED ALWAYS AS (expr) STORED, planned over the row's columns.
    pub generated: Option<Expr>,
}

/// A PRIMARY KEY or UNIQUE constraint (or CREATE UNIQUE INDEX).
#[derive(Clone, Debug)]
pub struct UniqueIndex {
    pub name: String,
    pub columns: Vec<usize>,
    pub primary: bool,
}

/// An EXCLUDE USING gist constraint: each element is a column and whether its operator is
/// `&&` (overlap) rather than `=`.
#[derive(Clone, Debug)]
pub struct Exclusion {
    pub name: String,
    pub elements: Vec<(usize, bool)>,
    pub filter: Option<Expr>,
}

/// A CHECK constraint.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub expr: Expr,
}

/// A FOREIGN KEY from this table to `parent`.
#[derive(Clone, Debug)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<usize>,
    pub parent: String,
    pub parent_columns: Vec<usize>,
}

/// A table definition and its data.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub uniques: Vec<UniqueIndex>,
    pub exclusions: Vec<Exclusion>,
    pub checks: Vec<Check>,
    pub foreign_keys: Vec<ForeignKey>,
    pub heap: Heap,
}

impl Table {
    /// The index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Column names joined as PostgreSQL prints them in DETAIL lines: `(a, b)`.
    pub fn column_list(&self, columns: &[usize]) -> String {
        let names: Vec<&str> = columns.iter().map(|&i| self.columns[i].name.as_str()).collect();
        names.join(", ")
    }

    /// Whether a column takes part in any index (unique or exclusion): an UPDATE changing
    /// it cannot be HOT and inserts new index entries.
    pub fn is_indexed_column(&self, column: usize) -> bool {
        self.is_key_column(column)
            || self.exclusions.iter().any(|x| x.elements.iter().any(|e| e.0 == column))
    }

    /// Whether a column takes part in any unique index (an UPDATE of it takes FOR UPDATE).
    pub fn is_key_column(&self, column: usize) -> bool {
        self.uniques.iter().any(|u| u.columns.contains(&column))
    }
}

/// Every table, by name. BTreeMap for determinism of iteration (e.g. FK checks).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub tables: BTreeMap<String, Table>,
    /// Set afresh by every schema change (CREATE TABLE / INDEX, DROP TABLE) from a
    /// process-wide counter, so a version names one schema in every engine of the process:
    /// cached plans made under another version are stale, and forks of one engine (which
    /// share a plan cache, see `Engine::fork`) can never mistake each other's schemas.
    pub schema_version: u64,
}

/// The next unused schema version of this process (0 is the empty catalog's).
static SCHEMA_VERSION_NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Catalog {
    /// Marks a schema change: a version no catalog of this process has had.
    pub fn schema_changed(&mut self) {
        self.schema_version =
            SCHEMA_VERSION_NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The table or 42P01.
    pub fn must_get(&self, name: &str) -> crate::error::Result<&Table> {
        self.tables.get(name).ok_or_else(|| undefined_table(name))
    }

    /// The table for writing, or 42P01.
    pub fn must_get_mut(&mut self, name: &str) -> crate::error::Result<&mut Table> {
        self.tables.get_mut(name).ok_or_else(|| undefined_table(name))
    }

    /// Every (child table, foreign key) referencing `parent`.
    pub fn referencing(&self, parent: &str) -> Vec<(String, ForeignKey)> {
        let mut out = Vec::new();
        for (name, t) in &self.tables {
            for fk in &t.foreign_keys {
                if fk.parent == parent {
                    out.push((name.clone(), fk.clone()));
                }
            }
        }
        out
    }
}

/// 42P01 relation does not exist.
pub fn undefined_table(name: &str) -> crate::error::Error {
    crate::errinput!("42P01", "relation \"{name}\" does not exist")
}

/// PostgreSQL's generated constraint name: `table_col1_col2_suffix`.
pub fn generated_name(table: &str, columns: &[&str], suffix: &str) -> String {
    let mut parts = vec![table.to_string()];
    parts.extend(columns.iter().map(|c| c.to_string()));
    parts.push(suffix.to_string());
    parts.join("_")
}
