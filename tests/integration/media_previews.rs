//! Previews of PDFs and videos (SPEC §12), made by Debian's `pdftocairo` and `ffmpeg` in a
//! confined process per job, through the real gateway: the first page of a PDF and a frame of
//! a video (its `moov` at the end; a clip shorter than 1 s gets its first frame) as `thumb` and
//! `preview`; and hostile sources — a PDF that never finishes rendering, "videos" that are a
//! playlist or a concat script pointing at a URL and at other files, truncated files — each
//! end as `no_preview` within the time limit, nothing is fetched, and the gateway keeps
//! serving meanwhile.

use crate::harness;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::local::{Data, Extra, Local, PREFIX};
use harness::token;

const TIMEOUT_S: u64 = 3;

fn asset(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/demo")
            .join(name),
    )
    .unwrap()
}

async fn gateway(data: Data) -> Local {
    data.catalog.upsert_dialog("dlg", "alice").await.unwrap();
    Local::start(
        data,
        Extra {
            sections: format!(
                "[preview]\npdf = true\nvideo = true\ntool_timeout_s = {TIMEOUT_S}\n\
                 workers = 2\n"
            ),
            ..Default::default()
        },
    )
    .await
}

async fn variant(gw: &Local, id: &str, variant: &str) -> reqwest::Response {
    gw.client
        .get(gw.url(&format!("{PREFIX}/dlg/{id}?variant={variant}")))
        .header(
            "authorization",
            format!("Bearer {}", token("alice", "USER", &[])),
        )
        .header("accept", "image/webp,image/*")
        .send()
        .await
        .unwrap()
}

async fn picture(resp: reqwest::Response) -> image::DynamicImage {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/webp");
    let bytes = resp.bytes().await.unwrap();
    image::load_from_memory_with_format(&bytes, image::ImageFormat::WebP).unwrap()
}

async fn assert_no_preview(gw: &Local, id: &str) {
    let resp = variant(gw, id, "thumb").await;
    assert_eq!(resp.status(), 404, "{id}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "no_preview", "{id}");
}

/// A short clip made by ffmpeg itself (outside the gateway), for the "shorter than 1 s" case.
fn short_clip(dir: &Path) -> Vec<u8> {
    let out = dir.join("short.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=0.4",
        ])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-y"])
        .arg(&out)
        .status()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(status.success());
    std::fs::read(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pdf_first_pages_and_video_frames_get_both_variants() {
    let data = Data::create().await;
    let clip = short_clip(data.dir.path());
    data.attachment("pdf", Some("dlg"), "application/pdf", &asset("sample.pdf"))
        .await;
    data.attachment("video", Some("dlg"), "video/mp4", &asset("sample.mp4"))
        .await;
    data.attachment("clip", Some("dlg"), "video/mp4", &clip)
        .await;
    let gw = gateway(data).await;

    // The PDF's first page (A4, portrait), at each variant's size.
    let thumb = picture(variant(&gw, "pdf", "thumb").await).await;
    assert_eq!((thumb.width(), thumb.height()), (283, 400));
    let preview = picture(variant(&gw, "pdf", "preview").await).await;
    assert_eq!(preview.height(), 1600);
    // A white page with dark text on it: not a blank or a black frame.
    let luma = thumb.to_luma8();
    let dark = luma.pixels().filter(|p| p.0[0] < 100).count();
    assert!(dark > 50 && dark < luma.len() / 4, "{dark} dark pixels");

    // The video: 640x360, a frame from after its start.
    let thumb = picture(variant(&gw, "video", "thumb").await).await;
    assert_eq!((thumb.width(), thumb.height()), (400, 225));
    let preview = picture(variant(&gw, "video", "preview").await).await;
    assert_eq!((preview.width(), preview.height()), (640, 360));
    // Shorter than 1 s: its first frame.
    let first = picture(variant(&gw, "clip", "thumb").await).await;
    assert_eq!((first.width(), first.height()), (320, 240));

    // The job directories are gone (the harness gives the gateway its own TMPDIR).
    let left: Vec<_> = std::fs::read_dir(gw.gw.dir_path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("attachment-gateway-preview-")
        })
        .collect();
    assert!(left.is_empty(), "job directories left: {left:?}");
}

/// A page of a million full-page strokes (18 MB): rasterizing it takes pdftocairo minutes.
fn endless_pdf() -> Vec<u8> {
    let content = b"0 0 m 595 842 l S\n".repeat(1_000_000);
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>".to_vec(),
        [
            format!("<< /Length {} >>\nstream\n", content.len()).into_bytes(),
            content,
            b"\nendstream".to_vec(),
        ]
        .concat(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).into_bytes());
        out.extend(object);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").into_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .into_bytes(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_sources_end_as_no_preview_in_time_and_fetch_nothing() {
    // Anything a tool tried to fetch would knock here.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let url = format!("http://{}/x", trap.local_addr().unwrap());
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}/segment.ts\n#EXT-X-ENDLIST\n"
    );
    let concat = "ffconcat version 1.0\nfile '/etc/passwd'\nfile '/proc/self/environ'\n";
    let mp4 = asset("sample.mp4");
    let pdf = asset("sample.pdf");

    let data = Data::create().await;
    data.attachment("endless", Some("dlg"), "application/pdf", &endless_pdf())
        .await;
    data.attachment("hls", Some("dlg"), "video/mp4", playlist.as_bytes())
        .await;
    data.attachment("hlswebm", Some("dlg"), "video/webm", playlist.as_bytes())
        .await;
    data.attachment("concat", Some("dlg"), "video/mp4", concat.as_bytes())
        .await;
    data.attachment("cutmp4", Some("dlg"), "video/mp4", &mp4[..mp4.len() / 2])
        .await;
    data.attachment("cutpdf", Some("dlg"), "application/pdf", &pdf[..200])
        .await;
    data.attachment("png", Some("dlg"), "image/png", &asset("sample.png"))
        .await;
    let gw = gateway(data).await;

    // The endless PDF holds one worker until its process is killed; meanwhile the gateway
    // serves other reads at once.
    let started = Instant::now();
    let endless = {
        let (client, url) = (
            gw.client.clone(),
            gw.url(&format!("{PREFIX}/dlg/endless?variant=thumb")),
        );
        tokio::spawn(async move {
            let resp = client
                .get(url)
                .header(
                    "authorization",
                    format!("Bearer {}", token("alice", "USER", &[])),
                )
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let t = Instant::now();
        let resp = gw
            .client
            .get(gw.url(&format!("{PREFIX}/dlg/png")))
            .header(
                "authorization",
                format!("Bearer {}", token("alice", "USER", &[])),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    let (status, took) = endless.await.unwrap();
    assert_eq!(status, 404, "the endless PDF has no preview");
    assert!(
        took >= Duration::from_secs(TIMEOUT_S - 1) && took < Duration::from_secs(TIMEOUT_S + 3),
        "killed at the time limit: {took:?}"
    );
    assert!(gw.gw.log().contains("\"reason\":\"timeout\""));

    for id in ["endless", "hls", "hlswebm", "concat", "cutmp4", "cutpdf"] {
        let t = Instant::now();
        assert_no_preview(&gw, id).await;
        assert!(
            t.elapsed() < Duration::from_secs(TIMEOUT_S + 3),
            "{id}: {:?}",
            t.elapsed()
        );
    }
    // Nothing knocked.
    let mut knocked = Vec::new();
    while let Ok((mut s, peer)) = trap.accept() {
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        knocked.push(peer);
    }
    assert!(knocked.is_empty(), "a tool fetched a URL: {knocked:?}");
    // The preview tool processes are gone (killed with their process group).
    let tools = std::process::Command::new("pgrep")
        .args(["-f", "pdftocairo -f 1 -l 1"])
        .output()
        .unwrap();
    assert!(
        tools.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&tools.stdout)
    );
}

#[test]
fn check_config_names_a_missing_tool() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[auth]\nhs_secret = \"0123456789abcdef0123456789abcdef\"\n\
         [catalog]\ndatabase_url = \"sqlite://x.db\"\n\
         [storage]\nprovider = \"fs\"\nroot = \"b\"\n\
         [preview]\npdf = true\npdftocairo = \"/nonexistent/pdftocairo\"\n",
    )
    .unwrap();
    let out = harness::command(dir.path(), &["check-config", "--config"], &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("preview.pdf") && stderr.contains("pdftocairo"),
        "{stderr}"
    );
}
