//! Bounds on what a hung app or a hostile client can hold (issue 14): calls to the app have
//! connect/read/write timeouts (`[app]`), a refused upload's declared body is not drained (only
//! lingered on for a bounded second, so its answer is not lost to a reset), and reading a
//! request's headers has a total deadline.

use crate::harness;

use std::time::{Duration, Instant};

use harness::local::{Data, Extra, Local, PREFIX};
use harness::token;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An app that accepts connections and reads them, but never answers.
async fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut sink = [0u8; 8192];
                while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_app_gets_the_client_a_504_json_within_the_read_bound() {
    let extra = Extra {
        upstream: Some(black_hole().await),
        app: "connect_timeout_ms = 500\nread_timeout_ms = 700\nwrite_timeout_ms = 700\n".into(),
        ..Extra::default()
    };
    let env = Local::start(Data::create().await, extra).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for path in ["/", "/chat/page?x=1"] {
        let started = Instant::now();
        let resp = client.get(env.url(path)).send().await.expect("an answer");
        let took = started.elapsed();
        assert_eq!(resp.status(), 504, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "gateway_timeout", "{body}");
        println!("app_bounds: hung app, {path}: 504 after {took:?} (read bound 700 ms)");
        assert!(
            took < Duration::from_secs(3),
            "{path}: answered after {took:?}"
        );
        assert!(
            took >= Duration::from_millis(600),
            "{path}: {took:?} is not the bound"
        );
    }
}

/// Write a request head, then wait for the answer and for the connection's end.
async fn head_then_wait(addr: &str, head: &str) -> (String, Option<Duration>) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(started.elapsed()),
            Ok(Ok(n)) => seen.extend_from_slice(&chunk[..n]),
            Err(_) => break None,
        }
    };
    (String::from_utf8_lossy(&seen).to_string(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_is_answered_and_closed_not_drained() {
    let extra = Extra {
        sections: "[upload]\nallowed_types = [\"image/png\"]\nmax_bytes = 200000000\n".into(),
        ..Extra::default()
    };
    let env = Local::start(Data::create().await, extra).await;
    let addr = env.gw.base.trim_start_matches("http://").to_string();
    let bearer = token("alice", "USER", &[]);
    // 150 MB declared, none sent: a gateway that drains would sit waiting for it; one that
    // lingers gives up after a second.
    let head = format!(
        "POST {PREFIX}?filename=x.bin HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {bearer}\r\nContent-Type: application/x-nope\r\n\
         Content-Length: 150000000\r\n\r\n"
    );
    // Refused on the head (type), and refused on the leading bytes (not a PNG).
    let on_leading = format!(
        "POST {PREFIX}?filename=x.png HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {bearer}\r\nContent-Type: image/png\r\n\
         Content-Length: 150000000\r\n\r\n{}",
        "x".repeat(4096)
    );
    // Refused before the token is even looked at.
    let no_token = format!(
        "POST {PREFIX}?filename=x.png HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: image/png\r\nContent-Length: 150000000\r\n\r\n"
    );
    for head in [head, on_leading, no_token] {
        let (answer, closed) = head_then_wait(&addr, &head).await;
        assert!(
            answer.starts_with("HTTP/1.1 415") || answer.starts_with("HTTP/1.1 401"),
            "{answer}"
        );
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        let closed = closed.expect("the gateway closes the connection");
        assert!(closed < Duration::from_secs(2), "closed after {closed:?}");
    }
}

/// A client that writes its whole body before it reads (most HTTP clients do) still gets the
/// refusal: the gateway reads and drops the body it refused before closing, instead of closing
/// on unread bytes, which makes the kernel reset the connection and the client's kernel drop the
/// answer unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_sent_in_full_still_gets_its_answer() {
    let extra = Extra {
        sections: "[upload]\nallowed_types = [\"image/png\"]\nmax_bytes = 1000000\n".into(),
        ..Extra::default()
    };
    let env = Local::start(Data::create().await, extra).await;
    let addr = env.gw.base.trim_start_matches("http://").to_string();
    let bearer = token("alice", "USER", &[]);
    // 6 MiB: more than the loopback socket buffers take, less than the lingering bound.
    let body = vec![b'x'; 6 * 1024 * 1024];
    for _ in 0..5 {
        let mut sock = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {PREFIX}?filename=x.png HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {bearer}\r\nContent-Type: image/png\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), sock.write_all(&body))
            .await
            .expect("the body is taken within the lingering second")
            .expect("the body is taken, not reset");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer))
            .await
            .expect("the connection ends")
            .expect("the answer is read, not reset");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_head_is_cut_at_the_header_deadline() {
    let extra = Extra {
        server: "header_timeout_ms = 800\n".into(),
        ..Extra::default()
    };
    let env = Local::start(Data::create().await, extra).await;
    let addr = env.gw.base.trim_start_matches("http://").to_string();

    // One header line every 200 ms: each read is quick, the head never ends.
    let mut sock = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut closed = None;
    for i in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let line = format!("X-Slow-{i}: y\r\n");
        if sock.write_all(line.as_bytes()).await.is_err() {
            closed = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), sock.read(&mut probe)).await
        {
            closed = Some(started.elapsed());
            break;
        }
    }
    let closed = closed.expect("the gateway closed the trickling connection");
    println!("app_bounds: trickled head cut after {closed:?} (deadline 800 ms)");
    assert!(closed >= Duration::from_millis(700), "{closed:?}");
    assert!(closed < Duration::from_secs(3), "{closed:?}");

    // A well-behaved keep-alive client is not hurt: requests on one connection, each head
    // sent at once, with pauses shorter than the deadline between them.
    let mut sock = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..3 {
        sock.write_all(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&buf).contains("\"app\":true") {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
                .await
                .expect("an answer")
                .unwrap();
            assert!(n > 0, "closed early");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
