//! The placeholder a chat shows while a variant loads: the image's ThumbHash, made from a
//! downscale of at most 100 px a side (ThumbHash's own bound), as base64 in the standard
//! alphabet with `=` padding, which every base64 decoder (browsers' `atob` included) accepts.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use image::DynamicImage;

use super::resize;

/// ThumbHash reads at most this many pixels a side.
const MAX_SIDE: u32 = 100;

/// The ThumbHash of `image` (8-bit RGB or RGBA, already oriented and in sRGB).
pub(super) fn thumbhash(image: &DynamicImage) -> Option<String> {
    let (width, height) = resize::fit(image.width(), image.height(), MAX_SIDE);
    let small = resize::resize(image, width, height)?;
    let rgba = small.into_rgba8();
    let hash = thumbhash::rgba_to_thumb_hash(width as usize, height as usize, rgba.as_raw());
    Some(STANDARD.encode(hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};

    fn decoded(placeholder: &str) -> Vec<u8> {
        STANDARD
            .decode(placeholder)
            .expect("standard base64 with padding")
    }

    #[test]
    fn preview_placeholder_is_a_thumbhash_of_the_image() {
        let wide = DynamicImage::ImageRgb8(RgbImage::from_pixel(400, 200, Rgb([200, 30, 30])));
        let hash = decoded(&thumbhash(&wide).unwrap());
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
        assert!((ratio - 2.0).abs() < 0.3, "{ratio}");
        let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
        assert!(
            r > 0.7 && g < 0.2 && b < 0.2 && a > 0.99,
            "{:?}",
            (r, g, b, a)
        );
    }

    #[test]
    fn preview_placeholder_keeps_transparency_and_tiny_images() {
        let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(3, 1, Rgba([0, 0, 255, 0])));
        let hash = decoded(&thumbhash(&clear).unwrap());
        let (_, _, _, a) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
        assert!(a < 0.1, "{a}");
    }
}
