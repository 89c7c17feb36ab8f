//! A TCP tap in front of the storage server: records the request heads the gateway sends and
//! can inject faults (a cut mid-body, a stall, a 503) into the response direction.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::app::{parse_head, read_request_head, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Forward this many response bytes, then drop both sides.
    CutAfter(usize),
    /// Never answer.
    Stall,
    /// Answer 503 without asking storage.
    Unavailable,
}

pub struct Tap {
    /// `http://127.0.0.1:PORT`, to use as the storage endpoint.
    pub endpoint: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<Mutex<Mode>>,
    /// Bumped on every mode change: open connections close so the next request sees it.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Tap {
    pub async fn start(upstream: &str) -> Tap {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (seen2, mode2, gen2) = (seen.clone(), mode.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (seen, mode, upstream) = (seen2.clone(), mode2.clone(), upstream.clone());
                let mut changed = gen2.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = relay(client, &upstream, seen, mode) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        Tap {
            endpoint,
            seen,
            mode,
            generation,
        }
    }

    /// Switch the fault mode; kept-alive connections are closed so that the very next
    /// request is affected.
    pub async fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
        self.generation.send_modify(|g| *g += 1);
        // Give the gateway's client a moment to notice its pooled connections closed.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: &str,
    seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<Mutex<Mode>>,
) -> std::io::Result<()> {
    let current = *mode.lock().unwrap();
    let mut buf = Vec::new();
    // The gateway's reads carry no body, so request heads follow one another.
    let Some(end) = read_request_head(&mut client, &mut buf).await else {
        return Ok(());
    };
    seen.lock()
        .unwrap()
        .push(parse_head(&String::from_utf8_lossy(&buf[..end])));
    match current {
        Mode::Unavailable => {
            let body = "<Error><Code>ServiceUnavailable</Code></Error>";
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(resp.as_bytes()).await?;
            return Ok(());
        }
        Mode::Stall => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Ok(());
        }
        _ => {}
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&buf).await?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let seen_up = seen.clone();
    let up = tokio::spawn(async move {
        // Later requests on a kept-alive connection: record each head as it passes.
        let mut pending = buf.split_off(end + 4);
        let mut chunk = vec![0u8; 16384];
        loop {
            while let Some(pos) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                seen_up
                    .lock()
                    .unwrap()
                    .push(parse_head(&String::from_utf8_lossy(&pending[..pos])));
                pending.drain(..pos + 4);
            }
            let n = match cr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            if sw.write_all(&chunk[..n]).await.is_err() {
                break;
            }
        }
    });
    let limit = match current {
        Mode::CutAfter(n) => Some(n),
        _ => None,
    };
    let mut forwarded = 0usize;
    let mut chunk = vec![0u8; 16384];
    loop {
        let n = match sr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(l) if forwarded + n >= l => {
                let _ = cw.write_all(&chunk[..l - forwarded]).await;
                break;
            }
            _ => n,
        };
        forwarded += n;
        if cw.write_all(&chunk[..n]).await.is_err() {
            break;
        }
    }
    up.abort();
    Ok(())
}
