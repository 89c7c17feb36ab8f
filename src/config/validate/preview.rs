//! `[preview]`: sizes, source bounds and the worker pool of image previews (SPEC §12).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::checker::Checker;
use super::super::raw::RawPreview;
use super::super::PreviewConfig;

pub(super) fn section(raw: RawPreview, c: &mut Checker) -> PreviewConfig {
    let thumb_px = c.int("preview.thumb_px", raw.thumb_px, 400, 16, 4096) as u32;
    let preview_px = c.int("preview.preview_px", raw.preview_px, 1600, 16, 8192) as u32;
    if preview_px < thumb_px {
        c.problem(
            "preview.preview_px",
            format!("{preview_px} is smaller than preview.thumb_px ({thumb_px})"),
        );
    }
    // One core stays free for serving; a single-core machine still gets one worker.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let workers = c.int("preview.workers", raw.workers, (cores - 1).max(1), 1, 256);
    // PDF pages and video frames are made by Debian's tools in a confined process
    // (`preview::frame`): a setting that cannot work is refused, never silently ignored.
    let mut tool = |key: &str,
                    on: Option<bool>,
                    path: Option<PathBuf>,
                    name: &str,
                    package: &str| {
        if on != Some(true) {
            return None;
        }
        let found = locate(path.as_deref().map(|p| c.path(p)).as_deref(), name);
        if found.is_none() {
            let place =
                path.map_or_else(|| "on PATH".to_string(), |p| format!("at {}", p.display()));
            c.problem(
                key,
                format!("needs {name}, which is not installed {place} (Debian: apt-get install {package})"),
            );
        }
        found
    };
    let pdftocairo = tool(
        "preview.pdf",
        raw.pdf,
        raw.pdftocairo,
        "pdftocairo",
        "poppler-utils",
    );
    let ffmpeg = tool("preview.video", raw.video, raw.ffmpeg, "ffmpeg", "ffmpeg");
    PreviewConfig {
        enabled: raw.enabled.unwrap_or(true),
        thumb_px,
        preview_px,
        max_source_pixels: c.int(
            "preview.max_source_pixels",
            raw.max_source_pixels,
            50_000_000,
            1,
            1 << 32,
        ),
        max_source_bytes: c.int(
            "preview.max_source_bytes",
            raw.max_source_bytes,
            50 << 20,
            1,
            1 << 32,
        ),
        workers: workers as usize,
        queue: c.int("preview.queue", raw.queue, 256, 0, 1 << 16) as usize,
        pdftocairo,
        ffmpeg,
        tool_timeout: Duration::from_secs(c.int(
            "preview.tool_timeout_s",
            raw.tool_timeout_s,
            10,
            1,
            600,
        )),
        tool_memory_bytes: c.int(
            "preview.tool_memory_mb",
            raw.tool_memory_mb,
            512,
            64,
            65_536,
        ) << 20,
    }
}

/// `configured` if it is a file, else `name` on `PATH`.
fn locate(configured: Option<&Path>, name: &str) -> Option<PathBuf> {
    if let Some(path) = configured {
        return path.is_file().then(|| path.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
