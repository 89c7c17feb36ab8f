//! A soak (issue 14): mixed traffic (reads, ranges, 304s, uploads, commits, discards, denials,
//! misses, slow readers, aborted downloads) through the real gateway against PostgreSQL, Redis
//! and S3 (SeaweedFS) for `SOAK_SECONDS` (default 60; the issue's full run is 600), with the
//! gateway's RSS, open file descriptors, Redis keys and database connections sampled. Nothing
//! may answer an unexpected status, and every sample must be flat at the end.

use crate::harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attachment_gateway::catalog::{self, AttachmentStatus, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, StorageKey};
use bytes::Bytes;
use futures_util::StreamExt;
use harness::redis::RedisServer;
use harness::seaweed::Seaweed;
use harness::{token, Gateway, PgDatabase};
use serde_json::{json, Value};

const PREFIX: &str = "/api/support-chat/attachments";
const SERVICE_TOKEN: &str = "service-token-for-the-soak-0123456789";
const BIG: usize = 2 * 1024 * 1024;
const WORKERS: usize = 4;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

fn config_toml(database_url: &str, seaweed: &Seaweed, redis: &str) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"
threads = 2
grace_period_s = 1
[app]
upstream = "127.0.0.1:9"
[auth]
algorithms = ["HS256"]
hs_secret = "{secret}"
[catalog]
database_url = "{database_url}"
cache_ttl_s = 5
[storage]
provider = "s3"
endpoint = "{endpoint}"
region = "us-east-1"
bucket = "{bucket}"
path_style = true
access_key_id = "{ak}"
secret_access_key = "{sk}"
[limits]
user_per_minute = 1000000
ip_per_minute = 1000000
burst = 100000
max_concurrent_per_user = 8
redis_url = "{redis}"
[upload]
allowed_types = ["image/png"]
max_staged_per_user = 100000
max_staged_bytes_per_user = 10000000000
max_concurrent_per_user = 8
cleanup_interval_s = 3600
[preview]
enabled = false
[internal]
service_token = "{SERVICE_TOKEN}"
[log]
level = "warn"
"#,
        secret = harness::HS_SECRET,
        endpoint = seaweed.endpoint,
        bucket = seaweed.bucket,
        ak = seaweed.access_key,
        sk = seaweed.secret_key,
    )
}

async fn seed(toml: &str) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog = catalog::connect(&cfg.catalog).await.unwrap();
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    let store = storage::build(&cfg.storage).unwrap();
    for (id, size) in [("big", BIG), ("small", 10 * 1024)] {
        let key = StorageKey::dialog("d1", id);
        let bytes = Bytes::from(vec![b'x'; size]);
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
        store
            .put(&key, "application/octet-stream", size as u64, body)
            .await
            .unwrap();
        catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: Some("d1".into()),
                message_id: Some("m1".into()),
                storage_path: key.as_str().into(),
                mime_type: "application/octet-stream".into(),
                size_bytes: size as u64,
                original_name: format!("{id}.bin"),
                created_by_user_id: "alice".into(),
                status: AttachmentStatus::Linked,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: u64,
    rss_kib: u64,
    fds: usize,
    redis_keys: i64,
    db_connections: i64,
}

struct Traffic {
    gw: Gateway,
    client: reqwest::Client,
    alice: String,
    bob: String,
    etag: String,
    png: Vec<u8>,
    requests: AtomicU64,
    unexpected: Mutex<Vec<String>>,
}

impl Traffic {
    fn expect(&self, what: &str, got: u16, want: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if got != want {
            self.unexpected
                .lock()
                .unwrap()
                .push(format!("{what}: {got} (want {want})"));
        }
    }

    async fn get(&self, path: &str, bearer: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(self.gw.url(path)).bearer_auth(bearer);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn upload(&self) -> Option<String> {
        let resp = self
            .client
            .post(self.gw.url(&format!("{PREFIX}?filename=s.png")))
            .bearer_auth(&self.alice)
            .header("content-type", "image/png")
            .body(self.png.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        self.expect("upload", status, 201);
        let body: Value = resp.json().await.ok()?;
        body["id"].as_str().map(str::to_owned)
    }

    /// One operation of the mix, chosen by `n`.
    async fn one(&self, n: u64) {
        let big = format!("{PREFIX}/d1/big");
        let small = format!("{PREFIX}/d1/small");
        match n % 10 {
            0 => {
                let r = self.get(&small, &self.alice, &[]).await;
                self.expect("read", r.status().as_u16(), 200);
                let _ = r.bytes().await;
            }
            1 => {
                let r = self
                    .get(&big, &self.alice, &[("range", "bytes=1000-99999")])
                    .await;
                self.expect("range", r.status().as_u16(), 206);
                let _ = r.bytes().await;
            }
            2 => {
                let r = self
                    .get(&big, &self.alice, &[("if-none-match", &self.etag)])
                    .await;
                self.expect("304", r.status().as_u16(), 304);
            }
            3 => {
                let r = self.get(&big, &self.bob, &[]).await;
                self.expect("denial", r.status().as_u16(), 404);
            }
            4 => {
                let r = self
                    .get(&format!("{PREFIX}/d1/miss{}", n % 50), &self.bob, &[])
                    .await;
                self.expect("miss", r.status().as_u16(), 404);
            }
            5 => {
                let Some(id) = self.upload().await else {
                    return;
                };
                let resp = self
                    .client
                    .post(format!("{}/internal/attachments/commit", self.gw.admin))
                    .bearer_auth(SERVICE_TOKEN)
                    .json(&json!({"userId": "alice", "dialogId": "d1",
                                  "messageId": format!("m{n}"), "attachmentIds": [id]}))
                    .send()
                    .await
                    .unwrap();
                self.expect("commit", resp.status().as_u16(), 200);
            }
            6 => {
                let Some(id) = self.upload().await else {
                    return;
                };
                let resp = self
                    .client
                    .delete(self.gw.url(&format!("{PREFIX}/staged/{id}")))
                    .bearer_auth(&self.alice)
                    .send()
                    .await
                    .unwrap();
                self.expect("discard", resp.status().as_u16(), 204);
            }
            7 => {
                // A slow reader: a few pauses mid-body, then the rest.
                let r = self.get(&big, &self.alice, &[]).await;
                self.expect("slow read", r.status().as_u16(), 200);
                let mut body = r.bytes_stream();
                let mut got = 0usize;
                let mut pauses = 0;
                while let Some(chunk) = body.next().await {
                    got += chunk.map(|c| c.len()).unwrap_or(0);
                    if pauses < 3 && got > (pauses + 1) * 256 * 1024 {
                        pauses += 1;
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                }
                self.expect("slow read whole", (got == BIG) as u16, 1);
            }
            8 => {
                // An aborted download: the head and one chunk, then the client goes away.
                let r = self.get(&big, &self.alice, &[]).await;
                self.expect("aborted read", r.status().as_u16(), 200);
                let mut body = r.bytes_stream();
                let _ = body.next().await;
            }
            _ => {
                let r = self.get(&big, &self.alice, &[]).await;
                self.expect("full read", r.status().as_u16(), 200);
                let _ = r.bytes().await;
            }
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn sample(gw: &Gateway, redis: &RedisServer, db: &sqlx::PgPool, started: Instant) -> Sample {
    let mut conn = redis.connection().await.unwrap();
    let redis_keys: i64 = ::redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    let db_connections: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid()",
    )
    .fetch_one(db)
    .await
    .unwrap();
    Sample {
        at_s: started.elapsed().as_secs(),
        rss_kib: gw.memory_kib().0,
        fds: open_fds(gw.pid()),
        redis_keys,
        db_connections,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_stays_flat() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seaweed = Seaweed::start().await;
    let pg = PgDatabase::create().await;
    let redis = RedisServer::start().await;
    let toml = config_toml(&pg.url, &seaweed, &redis.url());
    seed(&toml).await;
    let gw = Gateway::start(&toml).await;
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    // A well-behaved client drops idle connections before the server's 60 s keep-alive idle
    // closes them (reqwest's default, 90 s, would race that close on a long soak).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let alice = token("alice", "USER", &[]);
    let first = client
        .get(gw.url(&format!("{PREFIX}/d1/big")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let _ = first.bytes().await;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(64 * 1024, 3);
    let traffic = Arc::new(Traffic {
        gw,
        client,
        alice,
        bob: token("bob", "USER", &[]),
        etag,
        png,
        requests: AtomicU64::new(0),
        unexpected: Mutex::new(Vec::new()),
    });

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|w| {
            let traffic = traffic.clone();
            tokio::spawn(async move {
                let mut n = w * 7;
                while Instant::now() < until {
                    traffic.one(n).await;
                    n += 1;
                }
            })
        })
        .collect();
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push(sample(&traffic.gw, &redis, &db, started).await);
        tokio::time::sleep(SAMPLE_EVERY.min(until.saturating_duration_since(Instant::now()))).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    // Let aborted downloads and idle connections settle, then the final sample.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = sample(&traffic.gw, &redis, &db, started).await;
    samples.push(last);

    let requests = traffic.requests.load(Ordering::Relaxed);
    println!("soak: {seconds} s, {requests} checked answers, {WORKERS} workers");
    println!("soak: t_s rss_MiB fds redis_keys db_connections");
    for s in &samples {
        println!(
            "soak: {:>4} {:>7} {:>4} {:>10} {:>14}",
            s.at_s,
            s.rss_kib / 1024,
            s.fds,
            s.redis_keys,
            s.db_connections
        );
    }
    let unexpected = traffic.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert!(requests > 100, "the soak did run ({requests})");
    // Flat: the end is no higher than the early steady state plus a small constant. The
    // first sample after warm-up (the second) is the reference.
    let reference = samples[1.min(samples.len() - 1)];
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap();
    assert!(
        last.fds <= reference.fds.max(peak_fds / 2) + 16,
        "fds grew: {reference:?} -> {last:?}"
    );
    assert!(
        last.rss_kib <= reference.rss_kib + 48 * 1024,
        "RSS grew: {reference:?} -> {last:?}"
    );
    assert!(
        last.redis_keys <= reference.redis_keys.max(1) * 2 + 16,
        "Redis keys grew: {reference:?} -> {last:?}"
    );
    assert!(last.db_connections <= 11, "database connections: {last:?}");
}
