//! Committing staged uploads to a message (SPEC §4), once the admin listener's handler
//! (`proxy::commit`) has checked the service token and parsed the body (`plan::parse`): rows ->
//! `plan::plan` -> record the target -> server-side copies -> one transaction -> delete the
//! staged objects.
//!
//! The order keeps one promise: a `LINKED` row always has its object. Objects are copied
//! before the rows change, and the staged originals are deleted only after. A crash between
//! copy and update leaves the row `UPLOADED` with its target recorded in `dialogId`: the next
//! commit copies again (a copy is idempotent) and links; or cleanup, when the row expires,
//! deletes both the staged object and the copy. A crash after the update leaves a staged
//! object whose row is `LINKED` elsewhere, which cleanup's orphan sweep removes.

pub mod plan;

use std::sync::Arc;

use chrono::Utc;

use crate::attachment::{AttachmentRow, AttachmentStatus, StorageKey};
use crate::catalog::{query, Catalog, LinkRequest};
use crate::error::GatewayError;
use crate::storage::{Storage, StorageError};
pub use plan::{CommitRequest, Plan, Refused};

pub fn refused(error: GatewayError) -> Refused {
    Refused {
        error,
        ids: Vec::new(),
    }
}

/// Run one commit to the end on the I/O runtime; the linked rows on success.
pub async fn commit(
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
    req: CommitRequest,
) -> Result<Vec<AttachmentRow>, Refused> {
    let catalog_err = |e| refused(GatewayError::Catalog(e));
    let rows = catalog
        .find_many(&req.attachment_ids)
        .await
        .map_err(catalog_err)?;
    let plan = plan::plan(&req, &rows)?;
    if !plan.moves.is_empty() {
        move_objects(catalog.as_ref(), storage.as_ref(), &req, &plan).await?;
        let link = LinkRequest {
            user_id: req.user_id.clone(),
            dialog_id: req.dialog_id.clone(),
            message_id: req.message_id.clone(),
            rows: plan
                .moves
                .iter()
                .map(|m| (m.id.clone(), m.to.as_str().to_owned()))
                .collect(),
            linked_at: query::truncate_to_millis(Utc::now()),
        };
        if !catalog.link(&link).await.map_err(catalog_err)? {
            return lost_race(catalog.as_ref(), storage.as_ref(), &req).await;
        }
        // Linked: the originals and any earlier attempt's copies are garbage now. A delete
        // that fails leaves a staged object whose row is LINKED elsewhere: cleanup sweeps it.
        let garbage = plan.moves.iter().map(|m| &m.from).chain(&plan.stale_copies);
        for key in garbage {
            if let Err(e) = storage.delete(key).await {
                crate::metrics::storage_error(&e);
                tracing::warn!(error = %e, "commit left an object for cleanup");
            }
        }
        tracing::info!(
            dialog_id = %req.dialog_id,
            linked = plan.moves.len(),
            already = plan.already.len(),
            "commit linked attachments"
        );
    }
    linked_rows(catalog.as_ref(), &req).await
}

/// Record the target, then copy every staged object to its dialog key. Nothing is deleted
/// on failure: the recorded target lets a retry or cleanup finish the job.
async fn move_objects(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    req: &CommitRequest,
    plan: &Plan,
) -> Result<(), Refused> {
    let ids: Vec<String> = plan.moves.iter().map(|m| m.id.clone()).collect();
    catalog
        .mark_commit_target(&req.user_id, &req.dialog_id, &ids)
        .await
        .map_err(|e| refused(GatewayError::Catalog(e)))?;
    for m in &plan.moves {
        if let Err(e) = storage.copy(&m.from, &m.to).await {
            crate::metrics::storage_error(&e);
            tracing::warn!(attachment_id = %m.id, error = %e, "commit copy failed");
            return Err(match e {
                // Discarded or cleaned up meanwhile.
                StorageError::NotFound => Refused {
                    error: GatewayError::Conflict("staged_object_missing"),
                    ids: vec![m.id.clone()],
                },
                other => refused(GatewayError::Storage(other)),
            });
        }
    }
    Ok(())
}

/// The transaction found a row changed under it (a concurrent discard, cleanup or commit).
/// A repeat of a commit that just won is still a success; anything else is a conflict.
async fn lost_race(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    req: &CommitRequest,
) -> Result<Vec<AttachmentRow>, Refused> {
    let rows = catalog
        .find_many(&req.attachment_ids)
        .await
        .map_err(|e| refused(GatewayError::Catalog(e)))?;
    // Our copy is provably unused where the row is gone (a discard or cleanup won: nothing
    // can link it any more) or is now LINKED somewhere else; where it is still staged, its
    // recorded target keeps it in view of a retry or of cleanup. A copy left by a crash here
    // is taken by cleanup's dialog sweep.
    for id in &req.attachment_ids {
        let ours = StorageKey::dialog(&req.dialog_id, id);
        let row = rows.iter().find(|r| &r.id == id);
        let unused = row.is_none_or(|r| {
            r.status == AttachmentStatus::Linked && r.storage_path != ours.as_str()
        });
        if unused {
            let _ = storage.delete(&ours).await;
        }
    }
    match plan::plan(req, &rows) {
        Ok(p) if p.moves.is_empty() => linked_rows(catalog, req).await,
        Ok(p) => Err(Refused {
            error: GatewayError::Conflict("commit_race"),
            ids: p.moves.into_iter().map(|m| m.id).collect(),
        }),
        Err(r) => Err(r),
    }
}

async fn linked_rows(
    catalog: &dyn Catalog,
    req: &CommitRequest,
) -> Result<Vec<AttachmentRow>, Refused> {
    let mut rows = catalog
        .find_many(&req.attachment_ids)
        .await
        .map_err(|e| refused(GatewayError::Catalog(e)))?;
    rows.sort_by_key(|r| req.attachment_ids.iter().position(|id| id == &r.id));
    Ok(rows)
}
