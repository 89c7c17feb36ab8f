//! Graceful drain of the public listener: once Pingora stops accepting (SIGTERM, or the old
//! process of an upgrade), connections it had already accepted still get their request in
//! before idle ones are closed. It changes when connections close, not what is served.
//!
//! Pingora stops its accept loop and, in the same instant, drops every connection still
//! waiting for a request header. A connection accepted a moment earlier whose request is
//! still on the wire would be reset, and its client would see a failed request although it
//! did nothing wrong. `Draining` holds that second step back for `linger`: requests that
//! arrive meanwhile are served with `Connection: close` (Pingora's own shutdown behaviour),
//! and only connections idle all along are closed at the end, as any idle timeout would
//! (RFC 9112 section 9.6).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

/// Upper bound of the linger; a shorter grace period shortens it (it must end inside it).
pub const MAX_LINGER: Duration = Duration::from_secs(3);

/// How long accepted connections may still deliver a request after accepting stopped.
pub fn linger(grace_period: Duration) -> Duration {
    (grace_period / 2).min(MAX_LINGER)
}

/// Wraps a server app (the HTTP proxy) and delays its shutdown cleanup by `linger`.
pub struct Draining<A> {
    inner: Arc<A>,
    linger: Duration,
}

impl<A> Draining<A> {
    pub fn new(inner: A, linger: Duration) -> Self {
        Draining {
            inner: Arc::new(inner),
            linger,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Draining<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner.process_new(session, shutdown).await
    }

    /// Pingora calls this once the accept loops have stopped.
    async fn cleanup(&self) {
        tokio::time::sleep(self.linger).await;
        self.inner.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linger_ends_well_inside_the_grace_period() {
        assert_eq!(linger(Duration::from_secs(30)), MAX_LINGER);
        assert_eq!(linger(Duration::from_secs(4)), Duration::from_secs(2));
        assert_eq!(linger(Duration::ZERO), Duration::ZERO);
    }
}
