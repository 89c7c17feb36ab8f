//! Colours in sRGB: pixels of a source with an embedded ICC profile that is not sRGB are
//! converted to sRGB with `moxcms` (pure Rust). A profile that does not parse, is not RGB, or
//! cannot be transformed leaves the pixels as they are, read as sRGB: a bad profile costs
//! colour accuracy, never the preview.

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

/// Colours that an sRGB profile maps to themselves: black, white, greys, primaries, a skin
/// tone. A profile that moves none of them by more than one step is taken as sRGB.
const PROBE: [[u8; 3]; 9] = [
    [0, 0, 0],
    [255, 255, 255],
    [64, 64, 64],
    [128, 128, 128],
    [192, 192, 192],
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [224, 172, 140],
];

/// Convert `image` (8-bit RGB or RGBA) from the colour space `icc` describes to sRGB, in
/// place. Returns whether the pixels changed.
pub(super) fn to_srgb(image: &mut DynamicImage, icc: &[u8]) -> bool {
    let layout = match image {
        DynamicImage::ImageRgb8(_) => Layout::Rgb,
        DynamicImage::ImageRgba8(_) => Layout::Rgba,
        _ => return false,
    };
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        return false;
    };
    if source.color_space != DataColorSpace::Rgb {
        return false;
    }
    let srgb = ColorProfile::new_srgb();
    let options = TransformOptions::default();
    let (Ok(probe), Ok(transform)) = (
        source.create_transform_8bit(Layout::Rgb, &srgb, Layout::Rgb, options),
        source.create_transform_8bit(layout, &srgb, layout, options),
    ) else {
        return false;
    };
    let probe_in: Vec<u8> = PROBE.concat();
    let mut probe_out = vec![0; probe_in.len()];
    let is_srgb = probe.transform(&probe_in, &mut probe_out).is_ok()
        && probe_in
            .iter()
            .zip(&probe_out)
            .all(|(a, b)| a.abs_diff(*b) <= 1);
    if is_srgb {
        return false;
    }
    let pixels: &mut [u8] = match image {
        DynamicImage::ImageRgb8(buffer) => buffer,
        DynamicImage::ImageRgba8(buffer) => buffer,
        _ => return false,
    };
    let source_pixels = pixels.to_vec();
    transform.transform(&source_pixels, pixels).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage, Rgba, RgbaImage};
    use proptest::prelude::*;

    fn rgb(colour: [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 4, Rgb(colour)))
    }

    fn first(image: &DynamicImage) -> [u8; 4] {
        image.to_rgba8().get_pixel(0, 0).0
    }

    #[test]
    fn preview_colour_converts_a_wide_gamut_profile() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        // A saturated Display P3 green is greener than sRGB's: it moves and stays green.
        let mut image = rgb([40, 200, 60]);
        assert!(to_srgb(&mut image, &p3));
        let [r, g, b, _] = first(&image);
        assert_ne!([r, g, b], [40, 200, 60]);
        assert!(g > 180 && r < 40 && b < 60, "{:?}", [r, g, b]);
        // Alpha passes through.
        let mut image =
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([40, 200, 60, 77])));
        let adobe = ColorProfile::new_adobe_rgb().encode().unwrap();
        assert!(to_srgb(&mut image, &adobe));
        assert_eq!(first(&image)[3], 77);
    }

    #[test]
    fn preview_colour_leaves_srgb_and_bad_profiles_alone() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        for profile in [&srgb[..], b"not a profile", &[]] {
            let mut image = rgb([40, 200, 60]);
            assert!(!to_srgb(&mut image, profile));
            assert_eq!(first(&image), [40, 200, 60, 255]);
        }
        // A grey profile says nothing about RGB pixels.
        let grey = ColorProfile::new_gray_with_gamma(2.2).encode().unwrap();
        let mut image = rgb([40, 200, 60]);
        assert!(!to_srgb(&mut image, &grey));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A profile comes from the untrusted source: mangled, it is ignored or used, never a
        /// panic.
        #[test]
        fn preview_colour_survives_mangled_profiles(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16),
            cut in any::<usize>(),
        ) {
            let mut icc = ColorProfile::new_display_p3().encode().unwrap();
            for (at, value) in flips {
                let at = at % icc.len();
                icc[at] = value;
            }
            icc.truncate(cut % (icc.len() + 1));
            let mut image = rgb([40, 200, 60]);
            to_srgb(&mut image, &icc);
        }
    }
}
