//! Finding the token in the request headers: `Authorization: Bearer`, else the session cookie.
//! Only finds it; whether it is any good is `verify`'s question.

use super::Authenticator;

/// Longest token we parse. Real session tokens are well under 2 KiB; the cap bounds the
/// base64, JSON and signature work one hostile request can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Whether the request carries a bearer credential (then a cookie, if any, is not used):
/// browsers never attach one on their own, so such a request is not judged cross-site.
pub fn has_bearer(authorization: Option<&str>) -> bool {
    authorization.and_then(bearer_token).is_some()
}

impl Authenticator {
    /// Extract the token: `Authorization: Bearer <t>` (scheme case-insensitive, one space or
    /// more; RFC 6750 §2.1, RFC 9110 §11.1) wins; otherwise the cookie named `auth.cookie` from
    /// the `Cookie` header(s) (HTTP/2 may split cookies over several headers, RFC 9113 §8.2.3).
    /// Never from the query string: the API has no token parameter, so tokens stay out of
    /// access logs and `Referer` (RFC 6750 §5.3). Other schemes (`Basic`) and an empty bearer
    /// credential are ignored.
    pub fn token_from_headers<'a>(
        &self,
        authorization: Option<&'a str>,
        cookie_headers: &[&'a str],
    ) -> Option<&'a str> {
        authorization
            .and_then(bearer_token)
            .or_else(|| cookie_value(cookie_headers, &self.cookie))
    }
}

/// `Bearer 1*SP token` (RFC 6750 §2.1); the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// First non-empty value of cookie `name` across all `Cookie` headers (RFC 6265 §4.2.1,
/// §5.4). Names are case-sensitive; a quoted value loses its quotes.
fn cookie_value<'a>(cookie_headers: &[&'a str], name: &str) -> Option<&'a str> {
    cookie_headers
        .iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.trim() == name)
        .map(|(_, value)| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
        .find(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::authenticator;
    use super::super::AuthError::Missing;
    use proptest::prelude::*;

    #[test]
    fn token_comes_from_bearer_or_cookie_never_elsewhere() {
        type Case = (
            &'static str,
            Option<&'static str>,
            &'static [&'static str],
            Option<&'static str>,
        );
        #[rustfmt::skip]
        let cases: [Case; 20] = [
            ("bearer",                 Some("Bearer abc.def.ghi"), &[],                     Some("abc.def.ghi")),
            ("lowercase scheme",       Some("bearer abc"),         &[],                     Some("abc")),
            ("uppercase scheme",       Some("BEARER abc"),         &[],                     Some("abc")),
            ("several spaces",         Some("Bearer   abc"),       &[],                     Some("abc")),
            ("trailing space",         Some("Bearer abc "),        &[],                     Some("abc")),
            ("no space",               Some("Bearerabc"),          &[],                     None),
            ("empty credential",       Some("Bearer "),            &[],                     None),
            ("basic ignored",          Some("Basic dXNlcjpwYXNz"), &[],                     None),
            ("basic, then cookie",     Some("Basic dXNlcjpwYXNz"), &["session=c1"],         Some("c1")),
            ("cookie only",            None,                       &["session=c1"],         Some("c1")),
            ("cookie among several",   None, &["theme=dark; session=c2; lang=en"],          Some("c2")),
            ("cookie without spaces",  None, &["theme=dark;session=c2"],                    Some("c2")),
            ("several Cookie headers", None, &["theme=dark", "lang=en; session=c3"],        Some("c3")),
            ("quoted cookie",          None, &["session=\"c4\""],                           Some("c4")),
            ("first non-empty wins",   None, &["session=; session=c5"],                     Some("c5")),
            ("name is case-sensitive", None, &["Session=c6"],                               None),
            ("prefix is not the name", None, &["my_session=c7; sessionx=c8"],               None),
            ("authorization wins",     Some("Bearer from-header"), &["session=from-cookie"], Some("from-header")),
            ("nothing",                None,                       &[],                     None),
            ("garbage cookie header",  None,                       &[";;=;session"],        None),
        ];
        let auth = authenticator();
        for (name, authorization, cookies, want) in cases {
            assert_eq!(
                auth.token_from_headers(authorization, cookies),
                want,
                "{name}"
            );
        }
        // There is no query-string source: the API takes no token parameter (RFC 6750 §5.3
        // advises against it) and only headers reach this function, so a request such as
        // `GET /api/...?access_token=<jwt>` authenticates as nobody.
        assert_eq!(auth.authenticate(None, &[]), Err(Missing));
    }

    proptest! {
        #[test]
        fn header_extraction_never_panics(
            authorization in proptest::option::of(".{0,100}"),
            cookies in proptest::collection::vec(".{0,100}", 0..4),
        ) {
            let cookies: Vec<&str> = cookies.iter().map(String::as_str).collect();
            let _ = authenticator().token_from_headers(authorization.as_deref(), &cookies);
        }

        #[test]
        fn bearer_token_round_trips(
            scheme in "(?i)bearer",
            spaces in " {1,4}",
            token in "[A-Za-z0-9._~+/-]{1,200}",
        ) {
            let authorization = format!("{scheme}{spaces}{token}");
            let got = authenticator().token_from_headers(Some(&authorization), &["session=x"]);
            prop_assert_eq!(got, Some(token.as_str()));
        }
    }
}
