//! Builds and runs the Pingora server: the public proxy service and the admin service.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;

use crate::authn::Authenticator;
use crate::config::Config;
use crate::drain::{self, Draining};
use crate::limits::Limiter;
use crate::preview::Previews;
use crate::proxy::admin::AdminApp;
use crate::proxy::header_deadline::HeaderDeadline;
use crate::proxy::Gateway;
use crate::{broadcast, catalog, io_runtime, listener, storage, upgrade};

/// How long Pingora waits for the last connections after the grace period.
const SHUTDOWN_TIMEOUT_S: u64 = 5;

/// Serve until a signal stops the process.
pub fn run(config: Config, upgrade: bool) -> anyhow::Result<()> {
    run_with(config, upgrade, Vec::new())
}

/// `run`, with more services in the same server (the demo's chat page).
pub fn run_with(
    config: Config,
    upgrade: bool,
    extra: Vec<Box<dyn ServiceWithDependents>>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let (catalog, storage) = io_runtime::block_on(async {
        let catalog = catalog::connect(&config.catalog)
            .await
            .context("connecting to the catalog")?;
        let storage =
            storage::build_serving(&config.storage).context("building the storage client")?;
        anyhow::Ok((catalog, storage))
    })?;
    let authn = Authenticator::new(&config.auth);
    let limiter = Arc::new(Limiter::new(&config.limits)?);
    let app_addr = resolve(&config.app.upstream)?;

    let opt = Opt {
        upgrade,
        ..Default::default()
    };
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_S),
        // Pingora's defaults are shared /tmp paths: two instances on one box would collide.
        pid_file: config.server.pid_file.to_string_lossy().into_owned(),
        upgrade_sock: config.server.upgrade_sock.to_string_lossy().into_owned(),
        ..Default::default()
    };
    upgrade::prepare_runtime_dirs(&config.server)?;
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // With `--upgrade` this blocks until the running instance hands over its sockets.
    server.bootstrap();
    upgrade::write_pid_file(&config.server.pid_file)?;

    let previews = Arc::new(Previews::new(
        catalog.clone(),
        storage.clone(),
        config.preview.clone(),
    ));
    let caches = crate::erase::Caches {
        catalog: catalog.clone(),
        storage: storage.clone(),
        previews: previews.clone(),
    };
    let publisher = deletes_across_instances(&config, &caches)?;
    let gateway = Gateway {
        config: config.clone(),
        authn,
        catalog: catalog.clone(),
        storage: storage.clone(),
        app_addr,
        limiter: limiter.clone(),
        previews,
    };
    let mut proxy = Service::new(
        "attachment-gateway".to_string(),
        Draining::new(
            HeaderDeadline::new(
                pingora::proxy::http_proxy(&server.configuration, gateway),
                config.server.header_timeout,
            ),
            drain::linger(config.server.grace_period),
        ),
    );
    listener::add_public(&mut proxy, &config.server)?;
    let mut admin = Service::new(
        "admin".to_string(),
        AdminApp {
            committer: crate::proxy::commit::Committer {
                catalog: catalog.clone(),
                storage: storage.clone(),
                service_token: config.internal.service_token.clone(),
            },
            eraser: crate::proxy::erase::Eraser {
                caches,
                publisher,
                service_token: config.internal.service_token.clone(),
            },
            catalog: catalog.clone(),
            storage: storage.clone(),
            limiter,
        },
    );
    admin.add_tcp(&config.server.admin_listen.to_string());

    server.add_service(proxy);
    server.add_service(admin);
    server.add_services(extra);
    server.add_service(pingora::services::background::background_service(
        "cleanup",
        crate::cleanup::CleanupService {
            catalog,
            storage,
            ttl: config.upload.staged_ttl,
            interval: config.upload.cleanup_interval,
        },
    ));
    tracing::info!(
        listen = %config.server.listen,
        admin_listen = %config.server.admin_listen,
        "serving"
    );
    server.run_forever();
}

/// With Redis configured, every instance hears of every delete (`broadcast`): subscribe on the
/// I/O runtime for the life of the process, and return the publisher the delete endpoint
/// uses. Without Redis, `None`: other instances' staleness is bounded by their cache TTLs.
fn deletes_across_instances(
    config: &Config,
    caches: &crate::erase::Caches,
) -> anyhow::Result<Option<Arc<broadcast::Publisher>>> {
    let limits = &config.limits;
    let urls: Vec<String> = match &limits.redis_url {
        Some(url) => vec![url.expose().to_owned()],
        None => limits
            .redis_cluster_nodes
            .iter()
            .map(|n| n.expose().to_owned())
            .collect(),
    };
    if urls.is_empty() {
        return Ok(None);
    }
    let ca = limits.redis_ca.as_ref().map(|ca| ca.pem.clone());
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let publisher = broadcast::Publisher::new(&refs, ca.as_deref()).context("limits.redis_url")?;
    let caches = caches.clone();
    io_runtime::runtime().spawn(async move {
        let receive = |event| {
            let caches = caches.clone();
            async move {
                match event {
                    broadcast::Event::Subscribed => caches.forget_all(),
                    broadcast::Event::Deleted(ids) => caches.forget(&ids).await,
                }
            }
        };
        if let Err(e) = broadcast::subscribe(&urls, ca.as_deref(), receive).await {
            tracing::error!(error = %e, "delete broadcast: bad redis url");
        }
    });
    Ok(Some(Arc::new(publisher)))
}

/// Resolve the app's address once, at start.
fn resolve(upstream: &str) -> anyhow::Result<SocketAddr> {
    upstream
        .to_socket_addrs()
        .with_context(|| format!("app.upstream {upstream:?} does not resolve"))?
        .next()
        .ok_or_else(|| anyhow!("app.upstream {upstream:?} has no address"))
}
