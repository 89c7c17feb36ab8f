//! Reading the config: TOML text -> `raw` sections -> validated `Config`, with every problem
//! collected and printed one per line, naming the key. Validation rules live in `validate`.
//!
//! Relative paths (`pem_file`, `*_file`, `storage.root`, `tls_*_file`, `ca_file`, SQLite URLs)
//! are kept relative to the process working directory, not to the config file: that is what
//! operators expect from a systemd unit's `WorkingDirectory=` and from `demo` run in a checkout.
//! `from_toml_str` takes a `base_dir` so tests can point them at a scratch directory; `load`
//! passes an empty one, which leaves the paths exactly as written.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::checker::{Checker, Problem};
use super::raw::{RawConfig, SECRET_KEYS};
use super::validate;
use super::Config;

/// The embedded config `attachment-gateway demo` runs with.
pub const DEMO_TOML: &str = include_str!("../../conf/demo.toml");

/// Every problem found in one config; `Display` prints one line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    fn one(key: impl Into<String>, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors {
            problems: vec![Problem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

/// Read and validate the config file at `path`, with secrets from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one("config", format!("cannot read {path:?}: {e}")))?;
    from_toml_str(&text, Path::new(""), &|name| std::env::var(name).ok())
}

/// The embedded demo config. It reads no environment variable (not even `DATABASE_URL`), so
/// the demo never reaches for a service the newcomer did not ask for.
pub fn load_demo() -> Result<Config, ConfigErrors> {
    from_toml_str(DEMO_TOML, Path::new(""), &|_| None)
}

/// Validate config `text`. Relative paths are joined to `base_dir` (empty: left as written);
/// `env` looks up environment variables (`DATABASE_URL` and the `*_env` keys).
pub fn from_toml_str(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let mut broken_sections = Vec::new();
    let raw = parse_raw(text, &mut problems, &mut broken_sections)?;

    let mut checker = Checker::new(base_dir, env);
    let config = validate::config(raw, &mut checker);
    // A section that did not deserialize was validated as if empty; what that reports about
    // its defaults would only be noise next to the real mistake.
    problems.extend(checker.into_problems().into_iter().filter(|p| {
        let section = p.key.split(['.', '[']).next().unwrap_or_default();
        !broken_sections.contains(&section.to_string())
    }));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors { problems })
    }
}

const SECTIONS: [&str; 12] = [
    "server", "app", "auth", "catalog", "storage", "http", "limits", "upload", "preview",
    "backfill", "internal", "log",
];

/// Split the document into sections and deserialize each on its own, so that one section's
/// mistake does not hide another's. A syntax error stops everything: nothing else is reliable.
fn parse_raw(
    text: &str,
    problems: &mut Vec<Problem>,
    broken: &mut Vec<String>,
) -> Result<RawConfig, ConfigErrors> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|span| {
                let (line, column) = position(text, span.start);
                format!("line {line}, column {column}")
            })
            .unwrap_or_else(|| "config".to_string());
        ConfigErrors::one(format!("TOML syntax ({at})"), one_line(e.message()))
    })?;

    for (key, value) in &table {
        if !SECTIONS.contains(&key.as_str()) {
            let what = if value.is_table() { "section" } else { "key" };
            problems.push(Problem {
                key: key.clone(),
                message: format!(
                    "unknown {what} `{key}` at the top level (sections: {})",
                    SECTIONS.map(|s| format!("[{s}]")).join(", ")
                ),
            });
        }
    }

    let mut sections = Sections {
        table: &table,
        problems,
        broken,
    };
    Ok(RawConfig {
        server: sections.parse("server"),
        app: sections.parse("app"),
        auth: sections.parse("auth"),
        catalog: sections.parse("catalog"),
        storage: sections.parse("storage"),
        http: sections.parse("http"),
        limits: sections.parse("limits"),
        upload: sections.parse("upload"),
        preview: sections.parse("preview"),
        backfill: sections.parse("backfill"),
        internal: sections.parse("internal"),
        log: sections.parse("log"),
    })
}

struct Sections<'a> {
    table: &'a toml::Table,
    problems: &'a mut Vec<Problem>,
    broken: &'a mut Vec<String>,
}

impl Sections<'_> {
    /// Deserialize one section. It is re-serialized into a document of its own first: the
    /// error's position in that small document tells which key was wrong, which the message
    /// alone does not (serde says "invalid type: string", not where).
    fn parse<T: DeserializeOwned + Default>(&mut self, name: &str) -> T {
        let Some(value) = self.table.get(name) else {
            return T::default();
        };
        let Some(inner) = value.as_table() else {
            let found = value.type_str();
            self.fail(
                name,
                name,
                format!("must be a table ([{name}]), found {found}"),
            );
            return T::default();
        };
        let text = match toml::to_string(inner) {
            Ok(text) => text,
            Err(e) => {
                self.fail(name, name, one_line(&e.to_string()));
                return T::default();
            }
        };
        match toml::from_str::<T>(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let key = e
                    .span()
                    .and_then(|span| key_at(&text, span.start))
                    .map(|key| format!("{name}.{key}"))
                    .unwrap_or_else(|| name.to_string());
                let secret = SECRET_KEYS.contains(&key.as_str());
                let message = if secret && !e.message().starts_with("unknown field") {
                    // serde's type errors quote the value; for a secret that would print it.
                    "must be a string".to_string()
                } else {
                    // The raw structs read integers as i64 to report negatives themselves.
                    one_line(e.message()).replace("expected i64", "expected an integer")
                };
                self.fail(name, &key, message);
                T::default()
            }
        }
    }

    fn fail(&mut self, section: &str, key: &str, message: String) {
        self.broken.push(section.to_string());
        self.problems.push(Problem {
            key: key.to_string(),
            message,
        });
    }
}

/// The key on the line holding byte `offset` of a re-serialized section: `listen` for
/// `listen = ...`, `public_keys[1].alg` inside the second `[[public_keys]]` table.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let (line_no, _) = position(text, offset);
    let lines: Vec<&str> = text.lines().collect();
    let line = lines.get(line_no - 1)?.trim();
    let own = if line.starts_with('[') {
        None
    } else {
        Some(line.split('=').next()?.trim().trim_matches('"').to_string())
    };
    let header = if line.starts_with('[') {
        Some(line)
    } else {
        lines[..line_no - 1]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| l.starts_with('['))
    };
    let Some(header) = header else {
        return own;
    };
    let (prefix, is_array) = if let Some(h) = header.strip_prefix("[[") {
        (h.trim_end_matches(']').trim(), true)
    } else {
        (header.trim_matches(['[', ']']).trim(), false)
    };
    let prefix = if is_array {
        let index = lines[..line_no]
            .iter()
            .filter(|l| l.trim() == header)
            .count()
            .saturating_sub(1);
        format!("{prefix}[{index}]")
    } else {
        prefix.to_string()
    };
    Some(match own {
        Some(own) => format!("{prefix}.{own}"),
        None => prefix,
    })
}

/// 1-based line and column of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
