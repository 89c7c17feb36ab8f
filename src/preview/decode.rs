//! Decoding an untrusted source within bounds: its size, its type (by its bytes) and its pixel
//! count (from the header alone) are checked before any pixel is decoded, and the decoder may
//! not allocate past the pixel bound. GIFs give their first frame. No I/O, no panics.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader};

use super::sniff;

/// How large a source may be; over either bound there is no preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Width times height, as the header declares them.
    pub max_source_pixels: u64,
    /// The stored body's length.
    pub max_source_bytes: u64,
}

impl Default for Limits {
    /// SPEC §12's defaults: 50 megapixels, 50 MiB.
    fn default() -> Self {
        Limits {
            max_source_pixels: 50_000_000,
            max_source_bytes: 50 * 1024 * 1024,
        }
    }
}

/// Why a source has no preview; a closed set, since each is the metric label `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPreview {
    /// The declared type is not one previews are made for.
    UnsupportedType,
    /// The body is longer than `max_source_bytes`.
    TooManyBytes,
    /// The header declares more than `max_source_pixels`, or decoding needs more memory than
    /// they allow.
    TooManyPixels,
    /// The bytes are not the declared type, or do not decode (truncated, corrupt).
    Undecodable,
    /// The PDF or video tool ran out of its time (`preview.tool_timeout_s`) and was killed.
    Timeout,
}

impl NoPreview {
    pub fn as_str(self) -> &'static str {
        match self {
            NoPreview::UnsupportedType => "unsupported_type",
            NoPreview::TooManyBytes => "too_many_bytes",
            NoPreview::TooManyPixels => "too_many_pixels",
            NoPreview::Undecodable => "undecodable",
            NoPreview::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for NoPreview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for NoPreview {}

/// Bytes the decoder may allocate per allowed pixel: twice 8-bit RGBA, which holds the widest
/// pixel of the four formats (16-bit RGBA PNG).
const ALLOC_PER_PIXEL: u64 = 4 * 2;

/// A decoded source, as stored: orientation and colour profile not applied yet, so that the
/// pipeline applies them to the small variants instead of to every source pixel.
pub(super) struct Decoded {
    pub image: DynamicImage,
    /// From the EXIF data; `NoTransforms` when there is none or it does not parse.
    pub orientation: Orientation,
    /// The embedded ICC profile, if any.
    pub icc: Option<Vec<u8>>,
}

/// Decode `bytes` as the `mime` they were declared with, within `limits`.
pub(super) fn decode(mime: &str, bytes: &[u8], limits: &Limits) -> Result<Decoded, NoPreview> {
    let format = sniff::declared(mime).ok_or(NoPreview::UnsupportedType)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limits.max_source_bytes {
        return Err(NoPreview::TooManyBytes);
    }
    if !sniff::bytes_are(format, bytes) || !sniff::complete(format, bytes) {
        return Err(NoPreview::Undecodable);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decoder_limits(limits));
    // Reads the header only (and, for PNG, the chunks before the first IDAT).
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_source_pixels {
        return Err(NoPreview::TooManyPixels);
    }
    if width == 0 || height == 0 {
        return Err(NoPreview::Undecodable);
    }
    // `from_decoder` allocates the whole pixel buffer without asking the limits: ask here.
    if decoder.total_bytes() > limits.max_source_pixels.saturating_mul(ALLOC_PER_PIXEL) {
        return Err(NoPreview::TooManyPixels);
    }
    // Metadata that does not parse spoils only itself, not the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    // For a GIF this decodes the first frame and stops.
    let image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    Ok(Decoded {
        image,
        orientation,
        icc,
    })
}

/// The decoder's own bounds: no side longer than the pixel bound allows, and no allocation
/// past `ALLOC_PER_PIXEL` bytes per allowed pixel.
fn decoder_limits(limits: &Limits) -> image::Limits {
    let side = u32::try_from(limits.max_source_pixels).unwrap_or(u32::MAX);
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(side);
    bounds.max_image_height = Some(side);
    bounds.max_alloc = Some(limits.max_source_pixels.saturating_mul(ALLOC_PER_PIXEL));
    bounds
}

fn refusal(error: ImageError) -> NoPreview {
    match error {
        ImageError::Limits(_) => NoPreview::TooManyPixels,
        _ => NoPreview::Undecodable,
    }
}

#[cfg(test)]
mod tests {
    use super::super::samples::{self, MIMES};
    use super::*;
    use image::ImageFormat;
    use std::time::{Duration, Instant};

    fn photo(format: ImageFormat) -> Vec<u8> {
        samples::photo(format, 64, 48)
    }

    fn refused(result: Result<Decoded, NoPreview>) -> Option<NoPreview> {
        result.err()
    }

    /// Refused, and at once: decoding 3.6 Gpx would take minutes and 14 GB.
    fn refused_fast(mime: &str, bytes: &[u8]) -> Option<NoPreview> {
        let start = Instant::now();
        let result = refused(decode(mime, bytes, &Limits::default()));
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
        result
    }

    #[test]
    fn preview_decodes_every_supported_format() {
        for (mime, format) in MIMES {
            let decoded = decode(mime, &photo(format), &Limits::default()).unwrap();
            assert_eq!(
                (decoded.image.width(), decoded.image.height()),
                (64, 48),
                "{mime}"
            );
            assert_eq!(decoded.orientation, Orientation::NoTransforms);
        }
        let phone = decode("image/jpeg", samples::PHONE_JPEG, &Limits::default()).unwrap();
        assert_eq!(phone.orientation, Orientation::Rotate90);
        assert!(phone.icc.is_some());
    }

    #[test]
    fn preview_refuses_types_and_sizes_before_looking_at_pixels() {
        let png = photo(ImageFormat::Png);
        let limits = Limits::default();
        let svg = decode("image/svg+xml", &png, &limits);
        assert_eq!(refused(svg), Some(NoPreview::UnsupportedType));
        let short = Limits {
            max_source_bytes: png.len() as u64 - 1,
            ..limits
        };
        assert_eq!(
            refused(decode("image/png", &png, &short)),
            Some(NoPreview::TooManyBytes)
        );
        let exact = Limits {
            max_source_bytes: png.len() as u64,
            max_source_pixels: 64 * 48,
        };
        assert!(decode("image/png", &png, &exact).is_ok());
        let fewer = Limits {
            max_source_pixels: 64 * 48 - 1,
            ..exact
        };
        assert_eq!(
            refused(decode("image/png", &png, &fewer)),
            Some(NoPreview::TooManyPixels)
        );
    }

    #[test]
    fn preview_refuses_a_huge_png_header_at_once() {
        let png = samples::png_declaring(60_000, 60_000);
        assert_eq!(
            refused_fast("image/png", &png),
            Some(NoPreview::TooManyPixels)
        );
        // Past the side bound the decoder itself refuses: over the limits too.
        let png = samples::png_declaring(60_000_000, 1);
        assert_eq!(
            refused_fast("image/png", &png),
            Some(NoPreview::TooManyPixels)
        );
    }

    #[test]
    fn preview_refuses_a_huge_gif_screen_at_once() {
        let small = samples::gif_declaring(1, 1);
        assert!(decode("image/gif", &small, &Limits::default()).is_ok());
        let gif = samples::gif_declaring(60_000, 60_000);
        assert_eq!(
            refused_fast("image/gif", &gif),
            Some(NoPreview::TooManyPixels)
        );
    }

    #[test]
    fn preview_refuses_bytes_that_lie_about_their_type() {
        let limits = Limits::default();
        let png = photo(ImageFormat::Png);
        for mime in ["image/jpeg", "image/gif", "image/webp"] {
            assert_eq!(
                refused(decode(mime, &png, &limits)),
                Some(NoPreview::Undecodable)
            );
        }
        let text = b"just some text, honest";
        assert_eq!(
            refused(decode("image/png", text, &limits)),
            Some(NoPreview::Undecodable)
        );
        assert_eq!(
            refused(decode("image/png", &[], &limits)),
            Some(NoPreview::Undecodable)
        );
    }

    #[test]
    fn preview_refuses_truncated_files() {
        for (mime, format) in MIMES {
            let whole = photo(format);
            for cut in [20, whole.len() / 3, whole.len() / 2, whole.len() * 9 / 10] {
                let result = decode(mime, &whole[..cut], &Limits::default());
                assert_eq!(
                    refused(result),
                    Some(NoPreview::Undecodable),
                    "{mime} cut at {cut}"
                );
            }
        }
        let phone = samples::PHONE_JPEG;
        for tenth in 1..10 {
            let cut = phone.len() * tenth / 10;
            let result = decode("image/jpeg", &phone[..cut], &Limits::default());
            assert_eq!(
                refused(result),
                Some(NoPreview::Undecodable),
                "phone cut at {cut}"
            );
        }
    }

    #[test]
    fn preview_takes_a_gifs_first_frame() {
        let decoded = decode("image/gif", &samples::animated_gif(3), &Limits::default()).unwrap();
        assert_eq!(decoded.image.to_rgba8().get_pixel(4, 4).0, [255, 0, 0, 255]);
    }

    #[test]
    fn preview_reason_labels_are_the_closed_set() {
        let all = [
            NoPreview::UnsupportedType,
            NoPreview::TooManyBytes,
            NoPreview::TooManyPixels,
            NoPreview::Undecodable,
        ];
        let labels = all.map(NoPreview::as_str);
        assert_eq!(
            labels,
            [
                "unsupported_type",
                "too_many_bytes",
                "too_many_pixels",
                "undecodable"
            ]
        );
    }
}
