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

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::gcra::Quota;
use super::Scope;

/// How long Redis is skipped after a failed call before the next probe.
const BACKOFF_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often the background task retries a first connection that failed.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// GCRA for both keys (same lines as `gcra::check`). Nothing is written unless both pass.
/// Returns `{1, remaining, reset_ms}` or `{0, scope, retry_ms, reset_ms}` (scope 1 user, 2 ip).
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
return {1, u_rem, u_b}
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
        reset_ms: u64,
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

pub struct RedisLimiter {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    timeout: Duration,
    lease_ttl: Duration,
    check: Script,
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
        Ok(RedisLimiter {
            client: client(url, ca_pem)?,
            conn: OnceLock::new(),
            timeout,
            lease_ttl,
            check: Script::new(CHECK),
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
            match ConnectionManager::new_with_config(self.client.clone(), config.clone()).await {
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
            (Some(1), Some(remaining), Some(reset_ms), _) => Ok(Verdict::Allow {
                remaining,
                reset_ms,
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

    /// `PING`, for `/readyz`. Ignores the backoff: readiness must see recovery at once.
    pub async fn ping(&self) -> Result<(), RedisTrouble> {
        let mut conn = self.conn.get().cloned().ok_or(RedisTrouble::NotConnected)?;
        let pong: String =
            tokio::time::timeout(self.timeout, redis::cmd("PING").query_async(&mut conn))
                .await
                .map_err(|_| RedisTrouble::Timeout)??;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisTrouble::BadReply)
        }
    }

    fn connection(&self) -> Result<ConnectionManager, RedisTrouble> {
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
