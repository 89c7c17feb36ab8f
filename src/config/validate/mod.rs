//! Raw sections -> validated `Config`: defaults from SPEC section 10, secret sources resolved,
//! every value checked. Each check records a `Problem` and carries on with a fallback, so one
//! run reports everything that is wrong. Reading the TOML itself is `load`'s job.

mod auth;
mod endpoint;
mod preview;
mod s3;
mod storage;
mod supabase;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::checker::Checker;
use super::raw::*;
use super::*;

pub(super) fn config(raw: RawConfig, c: &mut Checker) -> Config {
    let server = server(raw.server, c);
    Config {
        server,
        app: app(raw.app, c),
        auth: auth::section(raw.auth, c),
        catalog: catalog(raw.catalog, c),
        storage: storage::section(raw.storage, c),
        http: http(raw.http, c),
        limits: limits(raw.limits, c),
        upload: upload(raw.upload, c),
        preview: preview::section(raw.preview, c),
        backfill: backfill(raw.backfill, c),
        internal: internal(raw.internal, c),
        log: log(raw.log, c),
    }
}

fn socket_addr(c: &mut Checker, key: &str, value: Option<String>, default: &str) -> SocketAddr {
    let fallback = default.parse().expect("default socket address");
    let Some(v) = value else {
        return fallback;
    };
    v.parse().unwrap_or_else(|_| {
        c.problem(key, format!("{v:?} is not a socket address (host:port)"));
        fallback
    })
}

fn server(raw: RawServer, c: &mut Checker) -> ServerConfig {
    let listen = socket_addr(c, "server.listen", raw.listen, "0.0.0.0:8080");
    let admin_listen = socket_addr(c, "server.admin_listen", raw.admin_listen, "127.0.0.1:9090");
    if listen == admin_listen && listen.port() != 0 {
        c.problem(
            "server.admin_listen",
            format!("{admin_listen} is also server.listen; the admin routes need their own"),
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = c.int("server.threads", raw.threads, cores as u64, 1, 1024) as usize;
    let mut trusted_proxies = Vec::new();
    for (i, entry) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        match entry.parse::<IpNet>() {
            Ok(net) => trusted_proxies.push(net),
            Err(e) => c.problem(format!("server.trusted_proxies[{i}]"), e),
        }
    }
    let grace_period = c.seconds("server.grace_period_s", raw.grace_period_s, 30, 0);
    let header_timeout = Duration::from_millis(c.int(
        "server.header_timeout_ms",
        raw.header_timeout_ms,
        20000,
        1,
        u64::MAX,
    ));
    let (tls_cert_file, tls_key_file) = match (raw.tls_cert_file, raw.tls_key_file) {
        (Some(cert), Some(key)) => (
            Some(c.existing_file("server.tls_cert_file", &cert)),
            Some(c.existing_file("server.tls_key_file", &key)),
        ),
        (None, None) => (None, None),
        (Some(_), None) => {
            c.problem(
                "server.tls_key_file",
                "must be set with server.tls_cert_file",
            );
            (None, None)
        }
        (None, Some(_)) => {
            c.problem(
                "server.tls_cert_file",
                "must be set with server.tls_key_file",
            );
            (None, None)
        }
    };
    let runtime_dir = runtime_dir(c);
    let upgrade_sock = match raw.upgrade_sock {
        Some(path) => c.path(&path),
        None => runtime_dir.join("upgrade.sock"),
    };
    // sun_path holds 108 bytes including the terminating NUL (unix(7)).
    if upgrade_sock.as_os_str().len() > 107 {
        c.problem(
            "server.upgrade_sock",
            format!("{upgrade_sock:?} is longer than a unix socket path may be (107 bytes)"),
        );
    }
    let pid_file = match raw.pid_file {
        Some(path) => c.path(&path),
        None => runtime_dir.join("gateway.pid"),
    };
    ServerConfig {
        listen,
        admin_listen,
        threads,
        trusted_proxies,
        grace_period,
        header_timeout,
        tls_cert_file,
        tls_key_file,
        upgrade_sock,
        pid_file,
    }
}

/// Where the upgrade socket and the PID file live by default: systemd's `RuntimeDirectory=`
/// (it exports `RUNTIME_DIRECTORY`, the first entry when several are listed), else `data/run`
/// under the working directory.
fn runtime_dir(c: &mut Checker) -> PathBuf {
    match (c.env)("RUNTIME_DIRECTORY") {
        Some(dirs) if !dirs.is_empty() => PathBuf::from(dirs.split(':').next().unwrap_or_default()),
        _ => c.path(Path::new("data/run")),
    }
}

fn app(raw: RawApp, c: &mut Checker) -> AppConfig {
    let upstream = raw.upstream.unwrap_or_else(|| "127.0.0.1:3000".to_string());
    if !is_host_port(&upstream) {
        c.problem(
            "app.upstream",
            format!("{upstream:?} is not host:port (for example \"127.0.0.1:3000\")"),
        );
    }
    let ms = |c: &mut Checker, key: &str, value: Option<i64>, default: u64| {
        Duration::from_millis(c.int(key, value, default, 1, u64::MAX))
    };
    AppConfig {
        upstream,
        tls: raw.tls.unwrap_or(false),
        sni: c.optional_non_empty("app.sni", raw.sni),
        connect_timeout: ms(c, "app.connect_timeout_ms", raw.connect_timeout_ms, 2000),
        // A page of the app may take a while to render; a hung app must not hold a client.
        read_timeout: ms(c, "app.read_timeout_ms", raw.read_timeout_ms, 30000),
        write_timeout: ms(c, "app.write_timeout_ms", raw.write_timeout_ms, 30000),
    }
}

/// `10.0.0.5:3000`, `[::1]:3000` or `app.internal:3000`: a host and a non-zero port.
fn is_host_port(s: &str) -> bool {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return addr.port() != 0;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-');
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// Outside the app's schema, so that Prisma, which compares only the schema it manages, sees
/// no table it does not know (`migrate dev` would report drift and offer a reset).
pub const DEFAULT_MIGRATIONS_SCHEMA: &str = "attachment_gateway";

fn catalog(raw: RawCatalog, c: &mut Checker) -> CatalogConfig {
    let configured = c.secret(
        "catalog.database_url",
        raw.database_url,
        raw.database_url_env,
        raw.database_url_file,
    );
    // DATABASE_URL wins over the file, as with every other sqlx tool the operator runs.
    let from_env = (c.env)("DATABASE_URL").filter(|v| !v.is_empty());
    let (key, url) = match (from_env, configured) {
        (Some(url), _) => ("DATABASE_URL", url),
        (None, Some(url)) => ("catalog.database_url", url.expose().to_string()),
        (None, None) => (
            "catalog.database_url",
            "sqlite://data/gateway.db".to_string(),
        ),
    };
    let kind = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        DatabaseKind::Postgres
    } else if url.starts_with("sqlite:") {
        DatabaseKind::Sqlite
    } else {
        // Only the scheme is quoted: the rest of the URL may hold a password.
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        let scheme = if !scheme.is_empty() && scheme.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            format!("scheme {scheme:?} is not supported")
        } else {
            "the value is not a database URL".to_string()
        };
        c.problem(
            key,
            format!("{scheme} (expected postgres://, postgresql:// or sqlite:)"),
        );
        DatabaseKind::Sqlite
    };
    let url = match kind {
        DatabaseKind::Sqlite => sqlite_url(c, &url),
        DatabaseKind::Postgres => url,
    };
    let dialog_table = identifier(c, "catalog.dialog_table", raw.dialog_table, "SupportDialog");
    let dialog_owner_column = identifier(
        c,
        "catalog.dialog_owner_column",
        raw.dialog_owner_column,
        "userId",
    );
    let migrations_schema = identifier(
        c,
        "catalog.migrations_schema",
        raw.migrations_schema,
        DEFAULT_MIGRATIONS_SCHEMA,
    );
    CatalogConfig {
        database_url: Secret::new(url),
        kind,
        max_connections: c.u32("catalog.max_connections", raw.max_connections, 10),
        cache_ttl: c.seconds("catalog.cache_ttl_s", raw.cache_ttl_s, 30, 0),
        dialog_table,
        dialog_owner_column,
        migrations_schema,
    }
}

fn backfill(raw: RawBackfill, c: &mut Checker) -> BackfillConfig {
    let id = |c: &mut Checker, key: &str, value, default| {
        identifier(c, &format!("backfill.{key}"), value, default)
    };
    BackfillConfig {
        messages_table: id(c, "messages_table", raw.messages_table, "SupportMessage"),
        message_id_column: id(c, "message_id_column", raw.message_id_column, "id"),
        dialog_column: id(c, "dialog_column", raw.dialog_column, "dialogId"),
        author_column: id(c, "author_column", raw.author_column, "userId"),
        created_column: id(c, "created_column", raw.created_column, "createdAt"),
        attachments_column: id(
            c,
            "attachments_column",
            raw.attachments_column,
            "attachments",
        ),
        fields: LegacyFields {
            path: c.non_empty("backfill.path_field", raw.path_field, "storagePath"),
            name: c.non_empty("backfill.name_field", raw.name_field, "originalName"),
            mime: c.non_empty("backfill.mime_field", raw.mime_field, "mimeType"),
            size: c.non_empty("backfill.size_field", raw.size_field, "sizeBytes"),
            id: c.non_empty("backfill.id_field", raw.id_field, "id"),
        },
        batch_size: c.int("backfill.batch_size", raw.batch_size, 1000, 1, 10_000) as u32,
    }
}

/// A relative SQLite path follows the same rule as every other path (see `load`).
fn sqlite_url(c: &Checker, url: &str) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if c.paths_as_written() || rest.starts_with(':') || rest.starts_with('/') {
        return url.to_string();
    }
    format!("sqlite://{}", c.path(Path::new(rest)).display())
}

/// A SQL identifier the catalog quotes into its query: `[A-Za-z_][A-Za-z0-9_]{0,62}`.
fn identifier(c: &mut Checker, key: &str, value: Option<String>, default: &str) -> String {
    let Some(v) = value else {
        return default.to_string();
    };
    let mut chars = v.chars();
    let first_ok = chars
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_');
    if first_ok && v.len() <= 63 && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        v
    } else {
        c.problem(
            key,
            format!("{v:?} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]{{0,62}})"),
        );
        default.to_string()
    }
}

fn default_allowed_types() -> Vec<String> {
    [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "video/mp4",
        "video/webm",
        "audio/mpeg",
        "audio/ogg",
        "application/zip",
    ]
    .map(String::from)
    .to_vec()
}

/// `type/subtype` or `type/*`, lower-case, RFC 6838 section 4.2 characters.
fn mime_list(c: &mut Checker, key: &str, value: Option<Vec<String>>, inline: bool) -> Vec<String> {
    let Some(list) = value else {
        return if inline {
            crate::http::disposition::default_inline_types()
        } else {
            default_allowed_types()
        };
    };
    if list.is_empty() && !inline {
        c.problem(
            key,
            "must list at least one type (an empty list refuses every upload)",
        );
    }
    let restricted = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    let mut out = Vec::new();
    for (i, entry) in list.into_iter().enumerate() {
        let valid = match entry.split_once('/') {
            Some((ty, "*")) => restricted(ty) || ty == "*",
            Some((ty, sub)) => restricted(ty) && restricted(sub),
            None => false,
        };
        if !valid {
            c.problem(
                format!("{key}[{i}]"),
                format!("{entry:?} is not a lower-case MIME type (type/subtype or type/*)"),
            );
        } else if inline && !shown_inline(&entry) {
            c.problem(
                format!("{key}[{i}]"),
                format!("{entry:?} is never shown inline: a browser could run script in it"),
            );
        } else if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// Whether the response policy would honour `entry` in `http.inline_types`: it refuses
/// active types (SVG, HTML, XML, script) whatever the list says, so listing one is a mistake.
fn shown_inline(entry: &str) -> bool {
    let sample = match entry.split_once('/') {
        Some(("*", "*")) => "application/octet-stream".to_string(),
        Some((ty, "*")) => format!("{ty}/x-sample"),
        _ => entry.to_string(),
    };
    crate::http::disposition::is_inline(&sample, &[entry.to_string()])
}

fn http(raw: RawHttp, c: &mut Checker) -> HttpConfig {
    let corp = [
        ("same-origin", "same-origin"),
        ("same-site", "same-site"),
        ("cross-origin", "cross-origin"),
    ];
    HttpConfig {
        cache_max_age_s: c.int(
            "http.cache_max_age_s",
            raw.cache_max_age_s,
            300,
            0,
            u64::MAX,
        ),
        max_object_bytes: c.int(
            "http.max_object_bytes",
            raw.max_object_bytes,
            2 << 30,
            1,
            u64::MAX,
        ),
        inline_types: mime_list(c, "http.inline_types", raw.inline_types, true),
        cross_origin_resource_policy: c
            .choice(
                "http.cross_origin_resource_policy",
                raw.cross_origin_resource_policy,
                &corp,
                "same-origin",
            )
            .to_string(),
        allowed_origins: origins(c, raw.allowed_origins.unwrap_or_default()),
    }
}

/// `http.allowed_origins`: each a serialized `http(s)://host[:port]` origin, kept normalized.
fn origins(c: &mut Checker, list: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        match crate::http::origin::normalize(entry) {
            Some(origin) => out.push(origin),
            None => c.problem(
                format!("http.allowed_origins[{i}]"),
                format!("{entry:?} is not an origin like \"https://chat.example.com\""),
            ),
        }
    }
    out
}

fn limits(raw: RawLimits, c: &mut Checker) -> LimitsConfig {
    let redis_url = c.secret(
        "limits.redis_url",
        raw.redis_url,
        raw.redis_url_env,
        raw.redis_url_file,
    );
    if let Some(url) = &redis_url {
        if !usable_redis_url(url, &["redis", "rediss", "redis+unix", "unix"]) {
            // The URL may carry a password: describe it, never echo it.
            c.problem(
                "limits.redis_url",
                "is not a redis://, rediss:// or redis+unix:// URL",
            );
        }
    }
    let redis_cluster_nodes = raw.redis_cluster_nodes.unwrap_or_default();
    for (i, node) in redis_cluster_nodes.iter().enumerate() {
        if !usable_redis_url(node, &["redis", "rediss"]) {
            c.problem(
                format!("limits.redis_cluster_nodes[{i}]"),
                "is not a redis:// or rediss:// URL",
            );
        }
    }
    if redis_url.is_some() && !redis_cluster_nodes.is_empty() {
        c.problem(
            "limits.redis_cluster_nodes",
            "is set together with limits.redis_url: choose one",
        );
    }
    let tls_url = redis_url
        .iter()
        .chain(&redis_cluster_nodes)
        .any(|u| u.expose().starts_with("rediss://"));
    let redis_ca = raw
        .redis_ca_file
        .and_then(|file| redis_ca(c, file, tls_url));
    let on_error = [
        ("local", OnRedisError::Local),
        ("allow", OnRedisError::Allow),
        ("deny", OnRedisError::Deny),
    ];
    let burst = c.u32("limits.burst", raw.burst, 200);
    LimitsConfig {
        redis_url,
        redis_cluster_nodes,
        redis_ca,
        user_per_minute: c.u32("limits.user_per_minute", raw.user_per_minute, 600),
        ip_per_minute: c.u32("limits.ip_per_minute", raw.ip_per_minute, 1200),
        burst,
        max_concurrent_per_user: c.u32(
            "limits.max_concurrent_per_user",
            raw.max_concurrent_per_user,
            4,
        ),
        on_redis_error: c.choice(
            "limits.on_redis_error",
            raw.on_redis_error,
            &on_error,
            OnRedisError::Local,
        ),
        redis_timeout: Duration::from_millis(c.int(
            "limits.redis_timeout_ms",
            raw.redis_timeout_ms,
            50,
            1,
            60_000,
        )),
        sync_interval: Duration::from_millis(c.int("limits.sync_ms", raw.sync_ms, 50, 0, 10_000)),
        // An eighth of the burst: a busy key flushes every few dozen requests, not every few,
        // and N instances together overshoot by at most (N - 1)/8 of the burst.
        sync_batch: c.u32("limits.sync_batch", raw.sync_batch, (burst / 8).max(1)),
        lease_over_bytes: c.int(
            "limits.lease_over_bytes",
            raw.lease_over_bytes,
            1024 * 1024,
            0,
            u64::MAX,
        ),
        lease_ttl: c.seconds("limits.lease_ttl_s", raw.lease_ttl_s, 30, 1),
        write_idle_timeout: c.seconds(
            "limits.write_idle_timeout_s",
            raw.write_idle_timeout_s,
            30,
            1,
        ),
    }
}

/// A URL of one of `schemes` that the client's own parser accepts, so that a URL this binary
/// cannot use (a TLS scheme without TLS support built in, say) fails here and not at start.
fn usable_redis_url(url: &Secret, schemes: &[&str]) -> bool {
    url::Url::parse(url.expose()).is_ok_and(|u| schemes.contains(&u.scheme()))
        && redis::IntoConnectionInfo::into_connection_info(url.expose()).is_ok()
}

/// `limits.redis_ca_file`: readable, at least one PEM certificate, and only beside a
/// `rediss://` URL (over plain TCP it would be silently ignored).
fn redis_ca(c: &mut Checker, file: PathBuf, tls: bool) -> Option<RedisCa> {
    const KEY: &str = "limits.redis_ca_file";
    if !tls {
        c.problem(
            KEY,
            "applies only to rediss:// URLs (limits.redis_url or redis_cluster_nodes)",
        );
        return None;
    }
    let pem = c.read_file(KEY, &file)?;
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>();
    match certs {
        Ok(certs) if !certs.is_empty() => Some(RedisCa {
            file: c.path(&file),
            pem,
        }),
        _ => {
            c.problem(KEY, format!("{file:?} holds no PEM certificate"));
            None
        }
    }
}

fn upload(raw: RawUpload, c: &mut Checker) -> UploadConfig {
    UploadConfig {
        max_bytes: c.int("upload.max_bytes", raw.max_bytes, 25 << 20, 1, u64::MAX),
        allowed_types: mime_list(c, "upload.allowed_types", raw.allowed_types, false),
        staged_ttl: Duration::from_secs(
            60 * c.int("upload.staged_ttl_min", raw.staged_ttl_min, 60, 1, 1 << 32),
        ),
        cleanup_interval: c.seconds("upload.cleanup_interval_s", raw.cleanup_interval_s, 300, 1),
        max_staged_per_user: c.int(
            "upload.max_staged_per_user",
            raw.max_staged_per_user,
            100,
            1,
            u64::MAX,
        ),
        max_staged_bytes_per_user: c.int(
            "upload.max_staged_bytes_per_user",
            raw.max_staged_bytes_per_user,
            256 << 20,
            1,
            u64::MAX,
        ),
        max_concurrent_per_user: c.int(
            "upload.max_concurrent_per_user",
            raw.max_concurrent_per_user,
            4,
            1,
            1 << 16,
        ) as u32,
    }
}

fn internal(raw: RawInternal, c: &mut Checker) -> InternalConfig {
    let service_token = c.secret(
        "internal.service_token",
        raw.service_token,
        raw.service_token_env,
        raw.service_token_file,
    );
    if let Some(token) = &service_token {
        if token.expose().len() < 16 {
            c.problem(
                "internal.service_token",
                format!(
                    "is only {} bytes; use at least 32 random bytes",
                    token.expose().len()
                ),
            );
        }
    }
    InternalConfig { service_token }
}

fn log(raw: RawLog, c: &mut Checker) -> LogConfig {
    let level = raw.level.unwrap_or_else(|| "info".to_string());
    let plain = ["trace", "debug", "info", "warn", "error", "off"];
    // A bare word would silently become a target filter in `EnvFilter` ("verbose" = log the
    // `verbose` crate); only directives with `=` or `,` go to it.
    let valid = if level.contains(['=', ',']) {
        tracing_subscriber::EnvFilter::try_new(&level).is_ok()
    } else {
        plain.contains(&level.as_str())
    };
    if !valid {
        c.problem(
            "log.level",
            format!("{level:?} is not a level (trace, debug, info, warn, error, off) or a filter directive"),
        );
    }
    let formats = [("json", LogFormat::Json), ("text", LogFormat::Text)];
    LogConfig {
        level,
        format: c.choice("log.format", raw.format, &formats, LogFormat::Json),
    }
}
