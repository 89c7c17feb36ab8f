//! The storage signer against AWS's published Signature V4 test vectors: same crate, same
//! settings as S3 requests use (single path encoding, no path normalization), except that the
//! vectors' service sends no `x-amz-content-sha256` header.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use attachment_gateway::storage::sign::{s3_settings, PayloadHash, Signer};
use aws_sigv4::http_request::PayloadChecksumKind;
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Non-ASCII bytes (and spaces) in a vector's request line are sent percent-encoded.
const REQUEST_LINE: &AsciiSet = &CONTROLS.add(b' ');

/// 2015-08-30T12:36:00Z, the time every vector was signed at.
fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

struct Vector {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    session_token: Option<String>,
    body: Vec<u8>,
    authorization: String,
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigv4")
}

/// Parse `<name>/<name>.req` (raw HTTP/1.1 request) and `<name>/<name>.authz`.
fn load(name: &str) -> Vector {
    let dir = data_dir().join(name);
    let raw = std::fs::read(dir.join(format!("{name}.req"))).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = match raw.split_once("\n\n") {
        Some((head, body)) => (head, body),
        None => (raw.as_str(), ""),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.strip_suffix(" HTTP/1.1").unwrap();
    let target = percent_encode(target.as_bytes(), REQUEST_LINE).to_string();

    let mut headers = Vec::new();
    let mut host = None;
    let mut session_token = None;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "host" => host = Some(value.to_owned()),
            // The signer adds these itself, from the time and the credentials.
            "x-amz-date" => {}
            "x-amz-security-token" => session_token = Some(value.to_owned()),
            _ => headers.push((name.to_owned(), value.to_owned())),
        }
    }
    let authorization = std::fs::read_to_string(dir.join(format!("{name}.authz"))).unwrap();
    Vector {
        method: method.to_owned(),
        url: format!("https://{}{target}", host.unwrap()),
        headers,
        session_token,
        body: body.as_bytes().to_vec(),
        authorization: authorization.trim_end().to_owned(),
    }
}

fn sign(vector: &Vector) -> Vec<(String, String)> {
    let mut settings = s3_settings();
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let signer = Signer::new(
        ACCESS_KEY,
        SECRET_KEY,
        vector.session_token.clone(),
        "us-east-1",
        "service",
    )
    .with_settings(settings);
    let headers: Vec<(&str, &str)> = vector
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    signer
        .sign_headers(
            &vector.method,
            &vector.url,
            &headers,
            &PayloadHash::of(&vector.body),
            vector_time(),
        )
        .unwrap()
}

fn header<'a>(signed: &'a [(String, String)], name: &str) -> Option<&'a str> {
    signed
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

const VECTORS: &[&str] = &[
    "get-vanilla",
    "get-vanilla-query",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-order-value",
    "get-vanilla-query-unreserved",
    "get-vanilla-empty-query-key",
    "get-unreserved",
    "get-utf8",
    "get-vanilla-utf8-query",
    "get-header-value-trim",
    "get-header-key-duplicate",
    "get-header-value-order",
    "post-vanilla",
    "post-vanilla-query",
    "post-vanilla-empty-query-value",
    "post-header-key-sort",
    "post-header-key-case",
    "post-header-value-case",
    // `post-x-www-form-urlencoded-parameters` is left out: its canonical request moves the
    // form body into the query string, a convention of form-posting services that S3 never uses.
    "post-x-www-form-urlencoded",
    "post-sts-header-before",
];

#[test]
fn authorization_matches_every_published_vector() {
    let mut failures = Vec::new();
    for name in VECTORS {
        let vector = load(name);
        let signed = sign(&vector);
        let actual = header(&signed, "authorization").unwrap_or("<missing>");
        if actual != vector.authorization {
            failures.push(format!(
                "{name}:\n  expected {}\n  actual   {actual}",
                vector.authorization
            ));
        }
        assert_eq!(
            header(&signed, "x-amz-date"),
            Some("20150830T123600Z"),
            "{name}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_session_token_is_signed_and_sent() {
    let vector = load("post-sts-header-before");
    let signed = sign(&vector);
    assert_eq!(
        header(&signed, "x-amz-security-token"),
        vector.session_token.as_deref()
    );
    assert!(header(&signed, "authorization")
        .unwrap()
        .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
}

#[test]
fn s3_settings_add_the_payload_hash_to_the_vanilla_request() {
    // Same request, real S3 settings: the payload hash is signed and sent, so the signature
    // differs from the service vector and `x-amz-content-sha256` joins the signed headers.
    let vector = load("get-vanilla");
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY, None, "us-east-1", "service");
    let signed = signer
        .sign_headers(
            "GET",
            &vector.url,
            &[],
            &PayloadHash::of(b""),
            vector_time(),
        )
        .unwrap();
    assert_eq!(
        header(&signed, "x-amz-content-sha256"),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    let authorization = header(&signed, "authorization").unwrap();
    assert!(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
    assert_ne!(authorization, vector.authorization);
}
