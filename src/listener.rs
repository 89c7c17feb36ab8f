//! The public listener: plain TCP behind a TLS-terminating balancer, or TLS (rustls) on the
//! gateway itself with HTTP/2 offered through ALPN. It only configures; Pingora binds.

use std::path::Path;

use anyhow::{anyhow, bail};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::proxy::HttpProxy;
use pingora::services::listening::Service;

use crate::config::ServerConfig;
use crate::drain::Draining;
use crate::proxy::header_deadline::HeaderDeadline;
use crate::proxy::Gateway;

/// Add `server.listen` to the proxy service. With a certificate and key it is TLS 1.2/1.3 and
/// offers `h2` before `http/1.1` (RFC 7301): a page of thumbnails then shares one connection
/// instead of six. The files are read when the process starts, so an upgrade (`reload`)
/// picks up a renewed certificate.
pub fn add_public(
    proxy: &mut Service<Draining<HeaderDeadline<HttpProxy<Gateway>>>>,
    server: &ServerConfig,
) -> anyhow::Result<()> {
    let listen = ListenerConfig::tcp(server.listen.to_string())
        .l4_buffer(L4BufferSettings::new(READ_BUFFER_BYTES, WRITE_BUFFER_BYTES));
    let listen = match (&server.tls_cert_file, &server.tls_key_file) {
        (Some(cert), Some(key)) => listen.tls(tls_settings(cert, key)?),
        _ => listen,
    };
    proxy.add_listener(listen);
    Ok(())
}

/// Each connection's write buffer. Pingora's default is one segment (1,460 bytes), so a head
/// and the body after it were two `send`s; with room for both, a `304`'s head or an 8 KiB
/// picture with its head leaves in one (small_200 in benches/load: BENCHMARKS.md). Bodies
/// larger than this still go from storage straight to the socket, and the buffer's pages are
/// only touched as far as a connection fills them.
const WRITE_BUFFER_BYTES: usize = 32 * 1024;

/// Each connection's read buffer: room for a request head with its cookies and token many
/// times over. Pingora's default is 64 KiB, which every open connection holds for as long as
/// it lasts, a download's included; an upload's body is read past it, into the body buffer.
const READ_BUFFER_BYTES: usize = 8 * 1024;

fn tls_settings(cert: &Path, key: &Path) -> anyhow::Result<TlsSettings> {
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    // Pingora panics inside its runtime on an unusable pair; refuse to start instead, with the
    // file names in the message.
    match pingora::tls::load_certs_and_key_files(&cert, &key) {
        Ok(Some(_)) => {}
        Ok(None) => bail!(
            "server.tls_cert_file {cert:?} / server.tls_key_file {key:?}: \
             no certificate or no private key in them"
        ),
        Err(e) => bail!("server.tls_cert_file {cert:?} / server.tls_key_file {key:?}: {e}"),
    }
    let mut settings =
        TlsSettings::intermediate(&cert, &key).map_err(|e| anyhow!("tls listener: {e}"))?;
    settings.enable_h2();
    Ok(settings)
}
