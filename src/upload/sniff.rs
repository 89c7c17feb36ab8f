//! Do the leading bytes agree with the declared type? Signatures come from the `infer` crate;
//! types without a signature (`text/plain`) are not checked. Pure.

/// How many leading bytes are read before the decision (every `infer` matcher looks within
/// the first few hundred bytes; `tar` the deepest, at 257).
pub const SNIFF_BYTES: usize = 4096;

/// Whether `head` (the first `SNIFF_BYTES` of the body, or all of a shorter one) may be stored
/// as `mime_type`.
pub fn matches_declared(mime_type: &str, head: &[u8]) -> bool {
    if !has_signature(mime_type) {
        return true;
    }
    infer::is_mime(head, mime_type) || extra_match(mime_type, head)
}

/// Whether the type has a signature at all (otherwise its bytes cannot be checked).
pub fn has_signature(mime_type: &str) -> bool {
    infer::is_mime_supported(mime_type) || mime_type == "audio/mpeg"
}

/// Real files `infer` misses: an MPEG audio stream without an ID3 tag may start with any
/// frame-sync header (11 set bits, then a version and a non-reserved layer), while `infer`
/// knows only `FF FB`.
fn extra_match(mime_type: &str, head: &[u8]) -> bool {
    match (mime_type, head) {
        ("audio/mpeg", [0xFF, b, ..]) => b & 0xE0 == 0xE0 && b & 0x06 != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";
    const PDF: &[u8] = b"%PDF-1.7\n";
    const ZIP: &[u8] = b"PK\x03\x04\x14\0\0\0\x08\0";
    const MP4: &[u8] = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2";

    #[test]
    fn true_signatures_pass() {
        for (mime, bytes) in [
            ("image/png", PNG),
            ("image/jpeg", JPEG),
            ("application/pdf", PDF),
            ("application/zip", ZIP),
            ("video/mp4", MP4),
            ("audio/mpeg", b"ID3\x04\0\0".as_slice()),
            ("audio/mpeg", b"\xFF\xF3\x44\xC4".as_slice()),
            ("text/plain", b"hello".as_slice()),
            ("text/plain", PNG),
        ] {
            assert!(matches_declared(mime, bytes), "{mime}");
        }
    }

    #[test]
    fn lies_are_caught() {
        for (mime, bytes) in [
            ("image/png", JPEG),
            ("image/jpeg", b"<html><script>".as_slice()),
            ("application/pdf", b"MZ\x90\0".as_slice()),
            ("video/mp4", PNG),
            ("image/png", b"".as_slice()),
            ("image/png", &PNG[..3]),
            ("audio/mpeg", b"\xFF\xE0\0\0".as_slice()),
        ] {
            assert!(!matches_declared(mime, bytes), "{mime} {bytes:?}");
        }
    }

    #[test]
    fn signature_knowledge() {
        assert!(has_signature("image/png"));
        assert!(has_signature("audio/mpeg"));
        assert!(!has_signature("text/plain"));
    }
}
