//! The public listener's `ProxyHttp` implementation: the table of contents of a request.
//!
//! ```text
//! request_filter ── identify (request id, client IP, route::classify_request: target form,
//!                   then the normalized path)
//!   ├─ admit: header budget (431); own routes: write-idle timeout, per-IP limit (429)
//!   ├─ Passthrough ───────────────► upstream_peer (app) ─► upstream_request_filter
//!   │                                 (forward: X-Forwarded-For/Proto/Host, X-Request-Id) ─► app
//!   └─ own route ─► routes::serve
//!         reads: read::serve
//!           authn::verify ─► limits (user + IP rates) ─► catalog.find_* ─► authz ─► Permit
//!           ─► conditional (304) ─► range (206/416) ─► offload (302)
//!           | download slot (long bodies only) ─► storage.get ─► stream
//!         uploads and discards: upload::stage / upload::discard (proxy/upload.rs)
//! The admin listener's handlers (`admin`, `commit`) live here too: every Pingora session is
//! driven from this folder.
//! fail_to_proxy ── JSON error if nothing was written yet; otherwise the connection aborts
//! logging ── one JSON access-log line; download metrics (metrics::download_finished)
//! header_deadline ── around it all: a connection's next head must be in within
//!                   server.header_timeout_ms (new_ctx stops the clock, logging restarts it)
//! ```
//! Each phase is a few lines that call one module; policy lives in pure modules.

pub mod admin;
mod client_ip;
pub mod commit;
pub mod ctx;
pub mod erase;
mod forward;
pub mod header_deadline;
mod offload;
pub(crate) mod read;
pub(crate) mod respond;
mod routes;
mod stream;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::authn::Authenticator;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::GatewayError;
use crate::limits::{self, Limiter};
use crate::metrics::access::{self, Access, Ending};
use crate::preview::Previews;
use crate::route::{self, Route};
use crate::storage::Storage;
pub use ctx::RequestCtx;

/// Everything a request needs, built once at start.
pub struct Gateway {
    pub config: Arc<Config>,
    pub authn: Authenticator,
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
    /// The app, resolved at start (never a blocking resolve on the request path).
    pub app_addr: SocketAddr,
    /// Rate limits and download slots (shared through Redis when configured).
    pub limiter: Arc<Limiter>,
    /// Thumbnails and previews of images (`?variant=`).
    pub previews: Arc<Previews>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// Pingora calls this once a request head is in: the header deadline's clock stops.
    fn new_ctx(&self) -> RequestCtx {
        header_deadline::headers_read();
        RequestCtx::new()
    }

    /// Classify the request; the gateway's routes are answered here and never reach the app.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.identify(session, ctx);
        if let Err(err) = self.admit(session, ctx) {
            respond::answer_error(session, ctx, err).await?;
            return Ok(true);
        }
        if ctx.route == Route::Passthrough {
            return Ok(false);
        }
        routes::serve(self, session, ctx).await?;
        Ok(true)
    }

    /// Only passthrough requests get here: everything goes to the app.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(forward::app_peer(&self.config.app, self.app_addr)))
    }

    /// The app sees who called and how, as a reverse proxy should tell it.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let peer = peer_ip(session);
        let host = header_str(session.req_header(), "host")
            // HTTP/2 has no Host header, only :authority (RFC 9113 §8.3.1): keep its port.
            .or_else(|| session.req_header().uri.authority().map(|a| a.as_str()))
            .map(str::to_string);
        forward::set_forwarded_headers(upstream, peer, host, &self.config.server)?;
        upstream.insert_header("x-request-id", ctx.request_id.clone())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !upstream.status.is_informational() {
            upstream.insert_header("x-request-id", ctx.request_id.clone())?;
        }
        Ok(())
    }

    /// Answer JSON when nothing was written yet; after the header went out, only abort.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let aborted = FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
        if session.response_written().is_some() {
            return aborted;
        }
        let Some(err) = GatewayError::from_proxy(e) else {
            return aborted;
        };
        ctx.outcome = err.outcome();
        let code = respond::error(session, &err, &ctx.request_id)
            .await
            .unwrap_or(0);
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// A client that goes away mid-read is routine (players cancel media ranges when seeking,
    /// pingora#383): the access line records it as `client_aborted`, not as an error.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, e: &Error) -> bool {
        ctx::is_download(&ctx.route) && ctx::is_client_abort(e)
    }

    /// What Pingora's own error lines say about a request: never the URI (query strings carry
    /// signatures, paths carry ids), the Host or the client address.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        format!(
            "{} {} request_id={}",
            session.req_header().method,
            ctx::route_template(&ctx.route),
            ctx.request_id
        )
    }

    /// One JSON access-log line and the download metrics (`metrics::access`).
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let client = ctx.client_ip.map(crate::telemetry::anonymize_ip);
        let ending = match e {
            None => Ending::Done,
            Some(e) if ctx::is_client_abort(e) => Ending::ClientAborted,
            Some(_) => Ending::Aborted,
        };
        let method = session.req_header().method.to_string();
        access::finished(&Access {
            request_id: &ctx.request_id,
            route: ctx::route_template(&ctx.route),
            method: &method,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            bytes: session.as_downstream().body_bytes_sent() as u64,
            latency: ctx.started.elapsed(),
            attachment_id: ctx.attachment_id.as_deref(),
            client: client.as_deref(),
            outcome: ctx.outcome,
            ending,
            error: e.map(|e| e.etype().as_str()),
            download: ctx::is_download(&ctx.route),
        });
        ctx.in_flight = None;
        header_deadline::request_done();
    }
}

impl Gateway {
    /// Who is asking for what: request id, client IP (trusted proxies honoured), route.
    fn identify(&self, session: &Session, ctx: &mut RequestCtx) {
        let req = session.req_header();
        ctx.request_id = ctx::request_id(header_str(req, "x-request-id"));
        ctx.client_ip = peer_ip(session).map(|peer| {
            let forwarded: Vec<&str> = req
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            client_ip::client_ip(peer, &forwarded, &self.config.server.trusted_proxies)
        });
        ctx.route = route::classify_request(req.method.as_str(), req.raw_path(), req.uri.path());
        if ctx::is_download(&ctx.route) {
            ctx.in_flight = Some(crate::metrics::InFlight::start());
        }
    }

    /// Before any other work: the header budget (`431`) for every request; for the gateway's
    /// own routes, the write-idle timeout (a client that stops reading is cut off and frees its
    /// slot) and the per-IP check that runs before the token is verified.
    fn admit(&self, session: &mut Session, ctx: &RequestCtx) -> Result<(), GatewayError> {
        limits::headers::check(&session.req_header().headers)?;
        if ctx.route == Route::Passthrough {
            return Ok(());
        }
        session.set_write_timeout(Some(self.config.limits.write_idle_timeout));
        Ok(self.limiter.check_ip(ctx.client_ip)?)
    }
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
    match session.client_addr() {
        Some(PeerAddr::Inet(addr)) => Some(addr.ip()),
        _ => None,
    }
}
