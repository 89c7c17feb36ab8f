//! Validated configuration: real types, checked once at load; built from `raw` (the TOML file).
//!
//! Secrets are held as `Secret` so that `Debug`/`Display` never print them.

mod checker;
mod load;
pub mod raw;
mod render;
#[cfg(test)]
mod tests;
mod validate;

pub use checker::Problem;
pub use load::{from_toml_str, load, load_demo, ConfigErrors, DEMO_TOML};
pub use render::{redact_url, render_redacted};
pub use validate::DEFAULT_MIGRATIONS_SCHEMA;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// Inline secrets in the TOML file deserialize straight into `Secret`; a non-string value is
/// refused without echoing it.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub app: AppConfig,
    pub auth: AuthConfig,
    pub catalog: CatalogConfig,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    pub upload: UploadConfig,
    pub preview: PreviewConfig,
    pub backfill: BackfillConfig,
    pub internal: InternalConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Worker threads of the public proxy service.
    pub threads: usize,
    /// Peers whose `X-Forwarded-For` is believed (CIDR networks).
    pub trusted_proxies: Vec<IpNet>,
    pub grace_period: Duration,
    /// Total time a connection gets to deliver a request's headers, counted from its start,
    /// or on a kept-alive connection from the end of Pingora's 60 s idle allowance after the
    /// previous response.
    pub header_timeout: Duration,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Unix socket through which a running instance hands its listening sockets to a new one
    /// started with `--upgrade`.
    pub upgrade_sock: PathBuf,
    /// Written with this process's id once it owns the listening sockets; systemd's
    /// `PIDFile=` follows it across an upgrade.
    pub pid_file: PathBuf,
}

/// An IP network in CIDR form (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix_len: u8,
}

impl IpNet {
    /// Build a network, clearing host bits (`10.1.2.3/8` is `10.0.0.0/8`); `None` when the
    /// prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<IpNet> {
        let addr = match addr {
            IpAddr::V4(v4) if prefix_len <= 32 => {
                IpAddr::V4((u32::from(v4) & mask_v4(prefix_len)).into())
            }
            IpAddr::V6(v6) if prefix_len <= 128 => {
                IpAddr::V6((u128::from(v6) & mask_v6(prefix_len)).into())
            }
            _ => return None,
        };
        Some(IpNet { addr, prefix_len })
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, what a
    /// dual-stack socket reports) is compared as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix_len);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix_len);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0)
}

fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len.min(128)))
        .unwrap_or(0)
}

impl std::str::FromStr for IpNet {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a single host).
    fn from_str(s: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{s:?} has a prefix length outside 0..={max}")),
            },
        };
        IpNet::new(addr, prefix_len).ok_or_else(|| format!("{s:?} is not a CIDR network"))
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `host:port` of the app; resolved at start.
    pub upstream: String,
    pub tls: bool,
    pub sni: Option<String>,
    /// Bounds on every call to the app: establishing a connection (TLS included), waiting
    /// for each read of its answer, and each write of the request to it. Past any of them the
    /// client gets a `504` JSON answer instead of waiting on a hung app.
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    pub const ALL: [JwtAlgorithm; 12] = [
        JwtAlgorithm::HS256,
        JwtAlgorithm::HS384,
        JwtAlgorithm::HS512,
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::PS512,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
        JwtAlgorithm::EdDSA,
    ];

    /// The JOSE name (RFC 7518 section 3.1, RFC 8037 for `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::HS384 => "HS384",
            JwtAlgorithm::HS512 => "HS512",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::PS384 => "PS384",
            JwtAlgorithm::PS512 => "PS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// HMAC with the shared secret (`HS*`); every other algorithm verifies with a public key.
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

impl std::str::FromStr for JwtAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<JwtAlgorithm, String> {
        JwtAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
                format!("{s:?} is not a known algorithm ({})", known.join(", "))
            })
    }
}

impl std::fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `auth.public_keys` entry, parsed for its algorithm at load by
/// [`PublicKeyConfig::parse`] (in `validate::auth`): a key that is here can verify.
#[derive(Clone)]
pub struct PublicKeyConfig {
    pub kid: String,
    pub alg: JwtAlgorithm,
    /// PEM contents, read at load time.
    pub pem: String,
    pub pem_file: PathBuf,
    /// `pem`, parsed by the parser `alg` calls for.
    pub key: jsonwebtoken::DecodingKey,
}

/// `DecodingKey` has no `Debug`; the PEM it was parsed from says the same.
impl std::fmt::Debug for PublicKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeyConfig")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("pem", &self.pem)
            .field("pem_file", &self.pem_file)
            .finish_non_exhaustive()
    }
}

/// `[auth]`, judged once by `validate::auth`: at least one algorithm; `hs_secret` set when an
/// HS* one is allowed; kids unique; each key of an allowed, non-HMAC alg, and each such alg
/// with a key. `authn` builds its verifier from this without checking again.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub algorithms: Vec<JwtAlgorithm>,
    pub hs_secret: Option<Secret>,
    pub public_keys: Vec<PublicKeyConfig>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    pub cookie: String,
    pub user_claim: String,
    pub role_claim: String,
    pub permissions_claim: String,
    pub staff_permission: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Full URL; may carry a password, so it is a secret.
    pub database_url: Secret,
    pub kind: DatabaseKind,
    pub max_connections: u32,
    /// Zero disables the in-process cache.
    pub cache_ttl: Duration,
    /// Validated SQL identifiers (`[A-Za-z_][A-Za-z0-9_]*`), quoted when used.
    pub dialog_table: String,
    pub dialog_owner_column: String,
    /// PostgreSQL only: the schema holding the gateway's migration bookkeeping
    /// (`"<schema>"."_migrations"`), apart from the app's tables. A validated identifier.
    pub migrations_schema: String,
}

#[derive(Debug, Clone)]
pub enum StorageProvider {
    Fs { root: PathBuf },
    S3(S3Config),
    Supabase(SupabaseConfig),
}

/// Supabase Storage's own REST API (`<url>/storage/v1/...`) with a service key.
#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    /// The project URL: `https://<ref>.supabase.co` or a self-hosted base URL.
    pub url: url::Url,
    pub bucket: String,
    /// The `service_role` key, sent as `Authorization: Bearer` and `apikey`.
    pub service_key: Secret,
    /// Extra CA bundle (PEM) for a self-hosted instance with a private CA.
    pub ca_file: Option<PathBuf>,
}

/// Server-side encryption requested on every S3 upload (`x-amz-server-side-encryption`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// `AES256`: keys managed by the service (SSE-S3).
    Aes256,
    /// `aws:kms`, with the bucket's default key unless `key_id` names one (SSE-KMS).
    Kms { key_id: Option<String> },
}

#[derive(Debug, Clone)]
pub struct S3Config {
    /// `http://127.0.0.1:8333` or `https://s3.eu-central-1.amazonaws.com`.
    pub endpoint: url::Url,
    pub region: String,
    pub bucket: String,
    pub path_style: bool,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// Extra CA bundle (PEM) for private endpoints.
    pub ca_file: Option<PathBuf>,
    /// Server-side encryption headers sent with every upload (none by default).
    pub sse: Option<ServerSideEncryption>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub provider: StorageProvider,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub signed_url_ttl: Duration,
    /// 0 = off.
    pub offload_over_bytes: u64,
    /// Room for small object bodies kept in memory (`storage::memory`); 0 = off.
    pub memory_cache_bytes: u64,
    /// Largest object kept there.
    pub memory_cache_object_bytes: u64,
}

/// `[http]` validated: the response policy the pure `http` module applies.
pub use crate::http::HttpConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    Local,
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub redis_url: Option<Secret>,
    /// `limits.redis_cluster_nodes`: seed nodes of a Redis Cluster, instead of `redis_url`.
    pub redis_cluster_nodes: Vec<Secret>,
    /// `limits.redis_ca_file`: the private CA a `rediss://` server's certificate chains to,
    /// instead of the system's roots.
    pub redis_ca: Option<RedisCa>,
    pub user_per_minute: u32,
    pub ip_per_minute: u32,
    pub burst: u32,
    pub max_concurrent_per_user: u32,
    pub on_redis_error: OnRedisError,
    /// Bound on every Redis call, so that Redis can never stall a request.
    pub redis_timeout: Duration,
    /// `limits.sync_ms`: with Redis, how often an instance sends Redis the requests it
    /// admitted from its own view (`limits::batch`); zero is strict mode, one Redis round
    /// trip per request.
    pub sync_interval: Duration,
    /// `limits.sync_batch` (default: an eighth of `burst`): at most this many requests per key
    /// admitted by one instance that Redis has not counted yet; the overshoot across N
    /// instances is (N - 1) x this.
    pub sync_batch: u32,
    /// A body longer than this holds a download slot while it streams; shorter bodies finish
    /// at once and only count against the rate limits.
    pub lease_over_bytes: u64,
    /// Life of a download slot lease in Redis; renewed while the download runs.
    pub lease_ttl: Duration,
    /// A client that reads nothing for this long is cut off (and frees its slot).
    pub write_idle_timeout: Duration,
}

/// A CA file read and checked at load time, so that `check-config` sees what `run` will use.
#[derive(Debug, Clone)]
pub struct RedisCa {
    pub file: PathBuf,
    /// The PEM text: at least one certificate.
    pub pem: String,
}

#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub max_bytes: u64,
    pub allowed_types: Vec<String>,
    pub staged_ttl: Duration,
    pub cleanup_interval: Duration,
    /// Staged uploads one user may hold at once (SPEC §3 "Upload").
    pub max_staged_per_user: u64,
    /// Staged bytes one user may hold at once.
    pub max_staged_bytes_per_user: u64,
    /// Uploads one user may run at once (`429`, scope `concurrency`).
    pub max_concurrent_per_user: u32,
}

/// `[backfill]` (SPEC §13): the app's messages table and the fields of each element of its
/// legacy attachment JSON. Table and columns are validated SQL identifiers (quoted when used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillConfig {
    pub messages_table: String,
    pub message_id_column: String,
    pub dialog_column: String,
    pub author_column: String,
    pub created_column: String,
    pub attachments_column: String,
    pub fields: LegacyFields,
    /// Messages read per page (one keyset query, one batch insert).
    pub batch_size: u32,
}

/// The JSON keys of one legacy attachment element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyFields {
    pub path: String,
    pub name: String,
    pub mime: String,
    pub size: String,
    pub id: String,
}

/// `[preview]` (SPEC §12): thumbnails and previews of images.
#[derive(Debug, Clone)]
pub struct PreviewConfig {
    pub enabled: bool,
    /// Longest side of `?variant=thumb`.
    pub thumb_px: u32,
    /// Longest side of `?variant=preview`.
    pub preview_px: u32,
    /// Sources declaring more pixels are refused from their header, before decoding.
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
    /// Threads that decode and encode; never Pingora's request threads.
    pub workers: usize,
    /// Jobs that may wait for a worker; past it a request answers `503 preview_busy`.
    pub queue: usize,
    /// `pdftocairo` when `preview.pdf` is on (found at load time), else `None`.
    pub pdftocairo: Option<PathBuf>,
    /// `ffmpeg` when `preview.video` is on.
    pub ffmpeg: Option<PathBuf>,
    /// Wall-clock (and CPU-time) limit of one PDF or video job's process.
    pub tool_timeout: Duration,
    /// Address-space limit of that process.
    pub tool_memory_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct InternalConfig {
    pub service_token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}
