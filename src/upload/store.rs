//! The storage side of staging: the writer that streams an upload's body to its key and then
//! inserts its `UPLOADED` row, and the discard of a staged upload. No Pingora session here: the
//! handlers in `proxy::upload` feed it.
//!
//! The writer owns the outcome: an object is kept only if its row was inserted, so a cut,
//! overlong or refused body leaves neither.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;

use super::policy::Accepted;
use crate::attachment::{AttachmentRow, AttachmentStatus, NewAttachment, StorageKey};
use crate::authn::Principal;
use crate::catalog::Catalog;
use crate::error::GatewayError;
use crate::storage::{ByteStream, Storage, StorageError};

/// Delete the staged row `id` if `user` uploaded it, then its object. Anyone else gets the same
/// `404` as a miss.
pub async fn discard(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    id: &str,
    user: &str,
) -> Result<(), GatewayError> {
    let path = catalog
        .delete_staged(id, user)
        .await?
        .ok_or(GatewayError::NotFound("missing_or_denied"))?;
    // The row goes first: should the object survive (storage down, crash), it is an
    // orphan under the staged prefix, which cleanup removes once it is older than the TTL.
    match StorageKey::parse(&path) {
        Ok(key) => {
            if let Err(e) = storage.delete(&key).await {
                crate::metrics::storage_error(&e);
                tracing::warn!(attachment_id = %id, error = %e, "discarded object left for cleanup");
            }
        }
        Err(e) => {
            tracing::error!(attachment_id = %id, error = %e, "discarded row had a bad storagePath")
        }
    }
    // The preview rows went with the row (the foreign key cascades); their objects go now.
    crate::preview::sweep::remove(storage, id).await;
    Ok(())
}

/// The writer: stream to storage, then insert the row. Runs on the I/O runtime to the end even
/// if the request is gone, so that a stored object without a row is always removed.
pub async fn store(
    storage: Arc<dyn Storage>,
    catalog: Arc<dyn Catalog>,
    row: NewAttachment,
    rx: mpsc::Receiver<Result<Bytes, StorageError>>,
) -> Result<(), GatewayError> {
    let key = StorageKey::staged(&row.created_by_user_id, &row.id);
    let put = storage
        .put(&key, &row.mime_type, row.size_bytes, receiver_stream(rx))
        .await;
    let result = match put {
        Ok(()) => catalog
            .insert_staged(&row)
            .await
            .map_err(GatewayError::from),
        Err(e) => {
            crate::metrics::storage_error(&e);
            Err(GatewayError::from(e))
        }
    };
    if let Err(err) = &result {
        tracing::warn!(attachment_id = %row.id, error = %err, "upload not stored");
        if let Err(e) = storage.delete(&key).await {
            // Left under the staged prefix with no row: cleanup's orphan sweep removes it.
            tracing::warn!(attachment_id = %row.id, error = %e, "partial upload left for cleanup");
        }
    }
    result
}

fn receiver_stream(rx: mpsc::Receiver<Result<Bytes, StorageError>>) -> ByteStream {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// A fresh id (`[0-9a-f]{32}`, a valid path id) and the row to insert once stored.
pub fn new_row(who: &Principal, accepted: &Accepted) -> NewAttachment {
    let id = uuid::Uuid::new_v4().simple().to_string();
    NewAttachment {
        storage_path: StorageKey::staged(&who.user_id, &id).as_str().to_owned(),
        id,
        dialog_id: None,
        message_id: None,
        mime_type: accepted.mime_type.clone(),
        size_bytes: accepted.length,
        original_name: accepted.original_name.clone(),
        created_by_user_id: who.user_id.clone(),
        status: AttachmentStatus::Uploaded,
        created_at: crate::catalog::query::truncate_to_millis(Utc::now()),
    }
}

pub fn staged_row(row: NewAttachment) -> AttachmentRow {
    AttachmentRow {
        id: row.id,
        dialog_id: None,
        message_id: None,
        storage_path: row.storage_path,
        mime_type: row.mime_type,
        size_bytes: row.size_bytes,
        original_name: row.original_name,
        created_by_user_id: row.created_by_user_id,
        status: AttachmentStatus::Uploaded,
        created_at: row.created_at,
        linked_at: None,
        dialog_owner_id: None,
        image: Default::default(),
    }
}
