//! `POST /internal/attachments/delete` (SPEC §4) through the real gateway binary: two
//! instances on the same SQLite file, bucket and private Redis. A delete through one instance's
//! admin listener removes rows, objects and previews, and both instances stop serving the ids
//! within a second although both had them cached; a repeat answers them as missing.

use crate::harness;

use std::time::{Duration, Instant};

use attachment_gateway::attachment::{Format, ImageInfo, PreviewRow, Variant};
use attachment_gateway::storage::StorageKey;
use bytes::Bytes;
use harness::local::{Data, Extra, Local, PREFIX};
use harness::redis::RedisServer;
use harness::tcp_fault::TcpFault;
use harness::{token, Gateway};
use serde_json::{json, Value};

const SERVICE_TOKEN: &str = "delete-test-service-token-0123456789";

/// A linked image with a stored thumb (row and object), and a staged upload.
async fn seed(data: &Data) {
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    data.attachment("img1", Some("d1"), "image/png", b"the original body")
        .await;
    data.attachment("stg1", None, "image/png", b"staged body")
        .await;
    let mut rows = Vec::new();
    for format in [Format::Webp, Format::Jpeg] {
        let key = StorageKey::preview("img1", Variant::Thumb, format);
        let body = Bytes::from_static(b"thumb bytes");
        let stream = futures_util::stream::iter([Ok(body.clone())]);
        data.storage
            .put(&key, "image/webp", body.len() as u64, Box::pin(stream))
            .await
            .unwrap();
        rows.push(PreviewRow {
            attachment_id: "img1".into(),
            variant: Variant::Thumb,
            format,
            storage_path: key.as_str().into(),
            size_bytes: body.len() as u64,
            width: 4,
            height: 4,
        });
    }
    let info = ImageInfo {
        width: Some(8),
        height: Some(8),
        placeholder: None,
    };
    data.catalog
        .save_previews("img1", &info, &rows)
        .await
        .unwrap();
}

/// A gateway over the seeded data and `redis`, with long cache TTLs: only the broadcast can
/// explain a 404 within the second.
async fn seeded_gateway(redis: &RedisServer) -> Local {
    let data = Data::create().await;
    seed(&data).await;
    Local::start(
        data,
        Extra {
            catalog: "cache_ttl_s = 600".into(),
            sections: format!(
                "[limits]\nredis_url = \"{}\"\nuser_per_minute = 100000\n\
                 ip_per_minute = 100000\nburst = 10000\n\
                 [internal]\nservice_token = \"{SERVICE_TOKEN}\"\n",
                redis.url()
            ),
            ..Extra::default()
        },
    )
    .await
}

async fn status(client: &reqwest::Client, gw: &Gateway, path: &str) -> u16 {
    client
        .get(gw.url(path))
        .bearer_auth(token("alice", "USER", &[]))
        .header("accept", "image/webp")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn delete(client: &reqwest::Client, gw: &Gateway, ids: &[&str]) -> (u16, Value) {
    let resp = client
        .post(format!("{}/internal/attachments/delete", gw.admin))
        .bearer_auth(SERVICE_TOKEN)
        .json(&json!({ "attachmentIds": ids }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Poll `path` on `gw` until it answers 404, for at most `within`; how long it took.
async fn until_gone(
    client: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if status(client, gw, path).await == 404 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The subscription of an instance whose Redis went silent (its connection open, nothing
/// relayed: a host gone without a FIN) is found dead by its keep-alive and made again, so a
/// delete published afterwards still reaches it within the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_noticed_and_made_again() {
    let redis = RedisServer::start().await;
    let relay = TcpFault::start(&format!("127.0.0.1:{}", redis.port)).await;
    let env = seeded_gateway(&redis).await;
    // The second instance reaches the same Redis through the relay.
    let direct = redis.url();
    let relayed = format!("redis://{}/", relay.addr);
    let behind = env.twin_with(|toml| toml.replace(&direct, &relayed)).await;
    let client = &env.client;
    let body = format!("{PREFIX}/d1/img1");
    let subscribed = |gw: &Gateway| gw.log().matches("delete broadcast: subscribed").count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscribed(&behind) < 1 {
        assert!(
            Instant::now() < deadline,
            "never subscribed\n{}",
            behind.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status(client, &behind, &body).await,
        200,
        "{}",
        behind.log()
    );

    relay.freeze_open();
    // Within the keep-alive period and its timeout (5 s + 1 s), plus the reconnect backoff.
    let deadline = Instant::now() + Duration::from_secs(15);
    while subscribed(&behind) < 2 {
        assert!(
            Instant::now() < deadline,
            "the silent subscription was never made again\n{}",
            behind.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cached again after the new subscription dropped the caches: only the broadcast can
    // make it a 404 within the second.
    assert_eq!(
        status(client, &behind, &body).await,
        200,
        "{}",
        behind.log()
    );
    let (code, answer) = delete(client, &env.gw, &["img1"]).await;
    assert_eq!(code, 200, "{answer}\n{}", env.gw.log());
    let took = until_gone(client, &behind, &body, Duration::from_secs(1)).await;
    assert!(took.is_some(), "still served after 1 s\n{}", behind.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_reaches_every_instance_within_a_second() {
    let redis = RedisServer::start().await;
    let env = seeded_gateway(&redis).await;
    let twin = env.twin().await;
    let client = &env.client;
    let (body, thumb) = (
        format!("{PREFIX}/d1/img1"),
        format!("{PREFIX}/d1/img1?variant=thumb"),
    );
    // Both instances read (and so cache) the row, the body and the previews.
    for gw in [&env.gw, &twin] {
        for _ in 0..2 {
            assert_eq!(status(client, gw, &body).await, 200, "{}", gw.log());
            assert_eq!(status(client, gw, &thumb).await, 200, "{}", gw.log());
        }
    }

    let (code, answer) = delete(client, &twin, &["img1", "stg1", "nope1"]).await;
    assert_eq!(code, 200, "{answer}\n{}", twin.log());
    assert_eq!(
        answer,
        json!({ "deleted": ["img1", "stg1"], "missing": ["nope1"] })
    );
    let second = Duration::from_secs(1);
    for gw in [&env.gw, &twin] {
        for path in [&body, &thumb] {
            let took = until_gone(client, gw, path, second).await;
            assert!(
                took.is_some(),
                "{path} still served after 1 s\n{}",
                gw.log()
            );
            eprintln!("{path} gone on {} after {:?}", gw.base, took.unwrap());
        }
    }

    // Idempotent: the same call again finds nothing to delete.
    let (code, again) = delete(client, &env.gw, &["img1", "stg1"]).await;
    assert_eq!(code, 200);
    assert_eq!(again, json!({ "deleted": [], "missing": ["img1", "stg1"] }));

    // Rows, objects and preview rows are gone.
    let catalog = &env.data.catalog;
    let ids = vec!["img1".to_string(), "stg1".into()];
    assert!(catalog.find_many(&ids).await.unwrap().is_empty());
    assert!(catalog.find_previews("img1").await.unwrap().is_empty());
    for prefix in ["support-chat/"] {
        let left = env.data.storage.list(prefix).await.unwrap();
        assert!(
            left.is_empty(),
            "objects left: {:?}",
            left.iter().map(|o| o.key.as_str()).collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_endpoint_checks_token_and_body() {
    let data = Data::create().await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    data.attachment("a1", Some("d1"), "text/plain", b"kept")
        .await;
    let env = Local::start(
        data,
        Extra {
            sections: format!("[internal]\nservice_token = \"{SERVICE_TOKEN}\"\n"),
            ..Extra::default()
        },
    )
    .await;
    let url = format!("{}/internal/attachments/delete", env.gw.admin);
    let body = json!({ "attachmentIds": ["a1"] });
    let wrong = env
        .client
        .post(&url)
        .bearer_auth("not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let get = env
        .client
        .get(&url)
        .bearer_auth(SERVICE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let bad = env
        .client
        .post(&url)
        .bearer_auth(SERVICE_TOKEN)
        .json(&json!({ "attachmentIds": ["../etc"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Not on the public listener: there the path is the app's, and the row stays.
    let _ = env
        .client
        .post(env.url("/internal/attachments/delete"))
        .bearer_auth(SERVICE_TOKEN)
        .json(&body)
        .send()
        .await;
    let ids = vec!["a1".to_string()];
    assert_eq!(env.data.catalog.find_many(&ids).await.unwrap().len(), 1);
}
