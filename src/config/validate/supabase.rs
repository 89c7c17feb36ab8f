//! `storage.provider = "supabase"`: the project URL, bucket and service key of Supabase
//! Storage's REST API.

use super::super::checker::Checker;
use super::super::raw::RawStorage;
use super::super::SupabaseConfig;
use super::endpoint::{base_url, bucket, required_secret};

pub(super) fn section(raw: RawStorage, c: &mut Checker) -> Option<SupabaseConfig> {
    // Paths are appended (`/storage/v1/...`), so the base may carry a path of its own (a
    // self-hosted instance behind a prefix).
    let url = base_url(c, "storage.url", "supabase", raw.url.as_deref());
    let bucket = bucket(c, "supabase", raw.bucket, 100);
    let service_key = required_secret(
        c,
        "storage.service_key",
        "supabase",
        (raw.service_key, raw.service_key_env, raw.service_key_file),
    );
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
