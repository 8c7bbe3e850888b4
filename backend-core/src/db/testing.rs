//! Throw-away PostgreSQL schemas for tests (and for `roomsim` commands that want isolation).
//!
//! WHAT: [`PgTestSchema::create`] reads `DATABASE_URL`; without it, it prints a notice and
//! returns `None` so the calling test can skip. With it, it creates a fresh schema
//! `t_<tag>_<pid>_<n>`, builds a [`PgDb`] whose every session has `search_path` set to that
//! schema, and applies the chosen schema variant. Tests therefore run in parallel without
//! seeing each other's tables.
//!
//! NOT MODELLED: cleanup of schemas left by a crashed run (a re-run with the same name drops
//! and recreates it).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Executor;

use super::DbError;
use super::pg::{PgDb, PgDbOptions, map_sqlx_error};
use super::schema::{SchemaVariant, migrate_pg, migrate_pg_variant};

static SCHEMA_COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct PgTestSchema {
    pub db: PgDb,
    pub schema: String,
    url: String,
}

impl PgTestSchema {
    /// A migrated schema of `variant`, or `None` (after a notice) when `DATABASE_URL` is unset.
    pub async fn create(tag: &str, variant: SchemaVariant) -> Option<PgTestSchema> {
        Self::create_with(tag, variant, 25).await
    }

    /// As [`create`](Self::create) with an explicit session count. Keep it modest: parallel
    /// tests share PostgreSQL's `max_connections` (100 by default).
    pub async fn create_with(
        tag: &str,
        variant: SchemaVariant,
        connections_max: u32,
    ) -> Option<PgTestSchema> {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("notice: DATABASE_URL is not set; skipping PostgreSQL test `{tag}`");
            return None;
        };
        let counter = SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed);
        let schema = format!("t_{tag}_{}_{counter}", std::process::id());
        match Self::try_create(&url, &schema, variant, connections_max).await {
            Ok(db) => Some(PgTestSchema { db, schema, url }),
            Err(error) => panic!("cannot prepare test schema {schema} at DATABASE_URL: {error}"),
        }
    }

    async fn try_create(
        url: &str,
        schema: &str,
        variant: SchemaVariant,
        connections_max: u32,
    ) -> Result<PgDb, DbError> {
        let admin = PgDb::connect(url, &options(None, 1)).await?;
        let mut conn = admin.pool().acquire().await.map_err(map_sqlx_error)?;
        // The extension is per database; create it once, serialised across parallel tests.
        let setup = format!(
            "BEGIN; SELECT pg_advisory_xact_lock(7212001); \
             CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public; COMMIT; \
             DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        );
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(setup))).await.map_err(map_sqlx_error)?;
        drop(conn);
        admin.pool().close().await;
        let db = PgDb::connect(url, &options(Some(schema.to_string()), connections_max)).await?;
        match variant {
            SchemaVariant::Guarded => migrate_pg(db.pool()).await?,
            SchemaVariant::Unguarded => migrate_pg_variant(db.pool(), variant).await?,
        }
        Ok(db)
    }

    /// Drops the schema (best effort).
    pub async fn drop_schema(self) {
        self.db.pool().close().await;
        if let Ok(admin) = PgDb::connect(&self.url, &options(None, 1)).await {
            let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
            let _ = admin.pool().execute(sqlx::AssertSqlSafe(sql)).await;
            admin.pool().close().await;
        }
    }
}

fn options(search_path: Option<String>, connections_max: u32) -> PgDbOptions {
    PgDbOptions {
        connections_max,
        acquire_timeout: Duration::from_secs(60),
        search_path,
        ..PgDbOptions::default()
    }
}
