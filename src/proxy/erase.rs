//! `POST /internal/attachments/delete` on the admin listener (SPEC §4): the service-token
//! check, the body, the delete (`erase`), this instance's caches, then the other instances
//! (`broadcast`). The token and body rules are the commit endpoint's.

use std::sync::Arc;

use http::Response;
use pingora::protocols::http::ServerSession;

use super::commit::{read_body, refusal};
use super::respond;
use crate::broadcast::Publisher;
use crate::config::Secret;
use crate::erase::{self, plan, Caches};
use crate::error::GatewayError;
use crate::io_runtime;

/// The delete endpoint: what it needs, built once at start.
pub struct Eraser {
    pub caches: Caches,
    /// Present when Redis is configured: the other instances hear of every delete.
    pub publisher: Option<Arc<Publisher>>,
    /// `internal.service_token`; without one every delete is refused.
    pub service_token: Option<Secret>,
}

impl Eraser {
    /// Answer one delete request (any method; only `POST` is served).
    pub async fn serve(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if let Some(refused) = refusal(session, self.service_token.as_ref(), "delete") {
            return refused;
        }
        let req = match read_body(session, plan::MAX_BODY_BYTES)
            .await
            .and_then(|body| plan::parse(&body))
        {
            Ok(req) => req,
            Err(err) => {
                tracing::info!(reason = err.outcome(), "delete refused: bad request");
                return respond::error_response(&err, &[]);
            }
        };
        let (caches, publisher) = (self.caches.clone(), self.publisher.clone());
        let outcome = io_runtime::run(async move {
            let outcome = erase::delete(caches.catalog.as_ref(), caches.storage.as_ref(), &req);
            let outcome = outcome.await;
            // Forgotten and announced even after a failure: some objects may be gone already,
            // and an id that still has its row is read again from the database, harmlessly.
            caches.forget(&req.attachment_ids).await;
            if let Some(publisher) = publisher {
                if let Err(e) = publisher.publish(&req.attachment_ids).await {
                    // The others serve these ids until their cache TTLs run out.
                    tracing::error!(error = %e, "delete not broadcast to other instances");
                }
            }
            outcome
        })
        .await
        .unwrap_or_else(|e| Err(GatewayError::Internal(e.to_string())));
        match outcome {
            Ok(outcome) => respond::json_response(
                200,
                &serde_json::json!({ "deleted": outcome.deleted, "missing": outcome.missing }),
            ),
            Err(error) => {
                tracing::warn!(reason = error.outcome(), error = %error, "delete failed");
                respond::error_response(&error, &[])
            }
        }
    }
}
