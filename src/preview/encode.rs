//! Encoding a variant: lossy WebP (libwebp through the `webp` crate; our own decoded pixels
//! are its only input), JPEG and PNG with `image`'s encoders. None of them is given anything
//! but pixels, so the output carries no metadata: no EXIF, XMP, ICC, text or comment.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageEncoder};

pub use crate::attachment::Format;

/// WebP's quality for photos: smaller than JPEG at the same look.
const WEBP_QUALITY: f32 = 80.0;
const JPEG_QUALITY: u8 = 82;

/// Encode an 8-bit RGB or RGBA image. JPEG drops the alpha channel: the pipeline asks for
/// JPEG only for opaque images. `None` if the encoder refuses (WebP's sides stop at 16,383).
pub(super) fn encode(image: &DynamicImage, format: Format) -> Option<Vec<u8>> {
    let (width, height) = (image.width(), image.height());
    let (layout, colour) = match image {
        DynamicImage::ImageRgb8(_) => (webp::PixelLayout::Rgb, ExtendedColorType::Rgb8),
        DynamicImage::ImageRgba8(_) => (webp::PixelLayout::Rgba, ExtendedColorType::Rgba8),
        _ => return None,
    };
    let mut out = Vec::new();
    match format {
        Format::Webp => {
            let encoder = webp::Encoder::new(image.as_bytes(), layout, width, height);
            let memory = encoder.encode_simple(false, WEBP_QUALITY).ok()?;
            out.extend_from_slice(&memory);
        }
        Format::Jpeg => {
            let rgb;
            let pixels = match image {
                DynamicImage::ImageRgb8(buffer) => buffer,
                _ => {
                    rgb = image.to_rgb8();
                    &rgb
                }
            };
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
                .write_image(pixels, width, height, ExtendedColorType::Rgb8)
                .ok()?;
        }
        Format::Png => {
            let encoder = PngEncoder::new_with_quality(
                Cursor::new(&mut out),
                CompressionType::Default,
                FilterType::Adaptive,
            );
            encoder
                .write_image(image.as_bytes(), width, height, colour)
                .ok()?;
        }
    }
    Some(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

    /// The chunk types of a PNG, in order.
    pub(in crate::preview) fn png_chunks(bytes: &[u8]) -> Vec<String> {
        let mut chunks = Vec::new();
        let mut at = 8;
        while at + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            chunks.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
            at += 12 + len;
        }
        chunks
    }

    /// The chunk FourCCs of a WebP's RIFF container, in order.
    pub(in crate::preview) fn webp_chunks(bytes: &[u8]) -> Vec<String> {
        let mut chunks = Vec::new();
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            chunks.push(String::from_utf8_lossy(&bytes[at..at + 4]).into_owned());
            at += 8 + len + (len & 1);
        }
        chunks
    }

    /// The markers of a JPEG up to its first scan.
    pub(in crate::preview) fn jpeg_markers(bytes: &[u8]) -> Vec<u8> {
        let mut markers = Vec::new();
        let mut at = 2;
        while at + 4 <= bytes.len() && bytes[at] == 0xFF {
            let marker = bytes[at + 1];
            markers.push(marker);
            if marker == 0xDA {
                break;
            }
            at += 2 + u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        }
        markers
    }

    /// Only what decoding needs: no metadata container of any kind.
    pub(in crate::preview) fn assert_bare(format: Format, bytes: &[u8]) {
        match format {
            Format::Png => {
                for chunk in png_chunks(bytes) {
                    assert!(["IHDR", "PLTE", "tRNS", "IDAT", "IEND"].contains(&chunk.as_str()));
                }
            }
            Format::Webp => {
                for chunk in webp_chunks(bytes) {
                    assert!(["VP8 ", "VP8L", "VP8X", "ALPH"].contains(&chunk.as_str()));
                }
            }
            Format::Jpeg => {
                let markers = jpeg_markers(bytes);
                assert_eq!(markers.last(), Some(&0xDA));
                for marker in markers {
                    // APP0 (JFIF), DQT, SOF0, DHT, SOS.
                    assert!(
                        [0xE0, 0xDB, 0xC0, 0xC4, 0xDA].contains(&marker),
                        "{marker:#x}"
                    );
                }
            }
        }
    }

    fn photo() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(120, 80, |x, y| {
            Rgb([(x * 2) as u8, (y * 3) as u8, 128])
        }))
    }

    #[test]
    fn preview_encoders_write_their_format_and_nothing_else() {
        let transparent =
            DynamicImage::ImageRgba8(RgbaImage::from_fn(50, 40, |x, _| Rgba([9, 9, 9, x as u8])));
        for (image, format, sniffed) in [
            (photo(), Format::Webp, ImageFormat::WebP),
            (photo(), Format::Jpeg, ImageFormat::Jpeg),
            (photo(), Format::Png, ImageFormat::Png),
            (transparent.clone(), Format::Webp, ImageFormat::WebP),
            (transparent, Format::Png, ImageFormat::Png),
        ] {
            let bytes = encode(&image, format).unwrap();
            assert_eq!(image::guess_format(&bytes).unwrap(), sniffed);
            let back = image::load_from_memory_with_format(&bytes, sniffed).unwrap();
            assert_eq!(
                (back.width(), back.height()),
                (image.width(), image.height())
            );
            assert_eq!(back.color().has_alpha(), image.color().has_alpha());
            assert_bare(format, &bytes);
        }
    }

    #[test]
    fn preview_format_names_round_trip() {
        for format in [Format::Webp, Format::Jpeg, Format::Png] {
            assert_eq!(Format::parse(format.as_str()), Some(format));
            assert_eq!(format.mime(), format!("image/{}", format.as_str()));
        }
        assert_eq!(Format::parse("jpg"), None);
    }

    #[test]
    fn preview_webp_refuses_what_it_cannot_hold() {
        let wide = DynamicImage::ImageRgb8(RgbImage::new(16_384, 1));
        assert_eq!(encode(&wide, Format::Webp), None);
    }
}
