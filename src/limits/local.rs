//! In-process limits (`pingora-limits`): the pre-authentication per-IP guard, the whole limiter
//! when no Redis is configured, and the fallback when Redis fails (`on_redis_error = "local"`).
//! Per process only: N instances admit up to N times the quota.
//!
//! Rates use a sliding-window estimate over two count-min windows (`Rate::rate_with`: the
//! previous window's count weighted by how much of it still overlaps, plus the current one), so
//! they do not admit 2x at a window edge. The window is `burst` requests' worth of time, which
//! keeps both GCRA promises approximately: `burst` at once, then the per-minute pace.
//! Memory is fixed whatever the number of keys; collisions over-count, never under-count.

use std::time::Duration;

use pingora_limits::inflight::{Guard, Inflight};
use pingora_limits::rate::Rate;

use super::gcra::Quota;

/// Shortest window a `Rate` is given: below it the estimate gets noisy.
const MIN_WINDOW: Duration = Duration::from_millis(100);

/// One sliding-window rate limit.
pub struct Window {
    rate: Rate,
    window: Duration,
    limit: f64,
}

/// A local refusal: an estimate of when a retry would pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalDeny {
    pub retry_after_ms: u64,
}

impl Window {
    pub fn new(quota: Quota) -> Window {
        let window = Duration::from_millis(quota.tolerance_ms()).max(MIN_WINDOW);
        Window {
            rate: Rate::new(window),
            window,
            // `burst` per burst-worth of time; more when the window was widened to its minimum.
            limit: (window.as_millis() as f64 / quota.emission_ms as f64).max(quota.burst as f64),
        }
    }

    /// Count one request for `key` when it fits; refuse (and count nothing) when it does not.
    pub fn check(&self, key: &str) -> Result<(), LocalDeny> {
        let parts = self.rate.rate_with(&key, |c| Parts {
            prev: c.prev_samples as f64,
            curr: c.curr_samples as f64,
            fraction: c.current_interval_fraction,
        });
        let estimate = parts.weighted();
        if estimate + 1.0 > self.limit {
            return Err(LocalDeny {
                retry_after_ms: parts.retry_after_ms(self.window, estimate + 1.0 - self.limit),
            });
        }
        self.rate.observe(&key, 1);
        Ok(())
    }
}

/// The counts of one key: previous window, current window, how far into the current one.
#[derive(Debug, Clone, Copy)]
struct Parts {
    prev: f64,
    curr: f64,
    fraction: f64,
}

impl Parts {
    /// Requests seen over the last window: the previous window's count scaled by its overlap.
    fn weighted(&self) -> f64 {
        self.prev * (1.0 - self.fraction) + self.curr
    }

    /// When the estimate will have dropped by `excess`: the previous window's share decays
    /// linearly; if that is not enough, the current window must roll over too.
    fn retry_after_ms(&self, window: Duration, excess: f64) -> u64 {
        let window_ms = window.as_millis() as f64;
        let left_in_window = (1.0 - self.fraction) * window_ms;
        let decay_per_ms = self.prev / window_ms;
        let ms = if decay_per_ms > 0.0 && excess / decay_per_ms <= left_in_window {
            excess / decay_per_ms
        } else {
            left_in_window + window_ms * (excess / self.curr.max(1.0)).min(1.0)
        };
        ms.ceil().max(1.0) as u64
    }
}

/// Concurrent downloads per user in this process.
pub struct Slots {
    inflight: Inflight,
}

impl Slots {
    pub fn new() -> Slots {
        Slots {
            inflight: Inflight::new(),
        }
    }

    /// Take a slot when fewer than `max` are held; the guard gives it back on drop.
    pub fn take(&self, user: &str, max: u32) -> Option<Guard> {
        let (guard, count) = self.inflight.incr(user, 1);
        // `count` includes this request; dropping the guard undoes the increment.
        (count <= max as isize).then_some(guard)
    }
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_admitted_then_refused() {
        let w = Window::new(Quota::per_minute(60, 3));
        for _ in 0..3 {
            assert!(w.check("k").is_ok());
        }
        let deny = w.check("k").unwrap_err();
        assert!(
            deny.retry_after_ms >= 1 && deny.retry_after_ms <= 6000,
            "{deny:?}"
        );
        // Other keys are independent.
        assert!(w.check("other").is_ok());
    }

    #[test]
    fn slots_are_capped_and_released_on_drop() {
        let s = Slots::new();
        let a = s.take("u", 2).unwrap();
        let _b = s.take("u", 2).unwrap();
        assert!(s.take("u", 2).is_none());
        drop(a);
        assert!(s.take("u", 2).is_some());
    }

    #[test]
    fn retry_after_uses_the_decay_of_the_previous_window() {
        let p = Parts {
            prev: 10.0,
            curr: 0.0,
            fraction: 0.0,
        };
        // 10 in the previous window decay at 1/s; one excess clears in a second.
        assert_eq!(p.retry_after_ms(Duration::from_secs(10), 1.0), 1000);
        // Nothing left to decay: wait for the current window to roll over.
        let p = Parts {
            prev: 0.0,
            curr: 3.0,
            fraction: 0.5,
        };
        assert_eq!(p.retry_after_ms(Duration::from_secs(10), 1.0), 5000 + 3334);
    }
}
