//! A short-TTL, in-process cache in front of any `Catalog`: positive answers only, so a row
//! committed a moment ago is visible at once; a changed or deleted row may be served until its
//! entry expires or a writer calls `invalidate`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use super::staging::{ClaimedRow, CleanupLock, LinkRequest, StagedUsage};
use super::{AttachmentRow, AttachmentStatus, Catalog, CatalogError, NewAttachment};
use crate::attachment::{ImageInfo, PreviewRow};
use chrono::{DateTime, Utc};

/// Enough for every attachment a busy instance serves within a TTL; bounded so that a scan
/// of many ids cannot grow memory without limit.
const MAX_ENTRIES: u64 = 100_000;

/// Cache counters, exported as `catalog_cache_hits_total` and `catalog_cache_misses_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

/// Entries are keyed by attachment id alone (the primary key, so one row per key); a lookup
/// is a hit only when the cached row answers it exactly: same route (status) and, for linked
/// reads, the same dialog. Keying by id lets `invalidate` drop an entry without a scan.
pub struct CachedCatalog<C> {
    inner: C,
    rows: Cache<String, AttachmentRow>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<C: Catalog> CachedCatalog<C> {
    pub fn new(inner: C, ttl: Duration) -> Self {
        CachedCatalog {
            inner,
            rows: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The cached row for `attachment_id` if `answers` accepts it, counting a hit or a miss.
    fn cached(
        &self,
        attachment_id: &str,
        answers: impl Fn(&AttachmentRow) -> bool,
    ) -> Option<AttachmentRow> {
        let found = self.peek(attachment_id, answers);
        if found.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Like `cached`, but a miss is not counted: the lookup that follows counts it.
    fn peek(
        &self,
        attachment_id: &str,
        answers: impl Fn(&AttachmentRow) -> bool,
    ) -> Option<AttachmentRow> {
        let row = self.rows.get(attachment_id).filter(|row| answers(row))?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(row)
    }

    /// Remember a found row; a miss is not remembered.
    fn remember(&self, found: &Option<AttachmentRow>) {
        if let Some(row) = found {
            self.rows.insert(row.id.clone(), row.clone());
        }
    }
}

/// Whether a cached row answers a linked read of `dialog_id`.
fn answers_linked(dialog_id: &str) -> impl Fn(&AttachmentRow) -> bool + '_ {
    move |row| row.status == AttachmentStatus::Linked && row.dialog_id.as_deref() == Some(dialog_id)
}

/// Whether a cached row answers a staged read.
fn answers_staged(row: &AttachmentRow) -> bool {
    row.status == AttachmentStatus::Uploaded
}

#[async_trait]
impl<C: Catalog> Catalog for CachedCatalog<C> {
    async fn find_linked(
        &self,
        dialog_id: &str,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        if let Some(row) = self.cached(attachment_id, answers_linked(dialog_id)) {
            return Ok(Some(row));
        }
        let found = self.inner.find_linked(dialog_id, attachment_id).await?;
        self.remember(&found);
        Ok(found)
    }

    async fn find_staged(
        &self,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        if let Some(row) = self.cached(attachment_id, answers_staged) {
            return Ok(Some(row));
        }
        let found = self.inner.find_staged(attachment_id).await?;
        self.remember(&found);
        Ok(found)
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        self.inner.ping().await
    }

    async fn migrate(&self) -> Result<(), CatalogError> {
        self.inner.migrate().await
    }

    async fn verify_schema(&self) -> Result<(), CatalogError> {
        self.inner.verify_schema().await
    }

    async fn upsert_dialog(
        &self,
        dialog_id: &str,
        owner_user_id: &str,
    ) -> Result<(), CatalogError> {
        self.inner.upsert_dialog(dialog_id, owner_user_id).await?;
        // Cached rows carry the dialog's owner; an owner change is rare (seeding), so drop
        // everything rather than index entries by dialog.
        self.rows.invalidate_all();
        Ok(())
    }

    async fn upsert_attachment(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        self.inner.upsert_attachment(row).await?;
        self.rows.invalidate(&row.id);
        Ok(())
    }

    async fn invalidate(&self, attachment_id: &str) {
        self.rows.invalidate(attachment_id);
        self.inner.invalidate(attachment_id).await;
    }

    fn invalidate_all(&self) {
        self.rows.invalidate_all();
        self.inner.invalidate_all();
    }

    fn peek_linked(&self, dialog_id: &str, attachment_id: &str) -> Option<AttachmentRow> {
        self.peek(attachment_id, answers_linked(dialog_id))
    }

    fn peek_staged(&self, attachment_id: &str) -> Option<AttachmentRow> {
        self.peek(attachment_id, answers_staged)
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(CacheStats {
            hits: self.hits(),
            misses: self.misses(),
        })
    }

    // Writers go straight through and drop what they changed from the cache.

    async fn insert_staged(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        self.inner.insert_staged(row).await?;
        self.rows.invalidate(&row.id);
        Ok(())
    }

    async fn delete_staged(
        &self,
        attachment_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, CatalogError> {
        let deleted = self.inner.delete_staged(attachment_id, user_id).await?;
        if deleted.is_some() {
            self.rows.invalidate(attachment_id);
        }
        Ok(deleted)
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<AttachmentRow>, CatalogError> {
        // Commit decides on these rows: always ask the database.
        self.inner.find_many(ids).await
    }

    async fn mark_commit_target(
        &self,
        user_id: &str,
        dialog_id: &str,
        ids: &[String],
    ) -> Result<(), CatalogError> {
        self.inner.mark_commit_target(user_id, dialog_id, ids).await
    }

    async fn link(&self, link: &LinkRequest) -> Result<bool, CatalogError> {
        let linked = self.inner.link(link).await?;
        for (id, _) in &link.rows {
            self.rows.invalidate(id);
        }
        Ok(linked)
    }

    async fn delete_many(&self, ids: &[String]) -> Result<Vec<ClaimedRow>, CatalogError> {
        let deleted = self.inner.delete_many(ids).await;
        // Dropped whatever the outcome: a statement that failed midway may still have
        // deleted some of them.
        for id in ids {
            self.rows.invalidate(id);
        }
        deleted
    }

    async fn claim_expired_staged(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedRow>, CatalogError> {
        let claimed = self.inner.claim_expired_staged(cutoff, limit).await?;
        for row in &claimed {
            self.rows.invalidate(&row.id);
        }
        Ok(claimed)
    }

    async fn try_cleanup_lock(&self) -> Result<Option<CleanupLock>, CatalogError> {
        self.inner.try_cleanup_lock().await
    }

    async fn find_previews(&self, attachment_id: &str) -> Result<Vec<PreviewRow>, CatalogError> {
        self.inner.find_previews(attachment_id).await
    }

    async fn save_previews(
        &self,
        attachment_id: &str,
        image: &ImageInfo,
        previews: &[PreviewRow],
    ) -> Result<(), CatalogError> {
        self.inner
            .save_previews(attachment_id, image, previews)
            .await?;
        // The row now carries its size and placeholder.
        self.rows.invalidate(attachment_id);
        Ok(())
    }

    async fn without_previews(
        &self,
        after_id: &str,
        limit: u32,
    ) -> Result<Vec<AttachmentRow>, CatalogError> {
        self.inner.without_previews(after_id, limit).await
    }

    async fn staged_usage(&self, user_id: &str) -> Result<StagedUsage, CatalogError> {
        self.inner.staged_usage(user_id).await
    }
}
