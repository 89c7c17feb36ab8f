//! The validator's working state: the problems found so far, and access to what lies outside
//! the file (environment variables, files) with the key-naming checks every section shares.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Secret;

/// One problem with the config: the key it concerns and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`server.listen`, `auth.public_keys[0].pem_file`), an environment variable
    /// name, or the file position of a TOML syntax error.
    pub key: String,
    /// Never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Collects problems and resolves what lies outside the file: environment variables, files.
pub(super) struct Checker<'a> {
    pub(super) problems: Vec<Problem>,
    base_dir: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(base_dir: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Checker {
            problems: Vec::new(),
            base_dir,
            env,
        }
    }

    pub(super) fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    pub(super) fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Whether a problem was already recorded for `key` (or one of its `_env`/`_file`
    /// variants): a "missing" report on top of it would only repeat it.
    pub(super) fn reported(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key.starts_with(key))
    }

    /// An empty or `.` base leaves relative paths as written (relative to the working
    /// directory), which keeps them short in `check-config` output and in logs.
    pub(super) fn paths_as_written(&self) -> bool {
        self.base_dir.as_os_str().is_empty() || self.base_dir == Path::new(".")
    }

    pub(super) fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() || self.paths_as_written() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub(super) fn read_file(&mut self, key: &str, path: &Path) -> Option<String> {
        match std::fs::read_to_string(self.path(path)) {
            Ok(text) => Some(text),
            Err(e) => {
                self.problem(key, format!("cannot read {path:?}: {e}"));
                None
            }
        }
    }

    pub(super) fn existing_file(&mut self, key: &str, path: &Path) -> PathBuf {
        let resolved = self.path(path);
        if !resolved.is_file() {
            self.problem(key, format!("{path:?} is not a readable file"));
        }
        resolved
    }

    /// A secret from exactly one of `key` (inline), `key_env` (a variable's name) or
    /// `key_file` (a file; one trailing newline is dropped, as editors and `echo` add it).
    pub(super) fn secret(
        &mut self,
        key: &str,
        inline: Option<Secret>,
        env_name: Option<String>,
        file: Option<PathBuf>,
    ) -> Option<Secret> {
        let given = [inline.is_some(), env_name.is_some(), file.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            let short = key.rsplit('.').next().unwrap_or(key);
            self.problem(
                key,
                format!("give only one of `{short}`, `{short}_env` and `{short}_file`"),
            );
            return None;
        }
        let (source, value) = if let Some(secret) = inline {
            (key.to_string(), secret.expose().to_string())
        } else if let Some(name) = env_name {
            let source = format!("{key}_env");
            match (self.env)(&name) {
                Some(value) => (source, value),
                None => {
                    self.problem(source, format!("environment variable {name:?} is not set"));
                    return None;
                }
            }
        } else if let Some(path) = file {
            let source = format!("{key}_file");
            let mut value = self.read_file(&source, &path)?;
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            (source, value)
        } else {
            return None;
        };
        if value.is_empty() {
            self.problem(source, "the secret is empty");
            return None;
        }
        Some(Secret::new(value))
    }

    /// An integer key within `min..=max`, or `default` when absent.
    pub(super) fn int(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let Some(v) = value else {
            return default;
        };
        match u64::try_from(v) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let allowed = if max == u64::MAX {
                    format!("at least {min}")
                } else {
                    format!("between {min} and {max}")
                };
                self.problem(key, format!("{v} is out of range (must be {allowed})"));
                default
            }
        }
    }

    pub(super) fn u32(&mut self, key: &str, value: Option<i64>, default: u32) -> u32 {
        let n = self.int(key, value, default.into(), 1, u32::MAX.into());
        u32::try_from(n).unwrap_or(default)
    }

    pub(super) fn seconds(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: u64,
        min: u64,
    ) -> Duration {
        Duration::from_secs(self.int(key, value, default, min, u64::MAX))
    }

    pub(super) fn non_empty(&mut self, key: &str, value: Option<String>, default: &str) -> String {
        match value {
            Some(v) if v.trim().is_empty() => {
                self.problem(key, "must not be empty");
                default.to_string()
            }
            Some(v) => v,
            None => default.to_string(),
        }
    }

    pub(super) fn optional_non_empty(
        &mut self,
        key: &str,
        value: Option<String>,
    ) -> Option<String> {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            self.problem(key, "must not be empty (leave the key out instead)");
            return None;
        }
        value
    }

    /// One of a fixed set of words.
    pub(super) fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: Option<String>,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = value else {
            return default;
        };
        match choices.iter().find(|(name, _)| *name == v) {
            Some((_, choice)) => *choice,
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                self.problem(key, format!("{v:?} must be one of {}", names.join(", ")));
                default
            }
        }
    }
}
