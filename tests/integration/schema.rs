//! The catalog's shape is checked whoever created the tables (issue 17, point 2): through the
//! real binary against real PostgreSQL, a table the app made from the brief alone makes
//! `migrate` and `check-config --database` fail naming each mismatch, and `/readyz` answer
//! `503` naming the schema. The migrations' bookkeeping stays out of the app's schema, and the
//! default dialog table is made only when it is the configured one (point 3).

use crate::harness;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use attachment_gateway::catalog;
use attachment_gateway::config::{CatalogConfig, DatabaseKind, Secret};
use harness::{command, free_port, PgDatabase, HS_SECRET};
use sqlx::{Connection, Executor, PgConnection};

/// What an app team writes from the brief alone: no `"linkedAt"`, `"sizeBytes"` an `integer`.
const FROM_THE_BRIEF: &str = r#"
CREATE TABLE "ChatAttachment" (
    "id" TEXT PRIMARY KEY,
    "dialogId" TEXT,
    "messageId" TEXT,
    "storagePath" TEXT NOT NULL,
    "mimeType" TEXT NOT NULL,
    "sizeBytes" INTEGER NOT NULL,
    "originalName" TEXT NOT NULL,
    "createdByUserId" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX "ChatAttachment_dialogId_id_idx" ON "ChatAttachment" ("dialogId", "id");
CREATE INDEX "ChatAttachment_messageId_idx" ON "ChatAttachment" ("messageId");
CREATE INDEX "ChatAttachment_status_createdAt_idx" ON "ChatAttachment" ("status", "createdAt");
"#;

const SIZE_LINE: &str = r#""ChatAttachment"."sizeBytes" is integer, needs bigint"#;
const LINKED_AT_LINE: &str = r#""ChatAttachment"."linkedAt" is missing"#;

fn write_config(dir: &Path, db: &PgDatabase, listen: u16, admin: u16) -> std::path::PathBuf {
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{listen}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         threads = 1\ngrace_period_s = 1\n\
         [auth]\nhs_secret = \"{HS_SECRET}\"\n\
         [catalog]\ndatabase_url = \"{}\"\n\
         [storage]\nprovider = \"fs\"\nroot = \"{}\"\n",
        db.url,
        bucket.display()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, args: &[&str], config: &Path) -> Output {
    command(dir, args, config).output().unwrap()
}

async fn exec(db: &PgDatabase, sql: &str) {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_from_the_brief_alone_is_refused_line_by_line() {
    let db = PgDatabase::create().await;
    exec(&db, FROM_THE_BRIEF).await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = write_config(dir.path(), &db, listen, admin);

    let migrate = run(dir.path(), &["migrate", "--config"], &config);
    let stderr = String::from_utf8_lossy(&migrate.stderr);
    assert!(!migrate.status.success(), "{stderr}");
    assert!(stderr.contains(SIZE_LINE), "{stderr}");
    assert!(stderr.contains(LINKED_AT_LINE), "{stderr}");

    let check = run(
        dir.path(),
        &["check-config", "--database", "--config"],
        &config,
    );
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.contains(&format!("catalog: {SIZE_LINE}").as_str()),
        "{stderr}"
    );
    assert!(
        lines.contains(&format!("catalog: {LINKED_AT_LINE}").as_str()),
        "{stderr}"
    );

    let mut gw = command(dir.path(), &["run", "--config"], &config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, body) = readyz(admin).await;
    let _ = gw.kill();
    let _ = gw.wait();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["failing"]
            .as_array()
            .unwrap()
            .contains(&"schema".into()),
        "{body}"
    );
    let lines = body["schema"].as_array().unwrap();
    assert!(lines.contains(&SIZE_LINE.into()), "{body}");
    assert!(lines.contains(&LINKED_AT_LINE.into()), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_migrate_creates_passes_every_check() {
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let config = write_config(dir.path(), &db, listen, admin);
    let migrate = run(dir.path(), &["migrate", "--config"], &config);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let check = run(
        dir.path(),
        &["check-config", "--database", "--config"],
        &config,
    );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // An index dropped under a running catalog is named too.
    exec(&db, r#"DROP INDEX "ChatAttachment_status_createdAt_idx""#).await;
    let check = run(
        dir.path(),
        &["check-config", "--database", "--config"],
        &config,
    );
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(r#""ChatAttachment" has no index on ("status", "createdAt")"#),
        "{stderr}"
    );
}

/// `/readyz` once the admin listener answers.
async fn readyz(admin: u16) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("http://127.0.0.1:{admin}/readyz");
    loop {
        if let Ok(resp) = reqwest::get(&url).await {
            let status = resp.status().as_u16();
            return (status, resp.json().await.unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "the admin listener never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn catalog_config(db: &PgDatabase, dialog_table: &str, owner: &str) -> CatalogConfig {
    CatalogConfig {
        database_url: Secret::new(db.url.clone()),
        kind: DatabaseKind::Postgres,
        max_connections: 2,
        cache_ttl: Duration::ZERO,
        dialog_table: dialog_table.into(),
        dialog_owner_column: owner.into(),
        migrations_schema: "attachment_gateway".into(),
    }
}

/// `(schema, table)` of every table in the database outside PostgreSQL's own schemas.
async fn tables(db: &PgDatabase) -> Vec<(String, String)> {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

fn pair(schema: &str, table: &str) -> (String, String) {
    (schema.into(), table.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bookkeeping_lives_outside_the_apps_schema() {
    let db = PgDatabase::create().await;
    let cat = catalog::connect(&catalog_config(&db, "SupportDialog", "userId"))
        .await
        .unwrap();
    cat.migrate().await.unwrap();
    // Again: nothing to apply, nothing changes.
    cat.migrate().await.unwrap();
    assert_eq!(
        tables(&db).await,
        [
            pair("attachment_gateway", "_migrations"),
            pair("public", "ChatAttachment"),
            pair("public", "ChatAttachmentPreview"),
            pair("public", "SupportDialog"),
        ]
    );
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let versions: Vec<(i64,)> =
        sqlx::query_as(r#"SELECT "version" FROM attachment_gateway."_migrations" ORDER BY 1"#)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [(1,), (2,)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_dialog_table_is_made_only_when_it_is_the_one_configured() {
    let db = PgDatabase::create().await;
    exec(
        &db,
        r#"CREATE TABLE "Conversation" ("id" TEXT PRIMARY KEY, "ownerId" TEXT NOT NULL)"#,
    )
    .await;
    let cat = catalog::connect(&catalog_config(&db, "Conversation", "ownerId"))
        .await
        .unwrap();
    cat.migrate().await.unwrap();
    let public: Vec<String> = tables(&db)
        .await
        .into_iter()
        .filter(|(s, _)| s == "public")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(
        public,
        ["ChatAttachment", "ChatAttachmentPreview", "Conversation"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_migrated_by_an_earlier_gateway_migrates_again() {
    // Before the bookkeeping moved, `_sqlx_migrations` sat in the app's schema; the new
    // bookkeeping starts empty and applies every migration again, which their
    // `IF NOT EXISTS` make harmless.
    let db = PgDatabase::create().await;
    let mut cfg = catalog_config(&db, "SupportDialog", "userId");
    cfg.migrations_schema = "earlier".into();
    catalog::connect(&cfg)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    let cat = catalog::connect(&catalog_config(&db, "SupportDialog", "userId"))
        .await
        .unwrap();
    cat.migrate().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_at_once_take_turns() {
    let db = PgDatabase::create().await;
    let cfg = catalog_config(&db, "SupportDialog", "userId");
    let (a, b) = (
        catalog::connect(&cfg).await.unwrap(),
        catalog::connect(&cfg).await.unwrap(),
    );
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_migration_that_changed_is_refused() {
    let db = PgDatabase::create().await;
    let cat = catalog::connect(&catalog_config(&db, "SupportDialog", "userId"))
        .await
        .unwrap();
    cat.migrate().await.unwrap();
    exec(
        &db,
        r#"UPDATE attachment_gateway."_migrations" SET "checksum" = '\x00' WHERE "version" = 1"#,
    )
    .await;
    let err = cat.migrate().await.unwrap_err();
    assert!(err.to_string().contains("1"), "{err}");
    assert!(
        matches!(
            err,
            catalog::CatalogError::Migrate(sqlx::migrate::MigrateError::VersionMismatch(1))
        ),
        "{err}"
    );
}
