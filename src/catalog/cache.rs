//! A short-TTL, in-process cache in front of any `Catalog`: found rows, and (`absent`) the
//! lookups that found nothing, so that a true miss costs no more than a denial of a cached row.
//! Writes through this instance drop what they change at once (a staged or committed row is
//! visible here immediately); a write through another instance may be missed until the entry
//! expires or a writer calls `invalidate`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;

use super::absent::{AbsentCache, Lookup, Ticket};
use super::staging::{ClaimedRow, CleanupLock, LinkRequest, StagedUsage};
use super::{AttachmentRow, AttachmentStatus, Catalog, CatalogError, NewAttachment};
use crate::attachment::{ImageInfo, PreviewRow, SharedRow};
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
    /// Shared with the reads they answer (`SharedRow`): a hit clones an `Arc`, not a row.
    rows: Cache<String, Arc<SharedRow>>,
    absent: AbsentCache,
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
            absent: AbsentCache::new(ttl),
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

    /// What the cache knows `lookup` of `attachment_id` answers, counting a hit or a miss.
    fn cached(&self, attachment_id: &str, lookup: Lookup<'_>) -> Option<Option<Arc<SharedRow>>> {
        let found = self.peek(attachment_id, lookup);
        if found.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Like `cached`, but a miss is not counted: the lookup that follows counts it. A row that
    /// does not answer the lookup falls through to the database (it may have changed there).
    fn peek(&self, attachment_id: &str, lookup: Lookup<'_>) -> Option<Option<Arc<SharedRow>>> {
        let known = match self.rows.get(attachment_id) {
            Some(row) if answers(row.row(), lookup) => Some(Some(row)),
            _ if self.absent.knows_absent(attachment_id, lookup) => Some(None),
            _ => None,
        };
        if known.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        known
    }

    /// Ask the database, remembering its answer, a miss included, unless a writer touched
    /// the id meanwhile.
    async fn lookup<F, Q>(
        &self,
        attachment_id: &str,
        lookup: Lookup<'_>,
        query: Q,
    ) -> Result<Option<AttachmentRow>, CatalogError>
    where
        Q: FnOnce() -> F,
        F: std::future::Future<Output = Result<Option<AttachmentRow>, CatalogError>>,
    {
        if let Some(known) = self.cached(attachment_id, lookup) {
            return Ok(known.map(|shared| shared.row().clone()));
        }
        let ticket = self.absent.ticket(attachment_id);
        let found = query().await?;
        self.remember(attachment_id, lookup, &found, ticket);
        Ok(found)
    }

    fn remember(
        &self,
        attachment_id: &str,
        lookup: Lookup<'_>,
        found: &Option<AttachmentRow>,
        ticket: Ticket,
    ) {
        match found {
            Some(row) => {
                self.rows
                    .insert(row.id.clone(), SharedRow::new(row.clone()));
                if !self.absent.still_valid(ticket) {
                    self.rows.invalidate(&row.id);
                }
            }
            None => self.absent.remember(attachment_id, lookup, ticket),
        }
    }

    /// Drop everything known about `attachment_id`, after a write to it is durable.
    fn forget(&self, attachment_id: &str) {
        self.absent.forget(attachment_id);
        self.rows.invalidate(attachment_id);
    }
}

/// Whether a cached row answers `lookup`: a linked read of its own dialog, or a staged read.
fn answers(row: &AttachmentRow, lookup: Lookup<'_>) -> bool {
    match lookup {
        Lookup::Linked { dialog_id } => {
            row.status == AttachmentStatus::Linked && row.dialog_id.as_deref() == Some(dialog_id)
        }
        Lookup::Staged => row.status == AttachmentStatus::Uploaded,
    }
}

#[async_trait]
impl<C: Catalog> Catalog for CachedCatalog<C> {
    async fn find_linked(
        &self,
        dialog_id: &str,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        let lookup = Lookup::Linked { dialog_id };
        let query = || self.inner.find_linked(dialog_id, attachment_id);
        self.lookup(attachment_id, lookup, query).await
    }

    async fn find_staged(
        &self,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        let query = || self.inner.find_staged(attachment_id);
        self.lookup(attachment_id, Lookup::Staged, query).await
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
        self.absent.forget_all();
        self.rows.invalidate_all();
        Ok(())
    }

    async fn upsert_attachment(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        self.inner.upsert_attachment(row).await?;
        self.forget(&row.id);
        Ok(())
    }

    async fn invalidate(&self, attachment_id: &str) {
        self.forget(attachment_id);
        self.inner.invalidate(attachment_id).await;
    }

    fn invalidate_all(&self) {
        self.absent.forget_all();
        self.rows.invalidate_all();
        self.inner.invalidate_all();
    }

    fn peek_linked(&self, dialog_id: &str, attachment_id: &str) -> Option<Option<Arc<SharedRow>>> {
        self.peek(attachment_id, Lookup::Linked { dialog_id })
    }

    fn peek_staged(&self, attachment_id: &str) -> Option<Option<Arc<SharedRow>>> {
        self.peek(attachment_id, Lookup::Staged)
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
        self.forget(&row.id);
        Ok(())
    }

    async fn delete_staged(
        &self,
        attachment_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, CatalogError> {
        let deleted = self.inner.delete_staged(attachment_id, user_id).await?;
        if deleted.is_some() {
            self.forget(attachment_id);
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
            self.forget(id);
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
            self.forget(&row.id);
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
        self.forget(attachment_id);
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
