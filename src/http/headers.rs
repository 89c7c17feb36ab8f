//! Headers of a served attachment (SPEC §3 "Read response policy"), as plain data. Pure.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use http::header::{CACHE_CONTROL, ETAG, LAST_MODIFIED, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{conditional, disposition, media, HttpConfig};
use crate::attachment::{AttachmentRow, Format, SharedRow, Variant, HEAD_KINDS};

/// A header list ready to be written.
pub type HeaderList = Vec<(&'static str, String)>;

/// The validators of a row: strong ETag from immutable fields, `Last-Modified` = `createdAt`.
pub struct Validators {
    pub etag: String,
    pub last_modified: DateTime<Utc>,
    /// What else the answer depends on: a preview's format follows `Accept`.
    pub vary: &'static str,
    /// The request was authenticated by the session cookie, i.e. by a browser that may be
    /// shared: see `caching`.
    pub cookie_session: bool,
}

impl Validators {
    pub fn of(row: &AttachmentRow) -> Self {
        Self::with_etag(row, etag_of(row))
    }

    /// `of` a row the catalog cache shares: its ETag is worked out once per cached row, not
    /// once per read.
    pub fn of_shared(shared: &SharedRow) -> Self {
        Self::with_etag(shared.row(), shared.etag(etag_of).to_owned())
    }

    fn with_etag(row: &AttachmentRow, etag: String) -> Self {
        Validators {
            etag,
            last_modified: row.created_at,
            vary: "Authorization, Cookie",
            cookie_session: false,
        }
    }

    /// A preview of `row` (SPEC §12): a strong ETag per variant and format, from the
    /// attachment's immutable fields, so that a `304` needs no storage call.
    pub fn of_preview(row: &AttachmentRow, variant: Variant, format: Format) -> Self {
        let name = format!("{}/{}.{}", row.id, variant.as_str(), format.as_str());
        Validators {
            etag: conditional::strong_etag(&name, row.size_bytes, row.created_at, format.mime()),
            last_modified: row.created_at,
            vary: "Accept, Authorization, Cookie",
            cookie_session: false,
        }
    }
}

/// The original's strong ETag (`conditional::strong_etag` of its immutable fields).
fn etag_of(row: &AttachmentRow) -> String {
    conditional::strong_etag(&row.id, row.size_bytes, row.created_at, &row.mime_type)
}

/// Caching headers shared by 200, 206 and 304 (RFC 9110 §15.4.5: a 304 carries the validators
/// and `Cache-Control` a 200 would have).
///
/// A cookie-authenticated answer is `private, no-cache`: stored, but revalidated before every
/// use (a `304` from the catalog). `Vary: Cookie` alone does not protect a browser that two
/// people share: Chromium's in-memory cache never sees cookies and served the previous
/// person's pictures after a sign-in (`tests/browser`). Bearer clients keep `max-age`.
pub fn caching(policy: &HttpConfig, v: &Validators) -> HeaderList {
    let cache_control = if v.cookie_session || policy.cache_max_age_s == 0 {
        "private, no-cache".to_string()
    } else {
        format!("private, max-age={}", policy.cache_max_age_s)
    };
    vec![
        ("etag", v.etag.clone()),
        ("last-modified", conditional::http_date(v.last_modified)),
        ("cache-control", cache_control),
        // A browser shared by two people must revalidate rather than show one the other's file.
        ("vary", v.vary.to_string()),
    ]
}

/// The full header set of a 200/206 body response, except `Content-Length`/`Content-Range`.
pub fn representation(
    policy: &HttpConfig,
    row: &AttachmentRow,
    v: &Validators,
    force_download: bool,
) -> HeaderList {
    // What is not exactly one media type is served as opaque bytes, as a download; what is,
    // is sent normalized and judged inline on that same value.
    let (content_type, inline) = match media::normalize(&row.mime_type) {
        Some(normalized) => {
            let inline =
                !force_download && disposition::is_inline(&normalized, &policy.inline_types);
            (normalized, inline)
        }
        None => ("application/octet-stream".to_string(), false),
    };
    let mut headers = caching(policy, v);
    headers.extend([
        ("content-type", content_type),
        (
            "content-disposition",
            disposition::content_disposition(&row.original_name, inline),
        ),
        ("accept-ranges", "bytes".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        (
            "cross-origin-resource-policy",
            policy.cross_origin_resource_policy.clone(),
        ),
    ]);
    headers
}

/// `representation` of a row the catalog cache shares, as a header map made by the first read
/// of its kind (cookie session or not, download or not) and shared by the rest: building the
/// values (media type, disposition, date, a dozen strings) per read was 5 % of a `200` from
/// memory (BENCHMARKS.md). `None` when the row makes a value that is not a valid header value.
///
/// Validators of another object (a preview's tag) get a map of their own, never the row's.
pub fn shared_representation<'a>(
    policy: &HttpConfig,
    shared: &'a SharedRow,
    v: &Validators,
    force_download: bool,
) -> Option<Cow<'a, HeaderMap>> {
    let kind = usize::from(v.cookie_session) * 2 + usize::from(force_download);
    debug_assert!(kind < HEAD_KINDS);
    // The slot holds the row's own head, whoever fills it.
    let derive = |row: &AttachmentRow| {
        let mut own = Validators::of_shared(shared);
        own.cookie_session = v.cookie_session;
        header_map(representation(policy, row, &own, force_download))
    };
    match shared.head(kind, derive) {
        Some(map) if map.get(ETAG).is_some_and(|etag| etag == v.etag.as_str()) => {
            Some(Cow::Borrowed(map))
        }
        Some(_) => {
            header_map(representation(policy, shared.row(), v, force_download)).map(Cow::Owned)
        }
        None => None,
    }
}

/// `caching`'s headers, taken from a `shared_representation`.
pub fn caching_of(representation: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    [ETAG, LAST_MODIFIED, CACHE_CONTROL, VARY]
        .iter()
        .filter_map(|name| representation.get(name).map(|value| (name, value)))
}

/// A header list as a map; `None` if a value is not a valid header value.
pub fn header_map(list: HeaderList) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::try_from(value).ok()?,
        );
    }
    Some(map)
}

/// `?download=1` (or `true`) forces `Content-Disposition: attachment`.
pub fn wants_download(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(k, v)| k == "download" && (v == "1" || v.eq_ignore_ascii_case("true")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachment::AttachmentStatus;
    use chrono::TimeZone;

    fn policy() -> HttpConfig {
        HttpConfig {
            cache_max_age_s: 300,
            max_object_bytes: 1 << 30,
            inline_types: disposition::default_inline_types(),
            cross_origin_resource_policy: "same-origin".into(),
            allowed_origins: Vec::new(),
        }
    }

    fn row(mime: &str, name: &str) -> AttachmentRow {
        AttachmentRow {
            id: "att1".into(),
            dialog_id: Some("d1".into()),
            message_id: None,
            storage_path: "support-chat/dialogs/d1/att1".into(),
            mime_type: mime.into(),
            size_bytes: 10,
            original_name: name.into(),
            created_by_user_id: "u1".into(),
            status: AttachmentStatus::Linked,
            created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            linked_at: None,
            dialog_owner_id: Some("u1".into()),
            image: Default::default(),
        }
    }

    fn get<'a>(h: &'a HeaderList, name: &str) -> &'a str {
        h.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn a_shared_row_gives_every_read_the_same_validators_as_the_row() {
        let r = row("image/png", "a.png");
        let shared = SharedRow::new(r.clone());
        let first = Validators::of_shared(&shared);
        let again = Validators::of_shared(&shared);
        assert_eq!(first.etag, Validators::of(&r).etag);
        assert_eq!(again.etag, first.etag);
        assert_eq!(again.last_modified, r.created_at);
        let other = SharedRow::new(row("image/jpeg", "a.png"));
        assert_ne!(
            Validators::of_shared(&other).etag,
            first.etag,
            "the type is in the tag"
        );
    }

    #[test]
    fn a_shared_head_is_the_representation_of_its_kind_and_never_another_tags() {
        let r = row("image/png", "cat.png");
        let shared = SharedRow::new(r.clone());
        for cookie_session in [false, true] {
            for download in [false, true] {
                let mut v = Validators::of_shared(&shared);
                v.cookie_session = cookie_session;
                let expected = header_map(representation(&policy(), &r, &v, download)).unwrap();
                for _ in 0..2 {
                    let made = shared_representation(&policy(), &shared, &v, download).unwrap();
                    assert_eq!(
                        *made, expected,
                        "cookie {cookie_session} download {download}"
                    );
                }
            }
        }
        // Validators of another object (a preview's tag) on the same row: its own head.
        let mut other = Validators::of_shared(&shared);
        other.etag = "\"another\"".into();
        let made = shared_representation(&policy(), &shared, &other, false).unwrap();
        assert_eq!(made.get("etag").unwrap(), "\"another\"");
        let caching: Vec<_> = caching_of(&made).map(|(n, _)| n.as_str()).collect();
        assert_eq!(caching, ["etag", "last-modified", "cache-control", "vary"]);
    }

    #[test]
    fn a_row_that_makes_no_valid_header_value_has_no_shared_head() {
        let r = row("image/png", "cat.png");
        let shared = SharedRow::new(r);
        let mut v = Validators::of_shared(&shared);
        v.etag = "bad\r\nvalue".into();
        assert!(shared_representation(&policy(), &shared, &v, false).is_none());
        // ... and that caller did not spoil the row's own head.
        let own = Validators::of_shared(&shared);
        let made = shared_representation(&policy(), &shared, &own, false).unwrap();
        assert_eq!(made.get("etag").unwrap(), own.etag.as_str());
    }

    #[test]
    fn a_cookie_session_revalidates_every_time_and_a_bearer_client_may_keep_its_copy() {
        let r = row("image/png", "a.png");
        let cache_control = |v: &Validators, p: &HttpConfig| {
            caching(p, v)
                .into_iter()
                .find(|(k, _)| *k == "cache-control")
                .unwrap()
                .1
        };
        let mut v = Validators::of(&r);
        assert_eq!(cache_control(&v, &policy()), "private, max-age=300");
        v.cookie_session = true;
        assert_eq!(cache_control(&v, &policy()), "private, no-cache");
        let zero = HttpConfig {
            cache_max_age_s: 0,
            ..policy()
        };
        v.cookie_session = false;
        assert_eq!(cache_control(&v, &zero), "private, no-cache");
    }

    #[test]
    fn image_is_inline_with_private_caching_and_safety_headers() {
        let r = row("image/png", "cat.png");
        let h = representation(&policy(), &r, &Validators::of(&r), false);
        assert_eq!(get(&h, "content-type"), "image/png");
        assert!(get(&h, "content-disposition").starts_with("inline;"));
        assert_eq!(get(&h, "cache-control"), "private, max-age=300");
        assert_eq!(get(&h, "vary"), "Authorization, Cookie");
        assert_eq!(get(&h, "x-content-type-options"), "nosniff");
        assert_eq!(get(&h, "cross-origin-resource-policy"), "same-origin");
        assert_eq!(get(&h, "last-modified"), "Fri, 02 Jan 2026 03:04:05 GMT");
        assert_eq!(get(&h, "accept-ranges"), "bytes");
    }

    #[test]
    fn download_flag_and_active_types_become_attachments() {
        let r = row("image/png", "cat.png");
        let h = representation(&policy(), &r, &Validators::of(&r), true);
        assert!(get(&h, "content-disposition").starts_with("attachment;"));
        let svg = row("image/svg+xml", "x.svg");
        let h = representation(&policy(), &svg, &Validators::of(&svg), false);
        assert!(get(&h, "content-disposition").starts_with("attachment;"));
        assert_eq!(get(&h, "content-type"), "image/svg+xml");
    }

    #[test]
    fn an_invalid_stored_type_is_served_as_opaque_bytes() {
        let r = row("text/html\r\nSet-Cookie: a=b", "x.html");
        let h = representation(&policy(), &r, &Validators::of(&r), false);
        assert_eq!(get(&h, "content-type"), "application/octet-stream");
        assert!(get(&h, "content-disposition").starts_with("attachment;"));
    }

    #[test]
    fn a_list_of_types_is_opaque_bytes_and_one_type_is_sent_normalized() {
        let list = row("image/png;a=b,text/html", "x.png");
        let h = representation(&policy(), &list, &Validators::of(&list), false);
        assert_eq!(get(&h, "content-type"), "application/octet-stream");
        assert!(get(&h, "content-disposition").starts_with("attachment;"));
        let one = row("Image/PNG; x=\"a,b\"", "x.png");
        let h = representation(&policy(), &one, &Validators::of(&one), false);
        assert_eq!(get(&h, "content-type"), "image/png");
        assert!(get(&h, "content-disposition").starts_with("inline;"));
    }

    #[test]
    fn download_query_parsing() {
        assert!(wants_download(Some("download=1")));
        assert!(wants_download(Some("a=b&download=true")));
        assert!(!wants_download(Some("download=0")));
        assert!(!wants_download(None));
    }
}
