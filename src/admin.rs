//! The admin listener (private network only): `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::catalog::Catalog;
use crate::io_runtime;
use crate::storage::Storage;

/// How long `/readyz` waits for each dependency.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct AdminApp {
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/healthz" => json(200, serde_json::json!({ "status": "ok" })),
            "/readyz" => self.readiness().await,
            "/metrics" => metrics(),
            _ => json(404, serde_json::json!({ "error": "not_found" })),
        }
    }
}

impl AdminApp {
    async fn readiness(&self) -> Response<Vec<u8>> {
        let (catalog, storage) = (self.catalog.clone(), self.storage.clone());
        let checks = io_runtime::run(async move {
            let db = tokio::time::timeout(READY_TIMEOUT, catalog.ping()).await;
            let st = tokio::time::timeout(READY_TIMEOUT, storage.ping()).await;
            (matches!(db, Ok(Ok(()))), matches!(st, Ok(Ok(()))))
        })
        .await
        .unwrap_or((false, false));
        let mut failing = Vec::new();
        if !checks.0 {
            failing.push("catalog");
        }
        if !checks.1 {
            failing.push("storage");
        }
        if failing.is_empty() {
            json(200, serde_json::json!({ "status": "ready" }))
        } else {
            tracing::warn!(?failing, "not ready");
            json(
                503,
                serde_json::json!({ "status": "not_ready", "failing": failing }),
            )
        }
    }
}

fn metrics() -> Response<Vec<u8>> {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut body = Vec::new();
    if encoder.encode(&prometheus::gather(), &mut body).is_err() {
        return json(500, serde_json::json!({ "error": "internal_error" }));
    }
    respond(200, encoder.format_type(), body)
}

fn json(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .expect("static response parts are valid")
}
