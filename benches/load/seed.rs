//! Seeds the load test (`benches/load/run.py`): creates the bucket, uploads the benchmark
//! objects through the gateway's own S3 client (signed PUTs), inserts their catalog rows through
//! the gateway's own catalog code, and prints a bearer token for the dialog's owner.
//!
//! Usage: `load_seed <gateway.toml>`; prints `token=<jwt>` and one `object=<id> <size>` line per
//! object. Runs against the config the gateway itself will run with, so that both agree.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attachment_gateway::catalog::{self, AttachmentStatus, NewAttachment};
use attachment_gateway::config::{self, StorageProvider};
use attachment_gateway::storage::s3::S3Storage;
use attachment_gateway::storage::{ByteStream, Storage, StorageError, StorageKey};
use bytes::Bytes;
use chrono::{TimeZone, Utc};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const DIALOG: &str = "bench-dialog";
const OWNER: &str = "bench-user";
/// The filer behind the S3 port may still be starting when the port opens.
const BUCKET_READY_WITHIN: Duration = Duration::from_secs(60);

/// id, MIME type, original name, size.
const OBJECTS: [(&str, &str, &str, u64); 3] = [
    ("img8k", "image/png", "screenshot.png", 8 * KIB),
    ("video256m", "video/mp4", "screen recording.mp4", 256 * MIB),
    ("big1g", "video/mp4", "long recording.mp4", 1024 * MIB),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: load_seed <gateway.toml>"))?;
    let cfg = config::load(&path).map_err(|e| anyhow::anyhow!("{path:?}: {e}"))?;
    let StorageProvider::S3(s3) = &cfg.storage.provider else {
        anyhow::bail!("the load test needs storage.provider = \"s3\"");
    };
    let storage = S3Storage::new(s3, Duration::from_secs(2), Duration::from_secs(120))?;
    create_bucket(&storage).await?;

    let catalog = catalog::connect(&cfg.catalog).await?;
    catalog.migrate().await?;
    catalog.upsert_dialog(DIALOG, OWNER).await?;
    let created_at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    for (id, mime, name, size) in OBJECTS {
        let key = StorageKey::parse(&format!("support-chat/dialogs/{DIALOG}/{id}"))?;
        storage.put(&key, mime, size, pattern(size)).await?;
        catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: Some(DIALOG.into()),
                message_id: Some(format!("msg-{id}")),
                storage_path: key.as_str().into(),
                mime_type: mime.into(),
                size_bytes: size,
                original_name: name.into(),
                created_by_user_id: OWNER.into(),
                status: AttachmentStatus::Linked,
                created_at,
            })
            .await?;
        println!("object={id} {size}");
    }

    let secret =
        cfg.auth.hs_secret.as_ref().ok_or_else(|| {
            anyhow::anyhow!("the load test signs HS256 tokens: set auth.hs_secret")
        })?;
    println!("token={}", token(secret.expose())?);
    Ok(())
}

async fn create_bucket(storage: &S3Storage) -> Result<(), StorageError> {
    let deadline = Instant::now() + BUCKET_READY_WITHIN;
    loop {
        match storage.create_bucket().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `size` bytes of a cheap non-constant pattern, produced 1 MiB at a time so that seeding a
/// 1 GiB object needs no 1 GiB buffer.
fn pattern(size: u64) -> ByteStream {
    let block: Bytes = (0..MIB)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let chunks = (0..size.div_ceil(MIB)).map(move |i| {
        let len = (size - i * MIB).min(MIB) as usize;
        Ok(block.slice(..len))
    });
    Box::pin(futures_util::stream::iter(chunks))
}

/// A user token for the dialog's owner, valid for three hours (longer than any run).
fn token(secret: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "sub": OWNER, "role": "USER", "permissions": [], "exp": now + 3 * 3600,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
