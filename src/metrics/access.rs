//! What one request leaves behind when it ends: the JSON access-log line (technical fields
//! only: never a token, a cookie, a file name or a full client address) and, for the read
//! routes, the download counters. The proxy fills in the record; the policy of what it says is
//! here.

use std::time::Duration;

/// How the connection's exchange ended, as far as Pingora knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Finished without an error.
    Done,
    /// The client went away (routine: players cancel media ranges when seeking).
    ClientAborted,
    /// Any other error after the handler returned.
    Aborted,
}

/// One finished request.
pub struct Access<'a> {
    pub request_id: &'a str,
    /// The route's template, never the path with its ids.
    pub route: &'static str,
    pub method: &'a str,
    /// `0` when no header was written.
    pub status: u16,
    /// Body bytes really written to the client.
    pub bytes: u64,
    pub latency: Duration,
    pub attachment_id: Option<&'a str>,
    /// Already anonymized (`telemetry::anonymize_ip`).
    pub client: Option<&'a str>,
    /// The handler's own label (`served`, `partial`, `denied`...); empty when it set none.
    pub outcome: &'static str,
    pub ending: Ending,
    /// Pingora's error type, when it ended with one.
    pub error: Option<&'static str>,
    /// A read route: counted as a download.
    pub download: bool,
}

/// The `outcome` field: the handler's label wins; without one, how the exchange ended.
pub fn outcome(label: &'static str, ending: Ending) -> &'static str {
    match (label, ending) {
        ("", Ending::ClientAborted) => "client_aborted",
        ("", Ending::Aborted) => "aborted",
        ("", Ending::Done) => "proxied",
        (label, _) => label,
    }
}

/// Log the request's line and count it.
pub fn finished(a: &Access<'_>) {
    tracing::info!(
        target: "access",
        request_id = %a.request_id,
        route = a.route,
        method = %a.method,
        status = a.status,
        bytes = a.bytes,
        latency_ms = a.latency.as_secs_f64() * 1000.0,
        attachment_id = a.attachment_id,
        client = a.client,
        outcome = outcome(a.outcome, a.ending),
        error = a.error,
    );
    if a.download {
        super::download_finished(a.status, a.bytes, a.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handler_label_wins_over_how_it_ended() {
        assert_eq!(outcome("served", Ending::Done), "served");
        assert_eq!(outcome("partial", Ending::ClientAborted), "partial");
        assert_eq!(outcome("", Ending::ClientAborted), "client_aborted");
        assert_eq!(outcome("", Ending::Aborted), "aborted");
        assert_eq!(outcome("", Ending::Done), "proxied");
    }
}
