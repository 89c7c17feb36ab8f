//! `attachment-gateway demo`: the gateway on the embedded default (SQLite, a local directory,
//! no Redis), with a small support-chat page as its stand-in app, seeded dialogs and people to
//! be, and ready-to-paste requests. `--config` runs the same page against a real config's
//! catalog and storage (the browser tests use PostgreSQL + S3 this way).

mod app;
mod chat;
mod guide;
mod people;
mod seed;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use pingora::services::listening::Service;

use crate::config::{self, Config};
use crate::{io_runtime, server, telemetry};

/// What the command line may change.
#[derive(Debug, Default)]
pub struct Options {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    /// Where the stand-in app listens; the gateway's `app.upstream` follows it.
    pub app_listen: Option<SocketAddr>,
    /// A config file to use instead of the embedded one (its catalog, storage, limits).
    pub config: Option<PathBuf>,
}

/// Seed, print the guide, serve the gateway and the chat page.
pub fn run(options: Options) -> anyhow::Result<()> {
    let mut cfg = match &options.config {
        Some(path) => config::load(path).map_err(|e| anyhow!("{}: {e}", path.display()))?,
        // The embedded default ignores DATABASE_URL and friends: it must never touch a real
        // database.
        None => config::load_demo().map_err(|e| anyhow!("embedded demo config: {e}"))?,
    };
    if let Some(addr) = options.listen {
        cfg.server.listen = addr;
    }
    if let Some(addr) = options.admin_listen {
        cfg.server.admin_listen = addr;
    }
    if let Some(addr) = options.app_listen {
        cfg.app.upstream = addr.to_string();
    }
    let app_addr: SocketAddr = cfg.app.upstream.parse().with_context(|| {
        format!(
            "the demo serves its chat page on app.upstream, which must be an address: {:?}",
            cfg.app.upstream
        )
    })?;
    telemetry::init(&cfg.log);
    let dialogs = io_runtime::block_on(seed::seed(&cfg))?;
    guide::print(&cfg)?;
    let cfg = Arc::new(cfg);
    let mut page = Service::new(
        "demo-chat-page".to_string(),
        app::ChatApp::new(cfg.clone(), dialogs),
    );
    page.add_tcp(&app_addr.to_string());
    server::run_with(Config::clone(&cfg), false, vec![Box::new(page)])
}
