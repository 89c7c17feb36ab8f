//! Integration-test harness: the real gateway binary on ephemeral ports, a recording app
//! upstream, a fresh PostgreSQL database per test, and a TCP tap in front of storage.
#![allow(dead_code)]

pub mod app;
pub mod cluster;
pub mod local;
pub mod redis;
pub mod tap;
pub mod tcp_fault;
pub mod tls;

pub mod seaweed;
pub mod supabase_stub;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const HS_SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const STAFF_PERMISSION: &str = "support_chat:read";

/// A free TCP port on loopback (bound and released; the gateway binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A JWT as the app would mint it.
pub fn token(sub: &str, role: &str, permissions: &[&str]) -> String {
    token_with_exp(sub, role, permissions, 3600)
}

pub fn token_with_exp(sub: &str, role: &str, permissions: &[&str], exp_in_s: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "sub": sub, "role": role, "permissions": permissions, "exp": now + exp_in_s,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A fresh PostgreSQL database, dropped (best effort) with the value.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        use sqlx::Connection;
        let name = format!("gw_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        PgDatabase {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a short-lived thread and runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The real gateway binary, configured by a TOML file in its own directory.
pub struct Gateway {
    child: Child,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub admin: String,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_attachment-gateway")
}

impl Gateway {
    /// The value of one counter series (`name` or `name{labels}`) on the admin listener's
    /// `/metrics`; `None` when the series is not there.
    pub async fn counter(&self, series: &str) -> Option<u64> {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Write `config` (with `{listen}` and `{admin}` placeholders filled), migrate, start,
    /// and wait until `/healthz` answers.
    pub async fn start(config: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: &str) -> Gateway {
        let (listen, admin) = (free_port(), free_port());
        let text = config
            .replace("{listen}", &format!("127.0.0.1:{listen}"))
            .replace("{admin}", &format!("127.0.0.1:{admin}"));
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, text).unwrap();
        let status = command(dir.path(), &["migrate", "--config"], &config_path)
            .status()
            .unwrap();
        assert!(status.success(), "migrate failed");
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command(dir.path(), &["run", "--config"], &config_path)
            // Its temporary files (preview jobs) in its own directory, where a test can see them.
            .env("TMPDIR", dir.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let gw = Gateway {
            child,
            dir,
            base: format!("http://127.0.0.1:{listen}"),
            admin: format!("http://127.0.0.1:{admin}"),
            config_path,
            log_path,
        };
        gw.wait_healthy().await;
        gw
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            let ok = client
                .get(format!("{}/healthz", self.admin))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok
                && tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway did not become healthy:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The gateway's working directory (its config, database and bucket live here).
    pub fn dir_path(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident and peak resident memory of the gateway process, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the gateway binary with a clean environment (no DATABASE_URL leaking in).
pub fn command(dir: &Path, args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir)
        .args(args)
        .arg(config)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info");
    cmd
}

/// A plain HTTP/1.1 request over a raw socket: for paths a URL library would normalize.
pub async fn raw_request(
    base: &str,
    request_line_path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    raw_method_request(base, "GET", request_line_path, headers).await
}

/// As [`raw_request`], with any method and request-target.
pub async fn raw_method_request(
    base: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
