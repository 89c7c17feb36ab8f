//! Local-then-global rate limits (`limits.sync_ms` > 0): each instance decides from its own
//! view of a key's GCRA state and tells Redis what it admitted in batches, instead of one round
//! trip per request (as Kong's `sync_rate` or Envoy's local-then-global limits do).
//!
//! A key's view is Redis's TAT as of this instance's last exchange with Redis about it, plus
//! the requests this instance admitted since ("unsynced": pending, or sent and not confirmed).
//! A request is decided locally only when the key has a view and its unsynced count is under
//! `limits.sync_batch`; otherwise it takes the strict path (one script, as in strict mode),
//! which also gives the key a fresh view. The flusher (`Limiter::flush_forever`) sends the
//! pending counts every `sync_ms`, or as soon as a key has half a batch pending.
//!
//! The bound: every instance's unsynced count is below `sync_batch` per key, and each decides
//! with everything Redis knew at its last exchange, so at any moment all instances together
//! have admitted at most `(instances - 1) x sync_batch` requests per key more than one strict
//! limiter would (the instance that synced last sees every other's synced count, and only the
//! others' unsynced counts are hidden from it). Views only ever rise towards Redis's TAT, never
//! below what this instance admitted itself, so a view never admits what Redis would refuse
//! for this instance's own requests.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::gcra::{self, Decision, Quota};
use super::keyed::MAX_KEYS;
use super::Scope;

const SHARDS: usize = 64;

/// What one view says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    /// Admitted and counted as pending.
    Admit,
    /// Over the limit by this view (nothing counted).
    Deny { retry_after_ms: u64, reset_ms: u64 },
    /// No view, or too many unsynced: ask Redis (the strict path).
    AskRedis,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    /// The TAT as this instance sees it, on its own clock (ms since the limiter's epoch).
    tat: u64,
    /// Admitted here and not yet sent.
    pending: u32,
    /// Sent in the flush under way, not yet confirmed.
    in_flight: u32,
}

impl State {
    fn unsynced(&self) -> u32 {
        self.pending + self.in_flight
    }
}

#[derive(Default)]
struct Shard {
    states: HashMap<String, State>,
    /// Keys whose pending count went from 0 to 1 since the last flush.
    dirty: Vec<String>,
}

/// Pending requests of one key, taken by a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub count: u32,
}

/// The views of one limit (user or address) over many keys.
pub struct Views {
    quota: Quota,
    batch: u32,
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl Views {
    pub fn new(quota: Quota, batch: u32) -> Views {
        Views {
            quota,
            batch: batch.max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: MAX_KEYS.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[self.hasher.hash_one(id) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decide one request for `id` at `now`, counting it when admitted. The flag is true when
    /// the key now has half a batch pending: time to flush.
    pub fn admit(&self, id: &str, now: u64) -> (Local, bool) {
        let mut shard = self.shard(id);
        let verdict = self.decide(shard.states.get(id), now);
        let flush = verdict == Local::Admit && self.count(&mut shard, id, now);
        (verdict, flush)
    }

    fn decide(&self, state: Option<&State>, now: u64) -> Local {
        decide(self.quota, self.batch, state, now)
    }

    /// Count one admitted request of `id` in its (locked) shard.
    fn count(&self, shard: &mut Shard, id: &str, now: u64) -> bool {
        let Some(state) = shard.states.get_mut(id) else {
            return false;
        };
        state.tat = state.tat.max(now) + self.quota.emission_ms;
        state.pending += 1;
        let (first, half) = (state.pending == 1, state.pending >= self.batch.div_ceil(2));
        if first {
            shard.dirty.push(id.to_owned());
        }
        half
    }

    /// Redis said the key's TAT is `ahead_ms` past its now (after a strict check, or after
    /// a flush that carried `confirmed` of this key's requests): raise the view to that, plus
    /// what is still unsynced here. Creates the view when the shard has room.
    pub fn learn(&self, id: &str, ahead_ms: u64, confirmed: u32, now: u64) {
        let emission = self.quota.emission_ms;
        let per_shard = self.per_shard;
        let mut shard = self.shard(id);
        if !shard.states.contains_key(id) {
            if shard.states.len() >= per_shard {
                shard.states.retain(|_, s| s.tat > now || s.unsynced() > 0);
            }
            if shard.states.len() >= per_shard {
                return; // untracked: its requests keep taking the strict path
            }
            shard.states.insert(id.to_owned(), State::default());
        }
        let state = shard.states.get_mut(id).expect("inserted above");
        state.in_flight -= confirmed.min(state.in_flight);
        let redis = now + ahead_ms + u64::from(state.pending) * emission;
        state.tat = state.tat.max(redis);
    }

    /// Everything pending, moved to in flight: the next flush's content.
    pub fn take_pending(&self) -> Vec<Pending> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let shard = &mut *shard;
            for id in shard.dirty.drain(..) {
                if let Some(state) = shard.states.get_mut(&id) {
                    if state.pending > 0 {
                        out.push(Pending {
                            id,
                            count: state.pending,
                        });
                        state.in_flight += state.pending;
                        state.pending = 0;
                    }
                }
            }
        }
        out
    }

    /// Forget every view (Redis failed: until it answers again, every request asks it, and
    /// so meets `on_redis_error` as in strict mode). Unsynced counts are dropped too: Redis
    /// could not take them, and the fallback decides alone from here on.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.states.clear();
            shard.dirty.clear();
        }
    }
}

/// What the user's and the address's views say of one request together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Both {
    /// Counted in both; `flush` when either now has half a batch pending.
    Admit { flush: bool },
    /// Refused by `scope`'s view (nothing counted).
    Deny {
        scope: Scope,
        retry_after_ms: u64,
        reset_ms: u64,
    },
    /// Either has no view or a full batch unsynced: the strict path.
    AskRedis,
}

/// Admit one request against the user's and the address's views at once: counted in both or
/// in neither. Locks the user's shard, then the address's: always in this order.
pub fn admit_both(user: (&Views, &str), ip: (&Views, &str), now: u64) -> Both {
    let refused = |scope, local| match local {
        Local::Deny {
            retry_after_ms,
            reset_ms,
        } => Both::Deny {
            scope,
            retry_after_ms,
            reset_ms,
        },
        _ => Both::AskRedis,
    };
    let (user_views, user_id) = user;
    let (ip_views, ip_id) = ip;
    let mut user_shard = user_views.shard(user_id);
    let u = user_views.decide(user_shard.states.get(user_id), now);
    if u != Local::Admit {
        return refused(Scope::User, u);
    }
    let mut ip_shard = ip_views.shard(ip_id);
    let i = ip_views.decide(ip_shard.states.get(ip_id), now);
    if i != Local::Admit {
        return refused(Scope::Ip, i);
    }
    let flush_user = user_views.count(&mut user_shard, user_id, now);
    let flush_ip = ip_views.count(&mut ip_shard, ip_id, now);
    Both::Admit {
        flush: flush_user || flush_ip,
    }
}

/// The pure decision for one key's view at `now`.
fn decide(quota: Quota, batch: u32, state: Option<&State>, now: u64) -> Local {
    let Some(state) = state else {
        return Local::AskRedis;
    };
    if state.unsynced() >= batch {
        return Local::AskRedis;
    }
    match gcra::check(quota, state.tat, now) {
        Decision::Allow { .. } => Local::Admit,
        Decision::Deny {
            retry_after_ms,
            reset_ms,
        } => Local::Deny {
            retry_after_ms,
            reset_ms,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(burst: u32, batch: u32) -> Views {
        // One request a second, `burst` at once.
        Views::new(Quota::per_minute(60, burst), batch)
    }

    #[test]
    fn an_unknown_key_asks_redis_then_decides_locally() {
        let v = views(10, 4);
        assert_eq!(v.admit("u", 1000), (Local::AskRedis, false));
        // Redis admitted one (TAT one emission ahead).
        v.learn("u", 1000, 0, 1000);
        assert_eq!(v.admit("u", 1000), (Local::Admit, false));
        assert_eq!(
            v.admit("u", 1000),
            (Local::Admit, true),
            "half a batch of 4 pending"
        );
        assert_eq!(
            v.take_pending(),
            vec![Pending {
                id: "u".into(),
                count: 2
            }]
        );
        assert!(v.take_pending().is_empty());
    }

    #[test]
    fn unsynced_requests_are_capped_at_one_batch() {
        let v = views(100, 3);
        v.learn("u", 0, 0, 0);
        for _ in 0..3 {
            assert_eq!(v.admit("u", 0).0, Local::Admit);
        }
        assert_eq!(v.admit("u", 0).0, Local::AskRedis, "3 unsynced");
        let sent = v.take_pending();
        assert_eq!(v.admit("u", 0).0, Local::AskRedis, "still in flight");
        // Redis confirms them (and counted two from another instance): room again.
        v.learn("u", 5000, sent[0].count, 0);
        assert_eq!(v.admit("u", 0).0, Local::Admit);
    }

    #[test]
    fn a_view_denies_what_redis_has_used_up() {
        let v = views(5, 10);
        // Other instances used the whole burst: Redis's TAT is five seconds ahead.
        v.learn("u", 5000, 0, 0);
        match v.admit("u", 0).0 {
            Local::Deny { retry_after_ms, .. } => assert_eq!(retry_after_ms, 1000),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            v.admit("u", 1000).0,
            Local::Admit,
            "one back after a second"
        );
    }

    #[test]
    fn views_never_fall_below_own_admissions() {
        let v = views(10, 10);
        v.learn("u", 0, 0, 0);
        for _ in 0..4 {
            v.admit("u", 0);
        }
        // A stale reply (ahead 0) must not forget the four admitted here.
        v.learn("u", 0, 0, 0);
        let mut admitted = 0;
        while v.admit("u", 0).0 == Local::Admit {
            admitted += 1;
        }
        assert_eq!(admitted, 6, "10 at once, 4 already used here");
    }

    #[test]
    fn a_cleared_view_asks_redis_again() {
        let v = views(10, 10);
        v.learn("u", 0, 0, 0);
        v.admit("u", 0);
        v.clear();
        assert_eq!(v.admit("u", 0).0, Local::AskRedis);
        assert!(v.take_pending().is_empty());
    }

    #[test]
    fn both_limits_count_together_or_not_at_all() {
        let (users, ips) = (views(10, 10), views(1, 10));
        users.learn("u", 0, 0, 0);
        assert_eq!(admit_both((&users, "u"), (&ips, "a"), 0), Both::AskRedis);
        ips.learn("a", 0, 0, 0);
        assert_eq!(
            admit_both((&users, "u"), (&ips, "a"), 0),
            Both::Admit { flush: false }
        );
        // The address's burst of one is spent: refused by it, and the user's count is kept.
        assert!(matches!(
            admit_both((&users, "u"), (&ips, "a"), 0),
            Both::Deny {
                scope: Scope::Ip,
                ..
            }
        ));
        assert_eq!(users.take_pending()[0].count, 1);
    }

    /// The documented bound, simulated: `n` instances with views, one Redis (a TAT), requests
    /// arriving at once at all of them, flushes whenever an instance's batch is full. All
    /// together admit at most burst + (n - 1) x batch.
    #[test]
    fn instances_together_overshoot_by_at_most_one_batch_each_but_one() {
        for (n, burst, batch) in [(2, 20, 5), (3, 200, 32), (4, 10, 1)] {
            let instances: Vec<Views> = (0..n).map(|_| views(burst, batch)).collect();
            let quota = Quota::per_minute(60, burst);
            let mut redis_tat = 0u64;
            let now = 1_000_000;
            let mut admitted = 0u32;
            // Each instance first asks Redis strictly (a new key).
            for v in &instances {
                if let Decision::Allow { new_tat, .. } = gcra::check(quota, redis_tat, now) {
                    redis_tat = new_tat;
                    admitted += 1;
                    v.learn("u", redis_tat - now, 0, now);
                }
            }
            // Then they take turns admitting locally, flushing when full, many rounds.
            for round in 0..(burst * 4) {
                let v = &instances[round as usize % n];
                match v.admit("u", now).0 {
                    Local::Admit => admitted += 1,
                    Local::AskRedis => {
                        for p in v.take_pending() {
                            redis_tat = redis_tat.max(now) + u64::from(p.count) * 1000;
                            v.learn("u", redis_tat - now, p.count, now);
                        }
                    }
                    Local::Deny { .. } => {}
                }
            }
            let bound = burst + (n as u32 - 1) * batch;
            assert!(
                admitted <= bound,
                "{n} instances, burst {burst}, batch {batch}: {admitted} > {bound}"
            );
            assert!(admitted >= burst, "{admitted} < {burst}");
        }
    }
}
