//! `POST /internal/attachments/commit` on the admin listener (SPEC §4): the app links staged
//! uploads to a message. Service-token check -> body (`plan::parse`) -> rows -> `plan::plan`
//! -> record the target -> server-side copies -> one transaction -> delete the staged objects.
//!
//! The order keeps one promise: a `LINKED` row always has its object. Objects are copied
//! before the rows change, and the staged originals are deleted only after. A crash between
//! copy and update leaves the row `UPLOADED` with its target recorded in `dialogId`: the next
//! commit copies again (a copy is idempotent) and links; or cleanup, when the row expires,
//! deletes both the staged object and the copy. A crash after the update leaves a staged
//! object whose row is `LINKED` elsewhere, which cleanup's orphan sweep removes.

pub mod plan;

use std::sync::Arc;

use chrono::Utc;
use http::Response;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::catalog::{query, AttachmentRow, AttachmentStatus, Catalog, LinkRequest};
use crate::config::Secret;
use crate::error::GatewayError;
use crate::io_runtime;
use crate::storage::{Storage, StorageError};
use crate::upload::json as shapes;
use plan::{CommitRequest, Plan, Refused};

/// The commit endpoint: what it needs, built once at start.
pub struct Committer {
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
    /// `internal.service_token`; without one every commit is refused.
    pub service_token: Option<Secret>,
}

impl Committer {
    /// Answer one commit request (any method; only `POST` is served).
    pub async fn serve(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().method != http::Method::POST {
            let mut resp = error_response(&GatewayError::MethodNotAllowed { allow: "POST" }, &[]);
            resp.headers_mut()
                .insert("allow", http::HeaderValue::from_static("POST"));
            return resp;
        }
        let authorization = session
            .req_header()
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if let Err(why) = check_token(authorization, self.service_token.as_ref()) {
            tracing::warn!(reason = why, "commit refused: service token");
            let mut resp = error_response(
                &GatewayError::Unauthorized(crate::authn::AuthError::Missing),
                &[],
            );
            resp.headers_mut()
                .insert("www-authenticate", http::HeaderValue::from_static("Bearer"));
            return resp;
        }
        let body = match read_body(session).await {
            Ok(body) => body,
            Err(err) => return error_response(&err, &[]),
        };
        let req = match plan::parse(&body) {
            Ok(req) => req,
            Err(err) => {
                tracing::info!(reason = err.outcome(), "commit refused: bad request");
                return error_response(&err, &[]);
            }
        };
        let (catalog, storage) = (self.catalog.clone(), self.storage.clone());
        let outcome = io_runtime::run(commit(catalog, storage, req))
            .await
            .unwrap_or_else(|e| Err(refused(GatewayError::Internal(e.to_string()))));
        match outcome {
            Ok(rows) => {
                let linked: Vec<_> = rows.iter().map(shapes::linked).collect();
                respond(200, json!({ "attachments": linked }))
            }
            Err(Refused { error, ids }) => {
                tracing::info!(reason = error.outcome(), error = %error, ?ids, "commit refused");
                error_response(&error, &ids)
            }
        }
    }
}

/// `Authorization: Bearer <internal.service_token>`, compared in constant time. Both sides
/// are hashed first so that not even the token's length shows in the timing.
fn check_token(authorization: Option<&str>, expected: Option<&Secret>) -> Result<(), &'static str> {
    let expected = expected.ok_or("internal.service_token is not configured")?;
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    let given = authorization
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or("no bearer token")?;
    let same =
        Sha256::digest(given.as_bytes()).ct_eq(&Sha256::digest(expected.expose().as_bytes()));
    if bool::from(same) {
        Ok(())
    } else {
        Err("wrong token")
    }
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, GatewayError> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > plan::MAX_BODY_BYTES {
                    return Err(GatewayError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(GatewayError::BadRequest("incomplete_body")),
        }
    }
}

fn refused(error: GatewayError) -> Refused {
    Refused {
        error,
        ids: Vec::new(),
    }
}

/// Run one commit to the end on the I/O runtime; the linked rows on success.
pub async fn commit(
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
    req: CommitRequest,
) -> Result<Vec<AttachmentRow>, Refused> {
    let catalog_err = |e| refused(GatewayError::Catalog(e));
    let rows = catalog
        .find_many(&req.attachment_ids)
        .await
        .map_err(catalog_err)?;
    let plan = plan::plan(&req, &rows)?;
    if !plan.moves.is_empty() {
        move_objects(catalog.as_ref(), storage.as_ref(), &req, &plan).await?;
        let link = LinkRequest {
            user_id: req.user_id.clone(),
            dialog_id: req.dialog_id.clone(),
            message_id: req.message_id.clone(),
            rows: plan
                .moves
                .iter()
                .map(|m| (m.id.clone(), m.to.as_str().to_owned()))
                .collect(),
            linked_at: query::truncate_to_millis(Utc::now()),
        };
        if !catalog.link(&link).await.map_err(catalog_err)? {
            return lost_race(catalog.as_ref(), storage.as_ref(), &req).await;
        }
        // Linked: the originals and any earlier attempt's copies are garbage now. A delete
        // that fails leaves a staged object whose row is LINKED elsewhere: cleanup sweeps it.
        let garbage = plan.moves.iter().map(|m| &m.from).chain(&plan.stale_copies);
        for key in garbage {
            if let Err(e) = storage.delete(key).await {
                crate::metrics::storage_error(&e);
                tracing::warn!(error = %e, "commit left an object for cleanup");
            }
        }
        tracing::info!(
            dialog_id = %req.dialog_id,
            linked = plan.moves.len(),
            already = plan.already.len(),
            "commit linked attachments"
        );
    }
    linked_rows(catalog.as_ref(), &req).await
}

/// Record the target, then copy every staged object to its dialog key. Nothing is deleted
/// on failure: the recorded target lets a retry or cleanup finish the job.
async fn move_objects(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    req: &CommitRequest,
    plan: &Plan,
) -> Result<(), Refused> {
    let ids: Vec<String> = plan.moves.iter().map(|m| m.id.clone()).collect();
    catalog
        .mark_commit_target(&req.user_id, &req.dialog_id, &ids)
        .await
        .map_err(|e| refused(GatewayError::Catalog(e)))?;
    for m in &plan.moves {
        if let Err(e) = storage.copy(&m.from, &m.to).await {
            crate::metrics::storage_error(&e);
            tracing::warn!(attachment_id = %m.id, error = %e, "commit copy failed");
            return Err(match e {
                // Discarded or cleaned up meanwhile.
                StorageError::NotFound => Refused {
                    error: GatewayError::Conflict("staged_object_missing"),
                    ids: vec![m.id.clone()],
                },
                other => refused(GatewayError::Storage(other)),
            });
        }
    }
    Ok(())
}

/// The transaction found a row changed under it (a concurrent discard, cleanup or commit).
/// A repeat of a commit that just won is still a success; anything else is a conflict.
async fn lost_race(
    catalog: &dyn Catalog,
    storage: &dyn Storage,
    req: &CommitRequest,
) -> Result<Vec<AttachmentRow>, Refused> {
    let rows = catalog
        .find_many(&req.attachment_ids)
        .await
        .map_err(|e| refused(GatewayError::Catalog(e)))?;
    // Our copy is provably unused only where the row is now LINKED somewhere else; where it
    // is still staged, its recorded target keeps it in view of a retry or of cleanup.
    for id in &req.attachment_ids {
        let ours = crate::storage::StorageKey::dialog(&req.dialog_id, id);
        let elsewhere = rows.iter().any(|r| {
            &r.id == id && r.status == AttachmentStatus::Linked && r.storage_path != ours.as_str()
        });
        if elsewhere {
            let _ = storage.delete(&ours).await;
        }
    }
    match plan::plan(req, &rows) {
        Ok(p) if p.moves.is_empty() => linked_rows(catalog, req).await,
        Ok(p) => Err(Refused {
            error: GatewayError::Conflict("commit_race"),
            ids: p.moves.into_iter().map(|m| m.id).collect(),
        }),
        Err(r) => Err(r),
    }
}

async fn linked_rows(
    catalog: &dyn Catalog,
    req: &CommitRequest,
) -> Result<Vec<AttachmentRow>, Refused> {
    let mut rows = catalog
        .find_many(&req.attachment_ids)
        .await
        .map_err(|e| refused(GatewayError::Catalog(e)))?;
    rows.sort_by_key(|r| req.attachment_ids.iter().position(|id| id == &r.id));
    Ok(rows)
}

fn error_response(err: &GatewayError, ids: &[String]) -> Response<Vec<u8>> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&err.body()).unwrap_or_else(|_| json!({ "error": err.code() }));
    if !ids.is_empty() {
        body["ids"] = json!(ids);
    }
    respond(err.status(), body)
}

fn respond(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_token() {
        let secret = Secret::new("s3cret-token-0123456789");
        assert!(check_token(Some("Bearer s3cret-token-0123456789"), Some(&secret)).is_ok());
        assert!(check_token(Some("bEaReR s3cret-token-0123456789"), Some(&secret)).is_ok());
        for bad in [
            None,
            Some("Bearer s3cret-token-012345678"),
            Some("Bearer s3cret-token-01234567890"),
            Some("Basic s3cret-token-0123456789"),
            Some("s3cret-token-0123456789"),
            Some("Bearer "),
        ] {
            assert!(check_token(bad, Some(&secret)).is_err(), "{bad:?}");
        }
        assert!(check_token(Some("Bearer x"), None).is_err());
    }

    #[test]
    fn errors_carry_the_ids() {
        let resp = error_response(&GatewayError::Conflict("commit_conflict"), &["a".into()]);
        assert_eq!(resp.status(), 409);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(v, json!({ "error": "conflict", "ids": ["a"] }));
    }
}
