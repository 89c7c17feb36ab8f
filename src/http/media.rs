//! The served `Content-Type` (SPEC §3 "Read response policy"): a row's `mimeType` parsed
//! strictly as exactly one RFC 9110 §8.3.1 media type and re-written normalized, so what a
//! browser reads is what the gateway judged. Pure.
//!
//! A list (`image/png;a=b,text/html`, which browsers read by its last member), a control or
//! non-ASCII character, a parameter without a value: not one media type, so the caller serves
//! `application/octet-stream` as a download.

/// `type/subtype` in lower case, plus `; charset=<token>` for `text/*`; `None` when `raw` is
/// not exactly one well-formed media type.
pub fn normalize(raw: &str) -> Option<String> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii() && !b.is_ascii_control()) {
        return None;
    }
    // `mime` rejects a bare `,` (not a token), a parameter without `=` and bad tokens; a `,`
    // inside a quoted parameter value is legal in one media type but never re-emitted.
    let parsed: mime::Mime = raw.parse().ok()?;
    // `mime` takes `a=` as an empty value; RFC 9110 §5.6.6 wants a token or a quoted string.
    if parsed.params().any(|(_, value)| value.as_str().is_empty()) {
        return None;
    }
    let essence = parsed.essence_str().to_ascii_lowercase();
    // `mime` also takes `image/` with an empty subtype.
    if !is_token(parsed.type_().as_str()) || !is_token(parsed.subtype().as_str()) {
        return None;
    }
    if parsed.type_() != mime::TEXT {
        return Some(essence);
    }
    match parsed.get_param(mime::CHARSET) {
        Some(charset) if is_token(charset.as_str()) => Some(format!(
            "{essence}; charset={}",
            charset.as_str().to_ascii_lowercase()
        )),
        _ => Some(essence),
    }
}

/// RFC 9110 §5.6.2 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_media_type_or_none() {
        let cases = [
            ("image/png", Some("image/png")),
            ("IMAGE/PNG", Some("image/png")),
            ("image/png; q=1", Some("image/png")),
            (
                "text/plain; charset=UTF-8",
                Some("text/plain; charset=utf-8"),
            ),
            (
                "text/plain;charset=\"utf-8\"",
                Some("text/plain; charset=utf-8"),
            ),
            ("text/plain; format=flowed", Some("text/plain")),
            ("application/pdf", Some("application/pdf")),
            ("image/png;a=b,text/html", None),
            ("image/png, text/html", None),
            ("image/png,text/html", None),
            ("image/png;a", None),
            ("image/png;a=", None),
            ("image/png\0", None),
            ("image/png\r\nx: y", None),
            ("image/pngé", None),
            ("image", None),
            ("image/", None),
            ("/png", None),
            ("", None),
            ("image/png/x", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), want, "{raw:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Arbitrary bytes: no panic; a result is one `type/subtype` of token characters
        /// (plus a charset for text), a valid header value, and normalizing it is a no-op.
        #[test]
        fn normalized_is_one_plain_media_type(raw in proptest::collection::vec(any::<u8>(), 0..48)) {
            let raw = String::from_utf8_lossy(&raw);
            if let Some(out) = normalize(&raw) {
                prop_assert!(http::HeaderValue::from_str(&out).is_ok());
                prop_assert!(!out.contains(','));
                let essence = out.split("; charset=").next().unwrap();
                let (kind, subtype) = essence.split_once('/').unwrap();
                prop_assert!(is_token(kind) && is_token(subtype), "{}", out);
                prop_assert_eq!(normalize(&out), Some(out.clone()));
            }
        }

        #[test]
        fn lists_are_never_one_type(a in "[a-z]{1,8}/[a-z]{1,8}", b in "[a-z]{1,8}/[a-z]{1,8}", p in "(;[a-z]=[a-z])?") {
            let list = format!("{a}{p},{b}");
            prop_assert_eq!(normalize(&list), None);
        }
    }
}
