//! Abuse controls through the real gateway binary against a real Redis (a private
//! `redis-server` per suite, so that it can be killed): shared rate limits across two instances,
//! client IP and spoofed `X-Forwarded-For`, the download cap with its leases, Redis outages,
//! slow readers and the header budget. Catalog and storage are SQLite + a local directory: the
//! limits do not depend on them.

use crate::harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::limits::keys;
use attachment_gateway::storage::{self, StorageKey};
use bytes::Bytes;
use chrono::Utc;
use harness::redis::RedisServer;
use harness::{free_port, token, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFIX: &str = "/api/support-chat/attachments";
/// A video large enough that socket buffers cannot swallow it.
const BIG: usize = 32 * 1024 * 1024;
const SMALL: usize = 64 * 1024;

/// Catalog + bucket shared by every gateway of a suite (the same files).
struct Data {
    dir: tempfile::TempDir,
}

impl Data {
    async fn create() -> Data {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
        let data = Data { dir };
        let cfg =
            config::from_toml_str(&data.sections(), std::path::Path::new("."), &|_| None).unwrap();
        let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
        let storage = storage::build(&cfg.storage).unwrap();
        catalog.migrate().await.unwrap();
        catalog.upsert_dialog("d1", "alice").await.unwrap();
        for (id, len) in [("small", SMALL), ("video", BIG)] {
            let key = StorageKey::dialog("d1", id);
            let bytes = vec![b'v'; len];
            let chunks: Vec<Result<Bytes, storage::StorageError>> = bytes
                .chunks(1 << 20)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            storage
                .put(
                    &key,
                    "video/mp4",
                    len as u64,
                    Box::pin(futures_util::stream::iter(chunks)),
                )
                .await
                .unwrap();
            catalog
                .upsert_attachment(&NewAttachment {
                    id: id.into(),
                    dialog_id: Some("d1".into()),
                    message_id: Some("m1".into()),
                    storage_path: key.as_str().into(),
                    mime_type: "video/mp4".into(),
                    size_bytes: len as u64,
                    original_name: format!("{id}.mp4"),
                    created_by_user_id: "alice".into(),
                    status: AttachmentStatus::Linked,
                    created_at: Utc::now(),
                })
                .await
                .unwrap();
        }
        data
    }

    /// Catalog and storage sections (placeholder listeners), valid on their own.
    fn sections(&self) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\n\
             [auth]\nhs_secret = \"{}\"\n\
             [catalog]\ndatabase_url = \"sqlite://{}?mode=rwc\"\n\
             [storage]\nprovider = \"fs\"\nroot = \"{}\"\n",
            harness::HS_SECRET,
            self.dir.path().join("gw.db").display(),
            self.dir.path().join("bucket").display(),
        )
    }

    /// A gateway over this data with the given `[limits]` lines and `trusted_proxies`.
    async fn gateway(&self, limits: &str, trusted: &str) -> Gateway {
        let toml = format!(
            r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"
threads = 2
grace_period_s = 1
trusted_proxies = [{trusted}]

[app]
upstream = "127.0.0.1:9"

[auth]
algorithms = ["HS256"]
hs_secret = "{secret}"

[catalog]
database_url = "sqlite://{db}?mode=rwc"

[storage]
provider = "fs"
root = "{root}"

[http]
max_object_bytes = {big}

[limits]
{limits}

[log]
level = "info"
format = "json"
"#,
            secret = harness::HS_SECRET,
            db = self.dir.path().join("gw.db").display(),
            root = self.dir.path().join("bucket").display(),
            big = BIG,
        );
        Gateway::start(&toml).await
    }
}

/// An admin token for a user of its own: every scenario gets fresh user buckets.
fn user(name: &str) -> String {
    token(name, "ADMIN", &[])
}

async fn get(
    client: &reqwest::Client,
    gw: &Gateway,
    id: &str,
    tok: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client
        .get(gw.url(&format!("{PREFIX}/d1/{id}")))
        .bearer_auth(tok);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A read long enough (2 MiB, over the default `limits.lease_over_bytes` of 1 MiB) to need a
/// download slot: its status says whether the user's cap has room. The body is read to the end.
async fn slot_probe(client: &reqwest::Client, gw: &Gateway, tok: &str) -> u16 {
    let resp = get(client, gw, "video", tok, &[("range", "bytes=0-2097151")]).await;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    if status == 206 {
        assert_eq!(body.len(), 2 * 1024 * 1024);
    }
    status
}

async fn head(client: &reqwest::Client, gw: &Gateway, tok: &str, xff: Option<&str>) -> u16 {
    let mut req = client
        .head(gw.url(&format!("{PREFIX}/d1/small")))
        .bearer_auth(tok);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap().status().as_u16()
}

/// A download over a raw socket that reads only the response head, then as told.
struct RawDownload {
    sock: TcpStream,
    read: usize,
}

impl RawDownload {
    async fn start(gw: &Gateway, id: &str, tok: &str) -> RawDownload {
        let addr = gw.base.trim_start_matches("http://");
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET {PREFIX}/d1/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {tok}\r\nConnection: close\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            sock.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        RawDownload { sock, read: 0 }
    }

    /// Read `n` bytes (or until the end); false when the stream ended early.
    async fn read(&mut self, n: usize) -> bool {
        let mut buf = vec![0u8; n];
        match self.sock.read_exact(&mut buf).await {
            Ok(_) => {
                self.read += n;
                true
            }
            Err(_) => false,
        }
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// The full shape of a `429`.
async fn assert_rate_limited(resp: reqwest::Response) {
    assert_eq!(resp.status(), 429);
    let retry: u64 = header(&resp, "retry-after")
        .parse()
        .expect("integer Retry-After");
    assert!(retry >= 1);
    assert!(header(&resp, "ratelimit-limit").parse::<u64>().is_ok());
    assert_eq!(header(&resp, "ratelimit-remaining"), "0");
    assert!(header(&resp, "ratelimit-reset").parse::<u64>().unwrap() >= 1);
    assert_eq!(header(&resp, "cache-control"), "no-store");
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(resp.text().await.unwrap(), r#"{"error":"rate_limited"}"#);
}

/// Poll `f` until it returns true or `within` passes; how long it took.
async fn within<F, Fut>(within: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

// ---------------------------------------------------------------------------------------------

/// Per-user limits and the download cap, with two instances sharing one Redis, in strict
/// mode (`sync_ms = 0`: every request asks Redis, so the two share the limit exactly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_redis_limits() {
    let mut redis = RedisServer::start().await;
    let data = Data::create().await;
    let limits = format!(
        "redis_url = \"{}\"\nsync_ms = 0\nuser_per_minute = 60\nip_per_minute = 600000\nburst = 3\n\
         max_concurrent_per_user = 2\nlease_ttl_s = 1\nwrite_idle_timeout_s = 1\n\
         redis_timeout_ms = 50",
        redis.url()
    );
    let a = data.gateway(&limits, "").await;
    let b = data.gateway(&limits, "").await;
    let client = reqwest::Client::new();

    two_instances_enforce_one_user_limit(&client, &a, &b).await;
    sequential_ranges_do_not_exhaust_the_cap(&client, &a, &b).await;
    cap_holds_across_instances_and_a_gone_client_frees_its_slot(&client, &a, &b).await;
    long_download_keeps_its_lease(&client, &a).await;
    slow_reader_is_cut_off_and_frees_its_slot(&client, &a).await;
    redis_outage_falls_back_and_recovers(&client, &a, &mut redis).await;
}

/// Batched mode (the default): two instances sharing one Redis decide from their own views and
/// send Redis their counts in batches. Together they pass the burst and at most one batch
/// more ((instances - 1) x sync_batch), with far fewer Redis round trips than requests, and a
/// spent budget is refused from the views, with the same 429 as in strict mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_limits_overshoot_by_at_most_one_batch_across_two_instances() {
    let redis = RedisServer::start().await;
    let data = Data::create().await;
    let limits = format!(
        "redis_url = \"{}\"\nsync_ms = 50\nsync_batch = 5\nuser_per_minute = 6\n\
         ip_per_minute = 6000000\nburst = 20\nredis_timeout_ms = 200",
        redis.url()
    );
    let a = data.gateway(&limits, "").await;
    let b = data.gateway(&limits, "").await;
    let client = reqwest::Client::new();
    let before = redis.script_calls().await;
    // Alternating as fast as they answer: each instance's view lags the other's by up to a
    // batch. One a ten seconds refills: nothing refills during the run.
    let frank = user("frank");
    let mut statuses = Vec::new();
    for i in 0..80 {
        let gw = if i % 2 == 0 { &a } else { &b };
        statuses.push(head(&client, gw, &frank, None).await);
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (20..=25).contains(&allowed),
        "{allowed} of 80 passed: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 429)),
        "{statuses:?}"
    );
    assert!(statuses[60..].iter().all(|s| *s == 429), "{statuses:?}");
    let calls = redis.script_calls().await - before;
    eprintln!("batched: {allowed} of 80 passed (burst 20, batch 5), {calls} Redis scripts");
    assert!(calls <= 30, "{calls} Redis scripts for 80 requests");
    // The refusal from a view is the strict one: status, headers, body.
    assert_rate_limited(get(&client, &a, "small", &frank, &[]).await).await;
    // Both instances' counts reached Redis: after the next flush, a third instance (a fresh
    // view, asking Redis first) refuses Frank too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = data.gateway(&limits, "").await;
    assert_eq!(head(&client, &c, &frank, None).await, 429);
    assert_eq!(head(&client, &c, &user("grace"), None).await, 200);
}

async fn two_instances_enforce_one_user_limit(c: &reqwest::Client, a: &Gateway, b: &Gateway) {
    let carol = user("carol");
    // burst = 3 across both instances, then one a second.
    let statuses = [
        head(c, a, &carol, None).await,
        head(c, b, &carol, None).await,
        head(c, a, &carol, None).await,
    ];
    assert_eq!(statuses, [200, 200, 200]);
    let resp = c
        .head(b.url(&format!("{PREFIX}/d1/small")))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        429,
        "the second instance sees the first's requests"
    );
    assert_eq!(header(&resp, "ratelimit-limit"), "60");
    assert_rate_limited(get(c, a, "small", &carol, &[]).await).await;
    // Another user is not affected.
    assert_eq!(head(c, b, &user("dave"), None).await, 200);
    // After the pace interval, one more passes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(head(c, b, &carol, None).await, 200);
}

async fn sequential_ranges_do_not_exhaust_the_cap(c: &reqwest::Client, a: &Gateway, b: &Gateway) {
    // A viewer seeking through a video: many more ranges than the cap (2), one after another,
    // alternating instances, with the rate limit out of the way (a fresh user per 3 requests).
    for i in 0..12 {
        let who = user(&format!("viewer{}", i / 3));
        let gw = if i % 2 == 0 { a } else { b };
        let start = i * 100_000;
        let range = format!("bytes={start}-{}", start + 65_535);
        let resp = get(c, gw, "video", &who, &[("range", &range)]).await;
        assert_eq!(resp.status(), 206, "range {i}");
        assert_eq!(resp.bytes().await.unwrap().len(), 65_536);
    }
    // The same user, at the pace, through one keep-alive client: never 429.
    let erin = user("erin");
    for i in 0..4 {
        if i >= 3 {
            tokio::time::sleep(Duration::from_millis(1050)).await;
        }
        let resp = get(c, a, "video", &erin, &[("range", "bytes=0-99999")]).await;
        assert_eq!(resp.status(), 206, "request {i}");
        resp.bytes().await.unwrap();
    }
}

async fn cap_holds_across_instances_and_a_gone_client_frees_its_slot(
    c: &reqwest::Client,
    a: &Gateway,
    b: &Gateway,
) {
    let frank = user("frank");
    let mut first = RawDownload::start(a, "video", &frank).await;
    let second = RawDownload::start(b, "video", &frank).await;
    assert!(first.read(4096).await);
    // Both slots are held, on two instances: the third long download is refused.
    let third = get(c, a, "video", &frank, &[("range", "bytes=0-2097151")]).await;
    assert_rate_limited(third).await;
    // Short reads hold no slot, so they still pass: an image, a short range of the video
    // (each after the rate-limit pace: burst = 3 is used up by the three requests above).
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let image = get(c, b, "small", &frank, &[]).await;
    assert_eq!(image.status(), 200);
    assert_eq!(image.bytes().await.unwrap().len(), SMALL);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let short = get(c, a, "video", &frank, &[("range", "bytes=0-65535")]).await;
    assert_eq!(short.status(), 206);
    assert_eq!(short.bytes().await.unwrap().len(), 65_536);
    // The client on instance B goes away mid-download; its slot is free within a second.
    drop(second);
    tokio::time::sleep(Duration::from_millis(1050)).await; // the rate-limit pace, not the slot
    let freed = within(Duration::from_secs(1), || async {
        slot_probe(c, a, &frank).await == 206
    })
    .await;
    assert!(
        freed.is_some(),
        "slot of a gone client not freed within a second"
    );
    drop(first);
}

async fn long_download_keeps_its_lease(c: &reqwest::Client, a: &Gateway) {
    // lease_ttl_s = 1: without renewal the slots would expire after a second.
    let gina = user("gina");
    let mut one = RawDownload::start(a, "video", &gina).await;
    let mut two = RawDownload::start(a, "video", &gina).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2600) {
        // Keep both reading (slowly) so that the write-idle timeout does not cut them.
        assert!(one.read(256 * 1024).await && two.read(256 * 1024).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(one.read < BIG && two.read < BIG, "downloads still running");
    assert_eq!(
        slot_probe(c, a, &gina).await,
        429,
        "leases kept alive past their TTL"
    );
    // Reading to the end frees both.
    assert!(one.read(BIG - one.read).await && two.read(BIG - two.read).await);
    tokio::time::sleep(Duration::from_millis(1100)).await; // rate-limit pace, not the slots
    assert_eq!(slot_probe(c, a, &gina).await, 206);
}

async fn slow_reader_is_cut_off_and_frees_its_slot(c: &reqwest::Client, a: &Gateway) {
    // write_idle_timeout_s = 1: two clients that stop reading lose their slots.
    let hank = user("hank");
    let _one = RawDownload::start(a, "video", &hank).await;
    let _two = RawDownload::start(a, "video", &hank).await;
    assert_eq!(slot_probe(c, a, &hank).await, 429);
    let freed = within(Duration::from_secs(6), || async {
        slot_probe(c, a, &hank).await == 206
    })
    .await;
    let took = freed.expect("stalled readers were never cut off");
    assert!(
        took >= Duration::from_millis(500),
        "cut too early: {took:?}"
    );
}

async fn redis_outage_falls_back_and_recovers(
    c: &reqwest::Client,
    a: &Gateway,
    redis: &mut RedisServer,
) {
    let port = redis.port;
    let ivan = user("ivan");
    assert_eq!(get(c, a, "small", &ivan, &[]).await.status(), 200);
    redis.kill();
    // Downloads keep flowing on the in-process limits, each promptly.
    for i in 0..3 {
        let started = Instant::now();
        let resp = get(c, a, "video", &ivan, &[("range", "bytes=0-65535")]).await;
        assert_eq!(resp.status(), 206, "download {i} with redis down");
        assert_eq!(resp.bytes().await.unwrap().len(), 65_536);
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    // Downloads flow, and readiness names the missing dependency (SPEC §4).
    let ready = c.get(format!("{}/readyz", a.admin)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["failing"], serde_json::json!(["redis"]));
    // Redis comes back on the same address: the gateway uses it again, without a restart.
    let back = RedisServer::start_on(port).await;
    let judy = user("judy");
    let used_again = within(Duration::from_secs(10), || async {
        let resp = get(c, a, "small", &judy, &[]).await;
        resp.status() == 200 && back.exists(&keys::user_rate("judy")).await
    })
    .await;
    assert!(
        used_again.is_some(),
        "gateway did not go back to redis\n{}",
        a.log()
    );
    let ready = c.get(format!("{}/readyz", a.admin)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready again once redis answers");
}

/// Client IP: spoofed X-Forwarded-For from an untrusted peer changes nothing; a trusted
/// proxy's right-most untrusted hop is the client. Both instances share the IP limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_limits() {
    let redis = RedisServer::start().await;
    let data = Data::create().await;
    let limits = format!(
        "redis_url = \"{}\"\nuser_per_minute = 600000\nip_per_minute = 60\nburst = 3",
        redis.url()
    );
    let untrusted = data.gateway(&limits, "").await;
    let trusted = data.gateway(&limits, "\"127.0.0.1/32\"").await;
    let c = reqwest::Client::new();

    // Peer 127.0.0.1 untrusted: every request is 127.0.0.1's, whatever it claims.
    for i in 0..3 {
        let xff = format!("203.0.113.{i}");
        assert_eq!(
            head(&c, &untrusted, &user(&format!("u{i}")), Some(&xff)).await,
            200
        );
    }
    assert_eq!(
        head(&c, &untrusted, &user("u9"), Some("203.0.113.99")).await,
        429
    );
    assert_eq!(head(&c, &untrusted, &user("u8"), None).await, 429);

    // Behind a trusted proxy each forwarded client has its own budget ...
    for i in 0..6 {
        let xff = format!("198.51.100.{i}, 127.0.0.1");
        assert_eq!(
            head(&c, &trusted, &user(&format!("t{i}")), Some(&xff)).await,
            200
        );
    }
    // ... and a burst of 3, then refused, whatever the users.
    let ip7 = Some("198.51.100.7");
    let statuses = [
        head(&c, &trusted, &user("x1"), ip7).await,
        head(&c, &trusted, &user("x2"), ip7).await,
        head(&c, &trusted, &user("x3"), ip7).await,
        head(&c, &trusted, &user("x4"), ip7).await,
    ];
    assert_eq!(statuses, [200, 200, 200, 429]);
    // IPv6 clients are keyed by their /64: another address in the same /64 shares it.
    for i in 1..=3 {
        let xff = format!("2001:db8:1:2::{i}");
        assert_eq!(
            head(&c, &trusted, &user(&format!("v{i}")), Some(&xff)).await,
            200
        );
    }
    assert_eq!(
        head(&c, &trusted, &user("v9"), Some("2001:db8:1:2:ffff::9")).await,
        429
    );
    assert_eq!(
        head(&c, &trusted, &user("v8"), Some("2001:db8:1:3::1")).await,
        200
    );
    assert!(
        redis
            .exists(&keys::ip_rate(Some("2001:db8:1:2::9".parse().unwrap())))
            .await
    );
    // A flood of bad tokens is throttled before any token is verified.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(head(&c, &untrusted, "not-a-token", Some("192.0.2.1")).await);
    }
    assert!(codes.iter().all(|s| *s == 429), "{codes:?}");
}

/// `on_redis_error = "deny"` with Redis unreachable: `503` JSON, and not ready. Header budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_deny_and_header_budget() {
    let data = Data::create().await;
    let dead = free_port();
    let limits = format!("redis_url = \"redis://127.0.0.1:{dead}/0\"\non_redis_error = \"deny\"");
    let gw = data.gateway(&limits, "").await;
    let c = reqwest::Client::new();
    let resp = get(&c, &gw, "small", &user("kim"), &[]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "cache-control"), "no-store");
    assert!(header(&resp, "retry-after").parse::<u64>().is_ok());
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"service_unavailable"}"#
    );
    let ready = c.get(format!("{}/readyz", gw.admin)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("redis"));

    // Header budget (RFC 6585 §5), on any route.
    let many: Vec<(String, String)> = (0..120).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for path in [format!("{PREFIX}/d1/small"), "/elsewhere".to_string()] {
        let (status, text) = harness::raw_request(&gw.base, &path, &many).await;
        assert_eq!(status, 431, "{text}");
        assert!(text.contains(r#"{"error":"request_header_fields_too_large"}"#));
        assert!(text
            .to_ascii_lowercase()
            .contains("cache-control: no-store"));
    }
    let huge = "c".repeat(40 * 1024);
    let (status, _) = harness::raw_request(&gw.base, "/elsewhere", &[("cookie", &huge)]).await;
    assert_eq!(status, 431);
}

/// A request head several times a connection's 8 KiB read buffer (`listener`) but within the
/// header budget is read whole and served, and the kept-alive connection serves the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_larger_than_the_read_buffer_is_served() {
    let data = Data::create().await;
    let gw = data.gateway("", "").await;
    let c = reqwest::Client::new();
    let cookie = format!("pad={}", "c".repeat(28 * 1024));
    for _ in 0..2 {
        let resp = get(&c, &gw, "small", &user("lena"), &[("cookie", &cookie)]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.bytes().await.unwrap().len(), SMALL);
    }
}

// ---------------------------------------------------------------------------------------------

/// The limiter's cost per request, reported rather than asserted (run by
/// `benches/limiter_cost.sh`, in release): the same requests, interleaved in rounds, against
/// three gateways over the same data that differ only in `[limits]`:
/// - `redis`: the shared limiter (one script per request, plus the async lease release),
/// - `local`: no `redis_url`, in-process limits,
/// - `off`: Redis configured but unreachable with `on_redis_error = "allow"`: no Redis call is
///   made and nothing is limited (only the in-process per-IP pre-check remains).
///
/// Quotas are set far above the load so that nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run benches/limiter_cost.sh"]
async fn limiter_cost() {
    let requests: usize = std::env::var("LIMITER_COST_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
        .min(100_000);
    let redis = RedisServer::start().await;
    let data = Data::create().await;
    let quotas = "user_per_minute = 60000\nip_per_minute = 60000\nburst = 1000000\n\
                  max_concurrent_per_user = 64";
    let on = data
        .gateway(&format!("redis_url = \"{}\"\n{quotas}", redis.url()), "")
        .await;
    let local = data.gateway(quotas, "").await;
    let off = data
        .gateway(
            &format!(
                "redis_url = \"redis://127.0.0.1:{}/0\"\non_redis_error = \"allow\"\n{quotas}",
                free_port()
            ),
            "",
        )
        .await;
    let client = reqwest::Client::new();
    let tok = user("bench");
    let gateways = [("redis", &on), ("local", &local), ("off", &off)];
    for kind in ["head", "range_64k"] {
        // Warm up every instance (connections, script cache), then measure in rounds.
        let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); gateways.len()];
        for round in 0..(requests / 100 + 1) {
            for (i, (name, gw)) in gateways.iter().enumerate() {
                let n = if round == 0 { 20 } else { 100 };
                if *name == "redis" && round == 1 {
                    redis_command_stats(&redis, true).await;
                }
                for _ in 0..n {
                    let started = Instant::now();
                    let status = match kind {
                        "head" => head(&client, gw, &tok, None).await,
                        _ => {
                            let resp =
                                get(&client, gw, "video", &tok, &[("range", "bytes=0-65535")])
                                    .await;
                            let status = resp.status().as_u16();
                            resp.bytes().await.unwrap();
                            status
                        }
                    };
                    assert!(status == 200 || status == 206, "{name}: {status}");
                    if round > 0 {
                        lat[i].push(started.elapsed());
                    }
                }
            }
        }
        // Let the async lease releases land before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (round_trips, breakdown) = redis_command_stats(&redis, false).await;
        let measured = lat[0].len() as f64;
        println!("\n{kind}: {} requests per gateway", lat[0].len());
        println!(
            "  redis round trips per request: {:.2} (on the request path: {:.2})",
            round_trips.total as f64 / measured,
            round_trips.on_path as f64 / measured,
        );
        println!("  redis commands executed (scripts' inner calls included): {breakdown}");
        for (i, (name, _)) in gateways.iter().enumerate() {
            let l = &mut lat[i];
            l.sort();
            let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
            println!(
                "  {name:>5}: p50 {:>7.3} ms  p99 {:>7.3} ms",
                pct(0.50).as_secs_f64() * 1000.0,
                pct(0.99).as_secs_f64() * 1000.0
            );
        }
    }
}

/// Round trips the gateway made: every top-level command; the check script is the one on the
/// request path (`ZREM`, the lease release, is sent after the response without waiting).
#[derive(Default)]
struct RoundTrips {
    total: u64,
    on_path: u64,
}

/// Redis command counts since the last reset (the reset and this INFO not included).
async fn redis_command_stats(redis: &RedisServer, reset: bool) -> (RoundTrips, String) {
    let mut c = redis.connection().await.unwrap();
    if reset {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut c)
            .await
            .unwrap();
        return (RoundTrips::default(), String::new());
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut trips = RoundTrips::default();
    let mut parts = Vec::new();
    for line in info.lines().filter(|l| l.starts_with("cmdstat_")) {
        let (name, rest) = line.trim_start_matches("cmdstat_").split_once(':').unwrap();
        let calls: u64 = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if name == "info" || name.starts_with("config") {
            continue;
        }
        // Scripts' inner commands are counted too; only top-level ones are round trips.
        match name {
            "evalsha" | "eval" => {
                trips.total += calls;
                trips.on_path += calls;
            }
            "zrem" | "script" | "script|load" => trips.total += calls,
            _ => {}
        }
        parts.push(format!("{name}={calls}"));
    }
    (trips, parts.join(" "))
}
