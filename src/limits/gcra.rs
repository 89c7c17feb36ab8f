//! GCRA (generic cell rate algorithm) as pure maths: (state, now) -> decision. No clock, no I/O.
//!
//! A quota of `per_minute` with `burst` means: up to `burst` requests may arrive at once, after
//! which one more is admitted every `60 s / per_minute`. Unlike a fixed window, GCRA never admits
//! twice the quota around a window edge: the only state is the theoretical arrival time (TAT) of
//! the next request, so the Redis script (`redis.rs`) mirrors exactly these lines.

/// A rate quota in the units the maths uses (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time one request "costs": 60 000 ms / per_minute.
    pub emission_ms: u64,
    /// Requests that may arrive at once (at least 1).
    pub burst: u64,
}

impl Quota {
    /// `per_minute` requests per minute, `burst` at once. Both are clamped to at least 1.
    pub fn per_minute(per_minute: u32, burst: u32) -> Quota {
        Quota {
            emission_ms: (60_000 / u64::from(per_minute.max(1))).max(1),
            burst: u64::from(burst.max(1)),
        }
    }

    /// How far ahead of now the TAT may run: `burst` requests' worth.
    pub fn tolerance_ms(&self) -> u64 {
        self.emission_ms.saturating_mul(self.burst)
    }
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted: store `new_tat`; `remaining` more requests would pass right now.
    Allow {
        new_tat: u64,
        remaining: u64,
        /// Until the quota is full again (RateLimit-Reset).
        reset_ms: u64,
    },
    /// Refused: nothing to store; the earliest retry is `retry_after_ms` from now.
    Deny { retry_after_ms: u64, reset_ms: u64 },
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// One request at `now_ms` against the stored TAT (`0` or a past value when the key is new).
pub fn check(quota: Quota, tat_ms: u64, now_ms: u64) -> Decision {
    let tolerance = quota.tolerance_ms();
    let new_tat = tat_ms.max(now_ms).saturating_add(quota.emission_ms);
    let ahead = new_tat - now_ms;
    if ahead > tolerance {
        let current_ahead = tat_ms.saturating_sub(now_ms);
        Decision::Deny {
            retry_after_ms: ahead - tolerance,
            reset_ms: current_ahead,
        }
    } else {
        Decision::Allow {
            new_tat,
            remaining: (tolerance - ahead) / quota.emission_ms,
            reset_ms: ahead,
        }
    }
}

/// Whole seconds for `Retry-After` / `RateLimit-Reset` (RFC 9110 §10.2.3: an integer number of
/// seconds), rounded up so a client that waits that long is admitted; never 0 for a refusal.
pub fn whole_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_pace() {
        let q = Quota::per_minute(60, 3); // one a second, three at once
        let mut tat = 0;
        let now = 1_000_000;
        for expected_remaining in [2, 1, 0] {
            match check(q, tat, now) {
                Decision::Allow {
                    new_tat, remaining, ..
                } => {
                    assert_eq!(remaining, expected_remaining);
                    tat = new_tat;
                }
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(
            check(q, tat, now),
            Decision::Deny {
                retry_after_ms: 1000,
                reset_ms: 3000
            }
        );
        assert!(!check(q, tat, now + 999).allowed());
        assert!(check(q, tat, now + 1000).allowed());
    }

    #[test]
    fn quota_clamps_zero_values() {
        let q = Quota::per_minute(0, 0);
        assert_eq!(q.burst, 1);
        assert_eq!(q.emission_ms, 60_000);
        assert_eq!(Quota::per_minute(1_000_000, 1).emission_ms, 1);
    }

    #[test]
    fn whole_seconds_round_up_and_never_zero() {
        assert_eq!(whole_seconds(0), 1);
        assert_eq!(whole_seconds(1), 1);
        assert_eq!(whole_seconds(1000), 1);
        assert_eq!(whole_seconds(1001), 2);
    }

    /// Drive a sequence of arrivals through the algorithm; return the admitted times.
    fn run(q: Quota, gaps: &[u64]) -> Vec<u64> {
        let (mut tat, mut now, mut admitted) = (0u64, 10_000_000u64, Vec::new());
        for gap in gaps {
            now += gap;
            if let Decision::Allow { new_tat, .. } = check(q, tat, now) {
                tat = new_tat;
                admitted.push(now);
            }
        }
        admitted
    }

    proptest! {
        /// In any window of length W, at most burst + W / emission requests are admitted: the
        /// 2x-at-the-edge of a fixed window never happens.
        #[test]
        fn never_more_than_burst_plus_pace(
            per_minute in 1u32..600,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..3000, 1..300),
            window in 1u64..120_000,
        ) {
            let q = Quota::per_minute(per_minute, burst);
            let admitted = run(q, &gaps);
            for (i, start) in admitted.iter().enumerate() {
                let inside = admitted[i..].iter().take_while(|t| **t < start + window).count() as u64;
                prop_assert!(inside <= q.burst + window / q.emission_ms + 1,
                    "{inside} admitted in {window} ms with {q:?}");
            }
        }

        /// A client that waits `retry_after_ms` is admitted; one that waits less is not.
        #[test]
        fn retry_after_is_exact(per_minute in 1u32..600, burst in 1u32..10, extra in 0u64..5) {
            let q = Quota::per_minute(per_minute, burst);
            let now = 5_000_000;
            let mut tat = 0;
            for _ in 0..(q.burst + extra) {
                if let Decision::Allow { new_tat, .. } = check(q, tat, now) { tat = new_tat; }
            }
            match check(q, tat, now) {
                Decision::Deny { retry_after_ms, .. } => {
                    prop_assert!(retry_after_ms >= 1);
                    prop_assert!(!check(q, tat, now + retry_after_ms - 1).allowed());
                    prop_assert!(check(q, tat, now + retry_after_ms).allowed());
                }
                d => prop_assert!(false, "expected a refusal, got {:?}", d),
            }
        }

        /// Requests spaced at the pace are always admitted, whatever came long before.
        #[test]
        fn steady_pace_always_passes(per_minute in 1u32..600, burst in 1u32..10, n in 1usize..50) {
            let q = Quota::per_minute(per_minute, burst);
            let gaps = vec![q.emission_ms; n];
            prop_assert_eq!(run(q, &gaps).len(), n);
        }
    }
}
