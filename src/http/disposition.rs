//! `Content-Disposition` (RFC 6266, filenames per RFC 8187) and the inline-or-download choice.
//! The stored `originalName` is user input: it is sanitized here and never reaches a header raw.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest file name we announce, in characters; the extension survives the cut.
const MAX_NAME_CHARS: usize = 150;
/// An "extension" longer than this is just part of a long name.
const MAX_EXTENSION_CHARS: usize = 16;
/// Name announced when nothing usable is left of the original.
const FALLBACK_NAME: &str = "download";

/// RFC 8187 §3.2.1 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" /
/// "_" / "`" / "|" / "~". Everything else is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The `http.inline_types` default: media a browser shows without running anything.
pub fn default_inline_types() -> Vec<String> {
    [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "application/pdf",
        "audio/*",
        "video/*",
        "text/plain",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// True when `mime` (parameters such as `; charset=` ignored, case-insensitive) is in
/// `inline_types` (exact, `type/*` or `*/*`) and is not an active type: SVG, HTML, XHTML, any
/// XML, anything JavaScript/ECMAScript, `multipart/*`.
///
/// The active types are refused whatever the configuration says: shown inline on our origin,
/// they could run script with the user's session.
pub fn is_inline(mime: &str, inline_types: &[String]) -> bool {
    let essence = mime.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    if kind.is_empty() || subtype.is_empty() || is_active(kind, subtype) {
        return false;
    }
    inline_types.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.split_once('/') {
            Some((p_kind, "*")) => p_kind == "*" || p_kind == kind,
            Some((p_kind, p_subtype)) => p_kind == kind && p_subtype == subtype,
            None => false,
        }
    })
}

/// Types a browser may execute or render as a document with script.
fn is_active(kind: &str, subtype: &str) -> bool {
    kind == "multipart"
        || subtype.contains("javascript")
        || subtype.contains("ecmascript")
        // Any XML (`+xml` included) can carry XHTML or SVG script via namespaces.
        || subtype == "xml"
        || subtype.ends_with("+xml")
        || subtype == "xsl"
        || subtype == "xslt+xml"
        || (kind == "text" && subtype == "html")
}

/// `inline; filename="<ascii fallback>"; filename*=UTF-8''<pct-encoded>` (or `attachment; ...`).
///
/// RFC 6266 §4.3: `filename*` (RFC 8187) carries the real name; the quoted `filename` is the
/// ASCII fallback for clients without RFC 8187 support.
pub fn content_disposition(original_name: &str, inline: bool) -> String {
    let name = sanitize(original_name);
    let kind = if inline { "inline" } else { "attachment" };
    let encoded = utf8_percent_encode(&name, ATTR_CHAR_ESCAPES);
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{encoded}",
        ascii_fallback(&name)
    )
}

/// The file name reduced to something safe to show and save: no controls, no bidi or
/// zero-width tricks (`abc\u{202E}fdp.exe` would read as `abcexe.pdf`), no directories, no
/// leading or trailing dots and spaces, never empty, bounded in length.
fn sanitize(original: &str) -> String {
    let visible: String = original.chars().filter(|&c| !is_hidden(c)).collect();
    let last = visible
        .rsplit(['/', '\\'])
        .map(trim_name)
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    if last.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    cap_length(last)
}

fn trim_name(s: &str) -> &str {
    s.trim_matches(|c: char| c == '.' || c.is_whitespace())
}

/// Characters dropped from names: controls (C0, DEL, C1, so CR/LF too), bidi controls, zero-width
/// and other invisible format characters, and line/paragraph separators.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{00AD}'
                | '\u{180E}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Cut a long name to [`MAX_NAME_CHARS`], keeping a short extension so the saved file still
/// opens with the right program.
fn cap_length(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.chars().count() <= MAX_EXTENSION_CHARS);
    match extension {
        Some(ext) => {
            let keep = MAX_NAME_CHARS - ext.chars().count() - 1;
            let stem: String = name.chars().take(keep).collect();
            format!("{}.{ext}", trim_name(&stem))
        }
        None => trim_name(&name.chars().take(MAX_NAME_CHARS).collect::<String>()).to_owned(),
    }
}

/// The quoted-string fallback (RFC 6266 §4.3): ASCII only, and none of the characters that a
/// careless parser could take for the end of the value or a new parameter.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '\\' | '%' | ';' | '=' => '_',
            c if c.is_ascii() => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inline_decision() {
        let types = default_inline_types();
        let cases = [
            ("image/png", true),
            ("IMAGE/PNG", true),
            ("image/jpeg; charset=binary", true),
            (" application/pdf ", true),
            ("video/mp4", true),
            ("audio/ogg; codecs=opus", true),
            ("text/plain; charset=utf-8", true),
            ("image/svg+xml", false),
            ("image/SVG+XML", false),
            ("text/html", false),
            ("text/html; charset=utf-8", false),
            ("application/xhtml+xml", false),
            ("text/xml", false),
            ("application/xml", false),
            ("text/javascript", false),
            ("application/x-javascript", false),
            ("application/ecmascript", false),
            ("multipart/form-data", false),
            ("application/octet-stream", false),
            ("application/zip", false),
            ("image/tiff", false),
            ("image", false),
            ("", false),
            ("/", false),
        ];
        for (mime, want) in cases {
            assert_eq!(is_inline(mime, &types), want, "{mime:?}");
        }
    }

    #[test]
    fn active_types_are_never_inline_whatever_the_config() {
        let everything = vec!["*/*".to_owned(), "image/*".to_owned(), "text/*".to_owned()];
        for mime in ["image/svg+xml", "text/html", "text/xml", "multipart/mixed"] {
            assert!(!is_inline(mime, &everything), "{mime}");
        }
        assert!(is_inline("image/heic", &everything));
        assert!(is_inline("text/csv", &["text/*".to_owned()]));
        assert!(!is_inline("image/png", &[]));
    }

    #[test]
    fn disposition_table() {
        let cases = [
            (
                "report.pdf",
                true,
                "inline; filename=\"report.pdf\"; filename*=UTF-8''report.pdf",
            ),
            (
                "my photo.png",
                false,
                "attachment; filename=\"my photo.png\"; filename*=UTF-8''my%20photo.png",
            ),
            (
                "a\"; x=y",
                false,
                "attachment; filename=\"a__ x_y\"; filename*=UTF-8''a%22%3B%20x%3Dy",
            ),
            (
                "..\\..\\evil.exe",
                false,
                "attachment; filename=\"evil.exe\"; filename*=UTF-8''evil.exe",
            ),
            (
                "/etc/passwd",
                false,
                "attachment; filename=\"passwd\"; filename*=UTF-8''passwd",
            ),
            (
                "a\r\nSet-Cookie: x",
                false,
                "attachment; filename=\"aSet-Cookie: x\"; filename*=UTF-8''aSet-Cookie%3A%20x",
            ),
            (
                "abc\u{202E}fdp.exe",
                false,
                "attachment; filename=\"abcfdp.exe\"; filename*=UTF-8''abcfdp.exe",
            ),
            (
                "Отчёт.pdf",
                true,
                "inline; filename=\"_____.pdf\"; \
                 filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82.pdf",
            ),
            (
                "😀.png",
                true,
                "inline; filename=\"_.png\"; filename*=UTF-8''%F0%9F%98%80.png",
            ),
            (
                "50%\\off.txt",
                false,
                "attachment; filename=\"off.txt\"; filename*=UTF-8''off.txt",
            ),
            (
                "100%.txt",
                false,
                "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt",
            ),
            (
                "  .hidden. ",
                false,
                "attachment; filename=\"hidden\"; filename*=UTF-8''hidden",
            ),
            (
                "dir/",
                false,
                "attachment; filename=\"dir\"; filename*=UTF-8''dir",
            ),
            (
                "",
                false,
                "attachment; filename=\"download\"; filename*=UTF-8''download",
            ),
            (
                "../..",
                false,
                "attachment; filename=\"download\"; filename*=UTF-8''download",
            ),
            (
                "\u{200B}\u{FEFF}",
                false,
                "attachment; filename=\"download\"; filename*=UTF-8''download",
            ),
            (
                "a!#$&+-.^_`|~b",
                false,
                "attachment; filename=\"a!#$&+-.^_`|~b\"; filename*=UTF-8''a!#$&+-.^_`|~b",
            ),
        ];
        for (name, inline, want) in cases {
            assert_eq!(content_disposition(name, inline), want, "{name:?}");
        }
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.pdf", "a".repeat(400));
        assert_eq!(sanitize(&long), format!("{}.pdf", "a".repeat(146)));
        let no_ext = "b".repeat(400);
        assert_eq!(sanitize(&no_ext), "b".repeat(150));
        let long_ext = format!("x.{}", "c".repeat(300));
        assert_eq!(sanitize(&long_ext).chars().count(), 150);
        let cyrillic = format!("{}.docx", "я".repeat(300));
        assert_eq!(sanitize(&cyrillic).chars().count(), 150);
        assert!(sanitize(&cyrillic).ends_with(".docx"));
    }

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    proptest! {
        #[test]
        fn header_value_is_always_safe(
            name in "\\PC{0,200}|[\\x00-\\x7f]{0,60}|.{0,60}",
            inline in any::<bool>(),
        ) {
            let value = content_disposition(&name, inline);
            prop_assert!(value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{value:?}");
            prop_assert!(!value.contains(['\r', '\n']));
            prop_assert_eq!(count(&value, "filename="), 1);
            prop_assert_eq!(count(&value, "filename*="), 1);
            prop_assert!(http::HeaderValue::from_str(&value).is_ok());
            let sanitized = sanitize(&name);
            prop_assert!(!sanitized.is_empty() && sanitized.chars().count() <= MAX_NAME_CHARS);
            prop_assert!(!sanitized.contains(['/', '\\']));
            prop_assert!(!sanitized.chars().any(is_hidden));
        }
    }
}
