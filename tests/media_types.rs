//! The served `Content-Type` through the real gateway (SPEC §3 "Read response policy"): a
//! row's `mimeType` that is not exactly one media type is served as opaque bytes, as a
//! download; one that is, is sent normalized and judged inline on that value.

mod harness;

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
