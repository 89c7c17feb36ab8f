//! One `"ChatAttachment"` row as the gateway sees it: plain data, no I/O. Every layer uses it;
//! the catalog only reads and writes it.

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
