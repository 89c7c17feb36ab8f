//! What an upload request must look like before a byte of it is read (SPEC §3 "Upload"):
//! identity encoding, a declared length within `upload.max_bytes`, an allowed type and a file
//! name. Pure: plain values in, a decision out.

use crate::config::UploadConfig;
use crate::error::GatewayError;

/// Longest `originalName` kept, in characters; longer names are cut (it is only stored).
pub const MAX_NAME_CHARS: usize = 255;

/// The request headers and query that decide whether an upload may start.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadHead<'a> {
    /// Every `Content-Length` value (a repeated header must agree with itself).
    pub content_length: &'a [&'a str],
    pub transfer_encoding: bool,
    pub content_encoding: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
}

/// An upload that passed every check on its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub length: u64,
    /// The media type's essence, lower-cased, without parameters.
    pub mime_type: String,
    pub original_name: String,
}

/// Decide on the head alone. The order follows what a client can fix first: an encoded body
/// is refused outright, then the framing, the size, the type and the name.
pub fn check(head: &UploadHead<'_>, cfg: &UploadConfig) -> Result<Accepted, GatewayError> {
    // Never decompress: a stored object is exactly the bytes that were checked (a 1 MiB gzip
    // may hold gigabytes), so any coding but identity is refused (RFC 9110 §8.4, §15.5.16).
    if let Some(coding) = head.content_encoding {
        if !coding.trim().eq_ignore_ascii_case("identity") {
            return Err(GatewayError::UnsupportedMediaType("encoded_upload"));
        }
    }
    let length = declared_length(head)?;
    if length > cfg.max_bytes {
        return Err(GatewayError::PayloadTooLarge);
    }
    if length == 0 {
        return Err(GatewayError::BadRequest("empty_upload"));
    }
    let mime_type = head
        .content_type
        .map(essence)
        .filter(|m| !m.is_empty())
        .ok_or(GatewayError::UnsupportedMediaType("missing_content_type"))?;
    if !is_allowed(&mime_type, &cfg.allowed_types) {
        return Err(GatewayError::UnsupportedMediaType("type_not_allowed"));
    }
    let original_name = head
        .query
        .and_then(|q| query_param(q, "filename"))
        .map(|raw| sanitize_name(&raw))
        .filter(|name| !name.is_empty())
        .ok_or(GatewayError::BadRequest("missing_filename"))?;
    Ok(Accepted {
        length,
        mime_type,
        original_name,
    })
}

/// RFC 9112 §6.3: with `Transfer-Encoding` the length is unknown until the end, which we
/// refuse (`411`) like a missing `Content-Length`; repeated values must all be equal.
fn declared_length(head: &UploadHead<'_>) -> Result<u64, GatewayError> {
    if head.transfer_encoding {
        return Err(GatewayError::LengthRequired("chunked_upload"));
    }
    let mut values = head
        .content_length
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim);
    let first = values
        .next()
        .ok_or(GatewayError::LengthRequired("no_content_length"))?;
    // Digits only (no sign, no space inside); a number too big for u64 is still a number,
    // and larger than any limit.
    let parse = |v: &str| {
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u64>().unwrap_or(u64::MAX))
    };
    let length = parse(first).ok_or(GatewayError::BadRequest("bad_content_length"))?;
    if values.any(|v| parse(v) != Some(length)) {
        return Err(GatewayError::BadRequest("bad_content_length"));
    }
    Ok(length)
}

/// `Type/Sub; charset=x` -> `type/sub` (RFC 9110 §8.3.1: type and subtype are
/// case-insensitive).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether `mime` matches an entry of `upload.allowed_types` (`type/sub`, `type/*`, `*/*`).
pub fn is_allowed(mime: &str, allowed: &[String]) -> bool {
    let Some((ty, sub)) = mime.split_once('/') else {
        return false;
    };
    if ty.is_empty() || sub.is_empty() || sub.contains('/') {
        return false;
    }
    allowed.iter().any(|entry| match entry.split_once('/') {
        Some(("*", "*")) => true,
        Some((t, "*")) => t == ty,
        Some(_) => entry == mime,
        None => false,
    })
}

/// The first value of `name` in an `application/x-www-form-urlencoded` query, decoded
/// (`+` is a space there, as `URLSearchParams` writes it).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            let value = value.replace('+', " ");
            percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The name as it will be stored: the last path segment (some clients send a full path), no
/// control or bidi-override characters, trimmed, at most `MAX_NAME_CHARS` characters. It
/// never reaches a storage key; the read path encodes it again for `Content-Disposition`.
pub fn sanitize_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    cleaned
        .trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect::<String>()
}

/// Unicode bidirectional formatting characters (UAX #9): they can make `exe.png` display as
/// `gnp.exe`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use proptest::prelude::*;

    fn cfg() -> UploadConfig {
        UploadConfig {
            max_bytes: 1000,
            allowed_types: vec!["image/png".into(), "text/plain".into(), "video/*".into()],
            staged_ttl: Duration::from_secs(3600),
            cleanup_interval: Duration::from_secs(300),
            max_staged_per_user: 100,
            max_staged_bytes_per_user: 256 << 20,
            max_concurrent_per_user: 4,
        }
    }

    fn head<'a>(len: &'a [&'a str], ty: &'a str, query: &'a str) -> UploadHead<'a> {
        UploadHead {
            content_length: len,
            content_type: Some(ty),
            query: Some(query),
            ..Default::default()
        }
    }

    fn refusal(h: UploadHead<'_>) -> (u16, &'static str) {
        let err = check(&h, &cfg()).unwrap_err();
        (err.status(), err.outcome())
    }

    #[test]
    fn accepts_a_plain_upload() {
        let ok = check(
            &head(&["10"], "Image/PNG; q=1", "x=1&filename=My%20shot+1.png"),
            &cfg(),
        )
        .unwrap();
        assert_eq!(
            ok,
            Accepted {
                length: 10,
                mime_type: "image/png".into(),
                original_name: "My shot 1.png".into()
            }
        );
        assert!(check(&head(&["1000"], "video/webm", "filename=a"), &cfg()).is_ok());
    }

    #[test]
    fn refuses_with_the_right_status() {
        let len: &[&str] = &["10"];
        let cases: Vec<(UploadHead<'_>, (u16, &str))> = vec![
            (
                head(&[], "image/png", "filename=a"),
                (411, "no_content_length"),
            ),
            (
                UploadHead {
                    transfer_encoding: true,
                    ..head(len, "image/png", "filename=a")
                },
                (411, "chunked_upload"),
            ),
            (
                head(&["1001"], "image/png", "filename=a"),
                (413, "payload_too_large"),
            ),
            (
                head(&["99999999999999999999"], "image/png", "filename=a"),
                (413, "payload_too_large"),
            ),
            (
                head(&["1 0"], "image/png", "filename=a"),
                (400, "bad_content_length"),
            ),
            (
                head(&["-1"], "image/png", "filename=a"),
                (400, "bad_content_length"),
            ),
            (
                head(&["+5"], "image/png", "filename=a"),
                (400, "bad_content_length"),
            ),
            (
                head(&["5", "6"], "image/png", "filename=a"),
                (400, "bad_content_length"),
            ),
            (
                head(&["5, 6"], "image/png", "filename=a"),
                (400, "bad_content_length"),
            ),
            (
                head(&["0"], "image/png", "filename=a"),
                (400, "empty_upload"),
            ),
            (
                head(len, "image/gif", "filename=a"),
                (415, "type_not_allowed"),
            ),
            (
                head(len, "image/png/x", "filename=a"),
                (415, "type_not_allowed"),
            ),
            (head(len, "", "filename=a"), (415, "missing_content_type")),
            (
                UploadHead {
                    content_type: None,
                    ..head(len, "", "filename=a")
                },
                (415, "missing_content_type"),
            ),
            (
                UploadHead {
                    content_encoding: Some("gzip"),
                    ..head(len, "image/png", "filename=a")
                },
                (415, "encoded_upload"),
            ),
            (head(len, "image/png", "name=a"), (400, "missing_filename")),
            (
                head(len, "image/png", "filename=%0A%0D"),
                (400, "missing_filename"),
            ),
            (
                head(len, "image/png", "filename=dir%2F"),
                (400, "missing_filename"),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(refusal(h), want, "{h:?}");
        }
        // Repeated equal lengths and an explicit identity coding are fine.
        let same = UploadHead {
            content_encoding: Some("Identity"),
            ..head(&["5", "5"], "text/plain", "filename=a")
        };
        assert_eq!(check(&same, &cfg()).unwrap().length, 5);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(sanitize_name("C:\\Users\\me\\photo.png"), "photo.png");
        assert_eq!(sanitize_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_name("  a\u{202e}gnp.exe\u{0} "), "agnp.exe");
        assert_eq!(
            sanitize_name(&"é".repeat(300)).chars().count(),
            MAX_NAME_CHARS
        );
        assert_eq!(
            query_param("a=1&filename=%E2%9C%93.txt", "filename").unwrap(),
            "✓.txt"
        );
        assert_eq!(query_param("filename", "filename").unwrap(), "");
        assert_eq!(query_param("file=x", "filename"), None);
        // Invalid UTF-8 is replaced, never passed on.
        assert_eq!(query_param("filename=%FF", "filename").unwrap(), "\u{fffd}");
    }

    #[test]
    fn type_patterns() {
        let all = vec!["*/*".to_string()];
        assert!(is_allowed("application/x-anything", &all));
        assert!(!is_allowed("nonsense", &all));
        assert!(is_allowed("video/mp4", &cfg().allowed_types));
        assert!(!is_allowed("videos/mp4", &cfg().allowed_types));
    }

    proptest! {
        #[test]
        fn stored_names_are_bounded_and_clean(raw in "\\PC{0,400}|[\\x00-\\x7f]{0,50}") {
            let name = sanitize_name(&raw);
            prop_assert!(name.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!name.contains(['/', '\\']));
            prop_assert!(!name.chars().any(|c| c.is_control() || is_bidi_control(c)));
        }

        #[test]
        fn a_declared_length_over_the_limit_is_always_413(len in 1001u64..u64::MAX) {
            let text = len.to_string();
            let values = [text.as_str()];
            prop_assert_eq!(refusal(head(&values, "image/png", "filename=a")).0, 413);
        }
    }
}
