//! Zero-downtime upgrade: the runtime files (PID file, upgrade socket) and `reload`, which
//! starts a successor that takes over the listening sockets of the running instance.
//!
//! The hand-off itself is Pingora's: the successor (`run --upgrade`) listens on
//! `server.upgrade_sock`; SIGQUIT makes the running instance send its listening sockets
//! there, keep serving what it has for `server.grace_period_s`, then exit. Because both
//! processes hold the same kernel sockets, no connection attempt is refused in between.
//! `reload` adds the ordering and the checks around it: the successor must be up and
//! waiting before the old one is told to let go, so a successor that cannot start (bad
//! config, database down) leaves the running instance untouched.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::ServerConfig;

/// How long the successor may take to connect to the catalog and open the upgrade socket.
const SUCCESSOR_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the socket hand-off may take once the old instance got SIGQUIT (Pingora retries
/// its connect for about five seconds).
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// Create the directories of the PID file and the upgrade socket.
pub fn prepare_runtime_dirs(server: &ServerConfig) -> anyhow::Result<()> {
    for path in [&server.pid_file, &server.upgrade_sock] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Record this process as the one owning the listening sockets. Written to a temporary name
/// and renamed, so a reader (systemd's `PIDFile=`, `reload`) never sees a half-written file.
pub fn write_pid_file(path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The process id in a PID file, if the file holds one.
pub fn read_pid_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `attachment-gateway reload`: start `run --upgrade` with the same config, wait until it is
/// ready for the sockets, SIGQUIT the instance named in the PID file, and return once the
/// successor has taken over (it rewrites the PID file). The successor is left running.
pub fn reload(config_path: &Path, server: &ServerConfig) -> anyhow::Result<()> {
    let old = read_pid_file(&server.pid_file).ok_or_else(|| {
        anyhow!(
            "no running instance: {} is missing",
            server.pid_file.display()
        )
    })?;
    let old_pid = Pid::from_raw(old);
    kill(old_pid, None).with_context(|| {
        format!(
            "no running instance: process {old} from {} is gone",
            server.pid_file.display()
        )
    })?;
    // A socket file left by an interrupted upgrade would let the old instance connect to
    // nobody; the successor unlinks it too, but only once it got that far.
    let _ = std::fs::remove_file(&server.upgrade_sock);

    let mut successor = spawn_successor(config_path)?;
    let new = successor.id();
    tracing::info!(
        old,
        new,
        "reload: successor started, waiting for it to be ready"
    );
    wait_for(
        &mut successor,
        SUCCESSOR_START_TIMEOUT,
        "open the upgrade socket",
        || server.upgrade_sock.exists(),
    )?;

    kill(old_pid, Signal::SIGQUIT).with_context(|| format!("sending SIGQUIT to {old}"))?;
    wait_for(
        &mut successor,
        HANDOFF_TIMEOUT,
        "take over the sockets",
        || read_pid_file(&server.pid_file) == Some(new as i32),
    )?;
    tracing::info!(
        old,
        new,
        grace_period_s = server.grace_period.as_secs(),
        "reload: successor serves; the old instance drains, then exits"
    );
    Ok(())
}

fn spawn_successor(config_path: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the gateway binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--upgrade")
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null());
    // Its own process group: a Ctrl-C meant for whoever ran `reload` must not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().context("starting the successor")
}

/// Poll `done` until it holds; fail if the successor exits or `timeout` passes first. A
/// successor that is still alive at the timeout is killed: it never took over anything.
fn wait_for(
    successor: &mut Child,
    timeout: Duration,
    what: &str,
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return Ok(());
        }
        if let Some(status) = successor.try_wait()? {
            bail!("the successor exited ({status}) before it could {what}; the running instance keeps serving");
        }
        if Instant::now() > deadline {
            let _ = successor.kill();
            let _ = successor.wait();
            bail!("the successor did not {what} within {timeout:?}");
        }
        std::thread::sleep(POLL);
    }
}
