//! Builds and runs the Pingora server: the public proxy service and the admin service.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;

use crate::admin::AdminApp;
use crate::authn::Authenticator;
use crate::config::Config;
use crate::proxy::Gateway;
use crate::{catalog, io_runtime, storage};

/// How long Pingora waits for the last connections after the grace period.
const SHUTDOWN_TIMEOUT_S: u64 = 5;

/// Serve until a signal stops the process.
pub fn run(config: Config, upgrade: bool) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let (catalog, storage) = io_runtime::block_on(async {
        let catalog = catalog::connect(&config.catalog)
            .await
            .context("connecting to the catalog")?;
        let storage = storage::build(&config.storage).context("building the storage client")?;
        anyhow::Ok((catalog, storage))
    })?;
    let authn = Authenticator::new(&config.auth).map_err(|e| anyhow!("auth: {e}"))?;
    let app_addr = resolve(&config.app.upstream)?;

    let opt = Opt {
        upgrade,
        ..Default::default()
    };
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_S),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let gateway = Gateway {
        config: config.clone(),
        authn,
        catalog: catalog.clone(),
        storage: storage.clone(),
        app_addr,
    };
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        gateway,
        "attachment-gateway",
    );
    let listen = config.server.listen.to_string();
    match (&config.server.tls_cert_file, &config.server.tls_key_file) {
        (Some(cert), Some(key)) => proxy
            .add_tls(&listen, &cert.to_string_lossy(), &key.to_string_lossy())
            .map_err(|e| anyhow!("tls listener: {e}"))?,
        _ => proxy.add_tcp(&listen),
    }
    let mut admin = Service::new("admin".to_string(), AdminApp { catalog, storage });
    admin.add_tcp(&config.server.admin_listen.to_string());

    server.add_service(proxy);
    server.add_service(admin);
    tracing::info!(
        listen = %config.server.listen,
        admin_listen = %config.server.admin_listen,
        "serving"
    );
    server.run_forever();
}

/// Resolve the app's address once, at start.
fn resolve(upstream: &str) -> anyhow::Result<SocketAddr> {
    upstream
        .to_socket_addrs()
        .with_context(|| format!("app.upstream {upstream:?} does not resolve"))?
        .next()
        .ok_or_else(|| anyhow!("app.upstream {upstream:?} has no address"))
}
