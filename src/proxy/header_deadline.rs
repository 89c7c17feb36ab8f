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
//! `logging` runs just before Pingora's final flush of the response, so the clock also covers
//! that flush: at most one buffered segment (1460 bytes; one TLS record over TLS), far inside
//! any sensible limit even for a slow reader.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::sync::watch;
use tokio::time::Instant;

/// Pingora's keep-alive idle timeout for HTTP/1 (set for every new connection in
/// `pingora-core` `apps`, 60 s); a kept-alive connection may wait this long for its next head.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// The clock of the connection whose task this is; `None` inside means "head is in".
    static CLOCK: watch::Sender<Option<Instant>>;
}

/// Called once a request head is in (the proxy's `new_ctx`): the clock stops.
pub fn headers_read() {
    let _ = CLOCK.try_with(|clock| clock.send_replace(None));
}

/// Called when a response is done (the proxy's `logging`): the next head's clock starts once
/// the keep-alive idle allowance is over.
pub fn request_done() {
    let _ = CLOCK.try_with(|clock| clock.send_replace(Some(Instant::now() + KEEPALIVE_IDLE)));
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
        let (clock, watcher) = watch::channel(Some(Instant::now()));
        let served = CLOCK.scope(clock, self.inner.process_new(stream, shutdown));
        tokio::select! {
            reused = served => reused,
            () = expired(watcher, self.limit) => {
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

/// Resolves once the clock has run past `limit` without being stopped.
async fn expired(mut watcher: watch::Receiver<Option<Instant>>, limit: Duration) {
    loop {
        let started = *watcher.borrow_and_update();
        match started {
            Some(started) => tokio::select! {
                () = tokio::time::sleep_until(started + limit) => return,
                changed = watcher.changed() => if changed.is_err() { return std::future::pending().await },
            },
            None => {
                if watcher.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_fires_only_while_a_head_is_awaited() {
        let limit = Duration::from_secs(10);
        let (clock, watcher) = watch::channel(Some(Instant::now()));
        let fired = tokio::spawn(expired(watcher, limit));
        tokio::time::sleep(Duration::from_secs(5)).await;
        clock.send_replace(None); // head in
        tokio::time::sleep(Duration::from_secs(60)).await; // a long response
        assert!(!fired.is_finished());
        // Response done: idle allowance, then the limit again.
        clock.send_replace(Some(Instant::now() + KEEPALIVE_IDLE));
        tokio::time::sleep(KEEPALIVE_IDLE + Duration::from_secs(9)).await;
        assert!(!fired.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(fired.is_finished());
    }
}
