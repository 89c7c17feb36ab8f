//! The SQLite catalog for the embedded default and single-box installs: one database file
//! in WAL mode, the shared SQL of `query`. Owns no caching (see `cache`).
//!
//! Timestamps are stored as INTEGER milliseconds since the Unix epoch (UTC), which sorts
//! correctly and round-trips millisecond precision exactly (`migrations/sqlite`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use super::query::{self, Identifier, Placeholder, Queries, RawRow};
use super::staging::{self, ClaimedRow, CleanupLock, LinkRequest, LockGuard};
use super::{AttachmentRow, Catalog, CatalogError, NewAttachment};
use crate::config::CatalogConfig;

/// As for PostgreSQL: fail a read fast rather than queue behind a stuck pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// A writer holds the file lock briefly; readers in WAL mode never wait for it, writers wait
/// this long before `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteCatalog {
    pool: SqlitePool,
    sql: Queries,
}

impl SqliteCatalog {
    /// Open (creating if missing, along with its directory) the database file of
    /// `cfg.database_url`. Await it on the runtime that will drive the pool.
    pub async fn connect(cfg: &CatalogConfig) -> Result<Self, CatalogError> {
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
        let pool = pool.connect_with(options).await?;
        Self::with_pool(pool, &cfg.dialog_table, &cfg.dialog_owner_column)
    }

    /// A catalog over an existing pool (tests, tools).
    pub fn with_pool(
        pool: SqlitePool,
        dialog_table: &str,
        owner_column: &str,
    ) -> Result<Self, CatalogError> {
        let table = Identifier::new("dialog_table", dialog_table)?;
        let owner = Identifier::new("dialog_owner_column", owner_column)?;
        Ok(SqliteCatalog {
            pool,
            sql: Queries::new(&table, &owner, Placeholder::Question),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
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

fn decode(row: &SqliteRow) -> Result<AttachmentRow, CatalogError> {
    let created_at = time_column(row, "created_at")?
        .ok_or_else(|| CatalogError::CorruptRow("createdAt is NULL".to_owned()))?;
    RawRow {
        id: row.try_get("id")?,
        dialog_id: row.try_get("dialog_id")?,
        message_id: row.try_get("message_id")?,
        storage_path: row.try_get("storage_path")?,
        mime_type: row.try_get("mime_type")?,
        size_bytes: row.try_get("size_bytes")?,
        original_name: row.try_get("original_name")?,
        created_by_user_id: row.try_get("created_by_user_id")?,
        status: row.try_get("status")?,
        created_at,
        linked_at: time_column(row, "linked_at")?,
        owner: row.try_get("owner")?,
    }
    .check()
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn find_linked(
        &self,
        dialog_id: &str,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        let row = sqlx::query(&self.sql.find_linked)
            .bind(attachment_id)
            .bind(dialog_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn find_staged(
        &self,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        let row = sqlx::query(&self.sql.find_staged)
            .bind(attachment_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), CatalogError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn upsert_dialog(
        &self,
        dialog_id: &str,
        owner_user_id: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(&self.sql.upsert_dialog)
            .bind(dialog_id)
            .bind(owner_user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upsert_attachment(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        sqlx::query(self.sql.upsert_attachment(row.status))
            .bind(&row.id)
            .bind(&row.dialog_id)
            .bind(&row.message_id)
            .bind(&row.storage_path)
            .bind(&row.mime_type)
            .bind(query::size_to_sql(&row.id, row.size_bytes)?)
            .bind(&row.original_name)
            .bind(&row.created_by_user_id)
            .bind(to_millis(row.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_staged(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        sqlx::query(&staging::sql(Placeholder::Question).insert_staged)
            .bind(&row.id)
            .bind(&row.storage_path)
            .bind(&row.mime_type)
            .bind(query::size_to_sql(&row.id, row.size_bytes)?)
            .bind(&row.original_name)
            .bind(&row.created_by_user_id)
            .bind(to_millis(row.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_staged(
        &self,
        attachment_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query(&staging::sql(Placeholder::Question).delete_staged)
            .bind(attachment_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("storage_path")).transpose()?)
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<AttachmentRow>, CatalogError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(staging::MAX_IDS_PER_QUERY) {
            let sql = staging::sql(Placeholder::Question);
            let text = sql.find_many(Placeholder::Question, chunk.len());
            let mut q = sqlx::query(&text);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                found.push(decode(&row)?);
            }
        }
        Ok(found)
    }

    async fn mark_commit_target(
        &self,
        user_id: &str,
        dialog_id: &str,
        ids: &[String],
    ) -> Result<(), CatalogError> {
        for chunk in ids.chunks(staging::MAX_IDS_PER_QUERY) {
            let sql = staging::sql(Placeholder::Question);
            let text = sql.mark_commit_target(Placeholder::Question, chunk.len());
            let mut q = sqlx::query(&text).bind(dialog_id).bind(user_id);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn link(&self, link: &LinkRequest) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        for (id, path) in &link.rows {
            let done = sqlx::query(&staging::sql(Placeholder::Question).link_one)
                .bind(&link.dialog_id)
                .bind(&link.message_id)
                .bind(path)
                .bind(to_millis(link.linked_at))
                .bind(id)
                .bind(&link.user_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_expired_staged(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedRow>, CatalogError> {
        let rows = sqlx::query(&staging::sql(Placeholder::Question).claim_expired)
            .bind(to_millis(cutoff))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedRow {
                    id: r.try_get("id")?,
                    storage_path: r.try_get("storage_path")?,
                    dialog_id: r.try_get("dialog_id")?,
                })
            })
            .collect()
    }

    async fn try_cleanup_lock(&self) -> Result<Option<CleanupLock>, CatalogError> {
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
