//! What one legacy message's attachment JSON becomes (SPEC §13): a `LINKED` row per element,
//! or a reason to skip it. Pure: the message comes in as plain data, nothing is read or
//! written here.
//!
//! Strict where a wrong row would do harm: a path that is not a safe storage key, a missing or
//! non-integer size, an id that is not a path id, a message without dialog or author: skipped
//! and reported, never inserted. Lenient where the gateway is safe anyway: a missing or
//! unparsable media type becomes `application/octet-stream` (served as a download), a missing
//! name becomes `attachment`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::attachment::key::{is_valid_id, StorageKey};
use crate::attachment::{AttachmentStatus, NewAttachment};
use crate::catalog::legacy::LegacyMessage;
use crate::config::LegacyFields;
use crate::http::media;

/// Why an element (or a whole message) was not inserted; the summary counts each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The attachments column is not JSON.
    InvalidJson,
    /// It is JSON, but neither an array nor null.
    NotAnArray,
    /// An element that is not a JSON object.
    NotAnObject,
    NoDialog,
    /// The dialog id is not a path id: no read route could ever reach the row.
    InvalidDialog,
    NoAuthor,
    PathMissing,
    UnsafePath,
    SizeMissing,
    /// Present, but not a whole number of bytes within `i64`.
    SizeInvalid,
    InvalidId,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InvalidJson => "invalid_json",
            SkipReason::NotAnArray => "not_an_array",
            SkipReason::NotAnObject => "not_an_object",
            SkipReason::NoDialog => "no_dialog",
            SkipReason::InvalidDialog => "invalid_dialog",
            SkipReason::NoAuthor => "no_author",
            SkipReason::PathMissing => "path_missing",
            SkipReason::UnsafePath => "unsafe_path",
            SkipReason::SizeMissing => "size_missing",
            SkipReason::SizeInvalid => "size_invalid",
            SkipReason::InvalidId => "invalid_id",
        }
    }
}

/// One skipped element: which message, which position (`None`: the whole message), why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub message_id: String,
    pub position: Option<usize>,
    pub reason: SkipReason,
}

/// The rows and skips of one message.
#[derive(Debug, Default)]
pub struct Converted {
    pub rows: Vec<NewAttachment>,
    pub skips: Vec<Skip>,
}

/// The id an element without one gets: stable across runs (the same message and position give
/// the same id), so a second run finds it and inserts nothing; a path id of 34 characters.
pub fn derived_id(message_id: &str, position: usize) -> String {
    let digest = Sha256::digest(format!("{message_id}\u{0}{position}").as_bytes());
    format!("lg{}", &hex::encode(digest)[..32])
}

pub fn convert(message: &LegacyMessage, fields: &LegacyFields) -> Converted {
    let mut out = Converted::default();
    let whole = |reason| Skip {
        message_id: message.id.clone(),
        position: None,
        reason,
    };
    let Some(text) = message.attachments.as_deref() else {
        return out;
    };
    let elements = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(elements)) => elements,
        Ok(Value::Null) => return out,
        Ok(_) => {
            out.skips.push(whole(SkipReason::NotAnArray));
            return out;
        }
        Err(_) => {
            out.skips.push(whole(SkipReason::InvalidJson));
            return out;
        }
    };
    if elements.is_empty() {
        return out;
    }
    let dialog = match message.dialog_id.as_deref() {
        None => Err(SkipReason::NoDialog),
        Some(d) if !is_valid_id(d) => Err(SkipReason::InvalidDialog),
        Some(d) => Ok(d),
    };
    let author = message
        .author_id
        .as_deref()
        .filter(|a| !a.is_empty())
        .ok_or(SkipReason::NoAuthor);
    let (dialog, author) = match (dialog, author) {
        (Ok(d), Ok(a)) => (d, a),
        (Err(reason), _) | (_, Err(reason)) => {
            // Every element of the message fails the same way: report each, so the counts
            // are of attachments, as `inserted` is.
            for position in 0..elements.len() {
                out.skips.push(Skip {
                    position: Some(position),
                    ..whole(reason)
                });
            }
            return out;
        }
    };
    for (position, element) in elements.iter().enumerate() {
        match row(message, dialog, author, position, element, fields) {
            Ok(row) => out.rows.push(row),
            Err(reason) => out.skips.push(Skip {
                position: Some(position),
                ..whole(reason)
            }),
        }
    }
    out
}

fn row(
    message: &LegacyMessage,
    dialog: &str,
    author: &str,
    position: usize,
    element: &Value,
    fields: &LegacyFields,
) -> Result<NewAttachment, SkipReason> {
    let Value::Object(e) = element else {
        return Err(SkipReason::NotAnObject);
    };
    let present = |key: &str| e.get(key).filter(|v| !v.is_null());
    let path = match present(&fields.path) {
        None => return Err(SkipReason::PathMissing),
        Some(Value::String(p)) => StorageKey::parse(p).map_err(|_| SkipReason::UnsafePath)?,
        Some(_) => return Err(SkipReason::UnsafePath),
    };
    let size_bytes = match present(&fields.size) {
        None => return Err(SkipReason::SizeMissing),
        Some(v) => v
            .as_u64()
            .filter(|n| i64::try_from(*n).is_ok())
            .ok_or(SkipReason::SizeInvalid)?,
    };
    let id = match present(&fields.id) {
        None => derived_id(&message.id, position),
        Some(Value::String(id)) if is_valid_id(id) => id.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(_) => return Err(SkipReason::InvalidId),
    };
    let mime_type = present(&fields.mime)
        .and_then(Value::as_str)
        .and_then(media::normalize)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let original_name = present(&fields.name)
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or("attachment")
        .to_owned();
    Ok(NewAttachment {
        id,
        dialog_id: Some(dialog.to_owned()),
        message_id: Some(message.id.clone()),
        storage_path: path.as_str().to_owned(),
        mime_type,
        size_bytes,
        original_name,
        created_by_user_id: author.to_owned(),
        status: AttachmentStatus::Linked,
        created_at: message.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn fields() -> LegacyFields {
        LegacyFields {
            path: "storagePath".into(),
            name: "originalName".into(),
            mime: "mimeType".into(),
            size: "sizeBytes".into(),
            id: "id".into(),
        }
    }

    fn message(json: &str) -> LegacyMessage {
        LegacyMessage {
            id: "m1".into(),
            dialog_id: Some("d1".into()),
            author_id: Some("alice".into()),
            created_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
            attachments: Some(json.into()),
        }
    }

    fn reasons(c: &Converted) -> Vec<(Option<usize>, &'static str)> {
        c.skips
            .iter()
            .map(|s| (s.position, s.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_good_element_becomes_a_linked_row_of_its_message() {
        let c = convert(
            &message(
                r#"[{"id":"a1","storagePath":"chat/d1/a1.png","originalName":"cat.png",
                    "mimeType":"IMAGE/PNG; x=1","sizeBytes":42}]"#,
            ),
            &fields(),
        );
        assert!(c.skips.is_empty());
        let r = &c.rows[0];
        assert_eq!(r.id, "a1");
        assert_eq!(r.dialog_id.as_deref(), Some("d1"));
        assert_eq!(r.message_id.as_deref(), Some("m1"));
        assert_eq!(r.created_by_user_id, "alice");
        assert_eq!(r.mime_type, "image/png");
        assert_eq!(r.size_bytes, 42);
        assert_eq!(r.status, AttachmentStatus::Linked);
        assert_eq!(r.created_at, message("").created_at);
    }

    #[test]
    fn unsafe_paths_and_missing_sizes_are_skipped_and_reported() {
        let c = convert(
            &message(
                r#"[{"storagePath":"../etc/passwd","sizeBytes":1},
                    {"storagePath":"/abs","sizeBytes":1},
                    {"storagePath":"https://evil/x","sizeBytes":1},
                    {"storagePath":"ok/x"},
                    {"storagePath":"ok/y","sizeBytes":-1},
                    {"storagePath":"ok/z","sizeBytes":"12"},
                    {"sizeBytes":1},
                    {"storagePath":"ok/w","sizeBytes":1,"id":"has space"},
                    "just a string"]"#,
            ),
            &fields(),
        );
        assert!(c.rows.is_empty());
        assert_eq!(
            reasons(&c),
            [
                (Some(0), "unsafe_path"),
                (Some(1), "unsafe_path"),
                (Some(2), "unsafe_path"),
                (Some(3), "size_missing"),
                (Some(4), "size_invalid"),
                (Some(5), "size_invalid"),
                (Some(6), "path_missing"),
                (Some(7), "invalid_id"),
                (Some(8), "not_an_object"),
            ]
        );
    }

    #[test]
    fn an_element_without_an_id_gets_the_same_one_every_run() {
        let json = r#"[{"storagePath":"a/1","sizeBytes":1},{"storagePath":"a/2","sizeBytes":2}]"#;
        let first = convert(&message(json), &fields());
        let again = convert(&message(json), &fields());
        assert_eq!(first.rows[0].id, again.rows[0].id);
        assert_ne!(first.rows[0].id, first.rows[1].id);
        assert!(is_valid_id(&first.rows[0].id));
        assert_eq!(first.rows[0].id, derived_id("m1", 0));
    }

    #[test]
    fn media_types_are_normalized_and_names_defaulted() {
        let c = convert(
            &message(
                r#"[{"storagePath":"a/1","sizeBytes":1,"mimeType":"image/png, text/html"},
                    {"storagePath":"a/2","sizeBytes":1,"mimeType":"Text/Plain; Charset=UTF-8"}]"#,
            ),
            &fields(),
        );
        assert_eq!(c.rows[0].mime_type, "application/octet-stream");
        assert_eq!(c.rows[0].original_name, "attachment");
        assert_eq!(c.rows[1].mime_type, "text/plain; charset=utf-8");
    }

    #[test]
    fn whole_messages_that_cannot_be_read() {
        let mut m = message(r#"[{"storagePath":"a/1","sizeBytes":1}]"#);
        m.dialog_id = None;
        assert_eq!(reasons(&convert(&m, &fields())), [(Some(0), "no_dialog")]);
        assert_eq!(
            reasons(&convert(&message("{"), &fields())),
            [(None, "invalid_json")]
        );
        assert_eq!(
            reasons(&convert(&message(r#"{"a":1}"#), &fields())),
            [(None, "not_an_array")]
        );
        for nothing in ["null", "[]"] {
            let c = convert(&message(nothing), &fields());
            assert!(c.rows.is_empty() && c.skips.is_empty(), "{nothing}");
        }
    }
}
