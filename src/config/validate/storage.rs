//! `[storage]`: the provider and its keys (`fs` root, `s3` endpoint, bucket and credentials)
//! plus the timeouts every provider shares.

use std::path::PathBuf;
use std::time::Duration;

use super::super::checker::Checker;
use super::super::raw::RawStorage;
use super::super::{S3Config, ServerSideEncryption, StorageConfig, StorageProvider};

pub(super) fn section(raw: RawStorage, c: &mut Checker) -> StorageConfig {
    let ms = |n: u64| Duration::from_millis(n);
    let connect_timeout = ms(c.int(
        "storage.connect_timeout_ms",
        raw.connect_timeout_ms,
        2000,
        1,
        u64::MAX,
    ));
    let read_timeout = ms(c.int(
        "storage.read_timeout_ms",
        raw.read_timeout_ms,
        15000,
        1,
        u64::MAX,
    ));
    // SigV4 presigned URLs live at most 7 days (X-Amz-Expires <= 604800).
    let signed_url_ttl = Duration::from_secs(c.int(
        "storage.signed_url_ttl_s",
        raw.signed_url_ttl_s,
        60,
        1,
        604_800,
    ));
    let offload_over_bytes = c.int(
        "storage.offload_over_bytes",
        raw.offload_over_bytes,
        0,
        0,
        u64::MAX,
    );
    let memory_cache_bytes = c.int(
        "storage.memory_cache_bytes",
        raw.memory_cache_bytes,
        32 * 1024 * 1024,
        0,
        u64::MAX,
    );
    let memory_cache_object_bytes = c.int(
        "storage.memory_cache_object_bytes",
        raw.memory_cache_object_bytes,
        64 * 1024,
        1,
        // The read policy bounds memory per download by a small constant (SPEC §3).
        1024 * 1024,
    );
    let provider = raw.provider.clone().unwrap_or_else(|| "fs".to_string());
    let s3_keys = [
        ("endpoint", raw.endpoint.is_some()),
        ("region", raw.region.is_some()),
        ("path_style", raw.path_style.is_some()),
        ("access_key_id", raw.access_key_id.is_some()),
        ("access_key_id_env", raw.access_key_id_env.is_some()),
        ("access_key_id_file", raw.access_key_id_file.is_some()),
        ("secret_access_key", raw.secret_access_key.is_some()),
        ("secret_access_key_env", raw.secret_access_key_env.is_some()),
        (
            "secret_access_key_file",
            raw.secret_access_key_file.is_some(),
        ),
        ("sse", raw.sse.is_some()),
        ("sse_kms_key_id", raw.sse_kms_key_id.is_some()),
    ];
    let supabase_keys = [
        ("url", raw.url.is_some()),
        ("service_key", raw.service_key.is_some()),
        ("service_key_env", raw.service_key_env.is_some()),
        ("service_key_file", raw.service_key_file.is_some()),
    ];
    // A key of another provider is most likely a half-finished switch; say so.
    let mut not_for = |keys: &[(&str, bool)], used_by: &str| {
        for (key, set) in keys {
            if *set {
                c.problem(
                    format!("storage.{key}"),
                    format!("only used with storage.provider = {used_by:?}, not {provider:?}"),
                );
            }
        }
    };
    let fs_default = || StorageProvider::Fs {
        root: PathBuf::from("data/bucket"),
    };
    let chosen = match provider.as_str() {
        "fs" => {
            not_for(&s3_keys, "s3");
            not_for(&supabase_keys, "supabase");
            not_for(&[("bucket", raw.bucket.is_some())], "s3");
            not_for(&[("ca_file", raw.ca_file.is_some())], "s3");
            if offload_over_bytes > 0 {
                c.problem(
                    "storage.offload_over_bytes",
                    "needs signed URLs, which storage.provider = \"fs\" cannot make (use 0)",
                );
            }
            let root = raw.root.unwrap_or_else(|| PathBuf::from("data/bucket"));
            if root.as_os_str().is_empty() {
                c.problem("storage.root", "must not be empty");
            }
            StorageProvider::Fs {
                root: c.path(&root),
            }
        }
        "s3" => {
            not_for(&supabase_keys, "supabase");
            not_for(&[("root", raw.root.is_some())], "fs");
            s3(raw, c).map_or_else(fs_default, StorageProvider::S3)
        }
        "supabase" => {
            not_for(&s3_keys, "s3");
            not_for(&[("root", raw.root.is_some())], "fs");
            super::supabase::section(raw, c).map_or_else(fs_default, StorageProvider::Supabase)
        }
        other => {
            c.problem(
                "storage.provider",
                format!("{other:?} must be one of \"fs\", \"s3\", \"supabase\""),
            );
            fs_default()
        }
    };
    StorageConfig {
        provider: chosen,
        connect_timeout,
        read_timeout,
        signed_url_ttl,
        offload_over_bytes,
        memory_cache_bytes,
        memory_cache_object_bytes,
    }
}

fn s3(raw: RawStorage, c: &mut Checker) -> Option<S3Config> {
    let endpoint = base_url(c, "storage.endpoint", "s3", raw.endpoint.as_deref());
    let region = c.non_empty("storage.region", raw.region, "us-east-1");
    let bucket = bucket(c, "s3", raw.bucket, 255);
    let access_key_id = c.secret(
        "storage.access_key_id",
        raw.access_key_id,
        raw.access_key_id_env,
        raw.access_key_id_file,
    );
    let secret_access_key = c.secret(
        "storage.secret_access_key",
        raw.secret_access_key,
        raw.secret_access_key_env,
        raw.secret_access_key_file,
    );
    for (key, value) in [
        ("storage.access_key_id", &access_key_id),
        ("storage.secret_access_key", &secret_access_key),
    ] {
        if value.is_none() && !c.reported(key) {
            c.problem(
                key,
                format!("is required for storage.provider = \"s3\" (or {key}_env / {key}_file)"),
            );
        }
    }
    let ca_file = raw.ca_file.map(|p| c.existing_file("storage.ca_file", &p));
    let sse = sse(raw.sse, raw.sse_kms_key_id, c);
    Some(S3Config {
        endpoint: endpoint?,
        region,
        bucket: bucket?,
        path_style: raw.path_style.unwrap_or(false),
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        ca_file,
        sse,
    })
}

/// `storage.sse` = "AES256" | "aws:kms" (+ optional `storage.sse_kms_key_id`).
fn sse(
    mode: Option<String>,
    kms_key_id: Option<String>,
    c: &mut Checker,
) -> Option<ServerSideEncryption> {
    let chosen = match mode.as_deref() {
        None => None,
        Some("AES256") => Some(ServerSideEncryption::Aes256),
        Some("aws:kms") => Some(ServerSideEncryption::Kms {
            key_id: kms_key_id.clone(),
        }),
        Some(other) => {
            c.problem(
                "storage.sse",
                format!("{other:?} must be \"AES256\" or \"aws:kms\""),
            );
            None
        }
    };
    match &kms_key_id {
        Some(id) if id.is_empty() || http::HeaderValue::from_str(id).is_err() => c.problem(
            "storage.sse_kms_key_id",
            "must be a non-empty key id or ARN",
        ),
        Some(_) if mode.as_deref() != Some("aws:kms") => c.problem(
            "storage.sse_kms_key_id",
            "only used with storage.sse = \"aws:kms\"",
        ),
        _ => {}
    }
    chosen
}

/// Bytes S3-compatible services accept in bucket names (AWS's own rules are stricter; the
/// service itself has the last word).
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

fn bucket_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}
