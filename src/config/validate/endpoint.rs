//! What every HTTP storage provider's section needs checked alike: its base URL, its bucket
//! and its required secrets.

use std::path::PathBuf;

use super::super::checker::Checker;
use super::super::Secret;

/// A provider's base URL: required, http(s), with a host and no credentials, query or
/// fragment (request paths are appended to it, and credentials belong in the secret keys).
pub(super) fn base_url(
    c: &mut Checker,
    key: &str,
    provider: &str,
    value: Option<&str>,
) -> Option<url::Url> {
    let Some(value) = value else {
        c.problem(
            key,
            format!("is required for storage.provider = \"{provider}\""),
        );
        return None;
    };
    match url::Url::parse(value) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            Some(url)
        }
        _ => {
            c.problem(
                key,
                format!("{value:?} is not an http(s) URL without credentials, query or fragment"),
            );
            None
        }
    }
}

/// `storage.bucket`: required, at most `max_len` bytes of the characters bucket names allow.
pub(super) fn bucket(
    c: &mut Checker,
    provider: &str,
    value: Option<String>,
    max_len: usize,
) -> Option<String> {
    match value {
        None => {
            c.problem(
                "storage.bucket",
                format!("is required for storage.provider = \"{provider}\""),
            );
            None
        }
        Some(b) if b.is_empty() || b.len() > max_len || !b.bytes().all(bucket_byte) => {
            c.problem("storage.bucket", format!("{b:?} is not a bucket name"));
            None
        }
        Some(b) => Some(b),
    }
}

/// Bytes S3-compatible services accept in bucket names (AWS's own rules are stricter; the
/// service itself has the last word).
fn bucket_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// A secret the provider cannot work without: `key`, `key_env` or `key_file`, one of them set.
pub(super) fn required_secret(
    c: &mut Checker,
    key: &str,
    provider: &str,
    (inline, env, file): (Option<Secret>, Option<String>, Option<PathBuf>),
) -> Option<Secret> {
    let secret = c.secret(key, inline, env, file);
    if secret.is_none() && !c.reported(key) {
        c.problem(
            key,
            format!(
                "is required for storage.provider = \"{provider}\" (or {key}_env / {key}_file)"
            ),
        );
    }
    secret
}
