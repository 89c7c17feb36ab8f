//! Per-request state carried through the Pingora phases: what the access log needs.

use std::net::IpAddr;
use std::time::Instant;

use crate::route::Route;

pub struct RequestCtx {
    pub request_id: String,
    pub started: Instant,
    pub route: Route,
    pub client_ip: Option<IpAddr>,
    /// Attachment id of a gateway route (already validated as an id; safe to log).
    pub attachment_id: Option<String>,
    /// Short closed-set label of how the request ended (`served`, `not_modified`, `denied`...).
    pub outcome: &'static str,
    /// Bytes the response promised (Content-Length) for a streamed read.
    pub expected_body_bytes: Option<u64>,
    /// The user's download slot: held while the body streams, released on drop.
    pub slot: Option<crate::limits::SlotGuard>,
    /// Counts this request in `downloads_in_flight` while it is a read; released on drop.
    pub in_flight: Option<crate::metrics::InFlight>,
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            request_id: String::new(),
            started: Instant::now(),
            route: Route::Passthrough,
            client_ip: None,
            attachment_id: None,
            outcome: "",
            expected_body_bytes: None,
            slot: None,
            in_flight: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

/// Template of a route for logs and metrics: never ids.
pub fn route_template(route: &Route) -> &'static str {
    match route {
        Route::LinkedRead { .. } => "read_linked",
        Route::StagedRead { .. } => "read_staged",
        Route::Upload => "upload",
        Route::StagedDelete { .. } => "delete_staged",
        Route::MethodNotAllowed { .. } => "method_not_allowed",
        Route::NotFound => "not_found",
        Route::BadRequest => "bad_request",
        Route::BadTarget => "bad_target",
        Route::Passthrough => "app",
    }
}

/// Whether a request counts as a download in the metrics: the two read routes, any answer.
pub fn is_download(route: &Route) -> bool {
    matches!(route, Route::LinkedRead { .. } | Route::StagedRead { .. })
}

/// Whether `e` is the client going away: a reset or closed connection while the response
/// was being written. Pingora's HTTP/1 writer does not mark these as downstream errors, so
/// the type decides too; only the client is ever written to, so a write error is the client's.
pub fn is_client_abort(e: &pingora::prelude::Error) -> bool {
    use pingora::prelude::{ErrorSource, ErrorType};
    *e.esource() == ErrorSource::Downstream
        || matches!(
            e.etype(),
            ErrorType::WriteError | ErrorType::ConnectionClosed
        )
}

/// A client-supplied `X-Request-Id` is kept when it is short and plain; otherwise a new one.
pub fn request_id(client_value: Option<&str>) -> String {
    match client_value {
        Some(v)
            if (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            v.to_string()
        }
        _ => uuid::Uuid::new_v4().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_aborts_are_write_errors_or_downstream_ones() {
        use pingora::prelude::{Error, ErrorType};
        let mut closed = Error::new(ErrorType::ReadError);
        assert!(!is_client_abort(&closed), "a storage read error is ours");
        closed.as_down();
        assert!(is_client_abort(&closed));
        assert!(is_client_abort(&Error::new(ErrorType::WriteError)));
        assert!(is_client_abort(&Error::new(ErrorType::ConnectionClosed)));
        assert!(!is_client_abort(&Error::new(ErrorType::InternalError)));
    }

    #[test]
    fn keeps_plain_request_ids_and_replaces_others() {
        assert_eq!(request_id(Some("abc-123_x.y")), "abc-123_x.y");
        for bad in ["", "a b", "x\r\ny", &"a".repeat(65), "ü"] {
            let id = request_id(Some(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_eq!(request_id(None).len(), 32);
    }
}
