//! The preview pipeline, pure: an untrusted source's bytes in, the variants' bytes out.
//!
//! ```text
//! decode (bounds, type by bytes, first frame) -> 8-bit RGB or RGBA, alpha seen
//!   -> resize to the preview -> sRGB -> EXIF orientation -> encode WebP + fallback
//!   -> resize the preview to the thumb                    -> encode WebP + fallback
//!                                        thumb -> ThumbHash placeholder
//! ```
//! Colour and orientation are applied after the first downscale, to ~2 MP rather than to
//! every source pixel; fitting is symmetric in width and height, so the sizes come out the
//! same. No I/O, no configuration, no clock: the caller passes the bytes, limits and sizes.

use image::metadata::Orientation;
use image::DynamicImage;

pub use super::decode::{Limits, NoPreview};
pub use super::sniff::supports;
use super::{colour, decode, encode, placeholder, resize};
pub use crate::attachment::{Format, Variant};

/// The longest side of each variant, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub thumb_px: u32,
    pub preview_px: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            thumb_px: 400,
            preview_px: 1600,
        }
    }
}

/// One stored object: a variant in a format.
#[derive(Clone, PartialEq, Eq)]
pub struct Encoded {
    pub variant: Variant,
    pub format: Format,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("variant", &self.variant)
            .field("format", &self.format)
            .field("bytes", &self.bytes.len())
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Everything made from one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The source's display size: after EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// ThumbHash, standard base64 with padding.
    pub placeholder: String,
    /// Some pixel is not fully opaque; the fallback format is PNG then.
    pub has_alpha: bool,
    /// For each variant (thumb first), WebP then the fallback (JPEG, or PNG with alpha).
    pub outputs: Vec<Encoded>,
}

impl Rendered {
    /// The output of `variant` in `format`, if it was made.
    pub fn output(&self, variant: Variant, format: Format) -> Option<&Encoded> {
        self.outputs
            .iter()
            .find(|o| o.variant == variant && o.format == format)
    }
}

/// Render the previews of a source declared as `mime`. Any failure past decoding (a resize or
/// encoder refusing what we hand it, which sizes up to 16,383 px never cause) is `Undecodable`.
pub fn render(
    mime: &str,
    bytes: &[u8],
    limits: &Limits,
    sizes: &Sizes,
) -> Result<Rendered, NoPreview> {
    let decoded = decode::decode(mime, bytes, limits)?;
    let (source, has_alpha) = eight_bit(decoded.image);
    let (width, height) = turned(source.width(), source.height(), decoded.orientation);
    let finish = |mut image: DynamicImage| {
        if let Some(icc) = &decoded.icc {
            colour::to_srgb(&mut image, icc);
        }
        image.apply_orientation(decoded.orientation);
        image
    };
    let made = |px: u32| {
        let (w, h) = resize::fit(source.width(), source.height(), px);
        resize::resize(&source, w, h).map(finish)
    };
    let preview = made(sizes.preview_px).ok_or(NoPreview::Undecodable)?;
    let thumb = if sizes.thumb_px <= sizes.preview_px {
        let (w, h) = resize::fit(width, height, sizes.thumb_px);
        resize::resize(&preview, w, h)
    } else {
        made(sizes.thumb_px)
    }
    .ok_or(NoPreview::Undecodable)?;
    drop(source);

    let fallback = if has_alpha { Format::Png } else { Format::Jpeg };
    let mut outputs = Vec::with_capacity(4);
    for (variant, image) in [(Variant::Thumb, &thumb), (Variant::Preview, &preview)] {
        for format in [Format::Webp, fallback] {
            outputs.push(Encoded {
                variant,
                format,
                bytes: encode::encode(image, format).ok_or(NoPreview::Undecodable)?,
                width: image.width(),
                height: image.height(),
            });
        }
    }
    Ok(Rendered {
        width,
        height,
        placeholder: placeholder::thumbhash(&thumb).ok_or(NoPreview::Undecodable)?,
        has_alpha,
        outputs,
    })
}

/// The image as 8-bit RGB, or RGBA when some pixel is not fully opaque (then `true`).
fn eight_bit(image: DynamicImage) -> (DynamicImage, bool) {
    if !image.color().has_alpha() {
        return (DynamicImage::ImageRgb8(image.into_rgb8()), false);
    }
    let rgba = image.into_rgba8();
    if rgba.pixels().any(|p| p.0[3] < u8::MAX) {
        (DynamicImage::ImageRgba8(rgba), true)
    } else {
        (
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8()),
            false,
        )
    }
}

/// A stored size as displayed under `orientation`.
fn turned(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

#[cfg(test)]
mod tests;
