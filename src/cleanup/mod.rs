//! Cleanup (SPEC §7): delete staged uploads nobody committed within `upload.staged_ttl_min`,
//! staged objects that no staged row owns, and dialog objects no row serves (`dialogs`). One pass is `run_pass`; `CleanupService` runs
//! one every `upload.cleanup_interval_s` inside the server; `cleanup --once` runs one and exits.
//!
//! Safe to interrupt and to repeat: a row is claimed by an atomic `DELETE ... RETURNING`
//! (so a concurrent commit either linked it first or finds it gone), its objects are deleted
//! after, and an object left behind by an interrupted pass has no row any more, so the next
//! pass's orphan sweep takes it. Only one instance runs a pass at a time (`try_cleanup_lock`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub mod dialogs;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::attachment::{is_valid_id, STAGED_PREFIX};
use crate::catalog::{AttachmentRow, AttachmentStatus, Catalog, CatalogError, ClaimedRow};
use crate::io_runtime;
use crate::storage::{ListedObject, Storage, StorageError, StorageKey};

/// Rows claimed per statement, and statements per pass: a pass stays short and a backlog is
/// worked off over several passes.
const CLAIM_BATCH: u32 = 100;
const MAX_BATCHES: usize = 50;

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Expired `UPLOADED` rows deleted.
    pub expired_rows: u64,
    /// Objects of those rows deleted (staged objects and unfinished commit copies).
    pub expired_objects: u64,
    /// Staged objects older than the TTL with no staged row, deleted.
    pub orphans: u64,
    /// Dialog objects older than the TTL that no row serves and no commit targets, deleted.
    pub dialog_orphans: u64,
    /// Deletes that failed (retried by the next pass).
    pub failures: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// One pass at time `now`; `Ok(None)` when another instance holds the lock.
pub async fn run_pass(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Option<Report>, CleanupError> {
    let Some(lock) = catalog.try_cleanup_lock().await? else {
        tracing::info!("cleanup pass skipped: another instance holds the lock");
        return Ok(None);
    };
    let cutoff = now - chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let result = pass(catalog, storage, cutoff).await;
    lock.release().await;
    let report = result?;
    crate::metrics::cleanup_deleted(report.expired_rows + report.orphans + report.dialog_orphans);
    tracing::info!(
        expired_rows = report.expired_rows,
        expired_objects = report.expired_objects,
        orphans = report.orphans,
        dialog_orphans = report.dialog_orphans,
        failures = report.failures,
        "cleanup pass done"
    );
    Ok(Some(report))
}

async fn pass(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    cutoff: DateTime<Utc>,
) -> Result<Report, CleanupError> {
    let mut report = Report::default();
    for _ in 0..MAX_BATCHES {
        let claimed = catalog.claim_expired_staged(cutoff, CLAIM_BATCH).await?;
        report.expired_rows += claimed.len() as u64;
        for row in &claimed {
            let previews = crate::preview::sweep::remove(storage, &row.id).await;
            report.expired_objects += previews.deleted;
            report.failures += previews.failed;
            for key in objects_of(row) {
                match storage.delete(&key).await {
                    Ok(()) => report.expired_objects += 1,
                    Err(e) => {
                        // The row is gone: the staged object is now an orphan the next sweep
                        // removes.
                        report.failures += 1;
                        tracing::warn!(attachment_id = %row.id, error = %e, "cleanup delete failed");
                    }
                }
            }
        }
        if claimed.len() < CLAIM_BATCH as usize {
            break;
        }
    }
    let listed = storage.list(STAGED_PREFIX).await?;
    let old: Vec<&ListedObject> = listed
        .iter()
        .filter(|o| o.modified < SystemTime::from(cutoff))
        .collect();
    let ids: Vec<String> = old
        .iter()
        .filter_map(|o| staged_id(&o.key).map(str::to_owned))
        .collect();
    let rows = catalog.find_many(&ids).await?;
    for key in orphans(&old, &rows) {
        match storage.delete(&key).await {
            Ok(()) => report.orphans += 1,
            Err(e) => {
                report.failures += 1;
                tracing::warn!(error = %e, "cleanup orphan delete failed");
            }
        }
    }
    // Copies under a dialog that no row serves (a commit that lost a race, or crashed). The
    // staged TTL is the grace: a commit copies and links within seconds, and its row records
    // the target before the copy, so an in-flight commit's copy is kept whatever its age.
    match dialogs::sweep(catalog, storage, SystemTime::from(cutoff)).await {
        Ok(swept) => {
            report.dialog_orphans += swept.deleted;
            report.failures += swept.failed;
        }
        Err(e) => {
            report.failures += 1;
            tracing::warn!(error = %e, "cleanup dialog sweep failed");
        }
    }
    // Previews whose attachment is gone (its job finished after a delete, say).
    match crate::preview::sweep::orphans(catalog, storage, SystemTime::from(cutoff)).await {
        Ok(previews) => {
            report.orphans += previews.deleted;
            report.failures += previews.failed;
        }
        Err(e) => {
            report.failures += 1;
            tracing::warn!(error = %e, "cleanup preview sweep failed");
        }
    }
    Ok(report)
}

/// The objects an expired staged row may have: its staged object and, when a commit recorded
/// a target but never linked, the copy under that dialog.
pub fn objects_of(row: &ClaimedRow) -> Vec<StorageKey> {
    let mut keys = Vec::new();
    match StorageKey::parse(&row.storage_path) {
        Ok(key) => keys.push(key),
        Err(e) => {
            tracing::error!(attachment_id = %row.id, error = %e, "expired row had a bad storagePath")
        }
    }
    if let Some(dialog) = row.dialog_id.as_deref() {
        if is_valid_id(dialog) && is_valid_id(&row.id) {
            keys.push(StorageKey::dialog(dialog, &row.id));
        }
    }
    keys
}

/// The attachment id of a staged key (`support-chat/staged/<user>/<id>`).
pub fn staged_id(key: &StorageKey) -> Option<&str> {
    let rest = key.as_str().strip_prefix(STAGED_PREFIX)?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [_user, id] if is_valid_id(id) => Some(id),
        _ => None,
    }
}

/// Of the (already old enough) staged objects, those no staged row owns: no row at all, a row
/// that is `LINKED` now (its object lives under the dialog), or a row pointing elsewhere.
pub fn orphans(old: &[&ListedObject], rows: &[AttachmentRow]) -> Vec<StorageKey> {
    let owned: HashMap<&str, &AttachmentRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    old.iter()
        .filter(|o| {
            let owner = staged_id(&o.key).and_then(|id| owned.get(id));
            !owner.is_some_and(|r| {
                r.status == AttachmentStatus::Uploaded && r.storage_path == o.key.as_str()
            })
        })
        .map(|o| o.key.clone())
        .collect()
}

/// `attachment-gateway cleanup --once`: one pass with the configured catalog and storage; the
/// report goes to stdout as one JSON line (`{"skipped":true}` when another instance holds the
/// lock).
pub fn run_once(cfg: &crate::config::Config) -> anyhow::Result<()> {
    let report = io_runtime::block_on(async {
        let catalog = crate::catalog::connect(&cfg.catalog).await?;
        let storage = crate::storage::build(&cfg.storage)?;
        let report = run_pass(
            catalog.as_ref(),
            storage.as_ref(),
            cfg.upload.staged_ttl,
            Utc::now(),
        )
        .await?;
        anyhow::Ok(report)
    })?;
    let line = match report {
        Some(report) => serde_json::to_value(report)?,
        None => serde_json::json!({ "skipped": true }),
    };
    println!("{line}");
    Ok(())
}

/// The background job inside the server: a pass every `interval`, the first at start.
pub struct CleanupService {
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
    pub ttl: Duration,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for CleanupService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let (catalog, storage, ttl) = (self.catalog.clone(), self.storage.clone(), self.ttl);
            let pass = io_runtime::run(async move {
                run_pass(catalog.as_ref(), storage.as_ref(), ttl, Utc::now()).await
            });
            // A pass interrupted by shutdown finishes on the I/O runtime or is cut with the
            // process; either way the next pass picks up what is left.
            tokio::select! {
                _ = shutdown.changed() => return,
                done = pass => match done {
                    Ok(Err(e)) => tracing::error!(error = %e, "cleanup pass failed"),
                    Err(e) => tracing::error!(error = %e, "cleanup pass crashed"),
                    Ok(Ok(_)) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str) -> ListedObject {
        ListedObject {
            key: StorageKey::parse(key).unwrap(),
            size: 1,
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    fn row(id: &str, status: AttachmentStatus, path: &str) -> AttachmentRow {
        AttachmentRow {
            id: id.into(),
            dialog_id: None,
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
    fn only_objects_a_staged_row_owns_are_kept() {
        use AttachmentStatus::*;
        let objects = [
            listed("support-chat/staged/u/kept"),
            listed("support-chat/staged/u/norow"),
            listed("support-chat/staged/u/linked"),
            listed("support-chat/staged/u/moved"),
            listed("support-chat/staged/u/deeper/x"),
        ];
        let old: Vec<&ListedObject> = objects.iter().collect();
        let rows = [
            row("kept", Uploaded, "support-chat/staged/u/kept"),
            row("linked", Linked, "support-chat/dialogs/d/linked"),
            row("moved", Uploaded, "support-chat/staged/other/moved"),
        ];
        let gone: Vec<String> = orphans(&old, &rows)
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        assert_eq!(
            gone,
            [
                "support-chat/staged/u/norow",
                "support-chat/staged/u/linked",
                "support-chat/staged/u/moved",
                "support-chat/staged/u/deeper/x"
            ]
        );
    }

    #[test]
    fn ids_and_objects_of_rows() {
        let key = |s: &str| StorageKey::parse(s).unwrap();
        assert_eq!(staged_id(&key("support-chat/staged/u/a1")), Some("a1"));
        assert_eq!(staged_id(&key("support-chat/staged/u")), None);
        assert_eq!(staged_id(&key("support-chat/dialogs/d/a1")), None);
        let claimed = ClaimedRow {
            id: "a1".into(),
            storage_path: "support-chat/staged/u/a1".into(),
            dialog_id: Some("d1".into()),
        };
        let keys: Vec<String> = objects_of(&claimed).iter().map(|k| k.to_string()).collect();
        assert_eq!(
            keys,
            ["support-chat/staged/u/a1", "support-chat/dialogs/d1/a1"]
        );
        let bad = ClaimedRow {
            storage_path: "../x".into(),
            dialog_id: None,
            ..claimed
        };
        assert!(objects_of(&bad).is_empty());
    }
}
