//! A true miss must cost no more than a denial of an existing id (issue 14): both are answered
//! from the in-process catalog cache once asked, so latency cannot tell a prober which ids
//! exist. Proved without timing: once the database is cut off (a TCP fault relay in front of
//! PostgreSQL), a remembered miss still answers the same `404` as a cached denial, while an id
//! never asked shows the database really is gone. A commit through the instance makes a
//! remembered miss visible at once.

use crate::harness;

use std::sync::Arc;

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, StorageKey};
use bytes::Bytes;
use chrono::Utc;
use harness::tcp_fault::{Fault, TcpFault};
use harness::{token, Gateway, PgDatabase};
use serde_json::{json, Value};

const PREFIX: &str = "/api/support-chat/attachments";
const SERVICE_TOKEN: &str = "service-token-for-tests-0123456789";

fn config_toml(database_url: &str, root: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "{{listen}}"
admin_listen = "{{admin}}"
threads = 2
grace_period_s = 1

[app]
upstream = "127.0.0.1:9"

[auth]
algorithms = ["HS256"]
hs_secret = "{secret}"

[catalog]
database_url = "{database_url}"
cache_ttl_s = 30

[storage]
provider = "fs"
root = "{root}"

[limits]
user_per_minute = 100000
ip_per_minute = 100000
burst = 10000

[upload]
allowed_types = ["image/png"]
cleanup_interval_s = 3600

[preview]
enabled = false

[internal]
service_token = "{SERVICE_TOKEN}"

[log]
level = "info"
format = "json"
"#,
        secret = harness::HS_SECRET,
        root = root.display(),
    )
}

async fn seed(toml: &str) {
    let text = toml
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2");
    let cfg = config::from_toml_str(&text, std::path::Path::new("."), &|_| None).unwrap();
    let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    catalog.migrate().await.unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();
    let key = StorageKey::dialog("d1", "a1");
    let bytes = Bytes::from_static(b"hello");
    let stream = futures_util::stream::iter([Ok(bytes.clone())]);
    storage
        .put(&key, "text/plain", 5, Box::pin(stream))
        .await
        .unwrap();
    catalog
        .upsert_attachment(&NewAttachment {
            id: "a1".into(),
            dialog_id: Some("d1".into()),
            message_id: Some("m1".into()),
            storage_path: key.as_str().into(),
            mime_type: "text/plain".into(),
            size_bytes: 5,
            original_name: "a1.txt".into(),
            created_by_user_id: "alice".into(),
            status: AttachmentStatus::Linked,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
}

/// Status and body: all a prober sees of a `404` (headers are checked by the read suites).
async fn get(client: &reqwest::Client, gw: &Gateway, path: &str, bearer: &str) -> (u16, String) {
    let resp = client
        .get(gw.url(&format!("{PREFIX}/{path}")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_miss_needs_the_database_no_more_than_a_denial() {
    let pg = PgDatabase::create().await;
    let relay = TcpFault::start("127.0.0.1:5432").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    seed(&config_toml(&pg.url, &root)).await;
    let through_relay = pg.url.replace("127.0.0.1:5432", &relay.addr);
    let gw = Gateway::start_in(dir, &config_toml(&through_relay, &root)).await;
    let client = reqwest::Client::new();
    let bob = token("bob", "USER", &[]);
    let alice = token("alice", "USER", &[]);

    // First asks: each goes to the database once.
    let denial = get(&client, &gw, "d1/a1", &bob).await;
    assert_eq!(denial.0, 404, "{}", gw.log());
    let before = relay.bytes_sent();
    assert_eq!(get(&client, &gw, "d1/nope", &bob).await, denial);
    assert!(
        relay.bytes_sent() > before,
        "a first miss asks the database"
    );
    assert_eq!(get(&client, &gw, "d2/a1", &bob).await, denial);
    assert_eq!(get(&client, &gw, "staged/nope", &bob).await, denial);

    // The database is gone: what was asked before is answered alike, denial or miss.
    relay.set(Fault::Refuse).await;
    assert_eq!(get(&client, &gw, "d1/a1", &bob).await, denial, "denial");
    assert_eq!(get(&client, &gw, "d1/nope", &bob).await, denial, "miss");
    assert_eq!(
        get(&client, &gw, "d2/a1", &bob).await,
        denial,
        "other dialog"
    );
    assert_eq!(
        get(&client, &gw, "staged/nope", &bob).await,
        denial,
        "staged"
    );
    // Control: an id never asked does need the database, which is really gone.
    let (status, _) = get(&client, &gw, "d1/never", &bob).await;
    assert!(status >= 500, "control: {status}");

    // A commit through this instance makes a remembered miss visible at once.
    relay.set(Fault::Pass).await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR0123456789".to_vec();
    let resp = client
        .post(gw.url(&format!("{PREFIX}?filename=p.png")))
        .bearer_auth(&alice)
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", gw.log());
    let staged: Value = resp.json().await.unwrap();
    let id = staged["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&client, &gw, &format!("d1/{id}"), &alice).await, denial);
    let resp = client
        .post(format!("{}/internal/attachments/commit", gw.admin))
        .bearer_auth(SERVICE_TOKEN)
        .json(
            &json!({"userId": "alice", "dialogId": "d1", "messageId": "m9",
                      "attachmentIds": [id]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.log());
    let resp = client
        .get(gw.url(&format!("{PREFIX}/d1/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "committed row visible at once");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png.as_slice());
}
