//! Per-user staged quota and upload concurrency through the real gateway (SPEC §3 "Upload"):
//! `413 {"error":"staged_quota_exceeded"}` decided before a byte is stored, and `429` for an
//! upload beyond `upload.max_concurrent_per_user` running at once.

use crate::harness;

use std::path::Path;
use std::time::Duration;

use harness::local::{Data, Extra, Local, PREFIX};
use harness::token;
use tokio::io::AsyncWriteExt;

async fn upload(env: &Local, user: &str, bytes: &[u8]) -> (u16, String) {
    let resp = env
        .client
        .post(env.url(&format!("{PREFIX}?filename=a.txt")))
        .bearer_auth(token(user, "USER", &[]))
        .header("content-type", "text/plain")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Staged objects of `user` in the bucket.
fn objects(root: &Path, user: &str) -> usize {
    std::fs::read_dir(root.join("bucket/support-chat/staged").join(user)).map_or(0, |d| d.count())
}

async fn staged_rows(env: &Local, user: &str) -> u64 {
    env.data.catalog.staged_usage(user).await.unwrap().uploads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_quota_and_concurrency_are_per_user() {
    let extra = Extra {
        sections: "[upload]\nallowed_types = [\"text/plain\"]\nmax_staged_per_user = 2\n\
                   max_staged_bytes_per_user = 100\nmax_concurrent_per_user = 1\n"
            .into(),
        ..Extra::default()
    };
    let env = Local::start(Data::create().await, extra).await;
    let root = env.data.dir.path().to_path_buf();

    // Count: two staged uploads, then the third is refused before it is stored.
    assert_eq!(upload(&env, "ann", b"one").await.0, 201);
    assert_eq!(upload(&env, "ann", b"two").await.0, 201);
    let (status, body) = upload(&env, "ann", b"three").await;
    assert_eq!(
        (status, body.as_str()),
        (413, r#"{"error":"staged_quota_exceeded"}"#)
    );
    assert_eq!(
        (staged_rows(&env, "ann").await, objects(&root, "ann")),
        (2, 2)
    );

    // Bytes: 60 + 41 > 100, whoever else holds what.
    assert_eq!(upload(&env, "bea", &[b'x'; 60]).await.0, 201);
    let (status, body) = upload(&env, "bea", &[b'y'; 41]).await;
    assert_eq!(
        (status, body.as_str()),
        (413, r#"{"error":"staged_quota_exceeded"}"#)
    );
    assert_eq!(upload(&env, "bea", &[b'y'; 40]).await.0, 201);
    assert_eq!(
        (staged_rows(&env, "bea").await, objects(&root, "bea")),
        (2, 2)
    );

    // Concurrency: while one upload of cid's is running, a second one is 429; others are not.
    let addr = env.gw.base.trim_start_matches("http://").to_string();
    let mut running = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {PREFIX}?filename=slow.txt HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/plain\r\nContent-Length: 50\r\n\r\nfirst half",
        token("cid", "USER", &[])
    );
    running.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = upload(&env, "cid", b"second").await;
    assert_eq!(
        (status, body.as_str()),
        (429, r#"{"error":"rate_limited"}"#)
    );
    assert_eq!(upload(&env, "dan", b"other user").await.0, 201);
    // The running upload gives its slot back when it ends, for whatever reason.
    drop(running);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(upload(&env, "cid", b"now").await.0, 201);
    assert_eq!(staged_rows(&env, "cid").await, 1);
}
