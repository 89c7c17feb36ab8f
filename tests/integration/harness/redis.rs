//! A private `redis-server` on an ephemeral port per suite, so that a test can kill it and
//! never shares its keys (the per-address buckets of 127.0.0.1 above all) with another suite.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A private Redis on an ephemeral port; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start_on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let server = RedisServer {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.connection().await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    pub async fn start() -> RedisServer {
        Self::start_on(free_port()).await
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub async fn connection(&self) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
        ::redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    pub async fn exists(&self, key: &str) -> bool {
        let mut c = self.connection().await.unwrap();
        ::redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut c)
            .await
            .unwrap()
            == 1
    }

    /// Scripts run so far (`EVAL` and `EVALSHA` calls, from `INFO commandstats`): the round
    /// trips the limiter made.
    pub async fn script_calls(&self) -> u64 {
        let mut c = self.connection().await.unwrap();
        let stats: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .unwrap();
        stats
            .lines()
            .filter(|l| l.starts_with("cmdstat_eval:") || l.starts_with("cmdstat_evalsha:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
