//! Side effects of functions called while evaluating expressions: gen_random_uuid,
//! pg_sleep and the advisory-lock functions, recorded in the statement's `Replay` log so a
//! re-run after a wait returns the same results; and EXISTS subqueries.

use super::{ExecutionResult, Halt, SideEffects};
use crate::error::Error;
use crate::locks::{AdvisoryHold, Wait};
use crate::mvcc::{TxnId, examined_writer};
use crate::sql::expr::{self, Effects, ExistsPlan, Func, Row};
use crate::{Value, errinput};
use rand::RngCore;
use std::time::Duration;

impl Effects<Halt> for SideEffects<'_> {
    fn now_us(&mut self) -> i64 {
        self.context.now_us
    }

    fn call(&mut self, func: Func, args: &[Value]) -> ExecutionResult<Value> {
        if let Some(done) = self.replay.results.get(*self.call_index) {
            *self.call_index += 1;
            return Ok(done.clone());
        }
        let result = match func {
            Func::GenRandomUuid => {
                let mut bytes = [0u8; 16];
                self.rng.fill_bytes(&mut bytes);
                bytes[6] = (bytes[6] & 0x0f) | 0x40;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                Value::Uuid(u128::from_be_bytes(bytes))
            }
            Func::PgSleep => self.sleep(args)?,
            Func::Advisory(a) => self.advisory(a, args)?,
            other => {
                return Err(
                    Error::FeatureNotSupported(format!("{other:?} as a side effect")).into()
                );
            }
        };
        self.replay.results.push(result.clone());
        *self.call_index += 1;
        Ok(result)
    }

    fn exists(&mut self, plan: &ExistsPlan, outer: &[Value]) -> ExecutionResult<bool> {
        let (catalog, xids, snap, params) = (self.catalog, self.xids, self.snap, self.params);
        let t = catalog.must_get(&plan.table)?;
        if self.context.ssi {
            let scan_order: Vec<TxnId> = (t.heap.tuples.iter())
                .filter(|tuple| !tuple.dead)
                .filter_map(|tuple| examined_writer(xids, tuple, snap.visible(xids, tuple)))
                .collect();
            self.ssi.on_read(self.context.txn, &plan.table, &scan_order)?;
        }
        let mut row = Vec::with_capacity(plan.inner_width + outer.len());
        for tuple in &t.heap.tuples {
            if !snap.visible(xids, tuple) {
                continue;
            }
            row.clear();
            row.extend_from_slice(&tuple.values);
            row.extend_from_slice(outer);
            let hit = match &plan.filter {
                None => true,
                Some(f) => expr::is_true(&expr::eval(f, &Row::new(&row, params), self)?),
            };
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl SideEffects<'_> {
    fn sleep(&mut self, args: &[Value]) -> ExecutionResult<Value> {
        let seconds_us: i64 = match args.first() {
            Some(Value::Int(i)) => i.saturating_mul(1_000_000),
            Some(Value::Text(t)) => match t.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => (f * 1e6) as i64,
                _ => {
                    return Err(errinput!(
                        "22P02",
                        "invalid input syntax for type double precision: \"{t}\""
                    )
                    .into());
                }
            },
            _ => 0,
        };
        let until = match self.replay.sleep_until {
            Some(t) => t,
            None => {
                let t = self.now + Duration::from_micros(seconds_us.max(0) as u64);
                self.replay.sleep_until = Some(t);
                t
            }
        };
        if self.now < until {
            return Err(Halt::Block(Wait::Sleep(until)));
        }
        self.replay.sleep_until = None;
        Ok(Value::Text(String::new()))
    }

    fn advisory(&mut self, a: expr::AdvisoryFn, args: &[Value]) -> ExecutionResult<Value> {
        if a.unlock_all {
            self.locks.release_session(self.context.session);
            return Ok(Value::Text(String::new()));
        }
        let key = match args {
            [Value::Int(k)] => *k,
            [Value::Int(hi), Value::Int(lo)] => (hi << 32) | (lo & 0xffff_ffff),
            [Value::Null] | [_, Value::Null] | [Value::Null, _] => return Ok(Value::Null),
            _ => {
                return Err(
                    errinput!("42883", "function pg_advisory_lock(text) does not exist").into()
                );
            }
        };
        if a.unlock {
            return Ok(Value::Bool(self.locks.unlock_advisory(
                key,
                self.context.session,
                a.shared,
            )));
        }
        if !self.locks.advisory_blockers(key, self.context.session, a.shared).is_empty() {
            if a.try_only {
                return Ok(Value::Bool(false));
            }
            return Err(Halt::Block(Wait::Advisory { key, shared: a.shared }));
        }
        let xact = a.xact.then_some((self.context.txn, self.context.xid));
        self.locks.grant_advisory(
            key,
            AdvisoryHold { session: self.context.session, xact, shared: a.shared, count: 1 },
        );
        Ok(if a.try_only { Value::Bool(true) } else { Value::Text(String::new()) })
    }
}
