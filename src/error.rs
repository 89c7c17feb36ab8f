//! One error type for every answer the gateway writes itself. Each variant knows its status,
//! the snake_case code a client may see, and nothing else leaks: the detail goes to the log.

use pingora::{Error as ProxyError, ErrorSource, ErrorType};

use crate::authn::AuthError;
use crate::catalog::CatalogError;
use crate::limits::headers::HeadersTooLarge;
use crate::limits::{LimitError, Limited};
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Missing or bad token. The reason is logged, never sent.
    #[error("unauthorized: {}", .0.reason())]
    Unauthorized(AuthError),
    /// A true miss, or a denial: both answer exactly the same bytes.
    #[error("not found ({0})")]
    NotFound(&'static str),
    #[error("bad request ({0})")]
    BadRequest(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// A full read above `http.max_object_bytes`: ranges still work.
    #[error("object too large for a full read")]
    ObjectTooLarge,
    #[error("not implemented")]
    NotImplemented,
    /// A cookie-authenticated write from another site's page (SPEC §3 "Cross-site requests").
    #[error("cross-site request")]
    CrossSite,
    /// An upload without a usable `Content-Length` (RFC 9110 §15.5.12).
    #[error("length required ({0})")]
    LengthRequired(&'static str),
    /// An upload declaring more than `upload.max_bytes` (RFC 9110 §15.5.14).
    #[error("payload too large")]
    PayloadTooLarge,
    /// An upload that would take its user over `upload.max_staged_per_user` or
    /// `upload.max_staged_bytes_per_user` (SPEC §3 "Upload").
    #[error("staged quota exceeded")]
    StagedQuotaExceeded,
    /// An upload of a type not allowed, whose bytes lie about it, or that is encoded
    /// (RFC 9110 §15.5.16).
    #[error("unsupported media type ({0})")]
    UnsupportedMediaType(&'static str),
    /// A commit that cannot apply to the rows as they are (RFC 9110 §15.5.10).
    #[error("conflict ({0})")]
    Conflict(&'static str),
    /// Over a rate limit or the concurrent-download cap (SPEC §8).
    #[error("rate limited ({})", .0.scope.as_str())]
    RateLimited(Limited),
    /// Request headers too large or too many (RFC 6585 §5).
    #[error("request header fields too large ({0})")]
    HeadersTooLarge(&'static str),
    /// A dependency the request needs is down and the configuration says to refuse
    /// (`limits.on_redis_error = "deny"`).
    #[error("service unavailable ({0})")]
    ServiceUnavailable(&'static str),
    /// An authorized read of `?variant=` whose source has no preview (SPEC §12).
    #[error("no preview")]
    NoPreview,
    /// Every preview worker and queue slot is taken.
    #[error("preview workers busy")]
    PreviewBusy,
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The app (passthrough) failed or refused the connection.
    #[error("app upstream failed")]
    Upstream,
    #[error("app upstream timed out")]
    UpstreamTimeout,
    #[error("internal: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::Unauthorized(_) => 401,
            GatewayError::NotFound(_) => 404,
            GatewayError::BadRequest(_) => 400,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::RangeNotSatisfiable { .. } => 416,
            GatewayError::ObjectTooLarge => 403,
            GatewayError::NotImplemented => 501,
            GatewayError::CrossSite => 403,
            GatewayError::LengthRequired(_) => 411,
            GatewayError::PayloadTooLarge => 413,
            GatewayError::StagedQuotaExceeded => 413,
            GatewayError::UnsupportedMediaType(_) => 415,
            GatewayError::Conflict(_) => 409,
            GatewayError::RateLimited(_) => 429,
            GatewayError::HeadersTooLarge(_) => 431,
            GatewayError::ServiceUnavailable(_) => 503,
            GatewayError::NoPreview => 404,
            GatewayError::PreviewBusy => 503,
            GatewayError::Catalog(_) => 503,
            GatewayError::Storage(e) => match e {
                // The row exists but its object does not: answer like any other miss.
                StorageError::NotFound => 404,
                StorageError::Timeout => 504,
                _ => 502,
            },
            GatewayError::Upstream => 502,
            GatewayError::UpstreamTimeout => 504,
            GatewayError::Internal(_) => 500,
        }
    }

    /// The client-visible `{"error": ...}` code.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Unauthorized(_) => "unauthorized",
            GatewayError::NotFound(_) => "not_found",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            GatewayError::ObjectTooLarge => "object_too_large",
            GatewayError::NotImplemented => "not_implemented",
            GatewayError::CrossSite => "cross_site",
            GatewayError::LengthRequired(_) => "length_required",
            GatewayError::PayloadTooLarge => "payload_too_large",
            GatewayError::StagedQuotaExceeded => "staged_quota_exceeded",
            GatewayError::UnsupportedMediaType(_) => "unsupported_media_type",
            GatewayError::Conflict(_) => "conflict",
            GatewayError::RateLimited(_) => "rate_limited",
            GatewayError::HeadersTooLarge(_) => "request_header_fields_too_large",
            GatewayError::ServiceUnavailable(_) => "service_unavailable",
            GatewayError::NoPreview => "no_preview",
            GatewayError::PreviewBusy => "preview_busy",
            GatewayError::Catalog(_) => "catalog_unavailable",
            GatewayError::Storage(StorageError::NotFound) => "not_found",
            GatewayError::Storage(StorageError::Timeout) => "storage_timeout",
            GatewayError::Storage(_) => "storage_unavailable",
            GatewayError::Upstream => "bad_gateway",
            GatewayError::UpstreamTimeout => "gateway_timeout",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// An optional human hint; never carries internals.
    pub fn message(&self) -> Option<&'static str> {
        match self {
            GatewayError::ObjectTooLarge => Some("request the object with a Range header"),
            _ => None,
        }
    }

    /// A short stable label for logs and metrics (closed set).
    pub fn outcome(&self) -> &'static str {
        match self {
            GatewayError::NotFound(why) => why,
            GatewayError::BadRequest(why) => why,
            GatewayError::LengthRequired(why) => why,
            GatewayError::UnsupportedMediaType(why) => why,
            GatewayError::Conflict(why) => why,
            GatewayError::RateLimited(l) => l.scope.outcome(),
            GatewayError::ServiceUnavailable(why) => why,
            GatewayError::HeadersTooLarge(why) => why,
            other => other.code(),
        }
    }

    /// The JSON body: `{"error":"<code>"}` plus an optional message.
    pub fn body(&self) -> Vec<u8> {
        let mut body = serde_json::json!({ "error": self.code() });
        if let Some(message) = self.message() {
            body["message"] = message.into();
        }
        body.to_string().into_bytes()
    }

    /// Headers the answer carries besides the JSON body's own, by variant.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            GatewayError::Unauthorized(_) => vec![("www-authenticate", "Bearer".into())],
            GatewayError::MethodNotAllowed { allow } => vec![("allow", (*allow).into())],
            GatewayError::RangeNotSatisfiable { size } => vec![(
                "content-range",
                crate::http::range::unsatisfied_content_range(*size),
            )],
            // RFC 6585 §4 (429) with RFC 9110 §10.2.3 Retry-After in seconds, and the
            // RateLimit-* fields of draft-ietf-httpapi-ratelimit-headers.
            GatewayError::RateLimited(limited) => vec![
                ("retry-after", limited.retry_after_s.to_string()),
                ("ratelimit-limit", limited.limit.to_string()),
                ("ratelimit-remaining", "0".into()),
                ("ratelimit-reset", limited.reset_s.to_string()),
            ],
            GatewayError::ServiceUnavailable(_) | GatewayError::PreviewBusy => {
                vec![("retry-after", "1".into())]
            }
            _ => Vec::new(),
        }
    }

    /// The log line an answered error deserves: refused tokens at `info` (their reason never
    /// reaches the client), failures of the gateway's own dependencies at `error`.
    pub fn log(&self, request_id: &str) {
        match self {
            GatewayError::Unauthorized(reason) => {
                tracing::info!(request_id, reason = reason.reason(), "token refused")
            }
            GatewayError::Catalog(e) => tracing::error!(request_id, error = %e, "catalog failed"),
            GatewayError::Internal(e) => tracing::error!(request_id, error = %e, "internal error"),
            _ => {}
        }
    }

    /// What a Pingora failure answers when nothing was written yet; `None` when the client
    /// is gone and there is no one to answer.
    pub fn from_proxy(e: &ProxyError) -> Option<GatewayError> {
        Some(match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(400), _) => GatewayError::BadRequest("bad_request"),
            (
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
                ErrorSource::Upstream,
            ) => GatewayError::UpstreamTimeout,
            (_, ErrorSource::Upstream) => GatewayError::Upstream,
            (_, ErrorSource::Downstream) => return None,
            _ => GatewayError::Internal(e.to_string()),
        })
    }
}

impl From<LimitError> for GatewayError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Limited(limited) => GatewayError::RateLimited(limited),
            LimitError::Unavailable => GatewayError::ServiceUnavailable("rate_limiter_down"),
        }
    }
}

impl From<HeadersTooLarge> for GatewayError {
    fn from(e: HeadersTooLarge) -> Self {
        GatewayError::HeadersTooLarge(e.0)
    }
}
