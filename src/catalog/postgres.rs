//! PostgreSQL's side of the SQL catalog (`sql`): its pool, `timestamp(3)` values, migrations
//! and the advisory lock for cleanup. No queries here beyond the lock's own.
//!
//! `timestamp(3)` holds UTC without a zone, as Prisma writes it; values cross the wire as
//! `NaiveDateTime` and become `DateTime<Utc>` here.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, PgRow};
use sqlx::Row;

use super::pg_migrate;
use super::query::{self, Identifier, Placeholder};
use super::schema::{Column, Need, Table, TypeRules};
use super::sql::{Dialect, SqlCatalog};
use super::staging::{CleanupLock, LockGuard};
use super::CatalogError;
use crate::config::CatalogConfig;

/// A request waits at most this long for a pooled connection; past it the read fails fast
/// (`503`) instead of queueing behind a stuck database.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

// Run by `pg_migrate`, which keeps the bookkeeping out of the app's schema.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The advisory-lock key every instance uses for cleanup ("agw-cln" in ASCII).
const CLEANUP_LOCK_KEY: i64 = 0x0061_6777_2d63_6c6e;

/// The production engine, shared by every instance of a deployment.
pub struct PgDialect;

/// The catalog on PostgreSQL, as the rest of the crate names it.
pub type PgCatalog = SqlCatalog<PgDialect>;

impl Dialect for PgDialect {
    type Db = sqlx::Postgres;
    type Time = NaiveDateTime;

    const PLACEHOLDER: Placeholder = Placeholder::Dollar;

    /// A lazily connecting pool: nothing is dialled until the first query.
    async fn connect(cfg: &CatalogConfig) -> Result<PgPool, CatalogError> {
        let options = PgConnectOptions::from_str(cfg.database_url.expose())?
            .application_name("attachment-gateway");
        Ok(PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options))
    }

    async fn migrate(
        pool: &PgPool,
        bookkeeping: &Identifier,
        then: Option<&'static str>,
    ) -> Result<(), CatalogError> {
        pg_migrate::run(pool, &MIGRATOR, bookkeeping, then).await
    }

    const NULL_TIME: &'static str = "CAST(NULL AS TIMESTAMP)";

    const DEFAULT_DIALOG_SQL: &'static str = r#"CREATE TABLE IF NOT EXISTS "SupportDialog" (
    "id" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    CONSTRAINT "SupportDialog_pkey" PRIMARY KEY ("id")
)"#;

    /// Bound as `timestamp` (no zone): the UTC wall-clock time, cut to the stored precision so
    /// the database does not round it into the next millisecond.
    fn to_sql_time(t: DateTime<Utc>) -> NaiveDateTime {
        query::truncate_to_millis(t).naive_utc()
    }

    fn times(row: &PgRow) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), CatalogError> {
        let created_at: NaiveDateTime = row.try_get("created_at")?;
        let linked_at: Option<NaiveDateTime> = row.try_get("linked_at")?;
        Ok((created_at.and_utc(), linked_at.map(|t| t.and_utc())))
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    /// `current_schema()`: the schema the queries' unqualified names resolve to.
    async fn describe(pool: &PgPool, table: &str) -> Result<Option<Table>, CatalogError> {
        let columns: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable = 'YES' \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
        if columns.is_empty() {
            return Ok(None);
        }
        // Every index (the primary key's and unique constraints' included) as its column
        // list in key order; expression columns (attnum 0) drop out of the join.
        let indexes: Vec<(Vec<String>,)> = sqlx::query_as(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) \
             FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE c.relname = $1 AND n.nspname = current_schema() \
             GROUP BY i.indexrelid",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
        Ok(Some(Table {
            columns: columns
                .into_iter()
                .map(|(name, type_name, nullable)| Column {
                    name,
                    type_name,
                    nullable,
                })
                .collect(),
            indexes: indexes.into_iter().map(|(cols,)| cols).collect(),
        }))
    }

    async fn try_cleanup_lock(pool: &PgPool) -> Result<Option<CleanupLock>, CatalogError> {
        let mut conn = pool.acquire().await?;
        // A session-level lock on a connection of its own: if the pass is interrupted, the
        // connection is closed rather than pooled, and PostgreSQL frees the lock with it.
        conn.close_on_drop();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(CLEANUP_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        Ok(got.then(|| Box::new(PgLock(conn)) as CleanupLock))
    }
}

/// `information_schema.columns.data_type` spellings.
impl TypeRules for PgDialect {
    fn satisfies(need: Need, type_name: &str) -> bool {
        let text = matches!(type_name, "text" | "character varying");
        match need {
            Need::Text => text,
            // sqlx decodes `i64` from `int8` only.
            Need::BigInt => type_name == "bigint",
            Need::Integer => matches!(type_name, "smallint" | "integer" | "bigint"),
            // `NaiveDateTime` decodes `timestamp` only, not `timestamptz`.
            Need::Timestamp => type_name == "timestamp without time zone",
            // A Prisma enum column is `USER-DEFINED`: read through a cast, written as a literal.
            Need::Status => text || type_name == "USER-DEFINED",
            Need::Any => true,
        }
    }

    fn spelling(need: Need) -> &'static str {
        match need {
            Need::Text | Need::Status | Need::Any => "text",
            Need::BigInt => "bigint",
            Need::Integer => "integer",
            Need::Timestamp => "timestamp(3)",
        }
    }
}

struct PgLock(sqlx::pool::PoolConnection<sqlx::Postgres>);

#[async_trait]
impl LockGuard for PgLock {
    async fn release(self: Box<Self>) {
        let mut conn = self.0;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(CLEANUP_LOCK_KEY)
            .execute(&mut *conn)
            .await;
        if let Err(e) = unlocked {
            // The connection closes on drop, which frees the lock anyway.
            tracing::warn!(error = %e, "releasing the cleanup lock failed");
        }
    }
}
