//! Object storage behind one trait: `fs` (a local directory), `s3` (any S3-compatible
//! service, SigV4 via `aws-sigv4`) and `supabase` (Supabase Storage's REST API). Bodies are
//! streams; nothing is buffered whole, except bodies of at most
//! `storage.memory_cache_object_bytes` (64 KiB by default) held by the `memory` cache.

pub mod fs;
mod http_provider;
pub mod memory;
pub mod reader;
pub mod s3;
pub mod sign;
pub mod supabase;

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use crate::attachment::{key, StorageKey};
use crate::authz::Permit;
use crate::config::{StorageConfig, StorageProvider};
use crate::http::range::ByteRange;
pub use memory::MemoryCacheStats;

pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send + 'static>>;

/// An object being read: the body stream and what storage said about it.
pub struct ObjectBody {
    /// Bytes the stream will yield (the range length for a ranged read).
    pub content_length: u64,
    pub stream: ByteStream,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("storage timed out")]
    Timeout,
    #[error("storage answered status {0}")]
    Status(u16),
    #[error("storage transport error: {0}")]
    Transport(String),
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage configuration error: {0}")]
    Config(String),
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Read the permitted object (optionally one byte range) as a stream. Only `authz` can
    /// build a `Permit`, so nothing is read without an authorization decision. Errors before
    /// the first byte are returned here; errors mid-body come through the stream.
    async fn get(
        &self,
        permit: &Permit,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StorageError>;
    /// What `get` would answer from memory alone, without I/O (`memory::MemoryCached`): the
    /// request path asks this on its own thread before hopping to the I/O runtime.
    fn peek(&self, _permit: &Permit, _range: Option<ByteRange>) -> Option<ObjectBody> {
        None
    }
    /// Hit and miss counts of the small-body memory cache, when this is one
    /// (`memory::MemoryCached`); `metrics` reads them at scrape time.
    fn memory_cache_stats(&self) -> Option<MemoryCacheStats> {
        None
    }
    /// Drop whatever is kept in memory for `attachment_id` (its body, its previews' bodies):
    /// another instance deleted it. Only a memory cache keeps anything.
    fn forget(&self, _attachment_id: &str) {}
    /// Drop everything kept in memory: deletes made elsewhere may have been missed.
    fn forget_all(&self) {}
    /// Write `body` (exactly `content_length` bytes) to `key`.
    async fn put(
        &self,
        key: &StorageKey,
        content_type: &str,
        content_length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError>;
    /// Delete `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError>;
    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<(), StorageError>;
    /// A short-lived signed URL that reads the permitted object directly from storage, telling
    /// the browser `response_content_type` / `response_content_disposition` (offload of large
    /// reads). Like `get`, it needs a `Permit`: nothing is signed without authorization.
    fn presign_get(
        &self,
        _permit: &Permit,
        _ttl: std::time::Duration,
        _response_content_type: Option<&str>,
        _response_content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        Err(StorageError::Config(
            "signed URLs are not supported by this provider".into(),
        ))
    }
    /// `createSignedReadUrl`: like `presign_get`, for providers whose signed URLs are made by
    /// asking the service (Supabase) rather than computed locally (S3). Offload calls this.
    async fn signed_read_url(
        &self,
        permit: &Permit,
        ttl: std::time::Duration,
        response_content_type: Option<&str>,
        response_content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        self.presign_get(
            permit,
            ttl,
            response_content_type,
            response_content_disposition,
        )
    }
    /// Server-side copy of `from` to `to` (commit moves staged objects with copy + delete).
    async fn copy(&self, _from: &StorageKey, _to: &StorageKey) -> Result<(), StorageError> {
        Err(StorageError::Config(
            "copy is not supported by this provider".into(),
        ))
    }
    /// Every object whose key starts with `prefix` (cleanup looks for orphans by age).
    /// Objects whose names are not valid keys are skipped.
    async fn list(&self, _prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        Err(StorageError::Config(
            "list is not supported by this provider".into(),
        ))
    }
}

/// One object found by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: StorageKey,
    pub size: u64,
    pub modified: SystemTime,
}

/// Build the provider named by `storage.provider`.
pub fn build(cfg: &StorageConfig) -> Result<Arc<dyn Storage>, StorageError> {
    Ok(match &cfg.provider {
        StorageProvider::Fs { root } => Arc::new(fs::FsStorage::new(root.clone())),
        StorageProvider::S3(s3) => Arc::new(s3::S3Storage::new(
            s3,
            cfg.connect_timeout,
            cfg.read_timeout,
        )?),
        StorageProvider::Supabase(sb) => Arc::new(supabase::SupabaseStorage::new(
            sb,
            cfg.connect_timeout,
            cfg.read_timeout,
        )?),
    })
}

/// The provider the gateway serves from: [`build`] behind the small-body memory cache when
/// `storage.memory_cache_bytes` is set.
pub fn build_serving(cfg: &StorageConfig) -> Result<Arc<dyn Storage>, StorageError> {
    let provider = build(cfg)?;
    if cfg.memory_cache_bytes == 0 {
        return Ok(provider);
    }
    Ok(Arc::new(memory::MemoryCached::new(
        provider,
        cfg.memory_cache_bytes,
        cfg.memory_cache_object_bytes,
    )))
}

/// Yield exactly `expected` bytes from `inner`: a body that ends early or runs long becomes an
/// `Err` item, so a cut body is never taken for a whole one.
pub(crate) fn exact_length(inner: ByteStream, expected: u64) -> ByteStream {
    use futures_util::StreamExt;

    struct State {
        inner: ByteStream,
        remaining: u64,
        done: bool,
    }
    let state = State {
        inner,
        remaining: expected,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                let len = chunk.len() as u64;
                if len > st.remaining {
                    st.done = true;
                    let err = StorageError::Transport("object body longer than announced".into());
                    return Some((Err(err), st));
                }
                st.remaining -= len;
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.done = true;
                Some((Err(e), st))
            }
            None if st.remaining > 0 => {
                st.done = true;
                let err = StorageError::Transport("object body ended early".into());
                Some((Err(err), st))
            }
            None => None,
        }
    }))
}
