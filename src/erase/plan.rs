//! What a delete request asks for and what its answer says (SPEC §4): parse and validate the
//! body, the objects a row leaves behind, and which ids were deleted or missing. Pure.

use serde::Deserialize;

use crate::attachment::{is_valid_id, AttachmentRow, StorageKey};
use crate::error::GatewayError;

/// Attachments one delete may name: a message's attachments, or a user's erasure in pages.
pub const MAX_IDS: usize = 500;
/// Largest request body read: `MAX_IDS` ids of the longest valid length, with room to spare.
pub const MAX_BODY_BYTES: usize = 96 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteRequest {
    pub attachment_ids: Vec<String>,
}

/// Parse and validate the body: every id is a plain id (it reaches keys and queries);
/// duplicates are merged, first occurrence kept.
pub fn parse(body: &[u8]) -> Result<DeleteRequest, GatewayError> {
    let mut req: DeleteRequest =
        serde_json::from_slice(body).map_err(|_| GatewayError::BadRequest("bad_json"))?;
    if req.attachment_ids.is_empty() || req.attachment_ids.len() > MAX_IDS {
        return Err(GatewayError::BadRequest("bad_attachment_count"));
    }
    if !req.attachment_ids.iter().all(|id| is_valid_id(id)) {
        return Err(GatewayError::BadRequest("bad_attachment_id"));
    }
    let mut seen = std::collections::HashSet::new();
    req.attachment_ids.retain(|id| seen.insert(id.clone()));
    Ok(req)
}

/// The objects a row may own besides its previews: its `storagePath`, and for a staged row
/// whose commit recorded a target, the copy that commit may have made under the dialog.
pub fn objects_of(
    id: &str,
    storage_path: &str,
    dialog_id: Option<&str>,
) -> Result<Vec<StorageKey>, GatewayError> {
    let own = StorageKey::parse(storage_path)
        .map_err(|_| GatewayError::Internal(format!("row {id} has a bad storagePath")))?;
    let mut keys = vec![own];
    if let Some(dialog) = dialog_id.filter(|d| is_valid_id(d)) {
        let copy = StorageKey::dialog(dialog, id);
        if copy != keys[0] {
            keys.push(copy);
        }
    }
    Ok(keys)
}

/// `objects_of` for a row as read before the delete.
pub fn objects_of_row(row: &AttachmentRow) -> Result<Vec<StorageKey>, GatewayError> {
    objects_of(&row.id, &row.storage_path, row.dialog_id.as_deref())
}

/// The answer: requested ids split by whether this call deleted their row, in request order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    pub deleted: Vec<String>,
    pub missing: Vec<String>,
}

pub fn outcome(requested: &[String], deleted_ids: &[String]) -> Outcome {
    let (deleted, missing) = requested
        .iter()
        .cloned()
        .partition(|id| deleted_ids.contains(id));
    Outcome { deleted, missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_merges_duplicates() {
        let req = parse(br#"{"attachmentIds":["a1","b2","a1"]}"#).unwrap();
        assert_eq!(req.attachment_ids, ["a1", "b2"]);
    }

    #[test]
    fn refuses_bad_bodies() {
        let too_many = format!(
            r#"{{"attachmentIds":[{}]}}"#,
            vec!["\"x\""; MAX_IDS + 1].join(",")
        );
        for (body, why) in [
            (r#"{"attachmentIds":[]}"#, "bad_attachment_count"),
            (too_many.as_str(), "bad_attachment_count"),
            (r#"{"attachmentIds":["../x"]}"#, "bad_attachment_id"),
            (r#"{"attachmentIds":["a"],"userId":"u"}"#, "bad_json"),
            ("not json", "bad_json"),
        ] {
            match parse(body.as_bytes()) {
                Err(GatewayError::BadRequest(got)) => assert_eq!(got, why, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_staged_row_with_a_target_owns_the_copy_too() {
        let staged = StorageKey::staged("alice", "a1");
        let keys = objects_of("a1", staged.as_str(), Some("d1")).unwrap();
        assert_eq!(keys, [staged, StorageKey::dialog("d1", "a1")]);
        let linked = StorageKey::dialog("d1", "a1");
        assert_eq!(
            objects_of("a1", linked.as_str(), Some("d1")).unwrap(),
            [linked]
        );
        assert!(objects_of("a1", "/etc/passwd", None).is_err());
    }

    #[test]
    fn outcome_keeps_request_order() {
        let req = ["c".to_string(), "a".into(), "b".into()];
        let out = outcome(&req, &["b".into(), "c".into()]);
        assert_eq!(out.deleted, ["c", "b"]);
        assert_eq!(out.missing, ["a"]);
    }
}
