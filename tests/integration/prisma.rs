//! The Prisma models in `prisma/schema.prisma` describe exactly what `migrate` creates, in both
//! orders (issue 17, point 1): Prisma's own schema engine (`@prisma/schema-engine-wasm` through
//! `@prisma/adapter-pg`, run by `prisma/check.mjs` under Node) finds no difference after the
//! gateway migrated a fresh database, and a database Prisma made from the models passes
//! `migrate`, `check-config --database` and a second diff.
//!
//! Needs Node and `npm ci --prefix prisma` (scripts/test.sh runs it).

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{command, PgDatabase, HS_SECRET};

fn prisma_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prisma")
}

/// `node prisma/check.mjs <what>` against `db`: exit code and stdout.
fn check(db: &PgDatabase, what: &str) -> (i32, String) {
    check_with(db, what, &prisma_dir().join("schema.prisma"))
}

fn check_with(db: &PgDatabase, what: &str, schema: &Path) -> (i32, String) {
    let dir = prisma_dir();
    assert!(
        dir.join("node_modules/@prisma/schema-engine-wasm").is_dir(),
        "run `npm ci --prefix prisma` first (scripts/test.sh does)"
    );
    let out = Command::new("node")
        .arg(dir.join("check.mjs"))
        .arg(what)
        .env("DATABASE_URL", &db.url)
        .env("PRISMA_SCHEMA", schema)
        .output()
        .expect("node on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 2),
        "check.mjs {what} failed:\n{stdout}\n{stderr}"
    );
    (out.status.code().unwrap(), stdout)
}

/// Run the gateway binary's `args` on `db`; panics with its stderr when it fails.
fn gateway(db: &PgDatabase, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bucket")).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nhs_secret = \"{HS_SECRET}\"\n[catalog]\ndatabase_url = \"{}\"\n\
             [storage]\nprovider = \"fs\"\nroot = \"bucket\"\n",
            db.url
        ),
    )
    .unwrap();
    let out = command(dir.path(), args, &config).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prisma_sees_no_difference_in_what_migrate_creates() {
    let db = PgDatabase::create().await;
    gateway(&db, &["migrate", "--config"]);
    let (code, out) = check(&db, "diff");
    println!("{out}");
    assert_eq!((code, out.trim()), (0, "No difference detected."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_prisma_made_from_the_models_passes_migrate() {
    let db = PgDatabase::create().await;
    let (code, sql) = check(&db, "create");
    assert_eq!(code, 0, "{sql}");
    gateway(&db, &["migrate", "--config"]);
    gateway(&db, &["check-config", "--database", "--config"]);
    let (code, out) = check(&db, "diff");
    println!("{out}");
    assert_eq!((code, out.trim()), (0, "No difference detected."));
}

/// The check can fail: without the gateway's tables Prisma reports all three models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_database_differs() {
    let db = PgDatabase::create().await;
    let (code, out) = check(&db, "diff");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("ChatAttachment") && out.contains("SupportDialog"),
        "{out}"
    );
}

/// Why `status` is a `String` in the shipped model: the enum a team would most likely write
/// makes Prisma drop the column and add it back with a default, turning every linked
/// attachment into a staged one that the next cleanup deletes with its object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_as_a_prisma_enum_would_drop_the_column() {
    let db = PgDatabase::create().await;
    gateway(&db, &["migrate", "--config"]);
    let shipped = std::fs::read_to_string(prisma_dir().join("schema.prisma")).unwrap();
    let status = "  status          String\n";
    assert!(shipped.contains(status));
    let with_enum = shipped.replace(
        status,
        "  status          AttachmentStatus @default(UPLOADED)\n",
    ) + "\nenum AttachmentStatus {\n  UPLOADED\n  LINKED\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.prisma");
    std::fs::write(&schema, with_enum).unwrap();
    let (code, out) = check_with(&db, "diff", &schema);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(r#"DROP COLUMN "status""#), "{out}");
}

/// The migrations' bookkeeping stays out of Prisma's sight: `db pull` on a database the
/// gateway migrated finds the three models and nothing else (no `_sqlx_migrations`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_pull_sees_no_bookkeeping() {
    let db = PgDatabase::create().await;
    gateway(&db, &["migrate", "--config"]);
    let (code, pulled) = check(&db, "pull");
    assert_eq!(code, 0, "{pulled}");
    let models: Vec<&str> = pulled
        .lines()
        .filter(|l| l.starts_with("model ") || l.starts_with("enum "))
        .collect();
    assert_eq!(
        models,
        [
            "model ChatAttachment {",
            "model ChatAttachmentPreview {",
            "model SupportDialog {"
        ],
        "{pulled}"
    );
}
