//! The orphan sweep of `support-chat/dialogs/`: a copy no row will ever serve, left by a
//! commit that lost a race with a discard or a cleanup, or that crashed after copying. It
//! deletes only objects older than the grace cutoff, and never one that a staged row has
//! recorded as its commit target (a commit in flight, or one cleanup finishes with the row).

use std::collections::HashMap;
use std::time::SystemTime;

use crate::attachment::{is_valid_id, DIALOGS_PREFIX};
use crate::catalog::{AttachmentRow, AttachmentStatus, Catalog};
use crate::storage::{ListedObject, Storage, StorageKey};

use super::CleanupError;

/// Ids per catalog query: a bucket with many old objects is asked about in bounded pieces.
const IDS_PER_QUERY: usize = 500;

/// What the sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub deleted: u64,
    pub failed: u64,
}

/// Delete the dialog objects older than `cutoff` that no row serves or will serve.
pub async fn sweep(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    cutoff: SystemTime,
) -> Result<Swept, CleanupError> {
    let listed = storage.list(DIALOGS_PREFIX).await?;
    let old: Vec<&ListedObject> = listed.iter().filter(|o| o.modified < cutoff).collect();
    let mut swept = Swept::default();
    for batch in old.chunks(IDS_PER_QUERY) {
        let mut ids: Vec<String> = batch
            .iter()
            .filter_map(|o| dialog_and_id(&o.key).map(|(_, id)| id.to_owned()))
            .collect();
        ids.sort();
        ids.dedup();
        let rows = catalog.find_many(&ids).await?;
        for key in orphans(batch, &rows) {
            match storage.delete(&key).await {
                Ok(()) => swept.deleted += 1,
                Err(e) => {
                    swept.failed += 1;
                    tracing::warn!(error = %e, "cleanup dialog orphan delete failed");
                }
            }
        }
    }
    Ok(swept)
}

/// `(dialog, id)` of a dialog key (`support-chat/dialogs/<dialog>/<id>`).
pub fn dialog_and_id(key: &StorageKey) -> Option<(&str, &str)> {
    let rest = key.as_str().strip_prefix(DIALOGS_PREFIX)?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [dialog, id] if is_valid_id(dialog) && is_valid_id(id) => Some((dialog, id)),
        _ => None,
    }
}

/// Of the (already old enough) dialog objects, those nothing keeps: kept are a `LINKED` row's
/// own object, and the copy a staged row recorded as its commit target. Anything else (no
/// row, a row linked elsewhere, a staged row headed for another dialog) is garbage. Keys that
/// are not of the gateway's layout are never touched.
pub fn orphans(old: &[&ListedObject], rows: &[AttachmentRow]) -> Vec<StorageKey> {
    let by_id: HashMap<&str, &AttachmentRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    old.iter()
        .filter(|o| {
            let Some((dialog, id)) = dialog_and_id(&o.key) else {
                return false;
            };
            !by_id.get(id).is_some_and(|r| match r.status {
                AttachmentStatus::Linked => r.storage_path == o.key.as_str(),
                AttachmentStatus::Uploaded => r.dialog_id.as_deref() == Some(dialog),
            })
        })
        .map(|o| o.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn listed(key: &str) -> ListedObject {
        ListedObject {
            key: StorageKey::parse(key).unwrap(),
            size: 1,
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    fn row(id: &str, status: AttachmentStatus, dialog: Option<&str>, path: &str) -> AttachmentRow {
        AttachmentRow {
            id: id.into(),
            dialog_id: dialog.map(str::to_owned),
            message_id: None,
            storage_path: path.into(),
            mime_type: "image/png".into(),
            size_bytes: 1,
            original_name: "a".into(),
            created_by_user_id: "u".into(),
            status,
            created_at: Utc::now(),
            linked_at: None,
            dialog_owner_id: None,
            image: Default::default(),
        }
    }

    #[test]
    fn only_what_a_row_serves_or_a_commit_targets_is_kept() {
        use AttachmentStatus::*;
        let objects = [
            listed("support-chat/dialogs/d1/linked"),
            listed("support-chat/dialogs/d1/norow"),
            listed("support-chat/dialogs/d2/moved"),
            listed("support-chat/dialogs/d1/inflight"),
            listed("support-chat/dialogs/d2/retarget"),
            listed("support-chat/dialogs/d1/deeper/x"),
            listed("support-chat/dialogs/d1"),
        ];
        let old: Vec<&ListedObject> = objects.iter().collect();
        let rows = [
            row(
                "linked",
                Linked,
                Some("d1"),
                "support-chat/dialogs/d1/linked",
            ),
            row("moved", Linked, Some("d1"), "support-chat/dialogs/d1/moved"),
            row(
                "inflight",
                Uploaded,
                Some("d1"),
                "support-chat/staged/u/inflight",
            ),
            row(
                "retarget",
                Uploaded,
                Some("d1"),
                "support-chat/staged/u/retarget",
            ),
        ];
        let gone: Vec<String> = orphans(&old, &rows)
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(
            gone,
            [
                "support-chat/dialogs/d1/norow",
                "support-chat/dialogs/d2/moved",
                "support-chat/dialogs/d2/retarget",
            ]
        );
    }
}
