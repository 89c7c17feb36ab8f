//! Test harness: a private SeaweedFS (`weed mini`) S3 endpoint on 127.0.0.1, with its own data
//! directory, credentials and bucket; killed (whole process group) when dropped. Several tests
//! may run one each in parallel: every port is picked free and a clash is retried.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attachment_gateway::config::{S3Config, Secret};
use attachment_gateway::storage::s3::S3Storage;
use rand::Rng;
use tempfile::TempDir;

/// gRPC listeners sit this far above their HTTP port (SeaweedFS's convention).
const GRPC_OFFSET: u16 = 10_000;
/// Ports are drawn from here, so that `port + GRPC_OFFSET` stays below 55536.
const PORT_RANGE: std::ops::Range<u16> = 20_000..45_500;
const START_ATTEMPTS: usize = 5;
const READY_WITHIN: Duration = Duration::from_secs(30);

pub struct Seaweed {
    /// `http://127.0.0.1:<s3 port>`
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
    dir: TempDir,
    child: Child,
    grpc_ports: Vec<u16>,
}

impl Seaweed {
    /// Start a fresh instance and create its bucket. Panics (with weed's log) on failure.
    pub async fn start() -> Seaweed {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut seaweed = Seaweed::spawn();
            match seaweed.wait_ready().await {
                Ok(()) => return seaweed,
                Err(log) => last_log = log,
            }
        }
        panic!("weed mini did not start after {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// Config for an `S3Storage` talking to this instance, path-style.
    pub fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: url::Url::parse(&self.endpoint).unwrap(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            path_style: true,
            access_key_id: Secret::new(self.access_key.clone()),
            secret_access_key: Secret::new(self.secret_key.clone()),
            ca_file: None,
            sse: None,
        }
    }

    pub fn storage(&self) -> Arc<S3Storage> {
        Arc::new(
            S3Storage::new(
                &self.s3_config(),
                Duration::from_secs(2),
                Duration::from_secs(15),
            )
            .unwrap(),
        )
    }

    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("weed.log")
    }

    fn spawn() -> Seaweed {
        let dir = tempfile::Builder::new().prefix("weed").tempdir().unwrap();
        let suffix: u32 = rand::thread_rng().gen();
        let access_key = format!("AKTEST{suffix:08X}");
        let secret_key = format!("secret-{suffix:08x}-{}", rand::thread_rng().gen::<u64>());
        let identities = serde_json::json!({
            "identities": [{
                "name": "t",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List"],
            }]
        });
        let config = dir.path().join("s3.json");
        std::fs::write(&config, identities.to_string()).unwrap();

        let [s3, master, volume, filer, admin] = free_ports();
        let d = dir.path();
        let log = std::fs::File::create(d.join("weed.log")).unwrap();
        let mut args: Vec<String> = vec![
            format!("-logdir={}", d.display()),
            "mini".into(),
            format!("-dir={}", d.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.config={}", config.display()),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            // Nothing leaves this machine.
            "-master.telemetry=false".into(),
            // Unix sockets default to fixed names in /tmp: keep them per instance.
            format!("-filer.localSocket={}", d.join("filer.sock").display()),
            format!("-s3.localSocket={}", d.join("s3.sock").display()),
        ];
        for (name, port) in [
            ("s3", s3),
            ("master", master),
            ("volume", volume),
            ("filer", filer),
            ("admin", admin),
        ] {
            args.push(format!("-{name}.port={port}"));
            args.push(format!("-{name}.port.grpc={}", port + GRPC_OFFSET));
        }
        let child = Command::new("weed")
            .args(&args)
            .current_dir(d)
            // Its gRPC unix sockets and logs go to the temp dir: keep them in ours.
            .env("TMPDIR", d)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that Drop can stop everything it started.
            .process_group(0)
            .spawn()
            .expect("`weed` must be on PATH");
        Seaweed {
            endpoint: format!("http://127.0.0.1:{s3}"),
            access_key,
            secret_key,
            bucket: format!("test-{suffix:08x}"),
            region: "us-east-1".into(),
            dir,
            child,
            grpc_ports: [s3, master, volume, filer, admin]
                .iter()
                .map(|p| p + GRPC_OFFSET)
                .collect(),
        }
    }

    /// Wait until S3 answers and the bucket exists; `Err(log)` if weed died or never came up.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.endpoint.trim_start_matches("http://").to_owned();
        let storage = self.storage();
        let deadline = Instant::now() + READY_WITHIN;
        let mut listening = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(read_log(&self.log_path()));
            }
            if !listening {
                listening = TcpStream::connect(&addr).is_ok();
            }
            // The S3 port opens before the filer behind it is ready: retry the bucket.
            if listening && storage.create_bucket().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(read_log(&self.log_path()))
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // weed puts a unix socket per gRPC port in /tmp whatever TMPDIR says: remove ours.
        for port in &self.grpc_ports {
            for service in ["admin", "filer", "master", "s3", "volume"] {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{service}-grpc-{port}.sock"));
            }
        }
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Five distinct ports, each free together with its gRPC twin at the moment of the check.
/// Another process may still take one before weed binds it: `start` retries then.
fn free_ports() -> [u16; 5] {
    let mut rng = rand::thread_rng();
    let mut picked: Vec<u16> = Vec::new();
    while picked.len() < 5 {
        let port = rng.gen_range(PORT_RANGE);
        let clashes = picked
            .iter()
            .any(|&p| p.abs_diff(port) == 0 || p.abs_diff(port) == GRPC_OFFSET);
        if !clashes && is_free(port) && is_free(port + GRPC_OFFSET) {
            picked.push(port);
        }
    }
    [picked[0], picked[1], picked[2], picked[3], picked[4]]
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
