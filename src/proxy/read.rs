//! Serving a read: authenticate -> look up -> authorize -> conditionals -> range -> stream.
//! Conditional and range headers are looked at only after the caller is authorized, so they
//! can never tell a stranger anything about a file.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::{respond, Gateway};
use crate::authn::Principal;
use crate::authz::{self, Access, Permit};
use crate::error::GatewayError;
use crate::http::conditional;
use crate::http::headers::{self, Validators};
use crate::http::range::{self, ByteRange, RangeOutcome};
use crate::io_runtime;
use crate::metrics::{self, StorageErrorKind};

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
    let (user_id, permit) = match authorize(gw, session, ctx, &target).await {
        Ok(found) => found,
        Err(err) => return answer_error(session, ctx, err).await,
    };
    let row = permit.row();
    let validators = Validators::of(row);
    let plan = match plan(gw, session, &permit, &validators) {
        Ok(plan) => plan,
        Err(err) => return answer_error(session, ctx, err).await,
    };
    match plan {
        Plan::NotModified => {
            let mut resp = respond::header(304, &[("x-request-id", &ctx.request_id)])?;
            for (name, value) in headers::caching(&gw.config.http, &validators) {
                resp.insert_header(name, value)?;
            }
            ctx.outcome = "not_modified";
            session.write_response_header(Box::new(resp), true).await?;
            Ok(())
        }
        Plan::Body { range } => {
            stream(gw, session, ctx, &user_id, permit, &validators, range).await
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
    // A cache hit is answered here, on this thread; only a miss hops to the I/O runtime
    // (where the database pool lives), which costs two thread wake-ups.
    let cached = match (target.access, target.dialog_id.as_deref()) {
        (Access::Linked, Some(dialog)) => gw.catalog.peek_linked(dialog, &target.attachment_id),
        _ => gw.catalog.peek_staged(&target.attachment_id),
    };
    let found = match cached {
        Some(row) => Some(row),
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
        }
    };
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
    let range_header =
        if conditional::if_range_allows_partial(header("if-range"), &v.etag, v.last_modified) {
            header("range")
        } else {
            None
        };
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

async fn stream(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    user_id: &str,
    permit: Permit,
    v: &Validators,
    range: Option<ByteRange>,
) -> Result<()> {
    let row = permit.row();
    let size = row.size_bytes;
    let length = range.map_or(size, |r| r.len());
    let download = headers::wants_download(session.req_header().uri.query());
    let mut resp = respond::header(
        if range.is_some() { 206 } else { 200 },
        &[("x-request-id", &ctx.request_id)],
    )?;
    for (name, value) in headers::representation(&gw.config.http, row, v, download) {
        resp.insert_header(name, value)?;
    }
    resp.insert_header("content-length", length.to_string())?;
    if let Some(r) = range {
        resp.insert_header("content-range", range::content_range(r, size))?;
    }

    // HEAD is answered from the catalog alone.
    if session.req_header().method == http::Method::HEAD {
        ctx.outcome = "head";
        session.write_response_header(Box::new(resp), true).await?;
        return Ok(());
    }

    // Only a long body holds a download slot (the cap is on long downloads; an image or a
    // short Range read ends at once): small reads cost one Redis round trip, not three.
    if length > gw.config.limits.lease_over_bytes {
        match gw.limiter.take_slot(user_id).await {
            Ok(slot) => ctx.slot = Some(slot),
            Err(err) => return answer_error(session, ctx, err).await,
        }
    }

    let storage = gw.storage.clone();
    let permit = Arc::new(permit);
    let fetch_permit = permit.clone();
    let asked = std::time::Instant::now();
    // Object reads run on this request's own runtime, not the I/O runtime: hyper's pooled
    // connections (storage::reader) live on the service runtime, which lasts as long as the
    // process, and skipping the hop per body chunk measured +35 % MB/s on large objects
    // (BENCHMARKS.md). A body held in memory is answered without any I/O.
    let in_memory = storage.peek(&fetch_permit, range);
    let from_storage = in_memory.is_none();
    let fetched = match in_memory {
        Some(body) => Ok(body),
        None => storage
            .get(&fetch_permit, range)
            .await
            .map_err(GatewayError::from),
    };
    let body = match fetched {
        Ok(body) => {
            if from_storage {
                metrics::storage_first_byte(asked.elapsed());
            }
            body
        }
        Err(err) => {
            if let GatewayError::Storage(e) = &err {
                metrics::storage_error(e);
            }
            tracing::warn!(error = %err, "storage fetch failed before the first byte");
            return answer_error(session, ctx, err).await;
        }
    };
    if body.content_length != length {
        // Storage and catalog disagree about the object: never send a body that lies about
        // its length.
        let err = GatewayError::Internal(format!(
            "storage length {} != expected {length}",
            body.content_length
        ));
        tracing::error!(error = %err, "object size mismatch");
        return answer_error(session, ctx, err).await;
    }

    ctx.expected_body_bytes = Some(length);
    session.write_response_header(Box::new(resp), false).await?;
    let mut sent: u64 = 0;
    let mut chunks = body.stream;
    while let Some(chunk) = chunks.next().await {
        let chunk: Bytes = chunk.map_err(|e| {
            metrics::storage_error(&e);
            ctx.outcome = "storage_fault_mid_body";
            Error::because(ErrorType::ReadError, "storage body", e)
        })?;
        if sent + chunk.len() as u64 > length {
            ctx.outcome = "storage_overrun";
            metrics::storage_error_kind(StorageErrorKind::Transport);
            return Err(Error::explain(
                ErrorType::InternalError,
                "storage sent more bytes than the row's size",
            ));
        }
        sent += chunk.len() as u64;
        if sent == length {
            // Free the slot (the release is sent at once, not awaited) before the client can
            // have the last byte: its next request (the next Range of a video, say) reaches
            // Redis after the release, so it never finds this finished download still counted.
            drop(ctx.slot.take());
        }
        session.write_response_body(Some(chunk), false).await?;
    }
    if sent != length {
        ctx.outcome = "storage_short_body";
        metrics::storage_error_kind(StorageErrorKind::Transport);
        return Err(Error::explain(
            ErrorType::ReadError,
            "storage body ended before its length",
        ));
    }
    session.write_response_body(None, true).await?;
    ctx.outcome = if range.is_some() { "partial" } else { "served" };
    Ok(())
}

pub(super) async fn answer_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    err: GatewayError,
) -> Result<()> {
    match &err {
        GatewayError::Unauthorized(reason) => {
            tracing::info!(request_id = %ctx.request_id, reason = reason.reason(), "token refused")
        }
        GatewayError::Catalog(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "catalog failed")
        }
        GatewayError::Internal(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "internal error")
        }
        _ => {}
    }
    ctx.outcome = err.outcome();
    respond::error(session, &err, &ctx.request_id).await?;
    Ok(())
}
