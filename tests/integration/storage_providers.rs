//! One conformance body for every storage provider (`fs` on a temporary directory, `s3` on a
//! private SeaweedFS, `supabase` on a local stand-in for its REST API), plus what only `s3` can
//! get wrong: signatures, timeouts and the exact headers sent to storage.

use crate::harness::seaweed;
use crate::harness::supabase_stub;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use attachment_gateway::attachment::SharedRow;
use attachment_gateway::authn::{Principal, Role};
use attachment_gateway::authz::{authorize, Access, Permit};
use attachment_gateway::catalog::{AttachmentRow, AttachmentStatus};
use attachment_gateway::config::{S3Config, Secret, ServerSideEncryption};
use attachment_gateway::http::range::ByteRange;
use attachment_gateway::storage::fs::FsStorage;
use attachment_gateway::storage::s3::S3Storage;
use attachment_gateway::storage::supabase::SupabaseStorage;
use attachment_gateway::storage::{ByteStream, Storage, StorageError, StorageKey};
use bytes::Bytes;
use futures_util::StreamExt;
use seaweed::Seaweed;
use supabase_stub::SupabaseStub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const BIG: usize = 3 * 1024 * 1024;

fn key(s: &str) -> StorageKey {
    StorageKey::parse(s).unwrap()
}

/// A `Permit` for `key`, obtained the only way there is: through `authz`.
fn permit(key: &str) -> Permit {
    let admin = Principal {
        user_id: "admin".into(),
        role: Role::Admin,
        permissions: vec![],
    };
    let row = AttachmentRow {
        id: "a1".into(),
        dialog_id: Some("d1".into()),
        message_id: None,
        storage_path: key.into(),
        mime_type: "application/octet-stream".into(),
        size_bytes: 0,
        original_name: "x.bin".into(),
        created_by_user_id: "u1".into(),
        status: AttachmentStatus::Linked,
        created_at: chrono::Utc::now(),
        linked_at: None,
        dialog_owner_id: Some("u1".into()),
        image: Default::default(),
    };
    authorize(&admin, SharedRow::new(row), Access::Linked, "x").unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// `data` as a stream of `chunk`-sized pieces.
fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<Result<Bytes, StorageError>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(pieces))
}

async fn put(storage: &dyn Storage, k: &str, data: &[u8]) {
    storage
        .put(
            &key(k),
            "application/octet-stream",
            data.len() as u64,
            chunked(data, 100 * 1024),
        )
        .await
        .unwrap_or_else(|e| panic!("put {k}: {e}"));
}

/// Read all of `k` (or a range): (announced length, bytes, number of chunks).
async fn read(
    storage: &dyn Storage,
    k: &str,
    range: Option<ByteRange>,
) -> Result<(u64, Vec<u8>, usize), StorageError> {
    let body = storage.get(&permit(k), range).await?;
    let mut bytes = Vec::new();
    let mut chunks = 0;
    let mut stream = body.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        chunks += 1;
    }
    Ok((body.content_length, bytes, chunks))
}

/// What a provider can do beyond the common contract.
#[derive(Clone, Copy)]
struct Caps {
    /// Keys with non-ASCII characters (Supabase's API refuses them with `400 InvalidKey`).
    non_ascii_keys: bool,
    /// Signed read URLs (`fs` has none).
    signed_urls: bool,
}

async fn conformance(storage: &dyn Storage, caps: Caps) {
    storage.ping().await.expect("ping");

    let data = pattern(BIG);
    let a = "support-chat/dialogs/d1/a1";
    put(storage, a, &data).await;

    let (len, bytes, chunks) = read(storage, a, None).await.unwrap();
    assert_eq!(len, BIG as u64);
    assert!(bytes == data, "whole object round-trips");
    assert!(chunks > 1, "the body is streamed, not one buffer");

    let last = BIG as u64 - 1;
    for (start, end) in [
        (0, 0),
        (1000, 200_999),
        (65_535, 65_536),
        (last, last),
        (0, last),
    ] {
        let range = ByteRange { start, end };
        let (len, bytes, _) = read(storage, a, Some(range)).await.unwrap();
        assert_eq!(len, end - start + 1, "{start}-{end}");
        assert!(
            bytes == data[start as usize..=end as usize],
            "range {start}-{end}"
        );
    }

    let missing = read(storage, "support-chat/dialogs/d1/nope", None).await;
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );

    // A body shorter than announced stores nothing.
    let short = "support-chat/dialogs/d1/short";
    let result = storage
        .put(&key(short), "text/plain", 100, chunked(b"only ten b", 4))
        .await;
    assert!(result.is_err(), "short body must fail");
    assert!(matches!(
        read(storage, short, None).await,
        Err(StorageError::NotFound)
    ));

    // Keys that need percent-encoding (space, `+`, non-ASCII) round-trip.
    let odd = if caps.non_ascii_keys {
        "support-chat/dialogs/d1/a b+c=д~ö.bin"
    } else {
        // A provider that refuses non-ASCII keys says so, and stores nothing.
        let refused = "support-chat/dialogs/d1/ключ.bin";
        let put = storage
            .put(&key(refused), "text/plain", 3, chunked(b"abc", 3))
            .await;
        assert!(matches!(put, Err(StorageError::Status(400))), "{put:?}");
        "support-chat/dialogs/d1/a b+c=(x)!'.bin"
    };
    put(storage, odd, b"odd key").await;
    assert_eq!(read(storage, odd, None).await.unwrap().1, b"odd key");

    let b = "support-chat/dialogs/d1/b1";
    storage.copy(&key(a), &key(b)).await.expect("copy");
    assert!(read(storage, b, None).await.unwrap().1 == data, "copy");

    put(storage, "support-chat/staged/u1/s1", b"staged").await;
    put(storage, "support-chat/dialogs/d10/x", b"other dialog").await;
    let listed = storage.list("support-chat/dialogs/d1/").await.unwrap();
    let mut names: Vec<(&str, u64)> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
    names.sort();
    assert_eq!(names, [(odd, 7), (a, BIG as u64), (b, BIG as u64),]);
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert!(listed.iter().all(|o| o.modified > an_hour_ago));
    let staged = storage.list("support-chat/staged/").await.unwrap();
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].key.as_str(), "support-chat/staged/u1/s1");
    assert!(storage.list("nothing-here/").await.unwrap().is_empty());

    storage.delete(&key(a)).await.expect("delete");
    assert!(matches!(
        read(storage, a, None).await,
        Err(StorageError::NotFound)
    ));
    storage
        .delete(&key(a))
        .await
        .expect("deleting a missing key is fine");

    signed_url_conformance(storage, caps).await;
}

/// `createSignedReadUrl`: the URL reads the object without credentials, as an attachment
/// named as asked, with the object's type; a missing object or `fs` gives no URL.
async fn signed_url_conformance(storage: &dyn Storage, caps: Caps) {
    let k = "support-chat/dialogs/d3/s 1+x";
    storage
        .put(&key(k), "image/png", 9, chunked(b"signed me", 4))
        .await
        .unwrap();
    let disposition = "attachment; filename=\"r_sum_.png\"; filename*=UTF-8''r%C3%A9sum%C3%A9.png";
    let url = storage
        .signed_read_url(
            &permit(k),
            Duration::from_secs(60),
            Some("image/png"),
            Some(disposition),
        )
        .await;
    if !caps.signed_urls {
        assert!(matches!(url, Err(StorageError::Config(_))), "{url:?}");
        return;
    }
    let url = url.expect("signed url");
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(resp.headers()["content-type"], "image/png");
    let got = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(got.starts_with("attachment;"), "{got}");
    assert!(got.contains("r%C3%A9sum%C3%A9.png"), "{got}");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"signed me");
    let ranged = reqwest::Client::new()
        .get(&url)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), b"gne");

    let missing = storage
        .signed_read_url(
            &permit("support-chat/dialogs/d3/none"),
            Duration::from_secs(60),
            None,
            None,
        )
        .await;
    // S3 signs locally (the URL answers 404 later); Supabase asks first and says NotFound.
    match missing {
        Ok(url) => assert_eq!(reqwest::get(&url).await.unwrap().status(), 404),
        Err(e) => assert!(matches!(e, StorageError::NotFound), "{e:?}"),
    }
}

#[tokio::test]
async fn fs_provider_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let caps = Caps {
        non_ascii_keys: true,
        signed_urls: false,
    };
    conformance(&FsStorage::new(dir.path()), caps).await;
}

#[tokio::test]
async fn s3_provider_conforms() {
    let seaweed = Seaweed::start().await;
    let storage = seaweed.storage();
    let caps = Caps {
        non_ascii_keys: true,
        signed_urls: true,
    };
    conformance(storage.as_ref(), caps).await;

    // A presigned URL reads the object with the signed overrides; changing them breaks it.
    let k = "support-chat/dialogs/d2/p 1+ф";
    put(storage.as_ref(), k, b"presigned body").await;
    let disposition = "attachment; filename=\"p.png\"";
    let url = storage
        .presign_get(
            &permit(k),
            Duration::from_secs(60),
            Some("image/png"),
            Some(disposition),
        )
        .unwrap();
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["content-disposition"], disposition);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"presigned body");
    let tampered = url.replace("image%2Fpng", "text%2Fhtml");
    assert_ne!(tampered, url);
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
}

#[tokio::test]
async fn fs_has_no_signed_urls() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    let url = storage.presign_get(&permit("a/b"), Duration::from_secs(60), None, None);
    assert!(matches!(url, Err(StorageError::Config(_))));
}

#[tokio::test]
async fn fs_never_leaves_its_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("support-chat/dialogs")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        root.path().join("support-chat/dialogs/link"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("support-chat/out")).unwrap();
    let storage = FsStorage::new(root.path());

    let through_file_link = read(&storage, "support-chat/dialogs/link", None).await;
    assert!(matches!(through_file_link, Err(StorageError::NotFound)));
    let through_dir_link = read(&storage, "support-chat/out/secret", None).await;
    assert!(matches!(through_dir_link, Err(StorageError::NotFound)));
    let write = storage
        .put(
            &key("support-chat/out/new"),
            "text/plain",
            1,
            chunked(b"x", 1),
        )
        .await;
    assert!(write.is_err());
    assert!(!outside.path().join("new").exists());
    storage
        .delete(&key("support-chat/out/secret"))
        .await
        .unwrap();
    assert!(outside.path().join("secret").exists());
    assert!(storage.list("support-chat/").await.unwrap().is_empty());
    assert!(storage.list("support-chat/out/").await.unwrap().is_empty());
    assert!(storage.list("../").await.unwrap().is_empty());
}

#[tokio::test]
async fn fs_ping_fails_without_root() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path().join("missing"));
    assert!(storage.ping().await.is_err());
}

#[tokio::test]
async fn s3_rejects_a_wrong_secret() {
    let seaweed = Seaweed::start().await;
    let mut cfg = seaweed.s3_config();
    cfg.secret_access_key = Secret::new("not-the-secret");
    let storage = S3Storage::new(&cfg, Duration::from_secs(2), Duration::from_secs(15)).unwrap();

    let k = "support-chat/dialogs/d1/w";
    let put = storage
        .put(&key(k), "text/plain", 5, chunked(b"hello", 5))
        .await;
    assert!(matches!(put, Err(StorageError::Status(403))), "{put:?}");
    let get = read(&storage, k, None).await;
    assert!(matches!(get, Err(StorageError::Status(403))), "{get:?}");
    assert!(matches!(
        storage.ping().await,
        Err(StorageError::Status(403))
    ));

    // The right secret works against the same server, and the object was never written.
    let good = seaweed.storage();
    assert!(matches!(
        read(good.as_ref(), k, None).await,
        Err(StorageError::NotFound)
    ));
}

fn storage_at(addr: std::net::SocketAddr, read_timeout: Duration) -> S3Storage {
    S3Storage::new(&config_at(addr), Duration::from_secs(1), read_timeout).unwrap()
}

fn config_at(addr: std::net::SocketAddr) -> S3Config {
    S3Config {
        endpoint: url::Url::parse(&format!("http://{addr}")).unwrap(),
        region: "us-east-1".into(),
        bucket: "bucket".into(),
        path_style: true,
        access_key_id: Secret::new("AK"),
        secret_access_key: Secret::new("SK"),
        ca_file: None,
        sse: None,
    }
}

/// A server that accepts connections and never answers.
async fn silent_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A server that answers every request with `response` and keeps the connection open (so a
/// response shorter than its `Content-Length` stalls); each request head goes to the channel.
async fn scripted_server(
    response: &'static [u8],
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    responder_server(move |_| response.to_vec()).await
}

/// Like `scripted_server`, with the answer chosen from the request head.
async fn responder_server(
    respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let respond = Arc::new(respond);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            let respond = respond.clone();
            tokio::spawn(async move {
                // Requests on one connection, one after the other (keep-alive). The body is
                // taken whole before answering, as a real server would.
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let end = loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    let body_len = content_length(&head);
                    while pending.len() < end + body_len {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    pending.drain(..end + body_len);
                    let response = respond(&head);
                    let _ = tx.send(head);
                    if socket.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn s3_timeouts_before_headers() {
    let addr = silent_server().await;
    let storage = storage_at(addr, Duration::from_millis(300));
    let started = std::time::Instant::now();

    let get = read(&storage, "support-chat/dialogs/d1/a", None).await;
    assert!(matches!(get, Err(StorageError::Timeout)), "{get:?}");
    assert!(matches!(storage.ping().await, Err(StorageError::Timeout)));
    let k = key("support-chat/dialogs/d1/a");
    assert!(matches!(
        storage.delete(&k).await,
        Err(StorageError::Timeout)
    ));
    let put = storage.put(&k, "text/plain", 3, chunked(b"abc", 3)).await;
    assert!(matches!(put, Err(StorageError::Timeout)), "{put:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn s3_stalled_body_ends_in_an_error() {
    let (addr, _heads) = scripted_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nonly ten b",
    )
    .await;
    let storage = storage_at(addr, Duration::from_millis(300));
    let body = storage
        .get(&permit("support-chat/dialogs/d1/a"), None)
        .await
        .unwrap();
    assert_eq!(body.content_length, 100);
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(5), body.stream.collect())
        .await
        .expect("a stalled body must not hang");
    assert!(matches!(items.first(), Some(Ok(b)) if b.as_ref() == b"only ten b"));
    assert!(matches!(items.last(), Some(Err(StorageError::Timeout))));
}

#[tokio::test]
async fn s3_refuses_a_range_answered_in_full() {
    let (addr, _heads) =
        scripted_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789").await;
    let storage = storage_at(addr, Duration::from_millis(500));
    let range = ByteRange { start: 2, end: 4 };
    let got = storage
        .get(&permit("support-chat/dialogs/d1/a"), Some(range))
        .await;
    assert!(got.is_err());
}

#[tokio::test]
async fn s3_sends_only_its_own_headers() {
    let (addr, mut heads) = scripted_server(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nContent-Range: bytes 2-4/10\r\n\r\n234",
    )
    .await;
    let storage = storage_at(addr, Duration::from_secs(2));
    let range = ByteRange { start: 2, end: 4 };
    let (len, bytes, _) = read(&storage, "support-chat/dialogs/d1/a b", Some(range))
        .await
        .unwrap();
    assert_eq!((len, bytes.as_slice()), (3, &b"234"[..]));

    let head = heads.recv().await.unwrap();
    let mut lines = head.lines();
    assert_eq!(
        lines.next(),
        Some("GET /bucket/support-chat/dialogs/d1/a%20b HTTP/1.1")
    );
    let mut names: Vec<String> = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(':').next().unwrap().to_ascii_lowercase())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "authorization",
            "host",
            "range",
            "x-amz-content-sha256",
            "x-amz-date"
        ]
    );
    assert!(head.contains("range: bytes=2-4\r\n"));
    assert!(head.contains(
        "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
    ));
    // The range is sent, not signed: one signature serves every range of the object.
    assert!(head.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
    let authorization = |head: &str| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .unwrap()
            .to_owned()
    };
    read(&storage, "support-chat/dialogs/d1/a b", Some(range))
        .await
        .unwrap();
    let again = heads.recv().await.unwrap();
    assert_eq!(authorization(&again), authorization(&head), "reused");
    read(&storage, "support-chat/dialogs/d1/other", Some(range))
        .await
        .unwrap();
    let other = heads.recv().await.unwrap();
    assert!(other.starts_with("GET /bucket/support-chat/dialogs/d1/other HTTP/1.1"));
    assert_ne!(authorization(&other), authorization(&head), "per object");
}

#[tokio::test]
async fn s3_upload_has_an_explicit_length_and_unsigned_payload() {
    let (addr, mut heads) = scripted_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    let storage = Arc::new(storage_at(addr, Duration::from_secs(2)));
    let data = pattern(200_000);
    storage
        .put(
            &key("support-chat/staged/u1/s1"),
            "image/png",
            data.len() as u64,
            chunked(&data, 16 * 1024),
        )
        .await
        .unwrap();
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("put /bucket/support-chat/staged/u1/s1 http/1.1\r\n"));
    assert!(head.contains("content-length: 200000\r\n"));
    assert!(!head.contains("transfer-encoding"));
    assert!(head.contains("content-type: image/png\r\n"));
    assert!(head.contains("x-amz-content-sha256: unsigned-payload\r\n"));
}

fn list_page(keys: &[&str], next: Option<&str>) -> Vec<u8> {
    let contents: String = keys
        .iter()
        .map(|k| {
            format!(
                "<Contents><Key>{k}</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>\
                 <Size>3</Size></Contents>"
            )
        })
        .collect();
    let next = next
        .map(|t| format!("<NextContinuationToken>{t}</NextContinuationToken>"))
        .unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>\
         <IsTruncated>{}</IsTruncated>{contents}{next}</ListBucketResult>",
        !next.is_empty()
    );
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body.as_bytes());
    response
}

#[tokio::test]
async fn s3_list_follows_continuation_tokens() {
    let (addr, mut heads) = responder_server(|head| {
        if head.contains("continuation-token=tok%2B1%2F2") {
            list_page(&["support-chat/staged/u1/c"], None)
        } else {
            list_page(
                &["support-chat/staged/u1/a", "support-chat/staged/u1/b"],
                Some("tok+1/2"),
            )
        }
    })
    .await;
    let storage = storage_at(addr, Duration::from_secs(2));
    let listed = storage.list("support-chat/staged/").await.unwrap();
    let names: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        names,
        [
            "support-chat/staged/u1/a",
            "support-chat/staged/u1/b",
            "support-chat/staged/u1/c"
        ]
    );
    let first = heads.recv().await.unwrap();
    assert!(first.starts_with("GET /bucket?"), "{first}");
    assert!(first.contains("list-type=2"));
    assert!(first.contains("prefix=support-chat%2Fstaged%2F"));
    assert!(!first.contains("continuation-token"));
    let second = heads.recv().await.unwrap();
    assert!(second.contains("continuation-token=tok%2B1%2F2"));
}

#[tokio::test]
async fn supabase_provider_conforms() {
    let stub = SupabaseStub::start().await;
    let storage = stub.storage();
    let caps = Caps {
        non_ascii_keys: false,
        signed_urls: true,
    };
    conformance(storage.as_ref(), caps).await;

    // Every call went to the documented routes under /storage/v1.
    let requests = stub.requests();
    for route in [
        "GET /storage/v1/bucket/attachments",
        "POST /storage/v1/object/attachments/support-chat/dialogs/d1/a1",
        "GET /storage/v1/object/attachments/support-chat/dialogs/d1/a1",
        "POST /storage/v1/object/copy",
        "POST /storage/v1/object/list/attachments",
        "DELETE /storage/v1/object/attachments",
        "POST /storage/v1/object/sign/attachments/support-chat/dialogs/d3/s 1+x",
        "GET /storage/v1/object/sign/attachments/support-chat/dialogs/d3/s 1+x",
    ] {
        assert!(
            requests.iter().any(|r| r == route),
            "{route} in {requests:#?}"
        );
    }
}

#[tokio::test]
async fn supabase_moves_and_overwrites() {
    let stub = SupabaseStub::start().await;
    let storage = stub.storage();
    let (from, to) = ("support-chat/staged/u1/m1", "support-chat/dialogs/d1/m1");
    put(storage.as_ref(), from, b"first").await;
    put(storage.as_ref(), from, b"second").await;
    storage.move_object(&key(from), &key(to)).await.unwrap();
    assert!(!stub.contains(from) && stub.contains(to));
    assert_eq!(read(storage.as_ref(), to, None).await.unwrap().1, b"second");
    let again = storage.move_object(&key(from), &key(to)).await;
    assert!(matches!(again, Err(StorageError::NotFound)), "{again:?}");
    // Copy onto an existing object overwrites (a retried commit), as S3 does.
    put(storage.as_ref(), from, b"third").await;
    storage.copy(&key(from), &key(to)).await.unwrap();
    assert_eq!(read(storage.as_ref(), to, None).await.unwrap().1, b"third");
}

#[tokio::test]
async fn supabase_missing_objects_in_older_api_versions() {
    let stub = SupabaseStub::start().await;
    stub.set_legacy_errors(true);
    let storage = stub.storage();
    let missing = read(storage.as_ref(), "support-chat/dialogs/d1/none", None).await;
    assert!(
        matches!(missing, Err(StorageError::NotFound)),
        "{missing:?}"
    );
    let signed = storage
        .signed_read_url(
            &permit("support-chat/dialogs/d1/none"),
            Duration::from_secs(5),
            None,
            None,
        )
        .await;
    assert!(matches!(signed, Err(StorageError::NotFound)), "{signed:?}");
}

#[tokio::test]
async fn supabase_rejects_a_wrong_service_key() {
    let stub = SupabaseStub::start().await;
    let mut cfg = stub.config();
    cfg.service_key = Secret::new("not-the-key");
    let wrong = SupabaseStorage::new(&cfg, Duration::from_secs(2), Duration::from_secs(5)).unwrap();
    let k = "support-chat/dialogs/d1/w";
    let put_result = wrong
        .put(&key(k), "text/plain", 5, chunked(b"hello", 5))
        .await;
    assert!(
        matches!(put_result, Err(StorageError::Status(401))),
        "{put_result:?}"
    );
    let get = read(&wrong, k, None).await;
    assert!(matches!(get, Err(StorageError::Status(401))), "{get:?}");
    assert!(matches!(wrong.ping().await, Err(StorageError::Status(401))));
    assert!(!stub.contains(k));

    // The API itself checks the bearer token too (the gateway in front checks `apikey`).
    let client = reqwest::Client::new();
    let url = format!("{}/storage/v1/bucket/{}", stub.url, stub.bucket);
    let resp = client
        .get(&url)
        .header("apikey", &stub.service_key)
        .bearer_auth("not-the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["statusCode"], "403");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn supabase_signed_urls_expire_and_are_bound_to_their_object() {
    let stub = SupabaseStub::start().await;
    let storage = stub.storage();
    let (a, b) = ("support-chat/dialogs/d1/a", "support-chat/dialogs/d1/b");
    put(storage.as_ref(), a, b"object a").await;
    put(storage.as_ref(), b, b"object b").await;
    let url = storage
        .signed_read_url(&permit(a), Duration::from_secs(1), None, None)
        .await
        .unwrap();
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Inline: no `download`, so no attachment disposition.
    assert!(resp.headers().get("content-disposition").is_none());
    let other = url.replace("/d1/a?", "/d1/b?");
    assert_ne!(other, url);
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 400);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 400);
}

#[tokio::test]
async fn s3_upload_sends_server_side_encryption_headers() {
    for (sse, expected) in [
        (
            ServerSideEncryption::Aes256,
            vec!["x-amz-server-side-encryption: AES256"],
        ),
        (
            ServerSideEncryption::Kms {
                key_id: Some("arn:aws:kms:eu-central-1:1:key/k".into()),
            },
            vec![
                "x-amz-server-side-encryption: aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:eu-central-1:1:key/k",
            ],
        ),
    ] {
        let (addr, mut heads) =
            scripted_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
        let mut cfg = config_at(addr);
        cfg.sse = Some(sse);
        let storage = S3Storage::new(&cfg, Duration::from_secs(1), Duration::from_secs(2)).unwrap();
        storage
            .put(
                &key("support-chat/staged/u1/e"),
                "image/png",
                3,
                chunked(b"abc", 3),
            )
            .await
            .unwrap();
        let head = heads.recv().await.unwrap().to_ascii_lowercase();
        for line in expected {
            assert!(
                head.contains(&format!("{}\r\n", line.to_ascii_lowercase())),
                "{head}"
            );
        }
        // Signed, so that nothing between us and storage can strip it.
        assert!(head.contains("x-amz-server-side-encryption"), "{head}");
        let signed = head
            .split("signedheaders=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap()
            .to_string();
        assert!(signed.contains("x-amz-server-side-encryption"), "{signed}");
    }
}
