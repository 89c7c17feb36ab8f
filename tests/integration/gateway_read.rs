//! Reads through the real gateway binary: PostgreSQL + SeaweedFS (S3, signatures verified) and
//! SQLite + local directory. One environment per backend; each scenario is its own function.

use crate::harness;

use std::sync::Arc;

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, Storage, StorageKey};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use harness::app::App;
use harness::seaweed::Seaweed;
use harness::tap::{Mode, Tap};
use harness::{token, Gateway, PgDatabase, STAFF_PERMISSION};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

const PREFIX: &str = "/api/support-chat/attachments";
const MAX_OBJECT: u64 = 4 * 1024 * 1024;

struct Env {
    gw: Gateway,
    app: App,
    tap: Option<Tap>,
    client: reqwest::Client,
    img: Vec<u8>,
    bin: Vec<u8>,
    _seaweed: Option<Seaweed>,
    _pg: Option<PgDatabase>,
}

fn config_toml(app: &str, catalog: &str, storage: &str) -> String {
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
staff_permission = "{STAFF_PERMISSION}"

[catalog]
{catalog}
cache_ttl_s = 5

[storage]
{storage}
connect_timeout_ms = 1000
read_timeout_ms = 1500

[http]
max_object_bytes = {MAX_OBJECT}

# Limits have their own suite (tests/integration/limits.rs); here they must not get in the way.
[limits]
user_per_minute = 100000
ip_per_minute = 100000
burst = 10000
max_concurrent_per_user = 64

[log]
level = "info"
format = "json"
"#,
        secret = harness::HS_SECRET
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn body(bytes: Vec<u8>) -> ByteStream {
    // Several chunks, as a real upload would arrive.
    let chunks: Vec<Result<Bytes, storage::StorageError>> = bytes
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// id, dialog, mime, original name, bytes, status, whether the object exists in storage.
struct SeedRow(
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    Vec<u8>,
    AttachmentStatus,
    bool,
);

async fn seed(catalog: &dyn Catalog, storage: &dyn Storage, img: &[u8], bin: &[u8]) {
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    catalog.upsert_dialog("d2", "bob").await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
    let big = vec![7u8; (MAX_OBJECT + 1) as usize];
    use AttachmentStatus::{Linked, Uploaded};
    let rows: Vec<SeedRow> = vec![
        SeedRow(
            "img1",
            Some("d1"),
            "image/png",
            "shot.png",
            img.to_vec(),
            Linked,
            true,
        ),
        SeedRow(
            "bin1",
            Some("d1"),
            "application/octet-stream",
            "evil\"; x=\\..\\a.exe",
            bin.to_vec(),
            Linked,
            true,
        ),
        SeedRow(
            "svg1",
            Some("d1"),
            "image/svg+xml",
            "logo.svg",
            b"<svg/>".to_vec(),
            Linked,
            true,
        ),
        SeedRow(
            "big1",
            Some("d1"),
            "video/mp4",
            "film.mp4",
            big,
            Linked,
            true,
        ),
        SeedRow(
            "gone1",
            Some("d1"),
            "image/png",
            "gone.png",
            b"x".to_vec(),
            Linked,
            false,
        ),
        SeedRow(
            "bob1",
            Some("d2"),
            "image/png",
            "bob.png",
            img.to_vec(),
            Linked,
            true,
        ),
        SeedRow(
            "st1",
            None,
            "image/png",
            "draft.png",
            img.to_vec(),
            Uploaded,
            true,
        ),
    ];
    for SeedRow(id, dialog, mime, name, bytes, status, store) in rows {
        let key = match dialog {
            Some(d) => StorageKey::dialog(d, id),
            None => StorageKey::staged("alice", id),
        };
        let size = bytes.len() as u64;
        if store {
            storage.put(&key, mime, size, body(bytes)).await.unwrap();
        }
        catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: dialog.map(str::to_string),
                message_id: dialog.map(|_| "m1".to_string()),
                storage_path: key.as_str().into(),
                mime_type: mime.into(),
                size_bytes: size,
                original_name: name.into(),
                created_by_user_id: "alice".into(),
                status,
                // A staged row must be fresh, or the cleanup job rightly removes it.
                created_at: if status == AttachmentStatus::Uploaded {
                    Utc::now()
                } else {
                    at
                },
            })
            .await
            .unwrap();
    }
}

async fn env_pg_s3() -> Env {
    let seaweed = Seaweed::start().await;
    let tap = Tap::start(&seaweed.endpoint).await;
    let pg = PgDatabase::create().await;
    let app = App::start().await;
    let s3 = |endpoint: &str| {
        format!(
            "provider = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
            seaweed.bucket, seaweed.access_key, seaweed.secret_key
        )
    };
    let catalog_line = format!("database_url = \"{}\"", pg.url);
    let direct = config_toml(&app.addr, &catalog_line, &s3(&seaweed.endpoint));
    let img = pattern(100 * 1024, 1);
    let bin = pattern(3 * 1024 * 1024 + 17, 2);
    seed_with(&direct, &img, &bin).await;
    let gw = Gateway::start(&config_toml(&app.addr, &catalog_line, &s3(&tap.endpoint))).await;
    Env {
        gw,
        app,
        tap: Some(tap),
        client: reqwest::Client::new(),
        img,
        bin,
        _seaweed: Some(seaweed),
        _pg: Some(pg),
    }
}

async fn env_sqlite_fs() -> Env {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    let toml = config_toml(
        &app.addr,
        &format!(
            "database_url = \"sqlite://{}?mode=rwc\"",
            dir.path().join("gw.db").display()
        ),
        &format!("provider = \"fs\"\nroot = \"{}\"", root.display()),
    );
    let img = pattern(100 * 1024, 3);
    let bin = pattern(3 * 1024 * 1024 + 17, 4);
    seed_with(&toml, &img, &bin).await;
    let gw = Gateway::start_in(dir, &toml).await;
    Env {
        gw,
        app,
        tap: None,
        client: reqwest::Client::new(),
        img,
        bin,
        _seaweed: None,
        _pg: None,
    }
}

async fn seed_with(toml: &str, img: &[u8], bin: &[u8]) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    seed(catalog.as_ref(), storage.as_ref(), img, bin).await;
}

impl Env {
    async fn get(
        &self,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.get(self.gw.url(path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }
}

fn h<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// Status, headers (without per-response ones) and body: what a prober could compare.
async fn fingerprint(resp: reqwest::Response) -> (StatusCode, Vec<(String, String)>, Bytes) {
    let status = resp.status();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, resp.bytes().await.unwrap())
}

async fn run_all(env: &Env) {
    owner_reads_with_the_full_policy(env).await;
    authorization_matrix_and_cloaking(env).await;
    staged_reads(env).await;
    authentication_failures(env).await;
    conditional_requests(env).await;
    ranges(env).await;
    dispositions(env).await;
    large_objects(env).await;
    routing_never_leaks_to_the_app(env).await;
    passthrough_reaches_the_app(env).await;
    missing_object_is_a_miss(env).await;
}

async fn owner_reads_with_the_full_policy(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let resp = env
        .get(&format!("{PREFIX}/d1/img1"), Some(&alice), &[])
        .await;
    assert_eq!(resp.status(), 200);
    let hd = resp.headers().clone();
    assert_eq!(h(&hd, "content-type"), "image/png");
    assert_eq!(h(&hd, "content-length"), env.img.len().to_string());
    assert_eq!(h(&hd, "x-content-type-options"), "nosniff");
    assert_eq!(h(&hd, "cross-origin-resource-policy"), "same-origin");
    assert_eq!(h(&hd, "cache-control"), "private, max-age=300");
    assert_eq!(h(&hd, "vary"), "Authorization, Cookie");
    assert_eq!(h(&hd, "accept-ranges"), "bytes");
    assert_eq!(h(&hd, "last-modified"), "Wed, 04 Mar 2026 05:06:07 GMT");
    assert!(h(&hd, "etag").starts_with('"') && !h(&hd, "etag").starts_with("W/"));
    assert!(h(&hd, "content-disposition").starts_with("inline; filename=\"shot.png\""));
    // Nothing of storage's own reaches the client.
    for (name, _) in hd.iter() {
        assert!(!name.as_str().starts_with("x-amz"), "leaked {name}");
    }
    assert!(hd.get("set-cookie").is_none());
    assert!(!h(&hd, "server").to_ascii_lowercase().contains("seaweed"));
    assert_eq!(resp.bytes().await.unwrap(), env.img);
    // Cookie authentication works as well, and a multi-chunk object arrives whole.
    let resp = env
        .client
        .get(env.gw.url(&format!("{PREFIX}/d1/bin1")))
        .header("cookie", format!("theme=dark; session={alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), env.bin);
    if let Some(tap) = &env.tap {
        let seen = tap.seen();
        assert!(!seen.is_empty());
        for req in &seen {
            // Client credentials never reach storage; the payload hash header is always sent.
            assert!(req.header("cookie").is_none(), "cookie reached storage");
            let auth = req.header("authorization").unwrap_or("");
            assert!(
                auth.starts_with("AWS4-HMAC-SHA256 "),
                "unsigned storage request: {auth}"
            );
            assert!(req.header("x-amz-content-sha256").is_some());
        }
    }
}

async fn authorization_matrix_and_cloaking(env: &Env) {
    let path = format!("{PREFIX}/d1/img1");
    let cases = [
        (token("alice", "USER", &[]), 200),
        (token("bob", "USER", &[]), 404),
        (token("carol", "STAFF", &[STAFF_PERMISSION]), 200),
        (token("carol", "STAFF", &["other"]), 404),
        (token("dave", "ADMIN", &[]), 200),
    ];
    for (t, status) in &cases {
        let resp = env.get(&path, Some(t), &[]).await;
        assert_eq!(resp.status(), *status, "{t}");
    }
    // A denial is byte-for-byte a miss, whatever conditional or range headers say.
    let bob = token("bob", "USER", &[]);
    let extras: [&[(&str, &str)]; 3] = [&[], &[("range", "bytes=0-1")], &[("if-none-match", "*")]];
    for extra in extras {
        let denied = fingerprint(env.get(&path, Some(&bob), extra).await).await;
        let missing = fingerprint(
            env.get(&format!("{PREFIX}/d1/nope"), Some(&bob), extra)
                .await,
        )
        .await;
        let wrong_dialog = fingerprint(
            env.get(&format!("{PREFIX}/d2/img1"), Some(&bob), extra)
                .await,
        )
        .await;
        assert_eq!(denied.0, 404);
        assert_eq!(denied, missing);
        assert_eq!(denied, wrong_dialog);
        assert_eq!(&denied.2[..], br#"{"error":"not_found"}"#);
    }
}

async fn staged_reads(env: &Env) {
    let path = format!("{PREFIX}/staged/st1");
    let cases = [
        (token("alice", "USER", &[]), 200),
        (token("bob", "USER", &[]), 404),
        (token("carol", "STAFF", &[STAFF_PERMISSION]), 404),
        (token("dave", "ADMIN", &[]), 200),
    ];
    for (t, status) in &cases {
        assert_eq!(env.get(&path, Some(t), &[]).await.status(), *status);
    }
    // A staged row is not readable through a dialog path, nor a linked one through staged.
    let alice = token("alice", "USER", &[]);
    assert_eq!(
        env.get(&format!("{PREFIX}/d1/st1"), Some(&alice), &[])
            .await
            .status(),
        404
    );
    assert_eq!(
        env.get(&format!("{PREFIX}/staged/img1"), Some(&alice), &[])
            .await
            .status(),
        404
    );
}

async fn authentication_failures(env: &Env) {
    let path = format!("{PREFIX}/d1/img1");
    let alice = token("alice", "USER", &[]);
    let expired = harness::token_with_exp("alice", "USER", &[], -3600);
    let bad_sub = token("../alice", "USER", &[]);
    let bad_role = token("alice", "ROOT", &[]);
    let tampered = format!("{}x", &alice[..alice.len() - 1]);
    for t in [
        None,
        Some(expired.as_str()),
        Some(bad_sub.as_str()),
        Some(bad_role.as_str()),
        Some(tampered.as_str()),
        Some("garbage"),
    ] {
        let resp = env.get(&path, t, &[]).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(h(resp.headers(), "www-authenticate"), "Bearer");
        assert_eq!(h(resp.headers(), "cache-control"), "no-store");
        assert_eq!(h(resp.headers(), "content-type"), "application/json");
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            br#"{"error":"unauthorized"}"#
        );
    }
    // A token in the query string is never a credential.
    let resp = env
        .get(
            &format!("{path}?access_token={alice}&token={alice}"),
            None,
            &[],
        )
        .await;
    assert_eq!(resp.status(), 401);
    // The scheme is case-insensitive.
    let resp = env
        .get(
            &path,
            None,
            &[("authorization", &format!("bEaReR {alice}"))],
        )
        .await;
    assert_eq!(resp.status(), 200);
}

async fn conditional_requests(env: &Env) {
    let path = format!("{PREFIX}/d1/img1");
    let alice = token("alice", "USER", &[]);
    let first = env.get(&path, Some(&alice), &[]).await;
    let etag = h(first.headers(), "etag").to_string();
    let last_modified = h(first.headers(), "last-modified").to_string();
    if let Some(tap) = &env.tap {
        tap.clear();
    }
    let weak = format!("W/{etag}");
    let list = format!("\"zzz\", {etag}");
    for headers in [
        vec![("if-none-match", etag.as_str())],
        vec![("if-none-match", weak.as_str())],
        vec![("if-none-match", list.as_str())],
        vec![("if-none-match", "*")],
        vec![("if-modified-since", last_modified.as_str())],
        vec![("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")],
    ] {
        let resp = env.get(&path, Some(&alice), &headers).await;
        assert_eq!(resp.status(), 304, "{headers:?}");
        assert_eq!(h(resp.headers(), "etag"), etag);
        assert_eq!(h(resp.headers(), "cache-control"), "private, max-age=300");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    if let Some(tap) = &env.tap {
        assert!(
            tap.seen().is_empty(),
            "a 304 must be answered without storage"
        );
    }
    // If-None-Match takes precedence over If-Modified-Since.
    let resp = env
        .get(
            &path,
            Some(&alice),
            &[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &last_modified),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = env
        .get(
            &path,
            Some(&alice),
            &[("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT")],
        )
        .await;
    assert_eq!(resp.status(), 200);
}

async fn ranges(env: &Env) {
    let path = format!("{PREFIX}/d1/bin1");
    let alice = token("alice", "USER", &[]);
    let size = env.bin.len();
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-1".into(), 0, 1),
        ("bytes=0-0".into(), 0, 0),
        (format!("bytes={}-", size - 10), size - 10, size - 1),
        ("bytes=-5".into(), size - 5, size - 1),
        ("bytes=1000-9999999999".into(), 1000, size - 1),
        ("bytes=1048576-2097151".into(), 1048576, 2097151),
    ];
    for (range, start, end) in cases {
        let resp = env.get(&path, Some(&alice), &[("range", &range)]).await;
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            h(resp.headers(), "content-range"),
            format!("bytes {start}-{end}/{size}")
        );
        assert_eq!(
            h(resp.headers(), "content-length"),
            (end - start + 1).to_string()
        );
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            &env.bin[start..=end],
            "{range}"
        );
    }
    let resp = env
        .get(&path, Some(&alice), &[("range", &format!("bytes={size}-"))])
        .await;
    assert_eq!(resp.status(), 416);
    assert_eq!(
        h(resp.headers(), "content-range"),
        format!("bytes */{size}")
    );
    // Several ranges: the whole object (no multipart).
    let resp = env
        .get(&path, Some(&alice), &[("range", "bytes=0-1,5-6")])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), size);
    // If-Range: a matching validator keeps the range; a stale one yields the full object.
    let etag = h(env.get(&path, Some(&alice), &[]).await.headers(), "etag").to_string();
    let resp = env
        .get(
            &path,
            Some(&alice),
            &[("range", "bytes=0-1"), ("if-range", &etag)],
        )
        .await;
    assert_eq!(resp.status(), 206);
    let resp = env
        .get(
            &path,
            Some(&alice),
            &[("range", "bytes=0-1"), ("if-range", "\"stale\"")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), size);
    // HEAD: headers only, and `Range` is for `GET` only (RFC 9110 §14.2).
    let resp = env
        .client
        .head(env.gw.url(&path))
        .bearer_auth(&alice)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h(resp.headers(), "content-length"), size.to_string());
    let resp = env
        .client
        .head(env.gw.url(&path))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h(resp.headers(), "content-length"), size.to_string());
}

async fn dispositions(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let resp = env
        .get(&format!("{PREFIX}/d1/img1?download=1"), Some(&alice), &[])
        .await;
    assert!(h(resp.headers(), "content-disposition").starts_with("attachment;"));
    let resp = env
        .get(&format!("{PREFIX}/d1/svg1"), Some(&alice), &[])
        .await;
    assert_eq!(h(resp.headers(), "content-type"), "image/svg+xml");
    assert!(h(resp.headers(), "content-disposition").starts_with("attachment;"));
    let resp = env
        .get(
            &format!("{PREFIX}/d1/bin1"),
            Some(&alice),
            &[("range", "bytes=0-0")],
        )
        .await;
    let cd = h(resp.headers(), "content-disposition");
    assert!(cd.starts_with("attachment;"), "{cd}");
    // The hostile name never appears raw: no quote break-out, no path.
    let fallback = cd
        .split("filename=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(
        !fallback.contains('\\') && !fallback.contains(';') && !fallback.contains(".."),
        "{cd}"
    );
}

async fn large_objects(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let path = format!("{PREFIX}/d1/big1");
    let resp = env.get(&path, Some(&alice), &[]).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(h(resp.headers(), "content-type"), "application/json");
    assert!(std::str::from_utf8(&resp.bytes().await.unwrap())
        .unwrap()
        .contains("object_too_large"));
    let resp = env
        .get(&path, Some(&alice), &[("range", "bytes=100-199")])
        .await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().len(), 100);
}

async fn routing_never_leaks_to_the_app(env: &Env) {
    let before = env.app.seen().len();
    let alice = token("alice", "USER", &[]);
    let auth = format!("Bearer {alice}");
    let spellings = [
        "/api/support-chat/%61ttachments/d1/img1",
        "/api//support-chat/attachments/d1/img1",
        "/api/support-chat/./attachments/d1/img1",
        "/api/x/../support-chat/attachments/d1/img1",
        "/api/support-chat/attachments/%2e%2e/attachments/d1/img1",
        "/API/Support-Chat/Attachments/d1/img1",
        "/api/support-chat/attachments%2Fd1%2Fimg1",
        "/api/support-chat/attachments/d1/img1/",
        "/api/support-chat/attachments/d1/im%zzg1",
        "/api/support-chat/attachments/..%2f..%2fetc/passwd",
        "/api/support-chat/attachments",
        "/api/support-chat/attachments/",
    ];
    for path in spellings {
        let (status, text) =
            harness::raw_request(&env.gw.base, path, &[("authorization", &auth)]).await;
        assert!(
            matches!(status, 200 | 400 | 401 | 404 | 405),
            "{path} -> {status}\n{text}"
        );
        assert!(!text.contains("\"app\":true"), "{path} reached the app");
    }
    // The normalized spelling of a real attachment is served by the gateway itself.
    let (status, _) = harness::raw_request(
        &env.gw.base,
        "/api//support-chat/./attachments/d1/img1",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        env.app.seen().len(),
        before,
        "a gateway path reached the app"
    );
    // Methods other than reads on a read path.
    let resp = env
        .client
        .put(env.gw.url(&format!("{PREFIX}/d1/img1")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(h(resp.headers(), "content-type"), "application/json");
}

async fn passthrough_reaches_the_app(env: &Env) {
    let resp = env
        .client
        .get(env.gw.url("/api/support-chat/messages?x=1"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("cookie", "session=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h(resp.headers(), "x-app"), "yes");
    let seen = env.app.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.target, "/api/support-chat/messages?x=1");
    // An untrusted peer cannot inject a forwarded address.
    assert_eq!(last.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(last.header("x-forwarded-proto"), Some("http"));
    assert!(last
        .header("x-forwarded-host")
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(
        last.header("cookie"),
        Some("session=abc"),
        "the app gets its cookies"
    );
    // Paths that only look similar are the app's.
    let resp = env
        .client
        .get(env.gw.url("/api/support-chat/attachments-old/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(h(resp.headers(), "x-app"), "yes");
}

async fn missing_object_is_a_miss(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let resp = env
        .get(&format!("{PREFIX}/d1/gone1"), Some(&alice), &[])
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        br#"{"error":"not_found"}"#
    );
}

/// Storage faults: 502/504 before the first byte, an aborted connection after it.
async fn storage_faults(env: &Env) {
    let tap = env.tap.as_ref().unwrap();
    let alice = token("alice", "USER", &[]);
    let path = format!("{PREFIX}/d1/bin1");
    tap.set_mode(Mode::Unavailable).await;
    let resp = env.get(&path, Some(&alice), &[]).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(h(resp.headers(), "content-type"), "application/json");
    assert_eq!(h(resp.headers(), "cache-control"), "no-store");
    tap.set_mode(Mode::Stall).await;
    let started = std::time::Instant::now();
    let resp = env.get(&path, Some(&alice), &[]).await;
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    tap.set_mode(Mode::CutAfter(64 * 1024)).await;
    let resp = env.get(&path, Some(&alice), &[]).await;
    assert_eq!(resp.status(), 200, "headers go out before the cut");
    assert!(
        resp.bytes().await.is_err(),
        "a cut body must not look whole to the client"
    );
    tap.set_mode(Mode::Pass).await;
    let resp = env.get(&path, Some(&alice), &[]).await;
    assert_eq!(
        resp.bytes().await.unwrap(),
        env.bin,
        "healthy again after the faults"
    );
}

/// Small bodies are kept in memory (`storage.memory_cache_*`, on by default): after one read,
/// reads of the same object, whole or a range, make no storage request, and are still
/// authorized one by one; an object above the size limit reaches storage every time.
async fn small_bodies_come_from_memory(env: &Env) {
    let tap = env.tap.as_ref().unwrap();
    let alice = token("alice", "USER", &[]);
    let path = format!("{PREFIX}/d1/svg1");
    let first = env.get(&path, Some(&alice), &[]).await;
    assert_eq!(first.bytes().await.unwrap(), &b"<svg/>"[..]);
    let hits_before = memory_hits(env).await;
    tap.clear();
    // Even with storage failing, what is held in memory is served.
    tap.set_mode(Mode::Unavailable).await;
    for _ in 0..3 {
        let resp = env.get(&path, Some(&alice), &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(h(resp.headers(), "content-length"), "6");
        assert_eq!(resp.bytes().await.unwrap(), &b"<svg/>"[..]);
    }
    let part = env
        .get(&path, Some(&alice), &[("range", "bytes=1-3")])
        .await;
    assert_eq!(part.status(), 206);
    assert_eq!(h(part.headers(), "content-range"), "bytes 1-3/6");
    assert_eq!(part.bytes().await.unwrap(), &b"svg"[..]);
    // Memory changes nothing about who may read: a stranger still gets the plain miss.
    let mallory = token("mallory", "USER", &[]);
    let denied = env.get(&path, Some(&mallory), &[]).await;
    assert_eq!(denied.status(), 404);
    assert!(env.get(&path, None, &[]).await.status() == 401);
    tap.set_mode(Mode::Pass).await;
    assert!(
        tap.seen().is_empty(),
        "{} small reads went to storage",
        tap.seen().len()
    );
    assert_eq!(
        memory_hits(env).await,
        hits_before + 4,
        "3 whole reads and a range"
    );
    // A 100 KiB image is above memory_cache_object_bytes (64 KiB): each read reaches storage.
    let img = format!("{PREFIX}/d1/img1");
    for _ in 0..2 {
        let resp = env.get(&img, Some(&alice), &[]).await;
        assert_eq!(resp.bytes().await.unwrap(), env.img);
    }
    assert_eq!(tap.seen().len(), 2);
}

/// `storage_memory_cache_hits_total` from the admin listener's `/metrics`.
async fn memory_hits(env: &Env) -> u64 {
    env.gw
        .counter("storage_memory_cache_hits_total")
        .await
        .expect("no memory cache counter on /metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_postgres_and_s3() {
    let env = env_pg_s3().await;
    run_all(&env).await;
    storage_faults(&env).await;
    small_bodies_come_from_memory(&env).await;
    let log = env.gw.log();
    assert!(!log.contains(harness::HS_SECRET));
    assert!(!log.contains("shot.png"), "file names never reach the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_on_sqlite_and_fs() {
    let env = env_sqlite_fs().await;
    run_all(&env).await;
}
