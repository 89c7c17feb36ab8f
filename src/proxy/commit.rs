//! `POST /internal/attachments/commit` on the admin listener (SPEC §4): the service-token
//! check, the body, and the answer. What a commit does to rows and objects is `commit`'s.

use std::sync::Arc;

use http::Response;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::respond;
use crate::attachment::json as shapes;
use crate::catalog::Catalog;
use crate::commit::{self, plan, Refused};
use crate::config::Secret;
use crate::error::GatewayError;
use crate::io_runtime;
use crate::storage::Storage;

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
        if let Some(refused) = refusal(session, self.service_token.as_ref(), "commit") {
            return refused;
        }
        let body = match read_body(session, plan::MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(err) => return respond::error_response(&err, &[]),
        };
        let req = match plan::parse(&body) {
            Ok(req) => req,
            Err(err) => {
                tracing::info!(reason = err.outcome(), "commit refused: bad request");
                return respond::error_response(&err, &[]);
            }
        };
        let (catalog, storage) = (self.catalog.clone(), self.storage.clone());
        let outcome = io_runtime::run(commit::commit(catalog, storage, req))
            .await
            .unwrap_or_else(|e| Err(commit::refused(GatewayError::Internal(e.to_string()))));
        match outcome {
            Ok(rows) => {
                let linked: Vec<_> = rows.iter().map(shapes::linked).collect();
                respond::json_response(200, &json!({ "attachments": linked }))
            }
            Err(Refused { error, ids }) => {
                tracing::info!(reason = error.outcome(), error = %error, ?ids, "commit refused");
                respond::error_response(&error, &ids)
            }
        }
    }
}

/// The gate of every internal write (`what`: commit, delete): `POST` only, with the service
/// token. `Some` is the refusal to send.
pub(super) fn refusal(
    session: &ServerSession,
    expected: Option<&Secret>,
    what: &'static str,
) -> Option<Response<Vec<u8>>> {
    if session.req_header().method != http::Method::POST {
        let err = GatewayError::MethodNotAllowed { allow: "POST" };
        return Some(respond::error_response(&err, &[]));
    }
    let authorization = session
        .req_header()
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let why = check_token(authorization, expected).err()?;
    tracing::warn!(
        reason = why,
        endpoint = what,
        "internal call refused: service token"
    );
    Some(respond::error_response(
        &GatewayError::Unauthorized(crate::authn::AuthError::Missing),
        &[],
    ))
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

/// The whole request body, refused past `max` bytes.
pub(super) async fn read_body(
    session: &mut ServerSession,
    max: usize,
) -> Result<Vec<u8>, GatewayError> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(GatewayError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(GatewayError::BadRequest("incomplete_body")),
        }
    }
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
        let resp =
            respond::error_response(&GatewayError::Conflict("commit_conflict"), &["a".into()]);
        assert_eq!(resp.status(), 409);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(v, json!({ "error": "conflict", "ids": ["a"] }));
    }
}
