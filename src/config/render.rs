//! The effective config printed back as TOML for `check-config`: every section and key with
//! the value in force (defaults included), secrets replaced by `"<redacted>"`.
//!
//! It is written by hand rather than serialized so that unset optional keys can show as
//! comments and so that no secret can reach the output through a forgotten derive.

use std::fmt::Write as _;
use std::path::Path;

use super::*;

const REDACTED: &str = "<redacted>";

/// The effective config as TOML, secrets redacted (database and Redis URLs keep everything
/// but their credentials).
pub fn render_redacted(cfg: &Config) -> String {
    let mut out = Out(String::new());
    let Config {
        server,
        app,
        auth,
        catalog,
        storage,
        http,
        limits,
        upload,
        preview,
        backfill,
        internal,
        log,
    } = cfg;

    out.section("server");
    out.string("listen", &server.listen.to_string());
    out.string("admin_listen", &server.admin_listen.to_string());
    out.int("threads", server.threads as u64);
    let proxies: Vec<String> = server
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    out.strings("trusted_proxies", &proxies);
    out.int("grace_period_s", server.grace_period.as_secs());
    out.int("header_timeout_ms", millis(server.header_timeout));
    out.path("tls_cert_file", server.tls_cert_file.as_deref());
    out.path("tls_key_file", server.tls_key_file.as_deref());
    out.path("upgrade_sock", Some(&server.upgrade_sock));
    out.path("pid_file", Some(&server.pid_file));

    out.section("app");
    out.string("upstream", &app.upstream);
    out.bool("tls", app.tls);
    out.opt_string("sni", app.sni.as_deref(), "the upstream host");
    out.int("connect_timeout_ms", millis(app.connect_timeout));
    out.int("read_timeout_ms", millis(app.read_timeout));
    out.int("write_timeout_ms", millis(app.write_timeout));

    out.section("auth");
    let algorithms: Vec<&str> = auth.algorithms.iter().map(|a| a.as_str()).collect();
    out.strings("algorithms", &algorithms);
    out.secret("hs_secret", auth.hs_secret.is_some());
    let keys: Vec<toml::Value> = auth
        .public_keys
        .iter()
        .map(|k| {
            let mut t = toml::Table::new();
            t.insert("kid".into(), k.kid.clone().into());
            t.insert("alg".into(), k.alg.as_str().into());
            t.insert("pem_file".into(), k.pem_file.display().to_string().into());
            toml::Value::Table(t)
        })
        .collect();
    out.value("public_keys", toml::Value::Array(keys));
    out.opt_string("issuer", auth.issuer.as_deref(), "not checked");
    out.opt_string("audience", auth.audience.as_deref(), "not checked");
    out.int("leeway_s", auth.leeway.as_secs());
    out.string("cookie", &auth.cookie);
    out.string("user_claim", &auth.user_claim);
    out.string("role_claim", &auth.role_claim);
    out.string("permissions_claim", &auth.permissions_claim);
    out.string("staff_permission", &auth.staff_permission);

    out.section("catalog");
    out.string("database_url", &redact_url(catalog.database_url.expose()));
    out.int("max_connections", catalog.max_connections.into());
    out.int("cache_ttl_s", catalog.cache_ttl.as_secs());
    out.string("dialog_table", &catalog.dialog_table);
    out.string("dialog_owner_column", &catalog.dialog_owner_column);
    out.string("migrations_schema", &catalog.migrations_schema);

    out.section("storage");
    match &storage.provider {
        StorageProvider::Fs { root } => {
            out.string("provider", "fs");
            out.string("root", &root.display().to_string());
        }
        StorageProvider::S3(s3) => {
            out.string("provider", "s3");
            out.string("endpoint", s3.endpoint.as_str());
            out.string("region", &s3.region);
            out.string("bucket", &s3.bucket);
            out.bool("path_style", s3.path_style);
            out.secret("access_key_id", true);
            out.secret("secret_access_key", true);
            out.path("ca_file", s3.ca_file.as_deref());
            match &s3.sse {
                None => out.unset("sse", "no server-side encryption header"),
                Some(ServerSideEncryption::Aes256) => out.string("sse", "AES256"),
                Some(ServerSideEncryption::Kms { key_id }) => {
                    out.string("sse", "aws:kms");
                    out.opt_string("sse_kms_key_id", key_id.as_deref(), "the bucket's default");
                }
            }
        }
        StorageProvider::Supabase(sb) => {
            out.string("provider", "supabase");
            out.string("url", sb.url.as_str());
            out.string("bucket", &sb.bucket);
            out.secret("service_key", true);
            out.path("ca_file", sb.ca_file.as_deref());
        }
    }
    out.int("connect_timeout_ms", millis(storage.connect_timeout));
    out.int("read_timeout_ms", millis(storage.read_timeout));
    out.int("signed_url_ttl_s", storage.signed_url_ttl.as_secs());
    out.int("offload_over_bytes", storage.offload_over_bytes);
    out.int("memory_cache_bytes", storage.memory_cache_bytes);
    out.int(
        "memory_cache_object_bytes",
        storage.memory_cache_object_bytes,
    );

    out.section("http");
    out.int("cache_max_age_s", http.cache_max_age_s);
    out.int("max_object_bytes", http.max_object_bytes);
    out.strings("inline_types", &http.inline_types);
    out.string(
        "cross_origin_resource_policy",
        &http.cross_origin_resource_policy,
    );
    out.strings("allowed_origins", &http.allowed_origins);

    out.section("limits");
    match &limits.redis_url {
        Some(url) => out.string("redis_url", &redact_url(url.expose())),
        None => out.unset("redis_url", "in-process limits"),
    }
    if !limits.redis_cluster_nodes.is_empty() {
        let nodes: Vec<String> = limits
            .redis_cluster_nodes
            .iter()
            .map(|n| redact_url(n.expose()))
            .collect();
        out.strings("redis_cluster_nodes", &nodes);
    }
    out.path(
        "redis_ca_file",
        limits.redis_ca.as_ref().map(|ca| ca.file.as_path()),
    );
    out.int("user_per_minute", limits.user_per_minute.into());
    out.int("ip_per_minute", limits.ip_per_minute.into());
    out.int("burst", limits.burst.into());
    out.int(
        "max_concurrent_per_user",
        limits.max_concurrent_per_user.into(),
    );
    let on_error = match limits.on_redis_error {
        OnRedisError::Local => "local",
        OnRedisError::Allow => "allow",
        OnRedisError::Deny => "deny",
    };
    out.string("on_redis_error", on_error);
    out.int(
        "redis_timeout_ms",
        limits
            .redis_timeout
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX),
    );
    out.int(
        "sync_ms",
        limits
            .sync_interval
            .as_millis()
            .try_into()
            .unwrap_or(u64::MAX),
    );
    out.int("sync_batch", limits.sync_batch.into());
    out.int("lease_over_bytes", limits.lease_over_bytes);
    out.int("lease_ttl_s", limits.lease_ttl.as_secs());
    out.int("write_idle_timeout_s", limits.write_idle_timeout.as_secs());

    out.section("upload");
    out.int("max_bytes", upload.max_bytes);
    out.strings("allowed_types", &upload.allowed_types);
    out.int("staged_ttl_min", upload.staged_ttl.as_secs() / 60);
    out.int("cleanup_interval_s", upload.cleanup_interval.as_secs());
    out.int("max_staged_per_user", upload.max_staged_per_user);
    out.int(
        "max_staged_bytes_per_user",
        upload.max_staged_bytes_per_user,
    );
    out.int(
        "max_concurrent_per_user",
        upload.max_concurrent_per_user.into(),
    );

    out.section("backfill");
    out.string("messages_table", &backfill.messages_table);
    out.string("message_id_column", &backfill.message_id_column);
    out.string("dialog_column", &backfill.dialog_column);
    out.string("author_column", &backfill.author_column);
    out.string("created_column", &backfill.created_column);
    out.string("attachments_column", &backfill.attachments_column);
    out.string("path_field", &backfill.fields.path);
    out.string("name_field", &backfill.fields.name);
    out.string("mime_field", &backfill.fields.mime);
    out.string("size_field", &backfill.fields.size);
    out.string("id_field", &backfill.fields.id);
    out.int("batch_size", backfill.batch_size.into());

    out.section("preview");
    out.bool("enabled", preview.enabled);
    out.int("thumb_px", preview.thumb_px.into());
    out.int("preview_px", preview.preview_px.into());
    out.int("max_source_pixels", preview.max_source_pixels);
    out.int("max_source_bytes", preview.max_source_bytes);
    out.int("workers", preview.workers as u64);
    out.int("queue", preview.queue as u64);
    out.bool("pdf", preview.pdftocairo.is_some());
    out.bool("video", preview.ffmpeg.is_some());
    for (key, tool) in [
        ("pdftocairo", &preview.pdftocairo),
        ("ffmpeg", &preview.ffmpeg),
    ] {
        match tool {
            Some(path) => out.string(key, &path.display().to_string()),
            None => out.unset(key, "off"),
        }
    }
    out.int("tool_timeout_s", preview.tool_timeout.as_secs());
    out.int("tool_memory_mb", preview.tool_memory_bytes >> 20);

    out.section("internal");
    out.secret("service_token", internal.service_token.is_some());

    out.section("log");
    out.string("level", &log.level);
    let format = match log.format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    };
    out.string("format", format);
    out.0
}

/// `scheme://user:password@host/...` -> `scheme://user:<redacted>@host/...`; a user-info
/// without `:` is redacted whole (some services put a token there), and so are query
/// parameters that name a password, secret or token.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| scheme_end + i);
    let authority = &url[scheme_end..authority_end];
    let mut out = url[..scheme_end].to_string();
    match authority.rfind('@') {
        Some(at) => {
            match authority[..at].split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:{REDACTED}")),
                None => out.push_str(REDACTED),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let rest = &url[authority_end..];
    let Some((path, query)) = rest.split_once('?') else {
        out.push_str(rest);
        return out;
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
            _ => param.to_string(),
        })
        .collect();
    out.push_str(path);
    out.push('?');
    out.push_str(&params.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word))
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct Out(String);

impl Out {
    fn section(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        let _ = writeln!(self.0, "[{name}]");
    }

    fn value(&mut self, key: &str, value: toml::Value) {
        let _ = writeln!(self.0, "{key} = {value}");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.value(key, value.into());
    }

    fn strings<S: AsRef<str>>(&mut self, key: &str, values: &[S]) {
        let list = values.iter().map(|v| v.as_ref().into()).collect();
        self.value(key, toml::Value::Array(list));
    }

    fn int(&mut self, key: &str, value: u64) {
        self.value(key, i64::try_from(value).unwrap_or(i64::MAX).into());
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.value(key, value.into());
    }

    fn opt_string(&mut self, key: &str, value: Option<&str>, meaning: &str) {
        match value {
            Some(v) => self.string(key, v),
            None => self.unset(key, meaning),
        }
    }

    fn path(&mut self, key: &str, value: Option<&Path>) {
        match value {
            Some(p) => self.string(key, &p.display().to_string()),
            None => self.unset(key, "none"),
        }
    }

    fn secret(&mut self, key: &str, set: bool) {
        if set {
            self.string(key, REDACTED);
        } else {
            self.unset(key, "none");
        }
    }

    fn unset(&mut self, key: &str, meaning: &str) {
        let _ = writeln!(self.0, "# {key}: not set ({meaning})");
    }
}
