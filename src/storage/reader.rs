//! The HTTP client that object reads stream through: hyper's own pooled client rather than
//! reqwest, for one setting. A download's memory must stay bounded whatever the pace of the
//! browser at the other end. When storage delivers faster than the browser reads, hyper's
//! HTTP/1 read buffer grows adaptively to about 400 KiB per connection, and every body chunk is
//! a slice that keeps its whole buffer alive while it waits to be written: about 1 MiB per slow
//! download (BENCHMARKS.md, `slow_500`). reqwest does not expose the cap; this client sets
//! `http1_max_buf_size`. Everything else matches the other storage calls
//! (`http_provider::http_client`): hickory DNS, webpki roots plus the configured CA bundle, a
//! bounded connect, and no redirects (hyper's client never follows one, so signed headers never
//! go to another host).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyDataStream, Empty};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::StorageError;

/// Most a read connection buffers from storage ahead of the client: with one chunk waiting in
/// the body channel and one being written, about three of these per download. 48 KiB, not 64:
/// 200 slow downloads peaked at 63 MiB instead of 77, and a 256 MiB read moved as fast
/// (762 against 750 MB/s in the same run); 32 KiB cost 6-12 % of that (BENCHMARKS.md).
pub const READ_BUFFER_BYTES: usize = 48 * 1024;
/// Idle pooled connections are closed after this long (storage servers drop theirs too).
const POOL_IDLE: Duration = Duration::from_secs(60);

type Connector = HttpsConnector<HttpConnector<Resolver>>;

/// A GET-only client for object bodies; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct ReadClient {
    client: Client<Connector, Empty<Bytes>>,
}

impl std::fmt::Debug for ReadClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadClient").finish_non_exhaustive()
    }
}

impl ReadClient {
    pub fn new(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<Self, StorageError> {
        let mut http = HttpConnector::new_with_resolver(Resolver::default());
        http.enforce_http(false); // the TLS layer above takes https
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Config(format!("storage tls: {e}")))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .http1_max_buf_size(READ_BUFFER_BYTES)
            .pool_idle_timeout(POOL_IDLE)
            .build(https);
        Ok(ReadClient { client })
    }

    /// `GET url` with exactly `headers` (plus `Host`, which hyper derives from the URL as the
    /// signer does); waits for the response head at most `timeout`.
    pub async fn get(
        &self,
        url: &url::Url,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, StorageError> {
        let mut request = http::Request::get(url.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| StorageError::Config(format!("storage request: {e}")))?;
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(result) => result.map_err(legacy_transport),
            Err(_) => Err(StorageError::Timeout),
        }
    }
}

/// The body of a response as a stream of chunks, errors turned into `StorageError`.
pub fn body_stream(
    body: Incoming,
) -> impl Stream<Item = Result<Bytes, StorageError>> + Send + 'static {
    BodyDataStream::new(body).map(|chunk| chunk.map_err(|e| transport_message(&e)))
}

/// A short answer's body (an error description), at most 64 KiB of it, read within `timeout`;
/// empty when it cannot be read.
pub async fn small_text(body: Incoming, timeout: Duration) -> String {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, 64 * 1024);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        _ => String::new(),
    }
}

/// Transport errors carry no URL (URLs hold object keys, and logs must not): hyper's errors
/// never include one; the chain of causes is kept.
fn legacy_transport(e: hyper_util::client::legacy::Error) -> StorageError {
    transport_message(&e)
}

/// `Transport`, with the whole chain of causes in one line.
pub(super) fn transport_message(e: &(dyn std::error::Error + 'static)) -> StorageError {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    StorageError::Transport(message)
}

/// webpki's roots, plus every certificate of the configured bundle (a private endpoint's CA).
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, StorageError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| {
            StorageError::Config(format!("storage.ca_file {}: {e}", path.display()))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"no certificate in the file"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(&e))?;
        }
    }
    Ok(roots)
}

/// hickory DNS for the connector, built on first use (it must be made inside the runtime that
/// drives it, the I/O runtime) and shared by clones. Looks up IPv4 and IPv6 (happy eyeballs).
#[derive(Clone, Default)]
struct Resolver {
    inner: Arc<OnceLock<TokioResolver>>,
}

type Addrs = std::vec::IntoIter<SocketAddr>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Name> for Resolver {
    type Response = Addrs;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let resolver = match inner.get() {
                Some(resolver) => resolver,
                None => {
                    let mut builder = TokioResolver::builder_tokio()?;
                    builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                    inner.get_or_init(|| builder.build())
                }
            };
            let found = resolver.lookup_ip(name.as_str()).await?;
            Ok(found
                .iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect::<Vec<_>>()
                .into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = roots(Some(&path)).unwrap_err();
        assert!(
            matches!(&err, StorageError::Config(m) if m.contains("no certificate")),
            "{err:?}"
        );
        assert!(roots(Some(&dir.path().join("missing.pem"))).is_err());
        assert!(!roots(None).unwrap().is_empty());
    }
}
