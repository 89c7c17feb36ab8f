//! An in-process cache of small object bodies in front of any provider: the images of a chat
//! are read again and again (every participant, every page load), and each read otherwise
//! costs a signed request to the bucket. Only objects up to `storage.memory_cache_object_bytes`
//! are kept, within `storage.memory_cache_bytes` in all; large bodies always stream.
//!
//! Nothing here decides who may read: every call takes a `Permit`, so a body is only ever
//! returned after `authz` allowed that read, exactly as from the provider. Entries are keyed by
//! storage key and checked against what the row's ETag is made of (id, size, creation time,
//! type), so a row replaced under the same key is never answered with the old body; `delete`
//! drops the entry.
//!
//! It counts its own hits and misses; `metrics` reads them at scrape time through
//! `Storage::memory_cache_stats`, so storage never calls into `metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use moka::sync::Cache;

use super::{ByteStream, ListedObject, ObjectBody, Storage, StorageError, StorageKey};
use crate::attachment::key::previews_of;
use crate::attachment::AttachmentRow;
use crate::authz::Permit;
use crate::http::range::ByteRange;

/// How long a body stays cached at most (a bound on an object changed behind the gateway's back).
const TTL: Duration = Duration::from_secs(600);

/// Memory-cache counters, exported as `storage_memory_cache_hits_total` and
/// `storage_memory_cache_misses_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryCacheStats {
    pub hits: u64,
    pub misses: u64,
}

pub struct MemoryCached {
    inner: Arc<dyn Storage>,
    /// storage key -> (the row it was read for, the whole body)
    bodies: Cache<String, (Version, Bytes)>,
    max_object: u64,
    /// Small reads answered from memory.
    hits: AtomicU64,
    /// Small reads that fetched the body from storage to keep it.
    misses: AtomicU64,
}

impl MemoryCached {
    pub fn new(inner: Arc<dyn Storage>, total_bytes: u64, max_object: u64) -> Self {
        MemoryCached {
            inner,
            bodies: Cache::builder()
                .max_capacity(total_bytes)
                .weigher(|key: &String, (version, body): &(Version, Bytes)| {
                    let size = key.len() + version.id.len() + version.mime_type.len() + body.len();
                    u32::try_from(size).unwrap_or(u32::MAX)
                })
                .time_to_live(TTL)
                // `forget` drops by attachment id, which is not the key.
                .support_invalidation_closures()
                .build(),
            max_object,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn cacheable(&self, permit: &Permit) -> bool {
        permit.row().size_bytes <= self.max_object
    }

    fn cached(&self, permit: &Permit) -> Option<Bytes> {
        let (version, body) = self.bodies.get(permit.key().as_str())?;
        let fresh = version.is_of(permit.row());
        if fresh {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        fresh.then_some(body)
    }

    /// Read the whole (small) object and keep it.
    async fn fill(&self, permit: &Permit) -> Result<Bytes, StorageError> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let object = self.inner.get(permit, None).await?;
        let size = permit.row().size_bytes;
        if object.content_length != size {
            // Storage and the row disagree: serve nothing from memory, and let the reader's
            // length check answer it.
            return Err(StorageError::Transport(format!(
                "storage length {} != row size {size}",
                object.content_length
            )));
        }
        let mut body = BytesMut::with_capacity(size as usize);
        let mut stream = object.stream;
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk?);
        }
        let body = body.freeze();
        self.bodies.insert(
            permit.key().as_str().to_string(),
            (Version::of(permit.row()), body.clone()),
        );
        Ok(body)
    }
}

/// The fields of a row its ETag is made of (`http::headers::Validators`): equal fields, equal
/// ETag. Compared as they are, so a hit costs no hashing.
#[derive(Clone)]
struct Version {
    id: String,
    size_bytes: u64,
    created_at: DateTime<Utc>,
    mime_type: String,
}

impl Version {
    fn of(row: &AttachmentRow) -> Self {
        Version {
            id: row.id.clone(),
            size_bytes: row.size_bytes,
            created_at: row.created_at,
            mime_type: row.mime_type.clone(),
        }
    }

    fn is_of(&self, row: &AttachmentRow) -> bool {
        self.id == row.id
            && self.size_bytes == row.size_bytes
            && self.created_at == row.created_at
            && self.mime_type == row.mime_type
    }
}

/// `body`, or the asked range of it, as an object read.
fn from_memory(body: Bytes, range: Option<ByteRange>) -> ObjectBody {
    let part = match range {
        Some(r) => body.slice(r.start as usize..=r.end as usize),
        None => body,
    };
    ObjectBody {
        content_length: part.len() as u64,
        stream: Box::pin(futures_util::stream::once(async move { Ok(part) })),
    }
}

#[async_trait]
impl Storage for MemoryCached {
    async fn get(
        &self,
        permit: &Permit,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StorageError> {
        if !self.cacheable(permit) {
            return self.inner.get(permit, range).await;
        }
        let body = match self.cached(permit) {
            Some(body) => body,
            None => self.fill(permit).await?,
        };
        Ok(from_memory(body, range))
    }

    fn peek(&self, permit: &Permit, range: Option<ByteRange>) -> Option<ObjectBody> {
        if !self.cacheable(permit) {
            return None;
        }
        self.cached(permit).map(|body| from_memory(body, range))
    }

    fn memory_cache_stats(&self) -> Option<MemoryCacheStats> {
        Some(MemoryCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        })
    }

    fn forget(&self, attachment_id: &str) {
        let id = attachment_id.to_owned();
        let previews = previews_of(attachment_id);
        let dropped = self.bodies.invalidate_entries_if(move |key, (version, _)| {
            version.id == id || key.starts_with(&previews)
        });
        if let Err(e) = dropped {
            // Only possible without `support_invalidation_closures`; the TTL still bounds it.
            tracing::error!(error = %e, "memory cache cannot forget an attachment");
        }
    }

    fn forget_all(&self) {
        self.bodies.invalidate_all();
    }

    async fn put(
        &self,
        key: &StorageKey,
        content_type: &str,
        content_length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        self.bodies.invalidate(key.as_str());
        self.inner
            .put(key, content_type, content_length, body)
            .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        self.bodies.invalidate(key.as_str());
        self.inner.delete(key).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.inner.ping().await
    }

    fn presign_get(
        &self,
        permit: &Permit,
        ttl: Duration,
        response_content_type: Option<&str>,
        response_content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        self.inner.presign_get(
            permit,
            ttl,
            response_content_type,
            response_content_disposition,
        )
    }

    async fn signed_read_url(
        &self,
        permit: &Permit,
        ttl: Duration,
        response_content_type: Option<&str>,
        response_content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        self.inner
            .signed_read_url(
                permit,
                ttl,
                response_content_type,
                response_content_disposition,
            )
            .await
    }

    async fn copy(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
        self.bodies.invalidate(to.as_str());
        self.inner.copy(from, to).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        self.inner.list(prefix).await
    }
}
