//! The admin listener (private network only): `/healthz`, `/readyz`, `/metrics`, and the
//! app's `POST /internal/attachments/commit` and `POST /internal/attachments/delete` (see
//! `proxy::commit` and `proxy::erase`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::commit::Committer;
use super::erase::Eraser;
use super::respond::{json_response, plain_response};
use crate::catalog::{Catalog, CatalogError};
use crate::io_runtime;
use crate::limits::Limiter;
use crate::storage::Storage;

/// How long `/readyz` waits for each dependency.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct AdminApp {
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
    pub limiter: Arc<Limiter>,
    /// `POST /internal/attachments/commit`.
    pub committer: Committer,
    /// `POST /internal/attachments/delete`.
    pub eraser: Eraser,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => json_response(200, &serde_json::json!({ "status": "ok" })),
            "/readyz" => self.readiness().await,
            "/internal/attachments/commit" => self.committer.serve(session).await,
            "/internal/attachments/delete" => self.eraser.serve(session).await,
            "/metrics" => metrics(&crate::metrics::Snapshot {
                cache: self.catalog.cache_stats(),
                memory: self.storage.memory_cache_stats(),
                limits: self.limiter.stats(),
            }),
            _ => json_response(404, &serde_json::json!({ "error": "not_found" })),
        }
    }
}

impl AdminApp {
    /// SPEC §4: ready only when the catalog, Redis (if configured) and storage all answer.
    /// The checks run concurrently, each bounded by `READY_TIMEOUT`. Requests keep flowing
    /// during a Redis outage under `on_redis_error = "local"`; readiness still reports it so
    /// that the outage is visible, and balancers that should keep such instances in rotation
    /// can probe `/healthz` instead.
    async fn readiness(&self) -> Response<Vec<u8>> {
        let (catalog, storage) = (self.catalog.clone(), self.storage.clone());
        let dependencies = io_runtime::run(async move {
            let (db, st) = tokio::join!(
                tokio::time::timeout(READY_TIMEOUT, catalog.verify_schema()),
                tokio::time::timeout(READY_TIMEOUT, storage.ping()),
            );
            // The schema is checked on every probe, not once at start: a table altered under
            // a running gateway (an app migration) turns every read into an error.
            let (catalog_ok, schema) = match db {
                Ok(Ok(())) => (true, None),
                Ok(Err(CatalogError::Schema(problems))) => (true, Some(problems.0)),
                _ => (false, None),
            };
            (catalog_ok, schema, matches!(st, Ok(Ok(()))))
        });
        let redis = tokio::time::timeout(READY_TIMEOUT, self.limiter.redis_ready());
        let (dependencies, redis) = tokio::join!(dependencies, redis);
        let (catalog_ok, schema, storage_ok) = dependencies.unwrap_or((false, None, false));
        let redis_ok = !matches!(redis, Ok(Some(false)) | Err(_));
        let failing: Vec<&str> = [
            ("catalog", catalog_ok),
            ("schema", schema.is_none()),
            ("redis", redis_ok),
            ("storage", storage_ok),
        ]
        .into_iter()
        .filter_map(|(name, ok)| (!ok).then_some(name))
        .collect();
        if failing.is_empty() {
            json_response(200, &serde_json::json!({ "status": "ready" }))
        } else {
            tracing::warn!(?failing, ?schema, "not ready");
            let mut body = serde_json::json!({ "status": "not_ready", "failing": failing });
            if let Some(lines) = schema {
                body["schema"] = serde_json::json!(lines);
            }
            json_response(503, &body)
        }
    }
}

fn metrics(snapshot: &crate::metrics::Snapshot<'_>) -> Response<Vec<u8>> {
    match crate::metrics::render(snapshot) {
        Ok(body) => plain_response(200, prometheus::TEXT_FORMAT, body),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics");
            json_response(500, &serde_json::json!({ "error": "internal_error" }))
        }
    }
}
