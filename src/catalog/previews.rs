//! The SQL of `"ChatAttachmentPreview"` and of an image's size and placeholder on its
//! attachment (SPEC §5, §12), shared by both engines. No I/O here.

use std::sync::LazyLock;

use super::query::{self, Placeholder};
use super::CatalogError;
use crate::attachment::{Format, PreviewRow, Variant};

/// The media types previews are made of, spliced as literals (a closed set, never input).
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Every statement of this module, per placeholder style.
#[derive(Debug)]
pub struct PreviewSql {
    /// Binds: attachment id. Returns variant, format, storage_path, size_bytes, width, height.
    pub find: String,
    /// Binds: attachment id, variant, format, storagePath, sizeBytes, width, height.
    pub upsert: String,
    /// Binds: width, height, placeholder, attachment id.
    pub set_image: String,
    /// Binds: after id, limit. Image rows without a single preview, in id order.
    pub missing: String,
}

impl PreviewSql {
    fn new(p: Placeholder) -> Self {
        let at = |n: usize| p.at(n);
        let find = format!(
            "SELECT \"variant\" AS variant, \"format\" AS format, \
             \"storagePath\" AS storage_path, \"sizeBytes\" AS size_bytes, \
             CAST(\"width\" AS BIGINT) AS width, CAST(\"height\" AS BIGINT) AS height \
             FROM \"ChatAttachmentPreview\" WHERE \"attachmentId\" = {}",
            at(1)
        );
        let upsert = format!(
            "INSERT INTO \"ChatAttachmentPreview\" (\"attachmentId\", \"variant\", \"format\", \
             \"storagePath\", \"sizeBytes\", \"width\", \"height\") \
             VALUES ({}, {}, {}, {}, {}, {}, {}) \
             ON CONFLICT (\"attachmentId\", \"variant\", \"format\") DO UPDATE SET \
             \"storagePath\" = excluded.\"storagePath\", \"sizeBytes\" = excluded.\"sizeBytes\", \
             \"width\" = excluded.\"width\", \"height\" = excluded.\"height\"",
            at(1),
            at(2),
            at(3),
            at(4),
            at(5),
            at(6),
            at(7)
        );
        let set_image = format!(
            "UPDATE \"ChatAttachment\" SET \"width\" = {}, \"height\" = {}, \"placeholder\" = {} \
             WHERE \"id\" = {}",
            at(1),
            at(2),
            at(3),
            at(4)
        );
        let types = IMAGE_TYPES.map(|t| format!("'{t}'")).join(", ");
        let missing = format!(
            "{} WHERE \"id\" > {} AND \"mimeType\" IN ({types}) AND NOT EXISTS \
             (SELECT 1 FROM \"ChatAttachmentPreview\" p WHERE p.\"attachmentId\" = \
             \"ChatAttachment\".\"id\") ORDER BY \"id\" LIMIT {}",
            query::plain_select(),
            at(1),
            at(2)
        );
        PreviewSql {
            find,
            upsert,
            set_image,
            missing,
        }
    }
}

static DOLLAR: LazyLock<PreviewSql> = LazyLock::new(|| PreviewSql::new(Placeholder::Dollar));
static QUESTION: LazyLock<PreviewSql> = LazyLock::new(|| PreviewSql::new(Placeholder::Question));

pub fn sql(p: Placeholder) -> &'static PreviewSql {
    match p {
        Placeholder::Dollar => &DOLLAR,
        Placeholder::Question => &QUESTION,
    }
}

/// A selected preview row before its values are checked.
pub struct RawPreview {
    pub variant: String,
    pub format: String,
    pub storage_path: String,
    pub size_bytes: i64,
    pub width: i64,
    pub height: i64,
}

impl RawPreview {
    pub fn check(self, attachment_id: &str) -> Result<PreviewRow, CatalogError> {
        let corrupt = |what: &str| {
            CatalogError::CorruptRow(format!("preview of {attachment_id}: bad {what}"))
        };
        let dimension = |v: i64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| corrupt(what))
        };
        Ok(PreviewRow {
            attachment_id: attachment_id.to_owned(),
            variant: Variant::parse(&self.variant).ok_or_else(|| corrupt("variant"))?,
            format: Format::parse(&self.format).ok_or_else(|| corrupt("format"))?,
            storage_path: self.storage_path,
            size_bytes: u64::try_from(self.size_bytes).map_err(|_| corrupt("sizeBytes"))?,
            width: dimension(self.width, "width")?,
            height: dimension(self.height, "height")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_everything_and_splice_only_the_closed_type_list() {
        let s = sql(Placeholder::Dollar);
        assert!(s.upsert.contains("$7") && !s.upsert.contains("$8"));
        assert!(s.set_image.ends_with("WHERE \"id\" = $4"));
        assert!(s.missing.contains("'image/webp'") && s.missing.contains("LIMIT $2"));
        let q = sql(Placeholder::Question);
        assert!(q.find.ends_with("\"attachmentId\" = ?1"));
    }

    #[test]
    fn corrupt_previews_are_refused() {
        let raw = |variant: &str, format: &str, width: i64| RawPreview {
            variant: variant.into(),
            format: format.into(),
            storage_path: "support-chat/previews/a/thumb.webp".into(),
            size_bytes: 10,
            width,
            height: 5,
        };
        let ok = raw("thumb", "webp", 8).check("a").unwrap();
        assert_eq!(
            (ok.variant, ok.format, ok.width),
            (Variant::Thumb, Format::Webp, 8)
        );
        assert!(raw("huge", "webp", 8).check("a").is_err());
        assert!(raw("thumb", "gif", 8).check("a").is_err());
        assert!(raw("thumb", "webp", 0).check("a").is_err());
    }
}
