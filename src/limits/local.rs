//! In-process concurrent-download slots (`pingora-limits`): the cap when no Redis is
//! configured, and the fallback when Redis fails (`on_redis_error = "local"`). Per process
//! only. The in-process rates are `keyed.rs`.

use pingora_limits::inflight::{Guard, Inflight};

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
    fn slots_are_capped_and_released_on_drop() {
        let s = Slots::new();
        let a = s.take("u", 2).unwrap();
        let _b = s.take("u", 2).unwrap();
        assert!(s.take("u", 2).is_none());
        drop(a);
        assert!(s.take("u", 2).is_some());
    }
}
