//! Offload of large full reads (SPEC §3 "Large objects"): once the caller has passed every
//! check a proxied read runs (authentication, limits, catalog, authorization, conditionals,
//! range), a full read above `storage.offload_over_bytes` is answered `302` to a signed URL
//! that lives `storage.signed_url_ttl_s`, so the bytes flow from storage, not through here.
//!
//! Trade-offs, by design: the `302` is `no-store` (a new URL per request, never cached, so a
//! revoked permission takes effect at once), while the bytes behind it carry storage's own
//! caching headers; a player that re-requests after the URL expired (a long pause mid-video)
//! comes back here and gets a fresh one; ranges are never offloaded (they are small, and a
//! player seeking must keep the gateway's `206` answers).

use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::{respond, Gateway};
use crate::authz::Permit;
use crate::config::StorageConfig;
use crate::error::GatewayError;
use crate::http::headers::{self, Validators};
use crate::io_runtime;
use crate::metrics;

/// Whether a full read of `size` bytes is offloaded. Pure.
pub fn applies(cfg: &StorageConfig, size: u64) -> bool {
    cfg.offload_over_bytes > 0 && size > cfg.offload_over_bytes
}

/// Answer `302` to a signed URL that tells the browser the same `Content-Type` and
/// `Content-Disposition` a proxied read would.
pub async fn redirect(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    permit: Permit,
) -> Result<()> {
    let download = headers::wants_download(session.req_header().uri.query());
    let row = permit.row();
    let represented = headers::representation(&gw.config.http, row, &Validators::of(row), download);
    let pick = |name: &str| {
        represented
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let (content_type, disposition) = (pick("content-type"), pick("content-disposition"));
    let storage = gw.storage.clone();
    let ttl = gw.config.storage.signed_url_ttl;
    let signed = io_runtime::run(async move {
        storage
            .signed_read_url(
                &permit,
                ttl,
                content_type.as_deref(),
                disposition.as_deref(),
            )
            .await
    })
    .await
    .map_err(|e| GatewayError::Internal(e.to_string()))
    .and_then(|r| r.map_err(GatewayError::from));
    let location = match signed {
        Ok(url) => url,
        Err(err) => {
            if let GatewayError::Storage(e) = &err {
                metrics::storage_error(e);
            }
            tracing::warn!(error = %err, "signing an offload URL failed");
            return respond::answer_error(session, ctx, err).await;
        }
    };
    let resp = respond::header(
        302,
        &[
            ("location", &location),
            // A signed URL is a short-lived credential: never cached, never shared.
            ("cache-control", "no-store"),
            ("content-length", "0"),
            ("x-request-id", &ctx.request_id),
        ],
    )?;
    ctx.outcome = "offloaded";
    session.write_response_header(Box::new(resp), true).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn offload_only_above_a_set_threshold() {
        let cfg = |over: u64| StorageConfig {
            provider: crate::config::StorageProvider::Fs { root: "x".into() },
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            signed_url_ttl: Duration::from_secs(60),
            offload_over_bytes: over,
            memory_cache_bytes: 0,
            memory_cache_object_bytes: 1,
        };
        assert!(!applies(&cfg(0), u64::MAX));
        assert!(!applies(&cfg(100), 100));
        assert!(applies(&cfg(100), 101));
    }
}
