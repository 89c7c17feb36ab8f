//! One `"ChatAttachment"` row as the gateway sees it: plain data, no I/O. Every layer uses it;
//! the catalog only reads and writes it.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use super::ImageInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentStatus {
    Uploaded,
    Linked,
}

impl AttachmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentStatus::Uploaded => "UPLOADED",
            AttachmentStatus::Linked => "LINKED",
        }
    }
}

/// One `ChatAttachment` row joined with the owner of its dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRow {
    pub id: String,
    pub dialog_id: Option<String>,
    pub message_id: Option<String>,
    pub storage_path: String,
    pub mime_type: String,
    pub size_bytes: u64,
    pub original_name: String,
    pub created_by_user_id: String,
    pub status: AttachmentStatus,
    /// Millisecond precision, as stored (`timestamp(3)`).
    pub created_at: DateTime<Utc>,
    pub linked_at: Option<DateTime<Utc>>,
    /// `"SupportDialog"."userId"` of `dialog_id`, read in the same query; `None` when unlinked
    /// or when the dialog row is missing.
    pub dialog_owner_id: Option<String>,
    /// Size and placeholder of an image, once its thumb is made.
    pub image: ImageInfo,
}

/// A row to insert (uploads, demo and test seeding).
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub id: String,
    pub dialog_id: Option<String>,
    pub message_id: Option<String>,
    pub storage_path: String,
    pub mime_type: String,
    pub size_bytes: u64,
    pub original_name: String,
    pub created_by_user_id: String,
    pub status: AttachmentStatus,
    pub created_at: DateTime<Utc>,
}

/// A row as the requests that read it share it: the catalog cache hands every read of one
/// attachment the same `Arc` of one of these, so a read clones no strings, and what each read
/// derives from the row alone (its ETag, its response heads) is worked out once, by the first.
#[derive(Debug)]
pub struct SharedRow {
    row: AttachmentRow,
    etag: OnceLock<String>,
    /// Response heads made from the row, one slot per kind of read (`HEAD_KINDS`); `None` in a
    /// slot when the row makes no valid head of that kind.
    heads: [OnceLock<Option<http::HeaderMap>>; HEAD_KINDS],
}

/// How many kinds of response head a shared row keeps (the HTTP code numbers them).
pub const HEAD_KINDS: usize = 4;

/// Two are equal when their rows are: the derived values follow from the row.
impl PartialEq for SharedRow {
    fn eq(&self, other: &Self) -> bool {
        self.row == other.row
    }
}

impl Eq for SharedRow {}

impl SharedRow {
    pub fn new(row: AttachmentRow) -> Arc<Self> {
        Arc::new(SharedRow {
            row,
            etag: OnceLock::new(),
            heads: Default::default(),
        })
    }

    pub fn row(&self) -> &AttachmentRow {
        &self.row
    }

    /// The ETag, `derive`d from the row by the first caller and kept. Every caller must pass
    /// the same function (the tag's definition lives with the HTTP code, not here).
    pub fn etag(&self, derive: impl FnOnce(&AttachmentRow) -> String) -> &str {
        self.etag.get_or_init(|| derive(&self.row))
    }

    /// The response head of `kind` (below `HEAD_KINDS`), `derive`d from the row by the first
    /// caller of that kind and kept; as with `etag`, every caller of a kind passes the same
    /// function.
    pub fn head(
        &self,
        kind: usize,
        derive: impl FnOnce(&AttachmentRow) -> Option<http::HeaderMap>,
    ) -> Option<&http::HeaderMap> {
        self.heads[kind].get_or_init(|| derive(&self.row)).as_ref()
    }
}
