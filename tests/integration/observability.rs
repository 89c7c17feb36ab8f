//! Observability through the real gateway binary: after a mixed workload, every metric of
//! SPEC §9 is on `/metrics` with the counts the workload implies; the access log has one line
//! per request and no canary secret (token, cookie, file name, query string, S3 secret) appears
//! in the logs or the metrics; `/readyz` follows storage going away and coming back.
//! SQLite + a local directory for the workload, SQLite + SeaweedFS behind the fault tap for
//! storage errors.

use crate::harness;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, StorageKey};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use harness::seaweed::Seaweed;
use harness::tap::{Mode, Tap};
use harness::{token, Gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFIX: &str = "/api/support-chat/attachments";
const IMG_LEN: usize = 64 * 1024;
/// Large enough that a client reading 64 KiB and leaving cannot have been sent it all.
const BIG_LEN: usize = 16 * 1024 * 1024;
const FILE_NAME_CANARY: &str = "canary-holiday-photo-3f9a.png";
const UPLOAD_NAME_CANARY: &str = "canary-upload-name-77c1.txt";
const QUERY_CANARY: &str = "canary-query-secret-5d2e";
const COOKIE_CANARY: &str = "canary-cookie-value-a41b";
/// Users allowed this many requests at once before the per-minute pace applies.
const BURST: usize = 15;

fn config_toml(catalog: &str, storage: &str, app: &str) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"
threads = 2
grace_period_s = 1

[app]
upstream = "{app}"

[auth]
algorithms = ["HS256"]
hs_secret = "{secret}"

[catalog]
{catalog}
cache_ttl_s = 60

[storage]
{storage}
connect_timeout_ms = 1000
read_timeout_ms = 1500
# These tests count storage reads and storage errors per request: every read goes to storage
# (tests/integration/gateway_read.rs covers the memory cache).
memory_cache_bytes = 0

[http]
max_object_bytes = 4194304

[limits]
user_per_minute = 60
ip_per_minute = 1000000
burst = {BURST}

[upload]
allowed_types = ["text/plain", "image/png"]

[log]
level = "info"
format = "json"
"#,
        secret = harness::HS_SECRET
    )
}

fn body(bytes: Vec<u8>) -> ByteStream {
    let chunks: Vec<Result<Bytes, storage::StorageError>> = bytes
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// `img1` and `big1` in alice's dialog `d1`, `gone1` without its object, staged `st1`, and
/// `old1` staged long ago (expired).
async fn seed(toml: &str) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    // Fresh rows, and one staged upload long expired: the first cleanup pass deletes it.
    let now = Utc::now();
    let long_ago = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
    let rows: [(&str, Option<&str>, usize, bool); 5] = [
        ("img1", Some("d1"), IMG_LEN, true),
        ("big1", Some("d1"), BIG_LEN, true),
        ("gone1", Some("d1"), 10, false),
        ("st1", None, IMG_LEN, true),
        ("old1", None, 10, true),
    ];
    for (id, dialog, len, store) in rows {
        let at = if id == "old1" { long_ago } else { now };
        let key = match dialog {
            Some(d) => StorageKey::dialog(d, id),
            None => StorageKey::staged("alice", id),
        };
        if store {
            let bytes = (0..len).map(|i| (i % 251) as u8).collect();
            storage
                .put(&key, "image/png", len as u64, body(bytes))
                .await
                .unwrap();
        }
        catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: dialog.map(str::to_string),
                message_id: dialog.map(|_| "m1".to_string()),
                storage_path: key.as_str().into(),
                mime_type: "image/png".into(),
                size_bytes: len as u64,
                original_name: FILE_NAME_CANARY.into(),
                created_by_user_id: "alice".into(),
                status: if dialog.is_some() {
                    AttachmentStatus::Linked
                } else {
                    AttachmentStatus::Uploaded
                },
                created_at: at,
            })
            .await
            .unwrap();
    }
}

/// The app upstream is a port nobody listens on: passthrough requests fail (`502`), which
/// exercises Pingora's own error log with a secret in the query string.
fn dead_app() -> String {
    format!("127.0.0.1:{}", harness::free_port())
}

/// `name{labels}` -> value, from the Prometheus text format.
async fn scrape(gw: &Gateway) -> (String, HashMap<String, f64>) {
    let text = reqwest::get(format!("{}/metrics", gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let values = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect();
    (text, values)
}

fn metric(values: &HashMap<String, f64>, name: &str) -> f64 {
    *values
        .get(name)
        .unwrap_or_else(|| panic!("metric {name} missing from /metrics"))
}

/// The access-log lines (`target = access`) of the gateway's captured output.
fn access_lines(gw: &Gateway) -> Vec<serde_json::Value> {
    gw.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect()
}

fn is_read(line: &serde_json::Value) -> bool {
    matches!(line["route"].as_str(), Some("read_linked" | "read_staged"))
}

/// What the workload did, as the tests expect the metrics to show it.
#[derive(Default)]
struct Expect {
    statuses: HashMap<u16, u64>,
    cache_hits: u64,
    cache_misses: u64,
    storage_reads: u64,
}

impl Expect {
    fn download(&mut self, status: u16) {
        *self.statuses.entry(status).or_default() += 1;
    }
    fn total(&self) -> u64 {
        self.statuses.values().sum()
    }
    fn class(&self, class: u16) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s / 100 == class)
            .map(|(_, n)| n)
            .sum()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, path: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> u16 {
        let resp = self.send(reqwest::Method::GET, path, bearer, headers).await;
        let status = resp.status().as_u16();
        resp.bytes().await.unwrap();
        status
    }
}

/// Read 64 KiB of a 16 MiB ranged read, then leave. Returns the request id.
async fn aborted_download(base: &str, bearer: &str) -> String {
    let id = "obs-abort-1";
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {PREFIX}/d1/big1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\
         Range: bytes=0-\r\nX-Request-Id: {id}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < buf.len() {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf[got..])).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    assert!(String::from_utf8_lossy(&buf[..12]).starts_with("HTTP/1.1 206"));
    drop(s);
    id.to_string()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fs_metrics_logs_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    let toml = config_toml(
        &format!(
            "database_url = \"sqlite://{}?mode=rwc\"",
            dir.path().join("gw.db").display()
        ),
        &format!("provider = \"fs\"\nroot = \"{}\"", root.display()),
        &dead_app(),
    );
    seed(&toml).await;
    let gw = Gateway::start_in(dir, &toml).await;
    let c = Client {
        http: reqwest::Client::new(),
        base: gw.base.clone(),
    };
    let alice = token("alice", "USER", &[]);
    let bob = token("bob", "USER", &[]);
    let mallory = token("mallory", "USER", &[]);
    let img = format!("{PREFIX}/d1/img1");
    let mut x = Expect::default();

    // A full read; the client's request id is kept, returned and logged.
    let resp = c
        .send(
            reqwest::Method::GET,
            &img,
            Some(&alice),
            &[("x-request-id", "obs-first-1")],
        )
        .await;
    assert_eq!(resp.status(), 200, "{}", gw.log());
    assert_eq!(resp.headers()["x-request-id"], "obs-first-1");
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(resp.bytes().await.unwrap().len(), IMG_LEN);
    x.download(200);
    (x.cache_misses, x.storage_reads) = (x.cache_misses + 1, x.storage_reads + 1);
    // An invalid request id is replaced, never echoed.
    let resp = c
        .send(
            reqwest::Method::GET,
            &img,
            Some(&alice),
            &[("x-request-id", "bad id with spaces")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
    resp.bytes().await.unwrap();
    x.download(200);
    (x.cache_hits, x.storage_reads) = (x.cache_hits + 1, x.storage_reads + 1);
    // 304 and 206: answered from the catalog / one range read.
    assert_eq!(
        c.get(&img, Some(&alice), &[("if-none-match", &etag)]).await,
        304
    );
    x.download(304);
    x.cache_hits += 1;
    assert_eq!(
        c.get(&img, Some(&alice), &[("range", "bytes=0-99")]).await,
        206
    );
    x.download(206);
    (x.cache_hits, x.storage_reads) = (x.cache_hits + 1, x.storage_reads + 1);
    let head = c.send(reqwest::Method::HEAD, &img, Some(&alice), &[]).await;
    assert_eq!(head.status(), 200);
    x.download(200);
    x.cache_hits += 1;
    // Errors on the read routes.
    assert_eq!(c.get(&img, None, &[]).await, 401);
    x.download(401);
    assert_eq!(c.get(&img, Some(&bob), &[]).await, 404);
    x.download(404);
    x.cache_hits += 1;
    assert_eq!(
        c.get(&format!("{PREFIX}/d1/nope1"), Some(&alice), &[])
            .await,
        404
    );
    x.download(404);
    x.cache_misses += 1;
    assert_eq!(
        c.get(&format!("{PREFIX}/d1/gone1"), Some(&alice), &[])
            .await,
        404
    );
    x.download(404);
    x.cache_misses += 1;
    assert_eq!(
        c.get(&img, Some(&alice), &[("range", "bytes=999999-")])
            .await,
        416
    );
    x.download(416);
    x.cache_hits += 1;
    // The session cookie carries the token; another cookie is a canary.
    let cookie = format!("session={alice}; theme={COOKIE_CANARY}");
    assert_eq!(
        c.get(
            &format!("{PREFIX}/staged/st1"),
            None,
            &[("cookie", &cookie)]
        )
        .await,
        200
    );
    x.download(200);
    (x.cache_misses, x.storage_reads) = (x.cache_misses + 1, x.storage_reads + 1);
    // Not downloads: a wrong method on a read path, a passthrough (dead app: 502).
    let put = c.send(reqwest::Method::PUT, &img, Some(&alice), &[]).await;
    assert_eq!(put.status(), 405);
    let app_path = format!("/app/page?token={QUERY_CANARY}&sig={QUERY_CANARY}");
    // On its own client: the gateway closes that connection, which must not be reused.
    let app = Client {
        http: reqwest::Client::new(),
        base: gw.base.clone(),
    };
    assert_eq!(app.get(&app_path, None, &[("cookie", &cookie)]).await, 502);
    // One upload, its file name a canary.
    let upload_body = b"plain text upload for the metrics test\n".to_vec();
    let up = c
        .http
        .post(format!("{}{PREFIX}?filename={UPLOAD_NAME_CANARY}", gw.base))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body(upload_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201, "{}", up.text().await.unwrap());
    // A flood from one user: the burst passes, then 429 (scope user).
    let mut limited = 0u64;
    for _ in 0..BURST + 10 {
        let status = c.get(&img, Some(&mallory), &[]).await;
        match status {
            404 => x.cache_hits += 1,
            429 => limited += 1,
            other => panic!("flood answered {other}"),
        }
        x.download(status);
    }
    assert!(limited > 0, "the flood was never limited");
    // A client that leaves mid-body.
    let abort_id = aborted_download(&gw.base, &alice).await;
    x.download(206);
    (x.cache_misses, x.storage_reads) = (x.cache_misses + 1, x.storage_reads + 1);
    wait_until("the aborted download's access line", || {
        access_lines(&gw)
            .iter()
            .any(|l| l["request_id"] == abort_id.as_str())
    })
    .await;

    // In flight goes back to zero once the abort is noticed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let values = loop {
        let (_, values) = scrape(&gw).await;
        if metric(&values, "downloads_in_flight") == 0.0 || Instant::now() > deadline {
            break values;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (text, _) = scrape(&gw).await;
    let log = gw.log();
    let lines = access_lines(&gw);

    // Downloads: one per read-route request, by status.
    for (status, n) in &x.statuses {
        let name = format!("attachment_download_count{{status=\"{status}\"}}");
        assert_eq!(metric(&values, &name), *n as f64, "{name}\n{text}");
    }
    let total: f64 = values
        .iter()
        .filter(|(k, _)| k.starts_with("attachment_download_count{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, x.total() as f64, "{text}");
    assert_eq!(metric(&values, "download_4xx"), x.class(4) as f64);
    assert_eq!(metric(&values, "download_5xx"), x.class(5) as f64);
    assert_eq!(
        metric(&values, "download_latency_ms_count"),
        x.total() as f64
    );
    assert_eq!(metric(&values, "downloads_in_flight"), 0.0);
    assert_eq!(
        metric(&values, "storage_ttfb_ms_count"),
        x.storage_reads as f64
    );
    // Bytes: what was really written, the cut download's share included.
    let reads: Vec<_> = lines.iter().filter(|l| is_read(l)).collect();
    assert_eq!(reads.len() as u64, x.total(), "one access line per read");
    let abort_line = reads
        .iter()
        .find(|l| l["request_id"] == abort_id.as_str())
        .unwrap();
    assert_eq!(abort_line["outcome"], "client_aborted", "{}", log);
    assert_eq!(abort_line["status"], 206);
    let partial = abort_line["bytes"].as_u64().unwrap();
    assert!(
        (64 * 1024..BIG_LEN as u64).contains(&partial),
        "partial {partial}"
    );
    let full = 3 * IMG_LEN as u64 + 100; // two full reads of img1, its range, st1
    assert_eq!(
        metric(&values, "download_bytes_total"),
        (full + partial) as f64
    );
    // Everything else the brief names.
    assert_eq!(metric(&values, "upload_count"), 1.0);
    assert_eq!(
        metric(&values, "upload_bytes_total"),
        upload_body.len() as f64
    );
    assert_eq!(
        metric(&values, "rate_limited_total{scope=\"user\"}"),
        limited as f64
    );
    assert_eq!(metric(&values, "rate_limited_total{scope=\"ip\"}"), 0.0);
    assert_eq!(
        metric(&values, "rate_limited_total{scope=\"concurrency\"}"),
        0.0
    );
    // `old1` (its row; its object goes with it, counted once as one deleted upload).
    assert_eq!(metric(&values, "cleanup_deleted_total"), 1.0);
    assert_eq!(
        metric(&values, "catalog_cache_hits_total"),
        x.cache_hits as f64
    );
    assert_eq!(
        metric(&values, "catalog_cache_misses_total"),
        x.cache_misses as f64
    );
    assert_eq!(
        metric(&values, "storage_errors_total{kind=\"not_found\"}"),
        1.0
    );
    for kind in ["timeout", "status", "transport", "io"] {
        let name = format!("storage_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&values, &name), 0.0, "{name}");
    }

    // The access log: technical fields, truncated client address, no errors for the abort.
    let first = reads
        .iter()
        .find(|l| l["request_id"] == "obs-first-1")
        .unwrap();
    for field in [
        "route",
        "method",
        "status",
        "bytes",
        "latency_ms",
        "outcome",
    ] {
        assert!(!first[field].is_null(), "{field} missing: {first}");
    }
    assert_eq!(first["attachment_id"], "img1");
    assert_eq!(first["client"], "127.0.0.0");
    assert!(lines.iter().all(|l| l["client"] != "127.0.0.1"));
    let abort_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains(&abort_id))
        .collect();
    assert!(abort_errors.is_empty(), "{abort_errors:?}");
    // Canaries: nowhere in the logs or the metrics.
    for canary in [
        alice.as_str(),
        bob.as_str(),
        COOKIE_CANARY,
        FILE_NAME_CANARY,
        UPLOAD_NAME_CANARY,
        QUERY_CANARY,
    ] {
        assert!(!log.contains(canary), "{canary} in the log:\n{log}");
        assert!(!text.contains(canary), "{canary} in the metrics");
    }
    // No id, address or path as a label value.
    for label_leak in ["img1", "alice", "127.0.0", "/api/"] {
        assert!(!text.contains(label_leak), "{label_leak} in the metrics");
    }

    // Readiness follows storage: the bucket directory goes away, then comes back.
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", gw.admin)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    let bucket = gw.dir.path().join("bucket");
    let moved = gw.dir.path().join("bucket-away");
    std::fs::rename(&bucket, &moved).unwrap();
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["storage"]));
    assert_eq!(
        reqwest::get(format!("{}/healthz", gw.admin))
            .await
            .unwrap()
            .status(),
        200
    );
    std::fs::rename(&moved, &bucket).unwrap();
    assert_eq!(ready().await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_storage_errors_by_kind_and_readiness() {
    let seaweed = Seaweed::start().await;
    let tap = Tap::start(&seaweed.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let s3 = |endpoint: &str| {
        format!(
            "provider = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"{}\"\nbucket = \"{}\"\n\
             path_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
            seaweed.region, seaweed.bucket, seaweed.access_key, seaweed.secret_key
        )
    };
    let catalog = format!(
        "database_url = \"sqlite://{}?mode=rwc\"",
        dir.path().join("gw.db").display()
    );
    seed(&config_toml(&catalog, &s3(&seaweed.endpoint), &dead_app())).await;
    let gw = Gateway::start_in(dir, &config_toml(&catalog, &s3(&tap.endpoint), &dead_app())).await;
    let c = Client {
        http: reqwest::Client::new(),
        base: gw.base.clone(),
    };
    let alice = token("alice", "USER", &[]);
    let img = format!("{PREFIX}/d1/img1");
    let ready = || async {
        let r = reqwest::get(format!("{}/readyz", gw.admin)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };

    assert_eq!(c.get(&img, Some(&alice), &[]).await, 200);
    assert_eq!(ready().await.0, 200);
    // Storage answers 503: `status`, and not ready.
    tap.set_mode(Mode::Unavailable).await;
    assert_eq!(c.get(&img, Some(&alice), &[]).await, 502);
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], serde_json::json!(["storage"]));
    // Storage stalls: `timeout`.
    tap.set_mode(Mode::Stall).await;
    assert_eq!(c.get(&img, Some(&alice), &[]).await, 504);
    // Storage cuts the body: `transport`, the client's connection aborted.
    tap.set_mode(Mode::CutAfter(256 * 1024)).await;
    let cut = c
        .send(
            reqwest::Method::GET,
            &format!("{PREFIX}/d1/big1"),
            Some(&alice),
            &[("range", "bytes=0-")],
        )
        .await;
    assert_eq!(cut.status(), 206);
    assert!(cut.bytes().await.is_err(), "a cut body must not look whole");
    // Storage is back.
    tap.set_mode(Mode::Pass).await;
    assert_eq!(ready().await.0, 200);
    assert_eq!(c.get(&img, Some(&alice), &[]).await, 200);

    let (text, values) = scrape(&gw).await;
    for (kind, n) in [
        ("status", 1.0),
        ("timeout", 1.0),
        ("transport", 1.0),
        ("not_found", 0.0),
        ("io", 0.0),
    ] {
        let name = format!("storage_errors_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&values, &name), n, "{name}\n{text}");
    }
    assert_eq!(
        metric(&values, "attachment_download_count{status=\"200\"}"),
        2.0
    );
    assert_eq!(
        metric(&values, "attachment_download_count{status=\"502\"}"),
        1.0
    );
    assert_eq!(
        metric(&values, "attachment_download_count{status=\"504\"}"),
        1.0
    );
    assert_eq!(
        metric(&values, "attachment_download_count{status=\"206\"}"),
        1.0
    );
    assert_eq!(metric(&values, "download_5xx"), 2.0);
    // Two full reads and the cut one reached their first byte.
    assert_eq!(metric(&values, "storage_ttfb_ms_count"), 3.0);
    assert_eq!(metric(&values, "downloads_in_flight"), 0.0);
    let log = gw.log();
    for secret in [
        seaweed.secret_key.as_str(),
        alice.as_str(),
        FILE_NAME_CANARY,
    ] {
        assert!(!log.contains(secret), "a secret is in the log:\n{log}");
        assert!(!text.contains(secret), "a secret is in the metrics");
    }
}
