//! The TOML file as written: serde structs that reject unknown keys and leave every key
//! optional. No defaults and no checks live here; `validate` applies both.
//!
//! Inline secrets deserialize straight into `Secret`, so even a `Debug` print of the raw file
//! cannot show them.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// The whole file. Each section is deserialized on its own (see `load`) so that a mistake in one
/// section does not hide mistakes in the others; this struct is the assembled result.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub app: RawApp,
    pub auth: RawAuth,
    pub catalog: RawCatalog,
    pub storage: RawStorage,
    pub http: RawHttp,
    pub limits: RawLimits,
    pub upload: RawUpload,
    pub preview: RawPreview,
    pub backfill: RawBackfill,
    pub internal: RawInternal,
    pub log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub threads: Option<i64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub grace_period_s: Option<i64>,
    pub header_timeout_ms: Option<i64>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub upgrade_sock: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub upstream: Option<String>,
    pub tls: Option<bool>,
    pub sni: Option<String>,
    pub connect_timeout_ms: Option<i64>,
    pub read_timeout_ms: Option<i64>,
    pub write_timeout_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub algorithms: Option<Vec<String>>,
    pub hs_secret: Option<Secret>,
    pub hs_secret_env: Option<String>,
    pub hs_secret_file: Option<PathBuf>,
    pub public_keys: Option<Vec<RawPublicKey>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_s: Option<i64>,
    pub cookie: Option<String>,
    pub user_claim: Option<String>,
    pub role_claim: Option<String>,
    pub permissions_claim: Option<String>,
    pub staff_permission: Option<String>,
}

/// One entry of `auth.public_keys`: `{ kid, alg, pem_file }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublicKey {
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub pem_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCatalog {
    pub database_url: Option<Secret>,
    pub database_url_env: Option<String>,
    pub database_url_file: Option<PathBuf>,
    pub max_connections: Option<i64>,
    pub cache_ttl_s: Option<i64>,
    pub dialog_table: Option<String>,
    pub dialog_owner_column: Option<String>,
    pub migrations_schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub provider: Option<String>,
    // fs
    pub root: Option<PathBuf>,
    // s3 (and `bucket` for supabase)
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub path_style: Option<bool>,
    pub access_key_id: Option<Secret>,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<Secret>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    // supabase
    pub url: Option<String>,
    pub service_key: Option<Secret>,
    pub service_key_env: Option<String>,
    pub service_key_file: Option<PathBuf>,
    // every provider
    pub connect_timeout_ms: Option<i64>,
    pub read_timeout_ms: Option<i64>,
    pub signed_url_ttl_s: Option<i64>,
    pub offload_over_bytes: Option<i64>,
    pub memory_cache_bytes: Option<i64>,
    pub memory_cache_object_bytes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub cache_max_age_s: Option<i64>,
    pub max_object_bytes: Option<i64>,
    pub inline_types: Option<Vec<String>>,
    pub cross_origin_resource_policy: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub redis_url: Option<Secret>,
    pub redis_url_env: Option<String>,
    pub redis_url_file: Option<PathBuf>,
    pub redis_ca_file: Option<PathBuf>,
    pub redis_cluster_nodes: Option<Vec<Secret>>,
    pub user_per_minute: Option<i64>,
    pub ip_per_minute: Option<i64>,
    pub burst: Option<i64>,
    pub max_concurrent_per_user: Option<i64>,
    pub on_redis_error: Option<String>,
    pub redis_timeout_ms: Option<i64>,
    pub sync_ms: Option<i64>,
    pub sync_batch: Option<i64>,
    pub lease_over_bytes: Option<i64>,
    pub lease_ttl_s: Option<i64>,
    pub write_idle_timeout_s: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpload {
    pub max_bytes: Option<i64>,
    pub allowed_types: Option<Vec<String>>,
    pub staged_ttl_min: Option<i64>,
    pub cleanup_interval_s: Option<i64>,
    pub max_staged_per_user: Option<i64>,
    pub max_staged_bytes_per_user: Option<i64>,
    pub max_concurrent_per_user: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreview {
    pub enabled: Option<bool>,
    pub thumb_px: Option<i64>,
    pub preview_px: Option<i64>,
    pub max_source_pixels: Option<i64>,
    pub max_source_bytes: Option<i64>,
    pub workers: Option<i64>,
    pub queue: Option<i64>,
    pub pdf: Option<bool>,
    pub video: Option<bool>,
    pub pdftocairo: Option<std::path::PathBuf>,
    pub ffmpeg: Option<std::path::PathBuf>,
    pub tool_timeout_s: Option<i64>,
    pub tool_memory_mb: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInternal {
    pub service_token: Option<Secret>,
    pub service_token_env: Option<String>,
    pub service_token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// Keys whose value is a secret: a type error on one of them must not echo the value.
pub const SECRET_KEYS: &[&str] = &[
    "auth.hs_secret",
    "catalog.database_url",
    "storage.access_key_id",
    "storage.secret_access_key",
    "storage.service_key",
    "limits.redis_url",
    "limits.redis_cluster_nodes",
    "internal.service_token",
];

/// `[backfill]` (SPEC §10, §13): where the app keeps its legacy attachment JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackfill {
    pub messages_table: Option<String>,
    pub message_id_column: Option<String>,
    pub dialog_column: Option<String>,
    pub author_column: Option<String>,
    pub created_column: Option<String>,
    pub attachments_column: Option<String>,
    pub path_field: Option<String>,
    pub name_field: Option<String>,
    pub mime_field: Option<String>,
    pub size_field: Option<String>,
    pub id_field: Option<String>,
    pub batch_size: Option<i64>,
}
