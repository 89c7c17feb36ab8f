//! Faults through a real TCP fault relay in front of PostgreSQL, Redis and S3 (SeaweedFS),
//! through the real gateway (issue 14): every request gets a bounded answer (`5xx` JSON before
//! the first byte, an aborted connection after it), no download slot leaks, an upload cut by
//! storage leaves neither a row nor an object, and service recovers by itself when the fault
//! goes.

use crate::harness;

use std::time::{Duration, Instant};

use attachment_gateway::catalog::{self, AttachmentStatus, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, StorageKey};
use bytes::Bytes;
use harness::redis::RedisServer;
use harness::seaweed::Seaweed;
use harness::tcp_fault::{Fault, TcpFault};
use harness::{token, Gateway, PgDatabase};

const SIZE: usize = 2 * 1024 * 1024;
const URL: &str = "/api/support-chat/attachments/d1/big";

fn config_toml(database_url: &str, seaweed: &Seaweed, endpoint: &str, redis: &str) -> String {
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
# No cache: every read asks the database, so its faults show.
cache_ttl_s = 0
[storage]
provider = "s3"
endpoint = "{endpoint}"
region = "us-east-1"
bucket = "{bucket}"
path_style = true
access_key_id = "{ak}"
secret_access_key = "{sk}"
connect_timeout_ms = 500
read_timeout_ms = 1000
[limits]
user_per_minute = 100000
ip_per_minute = 100000
burst = 10000
max_concurrent_per_user = 2
redis_url = "{redis}"
redis_timeout_ms = 300
[upload]
allowed_types = ["image/png"]
cleanup_interval_s = 3600
[preview]
enabled = false
[log]
level = "info"
"#,
        secret = harness::HS_SECRET,
        bucket = seaweed.bucket,
        ak = seaweed.access_key,
        sk = seaweed.secret_key,
    )
}

async fn seed(toml: &str) -> Vec<u8> {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog = catalog::connect(&cfg.catalog).await.unwrap();
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    let store = storage::build(&cfg.storage).unwrap();
    let bytes: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let key = StorageKey::dialog("d1", "big");
    let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes.clone()))]));
    store
        .put(&key, "application/octet-stream", SIZE as u64, body)
        .await
        .unwrap();
    catalog
        .upsert_attachment(&NewAttachment {
            id: "big".into(),
            dialog_id: Some("d1".into()),
            message_id: Some("m1".into()),
            storage_path: key.as_str().into(),
            mime_type: "application/octet-stream".into(),
            size_bytes: SIZE as u64,
            original_name: "big.bin".into(),
            created_by_user_id: "alice".into(),
            status: AttachmentStatus::Linked,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    bytes
}

/// One read: its status, its `error` code (for JSON answers), whether the body arrived whole,
/// and how long the whole took.
async fn read(client: &reqwest::Client, gw: &Gateway) -> (u16, String, bool, Duration) {
    let started = Instant::now();
    let resp = client
        .get(gw.url(URL))
        .bearer_auth(token("alice", "USER", &[]))
        .send()
        .await
        .expect("a response head");
    let status = resp.status().as_u16();
    let json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let body = resp.bytes().await;
    let code = match (&body, json) {
        (Ok(b), true) => serde_json::from_slice::<serde_json::Value>(b).unwrap()["error"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        _ => String::new(),
    };
    let whole = body.is_ok_and(|b| b.len() == SIZE);
    (status, code, whole, started.elapsed())
}

/// Poll until a read succeeds whole again, within `within`.
async fn recovers(client: &reqwest::Client, gw: &Gateway, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, whole, _) = read(client, gw).await;
        if status == 200 && whole {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "no recovery within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Env {
    gw: Gateway,
    client: reqwest::Client,
    pg_relay: TcpFault,
    s3_relay: TcpFault,
    redis_relay: TcpFault,
    seaweed: Seaweed,
    pg: PgDatabase,
    _redis: RedisServer,
}

async fn env() -> Env {
    let seaweed = Seaweed::start().await;
    let pg = PgDatabase::create().await;
    let redis = RedisServer::start().await;
    let pg_relay = TcpFault::start("127.0.0.1:5432").await;
    let s3_relay = TcpFault::start(seaweed.endpoint.trim_start_matches("http://")).await;
    let redis_relay = TcpFault::start(&format!("127.0.0.1:{}", redis.port)).await;
    let direct_redis = format!("redis://127.0.0.1:{}/", redis.port);
    seed(&config_toml(
        &pg.url,
        &seaweed,
        &seaweed.endpoint,
        &direct_redis,
    ))
    .await;
    let database_url = pg.url.replace("127.0.0.1:5432", &pg_relay.addr);
    let endpoint = format!("http://{}", s3_relay.addr);
    let redis_url = format!("redis://{}/", redis_relay.addr);
    let gw = Gateway::start(&config_toml(&database_url, &seaweed, &endpoint, &redis_url)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    Env {
        gw,
        client,
        pg_relay,
        s3_relay,
        redis_relay,
        seaweed,
        pg,
        _redis: redis,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_storage_faults_get_bounded_answers_and_recover() {
    let env = env().await;
    let (gw, client) = (&env.gw, &env.client);
    let (pg_relay, s3_relay) = (&env.pg_relay, &env.s3_relay);
    let (status, code, whole, _) = read(client, gw).await;
    assert!(
        status == 200 && whole,
        "baseline: {status} {code}\n{}",
        gw.log()
    );

    // The database hangs, then refuses: 503 JSON, within the pool's acquire bound.
    for fault in [Fault::BlackHole, Fault::Refuse] {
        pg_relay.set(fault).await;
        for _ in 0..3 {
            let (status, code, _, took) = read(client, gw).await;
            assert_eq!(
                (status, code.as_str()),
                (503, "catalog_unavailable"),
                "{fault:?}"
            );
            assert!(took < Duration::from_secs(4), "{fault:?}: {took:?}");
        }
        pg_relay.set(Fault::Pass).await;
        let took = recovers(client, gw, Duration::from_secs(10)).await;
        println!("backend_faults: database {fault:?}: recovered in {took:?}");
    }

    // Storage hangs: 504 JSON before any byte, within the storage read bound.
    s3_relay.set(Fault::BlackHole).await;
    for _ in 0..3 {
        let (status, code, _, took) = read(client, gw).await;
        assert_eq!(status, 504, "storage black hole: {code}");
        assert!(!code.is_empty(), "a JSON answer");
        assert!(
            took < Duration::from_secs(4),
            "storage black hole: {took:?}"
        );
    }
    s3_relay.set(Fault::Pass).await;
    recovers(client, gw, Duration::from_secs(10)).await;

    // Storage resets mid-body: the header went out, so the client sees a cut connection, never
    // a short body taken for whole. More cuts than download slots: none may leak.
    s3_relay.set(Fault::CutAfter(256 * 1024)).await;
    for _ in 0..4 {
        let (status, _, whole, took) = read(client, gw).await;
        assert!(!whole, "a cut body is never whole (status {status})");
        assert!(took < Duration::from_secs(4), "cut: {took:?}");
    }
    s3_relay.set(Fault::Pass).await;
    let took = recovers(client, gw, Duration::from_secs(10)).await;
    println!("backend_faults: storage cut mid-body: recovered in {took:?}");
    // Both slots are free again: two concurrent reads go through whole.
    let (a, b) = tokio::join!(read(client, gw), read(client, gw));
    assert!(
        a.0 == 200 && a.2 && b.0 == 200 && b.2,
        "slots leaked: {a:?} {b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_faults_fall_back_to_local_limits_within_the_bound() {
    let env = env().await;
    for fault in [Fault::BlackHole, Fault::Refuse] {
        env.redis_relay.set(fault).await;
        for _ in 0..3 {
            let (status, _, whole, took) = read(&env.client, &env.gw).await;
            assert!(status == 200 && whole, "{fault:?}: {status}");
            assert!(took < Duration::from_secs(4), "{fault:?}: {took:?}");
        }
        env.redis_relay.set(Fault::Pass).await;
        recovers(&env.client, &env.gw, Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_storage_leaves_neither_a_row_nor_an_object() {
    let env = env().await;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(512 * 1024, 7);
    let upload = || async {
        let started = Instant::now();
        let resp = env
            .client
            .post(env.gw.url("/api/support-chat/attachments?filename=a.png"))
            .bearer_auth(token("alice", "USER", &[]))
            .header("content-type", "image/png")
            .body(png.clone())
            .send()
            .await
            .expect("an answer");
        (resp.status().as_u16(), started.elapsed())
    };
    for fault in [Fault::Refuse, Fault::BlackHole, Fault::CutAfter(100)] {
        env.s3_relay.set(fault).await;
        let (status, took) = upload().await;
        assert!(status >= 500, "{fault:?}: {status}");
        assert!(took < Duration::from_secs(5), "{fault:?}: {took:?}");
    }
    env.s3_relay.set(Fault::Pass).await;
    // Nothing half-written: no staged row, no staged object (asked directly, not through the
    // relay).
    let store = env.seaweed.storage();
    let staged = storage::Storage::list(store.as_ref(), "support-chat/staged/")
        .await
        .unwrap();
    assert!(staged.is_empty(), "{staged:?}");
    let db = sqlx::PgPool::connect(&env.pg.url).await.unwrap();
    let staged_rows = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM \"ChatAttachment\" WHERE \"status\" = 'UPLOADED'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(staged_rows().await, 0);
    let (status, _) = upload().await;
    assert_eq!(status, 201, "recovered");
    let staged = storage::Storage::list(store.as_ref(), "support-chat/staged/")
        .await
        .unwrap();
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_eq!(staged_rows().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_every_backend_is_served_and_past_the_storage_bound_answers_504() {
    let env = env().await;
    let (gw, client) = (&env.gw, &env.client);
    // A slow network to all three at once: slower answers, but whole and in bounded time.
    for relay in [&env.pg_relay, &env.s3_relay, &env.redis_relay] {
        relay.set(Fault::Latency(Duration::from_millis(10))).await;
    }
    for _ in 0..3 {
        let (status, code, whole, took) = read(client, gw).await;
        assert!(status == 200 && whole, "slow backends: {status} {code}");
        assert!(took < Duration::from_secs(6), "slow backends: {took:?}");
    }
    // Storage slower than its read bound (1 s): 504 JSON before the first byte, in time.
    env.s3_relay
        .set(Fault::Latency(Duration::from_millis(2500)))
        .await;
    for _ in 0..2 {
        let (status, code, _, took) = read(client, gw).await;
        assert_eq!((status, code.as_str()), (504, "storage_timeout"));
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
    for relay in [&env.pg_relay, &env.s3_relay, &env.redis_relay] {
        relay.set(Fault::Pass).await;
    }
    let took = recovers(client, gw, Duration::from_secs(10)).await;
    println!("backend_faults: latency: recovered in {took:?}");
}
