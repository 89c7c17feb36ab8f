//! `rediss://` (SPEC §8): a private `redis-server` that speaks TLS only, with a certificate
//! from a CA made here, reached by the real gateway binary through `limits.redis_ca_file`; the
//! same server refused without the CA; `check-config` refusing a CA file it would ignore.

use crate::harness;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::local::{Data, Extra, Local, PREFIX};
use harness::tls::certificates;
use harness::{free_port, token};

/// `redis-server` on a TLS port only (no plain port), killed on drop.
struct TlsRedis {
    port: u16,
    child: Child,
}

impl TlsRedis {
    fn start(dir: &Path) -> TlsRedis {
        let port = free_port();
        let file = |name: &str| dir.join(name).display().to_string();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &file("server.pem")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem")])
            .args(["--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server (TLS) did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsRedis { port, child }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn gateway(redis: &TlsRedis, ca: Option<&Path>) -> Local {
    let data = Data::create().await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    data.attachment("a1", Some("d1"), "text/plain", b"hello")
        .await;
    let ca_line = ca.map_or(String::new(), |p| {
        format!("redis_ca_file = \"{}\"\n", p.display())
    });
    Local::start(
        data,
        Extra {
            sections: format!(
                "[limits]\nredis_url = \"{}\"\n{ca_line}user_per_minute = 60\nburst = 2\n\
                 ip_per_minute = 100000\nredis_timeout_ms = 500\n",
                redis.url()
            ),
            ..Extra::default()
        },
    )
    .await
}

/// `/readyz` until it answers `want`, for at most five seconds; the last body.
async fn ready(env: &Local, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = env
            .client
            .get(format!("{}/readyz", env.gw.admin))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        if status == want || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = TlsRedis::start(dir.path());
    let env = gateway(&redis, Some(&dir.path().join("ca.pem"))).await;
    let body = ready(&env, 200).await;
    assert_eq!(body["status"], "ready", "{body}\n{}", env.gw.log());
    // The shared limit is Redis's: two instances together get the burst once, not twice.
    let twin = env.twin().await;
    let alice = token("alice", "USER", &[]);
    let mut statuses = Vec::new();
    for gw in [&env.gw, &twin].repeat(4) {
        let resp = env
            .client
            .get(gw.url(&format!("{PREFIX}/d1/a1")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    // Alone, each instance would let its own burst (2) through: 4 or more in all.
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert!((1..=3).contains(&allowed), "{statuses:?}\n{}", twin.log());
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 8 - allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_without_the_ca_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = TlsRedis::start(dir.path());
    let env = gateway(&redis, None).await;
    let body = ready(&env, 503).await;
    assert_eq!(body["failing"], serde_json::json!(["redis"]), "{body}");
}

#[test]
fn check_config_refuses_a_ca_file_it_would_ignore() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let config = dir.path().join("gateway.toml");
    let write = |limits: &str| {
        let text = format!(
            "[auth]\nhs_secret = \"{}\"\n[limits]\n{limits}\n",
            harness::HS_SECRET
        );
        std::fs::write(&config, text).unwrap();
    };
    let ca = dir.path().join("ca.pem").display().to_string();
    let run = || {
        let out = harness::command(dir.path(), &["check-config", "--config"], &config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    write(&format!(
        "redis_url = \"redis://127.0.0.1:1/0\"\nredis_ca_file = \"{ca}\""
    ));
    let (code, err) = run();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("limits.redis_ca_file"), "{err}");
    write(&format!(
        "redis_url = \"rediss://127.0.0.1:1/0\"\nredis_ca_file = \"{}\"",
        dir.path().join("server.key").display()
    ));
    let (code, err) = run();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");
    write(&format!(
        "redis_url = \"rediss://127.0.0.1:1/0\"\nredis_ca_file = \"{ca}\""
    ));
    let (code, err) = run();
    assert_eq!(code, Some(0), "{err}");
}
