//! Applies `migrations/postgres` and records what ran in a schema of the gateway's own
//! (`catalog.migrations_schema`, table `_migrations`), not beside the app's tables.
//!
//! sqlx's own migrator keeps its `_sqlx_migrations` in the first schema of the search path,
//! which is the app's: Prisma then reports drift on `migrate dev` (and offers a reset) and
//! `db pull` adds a model for it. Prisma compares only the schema it manages, so bookkeeping
//! kept elsewhere is invisible to it. The rest follows sqlx's rules: versions in order, one
//! transaction per migration, checksums of applied ones must not change, and an advisory
//! lock so that instances starting together migrate one at a time.

use sqlx::migrate::{MigrateError, Migration, Migrator};
use sqlx::{Connection, Executor, PgPool};

use super::query::Identifier;
use super::CatalogError;

/// The advisory-lock key of `migrate` ("agw-mig" in ASCII); cleanup uses another.
const MIGRATE_LOCK_KEY: i64 = 0x0061_6777_2d6d_6967;

/// Apply `migrator`'s migrations, then `then` (the config-dependent DDL), under the lock.
pub async fn run(
    pool: &PgPool,
    migrator: &Migrator,
    schema: &Identifier,
    then: Option<&str>,
) -> Result<(), CatalogError> {
    let mut conn = pool.acquire().await?;
    // Session-level: if `migrate` dies, the closed connection frees it.
    conn.close_on_drop();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    let table = format!("{}.\"_migrations\"", schema.quoted());
    let mut result = apply(&mut conn, migrator, schema, &table).await;
    if let (Ok(()), Some(sql)) = (&result, then) {
        // `IF NOT EXISTS` alone is not enough: two sessions creating one table at once
        // collide on its row type (`pg_type_typname_nsp_index`).
        result = conn
            .execute(sqlx::raw_sql(sql))
            .await
            .map(drop)
            .map_err(Into::into);
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *conn)
        .await?;
    result
}

async fn apply(
    conn: &mut sqlx::PgConnection,
    migrator: &Migrator,
    schema: &Identifier,
    table: &str,
) -> Result<(), CatalogError> {
    conn.execute(sqlx::raw_sql(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {table} (\
             \"version\" BIGINT PRIMARY KEY, \
             \"description\" TEXT NOT NULL, \
             \"checksum\" BYTEA NOT NULL, \
             \"installedAt\" TIMESTAMPTZ NOT NULL DEFAULT now())",
        schema = schema.quoted()
    )))
    .await?;
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as(&format!("SELECT \"version\", \"checksum\" FROM {table}"))
            .fetch_all(&mut *conn)
            .await?;
    // Owned, so that no borrow of the migrator lives across an await (the future must be
    // `Send` for every lifetime).
    let ups: Vec<Migration> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .cloned()
        .collect();
    for m in ups {
        if let Some((_, checksum)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *checksum != *m.checksum {
                return Err(MigrateError::VersionMismatch(m.version).into());
            }
            continue;
        }
        let mut tx = conn.begin().await?;
        tx.execute(sqlx::raw_sql(&m.sql)).await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (\"version\", \"description\", \"checksum\") VALUES ($1, $2, $3)"
        ))
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, description = %m.description, "migration applied");
    }
    Ok(())
}
