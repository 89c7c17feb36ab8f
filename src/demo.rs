//! `attachment-gateway demo`: the embedded default (SQLite, local directory, no Redis) with a
//! seeded dialog, four callers and real sample files, then serves and prints requests to try.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};

use crate::catalog::{AttachmentStatus, NewAttachment};
use crate::config::{self, Config};
use crate::http::conditional;
use crate::storage::{Storage, StorageKey};
use crate::{catalog, io_runtime, server, storage, telemetry};

const PNG: &[u8] = include_bytes!("../assets/demo/sample.png");
const PDF: &[u8] = include_bytes!("../assets/demo/sample.pdf");
/// Large enough that streaming and Range matter.
const LARGE_BYTES: u64 = 64 * 1024 * 1024;

const DIALOG: &str = "dlg_demo";
const OWNER: &str = "alice";

struct Sample {
    id: &'static str,
    mime: &'static str,
    name: &'static str,
    status: AttachmentStatus,
}

const SAMPLES: [Sample; 4] = [
    Sample {
        id: "att_png",
        mime: "image/png",
        name: "Screenshot 2026-01-01.png",
        status: AttachmentStatus::Linked,
    },
    Sample {
        id: "att_pdf",
        mime: "application/pdf",
        name: "Счёт №42.pdf",
        status: AttachmentStatus::Linked,
    },
    Sample {
        id: "att_large",
        mime: "application/octet-stream",
        name: "large-sample.bin",
        status: AttachmentStatus::Linked,
    },
    Sample {
        id: "att_staged",
        mime: "image/png",
        name: "draft.png",
        status: AttachmentStatus::Uploaded,
    },
];

/// Seed, print the guide, serve. The listeners default to the embedded config's.
pub fn run(listen: Option<SocketAddr>, admin_listen: Option<SocketAddr>) -> anyhow::Result<()> {
    // The demo ignores DATABASE_URL and friends: it must never touch a real database.
    let mut cfg = config::load_demo().map_err(|e| anyhow!("embedded demo config: {e}"))?;
    if let Some(addr) = listen {
        cfg.server.listen = addr;
    }
    if let Some(addr) = admin_listen {
        cfg.server.admin_listen = addr;
    }
    telemetry::init(&cfg.log);
    io_runtime::block_on(seed(&cfg))?;
    print_guide(&cfg)?;
    server::run(cfg, false)
}

async fn seed(cfg: &Config) -> anyhow::Result<()> {
    if let crate::config::StorageProvider::Fs { root } = &cfg.storage.provider {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    }
    if let Some(path) = sqlite_path(cfg.catalog.database_url.expose()) {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let catalog = catalog::connect(&cfg.catalog).await?;
    catalog.migrate().await?;
    let storage = storage::build(&cfg.storage)?;
    catalog.upsert_dialog(DIALOG, OWNER).await?;
    for sample in &SAMPLES {
        let (key, dialog) = match sample.status {
            AttachmentStatus::Linked => (StorageKey::dialog(DIALOG, sample.id), Some(DIALOG)),
            AttachmentStatus::Uploaded => (StorageKey::staged(OWNER, sample.id), None),
        };
        let size = put_sample(storage.as_ref(), &key, sample).await?;
        catalog
            .upsert_attachment(&NewAttachment {
                id: sample.id.into(),
                dialog_id: dialog.map(str::to_string),
                message_id: dialog.map(|_| "msg_demo".to_string()),
                storage_path: key.as_str().into(),
                mime_type: sample.mime.into(),
                size_bytes: size,
                original_name: sample.name.into(),
                created_by_user_id: OWNER.into(),
                status: sample.status,
                // A staged upload must be fresh, or the cleanup job rightly removes it.
                created_at: match sample.status {
                    AttachmentStatus::Linked => seeded_at(),
                    AttachmentStatus::Uploaded => Utc::now(),
                },
            })
            .await?;
    }
    Ok(())
}

async fn put_sample(
    storage: &dyn Storage,
    key: &StorageKey,
    sample: &Sample,
) -> anyhow::Result<u64> {
    let (size, body): (u64, storage::ByteStream) = match sample.id {
        "att_pdf" => (PDF.len() as u64, once(PDF)),
        "att_large" => (LARGE_BYTES, large_body()),
        _ => (PNG.len() as u64, once(PNG)),
    };
    storage.put(key, sample.mime, size, body).await?;
    Ok(size)
}

fn once(bytes: &'static [u8]) -> storage::ByteStream {
    Box::pin(futures_util::stream::once(async move {
        Ok(Bytes::from_static(bytes))
    }))
}

/// Deterministic, incompressible-looking bytes, generated chunk by chunk (never held whole).
fn large_body() -> storage::ByteStream {
    const CHUNK: u64 = 1024 * 1024;
    Box::pin(futures_util::stream::iter((0..LARGE_BYTES / CHUNK).map(
        |i| {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ i;
            let chunk: Vec<u8> = (0..CHUNK)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Ok(Bytes::from(chunk))
        },
    )))
}

/// A fixed creation time keeps the demo's ETags stable between runs.
fn seeded_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    Some(rest.split('?').next().unwrap_or(rest))
}

fn token(cfg: &Config, sub: &str, role: &str, permissions: &[&str]) -> anyhow::Result<String> {
    let secret = cfg
        .auth
        .hs_secret
        .as_ref()
        .ok_or_else(|| anyhow!("demo config has no HS secret"))?;
    let exp = SystemTime::now()
        .checked_add(Duration::from_secs(24 * 3600))
        .unwrap_or(SystemTime::now())
        .duration_since(UNIX_EPOCH)?
        .as_secs();
    let claims = serde_json::json!({
        cfg.auth.user_claim.clone(): sub,
        cfg.auth.role_claim.clone(): role,
        cfg.auth.permissions_claim.clone(): permissions,
        "exp": exp,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()),
    )?)
}

fn print_guide(cfg: &Config) -> anyhow::Result<()> {
    let base = format!("http://{}/api/support-chat/attachments", cfg.server.listen);
    let owner = token(cfg, OWNER, "USER", &[])?;
    let stranger = token(cfg, "bob", "USER", &[])?;
    let staff = token(cfg, "carol", "STAFF", &[cfg.auth.staff_permission.as_str()])?;
    let admin = token(cfg, "dave", "ADMIN", &[])?;
    let png = format!("{base}/{DIALOG}/att_png");
    let etag = conditional::strong_etag("att_png", PNG.len() as u64, seeded_at(), "image/png");
    let auth = |t: &str| format!("-H 'Authorization: Bearer {t}'");
    let lines = [
        (
            "owner reads the screenshot (200)",
            format!("curl -sS -o /dev/null -D - {} {png}", auth(&owner)),
        ),
        (
            "another user gets the same answer as a missing file (404)",
            format!("curl -sS -i {} {png}", auth(&stranger)),
        ),
        (
            "staff with the permission (200)",
            format!(
                "curl -sS -o /dev/null -D - {} {base}/{DIALOG}/att_pdf",
                auth(&staff)
            ),
        ),
        (
            "admin (200)",
            format!(
                "curl -sS -o /dev/null -D - {} {base}/{DIALOG}/att_large",
                auth(&admin)
            ),
        ),
        (
            "a byte range of the large file (206)",
            format!(
                "curl -sS -o /dev/null -D - -H 'Range: bytes=0-1023' {} {base}/{DIALOG}/att_large",
                auth(&owner)
            ),
        ),
        (
            "revalidation from the catalog alone (304)",
            format!(
                "curl -sS -o /dev/null -D - -H 'If-None-Match: {etag}' {} {png}",
                auth(&owner)
            ),
        ),
        ("no token (401)", format!("curl -sS -i {png}")),
        (
            "the uploader previews a staged file (200)",
            format!(
                "curl -sS -o /dev/null -D - {} {base}/staged/att_staged",
                auth(&owner)
            ),
        ),
    ];
    println!(
        "\nattachment-gateway demo: serving on http://{}",
        cfg.server.listen
    );
    println!("(SQLite catalog, local bucket under data/demo, tokens valid for 24 hours)\n");
    for (what, cmd) in lines {
        println!("# {what}\n{cmd}\n");
    }
    println!(
        "# In a browser: open http://{}/ , then in the developer console run",
        cfg.server.listen
    );
    println!(
        "document.cookie = '{}={owner}; path=/; SameSite=Strict'",
        cfg.auth.cookie
    );
    println!("# and open {png}  (or {base}/{DIALOG}/att_pdf)\n");
    Ok(())
}
