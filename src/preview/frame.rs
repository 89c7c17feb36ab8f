//! A picture of a PDF's first page or of a video frame, made by Debian's `pdftocairo` or
//! `ffmpeg` in a separate process per job (SPEC §12): those are large C code bases with a
//! history of CVEs, so their bugs must never run inside the gateway.
//!
//! ```text
//! source bytes -> a private job directory (0700): input, nothing else
//!   -> the tool, executed directly (no shell), in a new session and, where the kernel
//!      allows it, a new network namespace (no interface but a down loopback) and a new
//!      mount namespace whose root is read-only; with rlimits: address space, CPU seconds,
//!      file size, open files, no core dumps; an empty environment; killed with its process
//!      group at the wall-clock limit
//!   -> its PNG on stdout, read bounded -> the memory-safe image pipeline (`render`)
//! ```
//! ffmpeg also gets its demuxer forced from the declared type and `file` as its only
//! protocol, so a "video" that is a playlist or a concat script (pointing at other files or
//! URLs) is refused by the demuxer instead of being followed. This runs on a preview worker
//! thread, never on a request thread: a job that hangs holds one worker until it is killed.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::decode::NoPreview;

/// What a job may use. From `[preview]`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Address space of the tool's process.
    pub memory_bytes: u64,
    /// Wall-clock limit; CPU time is limited to the same number of seconds.
    pub timeout: Duration,
    /// The largest picture the tool may write.
    pub max_output_bytes: u64,
    /// Longest side the tool renders at (PDF pages are vector: rendered at this size).
    pub render_px: u32,
}

/// Which tool, for which declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    /// A video, with the ffmpeg demuxer its declared type names.
    Video(&'static str),
}

impl Kind {
    /// The kind of a declared type's essence, if one of the tools handles it.
    pub fn of(mime: &str) -> Option<Kind> {
        match mime {
            "application/pdf" => Some(Kind::Pdf),
            "video/mp4" | "video/quicktime" => Some(Kind::Video("mov")),
            "video/webm" | "video/x-matroska" => Some(Kind::Video("matroska")),
            _ => None,
        }
    }
}

/// Run `tool` on `source`; the picture it made, as PNG bytes.
pub fn extract(
    kind: Kind,
    tool: &Path,
    source: &[u8],
    sandbox: &Sandbox,
) -> Result<Vec<u8>, NoPreview> {
    let job = JobDir::create().map_err(|e| {
        tracing::warn!(error = %e, "preview job directory");
        NoPreview::Undecodable
    })?;
    let input = job.path.join("input");
    std::fs::write(&input, source).map_err(|_| NoPreview::Undecodable)?;
    let bytes = match kind {
        Kind::Pdf => run(
            pdftocairo(tool, &input, sandbox.render_px),
            &job.path,
            sandbox,
        )?,
        Kind::Video(demuxer) => {
            // A frame near 1 s shows more than a fade-in; a shorter video gets its first.
            let near_1s = run(ffmpeg(tool, demuxer, Some(1), &input), &job.path, sandbox)?;
            if near_1s.is_empty() {
                run(ffmpeg(tool, demuxer, None, &input), &job.path, sandbox)?
            } else {
                near_1s
            }
        }
    };
    if bytes.len() as u64 > sandbox.max_output_bytes {
        return Err(NoPreview::TooManyBytes);
    }
    Ok(bytes)
}

fn pdftocairo(tool: &Path, input: &Path, px: u32) -> Command {
    let mut cmd = Command::new(tool);
    cmd.args(["-f", "1", "-l", "1", "-singlefile", "-png"])
        .args(["-scale-to", &px.to_string()])
        .arg(input)
        // `-`: the page goes to stdout, so the tool needs no writable file (pdftoppm, its
        // sibling in poppler-utils, can only write files).
        .arg("-");
    cmd
}

fn ffmpeg(tool: &Path, demuxer: &str, at_s: Option<u32>, input: &Path) -> Command {
    let mut cmd = Command::new(tool);
    cmd.args([
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        "1",
    ])
    .args(["-protocol_whitelist", "file", "-f", demuxer]);
    if demuxer == "mov" {
        // External data references of a QuickTime file are never followed.
        cmd.args(["-enable_drefs", "0"]);
    }
    if let Some(s) = at_s {
        cmd.args(["-ss", &s.to_string()]);
    }
    cmd.arg("-i")
        .arg(input)
        .args(["-map", "0:v:0", "-frames:v", "1", "-an", "-sn", "-dn"])
        // The output's own protocol list: stdout only.
        .args([
            "-f",
            "image2pipe",
            "-c:v",
            "png",
            "-protocol_whitelist",
            "pipe",
            "pipe:1",
        ]);
    cmd
}

/// Run one tool invocation in the job directory under the sandbox's limits; what it wrote to
/// stdout (at most `max_output_bytes` and one more: past that the pipe closes on it). A tool
/// that exits non-zero, is killed by a limit, or outlives the timeout means no preview.
fn run(mut cmd: Command, dir: &Path, sandbox: &Sandbox) -> Result<Vec<u8>, NoPreview> {
    let (memory, cpu_s, fsize) = (
        sandbox.memory_bytes,
        sandbox.timeout.as_secs().max(1),
        sandbox.max_output_bytes,
    );
    cmd.current_dir(dir)
        .env_clear()
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe system calls run (setsid,
    // setrlimit, unshare); nothing allocates or takes a lock.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || confine(memory, cpu_s, fsize));
    }
    let mut child = cmd.spawn().map_err(|e| {
        tracing::warn!(error = %e, "preview tool did not start");
        NoPreview::Undecodable
    })?;
    // Read on a thread of its own, so that a full pipe never stalls the tool past its time.
    let limit = sandbox.max_output_bytes.saturating_add(1);
    let reader = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::Read::take(out, limit), &mut bytes);
            bytes
        })
    });
    let output = move || reader.and_then(|r| r.join().ok()).unwrap_or_default();
    let deadline = Instant::now() + sandbox.timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(output()),
            Ok(Some(status)) => {
                tracing::info!(%status, "preview tool failed");
                return Err(NoPreview::Undecodable);
            }
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(NoPreview::Timeout);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(NoPreview::Undecodable);
            }
        }
    }
}

/// In the child, before exec.
fn confine(memory: u64, cpu_s: u64, fsize: u64) -> std::io::Result<()> {
    use nix::sys::resource::{setrlimit, Resource};
    // Its own process group: the timeout kills whatever it started too.
    nix::unistd::setsid().map_err(std::io::Error::from)?;
    let limits = [
        (Resource::RLIMIT_AS, memory, memory),
        (Resource::RLIMIT_CPU, cpu_s, cpu_s + 1),
        (Resource::RLIMIT_FSIZE, fsize, fsize),
        (Resource::RLIMIT_NOFILE, 32, 32),
        (Resource::RLIMIT_CORE, 0, 0),
    ];
    for (resource, soft, hard) in limits {
        setrlimit(resource, soft, hard).map_err(std::io::Error::from)?;
    }
    // No network where the kernel lets us make a namespace (root, or unprivileged user
    // namespaces); elsewhere the tools' own options above are the only guard.
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET);
    // A read-only view of the filesystem where allowed: a private mount namespace whose root
    // mount is remounted read-only (the tool writes only to its stdout). Mounts below the root
    // (a tmpfs /tmp, /dev/shm) keep their own flags. Paths are short: nix converts them on
    // the stack, without allocating.
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_ok() {
        use nix::mount::{mount, MsFlags};
        let none: Option<&str> = None;
        let private = mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none);
        if private.is_ok() {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            let _ = mount(Some("/"), "/", none, flags, none);
        }
    }
    Ok(())
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A private directory for one job, removed with everything in it when dropped.
struct JobDir {
    path: PathBuf,
}

impl JobDir {
    fn create() -> std::io::Result<JobDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!(
            "attachment-gateway-preview-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(JobDir { path })
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(5),
            max_output_bytes: 1 << 20,
            render_px: 400,
        }
    }

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    /// What a tool can do to the machine, tried by a shell in the same confinement.
    fn confined(script: &str) -> Result<Vec<u8>, NoPreview> {
        let dir = JobDir::create().unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        run(cmd, &dir.path, &sandbox())
    }

    #[test]
    fn a_confined_tool_writes_nowhere_but_its_stdout() {
        let probe =
            std::env::temp_dir().join(format!("ro-probe-{}", uuid::Uuid::new_v4().simple()));
        let script = format!("echo x > {} && echo wrote", probe.display());
        let result = confined(&script);
        if is_root() {
            // Root can make the mount namespace: the filesystem is read-only for the tool.
            assert_eq!(result, Err(NoPreview::Undecodable));
            assert!(!probe.exists());
        } else {
            eprintln!("not root: no mount namespace here, the write went through");
            let _ = std::fs::remove_file(&probe);
        }
        assert_eq!(confined("printf picture").unwrap(), b"picture");
    }

    #[test]
    fn a_confined_tool_reaches_no_network() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = format!(
            "/usr/bin/python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\""
        );
        let result = confined(&script);
        if is_root() {
            assert_eq!(result, Err(NoPreview::Undecodable));
            assert!(listener.accept().is_err(), "nothing connected");
        } else {
            eprintln!("not root: no network namespace here");
        }
    }

    #[test]
    fn a_tool_past_its_time_is_killed_with_what_it_started() {
        let started = Instant::now();
        let sandbox = Sandbox {
            timeout: Duration::from_secs(1),
            ..sandbox()
        };
        let dir = JobDir::create().unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        assert_eq!(run(cmd, &dir.path, &sandbox), Err(NoPreview::Timeout));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn kinds_by_declared_type() {
        assert_eq!(Kind::of("application/pdf"), Some(Kind::Pdf));
        assert_eq!(Kind::of("video/mp4"), Some(Kind::Video("mov")));
        assert_eq!(Kind::of("video/webm"), Some(Kind::Video("matroska")));
        assert_eq!(Kind::of("application/x-mpegurl"), None);
        assert_eq!(Kind::of("image/png"), None);
    }

    #[test]
    fn ffmpeg_is_told_its_demuxer_and_only_the_file_protocol() {
        let cmd = ffmpeg(Path::new("ffmpeg"), "mov", Some(1), Path::new("input"));
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.contains("-protocol_whitelist file -f mov"),
            "{joined}"
        );
        assert!(joined.contains("-enable_drefs 0"), "{joined}");
        // Input options come before the input.
        let input = args.iter().position(|a| a == "-i").unwrap();
        assert!(args.iter().position(|a| a == "-f").unwrap() < input);
    }
}
