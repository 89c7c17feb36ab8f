//! What the gateway needs of the tables it reads, whoever created them (its migrations or the
//! app's Prisma ones), and the comparison of that with what a database reports. Pure: the
//! engines' introspection (`Dialect::describe`) hands in plain data, nothing here does I/O.
//!
//! `CREATE TABLE IF NOT EXISTS` does nothing to a table the app made first, so a table made
//! from the brief alone (no `"linkedAt"`, `"sizeBytes"` as `integer`) would pass `migrate` and
//! then fail every read. Checking the shape after migrating turns that into one line per
//! mismatch at deploy time.

use std::fmt;

/// A column type as the gateway's queries need it, whatever the engine calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Decoded as a Rust `String` and compared with text parameters.
    Text,
    /// Decoded as `i64` without a cast (`"sizeBytes"`).
    BigInt,
    /// Read through `CAST(.. AS BIGINT)` (`"width"`, `"height"`): any integer width will do.
    Integer,
    /// UTC wall-clock time at millisecond precision (`timestamp(3)` without a zone).
    Timestamp,
    /// Read as `CAST(.. AS TEXT)` and written as an untyped literal: text or an enum.
    Status,
    /// Only read through `CAST(.. AS TEXT)` (the dialog owner): any type.
    Any,
}

/// Whether a column may hold NULL, where the gateway's reads or writes depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// Decoded as a non-optional value: a NULL would fail the read.
    Forbidden,
    /// The gateway writes NULL here (a staged row has no dialog, no link time).
    Required,
    /// Either works.
    Either,
}

#[derive(Debug, Clone)]
pub struct ColumnNeed {
    pub name: String,
    pub need: Need,
    pub nulls: Nulls,
}

/// A table the gateway reads or writes, by what its queries need.
#[derive(Debug, Clone)]
pub struct TableNeed {
    pub name: String,
    pub columns: Vec<ColumnNeed>,
    /// Column lists an index (or the primary key) must cover exactly, in order: each is one
    /// of the indexed queries SPEC §5 promises.
    pub indexes: Vec<&'static [&'static str]>,
}

/// A column as the database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The engine's own spelling (`integer`, `timestamp without time zone`, `TEXT`).
    pub type_name: String,
    pub nullable: bool,
}

/// A table as the database reports it: its columns, and the column lists of its primary key,
/// unique constraints and indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub indexes: Vec<Vec<String>>,
}

/// How one engine's type names meet the gateway's needs.
pub trait TypeRules {
    fn satisfies(need: Need, type_name: &str) -> bool;
    /// What to ask for in a mismatch line, in the engine's own words.
    fn spelling(need: Need) -> &'static str;
}

/// The tables of SPEC §5, with the configured dialog table.
pub fn required(dialog_table: &str, owner_column: &str) -> Vec<TableNeed> {
    use Need::*;
    use Nulls::*;
    let col = |name: &str, need, nulls| ColumnNeed {
        name: name.to_owned(),
        need,
        nulls,
    };
    vec![
        TableNeed {
            name: "ChatAttachment".into(),
            // Primary keys are checked as indexes; their nullability is left alone, since
            // SQLite lets a non-integer primary key hold NULL unless it says NOT NULL.
            columns: vec![
                col("id", Text, Either),
                col("dialogId", Text, Required),
                col("messageId", Text, Required),
                col("storagePath", Text, Forbidden),
                col("mimeType", Text, Forbidden),
                col("sizeBytes", BigInt, Forbidden),
                col("originalName", Text, Forbidden),
                col("createdByUserId", Text, Forbidden),
                col("status", Status, Forbidden),
                col("createdAt", Timestamp, Forbidden),
                col("linkedAt", Timestamp, Required),
                col("width", Integer, Required),
                col("height", Integer, Required),
                col("placeholder", Text, Required),
            ],
            indexes: vec![
                &["id"],
                &["dialogId", "id"],
                &["messageId"],
                &["status", "createdAt"],
            ],
        },
        TableNeed {
            name: "ChatAttachmentPreview".into(),
            columns: vec![
                col("attachmentId", Text, Forbidden),
                col("variant", Text, Forbidden),
                col("format", Text, Forbidden),
                col("storagePath", Text, Forbidden),
                col("sizeBytes", BigInt, Forbidden),
                col("width", Integer, Forbidden),
                col("height", Integer, Forbidden),
                col("createdAt", Timestamp, Either),
            ],
            indexes: vec![&["attachmentId", "variant", "format"]],
        },
        TableNeed {
            name: dialog_table.to_owned(),
            // Joined on `d."id" = a."dialogId"`: text against text. The owner is cast.
            columns: vec![col("id", Text, Either), col(owner_column, Any, Either)],
            indexes: vec![&["id"]],
        },
    ]
}

/// Every way `found` (`None`: no such table) falls short of `need`, one line each.
pub fn compare<R: TypeRules>(need: &TableNeed, found: Option<&Table>) -> Vec<String> {
    let t = &need.name;
    let Some(found) = found else {
        return vec![format!("\"{t}\" is missing")];
    };
    let mut lines = Vec::new();
    for c in &need.columns {
        let Some(col) = found.columns.iter().find(|f| f.name == c.name) else {
            lines.push(format!("\"{t}\".\"{}\" is missing", c.name));
            continue;
        };
        if !R::satisfies(c.need, &col.type_name) {
            lines.push(format!(
                "\"{t}\".\"{}\" is {}, needs {}",
                c.name,
                col.type_name,
                R::spelling(c.need)
            ));
        }
        match (c.nulls, col.nullable) {
            (Nulls::Forbidden, true) => lines.push(format!(
                "\"{t}\".\"{}\" is nullable, needs NOT NULL",
                c.name
            )),
            (Nulls::Required, false) => lines.push(format!(
                "\"{t}\".\"{}\" is NOT NULL, needs nullable",
                c.name
            )),
            _ => {}
        }
    }
    for index in &need.indexes {
        let covered = found
            .indexes
            .iter()
            .any(|cols| cols.iter().map(String::as_str).eq(index.iter().copied()));
        // A missing column is reported once already; its index cannot exist either.
        let columns_exist = index
            .iter()
            .all(|i| found.columns.iter().any(|c| c.name == *i));
        if !covered && columns_exist {
            let cols: Vec<String> = index.iter().map(|c| format!("\"{c}\"")).collect();
            lines.push(format!("\"{t}\" has no index on ({})", cols.join(", ")));
        }
    }
    lines
}

/// The mismatches of a whole catalog: `migrate`, `check-config --database` and `/readyz`
/// report these lines as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblems(pub Vec<String>);

impl fmt::Display for SchemaProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the catalog's tables do not have the shape the gateway needs:"
        )?;
        for line in &self.0 {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's `information_schema` spelling, as the real rules use it.
    struct Pg;
    impl TypeRules for Pg {
        fn satisfies(need: Need, type_name: &str) -> bool {
            match need {
                Need::BigInt => type_name == "bigint",
                Need::Any => true,
                _ => type_name != "integer",
            }
        }
        fn spelling(need: Need) -> &'static str {
            match need {
                Need::BigInt => "bigint",
                _ => "text",
            }
        }
    }

    fn col(name: &str, type_name: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            nullable,
        }
    }

    fn brief_table() -> Table {
        let text = |n| col(n, "text", false);
        Table {
            columns: vec![
                text("id"),
                col("dialogId", "text", true),
                col("messageId", "text", true),
                text("storagePath"),
                text("mimeType"),
                col("sizeBytes", "integer", false),
                text("originalName"),
                text("createdByUserId"),
                text("status"),
                col("createdAt", "timestamp without time zone", false),
                col("width", "bigint", true),
                col("height", "bigint", true),
                col("placeholder", "text", true),
            ],
            indexes: vec![
                vec!["id".into()],
                vec!["messageId".into()],
                vec!["status".into(), "createdAt".into()],
            ],
        }
    }

    #[test]
    fn a_table_from_the_brief_alone_names_each_mismatch() {
        let need = &required("SupportDialog", "userId")[0];
        assert_eq!(
            compare::<Pg>(need, Some(&brief_table())),
            [
                "\"ChatAttachment\".\"sizeBytes\" is integer, needs bigint",
                "\"ChatAttachment\".\"linkedAt\" is missing",
                "\"ChatAttachment\" has no index on (\"dialogId\", \"id\")",
            ]
        );
    }

    #[test]
    fn nullability_matters_both_ways() {
        let need = &required("SupportDialog", "userId")[0];
        let mut t = brief_table();
        t.columns[1].nullable = false;
        t.columns[3].nullable = true;
        let lines = compare::<Pg>(need, Some(&t));
        assert!(
            lines.contains(&"\"ChatAttachment\".\"dialogId\" is NOT NULL, needs nullable".into())
        );
        assert!(lines
            .contains(&"\"ChatAttachment\".\"storagePath\" is nullable, needs NOT NULL".into()));
    }

    #[test]
    fn a_missing_table_is_one_line() {
        let need = &required("Conversation", "ownerId")[2];
        assert_eq!(compare::<Pg>(need, None), ["\"Conversation\" is missing"]);
    }

    #[test]
    fn an_index_must_cover_its_columns_in_order() {
        let need = TableNeed {
            name: "T".into(),
            columns: vec![],
            indexes: vec![&["a", "b"]],
        };
        let found = Table {
            columns: vec![col("a", "text", false), col("b", "text", false)],
            indexes: vec![vec!["b".into(), "a".into()]],
        };
        assert_eq!(
            compare::<Pg>(&need, Some(&found)),
            ["\"T\" has no index on (\"a\", \"b\")"]
        );
    }
}
