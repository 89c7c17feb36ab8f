//! `attachment-gateway backfill` through the real binary against real PostgreSQL (SPEC §2,
//! §13): keyset pages over the app's messages table, a `--dry-run` that writes nothing, strict
//! skips with reasons, idempotent reruns, `--after` to resume, and a run killed half-way
//! finished by the next.
//!
//! The rate on a million legacy attachments is an ignored test:
//! `cargo nextest run --test integration backfill:: --run-ignored ignored-only --no-capture`
//! (`BACKFILL_BENCH_MESSAGES` changes the count).

use crate::harness;

use std::path::PathBuf;
use std::time::Instant;

use harness::{command, PgDatabase, HS_SECRET};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};

/// The messages table as a Prisma app has it, legacy JSON in a `jsonb` column.
const MESSAGES: &str = r#"
CREATE TABLE "SupportMessage" (
    "id" TEXT PRIMARY KEY,
    "dialogId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "attachments" JSONB
);
"#;

struct Env {
    db: PgDatabase,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    async fn new(batch_size: u32) -> Env {
        let db = PgDatabase::create().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
        let config = dir.path().join("gateway.toml");
        std::fs::write(
            &config,
            format!(
                "[auth]\nhs_secret = \"{HS_SECRET}\"\n[catalog]\ndatabase_url = \"{}\"\n\
                 [storage]\nprovider = \"fs\"\nroot = \"bucket\"\n\
                 [backfill]\nbatch_size = {batch_size}\n[log]\nlevel = \"error\"\n",
                db.url
            ),
        )
        .unwrap();
        let env = Env { db, dir, config };
        env.gateway(&["migrate", "--config"]);
        env.exec(MESSAGES).await;
        env
    }

    fn gateway(&self, args: &[&str]) -> String {
        let out = command(self.dir.path(), args, &self.config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `backfill` with `extra` arguments before `--config`: its JSON summary.
    fn backfill(&self, extra: &[&str]) -> Value {
        let mut args = vec!["backfill"];
        args.extend_from_slice(extra);
        args.push("--config");
        let stdout = self.gateway(&args);
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    }

    async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.db.url).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        self.conn().await.execute(sql).await.unwrap();
    }

    async fn count(&self) -> i64 {
        sqlx::query_scalar(r#"SELECT COUNT(*) FROM "ChatAttachment""#)
            .fetch_one(&mut self.conn().await)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_json_becomes_linked_rows_once() {
    // Pages of two messages: the keyset cursor crosses pages several times.
    let env = Env::new(2).await;
    env.exec(
        r#"INSERT INTO "SupportMessage" VALUES
        ('m1', 'd1', 'alice', '2024-05-01 12:00:00.123', '[
            {"id": "a1", "storagePath": "chat/d1/a1", "originalName": "cat.png",
             "mimeType": "IMAGE/PNG; x=1", "sizeBytes": 1200},
            {"storagePath": "chat/d1/noid", "originalName": "report.pdf",
             "mimeType": "application/pdf", "sizeBytes": 3400}]'),
        ('m2', 'd1', 'bob', '2024-05-01 12:01:00', '[
            {"storagePath": "../../etc/passwd", "sizeBytes": 1},
            {"storagePath": "chat/d1/nosize", "originalName": "x.bin"}]'),
        ('m3', 'd1', 'alice', '2024-05-01 12:02:00', NULL),
        ('m4', 'd2', 'carol', '2024-05-01 12:03:00', '[
            {"id": "a4", "storagePath": "chat/d2/a4", "originalName": "notes.txt",
             "mimeType": "text/plain; charset=UTF-8", "sizeBytes": 5}]'),
        ('m5', 'd2', 'carol', '2024-05-01 12:04:00', '[]')"#,
    )
    .await;
    // Dual-write already wrote a4: the backfill leaves it as it is.
    env.exec(
        r#"INSERT INTO "ChatAttachment" ("id", "dialogId", "messageId", "storagePath",
           "mimeType", "sizeBytes", "originalName", "createdByUserId", "status", "createdAt",
           "linkedAt") VALUES ('a4', 'd2', 'm4', 'support-chat/dialogs/d2/a4', 'text/plain',
           5, 'notes.txt', 'carol', 'LINKED', '2024-05-01 12:03:00', '2024-05-01 12:03:00')"#,
    )
    .await;

    let dry = env.backfill(&["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["inserted"].as_u64(), dry["existing"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(env.count().await, 1, "--dry-run wrote nothing");

    let first = env.backfill(&[]);
    assert_eq!(first["messages"], 5);
    assert_eq!(first["inserted"], 2);
    assert_eq!(first["existing"], 1);
    assert_eq!(first["skipped"]["total"], 2);
    assert_eq!(first["skipped"]["reasons"]["unsafe_path"], 1);
    assert_eq!(first["skipped"]["reasons"]["size_missing"], 1);
    assert_eq!(first["last_message_id"], "m5");
    assert_eq!(env.count().await, 3);

    let rows: Vec<(String, String, String, String, String, i64, String)> = sqlx::query_as(
        r#"SELECT "id", "messageId", "createdByUserId", "mimeType", CAST("status" AS TEXT),
                  "sizeBytes", to_char("linkedAt", 'YYYY-MM-DD HH24:MI:SS.MS')
           FROM "ChatAttachment" WHERE "messageId" = 'm1' ORDER BY "sizeBytes""#,
    )
    .fetch_all(&mut env.conn().await)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "a1");
    assert_eq!(
        (
            &*rows[0].1,
            &*rows[0].2,
            &*rows[0].3,
            &*rows[0].4,
            rows[0].5
        ),
        ("m1", "alice", "image/png", "LINKED", 1200)
    );
    assert_eq!(
        rows[0].6, "2024-05-01 12:00:00.123",
        "linked when its message was written"
    );
    assert!(rows[1].0.starts_with("lg"), "a derived id: {}", rows[1].0);

    let again = env.backfill(&[]);
    assert_eq!(
        (again["inserted"].as_u64(), again["existing"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(env.count().await, 3);

    // Resuming after m3 reads only m4 and m5.
    let resumed = env.backfill(&["--after", "m3"]);
    assert_eq!(resumed["messages"], 2);
    assert_eq!(
        (resumed["inserted"].as_u64(), resumed["existing"].as_u64()),
        (Some(0), Some(1))
    );

    // The rows are what the gateway reads: its own check still passes.
    env.gateway(&["check-config", "--database", "--config"]);
}

/// Killed half-way (each page is committed on its own), a new run finishes the job and
/// inserts nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_half_way_is_finished_by_the_next() {
    const N: i64 = 30_000;
    let env = Env::new(200).await;
    seed(&env, N as u64).await;
    let mut child = command(env.dir.path(), &["backfill", "--config"], &env.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = 0;
    while seen == 0 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        seen = env.count().await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // An insert already running when the process died still commits server-side: wait
    // until the count stops moving.
    let mut partial = env.count().await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = env.count().await;
        if now == partial {
            break;
        }
        partial = now;
    }
    assert!(
        partial > 0,
        "the first run wrote nothing before it was killed"
    );
    assert!(partial < N, "the first run finished before it was killed");
    let summary = env.backfill(&[]);
    assert_eq!(env.count().await, N);
    assert_eq!(summary["inserted"].as_i64(), Some(N - partial));
    assert_eq!(summary["existing"].as_i64(), Some(partial));
}

/// `n` messages of one attachment each.
async fn seed(env: &Env, n: u64) {
    env.exec(&format!(
        r#"INSERT INTO "SupportMessage"
           SELECT 'm' || lpad(i::text, 9, '0'), 'd' || (i % 1000), 'u' || (i % 5000),
                  TIMESTAMP '2024-01-01' + i * INTERVAL '1 second',
                  jsonb_build_array(jsonb_build_object(
                      'storagePath', 'chat/legacy/' || i, 'originalName', 'photo-' || i || '.jpg',
                      'mimeType', 'image/jpeg', 'sizeBytes', 1000 + i))
           FROM generate_series(1, {n}) AS i"#
    ))
    .await;
}

/// A million legacy attachments (one per message), timed through the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: a million rows take minutes"]
async fn a_million_legacy_attachments() {
    let n: u64 = std::env::var("BACKFILL_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let env = Env::new(5000).await;
    let seeded = Instant::now();
    seed(&env, n).await;
    println!("seeded {n} messages in {:.1?}", seeded.elapsed());
    let started = Instant::now();
    let summary = env.backfill(&[]);
    let elapsed = started.elapsed();
    println!("{summary}");
    println!(
        "backfill: {n} rows in {elapsed:.1?} = {:.0} rows/s (wall clock, process start included)",
        n as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(summary["inserted"].as_u64(), Some(n));
}
