//! Previews (`?variant=thumb|preview`, SPEC §12) through the real gateway binary, on
//! PostgreSQL + SeaweedFS (S3, signatures verified) and on SQLite + a local directory: the
//! format matrix, orientation and metadata of a phone photo, transparency, an animated GIF,
//! decompression bombs, the authorization matrix and its cloaking, `304`, `Range`, a staged
//! upload's preview seen only by its uploader, previews gone after discard, single flight,
//! a full pool, and the backfill command.

use crate::harness;

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use attachment_gateway::attachment::{Format, Variant};
use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, ByteStream, Storage, StorageKey};
use bytes::Bytes;
use chrono::Utc;
use harness::seaweed::Seaweed;
use harness::{token, Gateway, PgDatabase, STAFF_PERMISSION};
use image::{ImageFormat, Rgba, RgbaImage};
use serde_json::Value;

const PREFIX: &str = "/api/support-chat/attachments";
const SERVICE_TOKEN: &str = "service-token-for-tests-0123456789";
const PHONE_JPEG: &[u8] = include_bytes!("../data/previews/phone-orientation-6.jpg");
const WEBP_ACCEPT: &str = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";

struct Env {
    gw: Gateway,
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
    client: reqwest::Client,
    toml: String,
    _seaweed: Option<Seaweed>,
    _pg: Option<PgDatabase>,
}

fn config_toml(catalog: &str, storage: &str, preview: &str) -> String {
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
max_bytes = 8388608
allowed_types = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"]

[preview]
{preview}

[internal]
service_token = "{SERVICE_TOKEN}"
"#,
        secret = harness::HS_SECRET
    )
}

async fn env_pg_s3(preview: &str) -> Env {
    let seaweed = Seaweed::start().await;
    let pg = PgDatabase::create().await;
    let storage_toml = format!(
        "provider = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
        seaweed.endpoint, seaweed.bucket, seaweed.access_key, seaweed.secret_key
    );
    let toml = config_toml(
        &format!("database_url = \"{}\"", pg.url),
        &storage_toml,
        preview,
    );
    let gw = Gateway::start(&toml).await;
    Env::new(gw, toml, Some(seaweed), Some(pg)).await
}

async fn env_sqlite_fs(preview: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    let db_path = dir.path().join("gw.db");
    let toml = config_toml(
        &format!("database_url = \"sqlite://{}?mode=rwc\"", db_path.display()),
        &format!("provider = \"fs\"\nroot = \"{}\"", root.display()),
        preview,
    );
    let gw = Gateway::start_in(dir, &toml).await;
    Env::new(gw, toml, None, None).await
}

fn body(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes))]))
}

impl Env {
    async fn new(gw: Gateway, toml: String, sw: Option<Seaweed>, pg: Option<PgDatabase>) -> Env {
        let text = toml
            .replace("{listen}", "127.0.0.1:1")
            .replace("{admin}", "127.0.0.1:2");
        let mut cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
        cfg.catalog.cache_ttl = Duration::ZERO;
        let catalog = catalog::connect(&cfg.catalog).await.unwrap();
        let storage = storage::build(&cfg.storage).unwrap();
        catalog.upsert_dialog("d1", "alice").await.unwrap();
        Env {
            gw,
            catalog,
            storage,
            client: reqwest::Client::new(),
            toml,
            _seaweed: sw,
            _pg: pg,
        }
    }

    /// A linked attachment of dialog `d1` (owned by alice), as the app's commit leaves it.
    async fn seed(&self, id: &str, mime: &str, bytes: Vec<u8>) {
        let key = StorageKey::dialog("d1", id);
        let len = bytes.len() as u64;
        self.storage
            .put(&key, mime, len, body(bytes))
            .await
            .unwrap();
        self.catalog
            .upsert_attachment(&NewAttachment {
                id: id.into(),
                dialog_id: Some("d1".into()),
                message_id: Some("m1".into()),
                storage_path: key.to_string(),
                mime_type: mime.into(),
                size_bytes: len,
                original_name: format!("{id}.img"),
                created_by_user_id: "alice".into(),
                status: AttachmentStatus::Linked,
                created_at: Utc::now(),
            })
            .await
            .unwrap();
    }

    async fn get(&self, path: &str, bearer: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(self.gw.url(path)).bearer_auth(bearer);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn thumb(&self, id: &str, accept: &str) -> reqwest::Response {
        let alice = token("alice", "USER", &[]);
        let path = format!("{PREFIX}/d1/{id}?variant=thumb");
        self.get(&path, &alice, &[("accept", accept)]).await
    }

    async fn metric(&self, name_and_labels: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.gw.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

fn encode(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// An opaque picture with detail (so encoders have something to keep).
fn picture(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, y| {
        Rgba([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
            255,
        ])
    }))
}

fn with_alpha(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgba8(RgbaImage::from_fn(w, h, |x, _| {
        Rgba([200, 30, 30, if x < w / 2 { 0 } else { 255 }])
    }))
}

/// A three-frame animated GIF: red, then green, then blue.
fn animated_gif(w: u32, h: u32) -> Vec<u8> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.set_repeat(Repeat::Infinite).unwrap();
        for color in [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]] {
            let frame = image::Frame::new(RgbaImage::from_pixel(w, h, Rgba(color)));
            enc.encode_frame(frame).unwrap();
        }
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `w` x `h` pixels, with a token of compressed data: it would
/// need gigabytes to decode.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut typed = kind.to_vec();
        typed.extend_from_slice(data);
        png.extend_from_slice(&typed);
        png.extend(crc32(&typed).to_be_bytes());
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(b"IEND", &[]);
    png
}

/// A GIF whose screen and only frame declare `w` x `h`.
fn gif_bomb(w: u16, h: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend(w.to_le_bytes());
    gif.extend(h.to_le_bytes());
    gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]); // a 2-colour global table
    gif.push(0x2c);
    gif.extend([0, 0, 0, 0]);
    gif.extend(w.to_le_bytes());
    gif.extend(h.to_le_bytes());
    gif.extend([0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
    gif
}

async fn decoded(resp: reqwest::Response) -> (String, image::DynamicImage, Vec<u8>) {
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    let ty = resp.headers()["content-type"].to_str().unwrap().to_owned();
    let bytes = resp.bytes().await.unwrap().to_vec();
    let img = image::load_from_memory(&bytes).unwrap();
    (ty, img, bytes)
}

async fn run_all(env: &Env) {
    formats_and_headers(env).await;
    phone_photo_upright_and_clean(env).await;
    transparency_and_animation(env).await;
    bombs_and_liars_have_no_preview(env).await;
    authorization_and_cloaking(env).await;
    conditionals_and_ranges(env).await;
    staged_previews_follow_their_upload(env).await;
    single_flight(env).await;
}

async fn formats_and_headers(env: &Env) {
    env.seed(
        "p1",
        "image/png",
        encode(&picture(1200, 800), ImageFormat::Png),
    )
    .await;
    let (ty, img, _) = decoded(env.thumb("p1", WEBP_ACCEPT).await).await;
    assert_eq!(ty, "image/webp");
    assert_eq!(
        (img.width(), img.height()),
        (400, 267),
        "longest side 400, aspect kept"
    );
    let resp = env.thumb("p1", "image/jpeg,image/png").await;
    let h = resp.headers().clone();
    assert_eq!(h["vary"], "Accept, Authorization, Cookie");
    assert!(h["cache-control"].to_str().unwrap().starts_with("private"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let (ty, img, bytes) = decoded(resp).await;
    assert_eq!(ty, "image/jpeg");
    assert_eq!(h["content-length"], bytes.len().to_string().as_str());
    assert_eq!((img.width(), img.height()), (400, 267));
    // Each variant and format has its own strong ETag; the original keeps its own.
    let etag = |r: &reqwest::Response| r.headers()["etag"].to_str().unwrap().to_owned();
    let webp = etag(&env.thumb("p1", WEBP_ACCEPT).await);
    let jpeg = h["etag"].to_str().unwrap().to_owned();
    let alice = token("alice", "USER", &[]);
    let preview = env
        .get(
            &format!("{PREFIX}/d1/p1?variant=preview"),
            &alice,
            &[("accept", WEBP_ACCEPT)],
        )
        .await;
    let original = env.get(&format!("{PREFIX}/d1/p1"), &alice, &[]).await;
    assert_eq!(original.headers()["vary"], "Authorization, Cookie");
    let all = [webp.clone(), jpeg, etag(&preview), etag(&original)];
    assert!(all.iter().all(|e| e.starts_with('"')), "strong: {all:?}");
    for (i, a) in all.iter().enumerate() {
        assert!(all[i + 1..].iter().all(|b| b != a), "distinct: {all:?}");
    }
    // Never upscaled: `preview` of a 1200x800 source is the source's size.
    let (_, img, _) = decoded(preview).await;
    assert_eq!((img.width(), img.height()), (1200, 800));
    // A small source's thumb is its own size too.
    env.seed(
        "p2",
        "image/png",
        encode(&picture(300, 200), ImageFormat::Png),
    )
    .await;
    let (_, img, _) = decoded(env.thumb("p2", WEBP_ACCEPT).await).await;
    assert_eq!((img.width(), img.height()), (300, 200));
    // Any other variant is a 400; a type without previews is an authorized `no_preview`.
    let resp = env
        .get(&format!("{PREFIX}/d1/p1?variant=huge"), &alice, &[])
        .await;
    assert_eq!(resp.status(), 400);
    env.seed("pdf1", "application/pdf", b"%PDF-1.4\n%%EOF\n".to_vec())
        .await;
    let resp = env.thumb("pdf1", WEBP_ACCEPT).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), r#"{"error":"no_preview"}"#);
    // The rows and objects are where SPEC §12 puts them.
    let rows = env.catalog.find_previews("p1").await.unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        let key = StorageKey::preview("p1", r.variant, r.format);
        assert_eq!(r.storage_path, key.as_str());
        assert!(env.storage.list(key.as_str()).await.unwrap().len() == 1);
    }
    assert!(rows
        .iter()
        .any(|r| r.variant == Variant::Thumb && r.format == Format::Jpeg));
}

async fn phone_photo_upright_and_clean(env: &Env) {
    env.seed("ph1", "image/jpeg", PHONE_JPEG.to_vec()).await;
    for accept in [WEBP_ACCEPT, "image/jpeg"] {
        let (_, img, bytes) = decoded(env.thumb("ph1", accept).await).await;
        // Stored 640x480 with orientation 6: shown (and previewed) portrait.
        assert_eq!((img.width(), img.height()), (300, 400), "{accept}");
        // The stored top-left is red; after a 90° clockwise turn it is the top-right.
        let px = img.to_rgb8().get_pixel(img.width() - 20, 20).0;
        assert!(
            px[0] > 180 && px[1] < 90 && px[2] < 90,
            "top-right red: {px:?}"
        );
        for marker in [
            &b"Exif"[..],
            b"FixturePhone",
            b"FP-1",
            b"http://ns.adobe.com/xap",
            b"fixture comment",
            b"ICC_PROFILE",
            b"Photoshop",
            b"GPS",
        ] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{accept}: {:?} survived",
                String::from_utf8_lossy(marker)
            );
        }
    }
    // Its display size and placeholder are on the row now.
    let row = env.catalog.find_linked("d1", "ph1").await.unwrap().unwrap();
    assert_eq!((row.image.width, row.image.height), (Some(480), Some(640)));
    assert!(row
        .image
        .placeholder
        .as_deref()
        .is_some_and(|p| p.len() > 10));
}

async fn transparency_and_animation(env: &Env) {
    env.seed(
        "t1",
        "image/png",
        encode(&with_alpha(600, 300), ImageFormat::Png),
    )
    .await;
    let (ty, img, _) = decoded(env.thumb("t1", "image/png,image/jpeg").await).await;
    assert_eq!(
        ty, "image/png",
        "transparency keeps PNG when WebP is not taken"
    );
    assert_eq!(
        img.to_rgba8().get_pixel(10, 10).0[3],
        0,
        "still transparent"
    );
    let (ty, img, _) = decoded(env.thumb("t1", WEBP_ACCEPT).await).await;
    assert_eq!(ty, "image/webp");
    assert_eq!(img.to_rgba8().get_pixel(10, 10).0[3], 0, "WebP keeps alpha");

    env.seed("g1", "image/gif", animated_gif(120, 80)).await;
    let (_, img, _) = decoded(env.thumb("g1", "image/jpeg").await).await;
    assert_eq!((img.width(), img.height()), (120, 80));
    let px = img.to_rgb8().get_pixel(60, 40).0;
    assert!(
        px[0] > 200 && px[1] < 60 && px[2] < 60,
        "the first frame (red): {px:?}"
    );

    env.seed(
        "w1",
        "image/webp",
        encode(&picture(800, 800), ImageFormat::WebP),
    )
    .await;
    let (_, img, _) = decoded(env.thumb("w1", "image/jpeg").await).await;
    assert_eq!((img.width(), img.height()), (400, 400));
}

async fn bombs_and_liars_have_no_preview(env: &Env) {
    env.seed(
        "ok1",
        "image/png",
        encode(&picture(64, 64), ImageFormat::Png),
    )
    .await;
    let (rss_before, _) = env.gw.memory_kib();
    let cases: [(&str, &str, Vec<u8>); 5] = [
        ("bomb1", "image/png", png_bomb(60_000, 60_000)),
        ("bomb2", "image/gif", gif_bomb(60_000, 60_000)),
        (
            "cut1",
            "image/jpeg",
            PHONE_JPEG[..PHONE_JPEG.len() / 3].to_vec(),
        ),
        (
            "lie1",
            "image/jpeg",
            encode(&picture(50, 50), ImageFormat::Png),
        ),
        (
            "lie2",
            "image/png",
            b"<html><script>alert(1)</script></html>".to_vec(),
        ),
    ];
    for (id, mime, bytes) in &cases {
        env.seed(id, mime, bytes.clone()).await;
    }
    let alice = token("alice", "USER", &[]);
    let ok_path = format!("{PREFIX}/d1/ok1");
    for (id, _, _) in &cases {
        // Other requests are served meanwhile.
        let (bomb, other) =
            tokio::join!(env.thumb(id, WEBP_ACCEPT), env.get(&ok_path, &alice, &[]));
        assert_eq!(other.status(), 200);
        assert_eq!(bomb.status(), 404, "{id}");
        assert_eq!(
            bomb.text().await.unwrap(),
            r#"{"error":"no_preview"}"#,
            "{id}"
        );
        // Remembered: the second view is answered the same, without a second attempt.
        assert_eq!(env.thumb(id, WEBP_ACCEPT).await.status(), 404);
    }
    let (rss_after, _) = env.gw.memory_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(
        env.metric("preview_failures_total{reason=\"too_many_pixels\"}")
            .await,
        2.0
    );
    assert!(
        env.metric("preview_failures_total{reason=\"undecodable\"}")
            .await
            >= 3.0
    );
    assert!(env.catalog.find_previews("bomb1").await.unwrap().is_empty());
}

async fn authorization_and_cloaking(env: &Env) {
    let miss_for = |who: String, path: String| async move {
        let resp = env.get(&path, &who, &[("accept", WEBP_ACCEPT)]).await;
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let bob = token("bob", "USER", &[]);
    let denied = miss_for(bob.clone(), format!("{PREFIX}/d1/p1?variant=thumb")).await;
    let missing = miss_for(bob, format!("{PREFIX}/d1/nope?variant=thumb")).await;
    assert_eq!(denied, (404, r#"{"error":"not_found"}"#.to_string()));
    assert_eq!(denied, missing, "a denial is a miss, byte for byte");
    let staff_without = token("s1", "STAFF", &[]);
    assert_eq!(
        miss_for(staff_without, format!("{PREFIX}/d1/p1?variant=thumb")).await,
        denied
    );
    for who in [
        token("s2", "STAFF", &[STAFF_PERMISSION]),
        token("root", "ADMIN", &[]),
    ] {
        let resp = env
            .get(&format!("{PREFIX}/d1/p1?variant=thumb"), &who, &[])
            .await;
        assert_eq!(resp.status(), 200);
    }
    let resp = env
        .client
        .get(env.gw.url(&format!("{PREFIX}/d1/p1?variant=thumb")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn conditionals_and_ranges(env: &Env) {
    let first = env.thumb("p1", WEBP_ACCEPT).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let whole = first.bytes().await.unwrap();
    let alice = token("alice", "USER", &[]);
    let path = format!("{PREFIX}/d1/p1?variant=thumb");
    let resp = env
        .get(
            &path,
            &alice,
            &[("accept", WEBP_ACCEPT), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    // The JPEG's validator is another one: no 304 from the WebP's.
    let resp = env
        .get(
            &path,
            &alice,
            &[("accept", "image/jpeg"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = env
        .get(
            &path,
            &alice,
            &[("accept", WEBP_ACCEPT), ("range", "bytes=10-19")],
        )
        .await;
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 10-19/{}", whole.len()).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap(), whole.slice(10..20));
}

async fn staged_previews_follow_their_upload(env: &Env) {
    let alice = token("alice", "USER", &[]);
    let resp = env
        .client
        .post(env.gw.url(&format!("{PREFIX}?filename=IMG_0001.jpg")))
        .bearer_auth(&alice)
        .header("content-type", "image/jpeg")
        .body(PHONE_JPEG.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let staged: Value = resp.json().await.unwrap();
    let id = staged["id"].as_str().unwrap().to_owned();
    let path = format!("{PREFIX}/staged/{id}?variant=thumb");
    // Made right after the upload was stored: it appears without any request asking.
    let mut made = false;
    for _ in 0..100 {
        if !env.catalog.find_previews(&id).await.unwrap().is_empty() {
            made = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(made, "previews made after the upload");
    let resp = env.get(&path, &alice, &[("accept", WEBP_ACCEPT)]).await;
    assert_eq!(resp.status(), 200);
    let bob = token("bob", "USER", &[]);
    let resp = env.get(&path, &bob, &[]).await;
    assert_eq!(
        resp.status(),
        404,
        "only its uploader sees a staged preview"
    );
    let staff = token("s2", "STAFF", &[STAFF_PERMISSION]);
    assert_eq!(env.get(&path, &staff, &[]).await.status(), 404);
    // Known now, so the commit's answer carries size and placeholder.
    let commit = env
        .client
        .post(format!("{}/internal/attachments/commit", env.gw.admin))
        .bearer_auth(SERVICE_TOKEN)
        .json(&serde_json::json!({
            "userId": "alice", "dialogId": "d1", "messageId": "m9", "attachmentIds": [id]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(commit.status(), 200);
    let linked: Value = commit.json().await.unwrap();
    assert_eq!(linked["attachments"][0]["width"], 480);
    assert_eq!(linked["attachments"][0]["height"], 640);
    assert!(linked["attachments"][0]["placeholder"].is_string());
    let resp = env
        .get(&format!("{PREFIX}/d1/{id}?variant=preview"), &alice, &[])
        .await;
    assert_eq!(
        resp.status(),
        200,
        "the same previews serve the linked route"
    );

    // A discarded upload takes its previews with it.
    let resp = env
        .client
        .post(env.gw.url(&format!("{PREFIX}?filename=x.png")))
        .bearer_auth(&alice)
        .header("content-type", "image/png")
        .body(encode(&picture(500, 500), ImageFormat::Png))
        .send()
        .await
        .unwrap();
    let id: String = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .into();
    let path = format!("{PREFIX}/staged/{id}?variant=thumb");
    assert_eq!(env.get(&path, &alice, &[]).await.status(), 200);
    let prefix = format!("support-chat/previews/{id}/");
    assert!(!env.storage.list(&prefix).await.unwrap().is_empty());
    let resp = env
        .client
        .delete(env.gw.url(&format!("{PREFIX}/staged/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(
        env.storage.list(&prefix).await.unwrap().is_empty(),
        "objects gone"
    );
    assert!(
        env.catalog.find_previews(&id).await.unwrap().is_empty(),
        "rows gone"
    );
    assert_eq!(env.get(&path, &alice, &[]).await.status(), 404);
}

async fn single_flight(env: &Env) {
    env.seed(
        "sf1",
        "image/png",
        encode(&picture(1600, 1200), ImageFormat::Png),
    )
    .await;
    let before = env
        .metric("preview_generated_total{variant=\"thumb\"}")
        .await;
    let answers =
        futures_util::future::join_all((0..12).map(|_| env.thumb("sf1", WEBP_ACCEPT))).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    let after = env
        .metric("preview_generated_total{variant=\"thumb\"}")
        .await;
    assert_eq!(after - before, 1.0, "made once for twelve waiting requests");
}

#[tokio::test]
async fn previews_on_postgres_and_s3() {
    run_all(&env_pg_s3("workers = 1").await).await;
}

#[tokio::test]
async fn previews_on_sqlite_and_fs() {
    run_all(&env_sqlite_fs("workers = 1").await).await;
}

/// One worker and no queue: while it makes one attachment's previews, another attachment's
/// request is told to come back (`503` with `Retry-After`), not made to wait.
#[tokio::test]
async fn a_full_pool_answers_busy() {
    let env = env_sqlite_fs("workers = 1\nqueue = 0").await;
    env.seed(
        "big1",
        "image/png",
        encode(&picture(3000, 2000), ImageFormat::Png),
    )
    .await;
    env.seed(
        "big2",
        "image/png",
        encode(&picture(3000, 2000), ImageFormat::Png),
    )
    .await;
    let first = env.thumb("big1", WEBP_ACCEPT);
    let second = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        env.thumb("big2", WEBP_ACCEPT).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    assert_eq!(second.text().await.unwrap(), r#"{"error":"preview_busy"}"#);
    // Not remembered as a failure: once the pool is free it is made.
    assert_eq!(env.thumb("big2", WEBP_ACCEPT).await.status(), 200);
}

/// `previews --backfill` makes the previews of rows that have none, and a second run finds
/// nothing left to do.
#[tokio::test]
async fn backfill_makes_what_is_missing() {
    let env = env_sqlite_fs("workers = 1").await;
    for id in ["bf1", "bf2", "bf3"] {
        env.seed(
            id,
            "image/png",
            encode(&picture(200, 100), ImageFormat::Png),
        )
        .await;
    }
    env.seed("bf4", "image/png", b"not an image".to_vec()).await;
    env.seed("bf5", "application/pdf", b"%PDF-1.4".to_vec())
        .await;
    let run = || {
        let config_path = env.gw.dir_path().join("backfill.toml");
        let text = env
            .toml
            .replace("{listen}", "127.0.0.1:1")
            .replace("{admin}", "127.0.0.1:2");
        std::fs::write(&config_path, text).unwrap();
        let out = harness::command(
            env.gw.dir_path(),
            &["previews", "--backfill", "--config"],
            &config_path,
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_owned();
        serde_json::from_str::<Value>(&last).unwrap()
    };
    let first = run();
    assert_eq!(first["made"], 3, "{first}");
    assert_eq!(first["no_preview"], 1, "{first}");
    for id in ["bf1", "bf2", "bf3"] {
        assert_eq!(env.catalog.find_previews(id).await.unwrap().len(), 4);
    }
    let second = run();
    assert_eq!(second["made"], 0, "{second}");
}

/// Cleanup takes previews with the expired staged upload they belong to, and sweeps preview
/// objects whose attachment row is gone; previews of live attachments stay.
#[tokio::test]
async fn cleanup_removes_previews_with_their_attachment() {
    let env = env_sqlite_fs("workers = 1").await;
    env.seed(
        "live1",
        "image/png",
        encode(&picture(200, 100), ImageFormat::Png),
    )
    .await;
    assert_eq!(env.thumb("live1", WEBP_ACCEPT).await.status(), 200);
    // A staged upload with its previews, about to expire.
    let alice = token("alice", "USER", &[]);
    let resp = env
        .client
        .post(env.gw.url(&format!("{PREFIX}?filename=s.png")))
        .bearer_auth(&alice)
        .header("content-type", "image/png")
        .body(encode(&picture(300, 300), ImageFormat::Png))
        .send()
        .await
        .unwrap();
    let staged: String = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .into();
    let path = format!("{PREFIX}/staged/{staged}?variant=thumb");
    assert_eq!(env.get(&path, &alice, &[]).await.status(), 200);
    // Previews left behind by a job that finished after its attachment was deleted.
    let ghost = StorageKey::preview("ghost1", Variant::Thumb, Format::Webp);
    env.storage
        .put(&ghost, "image/webp", 4, body(b"RIFF".to_vec()))
        .await
        .unwrap();

    let later = Utc::now() + chrono::Duration::hours(3);
    let report = attachment_gateway::cleanup::run_pass(
        env.catalog.as_ref(),
        env.storage.as_ref(),
        Duration::from_secs(3600),
        later,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.expired_rows, 1, "{report:?}");
    let storage = env.storage.clone();
    let left = |prefix: String| {
        let storage = storage.clone();
        async move { storage.list(&prefix).await.unwrap().len() }
    };
    assert_eq!(left(format!("support-chat/previews/{staged}/")).await, 0);
    assert_eq!(left("support-chat/previews/ghost1/".into()).await, 0);
    assert_eq!(left("support-chat/previews/live1/".into()).await, 4);
    assert!(report.orphans >= 1, "{report:?}");
}
