//! What a commit request asks for and what it means for each row (SPEC §4): parse and
//! validate the body, then sort the rows into "move", "already linked here" or a refusal.
//! Pure: rows in, a plan out.

use serde::Deserialize;

use crate::attachment::is_valid_id;
use crate::attachment::StorageKey;
use crate::attachment::{AttachmentRow, AttachmentStatus};
use crate::error::GatewayError;

/// Attachments one commit may link (a chat message carries a handful).
pub const MAX_IDS: usize = 100;
/// Largest request body read: `MAX_IDS` ids and three more with room to spare.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitRequest {
    pub user_id: String,
    pub dialog_id: String,
    pub message_id: String,
    pub attachment_ids: Vec<String>,
}

/// Parse and validate the body: every id that will reach a key or a query is a plain id.
/// Duplicate attachment ids are merged, first occurrence kept.
pub fn parse(body: &[u8]) -> Result<CommitRequest, GatewayError> {
    let mut req: CommitRequest =
        serde_json::from_slice(body).map_err(|_| GatewayError::BadRequest("bad_json"))?;
    // User and message ids are plain ids up to 128 characters, like a token's `sub`.
    let plain = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !plain(&req.user_id, 128) {
        return Err(GatewayError::BadRequest("bad_user_id"));
    }
    if !is_valid_id(&req.dialog_id) {
        return Err(GatewayError::BadRequest("bad_dialog_id"));
    }
    if !plain(&req.message_id, 128) {
        return Err(GatewayError::BadRequest("bad_message_id"));
    }
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

/// One staged row to move: its object from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub id: String,
    pub from: StorageKey,
    pub to: StorageKey,
}

/// What the commit will do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub moves: Vec<Move>,
    /// Ids already linked to this dialog and message: nothing to do (idempotent repeat).
    pub already: Vec<String>,
    /// Copies an earlier, unfinished commit made to another dialog; deleted once this commit
    /// has linked the rows (not before: until then that other commit could still win).
    pub stale_copies: Vec<StorageKey>,
}

/// Why nothing will change, with the ids at fault.
#[derive(Debug)]
pub struct Refused {
    pub error: GatewayError,
    pub ids: Vec<String>,
}

/// Sort each requested id: a staged row of `user_id` moves, a row already linked to this very
/// dialog and message is done, anything else refuses the whole commit. A row that is missing
/// or someone else's is `404` (the app learns nothing about other users' uploads); one linked
/// elsewhere is `409`.
pub fn plan(req: &CommitRequest, rows: &[AttachmentRow]) -> Result<Plan, Refused> {
    let mut plan = Plan::default();
    let (mut missing, mut conflicting) = (Vec::new(), Vec::new());
    for id in &req.attachment_ids {
        let row = rows
            .iter()
            .find(|r| &r.id == id && r.created_by_user_id == req.user_id);
        let Some(row) = row else {
            missing.push(id.clone());
            continue;
        };
        match row.status {
            AttachmentStatus::Uploaded => {
                let Ok(from) = StorageKey::parse(&row.storage_path) else {
                    conflicting.push(id.clone());
                    continue;
                };
                if let Some(other) = row.dialog_id.as_deref().filter(|d| *d != req.dialog_id) {
                    if is_valid_id(other) {
                        plan.stale_copies.push(StorageKey::dialog(other, id));
                    }
                }
                plan.moves.push(Move {
                    id: id.clone(),
                    from,
                    to: StorageKey::dialog(&req.dialog_id, id),
                });
            }
            AttachmentStatus::Linked
                if row.dialog_id.as_deref() == Some(req.dialog_id.as_str())
                    && row.message_id.as_deref() == Some(req.message_id.as_str()) =>
            {
                plan.already.push(id.clone());
            }
            AttachmentStatus::Linked => conflicting.push(id.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Refused {
            error: GatewayError::NotFound("commit_missing"),
            ids: missing,
        });
    }
    if !conflicting.is_empty() {
        return Err(Refused {
            error: GatewayError::Conflict("commit_conflict"),
            ids: conflicting,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn req(ids: &[&str]) -> CommitRequest {
        CommitRequest {
            user_id: "u1".into(),
            dialog_id: "d1".into(),
            message_id: "m1".into(),
            attachment_ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn row(id: &str, user: &str, status: AttachmentStatus, dialog: Option<&str>) -> AttachmentRow {
        AttachmentRow {
            id: id.into(),
            dialog_id: dialog.map(Into::into),
            message_id: (status == AttachmentStatus::Linked).then(|| "m1".into()),
            storage_path: match (status, dialog) {
                (AttachmentStatus::Linked, Some(d)) => format!("support-chat/dialogs/{d}/{id}"),
                _ => format!("support-chat/staged/{user}/{id}"),
            },
            mime_type: "image/png".into(),
            size_bytes: 1,
            original_name: "a.png".into(),
            created_by_user_id: user.into(),
            status,
            created_at: Utc::now(),
            linked_at: None,
            dialog_owner_id: None,
            image: Default::default(),
        }
    }

    #[test]
    fn parses_and_validates() {
        let ok = parse(
            br#"{"userId":"u1","dialogId":"d1","messageId":"m1","attachmentIds":["a","b","a"]}"#,
        )
        .unwrap();
        assert_eq!(ok.attachment_ids, vec!["a", "b"]);
        let many = format!(
            r#"{{"userId":"u","dialogId":"d","messageId":"m","attachmentIds":[{}]}}"#,
            vec!["\"x\""; MAX_IDS + 1].join(",")
        );
        for (body, why) in [
            ("{", "bad_json"),
            (
                r#"{"userId":"u","dialogId":"d","messageId":"m"}"#,
                "bad_json",
            ),
            (
                r#"{"userId":"u","dialogId":"d","messageId":"m","attachmentIds":[],"x":1}"#,
                "bad_json",
            ),
            (
                r#"{"userId":"u/../x","dialogId":"d","messageId":"m","attachmentIds":["a"]}"#,
                "bad_user_id",
            ),
            (
                r#"{"userId":"u","dialogId":"d/x","messageId":"m","attachmentIds":["a"]}"#,
                "bad_dialog_id",
            ),
            (
                r#"{"userId":"u","dialogId":"d","messageId":"","attachmentIds":["a"]}"#,
                "bad_message_id",
            ),
            (
                r#"{"userId":"u","dialogId":"d","messageId":"m","attachmentIds":[]}"#,
                "bad_attachment_count",
            ),
            (&many, "bad_attachment_count"),
            (
                r#"{"userId":"u","dialogId":"d","messageId":"m","attachmentIds":["a?b"]}"#,
                "bad_attachment_id",
            ),
        ] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert_eq!((err.status(), err.outcome()), (400, why), "{body}");
        }
    }

    #[test]
    fn staged_rows_move_and_linked_ones_are_idempotent() {
        use AttachmentStatus::*;
        let rows = [
            row("a", "u1", Uploaded, None),
            row("b", "u1", Linked, Some("d1")),
            row("c", "u1", Uploaded, Some("d9")),
        ];
        let p = plan(&req(&["a", "b", "c"]), &rows).unwrap();
        assert_eq!(
            p.moves.iter().map(|m| m.to.as_str()).collect::<Vec<_>>(),
            ["support-chat/dialogs/d1/a", "support-chat/dialogs/d1/c"]
        );
        assert_eq!(p.moves[0].from.as_str(), "support-chat/staged/u1/a");
        assert_eq!(p.already, ["b"]);
        assert_eq!(p.stale_copies[0].as_str(), "support-chat/dialogs/d9/c");
    }

    #[test]
    fn refusals_name_the_ids() {
        use AttachmentStatus::*;
        let rows = [
            row("mine", "u1", Uploaded, None),
            row("theirs", "u2", Uploaded, None),
            row("elsewhere", "u1", Linked, Some("d2")),
        ];
        let r = plan(&req(&["mine", "theirs", "ghost"]), &rows).unwrap_err();
        assert_eq!(
            (r.error.status(), r.ids.clone()),
            (404, vec!["theirs".into(), "ghost".into()])
        );
        let r = plan(&req(&["mine", "elsewhere"]), &rows).unwrap_err();
        assert_eq!(
            (r.error.status(), r.ids),
            (409, vec!["elsewhere".to_string()])
        );
        // Same dialog, other message: also a conflict.
        let mut other_message = row("x", "u1", Linked, Some("d1"));
        other_message.message_id = Some("m2".into());
        assert_eq!(
            plan(&req(&["x"]), &[other_message])
                .unwrap_err()
                .error
                .status(),
            409
        );
    }
}
