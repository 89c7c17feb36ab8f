//! Redis Cluster (SPEC §8) through the real gateway binary: a private cluster of three
//! masters and three replicas on 127.0.0.1 (Debian's `redis-server` and `redis-cli`), three
//! gateway instances on `limits.redis_cluster_nodes` sharing one per-user limit, and a delete
//! through one instance seen by the other two within a second.

mod harness;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::local::{Data, Extra, Local, PREFIX};
use harness::token;
use serde_json::json;

const SERVICE_TOKEN: &str = "cluster-test-service-token-0123456789";

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

/// Six `redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`.
struct Cluster {
    _dir: tempfile::TempDir,
    ports: Vec<u16>,
    nodes: Vec<Child>,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = cluster_port();
            let home = dir.path().join(port.to_string());
            std::fs::create_dir_all(&home).unwrap();
            let child = Command::new("redis-server")
                .current_dir(&home)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--cluster-node-timeout", "2000"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            ports.push(port);
            nodes.push(child);
        }
        let cluster = Cluster {
            _dir: dir,
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
        let status = Command::new("redis-cli")
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
        }
        cluster
    }

    /// Until `CLUSTER INFO` on `port` satisfies `ok`, for at most 20 seconds.
    async fn wait(&self, port: u16, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = async {
                let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
                let mut c = client.get_multiplexed_async_connection().await?;
                ::redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async::<String>(&mut c)
                    .await
            };
            if let Ok(Ok(info)) = tokio::time::timeout(Duration::from_secs(1), info).await {
                if ok(&info) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "cluster node {port} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn seeds(&self) -> String {
        let urls: Vec<String> = self.ports[..3]
            .iter()
            .map(|p| format!("\"redis://127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", urls.join(", "))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_limit_on_a_cluster() {
    let cluster = Cluster::start().await;
    let data = Data::create().await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    data.attachment("a1", Some("d1"), "text/plain", b"hello")
        .await;
    data.catalog.upsert_dialog("d2", "carol").await.unwrap();
    data.attachment("a2", Some("d2"), "text/plain", b"bye")
        .await;
    let env = Local::start(
        data,
        Extra {
            catalog: "cache_ttl_s = 600".into(),
            sections: format!(
                "[limits]\nredis_cluster_nodes = {}\nuser_per_minute = 60\nburst = 20\n\
                 ip_per_minute = 100000\nredis_timeout_ms = 500\n\
                 [internal]\nservice_token = \"{SERVICE_TOKEN}\"\n",
                cluster.seeds()
            ),
            ..Extra::default()
        },
    )
    .await;
    let (b, c) = (env.twin().await, env.twin().await);
    let gateways = [&env.gw, &b, &c];
    for gw in gateways {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let resp = env
                .client
                .get(format!("{}/readyz", gw.admin))
                .send()
                .await
                .unwrap();
            if resp.status() == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "not ready\n{}", gw.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Alice's limit is one, whichever instance she reaches: alone, each instance would let
    // its own burst through (60 or more of 60).
    let alice = token("alice", "USER", &[]);
    let mut statuses = Vec::new();
    for gw in gateways.repeat(20) {
        let resp = env
            .client
            .get(gw.url(&format!("{PREFIX}/d1/a1")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (20..=22).contains(&allowed),
        "{statuses:?}\n{}",
        env.gw.log()
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        !env.gw.log().contains("fall back"),
        "the limiter fell back:\n{}",
        env.gw.log()
    );

    // A delete through one instance, seen by the other two within a second. Carol reads her
    // own dialog (a budget of her own) on all three instances, so that all three cache it.
    let carol = token("carol", "USER", &[]);
    let read = |gw: &harness::Gateway| {
        env.client
            .get(gw.url(&format!("{PREFIX}/d2/a2")))
            .bearer_auth(&carol)
            .send()
    };
    for gw in gateways {
        let resp = read(gw).await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let resp = env
        .client
        .post(format!("{}/internal/attachments/delete", c.admin))
        .bearer_auth(SERVICE_TOKEN)
        .json(&json!({ "attachmentIds": ["a2"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", c.log());
    let sent = Instant::now();
    for gw in [&env.gw, &b] {
        loop {
            let status = read(gw).await.unwrap().status();
            if status == 404 {
                eprintln!("a2 gone on {} after {:?}", gw.base, sent.elapsed());
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(1),
                "still served\n{}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
