//! DDL: CREATE TABLE, CREATE UNIQUE INDEX (checking existing rows), DROP TABLE and TRUNCATE.

use super::{ExecutionResult, Executor, row_text};
use crate::catalog::Table;
use crate::error::Error;
use crate::mvcc::{self, Liveness, TupleId};
use crate::{QueryResult, Value, errinput};
use std::collections::BTreeMap;

impl<'a> Executor<'a> {
    pub(super) fn create_table(
        &mut self,
        t: &Table,
        if_not_exists: bool,
    ) -> ExecutionResult<QueryResult> {
        if self.db.catalog.tables.contains_key(&t.name) {
            if if_not_exists {
                return Ok(tag("CREATE TABLE", 0).retag("CREATE TABLE"));
            }
            return Err(errinput!("42P07", "relation \"{}\" already exists", t.name).into());
        }
        self.db.catalog.tables.insert(t.name.clone(), t.clone());
        self.db.catalog.schema_changed();
        Ok(tag("CREATE TABLE", 0).retag("CREATE TABLE"))
    }

    pub(super) fn create_unique_index(
        &mut self,
        table: &str,
        index: crate::catalog::UniqueIndex,
        if_not_exists: bool,
    ) -> ExecutionResult<QueryResult> {
        let xids = &self.db.xids;
        let t = self.db.catalog.must_get_mut(table)?;
        if t.uniques.iter().any(|u| u.name == index.name) {
            if if_not_exists {
                return Ok(tag("CREATE INDEX", 0).retag("CREATE INDEX"));
            }
            return Err(errinput!("42P07", "relation \"{}\" already exists", index.name).into());
        }
        let mut map: BTreeMap<Vec<Value>, Vec<TupleId>> = BTreeMap::new();
        for (tid, tuple) in t.heap.tuples.iter().enumerate() {
            let key: Vec<Value> = index.columns.iter().map(|&c| tuple.values[c].clone()).collect();
            if key.contains(&Value::Null) || tuple.dead {
                continue;
            }
            let live = matches!(mvcc::liveness(xids, tuple, 0), Liveness::Live);
            let entry = map.entry(key.clone()).or_default();
            if live
                && entry
                    .iter()
                    .any(|&o| matches!(mvcc::liveness(xids, &t.heap.tuples[o], 0), Liveness::Live))
            {
                return Err(Error::Constraint {
                    code: "23505",
                    message: format!("could not create unique index \"{}\"", index.name),
                    detail: Some(format!(
                        "Key ({})=({}) is duplicated.",
                        t.column_list(&index.columns),
                        row_text(&key)
                    )),
                    constraint: Some(index.name.clone()),
                }
                .into());
            }
            entry.push(tid);
        }
        t.uniques.push(index);
        t.heap.indexes.push(map);
        t.heap.touch();
        self.db.catalog.schema_changed();
        Ok(tag("CREATE INDEX", 0).retag("CREATE INDEX"))
    }

    pub(super) fn drop_tables(
        &mut self,
        names: &[String],
        if_exists: bool,
    ) -> ExecutionResult<QueryResult> {
        for n in names {
            if !self.db.catalog.tables.contains_key(n) && !if_exists {
                return Err(crate::catalog::undefined_table(n).into());
            }
        }
        for n in names {
            self.db.catalog.tables.remove(n);
        }
        self.db.catalog.schema_changed();
        Ok(tag("DROP TABLE", 0).retag("DROP TABLE"))
    }

    pub(super) fn truncate(&mut self, names: &[String]) -> ExecutionResult<QueryResult> {
        for n in names {
            self.db.catalog.must_get(n)?;
        }
        for n in names {
            let t = self.db.catalog.tables.get_mut(n).expect("checked above");
            t.heap.touch();
            t.heap.tuples.iter_mut().for_each(|tuple| tuple.dead = true);
            t.heap.indexes.iter_mut().for_each(|i| i.clear());
        }
        Ok(tag("TRUNCATE TABLE", 0).retag("TRUNCATE TABLE"))
    }
}

fn tag(verb: &str, n: usize) -> QueryResult {
    QueryResult { tag: format!("{verb} {n}"), columns: Vec::new(), rows: Vec::new() }
}

trait Retag {
    fn retag(self, t: &str) -> QueryResult;
}

impl Retag for QueryResult {
    fn retag(mut self, t: &str) -> QueryResult {
        self.tag = t.to_string();
        self
    }
}
