//! The demo's data: two dialogs of Alice's (a support conversation with a screenshot, a PDF,
//! a video and a large file; a gallery of 100 screenshots), one staged draft, their previews
//! made ahead of the first view, and the chat messages the stand-in app shows.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;

use super::chat::{Dialog, Message};
use super::people::OWNER;
use crate::attachment::json;
use crate::catalog::{AttachmentStatus, Catalog, NewAttachment};
use crate::config::{Config, StorageProvider};
use crate::preview::Previews;
use crate::storage::{self, Storage, StorageKey};
use crate::{catalog, preview};

pub const PNG: &[u8] = include_bytes!("../../assets/demo/sample.png");
const PDF: &[u8] = include_bytes!("../../assets/demo/sample.pdf");
/// 12 s of H.264 with its `moov` at the end, as phones and screen recorders write it: a
/// player must ask for the end of the file before it can play the start.
const MP4: &[u8] = include_bytes!("../../assets/demo/sample.mp4");
/// Large enough that streaming and Range matter.
const LARGE_BYTES: u64 = 64 * 1024 * 1024;

pub const DIALOG: &str = "dlg_demo";
pub const GALLERY: &str = "dlg_gallery";
/// Screenshots in the gallery dialog: a page that must show every one of them at once.
pub const GALLERY_SIZE: usize = 100;

enum Body {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    Large,
}

struct Sample {
    id: String,
    mime: &'static str,
    name: String,
    body: Body,
}

impl Sample {
    fn fixed(id: &str, mime: &'static str, name: &str, body: &'static [u8]) -> Sample {
        Sample {
            id: id.into(),
            mime,
            name: name.into(),
            body: Body::Static(body),
        }
    }
}

/// Seed the catalog and the bucket (idempotent: rows are upserted, objects rewritten), make
/// the previews, and return the dialogs with their messages.
pub async fn seed(cfg: &Config) -> anyhow::Result<Vec<Dialog>> {
    if let StorageProvider::Fs { root } = &cfg.storage.provider {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    }
    if let Some(path) = sqlite_path(cfg.catalog.database_url.expose()) {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let catalog = catalog::connect(&cfg.catalog).await?;
    catalog.migrate().await?;
    let storage = storage::build(&cfg.storage)?;

    let support = vec![
        (
            "msg_demo_1",
            "The app crashes on this screen:",
            vec![Sample::fixed(
                "att_png",
                "image/png",
                "Screenshot 2026-01-01.png",
                PNG,
            )],
        ),
        (
            "msg_demo_2",
            "Here is the invoice, three pages.",
            vec![Sample::fixed(
                "att_pdf",
                "application/pdf",
                "Счёт №42.pdf",
                PDF,
            )],
        ),
        (
            "msg_demo_3",
            "A screen recording of it happening.",
            vec![Sample::fixed(
                "att_video",
                "video/mp4",
                "Screen recording.mp4",
                MP4,
            )],
        ),
        (
            "msg_demo_4",
            "And the full log.",
            vec![Sample {
                id: "att_large".into(),
                mime: "application/octet-stream",
                name: "large-sample.bin".into(),
                body: Body::Large,
            }],
        ),
    ];
    let gallery = vec![(
        "msg_gallery_1",
        "Every screen of the checkout, in order.",
        (0..GALLERY_SIZE)
            .map(|i| Sample {
                id: format!("att_shot_{i:03}"),
                mime: "image/png",
                name: format!("Screen {:03}.png", i + 1),
                body: Body::Owned(screenshot(i)),
            })
            .collect::<Vec<_>>(),
    )];

    let mut dialogs = Vec::new();
    for (dialog, title, messages) in [
        (DIALOG, "Alice: the app crashes at checkout", support),
        (GALLERY, "Alice: 100 screenshots", gallery),
    ] {
        catalog.upsert_dialog(dialog, OWNER).await?;
        let mut ids = Vec::new();
        for (message, _, samples) in &messages {
            for sample in samples {
                let key = StorageKey::dialog(dialog, &sample.id);
                let size = put(storage.as_ref(), &key, sample).await?;
                catalog
                    .upsert_attachment(&row(sample, &key, Some((dialog, message)), size))
                    .await?;
                ids.push(sample.id.clone());
            }
        }
        dialogs.push((dialog, title, messages, ids));
    }
    // Alice's draft, staged and not sent: only she (and an admin) may see it.
    let draft = Sample::fixed("att_staged", "image/png", "draft.png", PNG);
    let key = StorageKey::staged(OWNER, &draft.id);
    let size = put(storage.as_ref(), &key, &draft).await?;
    catalog
        .upsert_attachment(&NewAttachment {
            // A staged upload must be fresh, or the cleanup job rightly removes it.
            created_at: Utc::now(),
            ..row(&draft, &key, None, size)
        })
        .await?;

    make_previews(cfg, catalog.clone(), storage.clone()).await?;

    let mut out = Vec::new();
    for (dialog, title, messages, _) in dialogs {
        let mut shown = Vec::new();
        for (i, (message, text, samples)) in messages.into_iter().enumerate() {
            let ids: Vec<String> = samples.iter().map(|s| s.id.clone()).collect();
            shown.push(Message {
                id: message.to_string(),
                author: OWNER.to_string(),
                text: text.to_string(),
                sent_at: json::time(seeded_at() + Duration::minutes(i as i64)),
                attachments: attachments(catalog.as_ref(), &ids).await?,
            });
        }
        out.push(Dialog {
            id: dialog.to_string(),
            title: title.to_string(),
            owner: OWNER.to_string(),
            messages: shown,
        });
    }
    Ok(out)
}

/// The rows of `ids` as the commit answer shows them (dimensions once previews exist), in
/// the order given.
pub async fn attachments(catalog: &dyn Catalog, ids: &[String]) -> anyhow::Result<Vec<Value>> {
    let rows = catalog.find_many(ids).await?;
    Ok(ids
        .iter()
        .filter_map(|id| rows.iter().find(|r| &r.id == id))
        .map(json::linked)
        .collect())
}

/// Previews of every seeded image, ahead of the first view (the backfill an operator runs).
async fn make_previews(
    cfg: &Config,
    catalog: Arc<dyn Catalog>,
    storage: Arc<dyn Storage>,
) -> anyhow::Result<()> {
    if !cfg.preview.enabled {
        return Ok(());
    }
    let previews = Arc::new(Previews::new(catalog.clone(), storage, cfg.preview.clone()));
    let workers = cfg.preview.workers;
    let report = preview::backfill::run(previews, catalog, 10_000, workers).await?;
    tracing::info!(made = report.made, failed = report.failed, "demo previews");
    Ok(())
}

fn row(
    sample: &Sample,
    key: &StorageKey,
    linked: Option<(&str, &str)>,
    size: u64,
) -> NewAttachment {
    NewAttachment {
        id: sample.id.clone(),
        dialog_id: linked.map(|(d, _)| d.to_string()),
        message_id: linked.map(|(_, m)| m.to_string()),
        storage_path: key.as_str().into(),
        mime_type: sample.mime.into(),
        size_bytes: size,
        original_name: sample.name.clone(),
        created_by_user_id: OWNER.into(),
        status: match linked {
            Some(_) => AttachmentStatus::Linked,
            None => AttachmentStatus::Uploaded,
        },
        created_at: seeded_at(),
    }
}

async fn put(storage: &dyn Storage, key: &StorageKey, sample: &Sample) -> anyhow::Result<u64> {
    let (size, body): (u64, storage::ByteStream) = match &sample.body {
        Body::Static(bytes) => (bytes.len() as u64, once(Bytes::from_static(bytes))),
        Body::Owned(bytes) => (bytes.len() as u64, once(Bytes::from(bytes.clone()))),
        Body::Large => (LARGE_BYTES, large_body()),
    };
    storage.put(key, sample.mime, size, body).await?;
    Ok(size)
}

fn once(bytes: Bytes) -> storage::ByteStream {
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}

/// A 960x600 "screenshot": a title bar, a sidebar and cards in a colour of its own, so that
/// every tile of the gallery is visibly a different picture. Deterministic.
fn screenshot(i: usize) -> Vec<u8> {
    let (w, h) = (960u32, 600u32);
    let hue = (i as f32 * 137.5) % 360.0;
    let accent = hsv(hue, 0.65, 0.85);
    let light = hsv(hue, 0.12, 0.98);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let card = x > 260 && (y - y.min(110)) % 120 < 90 && y > 110 && x < 900;
        let px = if y < 56 {
            accent
        } else if x < 220 {
            hsv(hue, 0.25, 0.35)
        } else if card && (x as usize + i * 13) % 640 < 40 + (y as usize / 3) % 200 {
            hsv((hue + 40.0) % 360.0, 0.5, 0.9)
        } else if card {
            [255, 255, 255]
        } else {
            light
        };
        image::Rgb(px)
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    out.into_inner()
}

fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round() as u8)
}

/// Deterministic, incompressible-looking bytes, generated chunk by chunk (never held whole).
fn large_body() -> storage::ByteStream {
    const CHUNK: u64 = 1024 * 1024;
    Box::pin(futures_util::stream::iter((0..LARGE_BYTES / CHUNK).map(
        |i| {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ i;
            let chunk: Vec<u8> = (0..CHUNK)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            Ok(Bytes::from(chunk))
        },
    )))
}

/// A fixed creation time keeps the demo's ETags stable between runs.
pub fn seeded_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    Some(rest.split('?').next().unwrap_or(rest))
}
