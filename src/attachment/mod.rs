//! The attachment's plain data, the ground floor every other module builds on: the catalog row
//! (`row`), its previews (`preview`), the JSON shape answers give it (`json`) and where its
//! bytes live in the bucket (`key`). Pure: no I/O, no configuration, no imports from the rest of the crate.

pub mod json;
pub mod key;
pub mod preview;
pub mod row;

pub use key::{is_valid_id, KeyError, StorageKey, DIALOGS_PREFIX, PREVIEWS_PREFIX, STAGED_PREFIX};
pub use preview::{Format, ImageInfo, PreviewRow, Variant};
pub use row::{AttachmentRow, AttachmentStatus, NewAttachment, SharedRow, HEAD_KINDS};
