//! SQLite's side of the SQL catalog (`sql`) for the embedded default and single-box installs:
//! one database file in WAL mode, millisecond timestamps, migrations and an in-process cleanup
//! lock. No queries here.
//!
//! Timestamps are stored as INTEGER milliseconds since the Unix epoch (UTC), which sorts
//! correctly and round-trips millisecond precision exactly (`migrations/sqlite`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteRow, SqliteSynchronous,
};
use sqlx::Row;

use super::query::{Identifier, Placeholder};
use super::schema::{Column, Need, Table, TypeRules};
use super::sql::{Dialect, SqlCatalog};
use super::staging::{CleanupLock, LockGuard};
use super::CatalogError;
use crate::config::CatalogConfig;

/// As for PostgreSQL: fail a read fast rather than queue behind a stuck pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// A writer holds the file lock briefly; readers in WAL mode never wait for it, writers wait
/// this long before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The embedded engine: one file, one instance.
pub struct SqliteDialect;

/// The catalog on SQLite, as the rest of the crate names it.
pub type SqliteCatalog = SqlCatalog<SqliteDialect>;

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;
    type Time = i64;

    const PLACEHOLDER: Placeholder = Placeholder::Question;

    /// Open (creating if missing, along with its directory) the database file of
    /// `cfg.database_url`, at once.
    async fn connect(cfg: &CatalogConfig) -> Result<SqlitePool, CatalogError> {
        let url = cfg.database_url.expose();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL makes NORMAL durable across application crashes; only a power loss may drop
            // the last commits, which for staged uploads is a retry, not a corruption.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        if !in_memory {
            create_parent_dir(options.get_filename()).await?;
        }
        let mut pool = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // An in-memory database lives only while a connection holds it open.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        Ok(pool.connect_with(options).await?)
    }

    /// sqlx's own migrator and `_sqlx_migrations`: SQLite has no schemas to keep it apart,
    /// and the embedded catalog is the gateway's alone.
    async fn migrate(
        pool: &SqlitePool,
        _bookkeeping: &Identifier,
        then: Option<&'static str>,
    ) -> Result<(), CatalogError> {
        MIGRATOR.run(pool).await?;
        if let Some(sql) = then {
            sqlx::raw_sql(sql).execute(pool).await?;
        }
        Ok(())
    }

    /// `0001_catalog.sql` creates it already, and stays as it is so that existing files keep
    /// their recorded checksum.
    const NULL_TIME: &'static str = "CAST(NULL AS INTEGER)";

    const DEFAULT_DIALOG_SQL: &'static str = r#"CREATE TABLE IF NOT EXISTS "SupportDialog" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "userId" TEXT NOT NULL,
    "createdAt" INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
)"#;

    fn to_sql_time(t: DateTime<Utc>) -> i64 {
        to_millis(t)
    }

    fn times(row: &SqliteRow) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), CatalogError> {
        let created_at = time_column(row, "created_at")?
            .ok_or_else(|| CatalogError::CorruptRow("createdAt is NULL".to_owned()))?;
        Ok((created_at, time_column(row, "linked_at")?))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn describe(pool: &SqlitePool, table: &str) -> Result<Option<Table>, CatalogError> {
        let columns: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\" = 0, pk FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
        if columns.is_empty() {
            return Ok(None);
        }
        let keyed: Vec<(String, String)> = sqlx::query_as(
            "SELECT il.name, ii.name FROM pragma_index_list(?1) il \
             JOIN pragma_index_info(il.name) ii ORDER BY il.seq, ii.seqno",
        )
        .bind(table)
        .fetch_all(pool)
        .await?;
        let mut indexes: Vec<(String, Vec<String>)> = Vec::new();
        for (index, column) in keyed {
            match indexes.last_mut() {
                Some((name, cols)) if *name == index => cols.push(column),
                _ => indexes.push((index, vec![column])),
            }
        }
        // An INTEGER PRIMARY KEY is the rowid and has no index of its own in the list.
        let mut pk: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.3 > 0)
            .map(|c| (c.3, c.0.clone()))
            .collect();
        pk.sort();
        let mut indexes: Vec<Vec<String>> = indexes.into_iter().map(|(_, cols)| cols).collect();
        if !pk.is_empty() {
            indexes.push(pk.into_iter().map(|(_, name)| name).collect());
        }
        Ok(Some(Table {
            columns: columns
                .into_iter()
                .map(|(name, type_name, nullable, _)| Column {
                    name,
                    type_name,
                    nullable,
                })
                .collect(),
            indexes,
        }))
    }

    async fn try_cleanup_lock(_pool: &SqlitePool) -> Result<Option<CleanupLock>, CatalogError> {
        // SQLite serves one instance: an in-process lock keeps the background pass from
        // overlapping itself. A `cleanup --once` run beside it is still safe, only redundant:
        // every claim is an atomic DELETE and deleting an object twice is not an error.
        static PASS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
            std::sync::LazyLock::new(Default::default);
        Ok(PASS
            .clone()
            .try_lock_owned()
            .ok()
            .map(|held| Box::new(LocalLock { _held: held }) as CleanupLock))
    }
}

/// SQLite's type affinity rules (datatype3 §3.1) on the declared type; timestamps are
/// INTEGER milliseconds.
impl TypeRules for SqliteDialect {
    fn satisfies(need: Need, type_name: &str) -> bool {
        let t = type_name.to_ascii_uppercase();
        let integer = t.contains("INT");
        let text = !integer && ["CHAR", "CLOB", "TEXT"].iter().any(|a| t.contains(a));
        match need {
            Need::Text | Need::Status => text,
            Need::BigInt | Need::Integer | Need::Timestamp => integer,
            Need::Any => true,
        }
    }

    fn spelling(need: Need) -> &'static str {
        match need {
            Need::Text | Need::Status | Need::Any => "TEXT",
            Need::BigInt | Need::Integer => "INTEGER",
            Need::Timestamp => "INTEGER (milliseconds since the epoch)",
        }
    }
}

async fn create_parent_dir(file: &std::path::Path) -> Result<(), CatalogError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| CatalogError::Database(sqlx::Error::Io(e))),
        _ => Ok(()),
    }
}

/// Milliseconds since the Unix epoch, as the schema stores them.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of `to_millis`; `None` outside chrono's range.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

fn time_column(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, CatalogError> {
    let Some(ms) = row.try_get::<Option<i64>, _>(column)? else {
        return Ok(None);
    };
    from_millis(ms)
        .map(Some)
        .ok_or_else(|| CatalogError::CorruptRow(format!("{column} out of range: {ms}")))
}

/// Held for the pass; dropping it frees the lock.
struct LocalLock {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

#[async_trait]
impl LockGuard for LocalLock {
    async fn release(self: Box<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn millis_round_trip() {
        let t = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap()
            + chrono::Duration::milliseconds(999);
        assert_eq!(to_millis(t), 1_709_251_199_999);
        assert_eq!(from_millis(to_millis(t)), Some(t));
        assert_eq!(from_millis(i64::MAX), None);
    }
}
