//! Authorization (SPEC §3 matrix): (principal, row) -> `Permit` or a denial that looks exactly
//! like a miss. Pure: no I/O. A `Permit` can only be built here, and storage reads need one.

use std::sync::Arc;

use crate::attachment::{AttachmentRow, AttachmentStatus, SharedRow};
use crate::attachment::{PreviewRow, StorageKey};
use crate::authn::{Principal, Role};

/// Proof that the caller may read this row's object. Cloning it is harmless: only this module
/// can make one in the first place.
#[derive(Debug, Clone)]
pub struct Permit {
    row: Arc<SharedRow>,
    key: StorageKey,
}

impl Permit {
    pub fn row(&self) -> &AttachmentRow {
        self.row.row()
    }
    /// The row as the catalog cache shares it (with its derived values).
    pub fn shared_row(&self) -> &SharedRow {
        &self.row
    }
    pub fn key(&self) -> &StorageKey {
        &self.key
    }

    /// Whoever may read an attachment may read its previews (SPEC §12): a permit for the
    /// preview object, whose row describes that object (its type, size and key) and keeps
    /// the attachment's id, name and times.
    pub fn for_preview(&self, preview: &PreviewRow) -> Result<Permit, Denied> {
        let key = StorageKey::parse(&preview.storage_path).map_err(|_| Denied::BadStorageKey)?;
        let row = AttachmentRow {
            mime_type: preview.format.mime().to_owned(),
            size_bytes: preview.size_bytes,
            storage_path: preview.storage_path.clone(),
            ..self.row().clone()
        };
        Ok(Permit {
            row: SharedRow::new(row),
            key,
        })
    }
}

/// Why a read was refused. Callers answer every variant with the same `404` as a miss; the
/// variant exists only for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    NotOwner,
    StaffWithoutPermission,
    NotUploader,
    /// The row's `storagePath` failed validation: never signed, never opened.
    BadStorageKey,
}

/// Which route the row was found through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Linked,
    Staged,
}

/// Decide whether `who` may read `row` found through `access`.
pub fn authorize(
    who: &Principal,
    row: Arc<SharedRow>,
    access: Access,
    staff_permission: &str,
) -> Result<Permit, Denied> {
    decide(who, row.row(), access, staff_permission)?;
    let key = StorageKey::parse(&row.row().storage_path).map_err(|_| Denied::BadStorageKey)?;
    Ok(Permit { row, key })
}

fn decide(
    who: &Principal,
    row: &AttachmentRow,
    access: Access,
    staff_permission: &str,
) -> Result<(), Denied> {
    if who.role == Role::Admin {
        return Ok(());
    }
    match access {
        Access::Staged => {
            debug_assert_eq!(row.status, AttachmentStatus::Uploaded);
            if row.created_by_user_id == who.user_id {
                Ok(())
            } else {
                Err(Denied::NotUploader)
            }
        }
        Access::Linked => match who.role {
            Role::Staff if who.permissions.iter().any(|p| p == staff_permission) => Ok(()),
            Role::Staff => Err(Denied::StaffWithoutPermission),
            _ if row.dialog_owner_id.as_deref() == Some(who.user_id.as_str()) => Ok(()),
            _ => Err(Denied::NotOwner),
        },
    }
}
