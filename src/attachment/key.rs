//! Storage keys: layout (`support-chat/staged/<user>/<id>`, `support-chat/dialogs/<dialog>/<id>`)
//! and the checks every key passes before anything is signed or opened. Pure: no I/O.

use std::fmt;

use super::{Format, Variant};

/// Prefix of every staged upload's key; cleanup lists objects under it.
pub const STAGED_PREFIX: &str = "support-chat/staged/";
/// Prefix of every linked attachment's key; cleanup's orphan sweep lists it.
pub const DIALOGS_PREFIX: &str = "support-chat/dialogs/";
/// Prefix of every preview's key; the orphan sweep lists it.
pub const PREVIEWS_PREFIX: &str = "support-chat/previews/";
/// Longest key accepted, in bytes (S3's own limit is 1024 bytes of UTF-8).
const MAX_KEY_BYTES: usize = 1024;
/// Longest id accepted by [`is_valid_id`].
const MAX_ID_LEN: usize = 64;

/// A key that passed validation: relative, no dot segments, no scheme, no `?`/`#`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StorageKey(String);

/// Why a string is not an acceptable storage key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    TooLong,
    LeadingSlash,
    DotSegment,
    Scheme,
    QueryOrFragment,
    Backslash,
    ControlChar,
    EmptySegment,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            KeyError::Empty => "storage key is empty",
            KeyError::TooLong => "storage key is longer than 1024 bytes",
            KeyError::LeadingSlash => "storage key starts with '/'",
            KeyError::DotSegment => "storage key has a '.' or '..' segment",
            KeyError::Scheme => "storage key looks like a URL with a scheme",
            KeyError::QueryOrFragment => "storage key contains '?' or '#'",
            KeyError::Backslash => "storage key contains a backslash",
            KeyError::ControlChar => "storage key contains a control character",
            KeyError::EmptySegment => "storage key has an empty segment",
        };
        f.write_str(what)
    }
}

impl std::error::Error for KeyError {}

impl StorageKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validate a key read from the catalog (`storagePath`). The row is data, not code: a key
    /// that could escape the bucket prefix (`..`), address another host (`scheme:`), alter a
    /// signed URL (`?`, `#`) or a filesystem path (`\`, NUL) is refused before any use.
    pub fn parse(s: &str) -> Result<StorageKey, KeyError> {
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        if s.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(KeyError::ControlChar);
        }
        if s.contains('\\') {
            return Err(KeyError::Backslash);
        }
        if s.contains(['?', '#']) {
            return Err(KeyError::QueryOrFragment);
        }
        if s.starts_with('/') {
            return Err(KeyError::LeadingSlash);
        }
        // RFC 3986 §4.2: a ':' in the first segment would make the key parse as `scheme:...`.
        let first_segment = s.split('/').next().unwrap_or_default();
        if first_segment.contains(':') {
            return Err(KeyError::Scheme);
        }
        for segment in s.split('/') {
            match segment {
                "" => return Err(KeyError::EmptySegment),
                "." | ".." => return Err(KeyError::DotSegment),
                _ => {}
            }
        }
        Ok(StorageKey(s.to_owned()))
    }

    /// Key of a staged upload: `support-chat/staged/<user>/<id>`. Never contains a file name.
    pub fn staged(user_id: &str, attachment_id: &str) -> StorageKey {
        debug_assert!(is_valid_user_segment(user_id), "bad user id");
        debug_assert!(is_valid_id(attachment_id), "bad attachment id");
        StorageKey(format!("{STAGED_PREFIX}{user_id}/{attachment_id}"))
    }

    /// Key of an attachment linked to a dialog: `support-chat/dialogs/<dialog>/<id>`.
    pub fn dialog(dialog_id: &str, attachment_id: &str) -> StorageKey {
        debug_assert!(is_valid_id(dialog_id), "bad dialog id");
        debug_assert!(is_valid_id(attachment_id), "bad attachment id");
        StorageKey(format!("{DIALOGS_PREFIX}{dialog_id}/{attachment_id}"))
    }

    /// Key of a preview: `support-chat/previews/<id>/<variant>.<format>` (SPEC §12).
    pub fn preview(attachment_id: &str, variant: Variant, format: Format) -> StorageKey {
        debug_assert!(is_valid_id(attachment_id), "bad attachment id");
        StorageKey(format!(
            "{}{}.{}",
            previews_of(attachment_id),
            variant.as_str(),
            format.as_str()
        ))
    }
}

/// The prefix under which all of an attachment's previews live (`.../previews/<id>/`).
pub fn previews_of(attachment_id: &str) -> String {
    format!("{PREVIEWS_PREFIX}{attachment_id}/")
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `s` is a path id (SPEC §3): `[A-Za-z0-9_-]{1,64}`.
pub fn is_valid_id(s: &str) -> bool {
    is_id_of_max_len(s, MAX_ID_LEN)
}

/// User ids come from the token's `sub`, which authn already limits to
/// `[A-Za-z0-9_-]{1,128}` (SPEC §3 "Authentication").
fn is_valid_user_segment(s: &str) -> bool {
    is_id_of_max_len(s, 128)
}

fn is_id_of_max_len(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_good_keys() {
        for key in [
            "support-chat/staged/u1/a1",
            "support-chat/dialogs/d1/a1",
            "a",
            "a/b/c",
            "dir/file.name",
            "dir/..hidden",
            "dir/.../x",
            "x/a:b",
            "päth/ünïcode",
        ] {
            assert_eq!(
                StorageKey::parse(key).map(|k| k.0),
                Ok(key.to_owned()),
                "{key}"
            );
        }
    }

    #[test]
    fn rejects_bad_keys() {
        let long = "a".repeat(1025);
        let cases: &[(&str, KeyError)] = &[
            ("", KeyError::Empty),
            (&long, KeyError::TooLong),
            ("/abs/key", KeyError::LeadingSlash),
            ("a/../b", KeyError::DotSegment),
            ("../b", KeyError::DotSegment),
            ("a/./b", KeyError::DotSegment),
            ("a/..", KeyError::DotSegment),
            (".", KeyError::DotSegment),
            ("http://evil/x", KeyError::Scheme),
            ("s3:bucket/x", KeyError::Scheme),
            ("a:b", KeyError::Scheme),
            ("a/b?x=1", KeyError::QueryOrFragment),
            ("a/b#frag", KeyError::QueryOrFragment),
            ("a\\b", KeyError::Backslash),
            ("..\\b", KeyError::Backslash),
            ("a/b\0", KeyError::ControlChar),
            ("a/b\nc", KeyError::ControlChar),
            ("a/\u{7f}", KeyError::ControlChar),
            ("a/\u{85}", KeyError::ControlChar),
            ("a//b", KeyError::EmptySegment),
            ("a/b/", KeyError::EmptySegment),
        ];
        for (key, want) in cases {
            assert_eq!(StorageKey::parse(key), Err(want.clone()), "{key:?}");
        }
    }

    #[test]
    fn exactly_1024_bytes_is_accepted() {
        let key = "a".repeat(1024);
        assert!(StorageKey::parse(&key).is_ok());
    }

    #[test]
    fn layout_builds_expected_keys() {
        assert_eq!(
            StorageKey::staged("user_1", "att-1").as_str(),
            "support-chat/staged/user_1/att-1"
        );
        assert_eq!(
            StorageKey::dialog("dlg1", "att-1").as_str(),
            "support-chat/dialogs/dlg1/att-1"
        );
        assert!(StorageKey::staged("u", "a")
            .as_str()
            .starts_with(STAGED_PREFIX));
        // Keys the gateway builds always pass its own checks.
        let built = StorageKey::dialog("d", "a");
        assert_eq!(StorageKey::parse(built.as_str()), Ok(built));
    }

    #[test]
    fn id_validation() {
        let max = "a".repeat(64);
        let over = "a".repeat(65);
        for (id, ok) in [
            ("abc", true),
            ("A-z_09", true),
            ("clx1y2z3", true),
            (max.as_str(), true),
            (over.as_str(), false),
            ("", false),
            ("a.b", false),
            ("a/b", false),
            ("a b", false),
            ("é", false),
            ("..", false),
        ] {
            assert_eq!(is_valid_id(id), ok, "{id:?}");
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            KeyError::DotSegment.to_string(),
            "storage key has a '.' or '..' segment"
        );
    }

    proptest! {
        #[test]
        fn parsed_keys_are_safe(s in "[a-z./\\\\?#:%\\x00-\\x1f]{0,40}|\\PC{0,40}") {
            if let Ok(key) = StorageKey::parse(&s) {
                let k = key.as_str();
                prop_assert!(!k.starts_with('/'));
                prop_assert!(!k.split('/').any(|seg| seg == ".." || seg == "."));
                prop_assert!(!k.contains(['?', '#', '\\']));
                prop_assert!(!k.chars().any(char::is_control));
                prop_assert!(!k.is_empty() && k.len() <= 1024);
            }
        }

        #[test]
        fn built_keys_always_parse(user in "[A-Za-z0-9_-]{1,128}", id in "[A-Za-z0-9_-]{1,64}") {
            let staged = StorageKey::staged(&user, &id);
            prop_assert_eq!(StorageKey::parse(staged.as_str()), Ok(staged.clone()));
            let linked = StorageKey::dialog(&id, &id);
            prop_assert_eq!(StorageKey::parse(linked.as_str()), Ok(linked.clone()));
        }
    }
}
