//! Staged uploads through the real gateway binary: upload -> preview -> commit -> read, every
//! rejection, discard, commit repair, and cleanup. PostgreSQL + SeaweedFS (S3, signatures
//! verified) and SQLite + a local directory; each scenario is its own function.

use crate::harness;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, Storage, StorageKey};
use bytes::Bytes;
use chrono::Utc;
use harness::app::App;
use harness::seaweed::Seaweed;
use harness::{token, Gateway, PgDatabase, STAFF_PERMISSION};
use serde_json::{json, Value};

const PREFIX: &str = "/api/support-chat/attachments";
const SERVICE_TOKEN: &str = "service-token-for-tests-0123456789";
const MAX_BYTES: u64 = 2 * 1024 * 1024;

struct Env {
    gw: Gateway,
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
    db: Db,
    client: reqwest::Client,
    toml: String,
    fs_root: Option<std::path::PathBuf>,
    /// The stand-in app behind the public listener: what it receives was not the gateway's.
    app: App,
    _seaweed: Option<Seaweed>,
    _pg: Option<PgDatabase>,
}

/// Direct SQL for assertions the catalog trait does not offer (counting rows).
enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
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
read_timeout_ms = 5000

[limits]
user_per_minute = 100000
ip_per_minute = 100000
burst = 10000

[upload]
max_bytes = {MAX_BYTES}
allowed_types = ["image/png", "image/jpeg", "application/pdf", "text/plain", "video/*"]
staged_ttl_min = 60
cleanup_interval_s = 3600

[internal]
service_token = "{SERVICE_TOKEN}"

[log]
level = "info"
format = "json"
"#,
        secret = harness::HS_SECRET
    )
}

/// A real-looking PNG of `len` bytes: the signature, then a pattern.
fn png(len: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    v.extend((0..len.saturating_sub(v.len())).map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8));
    v.truncate(len);
    v
}

async fn env_pg_s3(edit: impl Fn(String) -> String) -> Env {
    let seaweed = Seaweed::start().await;
    let pg = PgDatabase::create().await;
    let storage_toml = format!(
        "provider = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
        seaweed.endpoint, seaweed.bucket, seaweed.access_key, seaweed.secret_key
    );
    let app = App::start().await;
    let toml = edit(config_toml(
        &app.addr,
        &format!("database_url = \"{}\"", pg.url),
        &storage_toml,
    ));
    let gw = Gateway::start(&toml).await;
    let (catalog, storage) = connect(&toml).await;
    let db = Db::Pg(sqlx::PgPool::connect(&pg.url).await.unwrap());
    let env = Env {
        gw,
        catalog,
        storage,
        db,
        client: reqwest::Client::new(),
        toml,
        fs_root: None,
        app,
        _seaweed: Some(seaweed),
        _pg: Some(pg),
    };
    env.seed_dialogs().await;
    env
}

async fn env_sqlite_fs(edit: impl Fn(String) -> String) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    let db_path = dir.path().join("gw.db");
    let app = App::start().await;
    let toml = edit(config_toml(
        &app.addr,
        &format!("database_url = \"sqlite://{}?mode=rwc\"", db_path.display()),
        &format!("provider = \"fs\"\nroot = \"{}\"", root.display()),
    ));
    let gw = Gateway::start_in(dir, &toml).await;
    let (catalog, storage) = connect(&toml).await;
    let db = Db::Lite(
        sqlx::SqlitePool::connect(&format!("sqlite://{}", db_path.display()))
            .await
            .unwrap(),
    );
    let env = Env {
        gw,
        catalog,
        storage,
        db,
        client: reqwest::Client::new(),
        toml,
        fs_root: Some(root),
        app,
        _seaweed: None,
        _pg: None,
    };
    env.seed_dialogs().await;
    env
}

/// The test's own catalog and storage clients, configured like the gateway.
async fn connect(toml: &str) -> (Arc<dyn Catalog>, Arc<dyn Storage>) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let mut cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    // No cache in the test's view: it must see every change at once.
    cfg.catalog.cache_ttl = Duration::ZERO;
    let catalog = catalog::connect(&cfg.catalog).await.unwrap();
    (catalog, storage::build(&cfg.storage).unwrap())
}

fn body(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes))]))
}

impl Env {
    async fn seed_dialogs(&self) {
        self.catalog.upsert_dialog("d1", "alice").await.unwrap();
        self.catalog.upsert_dialog("d2", "bob").await.unwrap();
    }

    async fn upload(
        &self,
        bearer: &str,
        name: &str,
        ty: &str,
        bytes: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.gw.url(&format!("{PREFIX}?filename={name}")))
            .bearer_auth(bearer)
            .header("content-type", ty)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    /// Upload as `user` and return the 201 JSON.
    async fn staged(&self, user: &str, bytes: Vec<u8>) -> Value {
        let resp = self
            .upload(&token(user, "USER", &[]), "shot.png", "image/png", bytes)
            .await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    async fn get(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.client
            .get(self.gw.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
    }

    async fn commit(&self, bearer: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/internal/attachments/commit", self.gw.admin))
            .json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let listed = self.storage.list(prefix).await.unwrap();
        listed.into_iter().map(|o| o.key.to_string()).collect()
    }

    async fn count_rows(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM \"ChatAttachment\"";
        match &self.db {
            Db::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Db::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    async fn row(&self, id: &str) -> Option<catalog::AttachmentRow> {
        self.catalog
            .find_many(&[id.to_string()])
            .await
            .unwrap()
            .pop()
    }

    /// A row (and optionally its object) as an earlier upload would have left it.
    async fn seed_staged(&self, id: &str, user: &str, age: chrono::Duration, object: bool) {
        let key = StorageKey::staged(user, id);
        if object {
            let bytes = png(100);
            self.storage
                .put(&key, "image/png", 100, body(bytes))
                .await
                .unwrap();
        }
        self.catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: None,
                message_id: None,
                storage_path: key.to_string(),
                mime_type: "image/png".into(),
                size_bytes: 100,
                original_name: "old.png".into(),
                created_by_user_id: user.into(),
                status: AttachmentStatus::Uploaded,
                created_at: Utc::now() - age,
            })
            .await
            .unwrap();
    }
}

fn commit_body(user: &str, dialog: &str, message: &str, ids: &[&str]) -> Value {
    json!({ "userId": user, "dialogId": dialog, "messageId": message, "attachmentIds": ids })
}

async fn run_all(env: &Env) {
    stage_preview_commit_read(env).await;
    upload_rejections(env).await;
    cut_bodies_leave_nothing(env).await;
    expect_continue(env).await;
    discard(env).await;
    commit_refusals(env).await;
    commit_repairs_an_interrupted_commit(env).await;
}

/// The brief's path: upload -> preview as the uploader -> commit -> read by the matrix.
async fn stage_preview_commit_read(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let bytes = png(300 * 1024 + 7);
    let resp = env
        .upload(&alice, "My%20screen%20shot.png", "image/png", bytes.clone())
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let staged: Value = resp.json().await.unwrap();
    let id = staged["id"].as_str().unwrap().to_owned();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(staged["status"], "UPLOADED");
    assert_eq!(staged["mimeType"], "image/png");
    assert_eq!(staged["sizeBytes"], bytes.len());
    assert_eq!(staged["originalName"], "My screen shot.png");
    assert_eq!(staged["url"], format!("{PREFIX}/staged/{id}"));
    assert_eq!(location, format!("{PREFIX}/staged/{id}"));
    assert!(staged["createdAt"].as_str().unwrap().ends_with('Z'));
    // The key is the user and the id, never the name.
    let staged_key = format!("support-chat/staged/alice/{id}");
    assert!(env
        .keys("support-chat/staged/alice/")
        .await
        .contains(&staged_key));
    let row = env.row(&id).await.unwrap();
    assert_eq!(row.storage_path, staged_key);
    assert_eq!(row.status, AttachmentStatus::Uploaded);
    assert_eq!(row.dialog_id, None);

    // Preview: the uploader and admin; nobody else.
    let preview = format!("{PREFIX}/staged/{id}");
    let resp = env.get(&preview, &alice).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.bytes().await.unwrap(), bytes);
    for (t, status) in [
        (token("bob", "USER", &[]), 404),
        (token("carol", "STAFF", &[STAFF_PERMISSION]), 404),
        (token("dave", "ADMIN", &[]), 200),
    ] {
        assert_eq!(env.get(&preview, &t).await.status(), status);
    }

    // Commit, then the same commit again: 200 both times, the same rows.
    let request = commit_body("alice", "d1", "m1", &[&id]);
    let (status, first) = env.commit(Some(SERVICE_TOKEN), request.clone()).await;
    assert_eq!(status, 200, "{first}");
    let linked = &first["attachments"][0];
    assert_eq!(linked["id"], id);
    assert_eq!(linked["status"], "LINKED");
    assert_eq!(linked["dialogId"], "d1");
    assert_eq!(linked["messageId"], "m1");
    assert_eq!(linked["url"], format!("{PREFIX}/d1/{id}"));
    assert!(linked["linkedAt"].as_str().unwrap().ends_with('Z'));
    let (status, again) = env.commit(Some(SERVICE_TOKEN), request).await;
    assert_eq!((status, &again), (200, &first));
    let row = env.row(&id).await.unwrap();
    assert_eq!(row.status, AttachmentStatus::Linked);
    assert_eq!(row.storage_path, format!("support-chat/dialogs/d1/{id}"));
    assert_eq!(row.message_id.as_deref(), Some("m1"));
    assert!(row.linked_at.is_some());
    // The object moved: at the dialog key, gone from the staged one.
    assert!(env
        .keys("support-chat/dialogs/d1/")
        .await
        .contains(&row.storage_path));
    assert!(!env
        .keys("support-chat/staged/alice/")
        .await
        .contains(&staged_key));

    // Read it by the matrix.
    let path = format!("{PREFIX}/d1/{id}");
    for (t, status) in [
        (alice.clone(), 200),
        (token("carol", "STAFF", &[STAFF_PERMISSION]), 200),
        (token("dave", "ADMIN", &[]), 200),
        (token("bob", "USER", &[]), 404),
        (token("erin", "STAFF", &[]), 404),
    ] {
        let resp = env.get(&path, &t).await;
        assert_eq!(resp.status(), status);
        if status == 200 {
            assert_eq!(resp.bytes().await.unwrap(), bytes);
        } else {
            assert_eq!(
                &resp.bytes().await.unwrap()[..],
                br#"{"error":"not_found"}"#
            );
        }
    }
    // No longer staged, not readable through another dialog.
    assert_eq!(env.get(&preview, &alice).await.status(), 404);
    assert_eq!(
        env.get(&format!("{PREFIX}/d2/{id}"), &alice).await.status(),
        404
    );
}

async fn upload_rejections(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let rows_before = env.count_rows().await;
    let keys_before = env.keys("support-chat/staged/").await;
    let url = env.gw.url(&format!("{PREFIX}?filename=a.png"));
    let send = |req: reqwest::RequestBuilder| async move {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: Value = resp.json().await.unwrap();
        (status, body["error"].as_str().unwrap().to_owned())
    };
    let ok = || {
        env.client
            .post(&url)
            .bearer_auth(&alice)
            .header("content-type", "image/png")
    };
    let cases = vec![
        (
            env.client
                .post(&url)
                .header("content-type", "image/png")
                .body(png(10)),
            401,
            "unauthorized",
        ),
        (
            ok().body(png((MAX_BYTES + 1) as usize)),
            413,
            "payload_too_large",
        ),
        (
            env.client
                .post(&url)
                .bearer_auth(&alice)
                .header("content-type", "image/gif")
                .body(b"GIF89a....".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            env.client
                .post(&url)
                .bearer_auth(&alice)
                .header("content-type", "application/zip")
                .body(b"PK\x03\x04zz".to_vec()),
            415,
            "unsupported_media_type",
        ),
        // A lie: a script declared as PNG; an executable declared as PDF.
        (
            ok().body(b"<html><script>alert(1)</script>".to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            env.client
                .post(&url)
                .bearer_auth(&alice)
                .header("content-type", "application/pdf")
                .body(b"MZ\x90\0\x03\0\0\0".to_vec()),
            415,
            "unsupported_media_type",
        ),
        // Never decompressed, so never accepted encoded.
        (
            ok().header("content-encoding", "gzip").body(png(50)),
            415,
            "unsupported_media_type",
        ),
        (
            env.client
                .post(env.gw.url(PREFIX))
                .bearer_auth(&alice)
                .header("content-type", "image/png")
                .body(png(50)),
            400,
            "bad_request",
        ),
        // No body at all: reqwest sends no Content-Length, so the length is missing.
        (ok().body(Vec::new()), 411, "length_required"),
        (ok().header("content-length", "0"), 400, "bad_request"),
        // A streamed body without a length: chunked, refused with 411.
        (
            ok().body(reqwest::Body::wrap_stream(futures_util::stream::iter([
                Ok::<_, std::io::Error>(Bytes::from(png(50))),
            ]))),
            411,
            "length_required",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        assert_eq!(send(req).await, (status, code.to_owned()), "case {i}");
    }
    // text/plain has no signature: anything goes; video/* matches by pattern and is sniffed.
    let resp = env
        .upload(
            &alice,
            "notes.txt",
            "text/plain; charset=utf-8",
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["mimeType"], "text/plain");
    let resp = env.upload(&alice, "clip.mp4", "video/mp4", png(100)).await;
    assert_eq!(resp.status(), 415);
    // Only the accepted upload left anything behind.
    assert_eq!(env.count_rows().await, rows_before + 1);
    assert_eq!(
        env.keys("support-chat/staged/").await.len(),
        keys_before.len() + 1
    );
    // Over the limit is refused from the header alone: a raw request that never sends its
    // body still gets 413 at once.
    let (status, _) = raw(
        env,
        &format!(
            "POST {PREFIX}?filename=big.png HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            MAX_BYTES * 100
        ),
        &[],
    )
    .await;
    assert_eq!(status, 413);
}

/// A raw HTTP/1.1 exchange: `head`, then `body` (if any), then read what comes back until the
/// server closes or 5 s pass. The status of the LAST response, and the whole text.
async fn raw(env: &Env, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = env.gw.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    if !body.is_empty() {
        s.write_all(body).await.unwrap();
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .rsplit("HTTP/1.1 ")
        .next()
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A body that ends before its length (client gone) leaves no row and no object.
async fn cut_bodies_leave_nothing(env: &Env) {
    use tokio::io::AsyncWriteExt;
    let alice = token("alice", "USER", &[]);
    let rows_before = env.count_rows().await;
    let keys_before = env.keys("support-chat/staged/").await;
    let addr = env.gw.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST {PREFIX}?filename=cut.png HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // Past the type check, so the storage write is under way when the client goes.
    s.write_all(&png(300_000)).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    // The writer finishes its cleanup on its own; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rows, keys) = (
            env.count_rows().await,
            env.keys("support-chat/staged/").await,
        );
        if rows == rows_before && keys == keys_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a cut upload left {rows} rows, {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(root) = &env.fs_root {
        // Not even a temporary file survives (its removal may trail the row check a little).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leftovers = temp_files(root);
            if leftovers.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "leftover temp files {leftovers:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Hidden (temporary) files anywhere under `root`.
fn temp_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().starts_with('.') {
                found.push(p);
            }
        }
    }
    found
}

/// `Expect: 100-continue`: the interim answer only when the head passed every check.
async fn expect_continue(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let bytes = png(2000);
    let head = |len: usize, ty: &str| {
        format!(
            "POST {PREFIX}?filename=e.png HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: {ty}\r\nContent-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
    };
    // Refused: a final status and no 100.
    for (len, ty, status) in [
        ((MAX_BYTES + 1) as usize, "image/png", 413),
        (10, "image/gif", 415),
    ] {
        let (got, text) = raw(env, &head(len, ty), &[]).await;
        assert_eq!(got, status, "{text}");
        assert!(!text.contains("100 Continue"), "{text}");
    }
    // Accepted: 100 first, then (after the body) 201.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = env.gw.base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head(bytes.len(), "image/png").as_bytes())
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut interim))
        .await
        .expect("a 100 Continue before the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&interim).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(&bytes).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).contains("HTTP/1.1 201"));
}

async fn discard(env: &Env) {
    let staged = env.staged("alice", png(1000)).await;
    let id = staged["id"].as_str().unwrap();
    let path = format!("{PREFIX}/staged/{id}");
    let delete = |who: String| {
        let url = env.gw.url(&path);
        async move {
            env.client
                .delete(url)
                .bearer_auth(who)
                .send()
                .await
                .unwrap()
        }
    };
    // Only the uploader: anyone else gets exactly a miss.
    for who in [token("bob", "USER", &[]), token("dave", "ADMIN", &[])] {
        let resp = delete(who).await;
        assert_eq!(resp.status(), 404);
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            br#"{"error":"not_found"}"#
        );
    }
    assert!(env.row(id).await.is_some());
    let resp = delete(token("alice", "USER", &[])).await;
    assert_eq!(resp.status(), 204);
    assert!(env.row(id).await.is_none());
    assert!(!env
        .keys("support-chat/staged/alice/")
        .await
        .contains(&format!("support-chat/staged/alice/{id}")));
    assert_eq!(delete(token("alice", "USER", &[])).await.status(), 404);
    assert_eq!(
        env.get(&path, &token("alice", "USER", &[])).await.status(),
        404
    );
    // Without a token: 401.
    let resp = env.client.delete(env.gw.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

async fn commit_refusals(env: &Env) {
    let mine = env.staged("alice", png(500)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = env.staged("bob", png(500)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let good = commit_body("alice", "d1", "m7", &[&mine]);
    for bearer in [None, Some("wrong-token"), Some(&SERVICE_TOKEN[1..])] {
        let (status, body) = env.commit(bearer, good.clone()).await;
        assert_eq!((status, body), (401, json!({"error": "unauthorized"})));
    }
    let (status, _) = env
        .commit(Some(SERVICE_TOKEN), json!({ "userId": "alice" }))
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .commit(
            Some(SERVICE_TOKEN),
            commit_body("alice", "d/../1", "m7", &[&mine]),
        )
        .await;
    assert_eq!(status, 400);
    // Someone else's upload or an unknown id: 404 naming them, and nothing changes.
    let (status, body) = env
        .commit(
            Some(SERVICE_TOKEN),
            commit_body("alice", "d1", "m7", &[&mine, &theirs, "nope"]),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["ids"], json!([theirs, "nope"]));
    for id in [&mine, &theirs] {
        assert_eq!(
            env.row(id).await.unwrap().status,
            AttachmentStatus::Uploaded
        );
    }
    assert!(env
        .keys("support-chat/dialogs/d1/")
        .await
        .iter()
        .all(|k| !k.ends_with(&mine)));
    // Linked to another message: 409.
    let (status, _) = env.commit(Some(SERVICE_TOKEN), good.clone()).await;
    assert_eq!(status, 200);
    let (status, body) = env
        .commit(
            Some(SERVICE_TOKEN),
            commit_body("alice", "d1", "m8", &[&mine]),
        )
        .await;
    assert_eq!((status, body["ids"].clone()), (409, json!([mine])));
    // The commit route lives on the admin listener only: on the public one it is just another
    // path of the app's, which the (live) stand-in app answers; nothing is linked.
    let fresh = env.staged("alice", png(300)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = env
        .client
        .post(env.gw.url("/internal/attachments/commit"))
        .bearer_auth(SERVICE_TOKEN)
        .json(&commit_body("alice", "d1", "m9", &[&fresh]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-app"], "yes", "answered by the app");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["app"], true, "{answer}");
    let forwarded = env.app.seen();
    assert!(
        forwarded
            .iter()
            .any(|s| s.method == "POST" && s.target == "/internal/attachments/commit"),
        "the app received it: {forwarded:?}"
    );
    assert_eq!(
        env.row(&fresh).await.unwrap().status,
        AttachmentStatus::Uploaded
    );
    let resp = env
        .client
        .get(format!("{}/internal/attachments/commit", env.gw.admin))
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

/// A commit that copied but crashed before its transaction: the next commit finishes it.
async fn commit_repairs_an_interrupted_commit(env: &Env) {
    let id = env.staged("alice", png(700)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let staged = StorageKey::staged("alice", &id);
    let target = StorageKey::dialog("d1", &id);
    // What the crashed commit had done: recorded its target, copied the object.
    env.catalog
        .mark_commit_target("alice", "d1", std::slice::from_ref(&id))
        .await
        .unwrap();
    env.storage.copy(&staged, &target).await.unwrap();
    let (status, body) = env
        .commit(
            Some(SERVICE_TOKEN),
            commit_body("alice", "d1", "m9", &[&id]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let row = env.row(&id).await.unwrap();
    assert_eq!(
        (row.status, row.storage_path.as_str()),
        (AttachmentStatus::Linked, target.as_str())
    );
    assert!(!env
        .keys("support-chat/staged/alice/")
        .await
        .contains(&staged.to_string()));
    let resp = env
        .get(&format!("{PREFIX}/d1/{id}"), &token("alice", "USER", &[]))
        .await;
    assert_eq!(resp.bytes().await.unwrap(), png(700));
}

/// Stale rows (with their objects and an unfinished commit's copy) and orphans go; fresh
/// staged uploads, their objects and linked attachments stay.
async fn seed_cleanup_case(env: &Env) {
    let hours = chrono::Duration::hours;
    env.seed_staged("stale1", "alice", hours(2), true).await;
    env.seed_staged("stale2", "bob", hours(3), false).await;
    env.seed_staged("stale3", "alice", hours(2), true).await;
    env.catalog
        .mark_commit_target("alice", "d1", &["stale3".into()])
        .await
        .unwrap();
    env.storage
        .copy(
            &StorageKey::staged("alice", "stale3"),
            &StorageKey::dialog("d1", "stale3"),
        )
        .await
        .unwrap();
    env.seed_staged("fresh1", "alice", chrono::Duration::minutes(1), true)
        .await;
    for key in [
        "support-chat/staged/carol/orphan1",
        "support-chat/staged/alice/fresh_orphan",
    ] {
        let key = StorageKey::parse(key).unwrap();
        env.storage
            .put(&key, "image/png", 100, body(png(100)))
            .await
            .unwrap();
    }
}

async fn assert_cleaned(env: &Env, fresh_orphan_kept: bool) {
    for gone in ["stale1", "stale2", "stale3"] {
        assert!(env.row(gone).await.is_none(), "{gone}");
    }
    let staged = env.keys("support-chat/staged/").await;
    for gone in [
        "support-chat/staged/alice/stale1",
        "support-chat/staged/alice/stale3",
        "support-chat/staged/carol/orphan1",
    ] {
        assert!(!staged.contains(&gone.to_string()), "{gone} in {staged:?}");
    }
    assert!(!env
        .keys("support-chat/dialogs/d1/")
        .await
        .contains(&"support-chat/dialogs/d1/stale3".to_string()));
    assert!(staged.contains(&"support-chat/staged/alice/fresh1".to_string()));
    assert_eq!(
        staged.contains(&"support-chat/staged/alice/fresh_orphan".to_string()),
        fresh_orphan_kept
    );
    assert_eq!(
        env.row("fresh1").await.unwrap().status,
        AttachmentStatus::Uploaded
    );
    // Linked attachments are never touched.
    let linked = env.keys("support-chat/dialogs/").await;
    assert!(!linked.is_empty());
    for key in linked {
        let id = key.rsplit('/').next().unwrap();
        if id != "stale3" {
            assert_eq!(env.row(id).await.unwrap().status, AttachmentStatus::Linked);
        }
    }
}

/// Back-date every object under the staged prefix except `keep` (fs only): S3 cannot set a
/// modification time, so there the pass runs with an injected clock instead.
fn backdate_staged(root: &std::path::Path, keep: &[&str]) {
    let old = SystemTime::now() - Duration::from_secs(3 * 3600);
    let mut stack = vec![root.join("support-chat/staged")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !keep.iter().any(|k| p.ends_with(k)) {
                let f = std::fs::File::options().write(true).open(&p).unwrap();
                f.set_modified(old).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_on_postgres_and_s3() {
    let env = env_pg_s3(|t| t).await;
    run_all(&env).await;
    // Cleanup with an injected clock, 90 minutes ahead, against the same PostgreSQL and S3:
    // every object is then older than the TTL, and fresh1's row (created 80 minutes "from
    // now") is not.
    seed_cleanup_case(&env).await;
    env.seed_staged("fresh1", "alice", chrono::Duration::minutes(-80), true)
        .await;
    let now = Utc::now() + chrono::Duration::minutes(90);
    let report = attachment_gateway::cleanup::run_pass(
        env.catalog.as_ref(),
        env.storage.as_ref(),
        Duration::from_secs(3600),
        now,
    )
    .await
    .unwrap()
    .unwrap();
    // The three stale rows, and every other staged row of `run_all` (all old at that clock).
    assert!(report.expired_rows >= 3, "{report:?}");
    assert_cleaned(&env, false).await;
    // While one instance holds the lock, another pass is skipped.
    let lock = env.catalog.try_cleanup_lock().await.unwrap().unwrap();
    let (other, _) = connect(&env.toml).await;
    assert!(other.try_cleanup_lock().await.unwrap().is_none());
    lock.release().await;
    assert!(other.try_cleanup_lock().await.unwrap().is_some());
    let log = env.gw.log();
    assert!(!log.contains(SERVICE_TOKEN));
    assert!(
        !log.contains("screen shot"),
        "file names never reach the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_on_sqlite_and_fs() {
    let env = env_sqlite_fs(|t| t).await;
    run_all(&env).await;
    // `cleanup --once`, the real command, on back-dated files.
    seed_cleanup_case(&env).await;
    backdate_staged(env.fs_root.as_ref().unwrap(), &["fresh1", "fresh_orphan"]);
    let out = harness::command(
        env.gw.dir.path(),
        &["cleanup", "--once", "--config"],
        &env.gw.config_path,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["expired_rows"], 3, "{report}");
    assert_eq!(report["orphans"], 1, "{report}");
    assert_cleaned(&env, true).await;
    // `cleanup` without `--once` is a usage error.
    let out = harness::command(
        env.gw.dir.path(),
        &["cleanup", "--config"],
        &env.gw.config_path,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
}

/// The background service runs passes on its own, every `upload.cleanup_interval_s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_runs_in_the_background() {
    let env =
        env_sqlite_fs(|t| t.replace("cleanup_interval_s = 3600", "cleanup_interval_s = 1")).await;
    env.seed_staged("stale_bg", "alice", chrono::Duration::hours(2), true)
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while env.row("stale_bg").await.is_some() {
        assert!(Instant::now() < deadline, "the background pass never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(env.keys("support-chat/staged/alice/").await.is_empty());
    let metrics = reqwest::get(format!("{}/metrics", env.gw.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("cleanup_deleted_total 1"), "{metrics}");
}

/// Uploads count against the per-user limit like every other route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_rate_limited() {
    let env = env_sqlite_fs(|t| {
        t.replace("user_per_minute = 100000", "user_per_minute = 1")
            .replace("burst = 10000", "burst = 1")
    })
    .await;
    let alice = token("alice", "USER", &[]);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = env.upload(&alice, "a.png", "image/png", png(100)).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses[0], 201);
    assert!(statuses[1..].iter().all(|s| *s == 429), "{statuses:?}");
    // A refused upload stored nothing.
    assert_eq!(env.count_rows().await, 1);
}

/// The measurement of the closing note: 100 MiB through the gateway vs. a direct PUT to the
/// same SeaweedFS, and the gateway's peak RSS. Run with
/// `cargo test --release --test integration uploads:: -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run explicitly"]
async fn measure_100mib_upload() {
    const SIZE: usize = 100 * 1024 * 1024;
    let env =
        env_pg_s3(|t| t.replace(&format!("max_bytes = {MAX_BYTES}"), "max_bytes = 209715200"))
            .await;
    let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2".to_vec();
    bytes.resize(SIZE, 0x5a);
    for (i, b) in bytes.iter_mut().enumerate().skip(64) {
        *b = (i as u8).wrapping_mul(31) ^ (i >> 12) as u8;
    }
    let (_, hwm_before) = env.gw.memory_kib();
    let alice = token("alice", "USER", &[]);
    let mut gateway_mbps = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let resp = env
            .upload(&alice, "big.mp4", "video/mp4", bytes.clone())
            .await;
        let took = started.elapsed();
        assert_eq!(resp.status(), 201);
        gateway_mbps.push(SIZE as f64 / 1e6 / took.as_secs_f64());
    }
    let (_, hwm_after) = env.gw.memory_kib();
    let mut direct_mbps = Vec::new();
    for i in 0..3 {
        let key = StorageKey::parse(&format!("bench/direct{i}")).unwrap();
        let chunks: Vec<Result<Bytes, storage::StorageError>> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let started = Instant::now();
        env.storage
            .put(
                &key,
                "video/mp4",
                SIZE as u64,
                Box::pin(futures_util::stream::iter(chunks)),
            )
            .await
            .unwrap();
        direct_mbps.push(SIZE as f64 / 1e6 / started.elapsed().as_secs_f64());
    }
    println!(
        "100 MiB upload: gateway {:.1?} MB/s, direct PUT {:.1?} MB/s; gateway VmHWM {} KiB before, {} KiB after (+{} KiB)",
        gateway_mbps,
        direct_mbps,
        hwm_before,
        hwm_after,
        hwm_after - hwm_before
    );
    // Streaming, not buffering: the peak grows by far less than the file.
    assert!(
        (hwm_after - hwm_before) < 32 * 1024,
        "peak RSS grew by {} KiB",
        hwm_after - hwm_before
    );
}
