//! Offload of large full reads through the real gateway binary: PostgreSQL + SeaweedFS (S3
//! presigned URLs, signatures verified) and SQLite + the Supabase stand-in (its signed URLs).
//! The `302` must lead to the right bytes with the right `Content-Type`/`Content-Disposition`,
//! and nobody who would not get the bytes through the gateway may get a URL.

use crate::harness;
use crate::harness::supabase_stub;

use std::sync::Arc;
use std::time::Duration;

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, StorageKey};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use harness::app::App;
use harness::seaweed::Seaweed;
use harness::{token, Gateway, PgDatabase};
use reqwest::StatusCode;
use supabase_stub::SupabaseStub;

const PREFIX: &str = "/api/support-chat/attachments";
const OFFLOAD_OVER: u64 = 1024 * 1024;
const MAX_OBJECT: u64 = 3 * 1024 * 1024;
const TTL_S: u64 = 2;

#[derive(Clone, Copy, PartialEq)]
enum Provider {
    S3,
    Supabase,
}

struct Env {
    gw: Gateway,
    provider: Provider,
    /// Never follows redirects: the test looks at the `302` itself.
    client: reqwest::Client,
    pdf: Vec<u8>,
    huge: Vec<u8>,
    _app: App,
    _seaweed: Option<Seaweed>,
    _stub: Option<SupabaseStub>,
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

[catalog]
{catalog}
cache_ttl_s = 5

[storage]
{storage}
connect_timeout_ms = 1000
read_timeout_ms = 3000
signed_url_ttl_s = {TTL_S}
offload_over_bytes = {OFFLOAD_OVER}

[http]
max_object_bytes = {MAX_OBJECT}

[log]
level = "info"
format = "json"
"#,
        secret = harness::HS_SECRET
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

fn body(bytes: &[u8]) -> ByteStream {
    let chunks: Vec<Result<Bytes, storage::StorageError>> = bytes
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

/// alice owns d1 (a small image, a PDF and a video above the offload threshold, the video
/// also above `max_object_bytes`); bob owns d2.
async fn seed(toml: &str, pdf: &[u8], huge: &[u8]) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    catalog.upsert_dialog("d2", "bob").await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
    let small = pattern(100 * 1024, 9);
    let rows: [(&str, &str, &str, &str, &[u8]); 4] = [
        ("img1", "d1", "image/png", "shot.png", &small),
        ("pdf1", "d1", "application/pdf", "report ü.pdf", pdf),
        ("vid1", "d1", "video/mp4", "film.mp4", huge),
        ("bob1", "d2", "application/pdf", "bob.pdf", pdf),
    ];
    for (id, dialog, mime, name, bytes) in rows {
        let key = StorageKey::dialog(dialog, id);
        let size = bytes.len() as u64;
        storage.put(&key, mime, size, body(bytes)).await.unwrap();
        catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: Some(dialog.into()),
                message_id: Some("m1".into()),
                storage_path: key.as_str().into(),
                mime_type: mime.into(),
                size_bytes: size,
                original_name: name.into(),
                created_by_user_id: "alice".into(),
                status: AttachmentStatus::Linked,
                created_at: at,
            })
            .await
            .unwrap();
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn env_pg_s3() -> Env {
    let seaweed = Seaweed::start().await;
    let pg = PgDatabase::create().await;
    let app = App::start().await;
    let storage = format!(
        "provider = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
        seaweed.endpoint, seaweed.bucket, seaweed.access_key, seaweed.secret_key
    );
    let toml = config_toml(
        &app.addr,
        &format!("database_url = \"{}\"", pg.url),
        &storage,
    );
    let (pdf, huge) = (
        pattern(2 * 1024 * 1024 + 3, 1),
        pattern(MAX_OBJECT as usize + 5, 2),
    );
    seed(&toml, &pdf, &huge).await;
    Env {
        gw: Gateway::start(&toml).await,
        provider: Provider::S3,
        client: no_redirects(),
        pdf,
        huge,
        _app: app,
        _seaweed: Some(seaweed),
        _stub: None,
        _pg: Some(pg),
    }
}

async fn env_sqlite_supabase() -> Env {
    let stub = SupabaseStub::start().await;
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = format!(
        "provider = \"supabase\"\nurl = \"{}\"\nbucket = \"{}\"\nservice_key = \"{}\"",
        stub.url, stub.bucket, stub.service_key
    );
    let catalog = format!(
        "database_url = \"sqlite://{}?mode=rwc\"",
        dir.path().join("gw.db").display()
    );
    let toml = config_toml(&app.addr, &catalog, &storage);
    let (pdf, huge) = (
        pattern(2 * 1024 * 1024 + 3, 3),
        pattern(MAX_OBJECT as usize + 5, 4),
    );
    seed(&toml, &pdf, &huge).await;
    Env {
        gw: Gateway::start_in(dir, &toml).await,
        provider: Provider::Supabase,
        client: no_redirects(),
        pdf,
        huge,
        _app: app,
        _seaweed: None,
        _stub: Some(stub),
        _pg: None,
    }
}

impl Env {
    async fn get(
        &self,
        path: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.get(self.gw.url(&format!("{PREFIX}/{path}")));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// The `Location` of an offloaded read, after checking the `302` itself.
    async fn offloaded(&self, path: &str) -> String {
        let resp = self
            .get(path, Some(&token("alice", "USER", &[])), &[])
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::FOUND,
            "{path}\n{}",
            self.gw.log()
        );
        let h = resp.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["content-length"], "0");
        assert!(h.get("etag").is_none() && h.get("set-cookie").is_none());
        h["location"].to_str().unwrap().to_string()
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

async fn offloaded_read_downloads_the_object(env: &Env) {
    let location = env.offloaded("d1/pdf1").await;
    // The URL needs no credentials of ours: a plain client without any header reads it.
    let resp = reqwest::get(&location).await.unwrap();
    assert_eq!(resp.status(), 200, "{location}");
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/pdf")
    );
    let disposition = header(&resp, "content-disposition");
    match env.provider {
        // The same inline disposition the gateway would send (signed in, so unchangeable).
        Provider::S3 => assert_eq!(
            disposition.as_deref(),
            Some("inline; filename=\"report _.pdf\"; filename*=UTF-8''report%20%C3%BC.pdf")
        ),
        // Supabase has no inline override; without `download` it sends none (inline).
        Provider::Supabase => assert_eq!(disposition, None),
    }
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.as_ref() == env.pdf.as_slice(), "offloaded body");

    // `?download=1` asks for an attachment, and the signed URL says so.
    let location = env.offloaded("d1/pdf1?download=1").await;
    let resp = reqwest::get(&location).await.unwrap();
    assert_eq!(resp.status(), 200);
    let disposition = header(&resp, "content-disposition").unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("report%20%C3%BC.pdf"), "{disposition}");

    // Above max_object_bytes a full read is offloaded rather than refused.
    let location = env.offloaded("d1/vid1").await;
    let resp = reqwest::get(&location).await.unwrap();
    assert_eq!(header(&resp, "content-type").as_deref(), Some("video/mp4"));
    assert!(resp.bytes().await.unwrap().as_ref() == env.huge.as_slice());
}

async fn small_reads_and_ranges_stay_proxied(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let resp = env.get("d1/img1", Some(&alice), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some("image/png"));
    assert_eq!(resp.bytes().await.unwrap().len(), 100 * 1024);

    let resp = env
        .get("d1/pdf1", Some(&alice), &[("range", "bytes=10-19")])
        .await;
    assert_eq!(resp.status(), 206);
    let etag = header(&resp, "etag").unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &env.pdf[10..20]);

    // Conditionals still come first: a fresh copy is 304, not a redirect.
    let resp = env
        .get("d1/pdf1", Some(&alice), &[("if-none-match", &etag)])
        .await;
    assert_eq!(resp.status(), 304);
    assert!(resp.headers().get("location").is_none());
}

async fn nobody_else_gets_a_url(env: &Env) {
    let bob = token("bob", "USER", &[]);
    for (path, bearer, status) in [
        ("d1/pdf1", Some(bob.as_str()), 404),
        ("d1/vid1", Some(bob.as_str()), 404),
        ("d1/pdf1", None, 401),
        ("d1/none", Some(bob.as_str()), 404),
        ("d2/pdf1", Some(bob.as_str()), 404),
    ] {
        let resp = env.get(path, bearer, &[]).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        assert!(resp.headers().get("location").is_none(), "{path}");
        assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
        let text = resp.text().await.unwrap();
        assert!(!text.contains("http"), "{path}: {text}");
    }
    // The owner of d2 is offloaded for their own file.
    let resp = env.get("d2/bob1", Some(&bob), &[]).await;
    assert_eq!(resp.status(), 302);
}

async fn urls_live_the_configured_ttl(env: &Env) {
    let location = env.offloaded("d1/pdf1").await;
    if env.provider == Provider::S3 {
        assert!(
            location.contains(&format!("X-Amz-Expires={TTL_S}")),
            "{location}"
        );
    }
    assert_eq!(reqwest::get(&location).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(TTL_S * 1000 + 1100)).await;
    let status = reqwest::get(&location).await.unwrap().status();
    // S3 answers an expired presigned URL 403; Supabase 400 (invalid JWT).
    assert!(matches!(status.as_u16(), 400 | 403), "{status}");
    // A new request gets a new, working URL.
    let again = env.offloaded("d1/pdf1").await;
    assert_eq!(reqwest::get(&again).await.unwrap().status(), 200);
}

async fn run_all(env: &Env) {
    offloaded_read_downloads_the_object(env).await;
    small_reads_and_ranges_stay_proxied(env).await;
    nobody_else_gets_a_url(env).await;
    urls_live_the_configured_ttl(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_with_s3() {
    let env = env_pg_s3().await;
    run_all(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_with_supabase() {
    let env = env_sqlite_supabase().await;
    run_all(&env).await;
}
