//! Staging an upload (SPEC §3 "Upload") and discarding one, called from the public listener's
//! `request_filter`: authenticate -> limits -> head checks (`upload::policy`) -> the user's
//! upload slot (`429`) and staged quota (`upload::quota`, `413`) -> `100 Continue`
//! -> leading bytes (`upload::sniff`) -> the body into `upload::store` -> the `201`.
//!
//! The body is never held whole: chunks cross a small bounded channel from the connection's
//! task to the writer task (`upload::store`) on the I/O runtime, so a slow store slows the
//! client down (TCP backpressure) instead of filling memory.

use bytes::Bytes;
use pingora::proxy::Session;
use tokio::sync::mpsc;

use super::respond::Answer;
use super::{read, Gateway, RequestCtx};
use crate::attachment::SharedRow;
use crate::authz::{self, Access};
use crate::catalog::StagedUsage;
use crate::error::GatewayError;
use crate::io_runtime;
use crate::storage::StorageError;
use crate::upload::policy::{self, Accepted, UploadHead};
use crate::upload::{quota, sniff, store};

/// Chunks in flight between the connection and the storage writer. Pingora hands over reads
/// of at most a few tens of KiB, so an upload buffers well under a MiB whatever its size.
const CHANNEL_CHUNKS: usize = 8;

/// `POST /api/support-chat/attachments?filename=...`: stage one file.
pub async fn stage(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Answer, GatewayError> {
    let principal = read::authenticate_write(gw, session)?;
    gw.limiter
        .check_request(&principal.user_id, ctx.client_ip)
        .await?;
    let accepted = check_head(gw, session)?;
    // Held until the body is stored (or refused): bounds what one user runs at once.
    let upload = &gw.config.upload;
    let _slot = gw
        .limiter
        .take_upload_slot(&principal.user_id, upload.max_concurrent_per_user)
        .await?;
    let usage = staged_usage(gw, &principal.user_id).await?;
    quota::check(usage, accepted.length, upload).map_err(|_| GatewayError::StagedQuotaExceeded)?;
    // RFC 9110 §10.1.1: only now, with every check on the head passed, invite the body; a
    // refused client gets the final status instead and never sends it.
    if expects_continue(session) {
        session
            .write_continue_response()
            .await
            .map_err(|_| GatewayError::BadRequest("client_gone"))?;
    }
    let (leading, ended) = read_leading(session, accepted.length).await?;
    let sniffed = leading.iter().flatten().take(sniff::SNIFF_BYTES);
    let sniffed: Vec<u8> = sniffed.copied().collect();
    if !sniff::matches_declared(&accepted.mime_type, &sniffed) {
        return Err(GatewayError::UnsupportedMediaType("signature_mismatch"));
    }

    let row = store::new_row(&principal, &accepted);
    ctx.attachment_id = Some(row.id.clone());
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let writer = io_runtime::runtime().spawn(store::store(
        gw.storage.clone(),
        gw.catalog.clone(),
        row.clone(),
        rx,
    ));
    let pumped = pump(session, tx, leading, ended, accepted.length).await;
    let stored = writer
        .await
        .map_err(|e| GatewayError::Internal(format!("upload writer: {e}")))?;
    // A client fault explains a storage error that follows it; report the client's.
    pumped?;
    stored?;
    crate::metrics::upload_finished(row.size_bytes);
    tracing::info!(request_id = %ctx.request_id, attachment_id = %row.id, bytes = row.size_bytes, "upload staged");
    let row = store::staged_row(row);
    // The uploader may read what they staged, so their permit is the one its previews are
    // made with, right away and off this thread.
    let staff = &gw.config.auth.staff_permission;
    if let Ok(permit) = authz::authorize(
        &principal,
        SharedRow::new(row.clone()),
        Access::Staged,
        staff,
    ) {
        gw.previews.after_upload(permit);
    }
    Ok(Answer {
        status: 201,
        location: Some(crate::attachment::json::read_path(&row)),
        body: Some(crate::attachment::json::staged(&row)),
    })
}

/// `DELETE /api/support-chat/attachments/staged/{id}`: only the uploader may discard; anyone
/// else gets the same `404` as a miss.
pub async fn discard(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    attachment_id: &str,
) -> Result<Answer, GatewayError> {
    let principal = read::authenticate_write(gw, session)?;
    gw.limiter
        .check_request(&principal.user_id, ctx.client_ip)
        .await?;
    let (catalog, storage) = (gw.catalog.clone(), gw.storage.clone());
    let (id, user) = (attachment_id.to_owned(), principal.user_id);
    io_runtime::run(
        async move { store::discard(catalog.as_ref(), storage.as_ref(), &id, &user).await },
    )
    .await
    .map_err(|e| GatewayError::Internal(e.to_string()))??;
    gw.previews.forget(attachment_id);
    ctx.outcome = "discarded";
    Ok(Answer {
        status: 204,
        body: None,
        location: None,
    })
}

/// What the user holds staged now, read on the I/O runtime where the pool lives.
async fn staged_usage(gw: &Gateway, user_id: &str) -> Result<StagedUsage, GatewayError> {
    let (catalog, user) = (gw.catalog.clone(), user_id.to_owned());
    io_runtime::run(async move { catalog.staged_usage(&user).await })
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?
        .map_err(GatewayError::from)
}

fn check_head(gw: &Gateway, session: &Session) -> Result<Accepted, GatewayError> {
    let req = session.req_header();
    let text = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let lengths: Vec<&str> = req
        .headers
        .get_all("content-length")
        .iter()
        .map(|v| v.to_str().unwrap_or("invalid"))
        .collect();
    let head = UploadHead {
        content_length: &lengths,
        transfer_encoding: req.headers.contains_key("transfer-encoding"),
        content_encoding: text("content-encoding"),
        content_type: text("content-type"),
        query: req.uri.query(),
    };
    policy::check(&head, &gw.config.upload)
}

fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get("expect")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Read until `SNIFF_BYTES` (or the whole, shorter body) are in: the chunks, and whether the
/// body already ended.
async fn read_leading(
    session: &mut Session,
    length: u64,
) -> Result<(Vec<Bytes>, bool), GatewayError> {
    let want = length.min(sniff::SNIFF_BYTES as u64);
    let mut chunks = Vec::new();
    let mut received: u64 = 0;
    while received < want {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                chunks.push(chunk);
            }
            Ok(None) => return Ok((chunks, true)),
            Err(e) => {
                tracing::info!(error = %e, "upload body failed before the type check");
                return Err(GatewayError::BadRequest("incomplete_body"));
            }
        }
    }
    if received > length {
        return Err(GatewayError::BadRequest("body_longer_than_length"));
    }
    // With `Content-Length` framing the body is complete once that many bytes are in.
    Ok((chunks, received == length))
}

/// Move the body into the writer's channel. Any client fault is also sent down the channel,
/// so the writer fails (and cleans up) rather than storing a cut body.
async fn pump(
    session: &mut Session,
    tx: mpsc::Sender<Result<Bytes, StorageError>>,
    leading: Vec<Bytes>,
    ended: bool,
    length: u64,
) -> Result<(), GatewayError> {
    let mut received: u64 = 0;
    for chunk in leading {
        received += chunk.len() as u64;
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(()); // the writer stopped: its error is the answer
        }
    }
    let fault = |why: &'static str| {
        (
            GatewayError::BadRequest(why),
            StorageError::Transport(format!("client body: {why}")),
        )
    };
    let outcome = if ended {
        None
    } else {
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    received += chunk.len() as u64;
                    if received > length {
                        break Some(fault("body_longer_than_length"));
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => break None,
                Err(e) => {
                    tracing::info!(error = %e, "upload body failed mid-way");
                    break Some(fault("incomplete_body"));
                }
            }
        }
    };
    let outcome = match outcome {
        None if received < length => Some(fault("incomplete_body")),
        other => other,
    };
    match outcome {
        Some((answer, to_writer)) => {
            let _ = tx.send(Err(to_writer)).await;
            Err(answer)
        }
        None => Ok(()),
    }
}
