//! The attachment catalog: the `ChatAttachment` table and its dialog's owner, one indexed query
//! per read. PostgreSQL in production, SQLite for the embedded default; a short-TTL cache sits
//! in front (`cache`).

pub mod absent;
pub mod cache;
pub mod legacy;
pub mod pg_migrate;
pub mod postgres;
pub mod previews;
pub mod query;
pub mod schema;
pub mod sql;
pub mod sqlite;
pub mod staging;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::attachment::{ImageInfo, PreviewRow, SharedRow};
use crate::config::{CatalogConfig, DatabaseKind};

pub use crate::attachment::{AttachmentRow, AttachmentStatus, NewAttachment};
pub use cache::{CacheStats, CachedCatalog};
pub use postgres::PgCatalog;
pub use sqlite::SqliteCatalog;
pub use staging::{ClaimedRow, CleanupLock, LinkRequest, StagedUsage};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    CorruptRow(String),
    #[error("{0}")]
    Schema(schema::SchemaProblems),
}

/// Read side used by the request path, plus the few writes that seeding needs.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// A `LINKED` attachment of `dialog_id`, with the dialog's owner.
    async fn find_linked(
        &self,
        dialog_id: &str,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError>;
    /// An `UPLOADED` (staged) attachment by id.
    async fn find_staged(&self, attachment_id: &str)
        -> Result<Option<AttachmentRow>, CatalogError>;
    /// Cheap liveness query for `/readyz`.
    async fn ping(&self) -> Result<(), CatalogError>;
    /// Apply `migrations/` (idempotent), then `verify_schema`.
    async fn migrate(&self) -> Result<(), CatalogError>;
    /// Check that the tables have every column, type, nullability and index the gateway's
    /// queries rely on, whoever created them: `CatalogError::Schema` names each mismatch.
    async fn verify_schema(&self) -> Result<(), CatalogError>;
    /// Insert or update a dialog row of the configured dialog table.
    async fn upsert_dialog(&self, dialog_id: &str, owner_user_id: &str)
        -> Result<(), CatalogError>;
    /// Insert or replace an attachment row.
    async fn upsert_attachment(&self, row: &NewAttachment) -> Result<(), CatalogError>;
    /// Forget anything cached about `attachment_id`; writers (commit, discard, cleanup) call it
    /// after changing the row. A catalog without a cache has nothing to do.
    async fn invalidate(&self, _attachment_id: &str) {}
    /// Forget everything cached: deletes made elsewhere may have been missed (`broadcast`).
    fn invalidate_all(&self) {}
    /// What `find_linked` would answer, when the in-process cache alone knows it (a row, or
    /// `Some(None)` for a remembered miss), without I/O: the request path asks this on its
    /// own thread before hopping to the I/O runtime. `None` when the cache does not know (a
    /// miss is counted by the lookup that follows, not here).
    fn peek_linked(
        &self,
        _dialog_id: &str,
        _attachment_id: &str,
    ) -> Option<Option<Arc<SharedRow>>> {
        None
    }
    /// `peek_linked` for `find_staged`.
    fn peek_staged(&self, _attachment_id: &str) -> Option<Option<Arc<SharedRow>>> {
        None
    }
    /// Hit and miss counts of the in-process cache, when there is one.
    fn cache_stats(&self) -> Option<CacheStats> {
        None
    }

    // The staged-upload life cycle (`upload`, `commit`, `cleanup`).

    /// Insert a freshly staged row (`UPLOADED`, no dialog); an existing id is an error.
    async fn insert_staged(&self, row: &NewAttachment) -> Result<(), CatalogError>;
    /// Delete the staged row `attachment_id` if `user_id` uploaded it; its `storagePath` when
    /// a row was deleted.
    async fn delete_staged(
        &self,
        attachment_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, CatalogError>;
    /// The rows of `ids` in any status (no dialog owner); missing ids are simply absent.
    async fn find_many(&self, ids: &[String]) -> Result<Vec<AttachmentRow>, CatalogError>;
    /// Record `dialog_id` on the user's staged rows among `ids` before their objects are
    /// copied, so that cleanup can remove a copy whose commit never finished.
    async fn mark_commit_target(
        &self,
        user_id: &str,
        dialog_id: &str,
        ids: &[String],
    ) -> Result<(), CatalogError>;
    /// Link every row of `link` in one transaction: `Ok(false)` (and nothing changed) when any
    /// of them is no longer a staged row of `link.user_id`.
    async fn link(&self, link: &LinkRequest) -> Result<bool, CatalogError>;
    /// Delete the rows of `ids` in any status (the app's delete, SPEC §4), with their preview
    /// rows; the deleted rows, for their objects. Missing ids are simply absent.
    async fn delete_many(&self, ids: &[String]) -> Result<Vec<ClaimedRow>, CatalogError>;
    /// Delete (claim) up to `limit` staged rows created before `cutoff`, returning them.
    async fn claim_expired_staged(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedRow>, CatalogError>;
    /// Become the one instance running a cleanup pass; `None` when another one is.
    async fn try_cleanup_lock(&self) -> Result<Option<CleanupLock>, CatalogError>;

    // Previews (SPEC §12).

    /// Every stored preview of `attachment_id` (any variant and format).
    async fn find_previews(&self, attachment_id: &str) -> Result<Vec<PreviewRow>, CatalogError>;
    /// Record an attachment's previews and what was learned of its image, in one transaction.
    async fn save_previews(
        &self,
        attachment_id: &str,
        image: &ImageInfo,
        previews: &[PreviewRow],
    ) -> Result<(), CatalogError>;
    /// Up to `limit` image rows (any status) that have no preview yet, with ids after
    /// `after_id`, in id order: a backfill walks them page by page.
    async fn without_previews(
        &self,
        after_id: &str,
        limit: u32,
    ) -> Result<Vec<AttachmentRow>, CatalogError>;
    /// How many staged uploads, and how many bytes, `user_id` holds now.
    async fn staged_usage(&self, user_id: &str) -> Result<StagedUsage, CatalogError>;
}

/// The catalog `cfg` describes: PostgreSQL or SQLite, behind the in-process cache unless
/// `cache_ttl` is zero.
///
/// Pools belong to the tokio runtime they are created on, so await this on the runtime that
/// will run the catalog's queries (the I/O runtime). PostgreSQL connects lazily: the gateway
/// starts while the database is away and `ping` (`/readyz`) reports it. SQLite opens (and
/// creates) its file at once.
pub async fn connect(cfg: &CatalogConfig) -> Result<Arc<dyn Catalog>, CatalogError> {
    match cfg.kind {
        DatabaseKind::Postgres => Ok(with_cache(PgCatalog::connect(cfg).await?, cfg)),
        DatabaseKind::Sqlite => Ok(with_cache(SqliteCatalog::connect(cfg).await?, cfg)),
    }
}

fn with_cache<C: Catalog + 'static>(catalog: C, cfg: &CatalogConfig) -> Arc<dyn Catalog> {
    if cfg.cache_ttl.is_zero() {
        Arc::new(catalog)
    } else {
        Arc::new(CachedCatalog::new(catalog, cfg.cache_ttl))
    }
}
