//! What the app is told about a passthrough request (`X-Forwarded-For/Proto/Host`), and how
//! the gateway reaches it.

use std::net::{IpAddr, SocketAddr};

use pingora::http::RequestHeader;
use pingora::prelude::*;

use super::client_ip;
use crate::config::{AppConfig, ServerConfig};

/// The app as a Pingora peer. With TLS, SNI defaults to the upstream's host: an empty SNI
/// would disable certificate verification.
pub fn app_peer(app: &AppConfig, addr: SocketAddr) -> HttpPeer {
    let sni = app
        .sni
        .clone()
        .unwrap_or_else(|| upstream_host(&app.upstream).to_string());
    let mut peer = HttpPeer::new(addr, app.tls, sni);
    // Without these a hung app holds the client (and the connection's task) for ever.
    peer.options.connection_timeout = Some(app.connect_timeout);
    peer.options.total_connection_timeout = Some(app.connect_timeout);
    peer.options.read_timeout = Some(app.read_timeout);
    peer.options.write_timeout = Some(app.write_timeout);
    peer
}

/// `host` of `host:port` (brackets of an IPv6 literal removed).
fn upstream_host(upstream: &str) -> &str {
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The scheme the client used: a trusted proxy's `X-Forwarded-Proto`, else the listener's.
pub fn request_scheme(req: &RequestHeader, peer: Option<IpAddr>, server: &ServerConfig) -> String {
    let trusted = peer.is_some_and(|p| client_ip::is_trusted(p, &server.trusted_proxies));
    match req
        .headers
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
    {
        Some(p) if trusted && matches!(p, "http" | "https") => p.to_string(),
        _ if server.tls_cert_file.is_some() => "https".to_string(),
        _ => "http".to_string(),
    }
}

/// A trusted proxy's chain is extended; anyone else's claims are replaced by the peer.
pub fn set_forwarded_headers(
    upstream: &mut RequestHeader,
    peer: Option<IpAddr>,
    host: Option<String>,
    server: &ServerConfig,
) -> Result<()> {
    let trusted = peer.is_some_and(|p| client_ip::is_trusted(p, &server.trusted_proxies));
    let mut chain: Vec<String> = Vec::new();
    if trusted {
        chain.extend(
            upstream
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string),
        );
    }
    if let Some(p) = peer {
        chain.push(p.to_string());
    }
    upstream.remove_header("x-forwarded-for");
    if !chain.is_empty() {
        upstream.insert_header("x-forwarded-for", chain.join(", "))?;
    }
    let proto = request_scheme(upstream, peer, server);
    upstream.insert_header("x-forwarded-proto", proto)?;
    match host {
        Some(h) => upstream.insert_header("x-forwarded-host", h)?,
        None => {
            upstream.remove_header("x-forwarded-host");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_defaults_to_the_upstream_host() {
        assert_eq!(upstream_host("app.internal:3000"), "app.internal");
        assert_eq!(upstream_host("[::1]:3000"), "::1");
        assert_eq!(upstream_host("127.0.0.1:443"), "127.0.0.1");
    }
}
