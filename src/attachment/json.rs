//! The JSON shapes of attachments in answers (upload `201`, commit `200`): camelCase names as
//! the app's Prisma models spell them, times in RFC 3339 UTC with milliseconds. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{AttachmentRow, AttachmentStatus};

/// The public path of an attachment's preview (staged) or read (linked) route.
pub fn read_path(row: &AttachmentRow) -> String {
    match (row.status, &row.dialog_id) {
        (AttachmentStatus::Linked, Some(dialog)) => {
            format!("/api/support-chat/attachments/{dialog}/{}", row.id)
        }
        _ => format!("/api/support-chat/attachments/staged/{}", row.id),
    }
}

/// SPEC §3: `{"id","status","mimeType","sizeBytes","originalName","createdAt","url"}`, plus
/// an image's `width`, `height` and `placeholder` once its thumb is made (SPEC §12).
pub fn staged(row: &AttachmentRow) -> Value {
    let mut value = json!({
        "id": row.id,
        "status": row.status.as_str(),
        "mimeType": row.mime_type,
        "sizeBytes": row.size_bytes,
        "originalName": row.original_name,
        "createdAt": time(row.created_at),
        "url": read_path(row),
    });
    let image = &row.image;
    if let (Some(width), Some(height)) = (image.width, image.height) {
        value["width"] = json!(width);
        value["height"] = json!(height);
    }
    if let Some(placeholder) = &image.placeholder {
        value["placeholder"] = json!(placeholder);
    }
    value
}

/// A linked row: the staged shape plus where it now belongs.
pub fn linked(row: &AttachmentRow) -> Value {
    let mut value = staged(row);
    value["dialogId"] = json!(row.dialog_id);
    value["messageId"] = json!(row.message_id);
    value["linkedAt"] = json!(row.linked_at.map(time));
    value
}

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn row() -> AttachmentRow {
        AttachmentRow {
            id: "a1".into(),
            dialog_id: None,
            message_id: None,
            storage_path: "support-chat/staged/u1/a1".into(),
            mime_type: "image/png".into(),
            size_bytes: 5,
            original_name: "x \"y\".png".into(),
            created_by_user_id: "u1".into(),
            status: AttachmentStatus::Uploaded,
            created_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            linked_at: None,
            dialog_owner_id: None,
            image: Default::default(),
        }
    }

    #[test]
    fn staged_shape() {
        assert_eq!(
            staged(&row()),
            json!({
                "id": "a1", "status": "UPLOADED", "mimeType": "image/png", "sizeBytes": 5,
                "originalName": "x \"y\".png", "createdAt": "2023-11-14T22:13:20.123Z",
                "url": "/api/support-chat/attachments/staged/a1",
            })
        );
    }

    #[test]
    fn linked_shape() {
        let at = Utc.timestamp_millis_opt(1_700_000_001_000).unwrap();
        let r = AttachmentRow {
            status: AttachmentStatus::Linked,
            dialog_id: Some("d1".into()),
            message_id: Some("m1".into()),
            linked_at: Some(at),
            ..row()
        };
        let v = linked(&r);
        assert_eq!(v["url"], "/api/support-chat/attachments/d1/a1");
        assert_eq!(v["status"], "LINKED");
        assert_eq!(v["messageId"], "m1");
        assert_eq!(v["linkedAt"], "2023-11-14T22:13:21.000Z");
        assert!(v.get("width").is_none(), "unknown until the thumb is made");
        let known = AttachmentRow {
            image: crate::attachment::ImageInfo {
                width: Some(3024),
                height: Some(4032),
                placeholder: Some("k0oGLQaSVsN0BVhn2oq2Z5SQUQcZ".into()),
            },
            ..r.clone()
        };
        let v2 = linked(&known);
        assert_eq!(
            (v2["width"].clone(), v2["height"].clone()),
            (json!(3024), json!(4032))
        );
        assert_eq!(v2["placeholder"], "k0oGLQaSVsN0BVhn2oq2Z5SQUQcZ");
        // The storage key is internal: never in an answer.
        assert!(v.get("storagePath").is_none());
        assert!(!v.to_string().contains("support-chat/dialogs"));
    }
}
