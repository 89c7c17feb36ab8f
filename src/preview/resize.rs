//! Downscaling: the size a variant gets (never larger than the source, aspect kept, no side
//! of 0) and the resampling to it, with `fast_image_resize`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};

/// The size of a variant whose longest side is at most `max_side`: the source's own size when
/// it is already that small (never upscaled), otherwise both sides scaled by one factor and
/// rounded to the nearest pixel, at least 1. Symmetric in width and height, so fitting before
/// or after a quarter turn gives the same size turned.
pub(super) fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side || longest == 0 {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_side).max(1)
    };
    (scale(width), scale(height))
}

/// `image` (8-bit RGB or RGBA) resampled to exactly `width` x `height` with Lanczos3; alpha
/// is premultiplied while filtering so that transparent pixels do not bleed their colour.
/// `None` only for an image that is not 8-bit RGB(A), which the pipeline never passes.
pub(super) fn resize(image: &DynamicImage, width: u32, height: u32) -> Option<DynamicImage> {
    if image.width() == width && image.height() == height {
        return Some(image.clone());
    }
    let pixel_type = match image {
        DynamicImage::ImageRgb8(_) => PixelType::U8x3,
        DynamicImage::ImageRgba8(_) => PixelType::U8x4,
        _ => return None,
    };
    let source = ImageRef::new(image.width(), image.height(), image.as_bytes(), pixel_type).ok()?;
    let mut target = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&source, &mut target, &options).ok()?;
    let bytes = target.into_vec();
    match pixel_type {
        PixelType::U8x3 => RgbImage::from_raw(width, height, bytes).map(DynamicImage::ImageRgb8),
        _ => RgbaImage::from_raw(width, height, bytes).map(DynamicImage::ImageRgba8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn preview_fit_never_upscales_and_keeps_the_aspect() {
        assert_eq!(fit(300, 200, 400), (300, 200));
        assert_eq!(fit(400, 400, 400), (400, 400));
        assert_eq!(fit(4000, 3000, 400), (400, 300));
        assert_eq!(fit(3000, 4000, 1600), (1200, 1600));
        assert_eq!(fit(1000, 333, 400), (400, 133));
        assert_eq!(fit(1000, 335, 400), (400, 134));
        // A sliver keeps one pixel rather than none.
        assert_eq!(fit(60_000, 1, 400), (400, 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn preview_fit_bounds_hold(w in 1u32..100_000, h in 1u32..100_000, max in 1u32..5_000) {
            let (fw, fh) = fit(w, h, max);
            prop_assert!(fw >= 1 && fh >= 1);
            prop_assert!(fw <= w && fh <= h);
            prop_assert!(fw.max(fh) == max.min(w.max(h)));
            prop_assert_eq!(fit(h, w, max), (fh, fw));
            // Aspect within a rounding step of each side.
            let (w, h, fw, fh) = (w as f64, h as f64, fw as f64, fh as f64);
            prop_assert!((fw * h / w - fh).abs() <= 1.0 + h / w);
        }
    }

    #[test]
    fn preview_resize_keeps_colour_and_size() {
        let red =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(800, 600, image::Rgb([200, 10, 10])));
        let small = resize(&red, 400, 300).unwrap();
        assert_eq!((small.width(), small.height()), (400, 300));
        assert_eq!(
            small.as_rgb8().unwrap().get_pixel(200, 150).0,
            [200, 10, 10]
        );
    }

    #[test]
    fn preview_resize_does_not_bleed_transparent_colour() {
        // Half transparent green, half opaque red: filtering must not tint the red with green.
        let mut img = RgbaImage::from_pixel(64, 64, image::Rgba([0, 255, 0, 0]));
        for (x, _, px) in img.enumerate_pixels_mut() {
            if x >= 32 {
                *px = image::Rgba([255, 0, 0, 255]);
            }
        }
        let small = resize(&DynamicImage::ImageRgba8(img), 16, 16).unwrap();
        let edge = small.as_rgba8().unwrap().get_pixel(8, 8).0;
        assert!(edge[3] > 0 && edge[1] < 8, "{edge:?}");
    }

    #[test]
    fn preview_resize_refuses_what_the_pipeline_never_passes() {
        let gray = DynamicImage::ImageLuma8(image::GrayImage::new(8, 8));
        assert!(resize(&gray, 4, 4).is_none());
    }
}
