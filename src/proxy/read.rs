//! Serving a read: authenticate -> look up -> authorize -> conditionals -> range -> stream.
//! Conditional and range headers are looked at only after the caller is authorized, so they
//! can never tell a stranger anything about a file.

use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::{respond, Gateway};
use std::sync::Arc;

use crate::attachment::{SharedRow, Variant};
use crate::authn::Principal;
use crate::authz::{self, Access, Permit};
use crate::error::GatewayError;
use crate::http::headers::{self, Validators};
use crate::http::range::{self, ByteRange, RangeOutcome};
use crate::http::{conditional, origin};
use crate::io_runtime;
use crate::preview::negotiate;

/// Which attachment the route names.
pub struct ReadTarget {
    pub access: Access,
    pub dialog_id: Option<String>,
    pub attachment_id: String,
}

/// What the caller will get once policy is decided, before storage is asked.
enum Plan {
    NotModified,
    Body { range: Option<ByteRange> },
    Offload,
}

/// Serve one read. Errors the gateway can still answer are answered here; an `Err` means the
/// response was already under way and the connection must be aborted.
pub async fn serve(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    target: ReadTarget,
) -> Result<()> {
    // A malformed `?variant=` says nothing about any file: refused before anything is looked up.
    let Ok(variant) = negotiate::variant(session.req_header().uri.query()) else {
        let err = GatewayError::BadRequest("bad_variant");
        return respond::answer_error(session, ctx, err).await;
    };
    let (user_id, permit) = match authorize(gw, session, ctx, &target).await {
        Ok(found) => found,
        Err(err) => return respond::answer_error(session, ctx, err).await,
    };
    let (permit, mut validators) = match variant {
        None => {
            let validators = Validators::of_shared(permit.shared_row());
            (permit, validators)
        }
        Some(variant) => match preview(gw, session, &permit, variant).await {
            Ok(found) => found,
            Err(err) => return respond::answer_error(session, ctx, err).await,
        },
    };
    let authorization = session.req_header().headers.get("authorization");
    validators.cookie_session =
        !crate::authn::has_bearer(authorization.and_then(|v| v.to_str().ok()));
    let plan = match plan(gw, session, &permit, &validators) {
        Ok(plan) => plan,
        Err(err) => return respond::answer_error(session, ctx, err).await,
    };
    match plan {
        Plan::NotModified => {
            // The caching headers a `200` would have (`headers::caching`), from the row's
            // shared head.
            let shared = permit.shared_row();
            let Some(made) =
                headers::shared_representation(&gw.config.http, shared, &validators, false)
            else {
                let err = GatewayError::Internal("the row makes an invalid header value".into());
                return respond::answer_error(session, ctx, err).await;
            };
            let caching = headers::caching_of(&made);
            let resp = respond::head_of(304, &ctx.request_id, caching, std::iter::empty())?;
            ctx.outcome = "not_modified";
            session.write_response_header(Box::new(resp), true).await?;
            Ok(())
        }
        Plan::Body { range } => {
            super::stream::serve(gw, session, ctx, &user_id, permit, &validators, range).await
        }
        Plan::Offload => super::offload::redirect(gw, session, ctx, permit).await,
    }
}

async fn authorize(
    gw: &Gateway,
    session: &Session,
    ctx: &mut RequestCtx,
    target: &ReadTarget,
) -> Result<(String, Permit), GatewayError> {
    let principal = authenticate(gw, session)?;
    // Rate limits before the catalog is asked; the download slot comes later, once the body's
    // length is known (`stream`).
    gw.limiter
        .check_request(&principal.user_id, ctx.client_ip)
        .await?;
    let found = lookup(gw, target).await?;
    let row = found.ok_or(GatewayError::NotFound("missing"))?;
    let permit = authz::authorize(
        &principal,
        row,
        target.access,
        &gw.config.auth.staff_permission,
    )
    .map_err(|denied| {
        tracing::info!(request_id = %ctx.request_id, reason = ?denied, "read denied");
        GatewayError::NotFound("denied")
    })?;
    Ok((principal.user_id, permit))
}

/// `authenticate` for a write (upload, discard): a cookie-authenticated one must come from the
/// app's own pages (`http::origin`), or it is refused before anything is stored.
pub fn authenticate_write(gw: &Gateway, session: &Session) -> Result<Principal, GatewayError> {
    let principal = authenticate(gw, session)?;
    let req = session.req_header();
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if crate::authn::has_bearer(header("authorization")) {
        return Ok(principal);
    }
    let scheme = super::forward::request_scheme(req, super::peer_ip(session), &gw.config.server);
    let provenance = origin::Provenance {
        origin: header("origin"),
        sec_fetch_site: header("sec-fetch-site"),
        scheme: &scheme,
        host: header("host").or_else(|| req.uri.authority().map(|a| a.as_str())),
    };
    if origin::same_origin(&provenance, &gw.config.http.allowed_origins) {
        Ok(principal)
    } else {
        tracing::info!(
            origin = provenance.origin.unwrap_or("-"),
            sec_fetch_site = provenance.sec_fetch_site.unwrap_or("-"),
            user = %principal.user_id,
            "cross-site write refused"
        );
        Err(GatewayError::CrossSite)
    }
}

/// Token from `Authorization: Bearer` or the session cookie, never from the query string.
pub fn authenticate(gw: &Gateway, session: &Session) -> Result<Principal, GatewayError> {
    let headers = &session.req_header().headers;
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let cookies: Vec<&str> = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    gw.authn
        .authenticate(authorization, &cookies)
        .map_err(GatewayError::Unauthorized)
}

/// The row the route names, with its dialog's owner: from the in-process cache when it has
/// it, else one indexed query.
async fn lookup(gw: &Gateway, target: &ReadTarget) -> Result<Option<Arc<SharedRow>>, GatewayError> {
    // A cache hit (a remembered miss included) is answered here, on this thread; only what
    // the cache does not know hops to the I/O runtime (where the database pool lives), which
    // costs two thread wake-ups.
    let cached = match (target.access, target.dialog_id.as_deref()) {
        (Access::Linked, Some(dialog)) => gw.catalog.peek_linked(dialog, &target.attachment_id),
        _ => gw.catalog.peek_staged(&target.attachment_id),
    };
    Ok(match cached {
        Some(known) => known,
        None => {
            let catalog = gw.catalog.clone();
            let (access, dialog_id, attachment_id) = (
                target.access,
                target.dialog_id.clone(),
                target.attachment_id.clone(),
            );
            io_runtime::run(async move {
                match (access, dialog_id) {
                    (Access::Linked, Some(dialog)) => {
                        catalog.find_linked(&dialog, &attachment_id).await
                    }
                    _ => catalog.find_staged(&attachment_id).await,
                }
            })
            .await
            .map_err(|e| GatewayError::Internal(e.to_string()))??
            .map(SharedRow::new)
        }
    })
}

/// The preview of `variant` the request's `Accept` takes, made now if the attachment has none
/// yet, with a permit to read it and its own validators. From here on the read goes on exactly
/// as for the original: conditionals, ranges, streaming.
async fn preview(
    gw: &Gateway,
    session: &Session,
    permit: &Permit,
    variant: Variant,
) -> Result<(Permit, Validators), GatewayError> {
    let rows = gw.previews.rows(permit).await?;
    let accept = session
        .req_header()
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok());
    let chosen = negotiate::choose(&rows, variant, negotiate::accepts_webp(accept))
        .ok_or(GatewayError::NoPreview)?;
    let validators = Validators::of_preview(permit.row(), chosen.variant, chosen.format);
    let preview = permit.for_preview(chosen).map_err(|denied| {
        tracing::error!(reason = ?denied, "preview row has a bad storagePath");
        GatewayError::NoPreview
    })?;
    Ok((preview, validators))
}

/// RFC 9110 §13.2.2 order: `If-None-Match`/`If-Modified-Since` first, then `If-Range`/`Range`.
fn plan(
    gw: &Gateway,
    session: &Session,
    permit: &Permit,
    v: &Validators,
) -> Result<Plan, GatewayError> {
    let header = |name: &str| {
        session
            .req_header()
            .headers
            .get(name)
            .and_then(|h| h.to_str().ok())
    };
    if conditional::is_not_modified(
        header("if-none-match"),
        header("if-modified-since"),
        &v.etag,
        v.last_modified,
    ) {
        return Ok(Plan::NotModified);
    }
    let size = permit.row().size_bytes;
    let ranged = range::honoured_for(session.req_header().method.as_str())
        && conditional::if_range_allows_partial(header("if-range"), &v.etag, v.last_modified);
    let range_header = if ranged { header("range") } else { None };
    match range::evaluate(range_header, size) {
        RangeOutcome::Partial(r) => Ok(Plan::Body { range: Some(r) }),
        RangeOutcome::Unsatisfiable => Err(GatewayError::RangeNotSatisfiable { size }),
        // `302` to a signed URL (`storage.offload_over_bytes`), also above max_object_bytes.
        RangeOutcome::Full if super::offload::applies(&gw.config.storage, size) => {
            Ok(Plan::Offload)
        }
        RangeOutcome::Full if size > gw.config.http.max_object_bytes => {
            Err(GatewayError::ObjectTooLarge)
        }
        RangeOutcome::Full => Ok(Plan::Body { range: None }),
    }
}
