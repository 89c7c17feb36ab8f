//! Property tests over arbitrary bytes for every parser a client or a row can feed (issue 14):
//! path normalization and request targets (`route`), `Range`, conditionals, media types and
//! `Content-Disposition` (`http`), upload sniffing (`upload::sniff`). Each asserts no panic
//! plus the invariant that matters. Case counts are set here so that CI stays fast; the JWT
//! header and claims properties live beside the verifier (`src/authn/verify.rs`), where the
//! signing keys are.

use attachment_gateway::http::{conditional, disposition, media, range};
use attachment_gateway::route::{self, target, Route, PREFIX};
use attachment_gateway::upload::sniff;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

const CASES: u32 = 512;

/// Arbitrary bytes, read the way a server reads a header or path: lossily as UTF-8.
fn bytes_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..max)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Text made of what path tricks are made of, mixed with arbitrary bytes.
fn pathish(max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("//".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E%2e".to_owned()),
        Just("%2f".to_owned()),
        Just("%5c".to_owned()),
        Just("\\".to_owned()),
        Just(";x".to_owned()),
        Just("%".to_owned()),
        Just("api".to_owned()),
        Just("API".to_owned()),
        Just("support-chat".to_owned()),
        Just("attachments".to_owned()),
        Just("%61ttachments".to_owned()),
        Just("staged".to_owned()),
        Just(PREFIX.to_owned()),
        "[A-Za-z0-9_-]{1,8}",
        bytes_text(6),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|p| p.concat())
}

fn under_prefix(normalized: &str) -> bool {
    let lower = normalized.to_ascii_lowercase();
    lower == PREFIX || lower.starts_with(&format!("{PREFIX}/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A path whose normalized form is under the prefix is the gateway's, whatever its
    /// spelling: never handed to the app.
    #[test]
    fn a_normalized_path_under_the_prefix_is_never_passthrough(
        method in "GET|HEAD|POST|DELETE|PUT|OPTIONS",
        path in prop_oneof![pathish(12), bytes_text(80)],
    ) {
        let path = if path.starts_with('/') { path } else { format!("/{path}") };
        let route = route::classify(&method, &path);
        if let Ok(normalized) = route::normalize(&path) {
            prop_assert_eq!(route::normalize(&normalized), Ok(normalized.clone()), "idempotent");
            if under_prefix(&normalized) {
                prop_assert_ne!(route, Route::Passthrough, "{:?} -> {:?}", path, normalized);
            }
        }
    }

    /// Any request-target bytes: a refused form never becomes a route, and what is routed has
    /// one of the three accepted forms.
    #[test]
    fn request_targets_of_arbitrary_bytes(
        method in "GET|POST|OPTIONS|CONNECT|[A-Z]{1,7}",
        raw in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            pathish(10).prop_map(String::into_bytes),
        ],
    ) {
        let form = target::form(&method, &raw);
        let path = String::from_utf8_lossy(&raw);
        let route = route::classify_request(&method, &raw, &path);
        if form == target::TargetForm::Refused {
            prop_assert_eq!(route, Route::BadTarget);
        } else {
            prop_assert_ne!(route, Route::BadTarget);
        }
        let lower = raw.to_ascii_lowercase();
        let accepted_shape = raw.first() == Some(&b'/')
            || (raw == b"*" && method == "OPTIONS")
            || lower.starts_with(b"http://")
            || lower.starts_with(b"https://");
        if !accepted_shape {
            prop_assert_eq!(form, target::TargetForm::Refused, "{:?}", path);
        }
    }

    /// A parsed range always lies within the object, and never for an empty object.
    #[test]
    fn a_parsed_range_is_within_the_object(
        header in prop_oneof![bytes_text(60), "bytes=[0-9,\\- ]{0,30}"],
        size in prop_oneof![0u64..4096, any::<u64>()],
    ) {
        if let range::RangeOutcome::Partial(r) = range::evaluate(Some(&header), size) {
            prop_assert!(size > 0);
            prop_assert!(r.start <= r.end && r.end < size, "{:?} of {}", r, size);
            let content_range = range::content_range(r, size);
            prop_assert!(content_range.starts_with("bytes "));
        }
    }

    /// Conditionals over arbitrary header bytes: no panic, and a validator that matches its
    /// own ETag always does.
    #[test]
    fn conditionals_of_arbitrary_bytes(
        inm in bytes_text(60),
        ims in bytes_text(40),
        if_range in bytes_text(60),
        secs in 0i64..4_000_000_000,
    ) {
        let at = Utc.timestamp_opt(secs, 0).unwrap();
        let etag = "\"a1-7\"";
        let _ = conditional::is_not_modified(Some(&inm), Some(&ims), etag, at);
        let _ = conditional::is_not_modified(None, Some(&ims), etag, at);
        let _ = conditional::if_range_allows_partial(Some(&if_range), etag, at);
        prop_assert!(conditional::is_not_modified(Some(etag), None, etag, at));
        prop_assert!(conditional::if_range_allows_partial(Some(etag), etag, at));
    }

    /// A row's `mimeType`, whatever its bytes: either one normalized media type (visible ASCII,
    /// lower-case `type/subtype`, no list, stable when parsed again) or none.
    #[test]
    fn media_types_are_one_normalized_type_or_none(
        raw in prop_oneof![
            bytes_text(60),
            "[a-zA-Z]{1,8}/[a-zA-Z0-9.+-]{0,10}(;[ ]?[a-z]{0,6}=?[a-zA-Z0-9\"-]{0,8}){0,2}(,[a-z/]{0,10})?",
        ],
    ) {
        if let Some(v) = media::normalize(&raw) {
            prop_assert!(v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{:?}", v);
            prop_assert!(!v.contains(','), "{:?}", v);
            let essence = v.split(';').next().unwrap();
            prop_assert_eq!(essence, essence.to_ascii_lowercase());
            prop_assert_eq!(essence.matches('/').count(), 1);
            prop_assert_eq!(media::normalize(&v), Some(v.clone()), "stable");
        }
    }

    /// `Content-Disposition` for any `originalName` bytes: one line of visible ASCII with one
    /// `filename=` and one `filename*=UTF-8''`.
    #[test]
    fn a_disposition_is_one_line_of_visible_ascii_with_its_filename_star(
        name in prop_oneof![bytes_text(200), "\\PC{0,100}"],
        inline in any::<bool>(),
    ) {
        let value = disposition::content_disposition(&name, inline);
        prop_assert!(value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{:?}", value);
        let kind = if inline { "inline; " } else { "attachment; " };
        prop_assert!(value.starts_with(kind), "{:?}", value);
        prop_assert_eq!(value.matches("filename=").count(), 1);
        prop_assert_eq!(value.matches("filename*=UTF-8''").count(), 1);
        prop_assert!(http::HeaderValue::from_str(&value).is_ok());
    }

    /// Sniffing any leading bytes under any declared type: no panic; a type without a
    /// signature is never refused; a signature type is refused on bytes that are not its own.
    #[test]
    fn sniffing_arbitrary_leading_bytes(
        mime in prop_oneof![
            Just("image/png".to_owned()),
            Just("image/jpeg".to_owned()),
            Just("application/pdf".to_owned()),
            Just("audio/mpeg".to_owned()),
            Just("video/mp4".to_owned()),
            Just("text/plain".to_owned()),
            bytes_text(20),
        ],
        head in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let ok = sniff::matches_declared(&mime, &head);
        if !sniff::has_signature(&mime) {
            prop_assert!(ok);
        }
        if mime == "image/png" && !head.starts_with(b"\x89PNG") {
            prop_assert!(!ok);
        }
    }
}
