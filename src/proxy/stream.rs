//! Streaming an authorized read's body: the response head, a download slot for long bodies,
//! the body from memory or storage, and the copy to the client that never lets a body lie
//! about its length. Policy (which range, which headers) was decided before; nothing here
//! answers a conditional or judges a caller.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE};
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use super::respond::answer_error;
use super::{respond, Gateway};
use crate::authz::Permit;
use crate::error::GatewayError;
use crate::http::headers::{self, Validators};
use crate::http::range::{self, ByteRange};
use crate::metrics::{self, StorageErrorKind};
use crate::storage::{ByteStream, ObjectBody};

/// Answer `200`/`206` with the permitted object's bytes (`range` when set).
pub async fn serve(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    user_id: &str,
    permit: Permit,
    v: &Validators,
    range: Option<ByteRange>,
) -> Result<()> {
    let length = range.map_or(permit.row().size_bytes, |r| r.len());
    let resp = head(gw, session, ctx, &permit, v, range)?;

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
            Err(err) => return answer_error(session, ctx, err.into()).await,
        }
    }

    let body = match fetch(gw, &permit, range, length).await {
        Ok(body) => body,
        Err(err) => return answer_error(session, ctx, err).await,
    };
    ctx.expected_body_bytes = Some(length);
    session.write_response_header(Box::new(resp), false).await?;
    copy(session, ctx, body.stream, length).await?;
    session.write_response_body(None, true).await?;
    ctx.outcome = if range.is_some() { "partial" } else { "served" };
    Ok(())
}

/// The `200`/`206` head: representation headers, the length, and the range sent.
fn head(
    gw: &Gateway,
    session: &Session,
    ctx: &RequestCtx,
    permit: &Permit,
    v: &Validators,
    range: Option<ByteRange>,
) -> Result<ResponseHeader> {
    let row = permit.row();
    let length = range.map_or(row.size_bytes, |r| r.len());
    let download = headers::wants_download(session.req_header().uri.query());
    let status = if range.is_some() { 206 } else { 200 };
    let Some(made) =
        headers::shared_representation(&gw.config.http, permit.shared_row(), v, download)
    else {
        return Err(Error::explain(
            ErrorType::InvalidHTTPHeader,
            "the row makes an invalid header value",
        ));
    };
    let content_range = match range {
        Some(r) => Some(
            HeaderValue::try_from(range::content_range(r, row.size_bytes))
                .or_err(ErrorType::InvalidHTTPHeader, "content-range")?,
        ),
        None => None,
    };
    let more = std::iter::once((CONTENT_LENGTH, HeaderValue::from(length)))
        .chain(content_range.map(|value| (CONTENT_RANGE, value)));
    respond::head_of(status, &ctx.request_id, made.iter(), more)
}

/// The body, from memory when the storage layer holds it, else from storage; an error here
/// is still answerable, since nothing was written yet.
///
/// Object reads run on this request's own runtime, not the I/O runtime: hyper's pooled
/// connections (storage::reader) live on the service runtime, which lasts as long as the
/// process, and skipping the hop per body chunk measured +35 % MB/s on large objects
/// (BENCHMARKS.md). A body held in memory is answered without any I/O.
async fn fetch(
    gw: &Gateway,
    permit: &Permit,
    range: Option<ByteRange>,
    length: u64,
) -> Result<ObjectBody, GatewayError> {
    let body = match gw.storage.peek(permit, range) {
        Some(body) => body,
        None => {
            let asked = std::time::Instant::now();
            match gw.storage.get(permit, range).await {
                Ok(body) => {
                    metrics::storage_first_byte(asked.elapsed());
                    body
                }
                Err(e) => {
                    metrics::storage_error(&e);
                    let err = GatewayError::from(e);
                    tracing::warn!(error = %err, "storage fetch failed before the first byte");
                    return Err(err);
                }
            }
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
        return Err(err);
    }
    Ok(body)
}

/// Copy exactly `length` bytes to the client. Past the head only an abort can tell the
/// client something went wrong, so a fault, an overrun or a short body is an `Err`.
async fn copy(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut chunks: ByteStream,
    length: u64,
) -> Result<()> {
    use futures_util::StreamExt;
    let mut sent: u64 = 0;
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
    Ok(())
}
