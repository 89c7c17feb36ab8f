//! Abuse controls (SPEC §8): per-user and per-IP rate limits and the per-user cap on concurrent
//! downloads, shared across instances through Redis, with an in-process fallback.
//!
//! ```text
//! request_filter ── check_ip (local, exact per address, before the token is looked at: floods of bad
//!                   tokens are refused at no Redis cost)
//! every request ── after authn: check_request
//!                     batched (limits.sync_ms > 0, the default): decided from this instance's
//!                       view of both keys, no round trip; counts go to Redis in batches
//!                       (`batch`); a key without a view, or with a full batch unsynced, takes
//!                       the strict path
//!                     strict: ONE script = user GCRA + IP GCRA, one round trip
//!                     Redis failing: on_redis_error = local | allow | deny (503)
//! long download  ── once its length is known and over limits.lease_over_bytes: take_slot
//!                   (a second script); small bodies, `304` and `HEAD` never hold a slot
//! streaming      ── SlotGuard in ctx renews the lease; released when the response ends,
//!                   on drop whatever the reason (done, client gone, error, timeout)
//! ```
//! What this module does not do: export metrics (it keeps counters; `metrics.rs` reads them).

pub mod batch;
pub mod gcra;
pub mod headers;
pub mod keyed;
pub mod keys;
pub mod local;
pub mod redis;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{LimitsConfig, OnRedisError};
use crate::io_runtime;
use batch::{Both, Views};
use gcra::Quota;
use keyed::KeyedGcra;
use local::Slots;
use redis::{CheckArgs, RedisLimiter, Verdict};

/// Which limit refused a request (the `scope` label of `rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Ip,
    Concurrency,
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Ip => "ip",
            Scope::Concurrency => "concurrency",
        }
    }

    /// The access-log outcome of a refusal.
    pub fn outcome(&self) -> &'static str {
        match self {
            Scope::User => "rate_limited_user",
            Scope::Ip => "rate_limited_ip",
            Scope::Concurrency => "rate_limited_concurrency",
        }
    }

    const ALL: [Scope; 3] = [Scope::User, Scope::Ip, Scope::Concurrency];
}

/// A refusal, with what the `429` headers tell the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: Scope,
    /// `Retry-After` (whole seconds, at least 1).
    pub retry_after_s: u64,
    /// `RateLimit-Limit`: the quota of the refusing limit.
    pub limit: u64,
    /// `RateLimit-Reset`: seconds until that quota is whole again.
    pub reset_s: u64,
}

/// Why the limiter refused: over a limit, or (with `on_redis_error = "deny"`) its shared store
/// is down. `error.rs` turns it into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("rate limited ({})", .0.scope.as_str())]
    Limited(Limited),
    #[error("rate limiter unavailable")]
    Unavailable,
}

/// Counters for the metrics module.
#[derive(Debug, Default)]
pub struct LimiterStats {
    fallbacks: AtomicU64,
    limited: [AtomicU64; 3],
}

impl LimiterStats {
    /// Requests decided without Redis because Redis failed or was being skipped.
    pub fn redis_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Requests refused by `scope`.
    pub fn limited(&self, scope: Scope) -> u64 {
        self.limited[scope as usize].load(Ordering::Relaxed)
    }

    /// Every scope with its count, for exporting.
    pub fn limited_by_scope(&self) -> [(Scope, u64); 3] {
        Scope::ALL.map(|s| (s, self.limited(s)))
    }
}

/// The limiter a gateway instance uses; cheap to share.
pub struct Limiter {
    user: Quota,
    ip: Quota,
    user_per_minute: u64,
    ip_per_minute: u64,
    max_slots: u32,
    on_error: OnRedisError,
    redis: Option<Arc<RedisLimiter>>,
    /// Batched mode's views (with Redis and `limits.sync_ms` > 0).
    batched: Option<Arc<Batched>>,
    local_user: KeyedGcra,
    local_ip: KeyedGcra,
    slots: Slots,
    stats: LimiterStats,
}

impl Limiter {
    /// Build from config. With Redis, the connection is made in the background on the I/O
    /// runtime: until it is up, requests take the `on_redis_error` path.
    pub fn new(cfg: &LimitsConfig) -> anyhow::Result<Limiter> {
        let user = Quota::per_minute(cfg.user_per_minute, cfg.burst);
        let ip = Quota::per_minute(cfg.ip_per_minute, cfg.burst);
        let ca = cfg.redis_ca.as_ref().map(|ca| ca.pem.as_str());
        let nodes: Vec<&str> = cfg.redis_cluster_nodes.iter().map(|n| n.expose()).collect();
        let redis = match &cfg.redis_url {
            _ if !nodes.is_empty() => {
                let redis = RedisLimiter::new_cluster(&nodes, ca, cfg.redis_timeout, cfg.lease_ttl)
                    .map_err(|e| anyhow::anyhow!("limits.redis_cluster_nodes: {:?}", e.kind()))?;
                let redis = Arc::new(redis);
                io_runtime::runtime().spawn(redis.clone().connect_forever());
                Some(redis)
            }
            Some(url) => {
                let redis = RedisLimiter::new(url.expose(), ca, cfg.redis_timeout, cfg.lease_ttl)
                    .map_err(|e| anyhow::anyhow!("limits.redis_url: {:?}", e.kind()))?;
                let redis = Arc::new(redis);
                io_runtime::runtime().spawn(redis.clone().connect_forever());
                Some(redis)
            }
            None => None,
        };
        let batched = match &redis {
            Some(redis) if !cfg.sync_interval.is_zero() => {
                let batched = Arc::new(Batched {
                    users: Views::new(user, cfg.sync_batch),
                    ips: Views::new(ip, cfg.sync_batch),
                    epoch: Instant::now(),
                    wake: tokio::sync::Notify::new(),
                });
                let (r, b) = (redis.clone(), batched.clone());
                io_runtime::runtime().spawn(flush_forever(r, b, cfg.sync_interval));
                Some(batched)
            }
            _ => None,
        };
        Ok(Limiter {
            user,
            ip,
            user_per_minute: cfg.user_per_minute.into(),
            ip_per_minute: cfg.ip_per_minute.into(),
            max_slots: cfg.max_concurrent_per_user,
            on_error: cfg.on_redis_error,
            redis,
            batched,
            local_user: KeyedGcra::new(user),
            local_ip: KeyedGcra::new(ip),
            slots: Slots::new(),
            stats: LimiterStats::default(),
        })
    }

    pub fn stats(&self) -> &LimiterStats {
        &self.stats
    }

    /// The cheap per-IP check made before the token is verified: in-process, no Redis.
    /// It never refuses a client the shared limit would admit (it sees a subset of the
    /// requests under the same quota); it stops floods (of bad tokens, say) at no cost.
    /// States are exact per address (`keyed`): a flood from other addresses never refuses
    /// this one.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), LimitError> {
        let Some(ip) = ip else { return Ok(()) };
        self.local_ip
            .check(&ip_key(ip))
            .map_err(|deny| self.refuse(Scope::Ip, deny.retry_after_ms, self.ip.tolerance_ms()))
    }

    /// Count one authenticated request (every read, upload, delete...) against the user's and
    /// the IP's quotas: from this instance's views (batched mode), or one Redis round trip.
    /// Call it right after authentication.
    pub async fn check_request(&self, user: &str, ip: Option<IpAddr>) -> Result<(), LimitError> {
        if let Some(redis) = &self.redis {
            if let Some(b) = self.batched.as_ref().filter(|_| !redis.backing_off()) {
                let ip_id = keys::ip_id(ip);
                match batch::admit_both((&b.users, user), (&b.ips, &ip_id), b.now()) {
                    Both::Admit { flush } => {
                        if flush {
                            b.wake.notify_one();
                        }
                        return Ok(());
                    }
                    Both::Deny {
                        scope,
                        retry_after_ms,
                        reset_ms,
                    } => return Err(self.refuse(scope, retry_after_ms, reset_ms)),
                    Both::AskRedis => {}
                }
            }
            match self.check_redis(redis, user, ip).await {
                Ok(decided) => return decided,
                Err(trouble) => {
                    if let Some(b) = &self.batched {
                        // Until Redis answers again every request asks it, and meets
                        // on_redis_error exactly as in strict mode.
                        b.users.clear();
                        b.ips.clear();
                    }
                    self.fall_back(trouble)?;
                    if self.on_error == OnRedisError::Allow {
                        return Ok(());
                    }
                }
            }
        }
        // In-process. The IP was already counted by `check_ip` before authentication.
        self.local_user
            .check(user)
            .map_err(|deny| self.refuse(Scope::User, deny.retry_after_ms, self.user.tolerance_ms()))
    }

    /// Take one of the user's download slots, for a body long enough to be worth capping
    /// (`limits.lease_over_bytes`). Keep the guard for as long as the response streams.
    pub async fn take_slot(&self, user: &str) -> Result<SlotGuard, LimitError> {
        self.take(keys::user_downloads(user), self.max_slots).await
    }

    /// Take one of the user's `max` upload slots (`upload.max_concurrent_per_user`), the same
    /// way: a Redis lease when configured, else in-process. Keep it while the body is stored.
    pub async fn take_upload_slot(&self, user: &str, max: u32) -> Result<SlotGuard, LimitError> {
        self.take(keys::user_uploads(user), max).await
    }

    async fn take(&self, key: String, max: u32) -> Result<SlotGuard, LimitError> {
        if let Some(redis) = &self.redis {
            let lease = uuid::Uuid::new_v4().simple().to_string();
            let (r, k, l) = (redis.clone(), key.clone(), lease.clone());
            let taken = io_runtime::run(async move { r.lease(&k, &l, max).await })
                .await
                .unwrap_or(Err(redis::RedisTrouble::BadReply));
            match taken {
                Ok(true) => return Ok(SlotGuard::leased(redis.clone(), key, lease)),
                Ok(false) => return Err(self.refuse_slot(max)),
                Err(trouble) => {
                    self.fall_back(trouble)?;
                    if self.on_error == OnRedisError::Allow {
                        return Ok(SlotGuard::none());
                    }
                }
            }
        }
        match self.slots.take(&key, max) {
            Some(guard) => Ok(SlotGuard {
                held: Some(Held::Local { _guard: guard }),
            }),
            None => Err(self.refuse_slot(max)),
        }
    }

    /// Whether the shared store answers (`None` when there is none).
    pub async fn redis_ready(&self) -> Option<bool> {
        let redis = self.redis.clone()?;
        Some(matches!(
            io_runtime::run(async move { redis.ping().await }).await,
            Ok(Ok(()))
        ))
    }

    /// Whether a Redis outage makes the gateway refuse requests (then it is not ready).
    pub fn needs_redis(&self) -> bool {
        self.redis.is_some() && self.on_error == OnRedisError::Deny
    }

    /// Redis failed: count it and apply `on_redis_error`. `Ok` means decide in-process
    /// (`local`) or let the request through (`allow`); the caller tells them apart.
    fn fall_back(&self, trouble: redis::RedisTrouble) -> Result<(), LimitError> {
        self.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(error = %trouble, "rate limiter: redis unavailable");
        match self.on_error {
            OnRedisError::Deny => Err(LimitError::Unavailable),
            OnRedisError::Allow | OnRedisError::Local => Ok(()),
        }
    }

    /// `Ok(decision)` when Redis answered; `Err` when it did not.
    async fn check_redis(
        &self,
        redis: &Arc<RedisLimiter>,
        user: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<(), LimitError>, redis::RedisTrouble> {
        let (user_key, ip_key) = (keys::user_rate(user), keys::ip_rate(ip));
        let (user_q, ip_q, r) = (self.user, self.ip, redis.clone());
        let verdict = io_runtime::run(async move {
            r.check(&CheckArgs {
                user_key: &user_key,
                ip_key: &ip_key,
                user: user_q,
                ip: ip_q,
            })
            .await
        })
        .await
        .map_err(|_| redis::RedisTrouble::BadReply)??;
        if let Some(b) = &self.batched {
            b.learn(user, ip, &verdict);
        }
        Ok(match verdict {
            Verdict::Allow { .. } => Ok(()),
            Verdict::Deny {
                scope,
                retry_after_ms,
                reset_ms,
            } => Err(self.refuse(scope, retry_after_ms, reset_ms)),
        })
    }

    /// A slot cap of `max` is full: retry in a second.
    fn refuse_slot(&self, max: u32) -> LimitError {
        self.refuse_with(Scope::Concurrency, 1000, 1000, max.into())
    }

    fn refuse(&self, scope: Scope, retry_after_ms: u64, reset_ms: u64) -> LimitError {
        let limit = match scope {
            Scope::User => self.user_per_minute,
            Scope::Ip => self.ip_per_minute,
            Scope::Concurrency => self.max_slots.into(),
        };
        self.refuse_with(scope, retry_after_ms, reset_ms, limit)
    }

    fn refuse_with(
        &self,
        scope: Scope,
        retry_after_ms: u64,
        reset_ms: u64,
        limit: u64,
    ) -> LimitError {
        self.stats.limited[scope as usize].fetch_add(1, Ordering::Relaxed);
        LimitError::Limited(Limited {
            scope,
            retry_after_s: gcra::whole_seconds(retry_after_ms),
            limit,
            reset_s: gcra::whole_seconds(reset_ms.max(retry_after_ms)),
        })
    }
}

/// Batched mode's state, shared with its flusher.
struct Batched {
    users: Views,
    ips: Views,
    /// The views' clock: milliseconds since this.
    epoch: Instant,
    /// Woken by a request that leaves half a batch pending: flush now, not at the next tick.
    wake: tokio::sync::Notify,
}

impl Batched {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A strict check's answer gives both keys (or the refusing one) a fresh view.
    fn learn(&self, user: &str, ip: Option<IpAddr>, verdict: &Verdict) {
        let now = self.now();
        match *verdict {
            Verdict::Allow {
                reset_ms,
                ip_ahead_ms,
                ..
            } => {
                self.users.learn(user, reset_ms, 0, now);
                self.ips.learn(&keys::ip_id(ip), ip_ahead_ms, 0, now);
            }
            Verdict::Deny {
                scope: Scope::User,
                reset_ms,
                ..
            } => self.users.learn(user, reset_ms, 0, now),
            Verdict::Deny { reset_ms, .. } => self.ips.learn(&keys::ip_id(ip), reset_ms, 0, now),
        }
    }
}

/// Batched mode's flusher, for the life of the process: every `every`, or when woken, send
/// Redis the requests admitted from the views since the last flush, and raise the views to
/// what Redis answers (which includes every other instance's flushed counts).
async fn flush_forever(redis: Arc<RedisLimiter>, b: Arc<Batched>, every: Duration) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = b.wake.notified() => {}
        }
        let (users, ips) = (b.users.take_pending(), b.ips.take_pending());
        if users.is_empty() && ips.is_empty() {
            continue;
        }
        let (user_q, ip_q) = (b.users.quota(), b.ips.quota());
        let items: Vec<(String, u32, u64)> = users
            .iter()
            .map(|p| (keys::user_rate(&p.id), p.count, user_q.emission_ms))
            .chain(
                ips.iter()
                    .map(|p| (keys::ip_rate_of(&p.id), p.count, ip_q.emission_ms)),
            )
            .collect();
        match redis.add(&items).await {
            Ok(aheads) => {
                let now = b.now();
                let (for_users, for_ips) = aheads.split_at(users.len());
                for (p, ahead) in users.iter().zip(for_users) {
                    b.users.learn(&p.id, *ahead, p.count, now);
                }
                for (p, ahead) in ips.iter().zip(for_ips) {
                    b.ips.learn(&p.id, *ahead, p.count, now);
                }
            }
            Err(e) => {
                // The counts are lost (at most a batch per key); every request now asks Redis
                // and meets on_redis_error while it fails.
                tracing::debug!(error = %e, "rate limiter: flush failed");
                b.users.clear();
                b.ips.clear();
            }
        }
    }
}

/// The key an address is limited under: IPv4 as is; IPv6 by its /64, since one subscriber
/// usually holds a whole /64 and could otherwise rotate addresses at will.
pub fn ip_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// A download slot held for as long as the response streams. Released when it is dropped
/// (Drop cannot await: the Redis release is spawned on the I/O runtime): whatever ends the
/// response (done, client gone, error, timeout, shutdown) drops the request's ctx. A Redis
/// lease is renewed in the background while held, and expires if this process dies.
pub struct SlotGuard {
    held: Option<Held>,
}

enum Held {
    /// Held only for its Drop, which gives the in-process slot back.
    Local {
        _guard: pingora_limits::inflight::Guard,
    },
    Redis {
        redis: Arc<RedisLimiter>,
        key: String,
        lease: String,
        renewal: tokio::task::AbortHandle,
    },
}

impl SlotGuard {
    /// No slot (not a download, or limits not enforced).
    pub fn none() -> SlotGuard {
        SlotGuard { held: None }
    }

    fn leased(redis: Arc<RedisLimiter>, key: String, lease: String) -> SlotGuard {
        let every = redis.lease_ttl() / 3;
        let (r, k, l) = (redis.clone(), key.clone(), lease.clone());
        let renewal = io_runtime::runtime()
            .spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = r.renew(&k, &l).await {
                        tracing::debug!(error = %e, "lease renewal failed");
                    }
                }
            })
            .abort_handle();
        SlotGuard {
            held: Some(Held::Redis {
                redis,
                key,
                lease,
                renewal,
            }),
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(Held::Redis {
            redis,
            key,
            lease,
            renewal,
        }) = self.held.take()
        {
            renewal.abort();
            io_runtime::runtime().spawn(async move {
                if let Err(e) = redis.release(&key, &lease).await {
                    // The lease expires on its own after `limits.lease_ttl_s`.
                    tracing::debug!(error = %e, "slot release failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), "2001:db8:1:2::/64");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(ip_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    fn config(burst: u32, max: u32) -> LimitsConfig {
        LimitsConfig {
            redis_url: None,
            redis_cluster_nodes: Vec::new(),
            redis_ca: None,
            user_per_minute: 60,
            ip_per_minute: 60,
            burst,
            max_concurrent_per_user: max,
            on_redis_error: OnRedisError::Local,
            redis_timeout: std::time::Duration::from_millis(50),
            sync_interval: std::time::Duration::from_millis(50),
            sync_batch: 32,
            lease_over_bytes: 1024 * 1024,
            lease_ttl: std::time::Duration::from_secs(30),
            write_idle_timeout: std::time::Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn in_process_limits_refuse_with_a_scope() {
        let limiter = Limiter::new(&config(2, 1)).unwrap();
        let ip = Some("192.0.2.1".parse().unwrap());
        assert!(limiter.check_ip(ip).is_ok());
        assert!(limiter.check_ip(ip).is_ok());
        match limiter.check_ip(ip) {
            Err(LimitError::Limited(l)) => {
                assert_eq!(l.scope, Scope::Ip);
                assert!(l.retry_after_s >= 1);
            }
            other => panic!("{other:?}"),
        }
        let slot = limiter.take_slot("u").await.unwrap();
        match limiter.take_slot("u").await {
            Err(LimitError::Limited(l)) => assert_eq!(l.scope, Scope::Concurrency),
            other => panic!("{:?}", other.map(|_| ())),
        }
        drop(slot);
        // Slots are not requests: the user's burst of 2 is still whole.
        assert!(limiter.check_request("u", ip).await.is_ok());
        assert!(limiter.check_request("u", ip).await.is_ok());
        assert!(matches!(
            limiter.check_request("u", ip).await,
            Err(LimitError::Limited(Limited {
                scope: Scope::User,
                ..
            }))
        ));
        assert_eq!(limiter.stats().limited(Scope::Ip), 1);
        assert_eq!(limiter.stats().limited(Scope::Concurrency), 1);
        assert_eq!(limiter.stats().limited(Scope::User), 1);
    }
}
