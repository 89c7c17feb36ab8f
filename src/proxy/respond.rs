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
        _ => {}
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(status)
}
