//! The app's messages table as `backfill` reads it (SPEC §13): pages of messages in key order
//! with their legacy attachment JSON as text, and batch inserts of the `LINKED` rows made from
//! them. Deciding what a JSON element becomes is `backfill`'s (pure) job, not this module's.

use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::query::{self, Identifier, Placeholder};
use super::sql::{Dialect, DialectRow};
use super::{CatalogError, NewAttachment};
use crate::config::{BackfillConfig, CatalogConfig};

/// One message of the app, with what the backfill needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    pub id: String,
    pub dialog_id: Option<String>,
    pub author_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The attachments column as JSON text; `None` when NULL.
    pub attachments: Option<String>,
}

/// Rows per insert statement: 10 parameters each stays under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
pub const ROWS_PER_INSERT: usize = 1000;

#[async_trait]
pub trait LegacySource: Send + Sync {
    /// How many messages the table holds (for the progress bar).
    async fn count_messages(&self) -> Result<u64, CatalogError>;
    /// Up to `limit` messages with ids after `after` (all from the start when `None`), in id
    /// order: keyset pagination, so a page costs the same at the end as at the start.
    async fn page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LegacyMessage>, CatalogError>;
    /// Insert `rows` (all `LINKED`), leaving any id that exists already as it is; how many
    /// were inserted.
    async fn insert_linked(&self, rows: &[NewAttachment]) -> Result<u64, CatalogError>;
    /// How many of `ids` exist already (`--dry-run`'s stand-in for inserting).
    async fn count_existing(&self, ids: &[String]) -> Result<u64, CatalogError>;
}

/// The statements, built once from `[backfill]`'s validated identifiers.
#[derive(Debug, Clone)]
pub struct LegacySql {
    count: String,
    first_page: String,
    next_page: String,
}

impl LegacySql {
    pub fn new(
        cfg: &BackfillConfig,
        p: Placeholder,
        null_time: &str,
    ) -> Result<Self, CatalogError> {
        let q = |key: &str, value: &str| Identifier::new(key, value).map(|i| i.quoted());
        let table = q("messages_table", &cfg.messages_table)?;
        let id = q("message_id_column", &cfg.message_id_column)?;
        let dialog = q("dialog_column", &cfg.dialog_column)?;
        let author = q("author_column", &cfg.author_column)?;
        let created = q("created_column", &cfg.created_column)?;
        let attachments = q("attachments_column", &cfg.attachments_column)?;
        // Ids, dialog and author are read as text whatever the app declared (a uuid column
        // included); the cursor compares the id column itself, so its index serves the page.
        let select = format!(
            "SELECT CAST(m.{id} AS TEXT) AS id, CAST(m.{dialog} AS TEXT) AS dialog_id, \
             CAST(m.{author} AS TEXT) AS author_id, m.{created} AS created_at, \
             {null_time} AS linked_at, CAST(m.{attachments} AS TEXT) AS attachments \
             FROM {table} m"
        );
        Ok(LegacySql {
            count: format!("SELECT COUNT(*) AS n FROM {table}"),
            first_page: format!("{select} ORDER BY m.{id} LIMIT {}", p.at(1)),
            next_page: format!(
                "{select} WHERE m.{id} > {} ORDER BY m.{id} LIMIT {}",
                p.at(1),
                p.at(2)
            ),
        })
    }
}

/// `INSERT .. VALUES (..), (..) ON CONFLICT ("id") DO NOTHING` for `n` rows; each binds id,
/// dialogId, messageId, storagePath, mimeType, sizeBytes, originalName, createdByUserId,
/// createdAt, linkedAt.
pub fn insert_sql(p: Placeholder, n: usize) -> String {
    let mut values = Vec::with_capacity(n);
    for r in 0..n {
        let at = |k: usize| p.at(r * 10 + k);
        values.push(format!(
            "({}, {}, {}, {}, {}, {}, {}, {}, 'LINKED', {}, {})",
            at(1),
            at(2),
            at(3),
            at(4),
            at(5),
            at(6),
            at(7),
            at(8),
            at(9),
            at(10)
        ));
    }
    format!(
        "INSERT INTO \"ChatAttachment\" (\"id\", \"dialogId\", \"messageId\", \"storagePath\", \
         \"mimeType\", \"sizeBytes\", \"originalName\", \"createdByUserId\", \"status\", \
         \"createdAt\", \"linkedAt\") VALUES {} ON CONFLICT (\"id\") DO NOTHING",
        values.join(", ")
    )
}

/// The engine `D`'s pool over the app's database, with `[backfill]`'s statements.
pub struct LegacyTable<D: Dialect> {
    pool: Pool<D::Db>,
    sql: LegacySql,
    dialect: PhantomData<D>,
}

impl<D: Dialect> LegacyTable<D> {
    pub async fn connect(
        catalog: &CatalogConfig,
        backfill: &BackfillConfig,
    ) -> Result<Self, CatalogError> {
        Ok(LegacyTable {
            pool: D::connect(catalog).await?,
            sql: LegacySql::new(backfill, D::PLACEHOLDER, D::NULL_TIME)?,
            dialect: PhantomData,
        })
    }
}

fn decode<D: Dialect>(row: &DialectRow<D>) -> Result<LegacyMessage, CatalogError>
where
    for<'a> &'a str: ColumnIndex<DialectRow<D>>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
{
    let (created_at, _) = D::times(row)?;
    Ok(LegacyMessage {
        id: row.try_get("id")?,
        dialog_id: row.try_get("dialog_id")?,
        author_id: row.try_get("author_id")?,
        created_at,
        attachments: row.try_get("attachments")?,
    })
}

#[async_trait]
impl<D: Dialect> LegacySource for LegacyTable<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'a> &'a str: ColumnIndex<DialectRow<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    async fn count_messages(&self) -> Result<u64, CatalogError> {
        let row = sqlx::query(&self.sql.count).fetch_one(&self.pool).await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
    }

    async fn page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LegacyMessage>, CatalogError> {
        let rows = match after {
            None => {
                sqlx::query(&self.sql.first_page)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(cursor) => {
                sqlx::query(&self.sql.next_page)
                    .bind(cursor)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(decode::<D>).collect()
    }

    async fn insert_linked(&self, rows: &[NewAttachment]) -> Result<u64, CatalogError> {
        let mut inserted = 0;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let text = insert_sql(D::PLACEHOLDER, chunk.len());
            let mut q = sqlx::query(&text);
            for row in chunk {
                // A legacy attachment was linked when its message was written.
                q = q
                    .bind(&row.id)
                    .bind(&row.dialog_id)
                    .bind(&row.message_id)
                    .bind(&row.storage_path)
                    .bind(&row.mime_type)
                    .bind(query::size_to_sql(&row.id, row.size_bytes)?)
                    .bind(&row.original_name)
                    .bind(&row.created_by_user_id)
                    .bind(D::to_sql_time(row.created_at))
                    .bind(D::to_sql_time(row.created_at));
            }
            inserted += D::rows_affected(&q.execute(&self.pool).await?);
        }
        Ok(inserted)
    }

    async fn count_existing(&self, ids: &[String]) -> Result<u64, CatalogError> {
        let mut existing = 0;
        for chunk in ids.chunks(super::staging::MAX_IDS_PER_QUERY) {
            let marks: Vec<String> = (1..=chunk.len()).map(|n| D::PLACEHOLDER.at(n)).collect();
            let text = format!(
                "SELECT COUNT(*) AS n FROM \"ChatAttachment\" WHERE \"id\" IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&text);
            for id in chunk {
                q = q.bind(id);
            }
            let row = q.fetch_one(&self.pool).await?;
            existing += u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
        }
        Ok(existing)
    }
}

/// The app's messages on the engine `catalog` names (the gateway's tables live in the same
/// database, as SPEC §5 has it).
pub async fn open(
    catalog: &CatalogConfig,
    backfill: &BackfillConfig,
) -> Result<Box<dyn LegacySource>, CatalogError> {
    use crate::config::DatabaseKind;
    Ok(match catalog.kind {
        DatabaseKind::Postgres => {
            Box::new(LegacyTable::<super::postgres::PgDialect>::connect(catalog, backfill).await?)
        }
        DatabaseKind::Sqlite => {
            Box::new(LegacyTable::<super::sqlite::SqliteDialect>::connect(catalog, backfill).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_insert_binds_ten_values_per_row() {
        let sql = insert_sql(Placeholder::Dollar, 2);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7, $8, 'LINKED', $9, $10), ($11,"));
        assert!(sql.ends_with("($11, $12, $13, $14, $15, $16, $17, $18, 'LINKED', $19, $20) ON CONFLICT (\"id\") DO NOTHING"));
    }
}
