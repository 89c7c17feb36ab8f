//! Page weight (`cargo bench --bench page_weight`): a dialog of 60 phone photos (12 MP JPEGs,
//! ~4 MB each), fetched through the real gateway (release build, SQLite + a local directory)
//! as a chat page would — every `?variant=thumb` — against every original. Prints bytes and
//! wall time of each page, the first thumb pass (made on demand, one worker) apart from a
//! second (already made), and the ratio the target is read against: thumbs under 3 % of the
//! originals' bytes. Loopback only, bounded: 60 photos, one pass each.

#[path = "../tests/integration/harness/mod.rs"]
mod harness;

use std::io::Cursor;
use std::time::{Duration, Instant};

use attachment_gateway::catalog::{self, AttachmentStatus, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, StorageKey};
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use image::{codecs::jpeg::JpegEncoder, Rgb, RgbImage};

const PHOTOS: usize = 60;
const WIDTH: u32 = 4032;
const HEIGHT: u32 = 3024;
const PREFIX: &str = "/api/support-chat/attachments";
/// How many requests the page keeps in flight, as a browser does per origin on HTTP/1.1.
const IN_FLIGHT: usize = 6;

/// A photo-like 12 MP JPEG: light across the frame, detail at every scale (a thumb keeps
/// structure, as a real photo's does, rather than averaging to a flat field) and fine noise,
/// so that both the original and its thumb compress roughly like a real photo's.
fn photo(seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    let img = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as i32 - 12;
        let detail = ((x / 9) ^ (y / 7)) % 48 + ((x / 61) * (y / 53)) % 40;
        let base = |v: u32, span: u32| (20 + v * 120 / span + detail) as i32;
        let c = |v: i32| (v + noise).clamp(0, 255) as u8;
        Rgb([
            c(base(x, WIDTH)),
            c(base(y, HEIGHT)),
            c(base(x + y, WIDTH + HEIGHT)),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out.into_inner()
}

fn config_toml(db: &str, root: &str) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"

[app]
upstream = "127.0.0.1:9"

[auth]
hs_secret = "{secret}"

[catalog]
database_url = "sqlite://{db}?mode=rwc"

[storage]
provider = "fs"
root = "{root}"

[http]
max_object_bytes = 104857600

[limits]
user_per_minute = 100000
ip_per_minute = 100000
burst = 10000
# A page opens up to six originals at once, each a long body holding a download slot.
max_concurrent_per_user = 8

[preview]
workers = 1

[log]
level = "warn"
"#,
        secret = harness::HS_SECRET
    )
}

/// Fetch every path, `IN_FLIGHT` at a time: total body bytes and wall time.
async fn page(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    paths: &[String],
) -> (u64, Duration) {
    let started = Instant::now();
    let sizes = futures_util::stream::iter(paths.iter().map(|p| {
        let req = client.get(format!("{base}{p}")).bearer_auth(token).header(
            "accept",
            "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
        );
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{p}");
            resp.bytes().await.unwrap().len() as u64
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .collect::<Vec<u64>>()
    .await;
    (sizes.iter().sum(), started.elapsed())
}

#[tokio::main]
async fn main() {
    if !cfg!(debug_assertions) {
        println!("page weight: release build");
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    let toml = config_toml(
        &dir.path().join("gw.db").display().to_string(),
        &root.display().to_string(),
    );
    let gw = harness::Gateway::start_in(dir, &toml).await;
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog = catalog::connect(&cfg.catalog).await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();

    print!("seeding {PHOTOS} photos of {WIDTH}x{HEIGHT}... ");
    let mut originals = Vec::new();
    let mut thumbs = Vec::new();
    for n in 0..PHOTOS {
        let id = format!("photo{n:02}");
        let bytes = photo(n as u32 + 1);
        let len = bytes.len() as u64;
        let key = StorageKey::dialog("d1", &id);
        let body = Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes))]));
        storage.put(&key, "image/jpeg", len, body).await.unwrap();
        catalog
            .upsert_attachment(&NewAttachment {
                id: id.clone(),
                dialog_id: Some("d1".into()),
                message_id: Some("m1".into()),
                storage_path: key.to_string(),
                mime_type: "image/jpeg".into(),
                size_bytes: len,
                original_name: format!("IMG_{n:04}.jpg"),
                created_by_user_id: "alice".into(),
                status: AttachmentStatus::Linked,
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        originals.push(format!("{PREFIX}/d1/{id}"));
        thumbs.push(format!("{PREFIX}/d1/{id}?variant=thumb"));
    }
    println!("done");

    let client = reqwest::Client::new();
    let token = harness::token("alice", "USER", &[]);
    let base = gw.url("");
    let (made_bytes, made_time) = page(&client, &base, &token, &thumbs).await;
    let (thumb_bytes, thumb_time) = page(&client, &base, &token, &thumbs).await;
    let (orig_bytes, orig_time) = page(&client, &base, &token, &originals).await;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!();
    println!("| page of {PHOTOS} photos | bytes | time |");
    println!("|---|---|---|");
    println!(
        "| originals | {:.1} MiB | {:.2} s |",
        mib(orig_bytes),
        orig_time.as_secs_f64()
    );
    println!(
        "| thumbs, first view (made on demand, 1 worker) | {:.2} MiB | {:.2} s |",
        mib(made_bytes),
        made_time.as_secs_f64()
    );
    println!(
        "| thumbs, already made | {:.2} MiB | {:.3} s |",
        mib(thumb_bytes),
        thumb_time.as_secs_f64()
    );
    let ratio = thumb_bytes as f64 / orig_bytes as f64 * 100.0;
    println!();
    println!(
        "thumbs / originals: {ratio:.2} % of the bytes (target < 3 %): {}",
        if ratio < 3.0 { "met" } else { "MISSED" }
    );
}
