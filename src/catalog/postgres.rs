//! The PostgreSQL catalog: a sqlx pool and the shared SQL of `query`. Owns no caching (see
//! `cache`) and no schema beyond `migrations/postgres`.
//!
//! `timestamp(3)` holds UTC without a zone, as Prisma writes it; values cross the wire as
//! `NaiveDateTime` and become `DateTime<Utc>` here.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::query::{self, Identifier, Placeholder, Queries, RawRow};
use super::staging::{self, ClaimedRow, CleanupLock, LinkRequest, LockGuard};
use super::{AttachmentRow, Catalog, CatalogError, NewAttachment};
use crate::config::CatalogConfig;

/// A request waits at most this long for a pooled connection; past it the read fails fast
/// (`503`) instead of queueing behind a stuck database.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgCatalog {
    pool: PgPool,
    sql: Queries,
}

impl PgCatalog {
    /// A lazily connecting pool: nothing is dialled until the first query. Await it on the
    /// runtime that will drive the pool.
    pub async fn connect(cfg: &CatalogConfig) -> Result<Self, CatalogError> {
        let options = PgConnectOptions::from_str(cfg.database_url.expose())?
            .application_name("attachment-gateway");
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Self::with_pool(pool, &cfg.dialog_table, &cfg.dialog_owner_column)
    }

    /// A catalog over an existing pool (tests, tools).
    pub fn with_pool(
        pool: PgPool,
        dialog_table: &str,
        owner_column: &str,
    ) -> Result<Self, CatalogError> {
        let table = Identifier::new("dialog_table", dialog_table)?;
        let owner = Identifier::new("dialog_owner_column", owner_column)?;
        Ok(PgCatalog {
            pool,
            sql: Queries::new(&table, &owner, Placeholder::Dollar),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn decode(row: &PgRow) -> Result<AttachmentRow, CatalogError> {
    let created_at: NaiveDateTime = row.try_get("created_at")?;
    let linked_at: Option<NaiveDateTime> = row.try_get("linked_at")?;
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
        created_at: created_at.and_utc(),
        linked_at: linked_at.map(|t| t.and_utc()),
        owner: row.try_get("owner")?,
    }
    .check()
}

/// Bound as `timestamp` (no zone): the UTC wall-clock time, cut to the stored precision so
/// the database does not round it into the next millisecond.
fn to_sql_time(t: DateTime<Utc>) -> NaiveDateTime {
    query::truncate_to_millis(t).naive_utc()
}

#[async_trait]
impl Catalog for PgCatalog {
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
        // sqlx serializes concurrent migrators with an advisory lock and records what ran in
        // `_sqlx_migrations`, so several instances may start at once.
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
            .bind(to_sql_time(row.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_staged(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        sqlx::query(&staging::sql(Placeholder::Dollar).insert_staged)
            .bind(&row.id)
            .bind(&row.storage_path)
            .bind(&row.mime_type)
            .bind(query::size_to_sql(&row.id, row.size_bytes)?)
            .bind(&row.original_name)
            .bind(&row.created_by_user_id)
            .bind(to_sql_time(row.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_staged(
        &self,
        attachment_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query(&staging::sql(Placeholder::Dollar).delete_staged)
            .bind(attachment_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("storage_path")).transpose()?)
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<AttachmentRow>, CatalogError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(staging::MAX_IDS_PER_QUERY) {
            let text =
                staging::sql(Placeholder::Dollar).find_many(Placeholder::Dollar, chunk.len());
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
            let sql = staging::sql(Placeholder::Dollar);
            let text = sql.mark_commit_target(Placeholder::Dollar, chunk.len());
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
            let done = sqlx::query(&staging::sql(Placeholder::Dollar).link_one)
                .bind(&link.dialog_id)
                .bind(&link.message_id)
                .bind(path)
                .bind(to_sql_time(link.linked_at))
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
        let rows = sqlx::query(&staging::sql(Placeholder::Dollar).claim_expired)
            .bind(to_sql_time(cutoff))
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
        let mut conn = self.pool.acquire().await?;
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

/// The advisory-lock key every instance uses for cleanup ("agw-cln" in ASCII).
const CLEANUP_LOCK_KEY: i64 = 0x0061_6777_2d63_6c6e;

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
