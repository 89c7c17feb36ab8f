//! Read response policy through the real gateway (SPEC §3): the served `Content-Type` (a
//! row's `mimeType` that is not exactly one media type is served as opaque bytes, as a
//! download; one that is, is sent normalized and judged inline on that value), and `Range`
//! on `GET` only.

use crate::harness;

use harness::local::{Data, Extra, Local, PREFIX};
use harness::token;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_media_type_is_served_and_it_is_normalized() {
    let data = Data::create().await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    let rows = [
        (
            "list",
            "image/png;a=b,text/html",
            "application/octet-stream",
            "attachment",
        ),
        (
            "list2",
            "image/png, text/html",
            "application/octet-stream",
            "attachment",
        ),
        (
            "noval",
            "image/png;a",
            "application/octet-stream",
            "attachment",
        ),
        ("upper", "IMAGE/PNG; x=1", "image/png", "inline"),
        (
            "text",
            "text/plain; charset=UTF-8; x=y",
            "text/plain; charset=utf-8",
            "inline",
        ),
        ("html", "text/html", "text/html", "attachment"),
    ];
    for (id, mime, _, _) in &rows {
        data.attachment(id, Some("d1"), mime, b"\x89PNG\r\n\x1a\n")
            .await;
    }
    let env = Local::start(data, Extra::default()).await;
    let alice = token("alice", "USER", &[]);
    for (id, _, content_type, disposition) in rows {
        let resp = env
            .client
            .get(env.url(&format!("{PREFIX}/d1/{id}")))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{id}");
        let header = |name: &str| resp.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("content-type"), content_type, "{id}");
        assert!(
            header("content-disposition").starts_with(disposition),
            "{id}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
}

/// RFC 9110 §14.2: `Range` is defined for `GET` only; a `HEAD` with one answers as the `GET`
/// without it would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_with_range_answers_the_full_representation() {
    let data = Data::create().await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    data.attachment("vid", Some("d1"), "video/mp4", &[7u8; 1000])
        .await;
    let env = Local::start(data, Extra::default()).await;
    let alice = token("alice", "USER", &[]);
    let url = env.url(&format!("{PREFIX}/d1/vid"));
    for range in ["bytes=0-9", "bytes=5000-", "bytes=0-1,5-6"] {
        let resp = env
            .client
            .head(&url)
            .bearer_auth(&alice)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{range}");
        assert_eq!(resp.headers()["content-length"], "1000", "{range}");
        assert!(resp.headers().get("content-range").is_none(), "{range}");
    }
    // `GET` keeps its ranges.
    let resp = env
        .client
        .get(&url)
        .bearer_auth(&alice)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().len(), 10);
}
