//! Tests of loading, validation and redacted rendering, on the shipped files and on small
//! documents; environment variables come through the `env` closure, files from a scratch dir.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::raw::RawConfig;
use super::*;

const EXAMPLE_TOML: &str = include_str!("../../conf/gateway.example.toml");
const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEApMtr32mSvLMlZiXuLVPAj1qnqwZtkdqvfrW+lg1qtOI=
-----END PUBLIC KEY-----
";
const EC_P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElE32fvphrbaQ1ss/M6VdyoTai6Ko
UNpfS0iXjCAzsdHQCy+8IJsZ68yFJOB1OQUefDfYDeHu0a+KwlKD7iJcDg==
-----END PUBLIC KEY-----
";
const HS_SECRET: &str = "test-hs-secret-0123456789abcdef0123456789";

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    from_toml_str(text, Path::new(""), &|_| None)
}

/// A valid document: `text` plus the HS secret every HS256 config needs.
fn with_secret(text: &str) -> String {
    let secret = format!("hs_secret = \"{HS_SECRET}\"\n");
    match text.split_once("[auth]\n") {
        Some((before, after)) => format!("{before}[auth]\n{secret}{after}"),
        None => format!("{text}\n[auth]\n{secret}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

fn assert_has(problems: &[String], expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "no problem containing {expected:?} in {problems:#?}"
    );
}

#[test]
fn demo_config_loads() {
    let cfg = load_demo().expect("demo config");
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(cfg.catalog.kind, DatabaseKind::Sqlite);
    assert_eq!(
        cfg.catalog.database_url.expose(),
        "sqlite://data/demo/gateway.db"
    );
    assert!(
        matches!(&cfg.storage.provider, StorageProvider::Fs { root } if root == Path::new("data/demo/bucket"))
    );
    assert_eq!(cfg.auth.algorithms, vec![JwtAlgorithm::HS256]);
    assert!(cfg.auth.hs_secret.is_some());
    assert!(cfg.limits.redis_url.is_none());
}

#[test]
fn example_config_loads_with_its_secrets_supplied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s3_secret_access_key"), "s3-secret-value\n").unwrap();
    // The example names absolute secret paths; point them at the scratch directory.
    let text = EXAMPLE_TOML.replace("/run/secrets/", &format!("{}/", dir.path().display()));
    let env = env_of(&[
        ("ATTACHMENT_GATEWAY_JWT_SECRET", HS_SECRET),
        (
            "ATTACHMENT_GATEWAY_DATABASE_URL",
            "postgres://gw:pw@db.internal/gateway",
        ),
        ("ATTACHMENT_GATEWAY_S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        (
            "ATTACHMENT_GATEWAY_REDIS_URL",
            "redis://:pw@redis.internal:6379/0",
        ),
        (
            "ATTACHMENT_GATEWAY_SERVICE_TOKEN",
            "service-token-0123456789abcdef",
        ),
    ]);
    let cfg = from_toml_str(&text, Path::new(""), &env).expect("example config");
    assert_eq!(cfg.catalog.kind, DatabaseKind::Postgres);
    let StorageProvider::S3(s3) = &cfg.storage.provider else {
        panic!("expected s3");
    };
    assert_eq!(s3.bucket, "support-chat-attachments");
    assert_eq!(s3.access_key_id.expose(), "AKIDEXAMPLE");
    // One trailing newline of a secret file is dropped.
    assert_eq!(s3.secret_access_key.expose(), "s3-secret-value");
    assert_eq!(cfg.server.trusted_proxies.len(), 2);
    assert!(cfg.limits.redis_url.is_some());
    assert!(cfg.internal.service_token.is_some());
}

#[test]
fn every_default_matches_the_spec() {
    let cfg = parse(&with_secret("")).expect("defaults");
    let s = &cfg.server;
    assert_eq!(s.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(s.admin_listen.to_string(), "127.0.0.1:9090");
    assert!(s.threads >= 1);
    assert!(s.trusted_proxies.is_empty());
    assert_eq!(s.grace_period, Duration::from_secs(30));
    assert!(s.tls_cert_file.is_none() && s.tls_key_file.is_none());
    assert_eq!(cfg.app.upstream, "127.0.0.1:3000");
    assert!(!cfg.app.tls);
    assert!(cfg.app.sni.is_none());
    let a = &cfg.auth;
    assert_eq!(a.algorithms, vec![JwtAlgorithm::HS256]);
    assert_eq!(a.leeway, Duration::from_secs(30));
    assert_eq!(
        (
            a.cookie.as_str(),
            a.user_claim.as_str(),
            a.role_claim.as_str(),
            a.permissions_claim.as_str(),
            a.staff_permission.as_str()
        ),
        ("session", "sub", "role", "permissions", "support_chat:read")
    );
    assert!(a.issuer.is_none() && a.audience.is_none() && a.public_keys.is_empty());
    let c = &cfg.catalog;
    assert_eq!(c.database_url.expose(), "sqlite://data/gateway.db");
    assert_eq!(c.kind, DatabaseKind::Sqlite);
    assert_eq!(c.max_connections, 10);
    assert_eq!(c.cache_ttl, Duration::from_secs(30));
    assert_eq!(
        (c.dialog_table.as_str(), c.dialog_owner_column.as_str()),
        ("SupportDialog", "userId")
    );
    let st = &cfg.storage;
    assert!(
        matches!(&st.provider, StorageProvider::Fs { root } if root == Path::new("data/bucket"))
    );
    assert_eq!(st.connect_timeout, Duration::from_millis(2000));
    assert_eq!(st.read_timeout, Duration::from_millis(15000));
    assert_eq!(st.signed_url_ttl, Duration::from_secs(60));
    assert_eq!(st.offload_over_bytes, 0);
    let h = &cfg.http;
    assert_eq!(h.cache_max_age_s, 300);
    assert_eq!(h.max_object_bytes, 2 * 1024 * 1024 * 1024);
    assert!(h.inline_types.contains(&"image/png".to_string()));
    assert!(!h.inline_types.iter().any(|t| t.contains("svg")));
    assert_eq!(h.cross_origin_resource_policy, "same-origin");
    assert!(h.allowed_origins.is_empty());
    let l = &cfg.limits;
    assert!(l.redis_url.is_none());
    assert_eq!(
        (l.user_per_minute, l.ip_per_minute, l.burst),
        (600, 1200, 200)
    );
    assert_eq!(l.max_concurrent_per_user, 4);
    assert_eq!(l.on_redis_error, OnRedisError::Local);
    let u = &cfg.upload;
    assert_eq!(u.max_bytes, 25 * 1024 * 1024);
    assert!(u.allowed_types.contains(&"application/pdf".to_string()));
    assert_eq!(u.staged_ttl, Duration::from_secs(3600));
    assert_eq!(u.cleanup_interval, Duration::from_secs(300));
    assert!(cfg.internal.service_token.is_none());
    assert_eq!(cfg.log.level, "info");
    assert_eq!(cfg.log.format, LogFormat::Json);
}

#[test]
fn unknown_keys_and_sections_are_rejected_by_name() {
    let problems = errors(&with_secret(
        "[server]\nlisten = \"127.0.0.1:1\"\nfoo = 1\n",
    ));
    assert_has(&problems, "server.foo: unknown field `foo`");
    let problems = errors(&with_secret("[sever]\nlisten = \"127.0.0.1:1\"\n"));
    assert_has(&problems, "sever: unknown section `sever`");
    let problems = errors(&with_secret("listen = \"127.0.0.1:1\"\n"));
    assert_has(&problems, "listen: unknown key `listen`");
    let problems = errors(
        "[auth]\nalgorithms = [\"EdDSA\"]\npublic_keys = [{ kid = \"a\", alg = \"EdDSA\", pem_file = \"k.pem\" }, { kid = \"b\", algo = \"EdDSA\" }]\n",
    );
    assert_has(&problems, "auth.public_keys[1].algo: unknown field `algo`");
}

#[test]
fn type_errors_name_the_key() {
    let problems = errors(&with_secret("[server]\nthreads = \"four\"\n"));
    assert_has(&problems, "server.threads: invalid type: string \"four\"");
}

#[test]
fn syntax_errors_print_on_one_line_with_their_position() {
    let err = parse("[server]\nlisten = \"unterminated\n").unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let line = err.to_string();
    assert!(line.starts_with("TOML syntax (line 2, column "), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn several_problems_are_reported_together() {
    let problems = errors(
        r#"
[server]
listen = "0.0.0.0:99999"
trusted_proxies = ["10.0.0.0/33"]
[storage]
provider = "ftp"
[limits]
on_redis_error = "panic"
burst = 0
[log]
format = "xml"
[typo]
"#,
    );
    for expected in [
        "server.listen:",
        "server.trusted_proxies[0]:",
        "storage.provider:",
        "limits.on_redis_error:",
        "limits.burst:",
        "log.format:",
        "typo:",
        "auth.hs_secret:",
    ] {
        assert_has(&problems, expected);
    }
}

#[test]
fn problems_of_a_broken_section_do_not_hide_other_sections() {
    let problems = errors("[server]\nbogus = 1\n[log]\nformat = \"xml\"\n");
    assert_has(&problems, "server.bogus");
    assert_has(&problems, "log.format");
    // [auth] parsed fine, so its own missing secret is reported too.
    assert_has(&problems, "auth.hs_secret");
}

#[test]
fn bad_socket_address_names_the_key_and_value() {
    let problems = errors(&with_secret("[server]\nlisten = \"0.0.0.0:99999\"\n"));
    assert_eq!(
        problems,
        vec![r#"server.listen: "0.0.0.0:99999" is not a socket address (host:port)"#]
    );
    let problems = errors(&with_secret("[server]\nadmin_listen = \"localhost\"\n"));
    assert_has(
        &problems,
        r#"server.admin_listen: "localhost" is not a socket"#,
    );
}

#[test]
fn bad_cidr_names_the_entry() {
    for (entry, expected) in [
        ("10.0.0.0/33", "server.trusted_proxies[1]: \"10.0.0.0/33\""),
        ("10.0.0/8", "server.trusted_proxies[1]: \"10.0.0/8\""),
        ("fd00::/129", "server.trusted_proxies[1]: \"fd00::/129\""),
        ("proxy.local", "server.trusted_proxies[1]: \"proxy.local\""),
        ("10.0.0.0/", "server.trusted_proxies[1]: \"10.0.0.0/\""),
    ] {
        let text = format!("[server]\ntrusted_proxies = [\"127.0.0.1\", \"{entry}\"]\n");
        assert_has(&errors(&with_secret(&text)), expected);
    }
}

#[test]
fn database_url_from_the_environment_wins() {
    let text = with_secret("[catalog]\ndatabase_url = \"sqlite://data/other.db\"\n");
    let env = env_of(&[("DATABASE_URL", "postgresql://gw@db/gateway")]);
    let cfg = from_toml_str(&text, Path::new(""), &env).unwrap();
    assert_eq!(
        cfg.catalog.database_url.expose(),
        "postgresql://gw@db/gateway"
    );
    assert_eq!(cfg.catalog.kind, DatabaseKind::Postgres);

    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.catalog.database_url.expose(), "sqlite://data/other.db");
}

#[test]
fn unsupported_database_schemes_are_refused_without_echoing_the_url() {
    let env = env_of(&[("DATABASE_URL", "mysql://gw:Hunter2Password@db/gateway")]);
    let err = from_toml_str(&with_secret(""), Path::new(""), &env).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("DATABASE_URL: scheme \"mysql\""), "{text}");
    assert!(!text.contains("Hunter2Password"));
}

#[test]
fn sql_identifiers_are_checked() {
    for bad in ["Support Dialog", "1table", "a\"b", "", &"x".repeat(64)] {
        let text = format!("[catalog]\ndialog_table = {bad:?}\n");
        assert_has(&errors(&with_secret(&text)), "catalog.dialog_table:");
    }
    let cfg = parse(&with_secret(
        "[catalog]\ndialog_owner_column = \"owner_id\"\n",
    ))
    .unwrap();
    assert_eq!(cfg.catalog.dialog_owner_column, "owner_id");
}

#[test]
fn two_sources_of_one_secret_are_rejected() {
    let text = "[auth]\nhs_secret = \"0123456789abcdef0123\"\nhs_secret_env = \"JWT\"\n";
    let env = env_of(&[("JWT", HS_SECRET)]);
    let err = from_toml_str(text, Path::new(""), &env).unwrap_err();
    assert_eq!(
        err.to_string(),
        "auth.hs_secret: give only one of `hs_secret`, `hs_secret_env` and `hs_secret_file`"
    );
}

#[test]
fn secrets_come_from_env_and_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "service-token-from-file-0123\r\n").unwrap();
    let text = "[auth]\nhs_secret_env = \"JWT\"\n[internal]\nservice_token_file = \"token\"\n";
    let env = env_of(&[("JWT", HS_SECRET)]);
    let cfg = from_toml_str(text, dir.path(), &env).unwrap();
    assert_eq!(cfg.auth.hs_secret.unwrap().expose(), HS_SECRET);
    assert_eq!(
        cfg.internal.service_token.unwrap().expose(),
        "service-token-from-file-0123"
    );

    let problems: Vec<String> = from_toml_str(text, dir.path(), &|_| None)
        .unwrap_err()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_has(
        &problems,
        "auth.hs_secret_env: environment variable \"JWT\" is not set",
    );
    let missing = "[auth]\nhs_secret_file = \"nope\"\n";
    assert_has(
        &errors(missing),
        "auth.hs_secret_file: cannot read \"nope\"",
    );
}

#[test]
fn short_hmac_secrets_are_refused() {
    let problems = errors("[auth]\nhs_secret = \"short\"\n");
    assert_has(&problems, "auth.hs_secret: is only 5 bytes");
}

#[test]
fn secret_values_never_appear_in_errors() {
    const MARK: &str = "LeakCanary";
    let cases = [
        format!("[auth]\nhs_secret = \"{MARK}\"\n"),
        "[auth]\nhs_secret = 4242424242\n".to_string(),
        format!("[auth]\nhs_secret = \"{MARK}{MARK}{MARK}\"\n[limits]\nredis_url = \"http://:{MARK}@r\"\n"),
        format!("[auth]\nhs_secret = \"{MARK}{MARK}{MARK}\"\n[catalog]\ndatabase_url = \"mysql://u:{MARK}@h/d\"\n"),
        format!("[auth]\nhs_secret = \"{MARK}{MARK}{MARK}\"\n[internal]\nservice_token = \"{MARK}\"\n"),
        format!("[auth]\nhs_secret = \"{MARK}{MARK}{MARK}\"\nhs_secret_env = \"X\"\n"),
    ];
    for text in cases {
        let out = errors(&text).join("\n");
        assert!(!out.contains(MARK), "{out}");
        assert!(!out.contains("4242424242"), "{out}");
    }
}

#[test]
fn render_redacted_hides_every_secret_and_keeps_the_contract_keys() {
    const MARK: &str = "LeakCanary";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ed.pem"), ED25519_PEM).unwrap();
    let text = format!(
        r#"
[auth]
algorithms = ["HS512", "EdDSA"]
hs_secret = "{MARK}-hs-0123456789abcdef"
public_keys = [{{ kid = "k1", alg = "EdDSA", pem_file = "ed.pem" }}]
[catalog]
database_url = "postgres://gw:{MARK}@db:5432/gateway?sslmode=require&password={MARK}"
[storage]
provider = "s3"
endpoint = "http://127.0.0.1:8333"
bucket = "attachments"
path_style = true
access_key_id = "{MARK}-akid"
secret_access_key = "{MARK}-secret"
[limits]
redis_url = "redis://:{MARK}@127.0.0.1:6379/0"
[internal]
service_token = "{MARK}-token-0123456789"
"#
    );
    let cfg = from_toml_str(&text, dir.path(), &|_| None).expect("valid");
    let rendered = render_redacted(&cfg);
    assert!(!rendered.contains(MARK), "{rendered}");
    for line in [
        "database_url = \"postgres://gw:<redacted>@db:5432/gateway?sslmode=require&password=<redacted>\"",
        "redis_url = \"redis://:<redacted>@127.0.0.1:6379/0\"",
        "hs_secret = \"<redacted>\"",
        "access_key_id = \"<redacted>\"",
        "secret_access_key = \"<redacted>\"",
        "service_token = \"<redacted>\"",
        "path_style = true",
        "listen = \"0.0.0.0:8080\"",
    ] {
        assert!(rendered.contains(line), "missing {line:?} in\n{rendered}");
    }
    // Every key printed is a key the file format accepts.
    let reparsed: RawConfig = toml::from_str(&rendered).expect("rendered TOML is valid");
    assert_eq!(reparsed.storage.bucket.as_deref(), Some("attachments"));
    assert!(format!("{cfg:?}").find(MARK).is_none());
}

#[test]
fn rendered_demo_config_is_complete() {
    let rendered = render_redacted(&load_demo().unwrap());
    for section in SECTION_NAMES {
        assert!(rendered.contains(&format!("[{section}]\n")), "{section}");
    }
    let reparsed: toml::Table = rendered.parse().unwrap();
    let keys = |s: &str| reparsed[s].as_table().unwrap().len();
    // listen, admin_listen, threads, trusted_proxies, grace_period_s, header_timeout_ms,
    // upgrade_sock, pid_file
    assert_eq!(keys("server"), 8, "{rendered}");
    assert_eq!(keys("limits"), 11);
    toml::from_str::<RawConfig>(&rendered).unwrap();
}

const SECTION_NAMES: [&str; 11] = [
    "server", "app", "auth", "catalog", "storage", "http", "limits", "upload", "preview",
    "internal", "log",
];

#[test]
fn public_keys_are_read_and_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ed.pem"), ED25519_PEM).unwrap();
    std::fs::write(dir.path().join("ec.pem"), EC_P256_PEM).unwrap();
    let ok = r#"[auth]
algorithms = ["EdDSA", "ES256"]
public_keys = [
  { kid = "ed", alg = "EdDSA", pem_file = "ed.pem" },
  { kid = "ec", alg = "ES256", pem_file = "ec.pem" },
]
"#;
    let cfg = from_toml_str(ok, dir.path(), &|_| None).unwrap();
    assert_eq!(cfg.auth.public_keys.len(), 2);
    assert_eq!(cfg.auth.public_keys[0].pem, ED25519_PEM);
    assert!(cfg.auth.hs_secret.is_none());

    let bad = r#"[auth]
algorithms = ["RS256", "PS256", "EdDSA"]
public_keys = [
  { kid = "a", alg = "RS256", pem_file = "ed.pem" },
  { kid = "a", alg = "EdDSA", pem_file = "ed.pem" },
  { kid = "c", alg = "ES256", pem_file = "missing.pem" },
]
"#;
    let problems: Vec<String> = from_toml_str(bad, dir.path(), &|_| None)
        .unwrap_err()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_has(
        &problems,
        "auth.public_keys[0].pem_file: \"ed.pem\" is not an RSA public key",
    );
    assert_has(
        &problems,
        "auth.public_keys[1].kid: \"a\" is used by an earlier key",
    );
    assert_has(
        &problems,
        "auth.public_keys[2].alg: ES256 is not listed in auth.algorithms",
    );
    assert_has(
        &problems,
        "auth.public_keys[2].pem_file: cannot read \"missing.pem\"",
    );
    assert_has(
        &problems,
        "auth.public_keys: PS256 is in auth.algorithms but no public key",
    );
    assert_has(&problems, "auth.public_keys: RS256 is in auth.algorithms");
}

#[test]
fn algorithm_lists_are_checked() {
    assert_has(
        &errors("[auth]\nalgorithms = []\n"),
        "auth.algorithms: must list at least one",
    );
    assert_has(
        &errors("[auth]\nalgorithms = [\"none\"]\n"),
        "auth.algorithms[0]: \"none\" is not a known algorithm",
    );
    assert_has(
        &errors("[auth]\nalgorithms = [\"HS384\"]\n"),
        "auth.hs_secret: HS384 is in auth.algorithms",
    );
}

#[test]
fn s3_and_supabase_need_their_keys() {
    let problems = errors(&with_secret("[storage]\nprovider = \"s3\"\n"));
    for key in [
        "storage.endpoint: is required",
        "storage.bucket: is required",
        "storage.access_key_id: is required",
        "storage.secret_access_key: is required",
    ] {
        assert_has(&problems, key);
    }
    let problems = errors(&with_secret(
        "[storage]\nprovider = \"s3\"\nendpoint = \"ftp://x\"\nbucket = \"b\"\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\n",
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_has(
        &problems,
        "storage.endpoint: \"ftp://x\" is not an http(s) URL",
    );
    let problems = errors(&with_secret("[storage]\nprovider = \"supabase\"\n"));
    for key in [
        "storage.url: is required",
        "storage.bucket: is required",
        "storage.service_key: is required",
    ] {
        assert_has(&problems, key);
    }
    assert_has(
        &errors(&with_secret("[storage]\nbucket = \"b\"\n")),
        "storage.bucket: only used with storage.provider = \"s3\"",
    );
}

#[test]
fn nonsensical_numbers_and_words_are_refused() {
    for (text, expected) in [
        ("[server]\nthreads = 0", "server.threads: 0 is out of range"),
        (
            "[server]\ngrace_period_s = -1",
            "server.grace_period_s: -1 is out of range",
        ),
        ("[catalog]\nmax_connections = 0", "catalog.max_connections:"),
        ("[storage]\nread_timeout_ms = 0", "storage.read_timeout_ms:"),
        (
            "[storage]\nsigned_url_ttl_s = 604801",
            "storage.signed_url_ttl_s:",
        ),
        ("[http]\nmax_object_bytes = 0", "http.max_object_bytes:"),
        (
            "[http]\nallowed_origins = [\"https://a.example\", \"a.example\"]",
            "http.allowed_origins[1]:",
        ),
        (
            "[http]\ncross_origin_resource_policy = \"none\"",
            "http.cross_origin_resource_policy:",
        ),
        (
            "[http]\ninline_types = [\"image/svg+xml\"]",
            "http.inline_types[0]:",
        ),
        (
            "[http]\ninline_types = [\"Image/PNG\"]",
            "http.inline_types[0]:",
        ),
        (
            "[http]\ninline_types = [\"text/html\"]",
            "http.inline_types[0]:",
        ),
        (
            "[http]\ninline_types = [\"multipart/*\"]",
            "http.inline_types[0]:",
        ),
        ("[upload]\nallowed_types = []", "upload.allowed_types:"),
        ("[upload]\nmax_bytes = 0", "upload.max_bytes:"),
        ("[upload]\nstaged_ttl_min = 0", "upload.staged_ttl_min:"),
        (
            "[upload]\nmax_staged_per_user = 0",
            "upload.max_staged_per_user:",
        ),
        (
            "[upload]\nmax_staged_bytes_per_user = 0",
            "upload.max_staged_bytes_per_user:",
        ),
        (
            "[upload]\nmax_concurrent_per_user = 0",
            "upload.max_concurrent_per_user:",
        ),
        (
            "[limits]\nmax_concurrent_per_user = 0",
            "limits.max_concurrent_per_user:",
        ),
        (
            "[limits]\nuser_per_minute = 5000000000",
            "limits.user_per_minute:",
        ),
        ("[log]\nlevel = \"verbose\"", "log.level:"),
        ("[app]\nupstream = \"localhost\"", "app.upstream:"),
        ("[auth]\ncookie = \"a b\"", "auth.cookie:"),
        (
            "[server]\nlisten = \"127.0.0.1:9090\"",
            "server.admin_listen:",
        ),
        (
            "[server]\ntls_cert_file = \"c.pem\"",
            "server.tls_key_file: must be set",
        ),
    ] {
        assert_has(&errors(&with_secret(text)), expected);
    }
}

#[test]
fn accepted_variants() {
    let cfg = parse(&with_secret(
        "[log]\nlevel = \"info,pingora=warn\"\nformat = \"text\"\n[limits]\non_redis_error = \"deny\"\n[app]\nupstream = \"app.internal:3000\"\ntls = true\nsni = \"app.example.com\"\n",
    ))
    .unwrap();
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.limits.on_redis_error, OnRedisError::Deny);
    assert_eq!(cfg.app.sni.as_deref(), Some("app.example.com"));
    let cfg = parse(&with_secret(
        "[http]\ninline_types = [\"image/*\", \"text/plain\"]\n",
    ))
    .unwrap();
    assert_eq!(cfg.http.inline_types, vec!["image/*", "text/plain"]);
}

#[test]
fn relative_paths_follow_base_dir() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_secret(
        "[storage]\nroot = \"bucket\"\n[catalog]\ndatabase_url = \"sqlite://db/g.db\"\n",
    );
    let cfg = from_toml_str(&text, dir.path(), &|_| None).unwrap();
    assert!(
        matches!(&cfg.storage.provider, StorageProvider::Fs { root } if *root == dir.path().join("bucket"))
    );
    assert_eq!(
        cfg.catalog.database_url.expose(),
        format!("sqlite://{}", dir.path().join("db/g.db").display())
    );
    // `load` passes no base: paths stay as written, relative to the working directory.
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.catalog.database_url.expose(), "sqlite://db/g.db");
    let cfg = from_toml_str(&text, Path::new("."), &|_| None).unwrap();
    assert!(
        matches!(&cfg.storage.provider, StorageProvider::Fs { root } if root == Path::new("bucket"))
    );
    let memory = with_secret("[catalog]\ndatabase_url = \"sqlite::memory:\"\n");
    let cfg = from_toml_str(&memory, dir.path(), &|_| None).unwrap();
    assert_eq!(cfg.catalog.database_url.expose(), "sqlite::memory:");
}

#[test]
fn load_reports_a_missing_file() {
    let err = load(Path::new("does/not/exist.toml")).unwrap_err();
    assert!(err.to_string().starts_with("config: cannot read"), "{err}");
}

#[test]
fn redact_url_table() {
    for (url, expected) in [
        ("postgres://u:p@h/db", "postgres://u:<redacted>@h/db"),
        ("postgres://u@h/db", "postgres://<redacted>@h/db"),
        ("postgres://h:5432/db", "postgres://h:5432/db"),
        ("redis://:p%40ss@h:6379/0", "redis://:<redacted>@h:6379/0"),
        ("rediss://user:p@ss@h", "rediss://user:<redacted>@h"),
        (
            "postgres://h/db?password=x&a=b#f",
            "postgres://h/db?password=<redacted>&a=b#f",
        ),
        ("sqlite://data/gateway.db", "sqlite://data/gateway.db"),
        ("sqlite::memory:", "sqlite::memory:"),
    ] {
        assert_eq!(redact_url(url), expected, "{url}");
    }
}

#[test]
fn ip_net_table() {
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(net("192.168.1.10").to_string(), "192.168.1.10/32");
    assert_eq!(net("::1").to_string(), "::1/128");
    assert!(net("10.0.0.0/8").contains(ip("10.255.0.1")));
    assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
    assert!(net("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
    assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
    assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
    assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
    assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "x",
        "",
    ] {
        assert!(bad.parse::<IpNet>().is_err(), "{bad}");
    }
}

#[test]
fn jwt_algorithm_names_round_trip() {
    for alg in JwtAlgorithm::ALL {
        assert_eq!(alg.as_str().parse::<JwtAlgorithm>(), Ok(alg));
    }
    assert!("hs256".parse::<JwtAlgorithm>().is_err());
}

proptest! {
    #[test]
    fn a_network_contains_exactly_the_addresses_sharing_its_prefix(
        a in any::<u32>(), b in any::<u32>(), len in 0u8..=32,
    ) {
        let net = IpNet::new(IpAddr::V4(a.into()), len).unwrap();
        prop_assert!(net.contains(IpAddr::V4(a.into())));
        let shift = 32 - u32::from(len);
        let same = len == 0 || (a >> shift) == (b >> shift);
        prop_assert_eq!(net.contains(IpAddr::V4(b.into())), same);
        prop_assert_eq!(net.to_string().parse::<IpNet>().unwrap(), net);
    }

    #[test]
    fn v6_networks_contain_their_own_addresses(a in any::<u128>(), len in 0u8..=128) {
        let net = IpNet::new(IpAddr::V6(a.into()), len).unwrap();
        prop_assert!(net.contains(IpAddr::V6(a.into())));
        prop_assert_eq!(net.to_string().parse::<IpNet>().unwrap(), net);
    }

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }
}

#[test]
fn upgrade_socket_and_pid_file_follow_the_runtime_directory() {
    let text = with_secret("");
    let plain = parse(&text).unwrap();
    assert_eq!(
        plain.server.upgrade_sock,
        Path::new("data/run/upgrade.sock")
    );
    assert_eq!(plain.server.pid_file, Path::new("data/run/gateway.pid"));

    // systemd's RuntimeDirectory= exports the directory; the first of several wins.
    let env = env_of(&[("RUNTIME_DIRECTORY", "/run/attachment-gateway:/run/other")]);
    let unit = from_toml_str(&text, Path::new(""), &env).unwrap();
    assert_eq!(
        unit.server.upgrade_sock,
        Path::new("/run/attachment-gateway/upgrade.sock")
    );
    assert_eq!(
        unit.server.pid_file,
        Path::new("/run/attachment-gateway/gateway.pid")
    );

    let explicit = with_secret("[server]\nupgrade_sock = \"u.sock\"\npid_file = \"g.pid\"\n");
    let cfg = from_toml_str(&explicit, Path::new(""), &env).unwrap();
    assert_eq!(cfg.server.upgrade_sock, Path::new("u.sock"));
    assert_eq!(cfg.server.pid_file, Path::new("g.pid"));

    let long = format!("[server]\nupgrade_sock = \"/{}\"\n", "s".repeat(120));
    assert_has(&errors(&with_secret(&long)), "server.upgrade_sock");
}

#[test]
fn supabase_provider_with_its_key_from_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("service_key");
    std::fs::write(&key_file, "from-file\n").unwrap();
    let text = with_secret(&format!(
        "[storage]\nprovider = \"supabase\"\nurl = \"https://p.supabase.co\"\nbucket = \"files\"\n\
         service_key_file = {:?}\nsigned_url_ttl_s = 120\noffload_over_bytes = 1048576\n",
        key_file.display().to_string()
    ));
    let cfg = parse(&text).unwrap();
    let StorageProvider::Supabase(sb) = &cfg.storage.provider else {
        panic!("{:?}", cfg.storage.provider);
    };
    assert_eq!(sb.url.as_str(), "https://p.supabase.co/");
    assert_eq!(sb.bucket, "files");
    assert_eq!(sb.service_key.expose(), "from-file");
    assert_eq!(cfg.storage.offload_over_bytes, 1_048_576);
    let rendered = render_redacted(&cfg);
    assert!(rendered.contains("provider = \"supabase\""), "{rendered}");
    assert!(
        rendered.contains("service_key = \"<redacted>\""),
        "{rendered}"
    );
    assert!(!rendered.contains("from-file"));

    let text = with_secret(
        "[storage]\nprovider = \"supabase\"\nurl = \"https://p.supabase.co\"\nbucket = \"files\"\n\
         service_key_env = \"SB_KEY\"\n",
    );
    let cfg = from_toml_str(&text, Path::new(""), &env_of(&[("SB_KEY", "from-env")])).unwrap();
    let StorageProvider::Supabase(sb) = &cfg.storage.provider else {
        panic!();
    };
    assert_eq!(sb.service_key.expose(), "from-env");

    for (text, expected) in [
        (
            "provider = \"supabase\"\nurl = \"https://u:p@p.supabase.co\"\nbucket = \"b\"\nservice_key = \"k\"",
            "storage.url:",
        ),
        (
            "provider = \"supabase\"\nurl = \"https://p.supabase.co\"\nbucket = \"a/b\"\nservice_key = \"k\"",
            "storage.bucket:",
        ),
        (
            "provider = \"supabase\"\nurl = \"https://p.supabase.co\"\nbucket = \"b\"\nservice_key = \"k\"\nregion = \"x\"",
            "storage.region: only used with storage.provider = \"s3\"",
        ),
        (
            "provider = \"s3\"\nservice_key = \"k\"",
            "storage.service_key: only used with storage.provider = \"supabase\"",
        ),
        (
            "provider = \"fs\"\noffload_over_bytes = 10",
            "storage.offload_over_bytes: needs signed URLs",
        ),
    ] {
        assert_has(&errors(&with_secret(&format!("[storage]\n{text}\n"))), expected);
    }
}

#[test]
fn s3_server_side_encryption() {
    let base = "[storage]\nprovider = \"s3\"\nendpoint = \"https://s3.example\"\nbucket = \"b\"\n\
                access_key_id = \"a\"\nsecret_access_key = \"s\"\n";
    let sse_of = |extra: &str| {
        let cfg = parse(&with_secret(&format!("{base}{extra}"))).unwrap();
        let rendered = render_redacted(&cfg);
        let StorageProvider::S3(s3) = cfg.storage.provider else {
            panic!();
        };
        (s3.sse, rendered)
    };
    assert_eq!(sse_of("").0, None);
    let (sse, rendered) = sse_of("sse = \"AES256\"\n");
    assert_eq!(sse, Some(ServerSideEncryption::Aes256));
    assert!(rendered.contains("sse = \"AES256\""), "{rendered}");
    let (sse, rendered) = sse_of("sse = \"aws:kms\"\nsse_kms_key_id = \"alias/files\"\n");
    assert_eq!(
        sse,
        Some(ServerSideEncryption::Kms {
            key_id: Some("alias/files".into())
        })
    );
    assert!(
        rendered.contains("sse_kms_key_id = \"alias/files\""),
        "{rendered}"
    );
    assert_has(
        &errors(&with_secret(&format!("{base}sse = \"aes256\"\n"))),
        "storage.sse: \"aes256\" must be",
    );
    assert_has(
        &errors(&with_secret(&format!(
            "{base}sse = \"AES256\"\nsse_kms_key_id = \"k\"\n"
        ))),
        "storage.sse_kms_key_id: only used with storage.sse = \"aws:kms\"",
    );
}

#[test]
fn redis_cluster_nodes_are_checked() {
    let problems = errors(
        r#"
[auth]
hs_secret = "0123456789abcdef0123456789abcdef"
[limits]
redis_url = "redis://127.0.0.1:6379/0"
redis_cluster_nodes = ["redis://127.0.0.1:7000", "http://127.0.0.1:7001"]
redis_ca_file = "missing.pem"
"#,
    );
    for expected in [
        "limits.redis_cluster_nodes[1]:",
        "limits.redis_cluster_nodes:",
        "limits.redis_ca_file:",
    ] {
        assert_has(&problems, expected);
    }
}
