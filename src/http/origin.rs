//! Cross-site checks for cookie-authenticated writes (SPEC §3 "Cross-site requests").
//!
//! A browser attaches the session cookie to a request another site makes it send (a form
//! post, a `fetch` with credentials), so a `POST` or `DELETE` whose credential is the cookie
//! must prove it comes from the app's own pages: its `Origin` is one of `http.allowed_origins`
//! (by default the request's own scheme and `Host`), or, when a browser sent no `Origin`,
//! `Sec-Fetch-Site: same-origin`. A bearer token is never attached by a browser on its own,
//! so requests carrying one are not judged here. Pure: the caller supplies every input.

/// What a write request says about where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    /// The scheme this request reached the gateway with (`http` or `https`).
    pub scheme: &'a str,
    /// Its `Host` (or the authority of an absolute-form target).
    pub host: Option<&'a str>,
}

/// Whether a cookie-authenticated write may proceed.
pub fn same_origin(p: &Provenance<'_>, allowed_origins: &[String]) -> bool {
    match p.origin {
        Some(origin) => {
            let Some(origin) = normalize(origin) else {
                // `null` (sandboxed frames, some redirects) and anything unparsable.
                return false;
            };
            if allowed_origins.is_empty() {
                let Some(host) = p.host else { return false };
                normalize(&format!("{}://{}", p.scheme, host)).is_some_and(|own| own == origin)
            } else {
                allowed_origins
                    .iter()
                    .filter_map(|a| normalize(a))
                    .any(|a| a == origin)
            }
        }
        None => p
            .sec_fetch_site
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("same-origin")),
    }
}

/// `scheme://host[:port]` in lower case with the scheme's default port dropped, or `None` for
/// anything that is not a serialized http(s) origin (a path, user info, `null`).
pub fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let valid = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !valid {
        return None;
    }
    let authority = authority.strip_suffix(default_port).unwrap_or(authority);
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(origin: Option<&'a str>, site: Option<&'a str>) -> Provenance<'a> {
        Provenance {
            origin,
            sec_fetch_site: site,
            scheme: "http",
            host: Some("chat.example:8080"),
        }
    }

    #[test]
    fn the_own_origin_passes_by_default() {
        assert!(same_origin(
            &req(Some("http://chat.example:8080"), None),
            &[]
        ));
        assert!(same_origin(
            &req(Some("HTTP://Chat.Example:8080/"), None),
            &[]
        ));
    }

    #[test]
    fn another_origin_or_scheme_is_refused() {
        for origin in [
            "http://evil.example",
            "https://chat.example:8080",
            "http://chat.example:8081",
            "http://chat.example:8080.evil.example",
            "null",
            "",
            "chat.example:8080",
            "http://user@chat.example:8080",
        ] {
            assert!(!same_origin(&req(Some(origin), None), &[]), "{origin}");
        }
    }

    #[test]
    fn an_origin_decides_even_when_sec_fetch_site_says_otherwise() {
        assert!(!same_origin(
            &req(Some("http://evil.example"), Some("same-origin")),
            &[]
        ));
    }

    #[test]
    fn without_origin_only_same_origin_fetch_metadata_passes() {
        assert!(same_origin(&req(None, Some("same-origin")), &[]));
        for site in [Some("same-site"), Some("cross-site"), Some("none"), None] {
            assert!(!same_origin(&req(None, site), &[]), "{site:?}");
        }
    }

    #[test]
    fn the_allowed_list_replaces_the_own_origin() {
        let allowed = vec!["https://app.example".to_string()];
        assert!(same_origin(
            &req(Some("https://app.example:443"), None),
            &allowed
        ));
        assert!(!same_origin(
            &req(Some("http://chat.example:8080"), None),
            &allowed
        ));
    }

    #[test]
    fn default_ports_are_dropped() {
        assert_eq!(
            normalize("https://a.example:443").unwrap(),
            "https://a.example"
        );
        assert_eq!(
            normalize("http://a.example:80").unwrap(),
            "http://a.example"
        );
        assert_eq!(normalize("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        assert!(normalize("ftp://a.example").is_none());
    }

    #[test]
    fn a_missing_host_refuses_by_default() {
        let p = Provenance {
            host: None,
            ..req(Some("http://chat.example:8080"), None)
        };
        assert!(!same_origin(&p, &[]));
    }
}
