//! The pipeline end to end: every format, orientation, transparency, animation, colour, and
//! no metadata left in any output.

use super::super::encode::tests::assert_bare;
use super::super::samples::{self, MIMES};
use super::*;
use image::{ImageFormat, Rgba};
use proptest::prelude::*;

fn ok(mime: &str, bytes: &[u8], sizes: Sizes) -> Rendered {
    render(mime, bytes, &Limits::default(), &sizes).unwrap()
}

fn small() -> Sizes {
    Sizes {
        thumb_px: 50,
        preview_px: 200,
    }
}

fn decoded(output: &Encoded) -> DynamicImage {
    let format = match output.format {
        Format::Webp => ImageFormat::WebP,
        Format::Jpeg => ImageFormat::Jpeg,
        Format::Png => ImageFormat::Png,
    };
    image::load_from_memory_with_format(&output.bytes, format).unwrap()
}

/// Every output is what it says it is, and carries nothing but pixels.
fn assert_outputs(rendered: &Rendered, fallback: Format) {
    let made: Vec<_> = rendered
        .outputs
        .iter()
        .map(|o| (o.variant, o.format))
        .collect();
    assert_eq!(
        made,
        [
            (Variant::Thumb, Format::Webp),
            (Variant::Thumb, fallback),
            (Variant::Preview, Format::Webp),
            (Variant::Preview, fallback),
        ]
    );
    for output in &rendered.outputs {
        let image = decoded(output);
        assert_eq!(
            (image.width(), image.height()),
            (output.width, output.height)
        );
        assert_bare(output.format, &output.bytes);
    }
}

#[test]
fn preview_renders_every_format_at_both_sizes() {
    for (mime, format) in MIMES {
        let rendered = ok(mime, &samples::photo(format, 400, 100), small());
        assert_eq!((rendered.width, rendered.height), (400, 100), "{mime}");
        assert!(!rendered.has_alpha, "{mime}");
        assert_outputs(&rendered, Format::Jpeg);
        let thumb = rendered.output(Variant::Thumb, Format::Jpeg).unwrap();
        assert_eq!((thumb.width, thumb.height), (50, 13));
        let preview = rendered.output(Variant::Preview, Format::Webp).unwrap();
        assert_eq!((preview.width, preview.height), (200, 50));
    }
}

#[test]
fn preview_never_upscales() {
    let rendered = ok(
        "image/png",
        &samples::photo(ImageFormat::Png, 300, 200),
        Sizes::default(),
    );
    for output in &rendered.outputs {
        assert_eq!((output.width, output.height), (300, 200));
    }
}

#[test]
fn preview_of_a_single_pixel_is_a_single_pixel() {
    let rendered = ok("image/gif", &samples::gif_declaring(1, 1), Sizes::default());
    assert_eq!((rendered.width, rendered.height), (1, 1));
    assert!(!rendered.placeholder.is_empty());
    for output in &rendered.outputs {
        assert_eq!((output.width, output.height), (1, 1));
    }
}

#[test]
fn preview_thumb_larger_than_preview_is_made_from_the_source() {
    let sizes = Sizes {
        thumb_px: 300,
        preview_px: 100,
    };
    let rendered = ok(
        "image/jpeg",
        &samples::photo(ImageFormat::Jpeg, 600, 300),
        sizes,
    );
    let thumb = rendered.output(Variant::Thumb, Format::Jpeg).unwrap();
    assert_eq!((thumb.width, thumb.height), (300, 150));
}

#[test]
fn preview_of_a_phone_photo_is_upright_and_bare() {
    let rendered = ok("image/jpeg", samples::PHONE_JPEG, Sizes::default());
    assert_eq!((rendered.width, rendered.height), (480, 640));
    assert_outputs(&rendered, Format::Jpeg);
    let thumb = rendered.output(Variant::Thumb, Format::Jpeg).unwrap();
    assert_eq!((thumb.width, thumb.height), (300, 400));
    // Orientation 6 turns the stored top-left (red) to the displayed top-right.
    let preview = decoded(rendered.output(Variant::Preview, Format::Jpeg).unwrap()).to_rgb8();
    assert_eq!(preview.dimensions(), (480, 640));
    let [r, g, b] = preview.get_pixel(440, 60).0;
    assert!(r > 200 && g < 60 && b < 60, "top-right {:?}", [r, g, b]);
    let [_, g, b] = preview.get_pixel(40, 60).0;
    assert!(g > 90 && b > 150, "top-left {:?}", [g, b]);

    // The source's metadata, as bytes: each is in the source and in no output.
    let rational = |parts: [(u32, u32); 3]| -> Vec<u8> {
        parts
            .iter()
            .flat_map(|(n, d)| [n.to_be_bytes(), d.to_be_bytes()].concat())
            .collect()
    };
    let latitude = rational([(48, 1), (51, 1), (61922, 2055)]);
    let longitude = rational([(2, 1), (17, 1), (45069, 1123)]);
    let needles: [&[u8]; 11] = [
        b"Exif\0\0",
        b"http://ns.adobe.com/xap",
        b"ICC_PROFILE",
        b"Photoshop 3.0",
        b"FixturePhone",
        b"FP-1 Stand-in",
        b"fixture comment",
        b"preview fixture",
        b"Adobe RGB",
        &latitude,
        &longitude,
    ];
    let has = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for needle in needles {
        assert!(has(samples::PHONE_JPEG, needle), "fixture lacks {needle:?}");
        for output in &rendered.outputs {
            assert!(!has(&output.bytes, needle), "{output:?} carries {needle:?}");
        }
    }
}

#[test]
fn preview_keeps_transparency_in_png_and_flattens_opaque_to_jpeg() {
    let clear = ok("image/png", &samples::rgba_png(true), small());
    assert!(clear.has_alpha);
    assert_outputs(&clear, Format::Png);
    let png = decoded(clear.output(Variant::Preview, Format::Png).unwrap());
    assert_eq!(png.to_rgba8().get_pixel(10, 50).0[3], 0);
    assert_eq!(png.to_rgba8().get_pixel(190, 50).0, [30, 120, 200, 255]);
    let webp = decoded(clear.output(Variant::Thumb, Format::Webp).unwrap());
    assert_eq!(webp.to_rgba8().get_pixel(2, 10).0[3], 0);

    let opaque = ok("image/png", &samples::rgba_png(false), small());
    assert!(!opaque.has_alpha);
    assert_outputs(&opaque, Format::Jpeg);
}

#[test]
fn preview_of_an_animation_is_its_first_frame() {
    let rendered = ok("image/gif", &samples::animated_gif(5), small());
    let thumb = decoded(rendered.output(Variant::Thumb, Format::Jpeg).unwrap()).to_rgba8();
    let Rgba([r, g, b, _]) = *thumb.get_pixel(20, 15);
    assert!(r > 240 && g < 16 && b < 16, "{:?}", [r, g, b]);
}

#[test]
fn preview_converts_a_wide_gamut_source_to_srgb() {
    let image = image::RgbImage::from_pixel(64, 64, image::Rgb([40, 200, 60]));
    let mut png = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    image::ImageEncoder::set_icc_profile(&mut encoder, p3).unwrap();
    image::ImageEncoder::write_image(encoder, &image, 64, 64, image::ExtendedColorType::Rgb8)
        .unwrap();
    let rendered = ok("image/png", &png, small());
    let out = decoded(
        rendered
            .output(Variant::Preview, Format::Png)
            .unwrap_or_else(|| rendered.output(Variant::Preview, Format::Jpeg).unwrap()),
    );
    let [r, g, b] = out.to_rgb8().get_pixel(32, 32).0;
    assert!(r < 30 && g > 200 && b < 60, "{:?}", [r, g, b]);
}

#[test]
fn preview_placeholder_is_padded_standard_base64() {
    let rendered = ok("image/png", &samples::rgba_png(true), small());
    assert_eq!(rendered.placeholder.len() % 4, 0);
    assert!(rendered
        .placeholder
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
}

#[test]
fn preview_variant_names_round_trip() {
    for variant in Variant::ALL {
        assert_eq!(Variant::parse(variant.as_str()), Some(variant));
    }
    assert_eq!(Variant::parse("Thumb"), None);
    assert_eq!(Variant::parse("original"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Arbitrary bytes under each declared type, bare or behind a real file's first bytes,
    /// give previews or a reason: never a panic.
    #[test]
    fn preview_render_never_panics_on_arbitrary_bytes(
        kind in 0usize..4,
        prefix in 0usize..64,
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (mime, format) = MIMES[kind];
        let real = samples::photo(format, 16, 12);
        let mut bytes = real[..prefix.min(real.len())].to_vec();
        bytes.extend_from_slice(&tail);
        let limits = Limits { max_source_pixels: 1 << 20, max_source_bytes: 1 << 20 };
        let _ = render(mime, &bytes, &limits, &small());
    }

    /// A real file with a few bytes changed renders or is refused: never a panic.
    #[test]
    fn preview_render_never_panics_on_corrupt_files(
        kind in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let (mime, format) = MIMES[kind];
        let mut bytes = samples::photo(format, 16, 12);
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        let limits = Limits { max_source_pixels: 1 << 20, max_source_bytes: 1 << 20 };
        let _ = render(mime, &bytes, &limits, &small());
    }
}
