//! Which request-target forms the gateway accepts (RFC 9112 §3.2; SPEC §3 "Request targets"):
//! origin-form, absolute-form with an `http`/`https` scheme, and `OPTIONS *`. Anything else
//! (`x:/api/...`, `api/...`, `http:/api/...`) is refused by the gateway, so that no app's
//! HTTP stack ever gets to guess what such a target means. Pure; it only reads bytes.

/// The form of a request-target, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query` (§3.2.1).
    Origin,
    /// `http(s)://authority/path?query` (§3.2.2): routed by its path, never by its authority.
    Absolute,
    /// `*` with `OPTIONS` (§3.2.4).
    Asterisk,
    /// Any other target: answered `400`, never forwarded.
    Refused,
}

/// The form of `target` (the raw request-target bytes, fragment already dropped).
pub fn form(method: &str, target: &[u8]) -> TargetForm {
    match target {
        [b'/', ..] => TargetForm::Origin,
        b"*" if method == "OPTIONS" => TargetForm::Asterisk,
        _ if is_absolute(target) => TargetForm::Absolute,
        _ => TargetForm::Refused,
    }
}

/// `http://` or `https://` (scheme case-insensitive, RFC 3986 §3.1), a non-empty authority of
/// host and port characters only (no userinfo, which RFC 9110 §4.2.4 forbids senders to
/// generate, no `\`, no escapes), then nothing, a path or a query. The authority ends at the
/// first `/` or `?`, exactly where Pingora's own split of the target puts it.
fn is_absolute(target: &[u8]) -> bool {
    let Some(colon) = target.iter().position(|&b| b == b':') else {
        return false;
    };
    let scheme = &target[..colon];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return false;
    }
    let Some(rest) = target[colon + 1..].strip_prefix(b"//") else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    !authority.is_empty() && authority.iter().copied().all(is_authority_byte)
}

/// Host names, IPv4, bracketed IPv6 and a port: `ALPHA DIGIT - . _ ~ : [ ]`.
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'[' | b']')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        use TargetForm::*;
        let cases: [(&str, &[u8], TargetForm); 19] = [
            ("GET", b"/", Origin),
            ("GET", b"/api/support-chat/attachments/d1/a1?x=1", Origin),
            ("GET", b"//double", Origin),
            ("GET", b"http://gw.example/api/x", Absolute),
            ("GET", b"HTTPS://gw.example:8443/api/x", Absolute),
            ("GET", b"http://[::1]:80", Absolute),
            ("GET", b"http://h?q=1", Absolute),
            ("OPTIONS", b"*", Asterisk),
            ("GET", b"*", Refused),
            ("GET", b"x:/api/support-chat/attachments/d1/a1", Refused),
            ("GET", b"api/support-chat/attachments/d1/a1", Refused),
            ("GET", b"http:/api/support-chat/attachments", Refused),
            ("GET", b"http:api", Refused),
            ("GET", b"ftp://h/api", Refused),
            ("GET", b"http:///api", Refused),
            ("GET", b"http://user@h/api", Refused),
            ("GET", b"http://h\\@evil/api", Refused),
            ("GET", b"?x=1", Refused),
            ("GET", b"", Refused),
        ];
        for (method, target, want) in cases {
            assert_eq!(
                form(method, target),
                want,
                "{method} {}",
                String::from_utf8_lossy(target)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes: no panic, and only the three accepted shapes are ever accepted.
        #[test]
        fn only_the_three_forms_are_accepted(method in "GET|OPTIONS|POST", target in proptest::collection::vec(any::<u8>(), 0..64)) {
            match form(&method, &target) {
                TargetForm::Origin => prop_assert_eq!(target[0], b'/'),
                TargetForm::Asterisk => prop_assert!(method == "OPTIONS" && target == b"*"),
                TargetForm::Absolute => {
                    let lower = target.to_ascii_lowercase();
                    prop_assert!(lower.starts_with(b"http://") || lower.starts_with(b"https://"));
                }
                TargetForm::Refused => {}
            }
        }
    }
}
