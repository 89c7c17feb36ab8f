//! Writing the answers the gateway makes itself (errors, 304, 416): one place, one shape.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use crate::error::GatewayError;

/// Build a response header; a value that is not a valid header value is an internal error.
pub fn header(status: u16, pairs: &[(&'static str, &str)]) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(pairs.len() + 4))?;
    for (name, value) in pairs {
        resp.insert_header(*name, *value)?;
    }
    Ok(resp)
}

/// Answer `err` as `{"error": code}` JSON with `no-store`. Returns the status written.
pub async fn error(session: &mut Session, err: &GatewayError, request_id: &str) -> Result<u16> {
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
    match err {
        GatewayError::Unauthorized(_) => resp.insert_header("www-authenticate", "Bearer")?,
        GatewayError::MethodNotAllowed { allow } => resp.insert_header("allow", *allow)?,
        GatewayError::RangeNotSatisfiable { size } => resp.insert_header(
            "content-range",
            crate::http::range::unsatisfied_content_range(*size),
        )?,
        // RFC 6585 §4 (429) with RFC 9110 §10.2.3 Retry-After in seconds, and the
        // RateLimit-* fields of draft-ietf-httpapi-ratelimit-headers.
        GatewayError::RateLimited(limited) => {
            resp.insert_header("retry-after", limited.retry_after_s.to_string())?;
            resp.insert_header("ratelimit-limit", limited.limit.to_string())?;
            resp.insert_header("ratelimit-remaining", "0")?;
            resp.insert_header("ratelimit-reset", limited.reset_s.to_string())?;
        }
        GatewayError::ServiceUnavailable(_) => resp.insert_header("retry-after", "1")?,
        _ => {}
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(status)
}

/// Answer a successful upload or discard: JSON (or no body) with `no-store`.
pub async fn json(
    session: &mut Session,
    answer: &crate::upload::Answer,
    request_id: &str,
) -> Result<()> {
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
