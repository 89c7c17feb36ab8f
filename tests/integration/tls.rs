//! TLS on the public listener through the real binary: HTTP/2 offered by ALPN, attachments
//! and app passthrough over h2, and a renewed certificate served after `reload`.

use crate::harness;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, StorageKey};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use harness::app::App;
use harness::{token, Gateway};
use reqwest::Version;

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM, DER).
fn self_signed(name: &str) -> (String, String, Vec<u8>) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

fn client_trusting(pems: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().tls_info(true);
    for pem in pems {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn config_toml(dir: &Path, app: &str) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"
threads = 2
grace_period_s = 1
tls_cert_file = "cert.pem"
tls_key_file = "key.pem"

[app]
upstream = "{app}"

[auth]
algorithms = ["HS256"]
hs_secret = "{secret}"

[catalog]
database_url = "sqlite://{db}?mode=rwc"

[storage]
provider = "fs"
root = "{root}"

[limits]
# A page of thumbnails from one user at once; the limiter has its own tests.
max_concurrent_per_user = 100
burst = 100

[log]
format = "text"
"#,
        secret = harness::HS_SECRET,
        db = dir.join("gw.db").display(),
        root = dir.join("bucket").display(),
    )
}

async fn seed(toml: &str, dir: &Path, png: &[u8]) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, dir, &|_| None).unwrap();
    let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
    catalog.migrate().await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    let key = StorageKey::dialog("d1", "img");
    let body = Bytes::copy_from_slice(png);
    let stream = Box::pin(futures_util::stream::once(async move { Ok(body) }));
    storage
        .put(&key, "image/png", png.len() as u64, stream)
        .await
        .unwrap();
    catalog
        .upsert_attachment(&NewAttachment {
            id: "img".into(),
            dialog_id: Some("d1".into()),
            message_id: Some("m1".into()),
            storage_path: key.as_str().into(),
            mime_type: "image/png".into(),
            size_bytes: png.len() as u64,
            original_name: "shot.png".into(),
            created_by_user_id: "alice".into(),
            status: AttachmentStatus::Linked,
            created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        })
        .await
        .unwrap();
}

fn https(gw: &Gateway, path: &str) -> String {
    gw.url(path).replace("http://", "https://")
}

fn peer_certificate(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

#[tokio::test]
async fn tls_listener_speaks_h2_and_reloads_its_certificate() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
    let (cert1, key1, der1) = self_signed("first");
    std::fs::write(dir.path().join("cert.pem"), &cert1).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key1).unwrap();
    let toml = config_toml(dir.path(), &app.addr);
    let png: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    seed(&toml, dir.path(), &png).await;
    let gw = Gateway::start_in(dir, &toml).await;
    let alice = token("alice", "USER", &[]);
    let client = client_trusting(&[&cert1]);

    // A page of thumbnails: ALPN picks h2, and every request shares the one connection.
    let url = https(&gw, "/api/support-chat/attachments/d1/img");
    let requests = (0..12).map(|_| client.get(&url).bearer_auth(&alice).send());
    for resp in futures_util::future::join_all(requests).await {
        let resp = resp.unwrap();
        assert_eq!(resp.version(), Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        assert_eq!(peer_certificate(&resp), der1);
        assert_eq!(resp.bytes().await.unwrap(), png);
    }
    // A denial stays the JSON 404 over h2.
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(
        (resp.version(), resp.status().as_u16()),
        (Version::HTTP_2, 401)
    );

    // Everything else still reaches the app (over HTTP/1.1 upstream) with its body.
    let resp = client
        .post(https(&gw, "/api/messages?x=1"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-app"], "yes");
    let seen = app.seen();
    let last = seen.last().expect("the app saw the request");
    assert_eq!(last.target, "/api/messages?x=1");
    assert_eq!(last.header("x-forwarded-proto"), Some("https"));
    // h2 has no Host header, only :authority; the app still gets both, port included.
    let authority = gw.base.trim_start_matches("http://");
    assert_eq!(last.header("host"), Some(authority), "{last:?}");
    assert_eq!(last.header("x-forwarded-host"), Some(authority), "{last:?}");

    // Renew the certificate on disk and reload: the successor serves the new one on the same
    // port, the old process drains and exits.
    let (cert2, key2, der2) = self_signed("second");
    std::fs::write(gw.dir.path().join("cert.pem"), &cert2).unwrap();
    std::fs::write(gw.dir.path().join("key.pem"), &key2).unwrap();
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&gw.log_path)
        .unwrap();
    let status = harness::command(gw.dir.path(), &["reload", "--config"], &gw.config_path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(status.success(), "reload failed:\n{}", gw.log());
    let pid_file = gw.dir.path().join("data/run/gateway.pid");
    let successor: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(successor, gw.pid());
    let _successor = KillOnDrop(successor);

    // Both processes accept for a few seconds (Pingora's hand-off window); every new
    // connection is served whole meanwhile, and the renewed certificate wins.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fresh = client_trusting(&[&cert1, &cert2]);
        let resp = fresh.get(&url).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(
            (resp.version(), resp.status().as_u16()),
            (Version::HTTP_2, 200)
        );
        let der = peer_certificate(&resp);
        assert_eq!(resp.bytes().await.unwrap(), png);
        if der == der2 && exited(gw.pid()) {
            break;
        }
        assert!(Instant::now() < deadline, "the old process still serves");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = client_trusting(&[&cert1, &cert2]);
    let resp = fresh.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(peer_certificate(&resp), der2);
}

/// A zombie (exited, not yet reaped by the harness) counts as exited.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
        .unwrap_or(true)
}

/// The successor is not the harness's child: stop it when the test ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    }
}
