//! Exact per-key GCRA states in process: the pre-authentication per-IP guard, and the whole
//! limiter when Redis is absent or failing. Each key has its own theoretical arrival time, so a
//! flood from any number of keys never refuses a key that took no part in it (SPEC §8): no
//! shared, approximate counter to saturate.
//!
//! Memory is bounded: at most `MAX_KEYS` states, in shards. A state whose TAT has passed is the
//! same as no state (GCRA admits a fresh key exactly like an idle one), so a full shard first
//! drops those; if every state in it is still active, a new key is admitted without being
//! tracked (it is forgotten, never refused). Per process only.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Instant;

use super::gcra::{self, Decision, Quota};

const SHARDS: usize = 64;
/// Keys tracked at once per limit (about 6 MiB at most for IPv6 keys).
pub const MAX_KEYS: usize = 64 * 1024;

/// A local refusal: when a retry would pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalDeny {
    pub retry_after_ms: u64,
}

/// One rate limit over many keys.
pub struct KeyedGcra {
    quota: Quota,
    shards: Vec<Mutex<HashMap<String, u64>>>,
    per_shard: usize,
    hasher: RandomState,
    epoch: Instant,
}

impl KeyedGcra {
    pub fn new(quota: Quota) -> KeyedGcra {
        Self::with_capacity(quota, MAX_KEYS)
    }

    pub fn with_capacity(quota: Quota, max_keys: usize) -> KeyedGcra {
        KeyedGcra {
            quota,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Count one request for `key` now when it fits; refuse (and count nothing) when not.
    pub fn check(&self, key: &str) -> Result<(), LocalDeny> {
        self.check_at(key, self.epoch.elapsed().as_millis() as u64)
    }

    /// As [`Self::check`], at `now_ms` on this limiter's clock.
    pub fn check_at(&self, key: &str, now_ms: u64) -> Result<(), LocalDeny> {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut states = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tat = states.get(key).copied().unwrap_or(0);
        match gcra::check(self.quota, tat, now_ms) {
            Decision::Deny { retry_after_ms, .. } => Err(LocalDeny { retry_after_ms }),
            Decision::Allow { new_tat, .. } => {
                if let Some(state) = states.get_mut(key) {
                    *state = new_tat;
                } else {
                    if states.len() >= self.per_shard {
                        states.retain(|_, tat| *tat > now_ms);
                    }
                    if states.len() < self.per_shard {
                        states.insert(key.to_owned(), new_tat);
                    }
                }
                Ok(())
            }
        }
    }

    /// Keys tracked right now (for tests and the bound).
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_is_admitted_then_refused_per_key() {
        let limit = KeyedGcra::new(Quota::per_minute(60, 3));
        for _ in 0..3 {
            assert!(limit.check_at("k", 10_000).is_ok());
        }
        let deny = limit.check_at("k", 10_000).unwrap_err();
        assert_eq!(deny.retry_after_ms, 1000);
        assert!(limit.check_at("other", 10_000).is_ok());
        assert!(limit.check_at("k", 11_000).is_ok());
    }

    #[test]
    fn a_flood_of_keys_never_refuses_a_bystander() {
        let limit = KeyedGcra::with_capacity(Quota::per_minute(60, 10), 1024);
        for i in 0..20_000 {
            for _ in 0..6 {
                assert!(limit
                    .check_at(&format!("10.0.{}.{}", i / 256, i % 256), 5_000)
                    .is_ok());
            }
        }
        assert!(limit.tracked() <= 1024 + SHARDS);
        assert!(limit.check_at("192.0.2.1", 5_000).is_ok());
    }

    #[test]
    fn idle_states_make_room() {
        let limit = KeyedGcra::with_capacity(Quota::per_minute(60, 2), SHARDS);
        for i in 0..1000 {
            let _ = limit.check_at(&format!("k{i}"), 1_000);
        }
        // A minute later every state is idle: a shard's new key evicts them, the key is kept.
        for _ in 0..2 {
            assert!(limit.check_at("late", 70_000).is_ok());
        }
        assert!(limit.check_at("late", 70_000).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever other keys do, a key is refused only after its own burst.
        #[test]
        fn others_never_count(others in proptest::collection::vec("[a-z]{1,3}", 0..300), burst in 1u32..8) {
            let limit = KeyedGcra::new(Quota::per_minute(60, burst));
            for key in &others {
                let _ = limit.check_at(key, 1_000);
            }
            for _ in 0..burst {
                prop_assert!(limit.check_at("BYSTANDER", 1_000).is_ok());
            }
            prop_assert!(limit.check_at("BYSTANDER", 1_000).is_err());
        }
    }
}
