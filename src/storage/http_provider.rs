//! What the HTTP providers (`s3`, `supabase`) share: their reqwest client, how an answer's
//! status and object body are checked, and the timeouts that bound every wait (a body chunk,
//! an upload that stands still). It builds no provider's requests and knows no provider's API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::StatusCode;
use tokio::time::Instant;

use super::{exact_length, ByteStream, ObjectBody, StorageError};
use crate::http::range::ByteRange;

/// The HTTP client of a storage provider: hickory DNS, bounded connects, no redirects, and
/// the extra CA bundle of a private endpoint when one is configured.
pub(super) fn http_client(
    ca_file: Option<&std::path::Path>,
    connect_timeout: Duration,
) -> Result<reqwest::Client, StorageError> {
    let mut builder = reqwest::Client::builder()
        .hickory_dns(true)
        .connect_timeout(connect_timeout)
        // A redirect would replay signed headers to another host: never follow one.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca_file) = ca_file {
        let pem = std::fs::read(ca_file).map_err(|e| {
            StorageError::Config(format!("storage.ca_file {}: {e}", ca_file.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            StorageError::Config(format!("storage.ca_file {}: {e}", ca_file.display()))
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| StorageError::Config(format!("storage http client: {e}")))
}

pub(super) fn parse_url(url: &str) -> Result<url::Url, StorageError> {
    url::Url::parse(url).map_err(|e| StorageError::Config(format!("storage url: {e}")))
}

/// Send `req`; bounded by the read timeout until the response headers arrive.
pub(super) async fn send(
    req: reqwest::RequestBuilder,
    read_timeout: Duration,
) -> Result<reqwest::Response, StorageError> {
    match tokio::time::timeout(read_timeout, req.send()).await {
        Ok(result) => result.map_err(transport),
        Err(_) => Err(StorageError::Timeout),
    }
}

/// Read a small response body (errors, listings) within the read timeout.
pub(super) async fn small_body(
    resp: reqwest::Response,
    read_timeout: Duration,
) -> Result<String, StorageError> {
    match tokio::time::timeout(read_timeout, resp.text()).await {
        Ok(text) => text.map_err(transport),
        Err(_) => Err(StorageError::Timeout),
    }
}

/// The `Range` header asking for `r` (RFC 9110 §14.2).
pub(super) fn range_value(r: ByteRange) -> String {
    format!("bytes={}-{}", r.start, r.end)
}

/// The status a successful read answers: `206` for a range (RFC 9110 §15.3.7), else `200`.
pub(super) fn read_status(range: Option<ByteRange>) -> StatusCode {
    match range {
        Some(_) => StatusCode::PARTIAL_CONTENT,
        None => StatusCode::OK,
    }
}

pub(super) fn check_status(status: StatusCode, expected: StatusCode) -> Result<(), StorageError> {
    match status {
        s if s == expected => Ok(()),
        StatusCode::NOT_FOUND => Err(StorageError::NotFound),
        s => Err(StorageError::Status(s.as_u16())),
    }
}

/// The body of a successful object read, checked against what was asked: a known length,
/// the range asked for (never a different one), each chunk within the read timeout, and
/// exactly `Content-Length` bytes.
pub(super) fn object_body(
    headers: &http::HeaderMap,
    body: impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static,
    range: Option<ByteRange>,
    read_timeout: Duration,
) -> Result<ObjectBody, StorageError> {
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            StorageError::Transport("storage answered without a Content-Length".into())
        })?;
    if let Some(r) = range {
        if length != r.len() || !content_range_starts_at(headers, r.start) {
            return Err(StorageError::Transport(
                "storage answered a different range than asked".into(),
            ));
        }
    }
    let stream = with_chunk_timeout(body, read_timeout);
    Ok(ObjectBody {
        content_length: length,
        stream: exact_length(stream, length),
    })
}

/// Whether `Content-Range: bytes <start>-<end>/<size>` starts where asked (RFC 9110 §14.4).
fn content_range_starts_at(headers: &http::HeaderMap, start: u64) -> bool {
    headers
        .get(http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split_once('-'))
        .and_then(|(first, _)| first.parse::<u64>().ok())
        == Some(start)
}

/// Transport errors carry no URL: URLs hold object keys, and logs must not.
pub(super) fn transport(e: reqwest::Error) -> StorageError {
    if e.is_timeout() {
        return StorageError::Timeout;
    }
    super::reader::transport_message(&e.without_url())
}

/// Bound the wait for each body chunk: a stalled body yields `Timeout` and ends, never hangs.
fn with_chunk_timeout(
    inner: impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static,
    read_timeout: Duration,
) -> ByteStream {
    let inner = Some(Box::pin(inner));
    Box::pin(futures_util::stream::unfold(
        inner,
        move |inner| async move {
            let mut inner = inner?;
            match tokio::time::timeout(read_timeout, inner.next()).await {
                Err(_) => Some((Err(StorageError::Timeout), None)),
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(inner))),
                Ok(Some(Err(e))) => Some((Err(e), None)),
            }
        },
    ))
}

/// An upload's request body: exactly `content_length` bytes (the length is sent explicitly, and
/// a cut or overlong body must fail rather than be stored), each chunk marking the upload's
/// [`Progress`].
pub(super) fn upload_body(body: ByteStream, content_length: u64) -> (reqwest::Body, Progress) {
    let progress = Progress::new();
    let touched = progress.clone();
    let body = exact_length(body, content_length).inspect(move |_| touched.touch());
    (reqwest::Body::wrap_stream(body), progress)
}

/// When an upload last moved. An upload may take long, but it may not stand still: the wait
/// for storage's answer is bounded by the read timeout counted from the last body chunk sent.
#[derive(Clone)]
pub(super) struct Progress(Arc<Mutex<Instant>>);

impl Progress {
    fn new() -> Self {
        Progress(Arc::new(Mutex::new(Instant::now())))
    }

    fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send the upload `req` whose body this watches; the wait ends `idle` after it last moved.
    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        idle: Duration,
    ) -> Result<reqwest::Response, StorageError> {
        self.bound(req.send(), idle).await?.map_err(transport)
    }

    async fn bound<F: std::future::Future>(
        &self,
        fut: F,
        idle: Duration,
    ) -> Result<F::Output, StorageError> {
        tokio::pin!(fut);
        loop {
            let deadline = self.last() + idle;
            tokio::select! {
                out = &mut fut => return Ok(out),
                _ = tokio::time::sleep_until(deadline) => {
                    if self.last() + idle <= Instant::now() {
                        return Err(StorageError::Timeout);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let ok = StatusCode::OK;
        assert!(check_status(StatusCode::OK, ok).is_ok());
        assert!(matches!(
            check_status(StatusCode::NOT_FOUND, ok),
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            check_status(StatusCode::FORBIDDEN, ok),
            Err(StorageError::Status(403))
        ));
        assert!(matches!(
            check_status(StatusCode::OK, StatusCode::PARTIAL_CONTENT),
            Err(StorageError::Status(200))
        ));
    }
}
