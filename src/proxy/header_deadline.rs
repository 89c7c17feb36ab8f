//! A total deadline for reading each request's headers. Pingora 0.9 bounds each read of a
//! request head (and the idle keep-alive wait), never the whole head, so a client sending one
//! header byte now and then holds a connection for ever. `HeaderDeadline` wraps the HTTP/1
//! server app: a connection's clock runs from its start, stops when a head is in
//! (`headers_read`), and the connection is dropped when the clock passes the limit. After a
//! response (`request_done`) the clock restarts only once Pingora's own keep-alive idle
//! allowance (`KEEPALIVE_IDLE`) is used up: idle keep-alive connections close exactly when they
//! did before (closing them sooner makes clients that reuse them race the close more often),
//! and a head trickled on a kept-alive connection still meets a bound. HTTP/2 connections are
//! passed through untouched (their streams run on tasks of their own, outside the clock's
//! reach).
//!
//! The clock is one atomic per connection, not a channel: starting and stopping it is a store
//! that wakes nothing. Its timer only wakes when a deadline it armed for comes, reads the clock
//! and arms again; a clock is only ever restarted later than it was read, so a timer armed
//! from an earlier reading never fires late. (A watch channel here cost two task wake-ups per
//! request: 2 % of a `304`'s samples, BENCHMARKS.md.)
//!
//! `logging` runs just before Pingora's final flush of the response, so the clock also covers
//! that flush: at most one buffered write (the listener's write buffer), far inside any
//! sensible limit even for a slow reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::time::Instant;

/// Pingora's keep-alive idle timeout for HTTP/1 (set for every new connection in
/// `pingora-core` `apps`, 60 s); a kept-alive connection may wait this long for its next head.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// The clock of the connection whose task this is.
    static CLOCK: Arc<Clock>;
}

/// When the wait for a head started, in nanoseconds after `base`; `STOPPED` while a head is
/// in and its response is under way.
struct Clock {
    base: Instant,
    started: AtomicU64,
}

const STOPPED: u64 = u64::MAX;

impl Clock {
    fn new(now: Instant) -> Self {
        Clock {
            base: now,
            started: AtomicU64::new(0),
        }
    }

    fn start_at(&self, at: Instant) {
        let nanos = u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(STOPPED - 1);
        self.started.store(nanos, Ordering::Relaxed);
    }

    fn stop(&self) {
        self.started.store(STOPPED, Ordering::Relaxed);
    }

    /// The start of the current wait for a head, if one is awaited.
    fn started(&self) -> Option<Instant> {
        match self.started.load(Ordering::Relaxed) {
            STOPPED => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }
}

/// Called once a request head is in (the proxy's `new_ctx`): the clock stops.
pub fn headers_read() {
    let _ = CLOCK.try_with(|clock| clock.stop());
}

/// Called when a response is done (the proxy's `logging`): the next head's clock starts once
/// the keep-alive idle allowance is over.
pub fn request_done() {
    let _ = CLOCK.try_with(|clock| clock.start_at(Instant::now() + KEEPALIVE_IDLE));
}

/// Wraps the public proxy app with the per-connection header clock.
pub struct HeaderDeadline<A> {
    inner: Arc<A>,
    limit: Duration,
}

impl<A> HeaderDeadline<A> {
    pub fn new(inner: A, limit: Duration) -> Self {
        HeaderDeadline {
            inner: Arc::new(inner),
            limit,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.inner.process_new(stream, shutdown).await;
        }
        let clock = Arc::new(Clock::new(Instant::now()));
        let served = CLOCK.scope(clock.clone(), self.inner.process_new(stream, shutdown));
        tokio::select! {
            reused = served => reused,
            () = expired(&clock, self.limit) => {
                // Dropping the connection's future closes it; no response was under way.
                tracing::debug!("request head not in within the header deadline: closed");
                None
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Resolves once the clock has run past `limit` without being stopped. While it is stopped,
/// it looks again every `limit`: a clock started after a look has its deadline no sooner
/// than that look's next one.
async fn expired(clock: &Clock, limit: Duration) {
    loop {
        let now = Instant::now();
        let wake = match clock.started() {
            Some(started) if started + limit <= now => return,
            Some(started) => started + limit,
            None => now + limit,
        };
        tokio::time::sleep_until(wake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_fires_only_while_a_head_is_awaited() {
        let limit = Duration::from_secs(10);
        let clock = Arc::new(Clock::new(Instant::now()));
        let fired = tokio::spawn({
            let clock = clock.clone();
            async move { expired(&clock, limit).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        clock.stop(); // head in
        tokio::time::sleep(Duration::from_secs(60)).await; // a long response
        assert!(!fired.is_finished());
        // Response done: idle allowance, then the limit again.
        clock.start_at(Instant::now() + KEEPALIVE_IDLE);
        tokio::time::sleep(KEEPALIVE_IDLE + Duration::from_secs(9)).await;
        assert!(!fired.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(fired.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_never_comes_is_cut_at_the_limit() {
        let limit = Duration::from_secs(10);
        let clock = Arc::new(Clock::new(Instant::now()));
        let started = Instant::now();
        expired(&clock, limit).await;
        assert_eq!(started.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_restarted_between_looks_still_fires_on_time() {
        let limit = Duration::from_secs(10);
        let clock = Arc::new(Clock::new(Instant::now()));
        clock.stop();
        let fired = tokio::spawn({
            let clock = clock.clone();
            async move { expired(&clock, limit).await }
        });
        // The timer looked at a stopped clock at 0 s; restarted at 3 s, the deadline is 13 s.
        tokio::time::sleep(Duration::from_secs(3)).await;
        clock.start_at(Instant::now());
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert!(!fired.is_finished(), "fired before 13 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(fired.is_finished(), "not fired by 13.1 s");
    }
}
