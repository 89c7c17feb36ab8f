//! The demo chat page in a real browser (Debian's `chromium`, driven by `playwright-core` from
//! npm: `scripts/test.sh` installs both), against the real gateway on the embedded default and
//! on PostgreSQL + S3: a dialog of 100 screenshots shows every preview, a click opens the full
//! picture, the PDF opens in Chromium's viewer with its page count, the video (its `moov` at
//! the end) plays and seeks on `206`s, an upload shows its preview and reaches staff once sent,
//! the next person on the same browser sees none of the first one's files, and a
//! cookie-authenticated upload from another origin is refused. The steps and their assertions
//! are in `tests/browser/chat.mjs`; screenshots land in `target/e2e/<backend>/`.
//!
//! Missing Chromium or `node_modules` fail these tests: they never pass by being skipped.

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::seaweed::Seaweed;
use harness::{free_port, PgDatabase};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `attachment-gateway demo` in its own working directory (its data lives there).
struct Demo {
    child: Child,
    site: String,
    dir: tempfile::TempDir,
}

impl Demo {
    async fn start(with_config: Option<&str>) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let (listen, admin, app) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(harness::binary());
        cmd.current_dir(dir.path())
            .arg("demo")
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--app-listen", &format!("127.0.0.1:{app}")]);
        if let Some(text) = with_config {
            let path = dir.path().join("gateway.toml");
            std::fs::write(&path, text).unwrap();
            cmd.arg("--with-config").arg(&path);
        }
        let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the gateway binary runs");
        let demo = Demo {
            child,
            site: format!("http://127.0.0.1:{listen}"),
            dir,
        };
        // Seeding 100 screenshots and their previews takes a while in a debug build.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(resp) = reqwest::get(format!("{}/", demo.site)).await {
                if resp.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the demo page did not come up:\n{}",
                demo.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        demo
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("demo.log")).unwrap_or_default()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the browser steps against `demo`; the summary they print, parsed.
fn browse(demo: &Demo, backend: &str) -> serde_json::Value {
    let script_dir = root().join("tests/browser");
    assert!(
        script_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/browser (scripts/test.sh does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium} (scripts/test.sh installs Debian's chromium)"
    );
    let shots = root().join("target/e2e").join(backend);
    let _ = std::fs::remove_dir_all(&shots);
    let output = Command::new("node")
        .current_dir(&script_dir)
        .arg("chat.mjs")
        .arg(&demo.site)
        .arg(&shots)
        .arg(root().join("assets/demo/sample.png"))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser steps failed ({backend}); screenshots in {}\n{stdout}\n{stderr}\n--- demo log (tail)\n{}",
        shots.display(),
        tail(&demo.log(), 40)
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON summary");
    for shot in [
        "1-gallery",
        "3-pdf",
        "4-video",
        "7-stranger",
        "8-cross-site",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).is_file(),
            "screenshot {shot}"
        );
    }
    summary
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What every backend must show (the script asserts each step; this checks the numbers it
/// reports, so that a script that stopped asserting would still fail here).
fn assert_summary(s: &serde_json::Value) {
    assert_eq!(s["gallery"]["shown"], 100, "{s}");
    assert_eq!(s["gallery"]["broken"], 0, "{s}");
    assert_eq!(
        s["gallery"]["statuses"],
        serde_json::json!({ "200": 100 }),
        "{s}"
    );
    assert_eq!(s["pdf"]["pages"], 3, "{s}");
    assert!(s["video"]["time"].as_f64().unwrap() >= 9.0, "{s}");
    assert!(s["video"]["requests"].as_u64().unwrap() >= 2, "{s}");
    assert_eq!(s["stranger"]["shown"], 0, "{s}");
    assert_eq!(s["crossSite"]["status"], 403, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_in_chromium_on_the_embedded_default() {
    let demo = Demo::start(None).await;
    let summary = browse(&demo, "embedded");
    assert_summary(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_in_chromium_on_postgresql_and_s3() {
    let db = PgDatabase::create().await;
    let s3 = Seaweed::start().await;
    // The embedded demo's secrets (the page signs its own tokens), real backends.
    let config = format!(
        "[auth]\nalgorithms = [\"HS256\"]\n\
         hs_secret = \"demo-only-secret-published-in-the-repository-0123456789\"\n\
         [catalog]\ndatabase_url = \"{db}\"\n\
         [storage]\nprovider = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         bucket = \"{bucket}\"\npath_style = true\naccess_key_id = \"{key}\"\n\
         secret_access_key = \"{secret}\"\n\
         [internal]\nservice_token = \"browser-test-service-token-0123456789\"\n\
         [server]\nupgrade_sock = \"run/upgrade.sock\"\npid_file = \"run/gateway.pid\"\n\
         [log]\nformat = \"text\"\n",
        db = db.url,
        endpoint = s3.endpoint,
        bucket = s3.bucket,
        key = s3.access_key,
        secret = s3.secret_key,
    );
    let demo = Demo::start(Some(&config)).await;
    let summary = browse(&demo, "postgres-s3");
    assert_summary(&summary);
}
