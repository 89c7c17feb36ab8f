//! The catalog's SQL, built once per catalog from the configured dialog table, and the checks
//! that turn a raw database row into an `AttachmentRow`. No I/O here.
//!
//! Both engines share one text: identifiers are double-quoted (SQL standard), casts use
//! `CAST(.. AS TEXT)`, and only the parameter marker differs (`$1` for PostgreSQL, `?1` for
//! SQLite). Values are always bound as parameters; the only things spliced into the text are
//! the two configured identifiers (checked by `Identifier::new`) and the status literals of a
//! closed enum.

use chrono::{DateTime, SubsecRound, Utc};

use super::{AttachmentRow, AttachmentStatus, CatalogError};
use crate::attachment::ImageInfo;

/// PostgreSQL truncates longer identifiers silently (NAMEDATALEN - 1); refuse them instead.
const MAX_IDENTIFIER_LEN: usize = 63;

/// A plain SQL identifier (`[A-Za-z_][A-Za-z0-9_]*`), safe to splice into SQL once quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(String);

impl Identifier {
    /// The config layer validates these already; checking again here keeps the SQL builder
    /// safe on its own, whoever calls it.
    pub fn new(key: &str, value: &str) -> Result<Self, CatalogError> {
        let mut chars = value.chars();
        let head_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let tail_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if head_ok && tail_ok && value.len() <= MAX_IDENTIFIER_LEN {
            Ok(Identifier(value.to_owned()))
        } else {
            Err(CatalogError::Database(sqlx::Error::Configuration(
                format!("catalog.{key} is not a plain SQL identifier: {value:?}").into(),
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `"name"`: the shape rules out any quote inside, so no escaping is needed.
    pub(super) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// How the engine spells positional parameter `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `$1` (PostgreSQL).
    Dollar,
    /// `?1` (SQLite).
    Question,
}

impl Placeholder {
    /// Parameter `n` (1-based) in this engine's spelling.
    pub(super) fn at(self, n: usize) -> String {
        match self {
            Placeholder::Dollar => format!("${n}"),
            Placeholder::Question => format!("?{n}"),
        }
    }
}

/// Every statement a catalog runs, built once at construction.
#[derive(Debug, Clone)]
pub struct Queries {
    /// Binds: attachment id, dialog id.
    pub find_linked: String,
    /// Binds: attachment id.
    pub find_staged: String,
    /// Binds: dialog id, owner id.
    pub upsert_dialog: String,
    /// Binds: id, dialogId, messageId, storagePath, mimeType, sizeBytes, originalName,
    /// createdByUserId, createdAt. The status is a literal (see `upsert_attachment`).
    upsert_uploaded: String,
    upsert_linked: String,
}

impl Queries {
    pub fn new(dialog_table: &Identifier, owner_column: &Identifier, p: Placeholder) -> Self {
        let table = dialog_table.quoted();
        let owner = owner_column.quoted();
        // Aliased to snake_case so that decoding does not depend on the quoted names. The
        // status and owner are read as text: the app's schema may declare the status as a
        // PostgreSQL enum and the owner as another type, and both still decode as strings.
        let image = image_columns("a.");
        let select = format!(
            "SELECT a.\"id\" AS id, a.\"dialogId\" AS dialog_id, a.\"messageId\" AS message_id, \
             a.\"storagePath\" AS storage_path, a.\"mimeType\" AS mime_type, \
             a.\"sizeBytes\" AS size_bytes, a.\"originalName\" AS original_name, \
             a.\"createdByUserId\" AS created_by_user_id, CAST(a.\"status\" AS TEXT) AS status, \
             a.\"createdAt\" AS created_at, a.\"linkedAt\" AS linked_at, \
             CAST(d.{owner} AS TEXT) AS owner, {image} \
             FROM \"ChatAttachment\" a LEFT JOIN {table} d ON d.\"id\" = a.\"dialogId\""
        );
        let find_linked = format!(
            "{select} WHERE a.\"id\" = {} AND a.\"dialogId\" = {} AND a.\"status\" = 'LINKED'",
            p.at(1),
            p.at(2)
        );
        let find_staged = format!(
            "{select} WHERE a.\"id\" = {} AND a.\"status\" = 'UPLOADED'",
            p.at(1)
        );
        let upsert_dialog = format!(
            "INSERT INTO {table} (\"id\", {owner}) VALUES ({}, {}) \
             ON CONFLICT (\"id\") DO UPDATE SET {owner} = excluded.{owner}",
            p.at(1),
            p.at(2)
        );
        Queries {
            find_linked,
            find_staged,
            upsert_dialog,
            upsert_uploaded: upsert_attachment_sql(p, AttachmentStatus::Uploaded),
            upsert_linked: upsert_attachment_sql(p, AttachmentStatus::Linked),
        }
    }

    /// The upsert for a row of `status`. The status goes in as an untyped literal rather than
    /// a text parameter, because PostgreSQL will not assign a text value to an enum column
    /// (which the app's own schema may use) but does coerce a literal.
    pub fn upsert_attachment(&self, status: AttachmentStatus) -> &str {
        match status {
            AttachmentStatus::Uploaded => &self.upsert_uploaded,
            AttachmentStatus::Linked => &self.upsert_linked,
        }
    }
}

fn upsert_attachment_sql(p: Placeholder, status: AttachmentStatus) -> String {
    let status_literal = status.as_str();
    // A row seeded as LINKED counts as linked when it was created; a staged row has no link.
    let linked_at = match status {
        AttachmentStatus::Linked => p.at(9),
        AttachmentStatus::Uploaded => "NULL".to_owned(),
    };
    format!(
        "INSERT INTO \"ChatAttachment\" (\"id\", \"dialogId\", \"messageId\", \"storagePath\", \
         \"mimeType\", \"sizeBytes\", \"originalName\", \"createdByUserId\", \"status\", \
         \"createdAt\", \"linkedAt\") \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, '{status_literal}', {}, {linked_at}) \
         ON CONFLICT (\"id\") DO UPDATE SET \"dialogId\" = excluded.\"dialogId\", \
         \"messageId\" = excluded.\"messageId\", \"storagePath\" = excluded.\"storagePath\", \
         \"mimeType\" = excluded.\"mimeType\", \"sizeBytes\" = excluded.\"sizeBytes\", \
         \"originalName\" = excluded.\"originalName\", \
         \"createdByUserId\" = excluded.\"createdByUserId\", \"status\" = excluded.\"status\", \
         \"createdAt\" = excluded.\"createdAt\", \"linkedAt\" = excluded.\"linkedAt\"",
        p.at(1),
        p.at(2),
        p.at(3),
        p.at(4),
        p.at(5),
        p.at(6),
        p.at(7),
        p.at(8),
        p.at(9),
    )
}

/// What a select reads of an image's size and placeholder; `table` is the alias with its dot
/// (`a.`, so that a dialog table's own columns never clash) or empty. Cast to 64 bits so that
/// both engines decode the same Rust type.
pub fn image_columns(table: &str) -> String {
    format!(
        "CAST({table}\"width\" AS BIGINT) AS width, CAST({table}\"height\" AS BIGINT) AS height, \
         {table}\"placeholder\" AS placeholder"
    )
}

/// Attachment rows without their dialog owner (commit, cleanup, backfills): the columns
/// `RawRow` decodes, from `"ChatAttachment"` alone.
pub fn plain_select() -> String {
    format!(
        "SELECT \"id\" AS id, \"dialogId\" AS dialog_id, \"messageId\" AS message_id, \
         \"storagePath\" AS storage_path, \"mimeType\" AS mime_type, \
         \"sizeBytes\" AS size_bytes, \"originalName\" AS original_name, \
         \"createdByUserId\" AS created_by_user_id, CAST(\"status\" AS TEXT) AS status, \
         \"createdAt\" AS created_at, \"linkedAt\" AS linked_at, \
         CAST(NULL AS TEXT) AS owner, {} \
         FROM \"ChatAttachment\"",
        image_columns("")
    )
}

/// A selected row before its values are checked; timestamps already converted by the engine.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub id: String,
    pub dialog_id: Option<String>,
    pub message_id: Option<String>,
    pub storage_path: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub original_name: String,
    pub created_by_user_id: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub linked_at: Option<DateTime<Utc>>,
    pub owner: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub placeholder: Option<String>,
}

/// A stored image dimension: positive and 32-bit, or the row is corrupt.
fn dimension(id: &str, column: &str, value: Option<i64>) -> Result<Option<u32>, CatalogError> {
    value
        .map(|v| {
            u32::try_from(v).ok().filter(|&n| n > 0).ok_or_else(|| {
                CatalogError::CorruptRow(format!("attachment {id}: bad {column} {v}"))
            })
        })
        .transpose()
}

impl RawRow {
    /// Reject what the schema should have prevented: a row the gateway cannot reason about is
    /// an error, never a guess.
    pub fn check(self) -> Result<AttachmentRow, CatalogError> {
        let size_bytes = u64::try_from(self.size_bytes).map_err(|_| {
            CatalogError::CorruptRow(format!(
                "attachment {}: negative sizeBytes {}",
                self.id, self.size_bytes
            ))
        })?;
        let status = parse_status(&self.status).ok_or_else(|| {
            CatalogError::CorruptRow(format!(
                "attachment {}: unknown status {:?}",
                self.id, self.status
            ))
        })?;
        let image = ImageInfo {
            width: dimension(&self.id, "width", self.width)?,
            height: dimension(&self.id, "height", self.height)?,
            placeholder: self.placeholder,
        };
        Ok(AttachmentRow {
            id: self.id,
            dialog_id: self.dialog_id,
            message_id: self.message_id,
            storage_path: self.storage_path,
            mime_type: self.mime_type,
            size_bytes,
            original_name: self.original_name,
            created_by_user_id: self.created_by_user_id,
            status,
            created_at: truncate_to_millis(self.created_at),
            linked_at: self.linked_at.map(truncate_to_millis),
            dialog_owner_id: self.owner,
            image,
        })
    }
}

pub fn parse_status(s: &str) -> Option<AttachmentStatus> {
    match s {
        "UPLOADED" => Some(AttachmentStatus::Uploaded),
        "LINKED" => Some(AttachmentStatus::Linked),
        _ => None,
    }
}

/// The catalog keeps milliseconds (`timestamp(3)`); anything finer is dropped, not rounded, so
/// that a value never moves into the next millisecond.
pub fn truncate_to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// A size the database can hold (`bigint`).
pub fn size_to_sql(id: &str, size: u64) -> Result<i64, CatalogError> {
    i64::try_from(size).map_err(|_| {
        CatalogError::CorruptRow(format!("attachment {id}: sizeBytes {size} exceeds bigint"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn ident(s: &str) -> Identifier {
        Identifier::new("dialog_table", s).unwrap()
    }

    fn raw() -> RawRow {
        RawRow {
            id: "a1".into(),
            dialog_id: Some("d1".into()),
            message_id: None,
            storage_path: "support-chat/dialogs/d1/a1".into(),
            mime_type: "image/png".into(),
            size_bytes: 10,
            original_name: "x.png".into(),
            created_by_user_id: "u1".into(),
            status: "LINKED".into(),
            created_at: Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            linked_at: None,
            owner: Some("u1".into()),
            width: None,
            height: None,
            placeholder: None,
        }
    }

    #[test]
    fn identifiers() {
        for ok in ["SupportDialog", "userId", "_x", "a1_b2", &"a".repeat(63)] {
            assert!(Identifier::new("k", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "a-b",
            "a\"b",
            "a b",
            "a;drop",
            "Ä",
            "x.y",
            long.as_str(),
        ] {
            assert!(Identifier::new("k", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sql_uses_configured_names_and_placeholders() {
        let pg = Queries::new(&ident("Dialogs"), &ident("owner"), Placeholder::Dollar);
        assert!(pg
            .find_linked
            .contains("LEFT JOIN \"Dialogs\" d ON d.\"id\" = a.\"dialogId\""));
        assert!(pg
            .find_linked
            .contains("CAST(d.\"owner\" AS TEXT) AS owner"));
        assert!(pg
            .find_linked
            .ends_with("WHERE a.\"id\" = $1 AND a.\"dialogId\" = $2 AND a.\"status\" = 'LINKED'"));
        assert!(pg
            .find_staged
            .ends_with("WHERE a.\"id\" = $1 AND a.\"status\" = 'UPLOADED'"));
        assert!(pg
            .upsert_dialog
            .starts_with("INSERT INTO \"Dialogs\" (\"id\", \"owner\") VALUES ($1, $2)"));

        let lite = Queries::new(
            &ident("SupportDialog"),
            &ident("userId"),
            Placeholder::Question,
        );
        assert!(lite
            .find_linked
            .contains("a.\"id\" = ?1 AND a.\"dialogId\" = ?2"));
        assert!(!lite.find_linked.contains('$'));
        let linked = lite.upsert_attachment(AttachmentStatus::Linked);
        assert!(linked.contains("'LINKED', ?9, ?9)"));
        let uploaded = lite.upsert_attachment(AttachmentStatus::Uploaded);
        assert!(uploaded.contains("'UPLOADED', ?9, NULL)"));
    }

    #[test]
    fn check_accepts_a_good_row_and_truncates_to_millis() {
        let row = raw().check().unwrap();
        assert_eq!(row.status, AttachmentStatus::Linked);
        assert_eq!(row.size_bytes, 10);
        assert_eq!(row.created_at.timestamp_subsec_nanos(), 123_000_000);
        assert_eq!(row.dialog_owner_id.as_deref(), Some("u1"));
    }

    #[test]
    fn check_rejects_corrupt_rows() {
        let negative = RawRow {
            size_bytes: -1,
            ..raw()
        };
        assert!(matches!(negative.check(), Err(CatalogError::CorruptRow(_))));
        for status in ["linked", "DELETED", "", "UPLOADED "] {
            let bad = RawRow {
                status: status.into(),
                ..raw()
            };
            assert!(
                matches!(bad.check(), Err(CatalogError::CorruptRow(_))),
                "{status:?}"
            );
        }
    }

    #[test]
    fn sizes_beyond_bigint_are_refused() {
        assert_eq!(size_to_sql("a", i64::MAX as u64).unwrap(), i64::MAX);
        assert!(size_to_sql("a", i64::MAX as u64 + 1).is_err());
    }

    proptest! {
        #[test]
        fn identifier_shape_is_exactly_the_documented_one(s in "\\PC{0,20}") {
            let expected = !s.is_empty()
                && s.len() <= MAX_IDENTIFIER_LEN
                && s.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
            prop_assert_eq!(Identifier::new("k", &s).is_ok(), expected);
        }

        #[test]
        fn truncation_never_rounds_up(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000) {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            let cut = truncate_to_millis(t);
            prop_assert!(cut <= t);
            prop_assert!(t - cut < chrono::Duration::milliseconds(1));
            prop_assert_eq!(cut.timestamp_subsec_nanos() % 1_000_000, 0);
        }
    }
}
