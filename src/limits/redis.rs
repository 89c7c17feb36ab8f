//! The shared limiter: one Lua script per request checks the user's and the IP's GCRA keys,
//! atomically, in one round trip. A long download takes a concurrency lease with a second
//! script once its size is known (small bodies, `304` and `HEAD` never do). Leases live in a
//! sorted set scored by expiry, so a crashed instance's slots free themselves after the TTL.
//! Every call is bounded by `limits.redis_timeout_ms`; after a failure Redis is skipped for a
//! second (requests go to the fallback at no cost) and then tried again, so the gateway returns
//! to Redis without a restart. Time comes from Redis (`TIME`), so instances' clocks may differ.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

use super::gcra::Quota;
use super::Scope;

/// How long Redis is skipped after a failed call before the next probe.
const BACKOFF_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often the background task retries a first connection that failed.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// GCRA for both keys (same lines as `gcra::check`). Nothing is written unless both pass.
/// Returns `{1, remaining, user_ahead_ms, ip_ahead_ms}` (how far each TAT now runs ahead of
/// Redis's clock) or `{0, scope, retry_ms, reset_ms}` (scope 1 user, 2 ip).
const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function gcra(key, emission, burst)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + emission
  local ahead = new_tat - now
  local tolerance = emission * burst
  if ahead > tolerance then
    return false, ahead - tolerance, tat - now
  end
  return true, new_tat, ahead, math.floor((tolerance - ahead) / emission)
end
local u_ok, u_a, u_b, u_rem = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if not u_ok then return {0, 1, u_a, u_b} end
local i_ok, i_a, i_b = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if not i_ok then return {0, 2, i_a, i_b} end
redis.call('SET', KEYS[1], u_a, 'PX', u_b)
redis.call('SET', KEYS[2], i_a, 'PX', i_b)
return {1, u_rem, u_b, i_b}
";

/// Batched mode's flush (`limits::batch`): add requests already admitted by one instance,
/// `ARGV[2i-1]` of them at an emission of `ARGV[2i]` ms to `KEYS[i]`, unconditionally (they
/// were served), and return how far each TAT now runs ahead of Redis's clock.
const ADD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[2 * i - 1]) * tonumber(ARGV[2 * i])
  redis.call('SET', key, tat, 'PX', math.max(tat - now, 1))
  out[i] = tat - now
end
return out
";
/// Keys per `ADD` call on a single server (a cluster sends one call per key).
const ADD_CHUNK: usize = 256;

/// GCRA for one key (the same function as `CHECK`): what a Redis Cluster runs, since a
/// script may only touch keys of one hash slot; the user's and the IP's checks are two of
/// these, sent at once. Returns `{1, remaining, reset_ms}` or `{0, retry_ms, reset_ms}`.
const CHECK_ONE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local emission, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + emission
local ahead = new_tat - now
local tolerance = emission * burst
if ahead > tolerance then return {0, ahead - tolerance, tat - now} end
redis.call('SET', KEYS[1], new_tat, 'PX', ahead)
return {1, math.floor((tolerance - ahead) / emission), ahead}
";

/// Take one of the user's download slots: expired leases (of crashed instances) are dropped
/// first. Returns 1 when taken, 0 when all `ARGV[1]` slots are held.
const LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
";

/// Push a running download's lease forward; `XX` so a lease already released stays released.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[1])
if n > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
";

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow {
        remaining: u64,
        /// How far the user's TAT now runs ahead of Redis's clock (RateLimit-Reset).
        reset_ms: u64,
        /// The same for the address's TAT.
        ip_ahead_ms: u64,
    },
    Deny {
        scope: Scope,
        retry_after_ms: u64,
        reset_ms: u64,
    },
}

/// Redis failed or was skipped: the caller applies `on_redis_error`.
#[derive(Debug, thiserror::Error)]
pub enum RedisTrouble {
    #[error("redis skipped after a recent failure")]
    BackingOff,
    #[error("redis not connected yet")]
    NotConnected,
    #[error("redis call timed out")]
    Timeout,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected script reply")]
    BadReply,
}

/// A client for `url`: `redis://` plain, `rediss://` over rustls, verified against `ca_pem`
/// (`limits.redis_ca_file`) when given and the system's roots otherwise. The broadcast of
/// deletes uses the same, so both reach Redis the same way.
pub fn client(url: &str, ca_pem: Option<&str>) -> redis::RedisResult<redis::Client> {
    match ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.as_bytes().to_vec()),
            },
        ),
        None => redis::Client::open(url),
    }
}

/// One request's keys and quotas.
pub struct CheckArgs<'a> {
    pub user_key: &'a str,
    pub ip_key: &'a str,
    pub user: Quota,
    pub ip: Quota,
}

/// Where the limiter's Redis is: one server, or a cluster reached through seed nodes.
enum Backend {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A connection to either: the cluster client follows `MOVED`/`ASK` and failovers itself,
/// and `Script::invoke_async` loads a script again after `NOSCRIPT` (a promoted replica).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub struct RedisLimiter {
    backend: Backend,
    conn: OnceLock<Conn>,
    timeout: Duration,
    lease_ttl: Duration,
    check: Script,
    check_one: Script,
    add: Script,
    lease: Script,
    renew: Script,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not asked.
    skip_until_ms: AtomicU64,
}

impl RedisLimiter {
    /// Parse the URL; the connection is made in the background on the I/O runtime.
    pub fn new(
        url: &str,
        ca_pem: Option<&str>,
        timeout: Duration,
        lease_ttl: Duration,
    ) -> redis::RedisResult<Self> {
        Self::with_backend(Backend::Single(client(url, ca_pem)?), timeout, lease_ttl)
    }

    /// A cluster through its seed nodes; connected in the background like `new`.
    pub fn new_cluster(
        nodes: &[&str],
        ca_pem: Option<&str>,
        timeout: Duration,
        lease_ttl: Duration,
    ) -> redis::RedisResult<Self> {
        let mut builder = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(timeout.max(Duration::from_millis(250)))
            .response_timeout(timeout)
            .retries(2);
        if let Some(pem) = ca_pem {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.as_bytes().to_vec()),
            });
        }
        Self::with_backend(Backend::Cluster(builder.build()?), timeout, lease_ttl)
    }

    fn with_backend(
        backend: Backend,
        timeout: Duration,
        lease_ttl: Duration,
    ) -> redis::RedisResult<Self> {
        Ok(RedisLimiter {
            backend,
            conn: OnceLock::new(),
            timeout,
            lease_ttl,
            check: Script::new(CHECK),
            check_one: Script::new(CHECK_ONE),
            add: Script::new(ADD),
            lease: Script::new(LEASE),
            renew: Script::new(RENEW),
            epoch: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        })
    }

    /// Connect until it works (must run on the I/O runtime: the connection lives there).
    /// Later reconnects are the `ConnectionManager`'s own.
    pub async fn connect_forever(self: Arc<Self>) {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_millis(250)))
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(200);
        loop {
            let conn = match &self.backend {
                Backend::Single(client) => {
                    ConnectionManager::new_with_config(client.clone(), config.clone())
                        .await
                        .map(Conn::Single)
                }
                Backend::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
            };
            match conn {
                Ok(conn) => {
                    let _ = self.conn.set(conn);
                    tracing::info!("connected to redis");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis connection failed; retrying");
                    tokio::time::sleep(CONNECT_RETRY).await;
                }
            }
        }
    }

    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The one round trip of every request: both rate limits.
    pub async fn check(&self, a: &CheckArgs<'_>) -> Result<Verdict, RedisTrouble> {
        if matches!(self.backend, Backend::Cluster(_)) {
            return self.check_in_cluster(a).await;
        }
        let mut invocation = self.check.key(a.user_key);
        invocation
            .key(a.ip_key)
            .arg(a.user.emission_ms)
            .arg(a.user.burst)
            .arg(a.ip.emission_ms)
            .arg(a.ip.burst);
        let mut conn = self.connection()?;
        let reply: Vec<i64> = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let n = |i: usize| reply.get(i).map(|v| (*v).max(0) as u64);
        match (n(0), n(1), n(2), n(3)) {
            (Some(1), Some(remaining), Some(reset_ms), Some(ip_ahead_ms)) => Ok(Verdict::Allow {
                remaining,
                reset_ms,
                ip_ahead_ms,
            }),
            (Some(0), Some(scope), Some(retry_after_ms), Some(reset_ms)) => Ok(Verdict::Deny {
                scope: match scope {
                    1 => Scope::User,
                    _ => Scope::Ip,
                },
                retry_after_ms,
                reset_ms,
            }),
            _ => Err(RedisTrouble::BadReply),
        }
    }

    /// `check` on a cluster: the two keys live in different slots, so each gets its own
    /// script, both sent at once on the one connection (one round trip of wall time). Unlike
    /// the single-server script, a request the IP limit refuses still spends the user's token.
    async fn check_in_cluster(&self, a: &CheckArgs<'_>) -> Result<Verdict, RedisTrouble> {
        let conn = self.connection()?;
        let one = |key: &str, q: Quota| {
            let mut conn = conn.clone();
            let mut invocation = self.check_one.key(key);
            invocation.arg(q.emission_ms).arg(q.burst);
            async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }
        };
        let both = async { tokio::try_join!(one(a.user_key, a.user), one(a.ip_key, a.ip)) };
        let (user, ip) = self.bounded(both).await?;
        let n = |r: &[i64], i: usize| r.get(i).map(|v| (*v).max(0) as u64);
        let deny = |scope, r: &[i64]| match (n(r, 1), n(r, 2)) {
            (Some(retry_after_ms), Some(reset_ms)) => Ok(Verdict::Deny {
                scope,
                retry_after_ms,
                reset_ms,
            }),
            _ => Err(RedisTrouble::BadReply),
        };
        match (n(&user, 0), n(&ip, 0)) {
            (Some(0), _) => deny(Scope::User, &user),
            (_, Some(0)) => deny(Scope::Ip, &ip),
            (Some(1), Some(1)) => match (n(&user, 1), n(&user, 2), n(&ip, 2)) {
                (Some(remaining), Some(reset_ms), Some(ip_ahead_ms)) => Ok(Verdict::Allow {
                    remaining,
                    reset_ms,
                    ip_ahead_ms,
                }),
                _ => Err(RedisTrouble::BadReply),
            },
            _ => Err(RedisTrouble::BadReply),
        }
    }

    /// Batched mode's flush: add `(key, requests, emission_ms)` to each key's TAT; how far each
    /// TAT runs ahead of Redis's clock afterwards, in the same order. A single server takes
    /// them in a few scripts; a cluster one script per key, all sent at once.
    pub async fn add(&self, items: &[(String, u32, u64)]) -> Result<Vec<u64>, RedisTrouble> {
        let conn = self.connection()?;
        let call = |chunk: &[(String, u32, u64)]| {
            let mut conn = conn.clone();
            let mut invocation = self.add.prepare_invoke();
            for (key, count, emission) in chunk {
                invocation.key(key).arg(*count).arg(*emission);
            }
            async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }
        };
        let per_call = match self.backend {
            Backend::Single(_) => ADD_CHUNK,
            Backend::Cluster(_) => 1,
        };
        let calls = futures_util::future::try_join_all(items.chunks(per_call).map(call));
        let replies = self.bounded(calls).await?;
        let aheads: Vec<u64> = replies
            .into_iter()
            .flatten()
            .map(|v| v.max(0) as u64)
            .collect();
        if aheads.len() == items.len() {
            Ok(aheads)
        } else {
            Err(RedisTrouble::BadReply)
        }
    }

    /// Whether Redis is being skipped after a recent failure (calls would fail at once).
    pub fn backing_off(&self) -> bool {
        self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed)
    }

    /// Take a download slot under `lease_id`; `false` when all `max_slots` are held.
    pub async fn lease(
        &self,
        slot_key: &str,
        lease_id: &str,
        max_slots: u32,
    ) -> Result<bool, RedisTrouble> {
        let mut invocation = self.lease.key(slot_key);
        invocation
            .arg(max_slots)
            .arg(lease_id)
            .arg(self.lease_ttl.as_millis() as u64);
        let mut conn = self.connection()?;
        let taken: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(taken == 1)
    }

    /// Keep a running download's lease alive.
    pub async fn renew(&self, slot_key: &str, lease_id: &str) -> Result<(), RedisTrouble> {
        let mut invocation = self.renew.key(slot_key);
        invocation
            .arg(lease_id)
            .arg(self.lease_ttl.as_millis() as u64);
        let mut conn = self.connection()?;
        let _: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Give a slot back.
    pub async fn release(&self, slot_key: &str, lease_id: &str) -> Result<(), RedisTrouble> {
        let mut conn = self.connection()?;
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(slot_key).arg(lease_id);
        let _: i64 = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(())
    }

    /// `PING`, for `/readyz`; on a cluster `CLUSTER INFO` instead, which must say the cluster
    /// serves every slot: a node of a cluster without quorum still answers `PING`.
    /// Ignores the backoff: readiness must see recovery at once.
    pub async fn ping(&self) -> Result<(), RedisTrouble> {
        let mut conn = self.conn.get().cloned().ok_or(RedisTrouble::NotConnected)?;
        let (command, ok): (redis::Cmd, fn(&str) -> bool) = match self.backend {
            Backend::Single(_) => (redis::cmd("PING"), |reply| reply == "PONG"),
            Backend::Cluster(_) => {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("INFO");
                (cmd, |reply| reply.contains("cluster_state:ok"))
            }
        };
        let reply: String = tokio::time::timeout(self.timeout, command.query_async(&mut conn))
            .await
            .map_err(|_| RedisTrouble::Timeout)??;
        if ok(&reply) {
            Ok(())
        } else {
            Err(RedisTrouble::BadReply)
        }
    }

    fn connection(&self) -> Result<Conn, RedisTrouble> {
        if self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return Err(RedisTrouble::BackingOff);
        }
        self.conn.get().cloned().ok_or(RedisTrouble::NotConnected)
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisTrouble> {
        let outcome = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => RedisTrouble::Redis(e),
            Err(_) => RedisTrouble::Timeout,
        };
        let until = self.now_ms() + BACKOFF_AFTER_FAILURE.as_millis() as u64;
        // Logged at most about once a second: later calls are skipped until `until`.
        tracing::warn!(error = %outcome, "redis call failed; limits fall back for a second");
        self.skip_until_ms.store(until, Ordering::Relaxed);
        Err(outcome)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}
