//! The write side of the staged-upload life cycle (upload, discard, commit, cleanup): the SQL
//! both engines share and the values that cross the `Catalog` trait. No I/O here.
//!
//! As in `query`, identifiers are quoted, values are bound, and the status is an untyped
//! literal (PostgreSQL coerces a literal into an app-defined enum column, not a text value).

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::query::{self, Placeholder};

/// Largest number of ids bound into one `IN (...)` list: far below PostgreSQL's 65,535 and
/// SQLite's 32,766 parameters.
pub const MAX_IDS_PER_QUERY: usize = 500;

/// What `link` changes on each row, all in one transaction.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    pub user_id: String,
    pub dialog_id: String,
    pub message_id: String,
    /// `(attachment id, new storagePath)` of every row to link.
    pub rows: Vec<(String, String)>,
    pub linked_at: DateTime<Utc>,
}

/// A staged row cleanup removed from the catalog; its objects are deleted next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRow {
    pub id: String,
    pub storage_path: String,
    /// Set when a commit recorded its target before copying (see `mark_commit_target`): the
    /// copy under `support-chat/dialogs/<dialogId>/<id>` may exist and has no row either.
    pub dialog_id: Option<String>,
}

/// What one user holds staged right now: the per-user quota is judged on it (SPEC §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StagedUsage {
    pub uploads: u64,
    pub bytes: u64,
}

/// Held while one instance runs a cleanup pass. `release` frees it at once; dropping it
/// without `release` (an interrupted pass) frees it when the holder's session ends.
#[async_trait]
pub trait LockGuard: Send {
    async fn release(self: Box<Self>);
}

pub type CleanupLock = Box<dyn LockGuard>;

/// Every statement of this module, per placeholder style.
#[derive(Debug)]
pub struct StagingSql {
    /// Binds: id, storagePath, mimeType, sizeBytes, originalName, createdByUserId, createdAt.
    pub insert_staged: String,
    /// Binds: id, user. Returns storage_path.
    pub delete_staged: String,
    /// Binds: dialog id, message id, storagePath, linkedAt, id, user.
    pub link_one: String,
    /// Binds: cutoff, limit. Returns id, storage_path, dialog_id.
    pub claim_expired: String,
    /// Binds: user. Returns uploads, bytes (both BIGINT: PostgreSQL's SUM is NUMERIC).
    pub staged_usage: String,
}

impl StagingSql {
    fn new(p: Placeholder) -> Self {
        let at = |n: usize| p.at(n);
        let insert_staged = format!(
            "INSERT INTO \"ChatAttachment\" (\"id\", \"dialogId\", \"messageId\", \
             \"storagePath\", \"mimeType\", \"sizeBytes\", \"originalName\", \
             \"createdByUserId\", \"status\", \"createdAt\", \"linkedAt\") \
             VALUES ({}, NULL, NULL, {}, {}, {}, {}, {}, 'UPLOADED', {}, NULL)",
            at(1),
            at(2),
            at(3),
            at(4),
            at(5),
            at(6),
            at(7)
        );
        let delete_staged = format!(
            "DELETE FROM \"ChatAttachment\" WHERE \"id\" = {} AND \"status\" = 'UPLOADED' \
             AND \"createdByUserId\" = {} RETURNING \"storagePath\" AS storage_path",
            at(1),
            at(2)
        );
        let link_one = format!(
            "UPDATE \"ChatAttachment\" SET \"status\" = 'LINKED', \"dialogId\" = {}, \
             \"messageId\" = {}, \"storagePath\" = {}, \"linkedAt\" = {} \
             WHERE \"id\" = {} AND \"status\" = 'UPLOADED' AND \"createdByUserId\" = {}",
            at(1),
            at(2),
            at(3),
            at(4),
            at(5),
            at(6)
        );
        // One statement: a row is either deleted here or linked by a commit, never both
        // (the commit's UPDATE matches only `UPLOADED` rows). `FOR UPDATE SKIP LOCKED` is
        // PostgreSQL's way to pass over a row a commit is linking right now.
        let lock = match p {
            Placeholder::Dollar => " FOR UPDATE SKIP LOCKED",
            Placeholder::Question => "",
        };
        let claim_expired = format!(
            "DELETE FROM \"ChatAttachment\" WHERE \"id\" IN (SELECT \"id\" FROM \
             \"ChatAttachment\" WHERE \"status\" = 'UPLOADED' AND \"createdAt\" < {} \
             ORDER BY \"createdAt\" LIMIT {}{lock}) AND \"status\" = 'UPLOADED' \
             RETURNING \"id\" AS id, \"storagePath\" AS storage_path, \"dialogId\" AS dialog_id",
            at(1),
            at(2)
        );
        let staged_usage = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS uploads, \
             CAST(COALESCE(SUM(\"sizeBytes\"), 0) AS BIGINT) AS bytes \
             FROM \"ChatAttachment\" WHERE \"status\" = 'UPLOADED' AND \"createdByUserId\" = {}",
            at(1)
        );
        StagingSql {
            insert_staged,
            delete_staged,
            link_one,
            claim_expired,
            staged_usage,
        }
    }

    /// Rows by id, any status, without the dialog owner: `n` placeholders.
    pub fn find_many(&self, p: Placeholder, n: usize) -> String {
        format!(
            "{} WHERE \"id\" IN ({})",
            query::plain_select(),
            list(p, 1, n)
        )
    }

    /// Delete the rows of `n` ids in any status (binds: the ids), returning what their
    /// objects' removal needs. Preview rows go with them by the foreign key's cascade.
    pub fn delete_many(&self, p: Placeholder, n: usize) -> String {
        format!(
            "DELETE FROM \"ChatAttachment\" WHERE \"id\" IN ({}) \
             RETURNING \"id\" AS id, \"storagePath\" AS storage_path, \"dialogId\" AS dialog_id",
            list(p, 1, n)
        )
    }

    /// Record the commit's target dialog on staged rows of the user (binds: dialog, user,
    /// then `n` ids).
    pub fn mark_commit_target(&self, p: Placeholder, n: usize) -> String {
        format!(
            "UPDATE \"ChatAttachment\" SET \"dialogId\" = {} WHERE \"status\" = 'UPLOADED' \
             AND \"createdByUserId\" = {} AND \"id\" IN ({})",
            p.at(1),
            p.at(2),
            list(p, 3, n)
        )
    }
}

/// The statements for `p`, built once.
pub fn sql(p: Placeholder) -> &'static StagingSql {
    static DOLLAR: LazyLock<StagingSql> = LazyLock::new(|| StagingSql::new(Placeholder::Dollar));
    static QUESTION: LazyLock<StagingSql> =
        LazyLock::new(|| StagingSql::new(Placeholder::Question));
    match p {
        Placeholder::Dollar => &DOLLAR,
        Placeholder::Question => &QUESTION,
    }
}

/// `first, first+1, ... first+n-1` as placeholders, comma separated.
fn list(p: Placeholder, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| p.at(i))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_value_and_use_the_engine_placeholders() {
        let pg = sql(Placeholder::Dollar);
        assert!(pg
            .insert_staged
            .contains("VALUES ($1, NULL, NULL, $2, $3, $4, $5, $6, 'UPLOADED', $7, NULL)"));
        assert!(pg.claim_expired.contains("FOR UPDATE SKIP LOCKED"));
        assert!(pg
            .link_one
            .ends_with("\"status\" = 'UPLOADED' AND \"createdByUserId\" = $6"));
        let lite = sql(Placeholder::Question);
        assert!(!lite.claim_expired.contains("FOR UPDATE"));
        assert!(!lite.delete_staged.contains('$'));
        assert!(lite
            .find_many(Placeholder::Question, 3)
            .ends_with("IN (?1, ?2, ?3)"));
        assert!(lite
            .mark_commit_target(Placeholder::Dollar, 2)
            .ends_with("\"createdByUserId\" = $2 AND \"id\" IN ($3, $4)"));
    }
}
