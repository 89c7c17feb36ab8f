//! `[preview]`: sizes, source bounds and the worker pool of image previews (SPEC §12).

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
    // PDF and video frames need a sandboxed helper process this build does not ship yet:
    // refusing the key is better than a setting that silently does nothing.
    for (key, on) in [("preview.pdf", raw.pdf), ("preview.video", raw.video)] {
        if on == Some(true) {
            c.problem(key, "is not supported by this build yet (images only)");
        }
    }
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
    }
}
