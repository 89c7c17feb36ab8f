//! An attachment's previews (SPEC §12): found in the catalog, or made once — right after a
//! staged upload is stored, or on the first request that needs them — however many requests
//! wait (single flight). The pixels are decoded and encoded on the preview pool's threads; the
//! catalog and storage calls run on the I/O runtime; the request threads only wait.
//!
//! A source that cannot be previewed is remembered, so a dialog shown a thousand times costs one
//! attempt, not a thousand. A storage or catalog fault is not remembered: the next view tries
//! again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use moka::sync::Cache;
use tokio::sync::watch;

use super::frame;
use super::pool::Pool;
use super::render::{self, Limits, NoPreview, Sizes};
use crate::attachment::{ImageInfo, PreviewRow, StorageKey};
use crate::authz::Permit;
use crate::catalog::Catalog;
use crate::config::PreviewConfig;
use crate::error::GatewayError;
use crate::io_runtime;
use crate::metrics;
use crate::storage::{ByteStream, Storage};

/// How long a failure is remembered, and how long found previews are kept in memory (they
/// never change; a deletion forgets them at once on every instance, see `broadcast`).
const FAILURE_TTL: Duration = Duration::from_secs(3600);
const FOUND_TTL: Duration = Duration::from_secs(300);
const MEMORY_ENTRIES: u64 = 100_000;

/// Why there is no preview to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error("no preview ({})", .0.as_str())]
    NoPreview(NoPreview),
    /// Every worker and queue slot is taken: try again shortly.
    #[error("preview workers busy")]
    Busy,
    #[error("preview catalog: {0}")]
    Catalog(String),
    #[error("preview storage: {0}")]
    Storage(String),
}

impl From<PreviewError> for GatewayError {
    fn from(e: PreviewError) -> Self {
        match e {
            PreviewError::NoPreview(_) => GatewayError::NoPreview,
            PreviewError::Busy => GatewayError::PreviewBusy,
            PreviewError::Catalog(_) => GatewayError::ServiceUnavailable("preview_catalog"),
            PreviewError::Storage(_) => GatewayError::ServiceUnavailable("preview_storage"),
        }
    }
}

type Made = Result<Arc<Vec<PreviewRow>>, PreviewError>;

pub struct Previews {
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
    cfg: PreviewConfig,
    pool: Pool,
    /// Attachment id -> the result of the one job making its previews.
    flights: Mutex<HashMap<String, watch::Receiver<Option<Made>>>>,
    failed: Cache<String, NoPreview>,
    found: Cache<String, Arc<Vec<PreviewRow>>>,
}

impl Previews {
    pub fn new(catalog: Arc<dyn Catalog>, storage: Arc<dyn Storage>, cfg: PreviewConfig) -> Self {
        let pool = Pool::start(cfg.workers, cfg.queue);
        Previews {
            catalog,
            storage,
            cfg,
            pool,
            flights: Mutex::new(HashMap::new()),
            failed: Cache::builder()
                .max_capacity(MEMORY_ENTRIES)
                .time_to_live(FAILURE_TTL)
                .build(),
            found: Cache::builder()
                .max_capacity(MEMORY_ENTRIES)
                .time_to_live(FOUND_TTL)
                .build(),
        }
    }

    /// Whether this attachment's type gets previews at all: images, and PDFs and videos when
    /// their tool is configured.
    pub fn applies(&self, mime_type: &str) -> bool {
        let mime = essence(mime_type);
        self.cfg.enabled && (render::supports(&mime) || self.tool(&mime).is_some())
    }

    /// The confined tool that makes a picture of this type first, if any.
    fn tool(&self, mime: &str) -> Option<(frame::Kind, PathBuf)> {
        let kind = frame::Kind::of(mime)?;
        let tool = match kind {
            frame::Kind::Pdf => self.cfg.pdftocairo.clone(),
            frame::Kind::Video(_) => self.cfg.ffmpeg.clone(),
        }?;
        Some((kind, tool))
    }

    /// The stored previews of the permitted attachment, made now if there are none yet.
    pub async fn rows(self: &Arc<Self>, permit: &Permit) -> Made {
        let row = permit.row();
        if !self.applies(&row.mime_type) {
            return Err(PreviewError::NoPreview(NoPreview::UnsupportedType));
        }
        if let Some(rows) = self.found.get(&row.id) {
            return Ok(rows);
        }
        if let Some(why) = self.failed.get(&row.id) {
            return Err(PreviewError::NoPreview(why));
        }
        let (catalog, id) = (self.catalog.clone(), row.id.clone());
        let stored = io_runtime::run(async move { catalog.find_previews(&id).await })
            .await
            .map_err(|e| PreviewError::Catalog(e.to_string()))?
            .map_err(|e| PreviewError::Catalog(e.to_string()))?;
        if !stored.is_empty() {
            let rows = Arc::new(stored);
            self.found.insert(row.id.clone(), rows.clone());
            return Ok(rows);
        }
        self.make(permit.clone()).await
    }

    /// Start making the previews of a freshly stored upload; returns at once. A full pool
    /// skips it: the first view makes them instead.
    pub fn after_upload(self: &Arc<Self>, permit: Permit) {
        if !self.applies(&permit.row().mime_type) {
            return;
        }
        let this = self.clone();
        io_runtime::runtime().spawn(async move {
            let _ = this.make(permit).await;
        });
    }

    /// Forget what this instance knows of an attachment's previews (it was deleted).
    pub fn forget(&self, attachment_id: &str) {
        self.found.invalidate(attachment_id);
        self.failed.invalidate(attachment_id);
    }

    /// Forget what this instance knows of every attachment's previews (deletes made elsewhere
    /// may have been missed).
    pub fn forget_all(&self) {
        self.found.invalidate_all();
        self.failed.invalidate_all();
    }

    /// Join the job making this attachment's previews, or start it.
    async fn make(self: &Arc<Self>, permit: Permit) -> Made {
        let mut rx = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            let id = permit.row().id.clone();
            match flights.get(&id) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(id.clone(), rx.clone());
                    let this = self.clone();
                    io_runtime::runtime().spawn(async move {
                        let made = this.job(&permit).await;
                        // Found (or failed) is recorded before the flight ends, so a request
                        // arriving now never starts a second job.
                        this.flights
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                        let _ = tx.send(Some(made));
                    });
                    rx
                }
            }
        };
        let made = match rx.wait_for(Option::is_some).await {
            Ok(made) => made.clone().unwrap_or(Err(PreviewError::Busy)),
            // The job's task is gone without an answer (the runtime is shutting down).
            Err(_) => Err(PreviewError::Busy),
        };
        made
    }

    /// Read the source, render it on the pool, store every output, then record the rows.
    async fn job(&self, permit: &Permit) -> Made {
        let started = Instant::now();
        let row = permit.row();
        if row.size_bytes > self.cfg.max_source_bytes {
            return Err(self.failure(&row.id, NoPreview::TooManyBytes));
        }
        // A slot first: a full pool costs no read of the source.
        let slot = self.pool.reserve().map_err(|_| PreviewError::Busy)?;
        metrics::preview::queue_depth(self.pool.depth());
        let source = match read_source(self.storage.as_ref(), permit).await {
            Ok(source) => source,
            Err(e) => {
                metrics::storage_error(&e);
                return Err(PreviewError::Storage(e.to_string()));
            }
        };
        let mime = essence(&row.mime_type);
        let limits = Limits {
            max_source_pixels: self.cfg.max_source_pixels,
            max_source_bytes: self.cfg.max_source_bytes,
        };
        let sizes = Sizes {
            thumb_px: self.cfg.thumb_px,
            preview_px: self.cfg.preview_px,
        };
        let tool = self.tool(&mime);
        let sandbox = frame::Sandbox {
            memory_bytes: self.cfg.tool_memory_bytes,
            timeout: self.cfg.tool_timeout,
            max_output_bytes: self.cfg.max_source_bytes,
            render_px: self.cfg.preview_px,
        };
        let rendered = slot
            .run(move || match tool {
                // The tool's picture is untrusted too: the same memory-safe decoder, the
                // same pixel bounds.
                Some((kind, path)) => frame::extract(kind, &path, &source, &sandbox)
                    .and_then(|png| render::render("image/png", &png, &limits, &sizes)),
                None => render::render(&mime, &source, &limits, &sizes),
            })
            .await;
        metrics::preview::queue_depth(self.pool.depth());
        let rendered = match rendered {
            Ok(Ok(rendered)) => rendered,
            Ok(Err(why)) => return Err(self.failure(&row.id, why)),
            // The decoder panicked: a file that cannot be previewed, never a crash.
            Err(_) => return Err(self.failure(&row.id, NoPreview::Undecodable)),
        };

        let mut rows = Vec::with_capacity(rendered.outputs.len());
        for out in rendered.outputs {
            let key = StorageKey::preview(&row.id, out.variant, out.format);
            let size = out.bytes.len() as u64;
            let body: ByteStream = Box::pin(futures_util::stream::once(async move {
                Ok(Bytes::from(out.bytes))
            }));
            if let Err(e) = self.storage.put(&key, out.format.mime(), size, body).await {
                metrics::storage_error(&e);
                tracing::warn!(attachment_id = %row.id, error = %e, "preview not stored");
                return Err(PreviewError::Storage(e.to_string()));
            }
            rows.push(PreviewRow {
                attachment_id: row.id.clone(),
                variant: out.variant,
                format: out.format,
                storage_path: key.as_str().to_owned(),
                size_bytes: size,
                width: out.width,
                height: out.height,
            });
        }
        let image = ImageInfo {
            width: Some(rendered.width),
            height: Some(rendered.height),
            placeholder: Some(rendered.placeholder),
        };
        if let Err(e) = self.catalog.save_previews(&row.id, &image, &rows).await {
            // Stored objects without rows are swept as orphans once older than the TTL.
            tracing::warn!(attachment_id = %row.id, error = %e, "previews not recorded");
            return Err(PreviewError::Catalog(e.to_string()));
        }
        for r in rows
            .iter()
            .filter(|r| r.format == crate::attachment::Format::Webp)
        {
            metrics::preview::generated(r.variant.as_str());
        }
        metrics::preview::latency(started.elapsed());
        tracing::info!(attachment_id = %row.id, previews = rows.len(), "previews made");
        let rows = Arc::new(rows);
        self.found.insert(row.id.clone(), rows.clone());
        Ok(rows)
    }

    /// Remember and report a source that cannot be previewed.
    fn failure(&self, attachment_id: &str, why: NoPreview) -> PreviewError {
        self.failed.insert(attachment_id.to_owned(), why);
        metrics::preview::failed(why.as_str());
        tracing::warn!(attachment_id, reason = why.as_str(), "no preview");
        PreviewError::NoPreview(why)
    }
}

/// The whole source object: previews need every byte of it, and `job` has already bounded its
/// size by the row's `sizeBytes`; a body longer than that is refused, not read on.
async fn read_source(
    storage: &dyn Storage,
    permit: &Permit,
) -> Result<Vec<u8>, crate::storage::StorageError> {
    let expected = permit.row().size_bytes;
    let body = storage.get(permit, None).await?;
    let mut source = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    let mut chunks = body.stream;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if (source.len() + chunk.len()) as u64 > expected {
            return Err(crate::storage::StorageError::Transport(
                "source longer than its row says".into(),
            ));
        }
        source.extend_from_slice(&chunk);
    }
    Ok(source)
}

/// `image/JPEG; charset=x` -> `image/jpeg`.
fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
