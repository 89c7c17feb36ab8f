//! Deleting attachments for good (SPEC §4: the app deleted a message, or a user asked for
//! erasure), once the admin listener's handler (`proxy::erase`) has checked the service token
//! and parsed the body (`plan::parse`): rows -> objects and previews -> rows deleted -> every
//! cache of this instance forgets them. Telling the other instances is `broadcast`'s.
//!
//! Objects go before rows, so a storage failure leaves the row in place and the app's retry
//! finishes the job (the answer is a `503`, never a `deleted` that left data behind). A row
//! deleted without its objects cannot happen; a preview finished between the two steps is
//! swept again right after, and the preview orphan sweep takes anything later still.

pub mod plan;

use std::sync::Arc;

use crate::attachment::StorageKey;
use crate::catalog::Catalog;
use crate::error::GatewayError;
use crate::preview::{sweep, Previews};
use crate::storage::{Storage, StorageError};
pub use plan::{DeleteRequest, Outcome};

/// Run one delete to the end (on the I/O runtime): which ids were deleted, which were missing.
pub async fn delete(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    req: &DeleteRequest,
) -> Result<Outcome, GatewayError> {
    let rows = catalog.find_many(&req.attachment_ids).await?;
    for row in &rows {
        remove_objects(storage, &row.id, &plan::objects_of_row(row)?).await?;
    }
    let deleted = catalog.delete_many(&req.attachment_ids).await?;
    for gone in &deleted {
        // A commit may have moved the object between the read and the delete: that one goes
        // too. Best effort now: the row is gone, so a failure here can only be logged.
        let seen = rows
            .iter()
            .any(|r| r.id == gone.id && r.storage_path == gone.storage_path);
        if !seen {
            let keys = plan::objects_of(&gone.id, &gone.storage_path, gone.dialog_id.as_deref());
            let removed = match keys {
                Ok(keys) => remove_objects(storage, &gone.id, &keys).await,
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                tracing::error!(attachment_id = %gone.id, error = %e, "deleted row left an object");
            }
        }
        sweep::remove(storage, &gone.id).await;
    }
    let ids: Vec<String> = deleted.into_iter().map(|r| r.id).collect();
    let outcome = plan::outcome(&req.attachment_ids, &ids);
    tracing::info!(
        deleted = outcome.deleted.len(),
        missing = outcome.missing.len(),
        "attachments deleted"
    );
    Ok(outcome)
}

/// Delete `keys` and the previews of `id`; a missing object is already what we want.
async fn remove_objects(
    storage: &dyn Storage,
    id: &str,
    keys: &[StorageKey],
) -> Result<(), GatewayError> {
    for key in keys {
        match storage.delete(key).await {
            Ok(()) | Err(StorageError::NotFound) => {}
            Err(e) => {
                crate::metrics::storage_error(&e);
                tracing::warn!(attachment_id = %id, error = %e, "delete kept the row: object stays");
                return Err(GatewayError::Storage(e));
            }
        }
    }
    if sweep::remove(storage, id).await.failed > 0 {
        return Err(GatewayError::ServiceUnavailable("storage"));
    }
    Ok(())
}

/// Everything one instance keeps in memory about attachments: what `forget` clears when an
/// attachment is deleted, here or (through `broadcast`) on another instance.
#[derive(Clone)]
pub struct Caches {
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
    pub previews: Arc<Previews>,
}

impl Caches {
    /// Stop serving `ids` from memory: the next read asks the database and finds nothing.
    pub async fn forget(&self, ids: &[String]) {
        for id in ids {
            self.catalog.invalidate(id).await;
            self.storage.forget(id);
            self.previews.forget(id);
        }
    }

    /// Forget everything: this instance may have missed deletes.
    pub fn forget_all(&self) {
        self.catalog.invalidate_all();
        self.storage.forget_all();
        self.previews.forget_all();
    }
}
