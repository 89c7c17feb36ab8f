//! Path normalization and route matching (SPEC §3 "Public routes"): decides whether a request
//! is the gateway's and which route it is. Pure; it never rewrites what is forwarded to the app.
//!
//! A path is read two ways. The strict reading normalizes like RFC 3986 §6.2.2 (decode
//! unreserved escapes, collapse `//`, remove dot segments) and is the one routes match. The
//! lenient reading decodes every escape, takes `\` for `/`, drops `;params` and keeps dot
//! segments in view: whatever any reasonable app could route to the attachments prefix under
//! some reading is captured by the gateway (and refused when the strict reading is not a
//! route), so that a creative spelling never reaches the app's own handlers.

pub mod target;

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::attachment::is_valid_id;
use target::TargetForm;

pub const PREFIX: &str = "/api/support-chat/attachments";

const STAGED_SEGMENT: &str = "staged";
const ALLOW_UPLOAD: &str = "POST";
const ALLOW_LINKED: &str = "GET, HEAD";
const ALLOW_STAGED: &str = "GET, HEAD, DELETE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD PREFIX/{dialogId}/{attachmentId}`.
    LinkedRead {
        dialog_id: String,
        attachment_id: String,
    },
    /// `GET`/`HEAD PREFIX/staged/{attachmentId}`.
    StagedRead { attachment_id: String },
    /// `POST PREFIX` (also `PREFIX/`).
    Upload,
    /// `DELETE PREFIX/staged/{attachmentId}`.
    StagedDelete { attachment_id: String },
    /// A known route shape with the wrong method; `allow` is the `Allow` header value.
    MethodNotAllowed { allow: &'static str },
    /// Under the prefix but no route, or a bad id: `404`.
    NotFound,
    /// Under the prefix (or possibly so) with an encoding we refuse to interpret: `400`.
    BadRequest,
    /// A request-target that is not origin-form, absolute-form or `OPTIONS *`: `400`, never
    /// forwarded, whatever its path would say.
    BadTarget,
    /// Not the gateway's: forward the original request target to the app unchanged.
    Passthrough,
}

/// A `%` not followed by two hex digits (RFC 3986 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    /// Byte offset of the offending `%` in the input.
    pub at: usize,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed percent-encoding at byte {}", self.at)
    }
}

impl std::error::Error for Malformed {}

/// Classify a request by method, raw request-target and the path Pingora read from it: a
/// target of a refused form is nobody's route (SPEC §3 "Request targets").
pub fn classify_request(method: &str, target: &[u8], path: &str) -> Route {
    match target::form(method, target) {
        TargetForm::Refused => Route::BadTarget,
        TargetForm::Origin | TargetForm::Absolute | TargetForm::Asterisk => classify(method, path),
    }
}

/// Classify a request by method and path (the request target without its query).
pub fn classify(method: &str, path: &str) -> Route {
    match normalize(path) {
        Ok(normalized) if under_prefix(&normalized) => classify_ours(method, &normalized),
        _ if lenient_reading_under_prefix(path) => Route::BadRequest,
        _ => Route::Passthrough,
    }
}

/// The strict reading: percent-decode unreserved characters (RFC 3986 §2.3, §6.2.2.2) and
/// upper-case the hex of the other escapes (§6.2.2.1), collapse duplicate slashes, then remove
/// dot segments (§5.2.4), so `%2e%2e` counts as `..`. Other escapes (`%2F` included) stay
/// encoded. Only a malformed escape is an error.
pub fn normalize(path: &str) -> Result<String, Malformed> {
    // Every request pays for this: a path with no escape, no dot and no double slash (every
    // read's, as the app builds them) is its own normal form, so skip the three passes.
    if is_plain(path) {
        return Ok(path.to_owned());
    }
    normalize_by_steps(path)
}

fn normalize_by_steps(path: &str) -> Result<String, Malformed> {
    let decoded = decode_unreserved(path)?;
    Ok(remove_dot_segments(&collapse_slashes(&decoded)))
}

/// Nothing for `normalize` to do: no `%` to decode, no `.` to make a dot segment of, no `//`.
fn is_plain(path: &str) -> bool {
    !path.bytes().any(|b| b == b'%' || b == b'.') && !path.contains("//")
}

/// Routes for a normalized path already known to be under the prefix.
fn classify_ours(method: &str, normalized: &str) -> Route {
    if has_refused_encoding(normalized) {
        return Route::BadRequest;
    }
    // Other spellings of the prefix (`/API/...`) are captured but not served: the routes are
    // the exact ones of the contract.
    match normalized.strip_prefix(PREFIX) {
        Some(rest) => match_route(method, rest.strip_prefix('/').unwrap_or(rest)),
        None => Route::NotFound,
    }
}

/// `rest` is what follows `PREFIX/`, e.g. `d1/a1` or `staged/a1`.
fn match_route(method: &str, rest: &str) -> Route {
    if rest.is_empty() {
        return match method {
            "POST" => Route::Upload,
            _ => Route::MethodNotAllowed {
                allow: ALLOW_UPLOAD,
            },
        };
    }
    let mut segments = rest.split('/');
    let (first, second, extra) = (segments.next(), segments.next(), segments.next());
    let (Some(first), Some(second), None) = (first, second, extra) else {
        return Route::NotFound;
    };
    // `staged` always means the staged routes; other spellings of it are no dialog id either.
    if first.eq_ignore_ascii_case(STAGED_SEGMENT) {
        if first != STAGED_SEGMENT || !is_valid_id(second) {
            return Route::NotFound;
        }
        let attachment_id = second.to_owned();
        return match method {
            "GET" | "HEAD" => Route::StagedRead { attachment_id },
            "DELETE" => Route::StagedDelete { attachment_id },
            _ => Route::MethodNotAllowed {
                allow: ALLOW_STAGED,
            },
        };
    }
    if !is_valid_id(first) || !is_valid_id(second) {
        return Route::NotFound;
    }
    match method {
        "GET" | "HEAD" => Route::LinkedRead {
            dialog_id: first.to_owned(),
            attachment_id: second.to_owned(),
        },
        _ => Route::MethodNotAllowed {
            allow: ALLOW_LINKED,
        },
    }
}

/// ASCII case-insensitive: exactly the prefix, or the prefix followed by `/`.
fn under_prefix(path: &str) -> bool {
    let (prefix, path) = (PREFIX.as_bytes(), path.as_bytes());
    path.len() >= prefix.len()
        && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(path.get(prefix.len()), None | Some(b'/'))
}

/// Escapes and characters that servers disagree on, so we interpret none of them: encoded
/// `/` or `\`, encoded or raw controls (NUL included), a raw `\`, escapes that are not UTF-8.
fn has_refused_encoding(normalized: &str) -> bool {
    if normalized.chars().any(|c| c == '\\' || c.is_control()) {
        return true;
    }
    if !normalized.contains('%') {
        // A &str without escapes decodes to itself, valid UTF-8, with nothing encoded in it.
        return false;
    }
    let decoded: Vec<u8> = percent_decode_str(normalized).collect();
    if std::str::from_utf8(&decoded).is_err() {
        return true;
    }
    // After `normalize`, every `%` starts a well-formed escape.
    normalized
        .as_bytes()
        .windows(3)
        .filter(|w| w[0] == b'%')
        .filter_map(|w| hex_pair(w[1], w[2]))
        .any(|b| b == b'/' || b == b'\\' || b.is_ascii_control())
}

/// The lenient reading: every escape decoded (malformed ones kept as text), `\` as `/`,
/// `;params` dropped from segments (servlet-style), slashes collapsed; under the prefix with
/// or without removing dot segments (raw `..` in a request is never a browser's doing).
fn lenient_reading_under_prefix(path: &str) -> bool {
    let decoded = percent_decode_str(path)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let without_params: Vec<&str> = decoded
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or_default())
        .collect();
    let collapsed = collapse_slashes(&without_params.join("/"));
    under_prefix(&collapsed) || under_prefix(&remove_dot_segments(&collapsed))
}

fn decode_unreserved(path: &str) -> Result<String, Malformed> {
    const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let value = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| hex_pair(hex[0], hex[1]))
                .ok_or(Malformed { at: i })?;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(value >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(value & 0x0f)]));
            }
            i += 3;
        } else {
            // `i` is on a char boundary: escapes are three ASCII bytes.
            let Some(c) = path[i..].chars().next() else {
                break;
            };
            out.push(c);
            i += c.len_utf8();
        }
    }
    Ok(out)
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| char::from(b).to_digit(16);
    let value = digit(high)? * 16 + digit(low)?;
    u8::try_from(value).ok()
}

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// RFC 3986 §5.2.4 `remove_dot_segments`, step by step (letters as in the RFC).
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix("../")
            .or_else(|| input.strip_prefix("./"))
        {
            input = rest; // A
        } else if input.starts_with("/./") {
            input = &input[2..]; // B
        } else if input == "/." {
            input = "/"; // B
        } else if input.starts_with("/../") {
            input = &input[3..]; // C
            pop_segment(&mut output);
        } else if input == "/.." {
            input = "/"; // C
            pop_segment(&mut output);
        } else if input == "." || input == ".." {
            input = ""; // D
        } else {
            // E: move the first segment, with its leading `/`, to the output.
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

fn pop_segment(output: &mut String) {
    let cut = output.rfind('/').unwrap_or(0);
    output.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn linked(dialog: &str, attachment: &str) -> Route {
        Route::LinkedRead {
            dialog_id: dialog.to_owned(),
            attachment_id: attachment.to_owned(),
        }
    }

    fn staged_read(id: &str) -> Route {
        Route::StagedRead {
            attachment_id: id.to_owned(),
        }
    }

    #[test]
    fn routes_and_methods() {
        let p = PREFIX;
        let cases = [
            ("GET", format!("{p}/d1/a1"), linked("d1", "a1")),
            ("HEAD", format!("{p}/d1/a1"), linked("d1", "a1")),
            (
                "GET",
                format!("{p}/clx9_Ab-Z/u-u_1"),
                linked("clx9_Ab-Z", "u-u_1"),
            ),
            (
                "POST",
                format!("{p}/d1/a1"),
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            (
                "DELETE",
                format!("{p}/d1/a1"),
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
            ("GET", format!("{p}/staged/a1"), staged_read("a1")),
            ("HEAD", format!("{p}/staged/a1"), staged_read("a1")),
            (
                "DELETE",
                format!("{p}/staged/a1"),
                Route::StagedDelete {
                    attachment_id: "a1".into(),
                },
            ),
            (
                "PUT",
                format!("{p}/staged/a1"),
                Route::MethodNotAllowed {
                    allow: "GET, HEAD, DELETE",
                },
            ),
            ("POST", p.to_owned(), Route::Upload),
            ("POST", format!("{p}/"), Route::Upload),
            ("POST", format!("{p}//"), Route::Upload),
            (
                "GET",
                p.to_owned(),
                Route::MethodNotAllowed { allow: "POST" },
            ),
            // Methods are case-sensitive (RFC 9110 §9.1).
            (
                "get",
                format!("{p}/d1/a1"),
                Route::MethodNotAllowed { allow: "GET, HEAD" },
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(classify(method, &path), want, "{method} {path}");
        }
    }

    #[test]
    fn spellings() {
        use Route::{BadRequest, NotFound, Passthrough};
        let p = PREFIX;
        let max_id = "a".repeat(64);
        let long_id = "a".repeat(65);
        let cases = [
            // Encoded unreserved characters, duplicate slashes, dot segments.
            (format!("{p}/%64%31/%61%31"), linked("d1", "a1")),
            (
                "/%61pi/support-chat/attachments/d1/a1".into(),
                linked("d1", "a1"),
            ),
            (
                "/api/support%2Dchat/attachments/d1/a1".into(),
                linked("d1", "a1"),
            ),
            (
                "//api//support-chat///attachments//d1//a1".into(),
                linked("d1", "a1"),
            ),
            (
                "/api/./support-chat/attachments/./d1/a1".into(),
                linked("d1", "a1"),
            ),
            (
                "/x/../api/support-chat/attachments/d1/a1".into(),
                linked("d1", "a1"),
            ),
            (
                "/x/%2e%2e/api/support-chat/attachments/d1/a1".into(),
                linked("d1", "a1"),
            ),
            (
                "/x/%2E%2e/api/support-chat/attachments/d1/a1".into(),
                linked("d1", "a1"),
            ),
            (
                "/x/.%2E/api/support-chat/attachments/d1/a1".into(),
                linked("d1", "a1"),
            ),
            (format!("{p}/x/../d1/a1"), linked("d1", "a1")),
            (format!("{p}/staged/%61%31"), staged_read("a1")),
            (format!("{p}/{max_id}/{max_id}"), linked(&max_id, &max_id)),
            // Under the prefix, no route.
            (format!("{p}/d1/a1/"), NotFound),
            (format!("{p}/d1/a1/."), NotFound),
            (format!("{p}/d1/a1/x"), NotFound),
            (format!("{p}/d1"), NotFound),
            (format!("{p}/d1/"), NotFound),
            (format!("{p}/staged"), NotFound),
            (format!("{p}/staged/"), NotFound),
            (format!("{p}/staged/a1/"), NotFound),
            (format!("{p}/staged/a.1"), NotFound),
            (format!("{p}/STAGED/a1"), NotFound),
            (format!("{p}/d.1/a1"), NotFound),
            (format!("{p}/d1/a1.png"), NotFound),
            (format!("{p}/d1/a%20b"), NotFound),
            (format!("{p}/d1/%C3%A9"), NotFound),
            (format!("{p}/d1/é"), NotFound),
            (format!("{p}/{long_id}/a1"), NotFound),
            (format!("{p}/d1/{long_id}"), NotFound),
            (format!("{p}/d1;x/a1"), NotFound),
            // Other cases of the prefix are ours, but only the exact routes are served.
            ("/API/Support-Chat/Attachments/d1/a1".into(), NotFound),
            ("/API/SUPPORT-CHAT/ATTACHMENTS".into(), NotFound),
            ("/api/support-chat/%41ttachments/d1/a1".into(), NotFound),
            // Encodings we refuse to interpret.
            (format!("{p}/d1%2Fa1"), BadRequest),
            (format!("{p}/d1%2fa1"), BadRequest),
            (format!("{p}%2Fd1%2Fa1"), BadRequest),
            ("/api%2Fsupport-chat%2Fattachments/d1/a1".into(), BadRequest),
            ("/api\\support-chat\\attachments\\d1\\a1".into(), BadRequest),
            ("/api/support-chat/attachments\\d1".into(), BadRequest),
            (format!("{p}/d1\\a1"), BadRequest),
            (format!("{p}/d1%5Ca1"), BadRequest),
            (format!("{p}/d1/a1%00"), BadRequest),
            (format!("{p}/d1/a1\0"), BadRequest),
            (format!("{p}/d1/%0A"), BadRequest),
            (format!("{p}/d1/%FF"), BadRequest),
            (format!("{p}/d1/%C0%AF"), BadRequest),
            (format!("{p}/%zz"), BadRequest),
            (format!("{p}/d1/a%4"), BadRequest),
            (format!("{p}/d1/a1%"), BadRequest),
            ("/api/support-chat/attachments%2F".into(), BadRequest),
            (
                "/api/support-chat/%zz/../attachments/d1/a1".into(),
                BadRequest,
            ),
            // Dot segments that climb out of the prefix are not forwarded either.
            (format!("{p}/.."), BadRequest),
            (format!("{p}/../x"), BadRequest),
            (format!("{p}/%2e%2e/%2e%2e/x"), BadRequest),
            (format!("{p}/d1/../../../admin"), BadRequest),
            (format!("{p}/..\\..\\x"), BadRequest),
            (
                "/api/support-chat/attachments;jsessionid=1/d1/a1".into(),
                BadRequest,
            ),
            ("/api;x/support-chat/attachments/d1/a1".into(), BadRequest),
            // Not ours.
            ("/".into(), Passthrough),
            ("".into(), Passthrough),
            ("*".into(), Passthrough),
            ("/api/support-chat/messages".into(), Passthrough),
            ("/api/support-chat/attachment".into(), Passthrough),
            ("/api/support-chat/attachmentsX/d1/a1".into(), Passthrough),
            ("/api/support-chat/attachments-old/d1".into(), Passthrough),
            ("/api/support-chat/attachments%20".into(), Passthrough),
            (
                "/api/support-chat/x/../../attachments/d1".into(),
                Passthrough,
            ),
            ("/static/%zz".into(), Passthrough),
            ("/static/a%2Fb".into(), Passthrough),
            ("/static/../../etc/passwd".into(), Passthrough),
        ];
        for (path, want) in cases {
            assert_eq!(classify("GET", &path), want, "{path:?}");
        }
    }

    #[test]
    fn normalize_table() {
        let cases = [
            ("/a/%7Euser", "/a/~user"),
            ("/%41%62%2d%2E%5f", "/Ab-._"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%c3%a9", "/a%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/a/é", "/a/é"),
            ("/a/b/../c", "/a/c"),
            ("/a/./b", "/a/b"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../a", "/a"),
            ("/%2e%2E/a", "/a"),
            ("//a///b//", "/a/b/"),
            ("/a//../b", "/b"),
            ("/a/..b/.c", "/a/..b/.c"),
            ("", ""),
            ("/", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input:?}");
        }
        for (input, at) in [("%zz", 0), ("/a%4", 2), ("/a/%", 3), ("/é%g0", 3)] {
            assert_eq!(normalize(input), Err(Malformed { at }), "{input:?}");
        }
    }

    proptest! {
        #[test]
        fn classify_never_panics(method in "GET|HEAD|POST|DELETE|\\PC{0,8}", path in "\\PC{0,80}") {
            let _ = classify(&method, &path);
        }

        #[test]
        fn junk_under_the_prefix_is_never_forwarded(
            method in "GET|HEAD|POST|DELETE|PUT",
            junk in "\\PC{0,60}|[./\\\\%a-fA-F0-9;]{0,40}",
        ) {
            let path = format!("{PREFIX}/{junk}");
            prop_assert_ne!(classify(&method, &path), Route::Passthrough, "{}", path);
        }

        #[test]
        fn the_plain_shortcut_changes_nothing(path in "\\PC{0,80}|[./\\\\%a-fA-F0-9]{0,40}") {
            prop_assert_eq!(normalize(&path), normalize_by_steps(&path));
        }

        #[test]
        fn normalize_is_idempotent(path in "\\PC{0,80}|[./\\\\%a-fA-F0-9]{0,40}") {
            if let Ok(once) = normalize(&path) {
                prop_assert_eq!(normalize(&once), Ok(once.clone()));
            }
        }

        #[test]
        fn valid_ids_route(dialog in "[A-Za-z0-9_-]{1,64}", attachment in "[A-Za-z0-9_-]{1,64}") {
            let path = format!("{PREFIX}/{dialog}/{attachment}");
            let want = if dialog.eq_ignore_ascii_case("staged") {
                if dialog == "staged" { staged_read(&attachment) } else { Route::NotFound }
            } else {
                linked(&dialog, &attachment)
            };
            prop_assert_eq!(classify("GET", &path), want);
        }
    }
}
