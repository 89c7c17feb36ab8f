//! The catalog against real engines: each test gets a fresh PostgreSQL database (dropped
//! afterwards) or a SQLite file in a temporary directory, and the same body runs on both.

use std::time::Duration;

use attachment_gateway::attachment::SharedRow;
use attachment_gateway::catalog::{
    self, AttachmentRow, AttachmentStatus, Catalog, CatalogError, NewAttachment,
};
use attachment_gateway::config::{CatalogConfig, DatabaseKind, Secret};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};

const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database that exists for one test: a fresh PostgreSQL database or a SQLite file.
struct TestDb {
    kind: DatabaseKind,
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn postgres() -> TestDb {
        let name = format!("cat_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{PG_SERVER}/postgres"))
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap();
        TestDb {
            kind: DatabaseKind::Postgres,
            url: format!("{PG_SERVER}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }

    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: the catalog creates it.
        let file = dir.path().join("data").join("gateway.db");
        TestDb {
            kind: DatabaseKind::Sqlite,
            url: format!("sqlite://{}", file.display()),
            pg_name: None,
            _dir: Some(dir),
        }
    }

    async fn new(kind: DatabaseKind) -> TestDb {
        match kind {
            DatabaseKind::Postgres => TestDb::postgres().await,
            DatabaseKind::Sqlite => TestDb::sqlite().await,
        }
    }

    fn config(&self, cache_ttl: Duration) -> CatalogConfig {
        CatalogConfig {
            database_url: Secret::new(self.url.clone()),
            kind: self.kind,
            max_connections: 4,
            cache_ttl,
            dialog_table: "SupportDialog".into(),
            dialog_owner_column: "userId".into(),
            migrations_schema: "attachment_gateway".into(),
        }
    }

    async fn catalog(&self) -> std::sync::Arc<dyn Catalog> {
        catalog::connect(&self.config(Duration::ZERO))
            .await
            .unwrap()
    }

    /// Run `sql` behind the catalog's back, as the app or another instance would.
    async fn exec(&self, sql: &str) {
        match self.kind {
            DatabaseKind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                c.execute(sql).await.unwrap();
                c.close().await.unwrap();
            }
            DatabaseKind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                c.execute(sql).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

impl Drop for TestDb {
    /// Best effort, also when the test panicked: its own thread and runtime, because the
    /// test's runtime may be shutting down.
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&format!("{PG_SERVER}/postgres")).await
                {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = admin.execute(sql.as_str()).await;
                }
            });
        })
        .join();
    }
}

/// 2024-05-01T12:34:56.789123456Z: sub-millisecond digits that must be cut, not rounded.
fn created() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56).unwrap()
        + chrono::Duration::nanoseconds(789_123_456)
}

fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn linked(id: &str, dialog: &str) -> NewAttachment {
    NewAttachment {
        id: id.into(),
        dialog_id: Some(dialog.into()),
        message_id: Some(format!("m-{id}")),
        storage_path: format!("support-chat/dialogs/{dialog}/{id}"),
        mime_type: "image/png".into(),
        size_bytes: 1234,
        original_name: "фото «1».png".into(),
        created_by_user_id: "owner1".into(),
        status: AttachmentStatus::Linked,
        created_at: created(),
    }
}

fn staged(id: &str, user: &str) -> NewAttachment {
    NewAttachment {
        id: id.into(),
        dialog_id: None,
        message_id: None,
        storage_path: format!("support-chat/staged/{user}/{id}"),
        mime_type: "application/pdf".into(),
        size_bytes: 0,
        original_name: "report.pdf".into(),
        created_by_user_id: user.into(),
        status: AttachmentStatus::Uploaded,
        created_at: created() + chrono::Duration::milliseconds(1),
    }
}

/// A tag that tells the engines apart in assertion messages.
fn tag(kind: DatabaseKind) -> &'static str {
    match kind {
        DatabaseKind::Postgres => "postgres",
        DatabaseKind::Sqlite => "sqlite",
    }
}

async fn lookups(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let cat = db.catalog().await;
    let t = tag(kind);
    cat.migrate().await.unwrap();
    cat.migrate().await.expect("migrate is idempotent");
    cat.ping().await.unwrap();

    cat.upsert_dialog("d1", "owner1").await.unwrap();
    cat.upsert_attachment(&linked("a1", "d1")).await.unwrap();
    cat.upsert_attachment(&staged("s1", "owner1"))
        .await
        .unwrap();

    let row = cat.find_linked("d1", "a1").await.unwrap().expect(t);
    assert_eq!(
        row,
        AttachmentRow {
            id: "a1".into(),
            dialog_id: Some("d1".into()),
            message_id: Some("m-a1".into()),
            storage_path: "support-chat/dialogs/d1/a1".into(),
            mime_type: "image/png".into(),
            size_bytes: 1234,
            original_name: "фото «1».png".into(),
            created_by_user_id: "owner1".into(),
            status: AttachmentStatus::Linked,
            created_at: millis(created()),
            linked_at: Some(millis(created())),
            dialog_owner_id: Some("owner1".into()),
            image: Default::default(),
        },
        "{t}"
    );
    assert_eq!(
        row.created_at.timestamp_subsec_millis(),
        789,
        "{t}: cut, not rounded"
    );

    // The dialog must match, and each route sees only its own status.
    assert_eq!(cat.find_linked("d2", "a1").await.unwrap(), None, "{t}");
    assert_eq!(cat.find_linked("d1", "nope").await.unwrap(), None, "{t}");
    assert_eq!(cat.find_staged("a1").await.unwrap(), None, "{t}");
    assert_eq!(cat.find_linked("d1", "s1").await.unwrap(), None, "{t}");

    let s = cat.find_staged("s1").await.unwrap().expect(t);
    assert_eq!(s.status, AttachmentStatus::Uploaded, "{t}");
    assert_eq!(s.dialog_id, None, "{t}");
    assert_eq!(s.dialog_owner_id, None, "{t}");
    assert_eq!(s.linked_at, None, "{t}");
    assert_eq!(s.size_bytes, 0, "{t}");
    assert_eq!(
        s.created_at,
        millis(created()) + chrono::Duration::milliseconds(1)
    );

    // A linked row whose dialog row is missing has no owner: nobody but staff/admin reads it.
    cat.upsert_attachment(&linked("a2", "ghost")).await.unwrap();
    let orphan = cat.find_linked("ghost", "a2").await.unwrap().expect(t);
    assert_eq!(orphan.dialog_owner_id, None, "{t}");

    // Upserts replace: s1 becomes linked, the dialog gets a new owner.
    let mut committed = linked("s1", "d1");
    committed.created_by_user_id = "owner1".into();
    cat.upsert_attachment(&committed).await.unwrap();
    assert_eq!(cat.find_staged("s1").await.unwrap(), None, "{t}");
    assert!(cat.find_linked("d1", "s1").await.unwrap().is_some(), "{t}");
    cat.upsert_dialog("d1", "owner2").await.unwrap();
    let row = cat.find_linked("d1", "a1").await.unwrap().expect(t);
    assert_eq!(row.dialog_owner_id.as_deref(), Some("owner2"), "{t}");

    // The schema's createdAt default is UTC now, in the unit the engine stores.
    db.exec(
        r#"INSERT INTO "ChatAttachment" ("id", "dialogId", "storagePath", "mimeType",
           "sizeBytes", "originalName", "createdByUserId", "status")
           VALUES ('a3', 'd1', 'support-chat/dialogs/d1/a3', 'text/plain', 5, 'a.txt',
                   'owner1', 'LINKED')"#,
    )
    .await;
    let a3 = cat.find_linked("d1", "a3").await.unwrap().expect(t);
    let skew = (Utc::now() - a3.created_at).num_seconds().abs();
    assert!(skew < 60, "{t}: default createdAt {} is off", a3.created_at);
    assert_eq!(a3.linked_at, None, "{t}");
}

async fn timestamps_round_trip(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let cat = db.catalog().await;
    cat.migrate().await.unwrap();
    let instants = [
        Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2000, 2, 29, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(999_999_999),
        Utc.with_ymd_and_hms(2038, 1, 19, 3, 14, 8).unwrap() + chrono::Duration::milliseconds(1),
        Utc.with_ymd_and_hms(2262, 4, 11, 0, 0, 0).unwrap(),
    ];
    for (i, at) in instants.into_iter().enumerate() {
        let id = format!("s{i}");
        let row = NewAttachment {
            created_at: at,
            ..staged(&id, "u")
        };
        cat.upsert_attachment(&row).await.unwrap();
        let back = cat.find_staged(&id).await.unwrap().unwrap();
        assert_eq!(back.created_at, millis(at), "{}: {at}", tag(kind));
    }
}

async fn custom_dialog_table(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let cfg = CatalogConfig {
        dialog_table: "Conversation".into(),
        dialog_owner_column: "ownerId".into(),
        ..db.config(Duration::ZERO)
    };
    // The operator's table, created by the app (the connect above creates a SQLite file).
    let cat = catalog::connect(&cfg).await.unwrap();
    db.exec(r#"CREATE TABLE "Conversation" ("id" TEXT PRIMARY KEY, "ownerId" TEXT NOT NULL)"#)
        .await;
    cat.migrate().await.unwrap();
    cat.upsert_dialog("c1", "alice").await.unwrap();
    // A "SupportDialog" the app happens to have too (PostgreSQL's `migrate` makes none when
    // another dialog table is configured) must not be the one read.
    db.exec(r#"CREATE TABLE IF NOT EXISTS "SupportDialog" ("id" TEXT PRIMARY KEY, "userId" TEXT NOT NULL)"#)
        .await;
    db.exec(r#"INSERT INTO "SupportDialog" ("id", "userId") VALUES ('c1', 'mallory')"#)
        .await;
    cat.upsert_attachment(&linked("a1", "c1")).await.unwrap();
    let row = cat.find_linked("c1", "a1").await.unwrap().unwrap();
    assert_eq!(
        row.dialog_owner_id.as_deref(),
        Some("alice"),
        "{}",
        tag(kind)
    );
}

async fn bad_identifiers_are_refused(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let cfg = CatalogConfig {
        dialog_owner_column: "userId\" OR 1=1 --".into(),
        ..db.config(Duration::ZERO)
    };
    let err = catalog::connect(&cfg).await.err().expect("refused");
    assert!(
        matches!(err, CatalogError::Database(sqlx::Error::Configuration(_))),
        "{err}"
    );
}

async fn cache(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let t = tag(kind);
    let cat = catalog::connect(&db.config(Duration::from_secs(60)))
        .await
        .unwrap();
    cat.migrate().await.unwrap();
    cat.upsert_dialog("d1", "owner1").await.unwrap();
    cat.upsert_attachment(&linked("a1", "d1")).await.unwrap();
    let stats = || cat.cache_stats().expect("cached");
    assert_eq!((stats().hits, stats().misses), (0, 0));
    // A peek never reads the database, and leaves counting a miss to the lookup after it.
    assert_eq!(cat.peek_linked("d1", "a1"), None, "{t}");
    assert_eq!((stats().hits, stats().misses), (0, 0), "{t}");

    let first = cat.find_linked("d1", "a1").await.unwrap().unwrap();
    assert_eq!((stats().hits, stats().misses), (0, 1), "{t}");
    // Now cached: a peek answers it (a hit), for its own route and dialog only.
    assert_eq!(
        cat.peek_linked("d1", "a1"),
        Some(Some(SharedRow::new(first.clone()))),
        "{t}"
    );
    assert_eq!(cat.peek_linked("d2", "a1"), None, "{t}");
    assert_eq!(cat.peek_staged("a1"), None, "{t}");
    assert_eq!((stats().hits, stats().misses), (1, 1), "{t}");
    // Deleted behind the cache's back: still served within the TTL.
    db.exec(r#"DELETE FROM "ChatAttachment" WHERE "id" = 'a1'"#)
        .await;
    let again = cat.find_linked("d1", "a1").await.unwrap();
    assert_eq!(again.as_ref(), Some(&first), "{t}");
    assert_eq!((stats().hits, stats().misses), (2, 1), "{t}");

    // A cached row answers only its own route and dialog; the misses that follow are asked
    // once, then remembered like a row (a miss must cost no more than a denial).
    assert_eq!(cat.find_linked("d2", "a1").await.unwrap(), None, "{t}");
    assert_eq!(cat.find_staged("a1").await.unwrap(), None, "{t}");
    assert_eq!((stats().hits, stats().misses), (2, 3), "{t}");
    assert_eq!(cat.peek_linked("d2", "a1"), Some(None), "{t}");
    assert_eq!(cat.find_staged("a1").await.unwrap(), None, "{t}");
    assert_eq!((stats().hits, stats().misses), (4, 3), "{t}");

    // Writers drop the entry.
    cat.invalidate("a1").await;
    assert_eq!(cat.peek_linked("d1", "a1"), None, "{t}");
    assert_eq!(cat.find_linked("d1", "a1").await.unwrap(), None, "{t}");
    assert_eq!((stats().hits, stats().misses), (4, 4), "{t}");

    // A remembered miss hides a row written behind the cache's back until a writer through
    // this instance (or the TTL) drops it.
    db.exec(
        r#"INSERT INTO "ChatAttachment" ("id", "dialogId", "storagePath", "mimeType",
           "sizeBytes", "originalName", "createdByUserId", "status")
           VALUES ('a1', 'd1', 'support-chat/dialogs/d1/a1', 'image/png', 7, 'b.png',
                   'owner1', 'LINKED')"#,
    )
    .await;
    assert_eq!(cat.find_linked("d1", "a1").await.unwrap(), None, "{t}");
    cat.invalidate("a1").await;
    let fresh = cat.find_linked("d1", "a1").await.unwrap().expect(t);
    assert_eq!(fresh.size_bytes, 7, "{t}");

    // upsert_attachment through the cache replaces the entry too.
    cat.upsert_attachment(&linked("a1", "d1")).await.unwrap();
    let replaced = cat.find_linked("d1", "a1").await.unwrap().expect(t);
    assert_eq!(replaced.size_bytes, 1234, "{t}");
}

async fn cache_expires(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let ttl = Duration::from_millis(200);
    let cat = catalog::connect(&db.config(ttl)).await.unwrap();
    cat.migrate().await.unwrap();
    cat.upsert_attachment(&staged("s1", "u1")).await.unwrap();
    assert!(cat.find_staged("s1").await.unwrap().is_some());
    db.exec(r#"DELETE FROM "ChatAttachment" WHERE "id" = 's1'"#)
        .await;
    assert!(
        cat.find_staged("s1").await.unwrap().is_some(),
        "within the TTL"
    );
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(cat.find_staged("s1").await.unwrap(), None, "{}", tag(kind));
}

async fn zero_ttl_means_no_cache(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let cat = db.catalog().await;
    assert!(cat.cache_stats().is_none());
}

/// The per-user staged quota reads one user's `UPLOADED` rows: count and bytes.
async fn staged_usage(kind: DatabaseKind) {
    let db = TestDb::new(kind).await;
    let cat = db.catalog().await;
    cat.migrate().await.unwrap();
    cat.upsert_dialog("d1", "u1").await.unwrap();
    let none = cat.staged_usage("u1").await.unwrap();
    assert_eq!((none.uploads, none.bytes), (0, 0), "{}", tag(kind));
    for (id, user, size) in [("s1", "u1", 10), ("s2", "u1", 32), ("s3", "u2", 5)] {
        cat.insert_staged(&NewAttachment {
            size_bytes: size,
            ..staged(id, user)
        })
        .await
        .unwrap();
    }
    cat.upsert_attachment(&linked("a1", "d1")).await.unwrap();
    let usage = cat.staged_usage("u1").await.unwrap();
    assert_eq!((usage.uploads, usage.bytes), (2, 42), "{}", tag(kind));
}

macro_rules! on_both_engines {
    ($($body:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $body() {
                super::$body(super::DatabaseKind::Postgres).await
            })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $body() {
                super::$body(super::DatabaseKind::Sqlite).await
            })*
        }
    };
}

on_both_engines!(
    lookups,
    timestamps_round_trip,
    custom_dialog_table,
    bad_identifiers_are_refused,
    cache,
    cache_expires,
    zero_ttl_means_no_cache,
    staged_usage,
);

/// Each read is one indexed lookup, on a table big enough for the planner to care.
#[tokio::test]
async fn postgres_lookups_use_an_index() {
    let db = TestDb::postgres().await;
    let cat = db.catalog().await;
    cat.migrate().await.unwrap();
    db.exec(
        r#"INSERT INTO "ChatAttachment" ("id", "dialogId", "storagePath", "mimeType",
           "sizeBytes", "originalName", "createdByUserId", "status")
           SELECT 'a' || g, 'd' || (g % 100), 'support-chat/dialogs/d/a' || g, 'image/png', g,
                  'x.png', 'u', CASE WHEN g % 2 = 0 THEN 'LINKED' ELSE 'UPLOADED' END
           FROM generate_series(1, 5000) AS g;
           ANALYZE "ChatAttachment";"#,
    )
    .await;
    let queries = attachment_gateway::catalog::query::Queries::new(
        &catalog::query::Identifier::new("dialog_table", "SupportDialog").unwrap(),
        &catalog::query::Identifier::new("dialog_owner_column", "userId").unwrap(),
        catalog::query::Placeholder::Dollar,
    );
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    for (sql, binds) in [
        (&queries.find_linked, vec!["a10", "d10"]),
        (&queries.find_staged, vec!["a11"]),
    ] {
        let explain = format!("EXPLAIN {sql}");
        let mut q = sqlx::query_scalar::<_, String>(&explain);
        for b in binds {
            q = q.bind(b);
        }
        let plan = q.fetch_all(&mut conn).await.unwrap().join("\n");
        // Either index pins the row: the PK, or ("dialogId", "id") when both are given.
        assert!(
            plan.contains("Index Scan using \"ChatAttachment_pkey\" on \"ChatAttachment\" a")
                || plan.contains(
                    "Index Scan using \"ChatAttachment_dialogId_id_idx\" on \"ChatAttachment\" a"
                ),
            "{plan}"
        );
        assert!(!plan.contains("Seq Scan on \"ChatAttachment\""), "{plan}");
    }
}

/// SQLite's planner agrees: a search by the primary key, not a scan.
#[tokio::test]
async fn sqlite_lookups_use_the_primary_key() {
    let db = TestDb::sqlite().await;
    let cat = db.catalog().await;
    cat.migrate().await.unwrap();
    let queries = catalog::query::Queries::new(
        &catalog::query::Identifier::new("dialog_table", "SupportDialog").unwrap(),
        &catalog::query::Identifier::new("dialog_owner_column", "userId").unwrap(),
        catalog::query::Placeholder::Question,
    );
    let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
    for (sql, binds) in [
        (&queries.find_linked, vec!["a1", "d1"]),
        (&queries.find_staged, vec!["a1"]),
    ] {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(&explain);
        for b in binds {
            q = q.bind(b);
        }
        let plan = q
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| sqlx::Row::get::<String, _>(r, "detail"))
            .collect::<Vec<_>>()
            .join("; ");
        assert!(plan.contains("SEARCH a USING INDEX"), "{plan}");
    }
}

/// The app's Prisma migrations may have created the tables first, with a PostgreSQL enum for
/// the status and no CHECKs: migrating is then a no-op, and reads and writes still work.
#[tokio::test]
async fn postgres_accepts_a_prisma_schema() {
    let db = TestDb::postgres().await;
    db.exec(
        r#"CREATE TYPE "AttachmentStatus" AS ENUM ('UPLOADED', 'LINKED');
           CREATE TABLE "SupportDialog" (
               "id" TEXT NOT NULL,
               "userId" TEXT NOT NULL,
               "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
               CONSTRAINT "SupportDialog_pkey" PRIMARY KEY ("id"));
           CREATE TABLE "ChatAttachment" (
               "id" TEXT NOT NULL,
               "dialogId" TEXT,
               "messageId" TEXT,
               "storagePath" TEXT NOT NULL,
               "mimeType" TEXT NOT NULL,
               "sizeBytes" BIGINT NOT NULL,
               "originalName" TEXT NOT NULL,
               "createdByUserId" TEXT NOT NULL,
               "status" "AttachmentStatus" NOT NULL DEFAULT 'UPLOADED',
               "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
               "linkedAt" TIMESTAMP(3),
               CONSTRAINT "ChatAttachment_pkey" PRIMARY KEY ("id"));"#,
    )
    .await;
    let cat = db.catalog().await;
    cat.migrate().await.unwrap();
    cat.upsert_dialog("d1", "owner1").await.unwrap();
    cat.upsert_attachment(&linked("a1", "d1")).await.unwrap();
    cat.upsert_attachment(&staged("s1", "owner1"))
        .await
        .unwrap();
    let row = cat.find_linked("d1", "a1").await.unwrap().unwrap();
    assert_eq!(row.status, AttachmentStatus::Linked);
    assert_eq!(row.dialog_owner_id.as_deref(), Some("owner1"));
    let s = cat.find_staged("s1").await.unwrap().unwrap();
    assert_eq!(s.status, AttachmentStatus::Uploaded);

    // Without the gateway's CHECKs a bad value can exist: it is refused, never served.
    db.exec(r#"UPDATE "ChatAttachment" SET "sizeBytes" = -1 WHERE "id" = 's1'"#)
        .await;
    let err = cat.find_staged("s1").await.unwrap_err();
    assert!(matches!(err, CatalogError::CorruptRow(_)), "{err}");
}

/// The same for SQLite: a row the gateway did not write, with a status outside the two.
#[tokio::test]
async fn sqlite_refuses_an_unknown_status() {
    let db = TestDb::sqlite().await;
    let cat = db.catalog().await;
    db.exec(
        r#"CREATE TABLE "ChatAttachment" ("id" TEXT PRIMARY KEY, "dialogId" TEXT,
           "messageId" TEXT, "storagePath" TEXT NOT NULL, "mimeType" TEXT NOT NULL,
           "sizeBytes" INTEGER NOT NULL, "originalName" TEXT NOT NULL,
           "createdByUserId" TEXT NOT NULL, "status" TEXT NOT NULL,
           "createdAt" INTEGER NOT NULL, "linkedAt" INTEGER);
           INSERT INTO "ChatAttachment" VALUES
               ('s1', NULL, NULL, 'support-chat/staged/u/s1', 'image/png', 1, 'a.png', 'u',
                'UPLOADED', 0, NULL);"#,
    )
    .await;
    cat.migrate().await.unwrap();
    assert!(cat.find_staged("s1").await.unwrap().is_some());
    db.exec(r#"UPDATE "ChatAttachment" SET "status" = 'DELETED' WHERE "id" = 's1'"#)
        .await;
    // Not found by either route: both filter on a known status.
    assert_eq!(cat.find_staged("s1").await.unwrap(), None);
    db.exec(r#"UPDATE "ChatAttachment" SET "status" = 'UPLOADED', "sizeBytes" = -5"#)
        .await;
    let err = cat.find_staged("s1").await.unwrap_err();
    assert!(matches!(err, CatalogError::CorruptRow(_)), "{err}");
}

/// An in-memory SQLite catalog keeps its data across pooled connections.
#[tokio::test]
async fn sqlite_in_memory() {
    let cfg = CatalogConfig {
        database_url: Secret::new("sqlite::memory:"),
        kind: DatabaseKind::Sqlite,
        max_connections: 4,
        cache_ttl: Duration::ZERO,
        dialog_table: "SupportDialog".into(),
        dialog_owner_column: "userId".into(),
        migrations_schema: "attachment_gateway".into(),
    };
    let cat = catalog::connect(&cfg).await.unwrap();
    cat.migrate().await.unwrap();
    cat.upsert_dialog("d1", "owner1").await.unwrap();
    cat.upsert_attachment(&linked("a1", "d1")).await.unwrap();
    let found = futures_util::future::join_all((0..8).map(|_| cat.find_linked("d1", "a1"))).await;
    for row in found {
        assert_eq!(
            row.unwrap().unwrap().dialog_owner_id.as_deref(),
            Some("owner1")
        );
    }
}
