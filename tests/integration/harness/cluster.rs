//! A private Redis Cluster on 127.0.0.1: six `redis-server --cluster-enabled yes` (three
//! masters, three replicas) joined by `redis-cli --cluster create`, plain or TLS only; a test
//! can find the master of a key and kill it, and watch the cluster fail over.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may be unreachable before the others call it failed (and a replica takes
/// over): short, so that a failover takes seconds.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    for _ in 0..200 {
        let Ok(a) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let port = a.local_addr().unwrap().port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
        // Ephemeral ports are usually too high: try one below.
        let low = 20_000 + port % 20_000;
        if TcpListener::bind(("127.0.0.1", low)).is_ok()
            && TcpListener::bind(("127.0.0.1", low + 10_000)).is_ok()
        {
            return low;
        }
    }
    panic!("no free port pair for a cluster node");
}

pub struct Cluster {
    _dir: tempfile::TempDir,
    /// The directory of `ca.pem` when the nodes speak TLS only.
    tls: Option<PathBuf>,
    pub ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

impl Cluster {
    /// Plain TCP.
    pub async fn start() -> Cluster {
        Self::start_with(None).await
    }

    /// TLS only (client, replication and cluster bus), with the certificates in `certs`
    /// (`harness::tls::certificates`).
    pub async fn start_tls(certs: &Path) -> Cluster {
        Self::start_with(Some(certs)).await
    }

    async fn start_with(tls: Option<&Path>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = cluster_port();
            let home = dir.path().join(port.to_string());
            std::fs::create_dir_all(&home).unwrap();
            let mut cmd = Command::new("redis-server");
            cmd.current_dir(&home).args(["--bind", "127.0.0.1"]);
            match tls {
                None => cmd.args(["--port", &port.to_string()]),
                Some(certs) => {
                    let file = |name: &str| certs.join(name).display().to_string();
                    cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                        .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                        .args(["--tls-cert-file", &file("server.pem")])
                        .args(["--tls-key-file", &file("server.key")])
                        .args(["--tls-ca-cert-file", &file("ca.pem")])
                        .args(["--tls-auth-clients", "no"])
                }
            };
            let child = cmd
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                // A replica syncs at once (not after the default five seconds' wait for more
                // replicas): one that never synced is not eligible to take over.
                .args(["--repl-diskless-sync-delay", "0"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            ports.push(port);
            nodes.push(Some(child));
        }
        let cluster = Cluster {
            _dir: dir,
            tls: tls.map(Path::to_path_buf),
            ports,
            nodes,
        };
        for port in &cluster.ports {
            cluster.wait(*port, |_| true).await;
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut create = Command::new("redis-cli");
        if let Some(certs) = &cluster.tls {
            create.args(["--tls", "--cacert"]).arg(certs.join("ca.pem"));
        }
        let status = create
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        for port in &cluster.ports {
            cluster
                .wait(*port, |info| info.contains("cluster_state:ok"))
                .await;
            cluster.until_synced(*port).await;
        }
        cluster
    }

    /// Until the node on `port` is a master with its replica online, or a replica whose link
    /// to its master is up.
    async fn until_synced(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let replication = async {
                let mut c = self.node(port).await?;
                ::redis::cmd("INFO")
                    .arg("replication")
                    .query_async::<String>(&mut c)
                    .await
            };
            if let Ok(Ok(text)) = tokio::time::timeout(Duration::from_secs(1), replication).await {
                // A node `cluster create` has yet to turn into a replica still says
                // role:master: a master counts once its own replica is online.
                let master = text.contains("role:master")
                    && text.contains("connected_slaves:1")
                    && text.contains("state=online");
                if master || text.contains("master_link_status:up") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "replica {port} never synced");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// A direct connection to one node (no cluster routing).
    pub async fn node(
        &self,
        port: u16,
    ) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
        let url = format!("{}://127.0.0.1:{port}/", self.scheme());
        let client = match &self.tls {
            None => ::redis::Client::open(url)?,
            Some(certs) => ::redis::Client::build_with_tls(
                url,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(certs.join("ca.pem")).unwrap()),
                },
            )?,
        };
        client.get_multiplexed_async_connection().await
    }

    /// `CLUSTER INFO` of one node, bounded to a second.
    pub async fn info(&self, port: u16) -> Option<String> {
        let info = async {
            let mut c = self.node(port).await?;
            ::redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut c)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(1), info).await {
            Ok(Ok(info)) => Some(info),
            _ => None,
        }
    }

    /// Until `CLUSTER INFO` on `port` satisfies `ok`, for at most 20 seconds.
    pub async fn wait(&self, port: u16, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.info(port).await.is_some_and(|info| ok(&info)) {
                return;
            }
            assert!(Instant::now() < deadline, "cluster node {port} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The seed list for `limits.redis_cluster_nodes`: every node, as TOML.
    pub fn seeds(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"{}://127.0.0.1:{p}\"", self.scheme()))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// The port of the master serving `key`'s slot, asked of any live node.
    pub async fn master_of(&self, key: &str) -> Option<u16> {
        for (i, port) in self.ports.iter().enumerate() {
            if self.nodes[i].is_none() {
                continue;
            }
            let Ok(mut c) = self.node(*port).await else {
                continue;
            };
            let slot: ::redis::RedisResult<i64> = ::redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async(&mut c)
                .await;
            let slots: ::redis::RedisResult<::redis::Value> = ::redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(&mut c)
                .await;
            if let (Ok(slot), Ok(::redis::Value::Array(ranges))) = (slot, slots) {
                return ranges.iter().find_map(|range| master_port(range, slot));
            }
        }
        None
    }

    /// `CLUSTER NODES` as the first live node that answers sees it, for failure messages.
    pub async fn describe(&self) -> String {
        for port in self.alive() {
            let Ok(mut c) = self.node(port).await else {
                continue;
            };
            if let Ok(text) = ::redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut c)
                .await
            {
                return format!("CLUSTER NODES on {port}:\n{text}");
            }
        }
        "no live node answers".into()
    }

    /// The ports of the live masters, as one live node sees them.
    pub async fn masters(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for key in ["{a}", "{b}", "{c}", "{d}", "{e}", "{f}", "{g}", "{h}"] {
            if let Some(port) = self.master_of(key).await {
                if !out.contains(&port) {
                    out.push(port);
                }
            }
        }
        out
    }

    /// `WAIT 1 <ms>` on the master on `port`: how many replicas acknowledged every write so
    /// far. Redis replicates asynchronously; a test that kills a master after writing to it
    /// asks this first, so that what it kills is what the replica holds.
    pub async fn replicated(&self, port: u16) -> i64 {
        let mut c = self.node(port).await.expect("the master answers");
        ::redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query_async(&mut c)
            .await
            .expect("WAIT answers")
    }

    /// Kill the node on `port` (SIGKILL: no goodbye to its peers).
    pub fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The ports of the nodes still running.
    pub fn alive(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .filter(|(_, n)| n.is_some())
            .map(|(p, _)| *p)
            .collect()
    }
}

/// One `CLUSTER SLOTS` entry, `[start, end, [ip, port, id, ...], replicas...]`: its master's
/// port when it holds `slot`.
fn master_port(range: &::redis::Value, slot: i64) -> Option<u16> {
    use ::redis::Value;
    let Value::Array(fields) = range else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let (start, end) = (int(fields.first()?)?, int(fields.get(1)?)?);
    if !(start..=end).contains(&slot) {
        return None;
    }
    let Value::Array(master) = fields.get(2)? else {
        return None;
    };
    int(master.get(1)?).map(|p| p as u16)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
