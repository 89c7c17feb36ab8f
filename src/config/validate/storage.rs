//! `[storage]`: the provider and its keys (`fs` root, `s3` endpoint, bucket and credentials)
//! plus the timeouts every provider shares.

use std::path::PathBuf;
use std::time::Duration;

use super::super::checker::Checker;
use super::super::raw::RawStorage;
use super::super::{StorageConfig, StorageProvider};

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
            super::s3::section(raw, c).map_or_else(fs_default, StorageProvider::S3)
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
