//! Time and peak memory of a PDF page's and a video poster's previews on one core: the
//! confined tool (`preview::frame::extract`: Debian's `pdftocairo`, `ffmpeg -threads 1`) and
//! then the image pipeline on its picture (`render`). Run with
//! `taskset -c 0 cargo bench --bench media_previews` (a few seconds).
//!
//! The tool's peak is the `ru_maxrss` of this process's children (each job is one child; the
//! largest of all runs is reported); the time per step is the median of the runs. Inputs are
//! the demo's files: a 3-page A4 PDF and a 12 s 640x360 H.264 MP4 with its `moov` at the end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use attachment_gateway::preview::frame::{self, Kind, Sandbox};
use attachment_gateway::preview::render::{self, Limits, Sizes};
use nix::sys::resource::{getrusage, UsageWho};

const RUNS: usize = 9;

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    let sandbox = Sandbox {
        memory_bytes: 512 << 20,
        timeout: Duration::from_secs(10),
        max_output_bytes: 50 << 20,
        render_px: 1600,
    };
    let limits = Limits {
        max_source_pixels: 50_000_000,
        max_source_bytes: 50 << 20,
    };
    let sizes = Sizes::default();
    println!("| source | tool | tool ms (median of {RUNS}) | render ms | tool peak RSS |");
    println!("|---|---|---|---|---|");
    for (file, kind, tool) in [
        ("sample.pdf", Kind::Pdf, "pdftocairo"),
        ("sample.mp4", Kind::Video("mov"), "ffmpeg"),
    ] {
        let Some(path) = which(tool) else {
            println!("| {file} | {tool} | not installed | | |");
            continue;
        };
        let source = std::fs::read(assets.join(file)).unwrap();
        let (mut tool_times, mut render_times) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let t = Instant::now();
            let png = frame::extract(kind, &path, &source, &sandbox).expect("a picture");
            tool_times.push(t.elapsed());
            let t = Instant::now();
            render::render("image/png", &png, &limits, &sizes).expect("previews");
            render_times.push(t.elapsed());
        }
        let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
        println!(
            "| {file} | {tool} | {:.0} | {:.0} | {:.1} MiB |",
            median(tool_times).as_secs_f64() * 1e3,
            median(render_times).as_secs_f64() * 1e3,
            peak_kib as f64 / 1024.0
        );
    }
}
