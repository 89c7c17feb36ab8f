//! Time and peak memory of `preview::render::render` on one core, beside Debian's
//! `vipsthumbnail` and ImageMagick's `convert` making the same thumbnail of the same files.
//! Run with `cargo bench --bench previews` (about a minute).
//!
//! Each measurement runs in a child process of this binary, so that each peak is its own:
//! ours reads `VmHWM` from `/proc/self/status` after rendering (the input file's bytes
//! included); a tool's is the `ru_maxrss` of the child that ran it. Ours is timed inside the
//! process (what the gateway pays); a tool's per run includes its process start. The tools
//! are held to one thread (`VIPS_CONCURRENCY=1`, `MAGICK_THREAD_LIMIT=1`); a missing tool is
//! skipped with a note.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use attachment_gateway::preview::render::{self, Limits, Sizes};
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use nix::sys::resource::{getrusage, UsageWho};

/// A deterministic noise source (xorshift), so every run renders the same files.
struct Noise(u32);

impl Noise {
    fn next(&mut self, spread: u32) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 % (2 * spread + 1)) as i32 - spread as i32
    }
}

/// A photo-like picture: smooth gradients with some sensor noise, which compresses as a
/// photo does (a flat gradient would be unrealistically small).
fn photo(width: u32, height: u32, spread: u32) -> RgbImage {
    let mut noise = Noise(0x9E37_79B9);
    RgbImage::from_fn(width, height, |x, y| {
        let base = [
            x * 200 / width + 30,
            y * 180 / height + 40,
            (x + y) * 120 / (width + height) + 80,
        ];
        Rgb(base.map(|c| (c as i32 + noise.next(spread)).clamp(0, 255) as u8))
    })
}

fn write_inputs(dir: &Path) -> Vec<Input> {
    let jpeg = dir.join("photo-12mp.jpg");
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&photo(4000, 3000, 12))
        .unwrap();
    std::fs::write(&jpeg, bytes).unwrap();

    let png = dir.join("screen-12mp.png");
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(photo(4000, 3000, 1))
        .write_to(&mut bytes, ImageFormat::Png)
        .unwrap();
    std::fs::write(&png, bytes.into_inner()).unwrap();

    let gif = dir.join("animation-100.gif");
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 30);
        for i in 0..100u32 {
            let frame = RgbaImage::from_fn(480, 270, |x, y| {
                Rgba([
                    ((x + 4 * i) % 256) as u8,
                    (y % 256) as u8,
                    (i * 2) as u8,
                    255,
                ])
            });
            encoder.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    std::fs::write(&gif, bytes).unwrap();

    vec![
        Input::new("JPEG 4000x3000", jpeg, "image/jpeg", 5),
        Input::new("PNG 4000x3000", png, "image/png", 3),
        Input::new("GIF 480x270 x100", gif, "image/gif", 10),
    ]
}

struct Input {
    name: &'static str,
    path: std::path::PathBuf,
    mime: &'static str,
    runs: usize,
}

impl Input {
    fn new(name: &'static str, path: std::path::PathBuf, mime: &'static str, runs: usize) -> Self {
        Input {
            name,
            path,
            mime,
            runs,
        }
    }
}

/// One measurement: median time per image and the process's peak resident memory.
struct Measured {
    median: Duration,
    peak_kib: u64,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn parse(stdout: &[u8]) -> Measured {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("MEASURED "))
        .unwrap_or_else(|| panic!("child printed no measurement: {text}"));
    let mut fields = line.split_whitespace();
    let median_us: u64 = fields.next().unwrap().parse().unwrap();
    let peak_kib: u64 = fields.next().unwrap().parse().unwrap();
    Measured {
        median: Duration::from_micros(median_us),
        peak_kib,
    }
}

fn report(times: Vec<Duration>, peak_kib: u64) {
    println!("MEASURED {} {peak_kib}", median(times).as_micros());
}

/// Child: render one file `runs` times in this process.
fn child_render(args: &[String]) {
    let [path, mime, thumb, preview, runs] = args else {
        panic!("--render PATH MIME THUMB_PX PREVIEW_PX RUNS");
    };
    let bytes = std::fs::read(path).unwrap();
    let sizes = Sizes {
        thumb_px: thumb.parse().unwrap(),
        preview_px: preview.parse().unwrap(),
    };
    let limits = Limits::default();
    let times = (0..runs.parse().unwrap())
        .map(|_| {
            let start = Instant::now();
            let rendered = render::render(mime, &bytes, &limits, &sizes).unwrap();
            let took = start.elapsed();
            std::hint::black_box(rendered);
            took
        })
        .collect();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    report(times, hwm);
}

/// Child: run a command `runs` times; its peak is the largest child's `ru_maxrss`.
fn child_exec(args: &[String]) {
    let (runs, command) = args.split_first().expect("--exec RUNS COMMAND...");
    let times = (0..runs.parse().unwrap())
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(&command[0])
                .args(&command[1..])
                .env("VIPS_CONCURRENCY", "1")
                .env("MAGICK_THREAD_LIMIT", "1")
                .status()
                .unwrap();
            assert!(status.success(), "{command:?}: {status}");
            start.elapsed()
        })
        .collect();
    let peak = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    report(times, u64::try_from(peak).unwrap_or(0));
}

fn measure(args: &[&str]) -> Measured {
    let me = std::env::current_exe().unwrap();
    let out = Command::new(me).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&out.stdout)
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn row(input: &str, who: &str, what: &str, m: &Measured) {
    println!(
        "| {input:<26} | {who:<13} | {what:<40} | {:>8.1} | {:>8.1} |",
        m.median.as_secs_f64() * 1000.0,
        m.peak_kib as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--render") => return child_render(&args[1..]),
        Some("--exec") => return child_exec(&args[1..]),
        _ => {} // `cargo bench` passes `--bench`: the parent.
    }
    let dir = tempfile::tempdir().unwrap();
    let inputs = write_inputs(dir.path());
    let vips = installed("vipsthumbnail");
    let magick = installed("convert");
    if !vips {
        println!("note: vipsthumbnail not installed (Debian: libvips-tools); skipped");
    }
    if !magick {
        println!("note: convert not installed (Debian: imagemagick); skipped");
    }
    println!();
    println!(
        "| {:<26} | {:<13} | {:<40} | {:>8} | {:>8} |",
        "input", "by", "makes", "ms/image", "peak MiB"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(28),
        "-".repeat(15),
        "-".repeat(42),
        "-".repeat(10),
        "-".repeat(10)
    );
    for input in &inputs {
        let size = std::fs::metadata(&input.path).unwrap().len();
        let name = format!("{} ({:.1} MB)", input.name, size as f64 / 1e6);
        let path = input.path.to_str().unwrap();
        let runs = input.runs.to_string();
        let ours = measure(&["--render", path, input.mime, "400", "1600", &runs]);
        row(
            &name,
            "render",
            "thumb 400 + preview 1600, WebP+fallback",
            &ours,
        );
        let thumb = measure(&["--render", path, input.mime, "400", "400", &runs]);
        row("", "render", "thumb 400 only, WebP+fallback", &thumb);
        // The tools read a GIF's first frame by default; the page suffix says so anyway.
        let first = if input.mime == "image/gif" {
            format!("{path}[0]")
        } else {
            path.to_string()
        };
        if vips {
            let out = dir.path().join("vips.jpg");
            let out = format!("{}[Q=82,strip]", out.display());
            let m = measure(&[
                "--exec",
                &runs,
                "vipsthumbnail",
                path,
                "--size",
                "400",
                "-o",
                &out,
            ]);
            row("", "vipsthumbnail", "thumb 400, JPEG", &m);
        }
        if magick {
            let out = dir.path().join("magick.jpg");
            let out = out.to_str().unwrap();
            let m = measure(&[
                "--exec",
                &runs,
                "convert",
                &first,
                "-thumbnail",
                "400x400",
                "-strip",
                "-quality",
                "82",
                out,
            ]);
            row("", "convert", "thumb 400, JPEG", &m);
        }
    }
}
