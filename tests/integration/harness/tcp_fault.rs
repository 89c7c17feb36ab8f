//! A protocol-blind TCP relay in front of any backend (PostgreSQL, Redis, S3): counts the bytes
//! the gateway sends through it and can turn into a fault (refuse, black hole, a reset
//! mid-answer, latency) on demand. Unlike
//! `tap`, it parses nothing, so it works for any wire protocol.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Accept, then close at once: the backend looks down.
    Refuse,
    /// Accept and read, never answer: the backend hangs.
    BlackHole,
    /// Relay, but reset both sides once this many bytes came back from the backend.
    CutAfter(u64),
    /// Relay, holding every chunk in either direction this long first: a slow network.
    Latency(Duration),
}

pub struct TcpFault {
    /// `127.0.0.1:PORT`, to use in place of the backend's address.
    pub addr: String,
    sent: Arc<AtomicU64>,
    fault: Arc<Mutex<Fault>>,
    /// Bumped on every change: relayed connections close, so the next use sees the fault.
    generation: tokio::sync::watch::Sender<u64>,
    /// Bumped by `freeze_open`: connections open at that moment stop relaying, still open.
    freeze: tokio::sync::watch::Sender<u64>,
}

impl TcpFault {
    pub async fn start(backend: &str) -> TcpFault {
        let backend = backend.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(AtomicU64::new(0));
        let fault = Arc::new(Mutex::new(Fault::Pass));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (freeze, _) = tokio::sync::watch::channel(0u64);
        let (sent2, fault2, gen2) = (sent.clone(), fault.clone(), generation.clone());
        let freeze2 = freeze.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (sent, backend) = (sent2.clone(), backend.clone());
                let current = *fault2.lock().unwrap();
                let mut changed = gen2.subscribe();
                let frozen = freeze2.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(client, &backend, sent, current, frozen) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        TcpFault {
            addr,
            sent,
            fault,
            generation,
            freeze,
        }
    }

    /// Every connection open now stops relaying in both directions but stays open, as when
    /// the backend's host vanishes without a FIN; connections made later relay as before.
    pub fn freeze_open(&self) {
        self.freeze.send_modify(|g| *g += 1);
    }

    /// Bytes the gateway has sent towards the backend so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Switch the fault; open connections are closed so that the very next use is affected.
    pub async fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.generation.send_modify(|g| *g += 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn serve(
    mut client: TcpStream,
    backend: &str,
    sent: Arc<AtomicU64>,
    fault: Fault,
    mut frozen: tokio::sync::watch::Receiver<u64>,
) {
    match fault {
        Fault::Refuse => return,
        Fault::BlackHole => {
            let mut sink = [0u8; 8192];
            // Read (and count) forever, answer nothing; the select in `start` ends it.
            while let Ok(n) = client.read(&mut sink).await {
                if n == 0 {
                    break;
                }
                sent.fetch_add(n as u64, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Fault::Pass | Fault::CutAfter(_) | Fault::Latency(_) => {}
    }
    let delay = match fault {
        Fault::Latency(d) => d,
        _ => Duration::ZERO,
    };
    let limit = match fault {
        Fault::CutAfter(n) => n,
        _ => u64::MAX,
    };
    let Ok(server) = TcpStream::connect(backend).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut chunk = vec![0u8; 16384];
        loop {
            let n = match cr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sent.fetch_add(n as u64, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            if sw.write_all(&chunk[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut chunk = vec![0u8; 16384];
        let mut relayed = 0u64;
        loop {
            let n = match sr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = n.min((limit - relayed) as usize);
            tokio::time::sleep(delay).await;
            if cw.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            relayed += n as u64;
            if relayed >= limit {
                break; // dropping both halves closes the connection mid-answer
            }
        }
    };
    let froze = tokio::select! {
        _ = up => false,
        _ = down => false,
        _ = frozen.changed() => true,
    };
    if froze {
        // Both sockets stay open and silent; the select in `start` ends it on a change.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    drop((cr, cw, sr, sw));
}
