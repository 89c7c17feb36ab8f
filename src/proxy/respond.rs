//! Writing the answers the gateway makes itself (errors, 304, 416, upload JSON, the admin
//! listener's answers): one place, one shape. What an error answers is `GatewayError`'s.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::ctx::RequestCtx;
use crate::error::GatewayError;

/// What the gateway answers on success: a status and an optional JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Option<serde_json::Value>,
    /// `Location` of a created resource (RFC 9110 §15.3.2).
    pub location: Option<String>,
}

/// Build a response header; a value that is not a valid header value is an internal error.
///
/// Without Pingora's case map: every name the gateway writes is its own lowercase literal, so
/// there is no client's spelling to keep, and the map cost a second header map per response
/// (built, filled and freed: 2-3 % of a `304`, BENCHMARKS.md). Room for a `200`'s dozen
/// headers from the start, so the map never grows.
pub fn header(status: u16, pairs: &[(&'static str, &str)]) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build_no_case(status, Some(pairs.len() + 14))?;
    for (name, value) in pairs {
        resp.insert_header(*name, *value)?;
    }
    Ok(resp)
}

/// A response head of header values made beforehand (`headers::shared_representation`), then
/// `more`: names and values are taken as they are, neither parsed again nor copied (a
/// `HeaderValue`'s clone shares its bytes), into a map with room for Pingora's own two.
pub fn head_of<'a>(
    status: u16,
    request_id: &str,
    made: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    more: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> Result<ResponseHeader> {
    const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status =
        http::StatusCode::from_u16(status).or_err(ErrorType::InternalError, "response status")?;
    // Room for the id, `more` (a length and a range at most), `caching_of` (no size hint) and
    // Pingora's `date` and `connection`, so the map never grows.
    let mut headers = HeaderMap::with_capacity(made.size_hint().0 + 8);
    let id = HeaderValue::from_str(request_id).or_err(InvalidHTTPHeader, "x-request-id")?;
    headers.insert(X_REQUEST_ID, id);
    for (name, value) in made {
        headers.append(name.clone(), value.clone());
    }
    for (name, value) in more {
        headers.append(name, value);
    }
    parts.headers = headers;
    Ok(ResponseHeader::from(parts))
}

/// A refused request's unread body is read and dropped up to this size (and time) before the
/// answer, so that the connection can be kept: a client still sending a small body reads the
/// answer instead of a reset (closing with unread data makes the kernel send RST, and an RST
/// makes the client's kernel drop an answer it has not read yet).
const DRAIN_BYTES: usize = 256 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// A larger body gets the answer with `Connection: close`, and is then read and dropped for at
/// most this long (and this much) before the close: nginx's "lingering close" (RFC 9112
/// §9.6), so that a client writing its body before it reads (most do) gets the answer, not a
/// reset. Bounded, so a refused flood costs a second of a connection, never storage.
const LINGER_BYTES: usize = 8 * 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Answer `err` as `{"error": code}` JSON with `no-store`. Returns the status written.
///
/// A request body not read by then (a refused upload, as large as its client declares) is
/// never drained past `DRAIN_BYTES`/`DRAIN_TIME`: a larger one gets `Connection: close`, and
/// the connection lingers (`LINGER_BYTES`/`LINGER_TIME`) before it ends.
pub async fn error(session: &mut Session, err: &GatewayError, request_id: &str) -> Result<u16> {
    let drained = session.is_body_done() || drain_small_body(session).await;
    if !drained {
        session.set_keepalive(None);
    }
    let status = err.status();
    let body = Bytes::from(err.body());
    let length = body.len().to_string();
    let mut resp = header(
        status,
        &[
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("content-length", &length),
            ("x-request-id", request_id),
        ],
    )?;
    for (name, value) in err.headers() {
        resp.insert_header(name, value)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    if !drained && !expects_continue(session) {
        linger(session).await;
    }
    Ok(status)
}

/// Answer `err` for this request: its log line, its outcome label, its JSON.
pub async fn answer_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    err: GatewayError,
) -> Result<()> {
    err.log(&ctx.request_id);
    ctx.outcome = err.outcome();
    error(session, &err, &ctx.request_id).await?;
    Ok(())
}

/// Answer a successful upload or discard: JSON (or no body) with `no-store`.
pub async fn json(session: &mut Session, answer: &Answer, request_id: &str) -> Result<()> {
    let body = answer
        .body
        .as_ref()
        .map(|v| Bytes::from(v.to_string().into_bytes()));
    let mut resp = header(
        answer.status,
        &[
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("x-request-id", request_id),
        ],
    )?;
    if let Some(location) = &answer.location {
        resp.insert_header("location", location.as_str())?;
    }
    match body {
        Some(body) => {
            resp.insert_header("content-type", "application/json")?;
            resp.insert_header("content-length", body.len().to_string())?;
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await?;
        }
        None => session.write_response_header(Box::new(resp), true).await?,
    }
    Ok(())
}

/// `err` as a whole response, for the admin listener's handlers; `ids` names the ids at fault
/// (a refused commit).
pub fn error_response(err: &GatewayError, ids: &[String]) -> http::Response<Vec<u8>> {
    let mut body = serde_json::json!({ "error": err.code() });
    if let Some(message) = err.message() {
        body["message"] = message.into();
    }
    if !ids.is_empty() {
        body["ids"] = serde_json::json!(ids);
    }
    let mut resp = json_response(err.status(), &body);
    for (name, value) in err.headers() {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, value);
        }
    }
    resp
}

/// A JSON response with `no-store`.
pub fn json_response(status: u16, value: &serde_json::Value) -> http::Response<Vec<u8>> {
    plain_response(status, "application/json", value.to_string().into_bytes())
}

/// A response of `content_type` with `no-store` and its length.
pub fn plain_response(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .expect("static response parts are valid")
}

/// Read and drop what is left of a small request body; `false` when it is (or says it is)
/// larger than `DRAIN_BYTES`, does not arrive within `DRAIN_TIME`, or waits for a
/// `100 Continue` that a refusal never sends.
async fn drain_small_body(session: &mut Session) -> bool {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if expects_continue(session) || declared.is_none_or(|n| n > DRAIN_BYTES as u64) {
        return false;
    }
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut read = 0;
    while !session.is_body_done() {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => {
                read += chunk.len();
                if read > DRAIN_BYTES {
                    return false;
                }
            }
            Ok(Ok(None)) => return true,
            _ => return false,
        }
    }
    true
}

/// Read and drop the rest of a refused body, within `LINGER_BYTES`/`LINGER_TIME`, after the
/// answer was written and before the connection closes.
async fn linger(session: &mut Session) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut read = 0;
    while !session.is_body_done() && read <= LINGER_BYTES {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => read += chunk.len(),
            _ => return,
        }
    }
}

/// The client waits for a `100 Continue` before its body, which a refusal never sends.
fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get("expect")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
