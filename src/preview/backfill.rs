//! `attachment-gateway previews --backfill` (SPEC §12): make the previews of image rows that
//! have none — rows from before previews existed, or backfilled from legacy JSON — ahead of
//! the first view. Walks the catalog in id order, page by page, as many at once as there are
//! workers, and stops after `limit` rows: bounded, resumable (a second run starts where the
//! rows without previews are), and safe beside a serving gateway (the previews are the same).

use std::sync::Arc;

use futures_util::future::join_all;

use super::{PreviewError, Previews};
use crate::attachment::{AttachmentStatus, SharedRow};
use crate::authn::{Principal, Role};
use crate::authz::{self, Access};
use crate::catalog::{Catalog, CatalogError};

const PAGE: u32 = 100;

/// What one backfill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Rows whose previews were made.
    pub made: u64,
    /// Rows whose source cannot be previewed (remembered by reason in the log).
    pub no_preview: u64,
    /// Rows that failed for a reason worth retrying (storage, catalog); a later run retries.
    pub failed: u64,
}

pub async fn run(
    previews: Arc<Previews>,
    catalog: Arc<dyn Catalog>,
    limit: u64,
    concurrency: usize,
) -> Result<Report, CatalogError> {
    // The backfill reads every attachment, as an administrator would.
    let admin = Principal {
        user_id: "previews-backfill".into(),
        role: Role::Admin,
        permissions: Vec::new(),
    };
    let mut report = Report::default();
    let mut after = String::new();
    let mut seen: u64 = 0;
    while seen < limit {
        let page = catalog.without_previews(&after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        let take = usize::try_from(limit - seen)
            .unwrap_or(usize::MAX)
            .min(page.len());
        seen += take as u64;
        for batch in page[..take].chunks(concurrency.max(1)) {
            let jobs = batch.iter().filter_map(|row| {
                let access = match row.status {
                    AttachmentStatus::Linked => Access::Linked,
                    AttachmentStatus::Uploaded => Access::Staged,
                };
                let permit =
                    authz::authorize(&admin, SharedRow::new(row.clone()), access, "").ok()?;
                let previews = previews.clone();
                Some(async move { previews.rows(&permit).await })
            });
            for outcome in join_all(jobs).await {
                match outcome {
                    Ok(_) => report.made += 1,
                    Err(PreviewError::NoPreview(_)) => report.no_preview += 1,
                    Err(_) => report.failed += 1,
                }
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    Ok(report)
}
