//! Cookie-authenticated writes from another site are refused (SPEC §3 "Cross-site requests"),
//! through the real gateway: an upload or discard that a page elsewhere makes the browser send
//! with the session cookie answers `403 {"error":"cross_site"}` and stores (or removes)
//! nothing; the app's own pages, and bearer-token clients, are served.

use crate::harness;

use harness::local::{Data, Extra, Local, PREFIX};
use harness::token;

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn cookie() -> String {
    format!("session={}", token("alice", "USER", &[]))
}

async fn upload(gw: &Local, headers: &[(&str, String)]) -> (u16, serde_json::Value) {
    let mut req = gw
        .client
        .post(gw.url(&format!("{PREFIX}?filename=a.png")))
        .header("content-type", "image/png")
        .body(PNG);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn staged_uploads(gw: &Local) -> u64 {
    gw.data.catalog.staged_usage("alice").await.unwrap().uploads
}

fn own_origin(gw: &Local) -> String {
    gw.url("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_uploads_from_another_site_are_refused_and_store_nothing() {
    let gw = Local::start(Data::create().await, Extra::default()).await;
    let refused = [
        vec![("origin", "http://evil.example".to_string())],
        vec![("origin", "null".to_string())],
        // The right host on the wrong scheme is another origin.
        vec![("origin", own_origin(&gw).replace("http://", "https://"))],
        // No Origin: only fetch metadata saying same-origin would do.
        vec![],
        vec![("sec-fetch-site", "cross-site".to_string())],
        vec![("sec-fetch-site", "same-site".to_string())],
    ];
    for extra in refused {
        let mut headers = vec![("cookie", cookie())];
        headers.extend(extra.clone());
        let (status, body) = upload(&gw, &headers).await;
        assert_eq!(status, 403, "{extra:?}");
        assert_eq!(
            body,
            serde_json::json!({ "error": "cross_site" }),
            "{extra:?}"
        );
    }
    assert_eq!(staged_uploads(&gw).await, 0, "nothing was stored");
    let bucket = gw.data.dir.path().join("bucket");
    assert!(
        walk(&bucket).is_empty(),
        "no object either: {:?}",
        walk(&bucket)
    );
    assert!(gw.gw.log().contains("cross-site write refused"));

    // The app's own page, by Origin or by fetch metadata alone.
    let (status, _) = upload(&gw, &[("cookie", cookie()), ("origin", own_origin(&gw))]).await;
    assert_eq!(status, 201);
    let (status, _) = upload(
        &gw,
        &[
            ("cookie", cookie()),
            ("sec-fetch-site", "same-origin".into()),
        ],
    )
    .await;
    assert_eq!(status, 201);
    // A bearer token is never sent by a browser on its own: not judged.
    let bearer = format!("Bearer {}", token("alice", "USER", &[]));
    let (status, _) = upload(
        &gw,
        &[
            ("authorization", bearer),
            ("origin", "http://evil.example".into()),
        ],
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(staged_uploads(&gw).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_discards_from_another_site_are_refused_and_remove_nothing() {
    let data = Data::create().await;
    data.attachment("draft", None, "image/png", PNG).await;
    let gw = Local::start(data, Extra::default()).await;
    let url = gw.url(&format!("{PREFIX}/staged/draft"));
    let resp = gw
        .client
        .delete(&url)
        .header("cookie", cookie())
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(staged_uploads(&gw).await, 1, "still staged");
    let resp = gw
        .client
        .delete(&url)
        .header("cookie", cookie())
        .header("origin", own_origin(&gw))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(staged_uploads(&gw).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_origins_replace_the_own_origin() {
    let gw = Local::start(
        Data::create().await,
        Extra {
            sections: "[http]\nallowed_origins = [\"https://chat.example.com\"]\n".into(),
            ..Default::default()
        },
    )
    .await;
    let (status, _) = upload(&gw, &[("cookie", cookie()), ("origin", own_origin(&gw))]).await;
    assert_eq!(status, 403, "only the listed origin may write");
    let (status, _) = upload(
        &gw,
        &[
            ("cookie", cookie()),
            ("origin", "https://chat.example.com".into()),
        ],
    )
    .await;
    assert_eq!(status, 201);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
