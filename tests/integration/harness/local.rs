//! A gateway over SQLite + a local directory, with the stand-in app in front of nothing: the
//! cheapest real environment, for tests whose point does not depend on the backends. Rows and
//! objects are seeded by the test (through the library, before or while the gateway runs).

use std::sync::Arc;

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, Storage, StorageKey};
use bytes::Bytes;
use chrono::Utc;

use super::app::App;
use super::Gateway;

pub const PREFIX: &str = "/api/support-chat/attachments";

/// What a test adds to the base configuration.
#[derive(Default)]
pub struct Extra {
    /// Lines of `[server]` (e.g. `trusted_proxies = [...]`).
    pub server: String,
    /// Lines of `[app]` besides `upstream`.
    pub app: String,
    /// The app's address, when not the stand-in app (a black hole, a fault relay).
    pub upstream: Option<String>,
    /// Lines of `[catalog]` besides `database_url`.
    pub catalog: String,
    /// Whole sections. Without a `[limits]` one, limits are set far out of the way.
    pub sections: String,
}

/// The data directory (SQLite file, bucket) and library handles on it.
pub struct Data {
    pub dir: tempfile::TempDir,
    pub catalog: Arc<dyn Catalog>,
    pub storage: Arc<dyn Storage>,
}

pub struct Local {
    pub gw: Gateway,
    pub app: App,
    pub data: Data,
    pub client: reqwest::Client,
    /// The configuration `gw` runs with, for a second instance over the same backends.
    toml: String,
}

impl Data {
    pub async fn create() -> Data {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\n\
             [auth]\nhs_secret = \"{}\"\n{}",
            super::HS_SECRET,
            sections(dir.path(), "")
        );
        let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
        let catalog = catalog::connect(&cfg.catalog).await.unwrap();
        catalog.migrate().await.unwrap();
        let storage = storage::build(&cfg.storage).unwrap();
        Data {
            dir,
            catalog,
            storage,
        }
    }

    /// A row and, when `bytes` is given, its object. Staged rows are alice's and fresh.
    pub async fn attachment(&self, id: &str, dialog: Option<&str>, mime: &str, bytes: &[u8]) {
        let key = match dialog {
            Some(d) => StorageKey::dialog(d, id),
            None => StorageKey::staged("alice", id),
        };
        let stream = futures_util::stream::iter([Ok(Bytes::copy_from_slice(bytes))]);
        self.storage
            .put(&key, mime, bytes.len() as u64, Box::pin(stream))
            .await
            .unwrap();
        self.catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: dialog.map(str::to_string),
                message_id: dialog.map(|_| "m1".to_string()),
                storage_path: key.as_str().into(),
                mime_type: mime.into(),
                size_bytes: bytes.len() as u64,
                original_name: format!("{id}.bin"),
                created_by_user_id: "alice".into(),
                status: match dialog {
                    Some(_) => AttachmentStatus::Linked,
                    None => AttachmentStatus::Uploaded,
                },
                created_at: Utc::now(),
            })
            .await
            .unwrap();
    }
}

/// The `[catalog]` and `[storage]` sections over a data directory.
fn sections(dir: &std::path::Path, catalog: &str) -> String {
    format!(
        "[catalog]\ndatabase_url = \"sqlite://{}?mode=rwc\"\n{catalog}\n\
         [storage]\nprovider = \"fs\"\nroot = \"{}\"\n",
        dir.join("gw.db").display(),
        dir.join("bucket").display()
    )
}

impl Local {
    /// The gateway over `data`, the stand-in app as its upstream.
    pub async fn start(data: Data, extra: Extra) -> Local {
        let app = App::start().await;
        let limits = if extra.sections.contains("[limits]") {
            ""
        } else {
            "[limits]\nuser_per_minute = 100000\nip_per_minute = 100000\nburst = 10000\n"
        };
        let toml = format!(
            "[server]\nlisten = \"{{listen}}\"\nadmin_listen = \"{{admin}}\"\nthreads = 2\n\
             grace_period_s = 1\n{server}\n\
             [app]\nupstream = \"{app}\"\n{app_extra}\n\
             [auth]\nalgorithms = [\"HS256\"]\nhs_secret = \"{secret}\"\n\
             {backends}\n{limits}\n{sections}\n\
             [log]\nlevel = \"info\"\nformat = \"json\"\n",
            server = extra.server,
            app = extra.upstream.as_deref().unwrap_or(&app.addr),
            app_extra = extra.app,
            secret = super::HS_SECRET,
            backends = sections(data.dir.path(), &extra.catalog),
            sections = extra.sections,
        );
        let gw = Gateway::start(&toml).await;
        Local {
            gw,
            app,
            data,
            client: reqwest::Client::new(),
            toml,
        }
    }

    /// Another instance with the same configuration (same catalog, bucket, app and Redis).
    pub async fn twin(&self) -> Gateway {
        Gateway::start(&self.toml).await
    }

    /// Another instance whose configuration is this one's, edited by `edit` (the TOML text).
    pub async fn twin_with(&self, edit: impl Fn(&str) -> String) -> Gateway {
        Gateway::start(&edit(&self.toml)).await
    }

    pub fn url(&self, path: &str) -> String {
        self.gw.url(path)
    }
}
