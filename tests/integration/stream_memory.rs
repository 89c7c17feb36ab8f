//! Streaming is constant-memory: a 1 GiB object (fs) or a 256 MiB one (S3, SeaweedFS: seeding
//! through S3 costs time, and 256 MiB is still five times the allowed growth) goes through the
//! real gateway while its peak resident memory stays flat, also when the client stops reading
//! for a while (backpressure: the gateway must not read ahead of a slow client).

use crate::harness;

use std::time::Duration;

use attachment_gateway::catalog::{self, AttachmentStatus, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, StorageKey};
use bytes::Bytes;
use futures_util::StreamExt;
use harness::seaweed::Seaweed;
use harness::{token, Gateway};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// The S3 object: large enough that buffering it would break the bound many times over.
const S3_OBJECT: u64 = 256 * MIB;
/// The S3 case, seeding included, ends within this or fails (CI must never hang on it).
const S3_CASE_WITHIN: Duration = Duration::from_secs(240);
/// Allowed growth of the peak RSS while streaming 1 GiB: a small constant, not the file.
const MAX_GROWTH_KIB: u64 = 48 * 1024;

fn config_toml(catalog: &str, storage: &str) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"
threads = 2
[auth]
algorithms = ["HS256"]
hs_secret = "{secret}"
[catalog]
{catalog}
[storage]
{storage}
[http]
max_object_bytes = {max}
[log]
level = "warn"
"#,
        secret = harness::HS_SECRET,
        max = 2 * GIB
    )
}

async fn seed_row(toml: &str, key: &StorageKey, size: u64) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog = catalog::connect(&cfg.catalog).await.unwrap();
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    catalog
        .upsert_attachment(&NewAttachment {
            id: "huge".into(),
            dialog_id: Some("d1".into()),
            message_id: Some("m1".into()),
            storage_path: key.as_str().into(),
            mime_type: "video/mp4".into(),
            size_bytes: size,
            original_name: "huge.mp4".into(),
            created_by_user_id: "alice".into(),
            status: AttachmentStatus::Linked,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
}

/// Download the object, pausing after the first MiB; return (baseline, peak) in KiB.
async fn stream_and_measure(gw: &Gateway, size: u64) -> (u64, u64) {
    let client = reqwest::Client::new();
    let url = gw.url("/api/support-chat/attachments/d1/huge");
    let alice = token("alice", "USER", &[]);
    // Warm up: pools, buffers and the first request's allocations are not growth.
    let warm = client
        .get(&url)
        .bearer_auth(&alice)
        .header("range", "bytes=0-1048575")
        .send()
        .await
        .unwrap();
    assert_eq!(warm.bytes().await.unwrap().len(), 1 << 20);
    let (baseline, _) = gw.memory_kib();

    let resp = client.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut received: u64 = 0;
    let mut paused = false;
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len() as u64;
        if !paused && received >= 1 << 20 {
            // A slow reader: storage could deliver the whole GiB meanwhile.
            paused = true;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    assert_eq!(received, size, "the whole object arrived");
    let (_, peak) = gw.memory_kib();
    (baseline, peak)
}

fn report(backend: &str, size: u64, baseline: u64, peak: u64) {
    println!(
        "stream_memory[{backend}]: streamed {} MiB; RSS before {} MiB, peak {} MiB, growth {} MiB",
        size / MIB,
        baseline / 1024,
        peak / 1024,
        peak.saturating_sub(baseline) / 1024
    );
    assert!(
        peak.saturating_sub(baseline) < MAX_GROWTH_KIB,
        "peak RSS grew by {} KiB while streaming",
        peak - baseline
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_through_fs_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    let key = StorageKey::dialog("d1", "huge");
    let path = root.join(key.as_str());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A sparse file: 1 GiB to read, no GiB of disk to write.
    std::fs::File::create(&path).unwrap().set_len(GIB).unwrap();
    let toml = config_toml(
        &format!(
            "database_url = \"sqlite://{}?mode=rwc\"",
            dir.path().join("gw.db").display()
        ),
        &format!("provider = \"fs\"\nroot = \"{}\"", root.display()),
    );
    seed_row(&toml, &key, GIB).await;
    let gw = Gateway::start_in(dir, &toml).await;
    let (baseline, peak) = stream_and_measure(&gw, GIB).await;
    report("fs", GIB, baseline, peak);
}

/// The same through S3 (SeaweedFS, signatures verified), in CI, bounded in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_object_streams_with_memory_flat() {
    tokio::time::timeout(S3_CASE_WITHIN, s3_case())
        .await
        .expect("the S3 streaming case finishes in bounded time");
}

async fn s3_case() {
    let seaweed = Seaweed::start().await;
    let pg = harness::PgDatabase::create().await;
    let key = StorageKey::dialog("d1", "huge");
    let store = seaweed.storage();
    let chunks = (0..S3_OBJECT / MIB).map(|_| Ok(Bytes::from(vec![0x5a; MIB as usize])));
    let body: ByteStream = Box::pin(futures_util::stream::iter(chunks));
    storage::Storage::put(store.as_ref(), &key, "video/mp4", S3_OBJECT, body)
        .await
        .unwrap();
    let toml = config_toml(
        &format!("database_url = \"{}\"", pg.url),
        &format!(
            "provider = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
            seaweed.endpoint, seaweed.bucket, seaweed.access_key, seaweed.secret_key
        ),
    );
    seed_row(&toml, &key, S3_OBJECT).await;
    let gw = Gateway::start(&toml).await;
    let (baseline, peak) = stream_and_measure(&gw, S3_OBJECT).await;
    report("s3", S3_OBJECT, baseline, peak);
}
