//! Which sources get previews: the declared type must be one of four, and the bytes must be of
//! it too. Pure: looks at the first bytes only.

use image::ImageFormat;

/// Whether previews are made for a declared type: PNG, JPEG, GIF (first frame) and WebP.
/// Compares the type's essence (parameters dropped), case-insensitively.
pub fn supports(mime: &str) -> bool {
    declared(mime).is_some()
}

/// The format a declared type names, if previews are made for it.
pub(super) fn declared(mime: &str) -> Option<ImageFormat> {
    let essence = mime.split(';').next().unwrap_or_default().trim();
    match essence.to_ascii_lowercase().as_str() {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Whether the bytes carry the signature of `format`: a file whose bytes lie about its type is
/// never handed to another format's decoder.
pub(super) fn bytes_are(format: ImageFormat, bytes: &[u8]) -> bool {
    image::guess_format(bytes).is_ok_and(|sniffed| sniffed == format)
}

/// Whether a source's bytes reach its end. JPEG's decoder takes a file cut inside its last
/// scan and greys out what is missing; a JPEG must reach its end-of-image marker after its
/// first scan to count as whole. (Stuffing keeps `FF D9` out of the entropy-coded data, and an
/// EXIF thumbnail's own end marker sits in a segment skipped before the scan. Bytes after the
/// end marker, as motion photos append, are allowed.) The other decoders refuse a file cut
/// in its pixel data themselves.
pub(super) fn complete(format: ImageFormat, bytes: &[u8]) -> bool {
    if format != ImageFormat::Jpeg {
        return true;
    }
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return false;
        }
        match bytes[at + 1] {
            0xDA => return bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
            // Fill byte, then markers without a length.
            0xFF => at += 1,
            0x01 | 0xD0..=0xD8 => at += 2,
            _ => at += 2 + usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_types_are_the_four_image_types_by_their_essence() {
        for mime in [
            "image/png",
            "IMAGE/JPEG",
            "image/gif; charset=binary",
            " image/webp ",
        ] {
            assert!(supports(mime), "{mime}");
        }
        for mime in [
            "image/svg+xml",
            "image/jpg",
            "image/heic",
            "application/pdf",
            "text/plain",
            "",
            "image/pngx",
        ] {
            assert!(!supports(mime), "{mime}");
        }
    }

    #[test]
    fn preview_sniffing_needs_the_declared_format_signature() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert!(bytes_are(ImageFormat::Png, png));
        assert!(!bytes_are(ImageFormat::Jpeg, png));
        assert!(bytes_are(ImageFormat::Jpeg, b"\xff\xd8\xff\xe0\0\x10JFIF"));
        assert!(bytes_are(ImageFormat::Gif, b"GIF89a\x01\0\x01\0"));
        assert!(bytes_are(ImageFormat::WebP, b"RIFF\0\0\0\0WEBPVP8 "));
        assert!(!bytes_are(ImageFormat::Png, b"hello, this is text"));
        assert!(!bytes_are(ImageFormat::Png, b""));
    }

    #[test]
    fn preview_a_jpeg_is_whole_when_it_reaches_its_end_marker() {
        // SOI, an APP1 holding a thumbnail's own end marker, SOS, scan data, EOI.
        let head = b"\xff\xd8\xff\xe1\x00\x06\xff\xd9\x00\x00\xff\xda\x00\x02\x12\xff\x00\x34";
        let whole = [&head[..], b"\xff\xd9"].concat();
        assert!(complete(ImageFormat::Jpeg, &whole));
        assert!(complete(
            ImageFormat::Jpeg,
            &[&whole[..], b"appended video"].concat()
        ));
        assert!(!complete(ImageFormat::Jpeg, head));
        assert!(!complete(ImageFormat::Jpeg, &head[..8]));
        assert!(!complete(ImageFormat::Jpeg, b"\xff\xd8\x00\x00garbage"));
        assert!(complete(ImageFormat::Png, b"anything"));
    }
}
