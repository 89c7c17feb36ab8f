//! AWS Signature Version 4 for storage requests, delegated to the maintained `aws-sigv4` crate
//! (never hand-rolled). Pure: the caller passes the time in; nothing here reads a clock or does
//! I/O. It signs requests; it does not send them.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Characters that S3 wants percent-encoded in a query value: everything except the RFC 3986
/// §2.3 unreserved set (`A-Z a-z 0-9 - . _ ~`).
pub const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters encoded in an object key placed in a URL path: the query set, but `/` stays a
/// separator (S3's own URI-encoding rule for keys).
pub const KEY_PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Percent-encode an object key for the URL path, segment by segment.
pub fn encode_key_path(key: &str) -> String {
    utf8_percent_encode(key, KEY_PATH).to_string()
}

/// Percent-encode a query parameter name or value.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// What the `x-amz-content-sha256` header says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadHash {
    /// `UNSIGNED-PAYLOAD`: for streamed uploads whose bytes are not known when signing.
    Unsigned,
    /// Lowercase hex SHA-256 of the exact body.
    Sha256(String),
}

impl PayloadHash {
    /// The hash of a body that is fully known (use `&[]` for requests without a body).
    pub fn of(body: &[u8]) -> Self {
        PayloadHash::Sha256(hex::encode(Sha256::digest(body)))
    }

    fn signable(&self) -> SignableBody<'_> {
        match self {
            PayloadHash::Unsigned => SignableBody::UnsignedPayload,
            PayloadHash::Sha256(hex) => SignableBody::Precomputed(hex.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request signing failed: {0}")]
pub struct SignError(String);

/// The settings S3 and S3-compatible services expect: the path is encoded once and never
/// normalized (S3 keys may legitimately look like dot segments), and `x-amz-content-sha256`
/// is always signed and sent (AWS rejects S3 requests without it).
pub fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.session_token_mode = SessionTokenMode::Include;
    settings
}

/// A request as it will be sent, before it is signed.
struct Unsigned<'a> {
    method: &'a str,
    url: &'a str,
    headers: &'a [(&'a str, &'a str)],
    payload: &'a PayloadHash,
}

/// Signs requests for one credential, region and service.
#[derive(Clone)]
pub struct Signer {
    identity: Identity,
    region: String,
    service: String,
    settings: SigningSettings,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The identity holds the secret key: never print it.
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with [`s3_settings`].
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<String>,
        region: &str,
        service: &str,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "attachment-gateway",
        );
        Signer {
            identity: credentials.into(),
            region: region.to_owned(),
            service: service.to_owned(),
            settings: s3_settings(),
        }
    }

    /// Replace the signing settings (the published test vectors use a non-S3 service that
    /// sends no payload-hash header).
    pub fn with_settings(mut self, settings: SigningSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sign a request and return the headers to add to it: `x-amz-date`, `authorization`,
    /// `x-amz-content-sha256` (with the S3 settings) and `x-amz-security-token` when the
    /// credentials carry one. `url` must already be percent-encoded; `headers` are the other
    /// headers that will be sent and are signed too (`host` is taken from `url`).
    pub fn sign_headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: &PayloadHash,
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, SignError> {
        let mut settings = self.settings.clone();
        settings.signature_location = SignatureLocation::Headers;
        settings.expires_in = None;
        let request = Unsigned {
            method,
            url,
            headers,
            payload,
        };
        let instructions = self.sign(request, time, settings)?;
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect())
    }

    /// A presigned `GET` URL valid for `ttl` from `time` (query-parameter signing). The
    /// optional `response-content-type` / `response-content-disposition` overrides are signed
    /// in, so the holder of the URL cannot change what the browser is told about the body.
    pub fn presign_get(
        &self,
        url: &str,
        ttl: Duration,
        response_content_type: Option<&str>,
        response_content_disposition: Option<&str>,
        time: SystemTime,
    ) -> Result<String, SignError> {
        let mut url = url.to_owned();
        let overrides = [
            ("response-content-disposition", response_content_disposition),
            ("response-content-type", response_content_type),
        ];
        for (name, value) in overrides {
            if let Some(value) = value {
                push_query(&mut url, name, value);
            }
        }
        let mut settings = self.settings.clone();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(ttl);
        let request = Unsigned {
            method: "GET",
            url: &url,
            headers: &[],
            payload: &PayloadHash::Unsigned,
        };
        let instructions = self.sign(request, time, settings)?;
        let (_headers, params) = instructions.into_parts();
        for (name, value) in params {
            push_query(&mut url, name, &value);
        }
        Ok(url)
    }

    fn sign(
        &self,
        request: Unsigned<'_>,
        time: SystemTime,
        settings: SigningSettings,
    ) -> Result<aws_sigv4::http_request::SigningInstructions, SignError> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| SignError(e.to_string()))?
            .into();
        let request = SignableRequest::new(
            request.method,
            Cow::Borrowed(request.url),
            request.headers.iter().copied(),
            request.payload.signable(),
        )
        .map_err(|e| SignError(e.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| SignError(e.to_string()))?
            .into_parts();
        Ok(instructions)
    }
}

fn push_query(url: &mut String, name: &str, value: &str) {
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&encode_query_value(name));
    url.push('=');
    url.push_str(&encode_query_value(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn signer() -> Signer {
        Signer::new("AKIDEXAMPLE", "secret", None, "us-east-1", "s3")
    }

    fn at_20150830() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn payload_hash_header_is_always_sent_and_signed() {
        let cases = [
            (PayloadHash::Unsigned, "UNSIGNED-PAYLOAD"),
            (
                PayloadHash::of(b""),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ];
        for (payload, expected) in cases {
            let headers = signer()
                .sign_headers(
                    "GET",
                    "http://127.0.0.1:8333/bucket/a%20b",
                    &[],
                    &payload,
                    at_20150830(),
                )
                .unwrap();
            assert_eq!(header(&headers, "x-amz-content-sha256"), Some(expected));
            assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
            let authz = header(&headers, "authorization").unwrap();
            assert!(authz.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
            ));
            assert_eq!(header(&headers, "x-amz-security-token"), None);
        }
    }

    #[test]
    fn session_token_is_sent_when_present() {
        let signer = Signer::new("AK", "secret", Some("tok".into()), "us-east-1", "s3");
        let headers = signer
            .sign_headers(
                "GET",
                "https://s3.example/b/k",
                &[],
                &PayloadHash::Unsigned,
                at_20150830(),
            )
            .unwrap();
        assert_eq!(header(&headers, "x-amz-security-token"), Some("tok"));
    }

    #[test]
    fn extra_headers_are_signed() {
        let headers = signer()
            .sign_headers(
                "GET",
                "https://s3.example/b/k",
                &[("range", "bytes=0-9")],
                &PayloadHash::Unsigned,
                at_20150830(),
            )
            .unwrap();
        let authz = header(&headers, "authorization").unwrap();
        assert!(authz.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"));
    }

    #[test]
    fn presigned_url_carries_the_overrides_and_expiry() {
        let url = signer()
            .presign_get(
                "https://s3.example/b/k",
                Duration::from_secs(60),
                Some("image/png"),
                Some("inline; filename=\"a b.png\""),
                at_20150830(),
            )
            .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        let pairs: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(pairs["response-content-type"], "image/png");
        assert_eq!(
            pairs["response-content-disposition"],
            "inline; filename=\"a b.png\""
        );
        assert_eq!(pairs["X-Amz-Expires"], "60");
        assert_eq!(pairs["X-Amz-Date"], "20150830T123600Z");
        assert_eq!(pairs["X-Amz-SignedHeaders"], "host");
        assert_eq!(
            pairs["X-Amz-Credential"],
            "AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request"
        );
        assert_eq!(pairs["X-Amz-Signature"].len(), 64);
        assert!(!url.contains(' '));
    }

    #[test]
    fn key_paths_keep_slashes_and_encode_the_rest() {
        let cases = [
            ("a/b", "a/b"),
            ("a b+c", "a%20b%2Bc"),
            ("-._~", "-._~"),
            ("ф/ö", "%D1%84/%C3%B6"),
            ("a=b&c?#", "a%3Db%26c%3F%23"),
        ];
        for (key, expected) in cases {
            assert_eq!(encode_key_path(key), expected, "{key}");
        }
        assert_eq!(encode_query_value("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let printed = format!("{:?}", Signer::new("AK", "topsecret", None, "r", "s3"));
        assert!(!printed.contains("topsecret"));
    }
}
