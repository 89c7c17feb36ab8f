//! Removing previews with their attachment (SPEC §12): every object under the attachment's
//! `support-chat/previews/<id>/` prefix on discard, cleanup and delete (their rows go by the
//! foreign key's cascade), and the orphan sweep of that prefix for previews whose attachment
//! row is gone (a job that finished after its attachment was deleted, say).

use std::collections::HashSet;
use std::time::SystemTime;

use crate::attachment::key::previews_of;
use crate::attachment::{is_valid_id, StorageKey, PREVIEWS_PREFIX};
use crate::catalog::{Catalog, CatalogError};
use crate::storage::{Storage, StorageError};

/// What a removal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub deleted: u64,
    pub failed: u64,
}

/// Delete every preview object of `attachment_id`. A failure leaves an orphan that the sweep
/// removes later.
pub async fn remove(storage: &dyn Storage, attachment_id: &str) -> Removed {
    let mut removed = Removed::default();
    if !is_valid_id(attachment_id) {
        return removed;
    }
    let listed = match storage.list(&previews_of(attachment_id)).await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(attachment_id, error = %e, "previews left for the orphan sweep");
            removed.failed += 1;
            return removed;
        }
    };
    for object in listed {
        delete(storage, &object.key, &mut removed).await;
    }
    removed
}

/// Delete preview objects older than `cutoff` whose attachment has no row.
pub async fn orphans(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    cutoff: SystemTime,
) -> Result<Removed, SweepError> {
    let listed = storage.list(PREVIEWS_PREFIX).await?;
    let old: Vec<(&StorageKey, String)> = listed
        .iter()
        .filter(|o| o.modified < cutoff)
        .filter_map(|o| attachment_of(&o.key).map(|id| (&o.key, id.to_owned())))
        .collect();
    let mut ids: Vec<String> = old.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    let alive: HashSet<String> = catalog
        .find_many(&ids)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut removed = Removed::default();
    for (key, id) in &old {
        if !alive.contains(id) {
            delete(storage, key, &mut removed).await;
        }
    }
    Ok(removed)
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

async fn delete(storage: &dyn Storage, key: &StorageKey, removed: &mut Removed) {
    match storage.delete(key).await {
        Ok(()) => removed.deleted += 1,
        Err(e) => {
            removed.failed += 1;
            tracing::warn!(error = %e, "preview delete failed");
        }
    }
}

/// The attachment id of a preview key (`support-chat/previews/<id>/<variant>.<format>`).
pub fn attachment_of(key: &StorageKey) -> Option<&str> {
    let rest = key.as_str().strip_prefix(PREVIEWS_PREFIX)?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [id, _file] if is_valid_id(id) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_keys_name_their_attachment() {
        let key = |s: &str| StorageKey::parse(s).unwrap();
        assert_eq!(
            attachment_of(&key("support-chat/previews/a1/thumb.webp")),
            Some("a1")
        );
        assert_eq!(attachment_of(&key("support-chat/previews/a1")), None);
        assert_eq!(attachment_of(&key("support-chat/previews/a1/x/y")), None);
        assert_eq!(attachment_of(&key("support-chat/staged/u/a1")), None);
        assert_eq!(
            attachment_of(&key("support-chat/previews/a.b/thumb.webp")),
            None
        );
    }
}
