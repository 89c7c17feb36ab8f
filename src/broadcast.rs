//! Deleted attachment ids, from the instance that deleted them to every other instance, over
//! Redis pub/sub (SPEC §4: every instance stops serving them within one second). Only the
//! transport: what an instance forgets on a message is its caller's (`erase::Caches`).
//!
//! Pub/sub is fire and forget: an instance whose subscription is down when a delete is
//! published never hears of it, so each (re)subscription is reported (`Event::Subscribed`) and
//! the receiver drops everything it cached, since it may have missed deletes. Without Redis
//! nothing is sent, and another instance's staleness is bounded by its cache TTLs alone
//! (`catalog.cache_ttl_s`, the memory cache's ten minutes, five for found previews).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::limits::redis::client;

/// The channel every instance of one deployment publishes on and listens to.
pub const CHANNEL: &str = "attachment-gateway:deleted";

/// Bounds every publish and every connection attempt: a delete is never held up by Redis
/// for longer than this.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnect backoff of the subscriber, doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often an idle subscription pings Redis to find out that its connection is dead.
const KEEPALIVE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis call timed out")]
    Timeout,
}

/// What the subscriber hands to its receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Subscribed (again): deletes published while it was down are lost.
    Subscribed,
    /// These ids were deleted somewhere.
    Deleted(Vec<String>),
}

/// The publishing side: one connection per node, made on first use and re-made by its
/// manager. With several nodes (a cluster's seeds: Redis Cluster passes a `PUBLISH` on any node
/// to the subscribers of every node), a failed publish moves the next one to the next node.
pub struct Publisher {
    nodes: Vec<(redis::Client, OnceCell<redis::aio::ConnectionManager>)>,
    current: AtomicUsize,
}

impl Publisher {
    /// Parse the URLs (at least one); nothing connects until the first publish.
    pub fn new(urls: &[&str], ca_pem: Option<&str>) -> redis::RedisResult<Self> {
        let nodes = urls
            .iter()
            .map(|url| Ok((client(url, ca_pem)?, OnceCell::new())))
            .collect::<redis::RedisResult<Vec<_>>>()?;
        Ok(Publisher {
            nodes,
            current: AtomicUsize::new(0),
        })
    }

    /// Tell every subscribed instance that `ids` are gone. Must run on the I/O runtime.
    pub async fn publish(&self, ids: &[String]) -> Result<(), BroadcastError> {
        let at = self.current.load(Ordering::Relaxed) % self.nodes.len().max(1);
        let (client, conn) = self.nodes.get(at).ok_or(BroadcastError::Timeout)?;
        let payload = encode(ids);
        let send = async {
            let conn = conn
                .get_or_try_init(|| client.get_connection_manager())
                .await?;
            let mut conn = conn.clone();
            redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        };
        let sent = tokio::time::timeout(TIMEOUT, send)
            .await
            .unwrap_or(Err(BroadcastError::Timeout));
        if sent.is_err() {
            self.current.store(at + 1, Ordering::Relaxed);
        }
        sent
    }
}

/// Listen on `CHANNEL` for the life of the process, reconnecting with backoff, and hand each
/// event to `receive`. Must be spawned on the I/O runtime.
/// With several URLs (a cluster's seed nodes) each attempt takes the next one.
pub async fn subscribe<F, Fut>(
    urls: &[String],
    ca_pem: Option<&str>,
    receive: F,
) -> redis::RedisResult<()>
where
    F: Fn(Event) -> Fut,
    Fut: Future<Output = ()>,
{
    let clients = urls
        .iter()
        .map(|url| client(url, ca_pem))
        .collect::<redis::RedisResult<Vec<_>>>()?;
    let mut retry = RETRY_FIRST;
    for client in clients.iter().cycle() {
        match listen(client, &receive).await {
            Ok(()) => {
                tracing::warn!("delete broadcast: subscription ended, reconnecting");
                retry = RETRY_FIRST;
            }
            Err(e) => tracing::warn!(error = %e, "delete broadcast: cannot subscribe"),
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
    Ok(())
}

/// One subscription, until its connection ends.
async fn listen<F, Fut>(client: &redis::Client, receive: &F) -> Result<(), BroadcastError>
where
    F: Fn(Event) -> Fut,
    Fut: Future<Output = ()>,
{
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(CHANNEL).await?;
        Ok::<_, BroadcastError>(pubsub)
    };
    let pubsub = tokio::time::timeout(TIMEOUT, connect)
        .await
        .unwrap_or(Err(BroadcastError::Timeout))?;
    tracing::info!("delete broadcast: subscribed");
    receive(Event::Subscribed).await;
    let (mut sink, mut messages) = pubsub.split();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalive.tick().await;
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return Ok(()) };
                match msg.get_payload::<String>().ok().and_then(|p| decode(&p)) {
                    Some(ids) => receive(Event::Deleted(ids)).await,
                    None => tracing::warn!("delete broadcast: unreadable message ignored"),
                }
            }
            // A peer that vanished without closing (a host down, a partition) would otherwise
            // leave this subscription silent for good: no FIN, no error, no deletes heard.
            _ = keepalive.tick() => {
                let pong = tokio::time::timeout(TIMEOUT, sink.ping::<redis::Value>()).await;
                match pong {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => return Err(BroadcastError::Timeout),
                }
            }
        }
    }
}

/// The message: the ids as a JSON array.
fn encode(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

fn decode(payload: &str) -> Option<Vec<String>> {
    serde_json::from_str(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let ids = vec!["a1".to_string(), "b-2".into()];
        assert_eq!(decode(&encode(&ids)), Some(ids));
        assert_eq!(decode("not json"), None);
        assert_eq!(decode("{}"), None);
    }
}
