//! `storage.provider = "supabase"`: the project URL, bucket and service key of Supabase
//! Storage's REST API.

use super::super::checker::Checker;
use super::super::raw::RawStorage;
use super::super::SupabaseConfig;
use super::storage::bucket_byte;

pub(super) fn section(raw: RawStorage, c: &mut Checker) -> Option<SupabaseConfig> {
    let url = match raw.url.as_deref().map(url::Url::parse) {
        None => {
            c.problem(
                "storage.url",
                "is required for storage.provider = \"supabase\"",
            );
            None
        }
        // Paths are appended (`/storage/v1/...`), so the base may carry a path of its own
        // (a self-hosted instance behind a prefix) but no query, fragment or credentials.
        Some(Ok(url))
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none()
                && url.query().is_none()
                && url.fragment().is_none() =>
        {
            Some(url)
        }
        Some(_) => {
            let v = raw.url.as_deref().unwrap_or_default();
            c.problem(
                "storage.url",
                format!("{v:?} is not an http(s) URL without credentials, query or fragment"),
            );
            None
        }
    };
    let bucket = match raw.bucket {
        None => {
            c.problem(
                "storage.bucket",
                "is required for storage.provider = \"supabase\"",
            );
            None
        }
        Some(b) if b.is_empty() || b.len() > 100 || !b.bytes().all(bucket_byte) => {
            c.problem("storage.bucket", format!("{b:?} is not a bucket name"));
            None
        }
        Some(b) => Some(b),
    };
    let service_key = c.secret(
        "storage.service_key",
        raw.service_key,
        raw.service_key_env,
        raw.service_key_file,
    );
    if service_key.is_none() && !c.reported("storage.service_key") {
        c.problem(
            "storage.service_key",
            "is required for storage.provider = \"supabase\" (or storage.service_key_env / \
             storage.service_key_file)",
        );
    }
    if let Some(key) = &service_key {
        // It travels in two headers; a value that cannot be one would fail every request.
        if http::HeaderValue::from_str(&format!("Bearer {}", key.expose())).is_err() {
            c.problem("storage.service_key", "is not a valid header value");
        }
    }
    let ca_file = raw.ca_file.map(|p| c.existing_file("storage.ca_file", &p));
    Some(SupabaseConfig {
        url: url?,
        bucket: bucket?,
        service_key: service_key?,
        ca_file,
    })
}
