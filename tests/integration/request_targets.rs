//! Request-targets through the real gateway (SPEC §3 "Request targets"): only origin-form,
//! absolute-form and `OPTIONS *` are accepted; any other form is `400` JSON from the gateway
//! and never reaches the app, whatever path it seems to carry.

use crate::harness;

use harness::local::{Data, Extra, Local, PREFIX};
use harness::{raw_method_request, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_target_forms_are_refused_and_never_forwarded() {
    let data = Data::create().await;
    data.attachment("a1", Some("d1"), "image/png", b"png").await;
    data.catalog.upsert_dialog("d1", "alice").await.unwrap();
    let env = Local::start(data, Extra::default()).await;
    let auth = format!("Bearer {}", token("alice", "USER", &[]));
    // Forms the gateway refuses itself, with its JSON answer.
    let refused = [
        ("GET", format!("x:{PREFIX}/d1/a1")),
        ("GET", format!("{}/d1/a1", &PREFIX[1..])),
        ("POST", format!("x:{PREFIX}")),
        ("DELETE", format!("staged:{PREFIX}/staged/a1")),
        ("GET", "*".to_string()),
        ("GET", "x:/elsewhere".to_string()),
    ];
    for (method, target) in &refused {
        let (status, text) =
            raw_method_request(&env.gw.base, method, target, &[("authorization", &auth)]).await;
        assert_eq!(status, 400, "{method} {target}\n{text}");
        assert!(
            text.contains(r#"{"error":"bad_request"}"#),
            "{target}: {text}"
        );
        assert!(text
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
    }
    // Forms Pingora already refuses while reading the head (an `http` scheme without `//`,
    // userinfo, an authority that is not the Host): `400` too, before any phase runs.
    for target in [
        format!("http:{PREFIX}/d1/a1"),
        "http:api/support-chat/attachments/d1/a1".to_string(),
        format!("http://user@h{PREFIX}/d1/a1"),
        format!("http://elsewhere.example{PREFIX}/d1/a1"),
    ] {
        let (status, text) =
            raw_method_request(&env.gw.base, "GET", &target, &[("authorization", &auth)]).await;
        assert_eq!(status, 400, "{target}\n{text}");
    }
    assert!(env.app.seen().is_empty(), "{:?}", env.app.seen());

    // Absolute-form is routed by its path: the gateway serves it, the app never sees it.
    let authority = env.gw.base.trim_start_matches("http://");
    let (status, text) = raw_method_request(
        &env.gw.base,
        "GET",
        &format!("http://{authority}{PREFIX}/d1/a1"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(env.app.seen().is_empty());
    // `OPTIONS *` and other absolute-form targets are the app's.
    let (status, _) = raw_method_request(&env.gw.base, "OPTIONS", "*", &[]).await;
    assert_eq!(status, 200);
    let (status, _) = raw_method_request(
        &env.gw.base,
        "GET",
        &format!("http://{authority}/messages"),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env.app.seen().len(), 2);
}
