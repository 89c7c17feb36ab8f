//! Tokens already verified, so that a client sending the same token on every request (every
//! preview of a dialog page, every range of a video) pays for its signature and claims once:
//! verifying an HS256 token was about a tenth of a cached read's CPU (BENCHMARKS.md). Only
//! successes are kept, keyed by the token's exact bytes, each until its own `exp` (and not
//! before its `nbf`), leeway included, so an entry never outlives what `verify_at` would
//! accept. Bounded: a full shard first drops expired entries, then everything it holds.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::claims::Window;
use super::Principal;

const SHARDS: usize = 16;
/// Tokens remembered at once (each entry is a token of at most `MAX_TOKEN_BYTES` and a
/// principal: a few MiB at most).
const MAX_ENTRIES: usize = 4096;

pub struct Verified {
    shards: Vec<Mutex<HashMap<String, (Principal, Window)>>>,
    hasher: RandomState,
}

impl Verified {
    pub fn new() -> Verified {
        Verified {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(
        &self,
        token: &str,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Principal, Window)>> {
        self.shards[self.hasher.hash_one(token) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The principal of `token` when it was verified before and may still be accepted at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let mut shard = self.shard(token);
        match shard.get(token) {
            Some((principal, window)) if window.contains(now) => Some(principal.clone()),
            Some(_) => {
                shard.remove(token);
                None
            }
            None => None,
        }
    }

    /// Remember a token `verify_at` accepted at `now`.
    pub fn insert(&self, token: &str, principal: &Principal, window: Window, now: u64) {
        let mut shard = self.shard(token);
        if shard.len() >= MAX_ENTRIES / SHARDS {
            shard.retain(|_, (_, w)| w.contains(now));
            if shard.len() >= MAX_ENTRIES / SHARDS {
                shard.clear();
            }
        }
        shard.insert(token.to_owned(), (principal.clone(), window));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use serde_json::json;

    fn alice() -> Principal {
        Principal {
            user_id: "alice".into(),
            role: super::super::Role::User,
            permissions: Vec::new(),
        }
    }

    #[test]
    fn an_entry_lives_exactly_as_long_as_its_token() {
        let cache = Verified::new();
        let window = Window {
            from: Some(100.0),
            until: 200.0,
        };
        cache.insert("t", &alice(), window, 150);
        assert_eq!(cache.get("t", 150), Some(alice()));
        assert_eq!(cache.get("t", 99), None, "before nbf");
        cache.insert("t", &alice(), window, 150);
        assert_eq!(cache.get("t", 200), None, "at exp");
        assert_eq!(cache.get("t", 150), None, "and forgotten");
        assert_eq!(cache.get("other", 150), None);
    }

    #[test]
    fn it_stays_bounded() {
        let cache = Verified::new();
        let window = Window {
            from: None,
            until: 1e12,
        };
        for i in 0..(MAX_ENTRIES * 3) {
            cache.insert(&format!("token-{i}"), &alice(), window, 0);
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(held <= MAX_ENTRIES, "{held}");
    }

    /// Through the authenticator: a cached token is still refused once expired, and a token
    /// with one byte changed is verified (and refused) on its own.
    #[test]
    fn the_authenticator_never_answers_from_the_cache_what_it_would_refuse() {
        let auth = authenticator();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = hs256(&set("exp", json!(now + 2)));
        assert_eq!(auth.verify(&token), Ok(user_42()));
        assert_eq!(auth.verified.get(&token, now), Some(user_42()));
        assert_eq!(
            auth.verified.get(&token, now + 2 + auth.leeway_s),
            None,
            "expired in the cache too"
        );
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(auth.verify(&tampered).is_err());
        assert_eq!(auth.verify(&token), Ok(user_42()));
    }
}
