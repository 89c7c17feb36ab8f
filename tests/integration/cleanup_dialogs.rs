//! Cleanup's orphan sweep of `support-chat/dialogs/` (issue 14), through the real `cleanup
//! --once` command on SQLite + a local directory: a copy no row serves goes once older than the
//! grace; a linked attachment, a fresh copy and an in-flight commit's copy stay.

use crate::harness;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use attachment_gateway::catalog::{self, AttachmentStatus, Catalog, NewAttachment};
use attachment_gateway::config;
use attachment_gateway::storage::{self, Storage, StorageKey};
use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;

fn config_toml(dir: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\n\
         [auth]\nhs_secret = \"{}\"\n\
         [catalog]\ndatabase_url = \"sqlite://{}?mode=rwc\"\n\
         [storage]\nprovider = \"fs\"\nroot = \"{}\"\n\
         [upload]\nstaged_ttl_min = 60\n",
        harness::HS_SECRET,
        dir.join("gw.db").display(),
        dir.join("bucket").display()
    )
}

async fn put(storage: &dyn Storage, key: &str) {
    let key = StorageKey::parse(key).unwrap();
    let stream = futures_util::stream::iter([Ok(Bytes::from_static(b"data"))]);
    storage
        .put(&key, "text/plain", 4, Box::pin(stream))
        .await
        .unwrap();
}

fn row(id: &str, dialog: Option<&str>, path: &str, status: AttachmentStatus) -> NewAttachment {
    NewAttachment {
        id: id.into(),
        dialog_id: dialog.map(str::to_owned),
        message_id: dialog.map(|_| "m1".to_owned()),
        storage_path: path.into(),
        mime_type: "text/plain".into(),
        size_bytes: 4,
        original_name: format!("{id}.txt"),
        created_by_user_id: "alice".into(),
        status,
        created_at: Utc::now(),
    }
}

/// Set the modification time of the object at `key` (fs only) two hours back.
fn backdate(root: &std::path::Path, key: &str) {
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    let f = std::fs::File::options()
        .write(true)
        .open(root.join(key))
        .unwrap();
    f.set_modified(old).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialog_copies_no_row_serves_are_swept_after_the_grace() {
    use AttachmentStatus::{Linked, Uploaded};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).unwrap();
    let toml = config_toml(dir.path());
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, &toml).unwrap();
    let cfg = config::from_toml_str(&toml, std::path::Path::new("."), &|_| None).unwrap();
    let catalog: Arc<dyn Catalog> = catalog::connect(&cfg.catalog).await.unwrap();
    catalog.migrate().await.unwrap();
    let storage = storage::build(&cfg.storage).unwrap();
    catalog.upsert_dialog("d1", "alice").await.unwrap();

    let keys = [
        // A linked attachment: its row serves it.
        "support-chat/dialogs/d1/linked",
        // A commit that lost a race with a discard: the copy has no row at all.
        "support-chat/dialogs/d1/raced",
        // A row linked to another dialog: this copy is an earlier attempt's.
        "support-chat/dialogs/d2/elsewhere",
        // A commit in flight (target recorded, copy made, not linked yet).
        "support-chat/dialogs/d1/inflight",
        // No row, but younger than the grace: a commit may be about to link it.
        "support-chat/dialogs/d1/fresh",
    ];
    for key in keys {
        put(storage.as_ref(), key).await;
    }
    put(storage.as_ref(), "support-chat/staged/alice/inflight").await;
    catalog
        .upsert_attachment(&row(
            "linked",
            Some("d1"),
            "support-chat/dialogs/d1/linked",
            Linked,
        ))
        .await
        .unwrap();
    catalog
        .upsert_attachment(&row(
            "elsewhere",
            Some("d1"),
            "support-chat/dialogs/d1/elsewhere",
            Linked,
        ))
        .await
        .unwrap();
    put(storage.as_ref(), "support-chat/dialogs/d1/elsewhere").await;
    catalog
        .upsert_attachment(&row(
            "inflight",
            None,
            "support-chat/staged/alice/inflight",
            Uploaded,
        ))
        .await
        .unwrap();
    catalog
        .mark_commit_target("alice", "d1", &["inflight".into()])
        .await
        .unwrap();
    for key in &keys[..4] {
        backdate(&root, key);
    }
    backdate(&root, "support-chat/dialogs/d1/elsewhere");

    let out = harness::command(dir.path(), &["cleanup", "--once", "--config"], &config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dialog_orphans"], 2, "{report}");

    let left: Vec<String> = storage
        .list("support-chat/dialogs/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key.to_string())
        .collect();
    for kept in [
        "support-chat/dialogs/d1/linked",
        "support-chat/dialogs/d1/elsewhere",
        "support-chat/dialogs/d1/inflight",
        "support-chat/dialogs/d1/fresh",
    ] {
        assert!(left.contains(&kept.to_string()), "{kept} kept: {left:?}");
    }
    for gone in [
        "support-chat/dialogs/d1/raced",
        "support-chat/dialogs/d2/elsewhere",
    ] {
        assert!(!left.contains(&gone.to_string()), "{gone} swept: {left:?}");
    }
    // The in-flight commit's row and staged object are untouched (its row is not expired).
    let row = catalog.find_staged("inflight").await.unwrap().unwrap();
    assert_eq!(row.status, Uploaded);
}
