//! Validators (`ETag`, `Last-Modified`) and conditional requests (RFC 9110 §8.8, §13), decided
//! from catalog fields alone so that a `304` never touches storage. Time is passed in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Seconds of 9999-12-31T23:59:59Z, the last instant an IMF-fixdate can express.
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// Strong ETag (`"<32 hex>"`) from immutable row fields only: SHA-256 over the id, size,
/// `createdAt` in milliseconds and MIME type, truncated to 128 bits.
///
/// Every field is length-prefixed, so no two different rows hash the same input. The row is
/// never updated in place (a new upload is a new id), so the tag is strong (§8.8.3.1).
pub fn strong_etag(
    id: &str,
    size_bytes: u64,
    created_at: DateTime<Utc>,
    mime_type: &str,
) -> String {
    use std::fmt::Write;
    // Every read and every `304` computes this: one scratch buffer for the numbers and the
    // length prefixes, not a string per field.
    let mut hasher = Sha256::new();
    let mut number = String::with_capacity(24);
    let mut field = |hasher: &mut Sha256, text: &str| {
        number.clear();
        let _ = write!(number, "{}:", text.len());
        hasher.update(number.as_bytes());
        hasher.update(text.as_bytes());
        hasher.update(b";");
    };
    field(&mut hasher, id);
    field(&mut hasher, &size_bytes.to_string());
    field(&mut hasher, &created_at.timestamp_millis().to_string());
    field(&mut hasher, mime_type);
    let digest = hasher.finalize();
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in &digest[..16] {
        let _ = write!(tag, "{byte:02x}");
    }
    tag.push('"');
    tag
}

/// IMF-fixdate (§5.6.7) of `t`, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. Instants outside what the
/// format can express (before 1970 or after 9999) are clamped instead of failing.
pub fn http_date(t: DateTime<Utc>) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix_seconds(t)))
}

/// Whether a `GET`/`HEAD` is answered `304` (RFC 9110 §13.2.2). `If-None-Match` (weak
/// comparison, lists, `*`) takes precedence; `If-Modified-Since` is used only without it,
/// compared at one-second precision, and ignored when it is not an HTTP-date.
pub fn is_not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: &str,
    last_modified: DateTime<Utc>,
) -> bool {
    // §13.2.2 step 3 and §13.1.3: If-Modified-Since is evaluated only without If-None-Match.
    if let Some(inm) = if_none_match {
        return none_match_fails(inm, etag);
    }
    match if_modified_since.and_then(parse_http_date) {
        // §13.1.3: not modified when the last modification is at or before the given date.
        Some(since) => unix_seconds(last_modified) <= since,
        None => false,
    }
}

/// Whether `If-Range` lets a `Range` be honoured (RFC 9110 §13.1.5): true without the header;
/// an entity-tag must match by strong comparison (a weak tag never does); an HTTP-date must
/// equal `last_modified` to the second; anything else sends the full representation.
pub fn if_range_allows_partial(
    if_range: Option<&str>,
    etag: &str,
    last_modified: DateTime<Utc>,
) -> bool {
    let Some(value) = if_range.map(str::trim) else {
        return true;
    };
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse_one(value), EntityTag::parse_one(etag)) {
            (Some(theirs), Some(ours)) => theirs.strong_eq(&ours),
            _ => false,
        };
    }
    parse_http_date(value) == Some(unix_seconds(last_modified))
}

/// Whether `If-None-Match` evaluates to false, i.e. the client's copy is current (§13.1.2,
/// weak comparison). A field that parses to nothing matches nothing.
fn none_match_fails(field: &str, etag: &str) -> bool {
    if field.trim() == "*" {
        // The representation exists, or we would not be evaluating preconditions.
        return true;
    }
    let Some(ours) = EntityTag::parse_one(etag) else {
        return false;
    };
    EntityTag::parse_list(field).any(|theirs| theirs.weak_eq(&ours))
}

/// An entity-tag (§8.8.3): `W/` marker and the quoted opaque tag, quotes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    /// One entity-tag filling the whole (trimmed) value.
    fn parse_one(s: &'a str) -> Option<EntityTag<'a>> {
        match Self::parse_prefix(s.trim()) {
            Some((tag, "")) => Some(tag),
            _ => None,
        }
    }

    /// The entity-tags of a comma-separated list. Elements that are not entity-tags are
    /// skipped up to the next comma, so one bad element does not hide the good ones.
    fn parse_list(s: &'a str) -> impl Iterator<Item = EntityTag<'a>> {
        let mut rest = s;
        std::iter::from_fn(move || loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return None;
            }
            if let Some((tag, after)) = Self::parse_prefix(rest) {
                let after = after.trim_start_matches([' ', '\t']);
                if after.is_empty() || after.starts_with(',') {
                    rest = after;
                    return Some(tag);
                }
            }
            rest = rest.find(',').map_or("", |comma| &rest[comma..]);
        })
    }

    /// An entity-tag at the start of `s`, and what follows it.
    fn parse_prefix(s: &'a str) -> Option<(EntityTag<'a>, &'a str)> {
        let (weak, quoted) = match s.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let body = quoted.strip_prefix('"')?;
        let close = body.find('"')?;
        // §8.8.3: etagc is %x21 / %x23-7E / obs-text; no spaces or controls.
        let is_etagc = |b: u8| matches!(b, 0x21 | 0x23..=0x7e | 0x80..=0xff);
        if !body[..close].bytes().all(is_etagc) {
            return None;
        }
        let opaque = &quoted[..close + 2];
        Some((EntityTag { weak, opaque }, &quoted[close + 2..]))
    }

    /// §8.8.3.2 strong comparison: both strong and the opaque tags equal.
    fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// §8.8.3.2 weak comparison: opaque tags equal, whatever the weakness.
    fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Whole seconds since the epoch, clamped to what an HTTP-date can express. Truncation is the
/// one-second precision of HTTP dates (§5.6.7).
fn unix_seconds(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp())
        .unwrap_or(0)
        .min(LAST_HTTP_DATE_SECS)
}

/// Seconds since the epoch of an HTTP-date in any of the three §5.6.7 formats.
fn parse_http_date(s: &str) -> Option<u64> {
    let t: SystemTime = httpdate::parse_http_date(s.trim()).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(secs: i64, millis: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, millis * 1_000_000).unwrap()
    }

    const LM_SECS: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
    const LM_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    /// The tag is what every client's cache holds: a release that computed it differently would
    /// turn every `304` into a full download. Pinned to the value of the formula
    /// (`sha256("5:att_1;4:8192;13:1700000000123;9:image/png;")`, first 16 bytes).
    #[test]
    fn etag_value_is_stable_across_releases() {
        let created = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(
            strong_etag("att_1", 8192, created, "image/png"),
            "\"430bd58742dab1c85749fb07056b0ad7\""
        );
    }

    #[test]
    fn etag_is_strong_quoted_and_depends_on_every_field() {
        let base = strong_etag("a1", 10, t(LM_SECS, 5), "image/png");
        assert_eq!(base.len(), 34);
        assert!(base.starts_with('"') && base.ends_with('"'));
        assert!(base[1..33].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(base, strong_etag("a1", 10, t(LM_SECS, 5), "image/png"));
        for other in [
            strong_etag("a2", 10, t(LM_SECS, 5), "image/png"),
            strong_etag("a1", 11, t(LM_SECS, 5), "image/png"),
            strong_etag("a1", 10, t(LM_SECS, 6), "image/png"),
            strong_etag("a1", 10, t(LM_SECS, 5), "image/jpeg"),
            // Separators keep field boundaries: "a1"+"0" is not "a"+"10".
            strong_etag("a", 110, t(LM_SECS, 5), "image/png"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn http_date_formats_and_clamps() {
        assert_eq!(http_date(t(LM_SECS, 999)), LM_DATE);
        assert_eq!(http_date(t(-5, 0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(t(300_000_000_000, 0)),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn if_none_match_table() {
        let etag = "\"abc\"";
        let lm = t(LM_SECS, 0);
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("  \"abc\"  ", true),
            ("\"a\", \"abc\"", true),
            ("\"a\",\"abc\"", true),
            ("\"a\" ,  W/\"abc\" ", true),
            ("garbage, \"abc\"", true),
            ("*", true),
            (" * ", true),
            ("\"abd\"", false),
            ("\"a\", \"b\"", false),
            ("abc", false),
            ("\"abc", false),
            ("w/\"abc\"", false),
            ("\"abc\"x", false),
            ("\"ab c\"", false),
            ("", false),
            ("garbage", false),
        ];
        for (inm, want) in cases {
            assert_eq!(is_not_modified(Some(inm), None, etag, lm), want, "{inm:?}");
        }
    }

    #[test]
    fn if_modified_since_table() {
        let etag = "\"abc\"";
        let lm = t(LM_SECS, 700); // sub-second part is truncated
        let cases = [
            (LM_DATE, true),
            ("Sun, 06 Nov 1994 08:49:38 GMT", true),
            ("Sun, 06 Nov 1994 08:49:36 GMT", false),
            ("Sunday, 06-Nov-94 08:49:37 GMT", true),
            ("Sun Nov  6 08:49:37 1994", true),
            ("yesterday", false),
            ("", false),
        ];
        for (ims, want) in cases {
            assert_eq!(is_not_modified(None, Some(ims), etag, lm), want, "{ims:?}");
        }
        assert!(!is_not_modified(None, None, etag, lm));
    }

    #[test]
    fn if_none_match_takes_precedence() {
        let lm = t(LM_SECS, 0);
        assert!(!is_not_modified(
            Some("\"other\""),
            Some(LM_DATE),
            "\"abc\"",
            lm
        ));
        assert!(!is_not_modified(
            Some("garbage"),
            Some(LM_DATE),
            "\"abc\"",
            lm
        ));
        assert!(is_not_modified(
            Some("\"abc\""),
            Some("Sun, 06 Nov 1994 08:49:36 GMT"),
            "\"abc\"",
            lm
        ));
    }

    #[test]
    fn if_range_table() {
        let etag = "\"abc\"";
        let lm = t(LM_SECS, 400);
        let cases = [
            (Some("\"abc\""), true),
            (Some(" \"abc\" "), true),
            (Some("W/\"abc\""), false),
            (Some("\"abd\""), false),
            (Some("\"abc\", \"x\""), false),
            (Some(LM_DATE), true),
            (Some("Sun, 06 Nov 1994 08:49:38 GMT"), false),
            (Some("Sun, 06 Nov 1994 08:49:36 GMT"), false),
            (Some("garbage"), false),
            (Some(""), false),
            (None, true),
        ];
        for (if_range, want) in cases {
            assert_eq!(
                if_range_allows_partial(if_range, etag, lm),
                want,
                "{if_range:?}"
            );
        }
        // Our own tag is strong; a weak current tag could never satisfy If-Range.
        assert!(!if_range_allows_partial(Some("W/\"abc\""), "W/\"abc\"", lm));
    }

    proptest! {
        #[test]
        fn etag_is_valid_and_stable(
            id in "\\PC{0,70}",
            size in any::<u64>(),
            millis in -10_000_000_000_000i64..10_000_000_000_000,
            mime in "\\PC{0,40}",
        ) {
            let created = DateTime::from_timestamp_millis(millis).unwrap();
            let etag = strong_etag(&id, size, created, &mime);
            prop_assert_eq!(etag.len(), 34);
            prop_assert!(etag.starts_with('"') && etag.ends_with('"'));
            let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            prop_assert!(etag[1..33].bytes().all(lower_hex));
            prop_assert_eq!(EntityTag::parse_one(&etag).map(|t| t.weak), Some(false));
            prop_assert_eq!(&etag, &strong_etag(&id, size, created, &mime));
            // A client echoing the tag back gets a 304 and may resume with If-Range.
            prop_assert!(is_not_modified(Some(&etag), None, &etag, created));
            prop_assert!(if_range_allows_partial(Some(&etag), &etag, created));
        }

        #[test]
        fn conditionals_never_panic(inm in "\\PC{0,40}", ims in "\\PC{0,40}", secs in any::<i32>()) {
            let lm = t(i64::from(secs), 0);
            let _ = is_not_modified(Some(&inm), Some(&ims), "\"abc\"", lm);
            let _ = is_not_modified(None, Some(&ims), "\"abc\"", lm);
            let _ = if_range_allows_partial(Some(&inm), "\"abc\"", lm);
            let _ = http_date(lm);
        }
    }
}
