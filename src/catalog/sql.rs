//! The SQL catalog, written once for every engine: a sqlx pool, the shared statements of
//! `query` and `staging`, and row decoding. What differs per engine (pool, timestamps,
//! migrations, the cleanup lock) is a `Dialect`, in `postgres` and `sqlite`; no caching here.

use std::future::Future;
use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use super::previews::{self, RawPreview};
use super::query::{self, Identifier, Placeholder, Queries, RawRow};
use super::schema::{self, SchemaProblems, Table, TypeRules};
use super::staging::{self, ClaimedRow, CleanupLock, LinkRequest, StagedUsage};
use super::{AttachmentRow, Catalog, CatalogError, NewAttachment};
use crate::attachment::{ImageInfo, PreviewRow};
use crate::config::CatalogConfig;

/// A row of engine `D`.
pub type DialectRow<D> = <<D as Dialect>::Db as Database>::Row;

/// A statement of engine `D` with its parameters bound so far.
type SqlQuery<'q, D> =
    sqlx::query::Query<'q, <D as Dialect>::Db, <<D as Dialect>::Db as Database>::Arguments<'q>>;

/// Everything one engine does its own way. The SQL text itself is shared; only its parameter
/// marker (and what `staging` derives from it) depends on the engine.
pub trait Dialect: TypeRules + Send + Sync + 'static {
    type Db: Database;
    /// How a timestamp is bound: the schema stores UTC at millisecond precision, each engine
    /// in its own column type.
    type Time: for<'q> Encode<'q, Self::Db> + Type<Self::Db> + Send + 'static;

    const PLACEHOLDER: Placeholder;

    /// The pool `cfg` describes. Await it on the runtime that will drive the pool.
    fn connect(
        cfg: &CatalogConfig,
    ) -> impl Future<Output = Result<Pool<Self::Db>, CatalogError>> + Send;
    /// Apply the engine's `migrations/`, recording them in `bookkeeping` where the engine
    /// has schemas, then run `then` (DDL that depends on the config) while still holding
    /// whatever keeps two instances from migrating at once.
    fn migrate(
        pool: &Pool<Self::Db>,
        bookkeeping: &Identifier,
        then: Option<&'static str>,
    ) -> impl Future<Output = Result<(), CatalogError>> + Send;
    /// A NULL that decodes where `times` reads `linked_at`.
    const NULL_TIME: &'static str;
    /// Creates the default dialog table (SPEC §5) if it does not exist.
    const DEFAULT_DIALOG_SQL: &'static str;
    fn to_sql_time(t: DateTime<Utc>) -> Self::Time;
    /// `created_at` and `linked_at` of a selected row.
    fn times(
        row: &DialectRow<Self>,
    ) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>), CatalogError>;
    /// sqlx has no engine-neutral accessor for this.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
    /// Become the one instance running a cleanup pass; `None` when another one is.
    fn try_cleanup_lock(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Option<CleanupLock>, CatalogError>> + Send;
    /// The columns and indexes of `table` as the engine reports them; `None` when the
    /// queries' unqualified name finds no table.
    fn describe(
        pool: &Pool<Self::Db>,
        table: &str,
    ) -> impl Future<Output = Result<Option<Table>, CatalogError>> + Send;
}

/// SPEC §5's default dialog table, the one `migrate` creates.
pub const DEFAULT_DIALOG_TABLE: &str = "SupportDialog";
pub const DEFAULT_DIALOG_OWNER: &str = "userId";

pub struct SqlCatalog<D: Dialect> {
    pool: Pool<D::Db>,
    sql: Queries,
    /// What `verify_schema` checks besides the gateway's own tables.
    dialog_table: Identifier,
    owner_column: Identifier,
    migrations_schema: Identifier,
    dialect: PhantomData<D>,
}

impl<D: Dialect> SqlCatalog<D> {
    /// The engine's pool for `cfg` (see `Dialect::connect` for when it dials).
    pub async fn connect(cfg: &CatalogConfig) -> Result<Self, CatalogError> {
        let pool = D::connect(cfg).await?;
        let mut catalog = Self::with_pool(pool, &cfg.dialog_table, &cfg.dialog_owner_column)?;
        catalog.migrations_schema = Identifier::new("migrations_schema", &cfg.migrations_schema)?;
        Ok(catalog)
    }

    /// A catalog over an existing pool (tests, tools).
    pub fn with_pool(
        pool: Pool<D::Db>,
        dialog_table: &str,
        owner_column: &str,
    ) -> Result<Self, CatalogError> {
        let table = Identifier::new("dialog_table", dialog_table)?;
        let owner = Identifier::new("dialog_owner_column", owner_column)?;
        Ok(SqlCatalog {
            pool,
            sql: Queries::new(&table, &owner, D::PLACEHOLDER),
            dialog_table: table,
            owner_column: owner,
            migrations_schema: Identifier::new(
                "migrations_schema",
                crate::config::DEFAULT_MIGRATIONS_SCHEMA,
            )?,
            dialect: PhantomData,
        })
    }

    pub fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }
}

fn decode<D: Dialect>(row: &DialectRow<D>) -> Result<AttachmentRow, CatalogError>
where
    for<'a> &'a str: ColumnIndex<DialectRow<D>>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> i64: Decode<'r, D::Db> + Type<D::Db>,
{
    let (created_at, linked_at) = D::times(row)?;
    RawRow {
        id: row.try_get("id")?,
        dialog_id: row.try_get("dialog_id")?,
        message_id: row.try_get("message_id")?,
        storage_path: row.try_get("storage_path")?,
        mime_type: row.try_get("mime_type")?,
        size_bytes: row.try_get("size_bytes")?,
        original_name: row.try_get("original_name")?,
        created_by_user_id: row.try_get("created_by_user_id")?,
        status: row.try_get("status")?,
        created_at,
        linked_at,
        owner: row.try_get("owner")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        placeholder: row.try_get("placeholder")?,
    }
    .check()
}

/// Bind what an upsert and a staged insert both write after their leading columns, in this
/// order: storagePath, mimeType, sizeBytes, originalName, createdByUserId, createdAt.
fn bind_file<'q, D: Dialect>(
    q: SqlQuery<'q, D>,
    row: &'q NewAttachment,
) -> Result<SqlQuery<'q, D>, CatalogError>
where
    for<'a> String: Encode<'a, D::Db> + Type<D::Db>,
    for<'a> i64: Encode<'a, D::Db> + Type<D::Db>,
{
    Ok(q.bind(&row.storage_path)
        .bind(&row.mime_type)
        .bind(query::size_to_sql(&row.id, row.size_bytes)?)
        .bind(&row.original_name)
        .bind(&row.created_by_user_id)
        .bind(D::to_sql_time(row.created_at)))
}

// The bounds say what sqlx must offer for `D::Db`: both engines meet them; none is implied by
// `Database` alone.
#[async_trait]
impl<D: Dialect> Catalog for SqlCatalog<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'a> &'a str: ColumnIndex<DialectRow<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    async fn find_linked(
        &self,
        dialog_id: &str,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        let row = sqlx::query(&self.sql.find_linked)
            .bind(attachment_id)
            .bind(dialog_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::<D>).transpose()
    }

    async fn find_staged(
        &self,
        attachment_id: &str,
    ) -> Result<Option<AttachmentRow>, CatalogError> {
        let row = sqlx::query(&self.sql.find_staged)
            .bind(attachment_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode::<D>).transpose()
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), CatalogError> {
        // Only the default: a configured dialog table is the app's, and a "SupportDialog"
        // made beside it would be a table Prisma does not know and wants to drop.
        let default_dialog = self.dialog_table.as_str() == DEFAULT_DIALOG_TABLE
            && self.owner_column.as_str() == DEFAULT_DIALOG_OWNER;
        let then = default_dialog.then_some(D::DEFAULT_DIALOG_SQL);
        D::migrate(&self.pool, &self.migrations_schema, then).await?;
        self.verify_schema().await
    }

    async fn verify_schema(&self) -> Result<(), CatalogError> {
        let needs = schema::required(self.dialog_table.as_str(), self.owner_column.as_str());
        let mut lines = Vec::new();
        for need in &needs {
            let found = D::describe(&self.pool, &need.name).await?;
            lines.extend(schema::compare::<D>(need, found.as_ref()));
        }
        if lines.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Schema(SchemaProblems(lines)))
        }
    }

    async fn upsert_dialog(
        &self,
        dialog_id: &str,
        owner_user_id: &str,
    ) -> Result<(), CatalogError> {
        sqlx::query(&self.sql.upsert_dialog)
            .bind(dialog_id)
            .bind(owner_user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn upsert_attachment(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        let q = sqlx::query(self.sql.upsert_attachment(row.status))
            .bind(&row.id)
            .bind(&row.dialog_id)
            .bind(&row.message_id);
        bind_file::<D>(q, row)?.execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_staged(&self, row: &NewAttachment) -> Result<(), CatalogError> {
        let q = sqlx::query(&staging::sql(D::PLACEHOLDER).insert_staged).bind(&row.id);
        bind_file::<D>(q, row)?.execute(&self.pool).await?;
        Ok(())
    }

    async fn delete_staged(
        &self,
        attachment_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, CatalogError> {
        let row = sqlx::query(&staging::sql(D::PLACEHOLDER).delete_staged)
            .bind(attachment_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("storage_path")).transpose()?)
    }

    async fn find_many(&self, ids: &[String]) -> Result<Vec<AttachmentRow>, CatalogError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(staging::MAX_IDS_PER_QUERY) {
            let text = staging::sql(D::PLACEHOLDER).find_many(D::PLACEHOLDER, chunk.len());
            let mut q = sqlx::query(&text);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                found.push(decode::<D>(&row)?);
            }
        }
        Ok(found)
    }

    async fn mark_commit_target(
        &self,
        user_id: &str,
        dialog_id: &str,
        ids: &[String],
    ) -> Result<(), CatalogError> {
        for chunk in ids.chunks(staging::MAX_IDS_PER_QUERY) {
            let sql = staging::sql(D::PLACEHOLDER);
            let text = sql.mark_commit_target(D::PLACEHOLDER, chunk.len());
            let mut q = sqlx::query(&text).bind(dialog_id).bind(user_id);
            for id in chunk {
                q = q.bind(id);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn link(&self, link: &LinkRequest) -> Result<bool, CatalogError> {
        let mut tx = self.pool.begin().await?;
        for (id, path) in &link.rows {
            let done = sqlx::query(&staging::sql(D::PLACEHOLDER).link_one)
                .bind(&link.dialog_id)
                .bind(&link.message_id)
                .bind(path)
                .bind(D::to_sql_time(link.linked_at))
                .bind(id)
                .bind(&link.user_id)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&done) != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_many(&self, ids: &[String]) -> Result<Vec<ClaimedRow>, CatalogError> {
        let mut deleted = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(staging::MAX_IDS_PER_QUERY) {
            let text = staging::sql(D::PLACEHOLDER).delete_many(D::PLACEHOLDER, chunk.len());
            let mut q = sqlx::query(&text);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                deleted.push(ClaimedRow {
                    id: r.try_get("id")?,
                    storage_path: r.try_get("storage_path")?,
                    dialog_id: r.try_get("dialog_id")?,
                });
            }
        }
        Ok(deleted)
    }

    async fn claim_expired_staged(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedRow>, CatalogError> {
        let rows = sqlx::query(&staging::sql(D::PLACEHOLDER).claim_expired)
            .bind(D::to_sql_time(cutoff))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedRow {
                    id: r.try_get("id")?,
                    storage_path: r.try_get("storage_path")?,
                    dialog_id: r.try_get("dialog_id")?,
                })
            })
            .collect()
    }

    async fn try_cleanup_lock(&self) -> Result<Option<CleanupLock>, CatalogError> {
        D::try_cleanup_lock(&self.pool).await
    }

    async fn find_previews(&self, attachment_id: &str) -> Result<Vec<PreviewRow>, CatalogError> {
        let rows = sqlx::query(&previews::sql(D::PLACEHOLDER).find)
            .bind(attachment_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                RawPreview {
                    variant: r.try_get("variant")?,
                    format: r.try_get("format")?,
                    storage_path: r.try_get("storage_path")?,
                    size_bytes: r.try_get("size_bytes")?,
                    width: r.try_get("width")?,
                    height: r.try_get("height")?,
                }
                .check(attachment_id)
            })
            .collect()
    }

    async fn save_previews(
        &self,
        attachment_id: &str,
        image: &ImageInfo,
        rows: &[PreviewRow],
    ) -> Result<(), CatalogError> {
        let sql = previews::sql(D::PLACEHOLDER);
        let mut tx = self.pool.begin().await?;
        for row in rows {
            sqlx::query(&sql.upsert)
                .bind(attachment_id)
                .bind(row.variant.as_str())
                .bind(row.format.as_str())
                .bind(&row.storage_path)
                .bind(query::size_to_sql(attachment_id, row.size_bytes)?)
                .bind(i64::from(row.width))
                .bind(i64::from(row.height))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(&sql.set_image)
            .bind(image.width.map(i64::from))
            .bind(image.height.map(i64::from))
            .bind(&image.placeholder)
            .bind(attachment_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn without_previews(
        &self,
        after_id: &str,
        limit: u32,
    ) -> Result<Vec<AttachmentRow>, CatalogError> {
        let rows = sqlx::query(&previews::sql(D::PLACEHOLDER).missing)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode::<D>).collect()
    }

    async fn staged_usage(&self, user_id: &str) -> Result<StagedUsage, CatalogError> {
        let row = sqlx::query(&staging::sql(D::PLACEHOLDER).staged_usage)
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        let count = |column: &str| -> Result<u64, CatalogError> {
            Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
        };
        Ok(StagedUsage {
            uploads: count("uploads")?,
            bytes: count("bytes")?,
        })
    }
}
