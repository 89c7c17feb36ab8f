//! Sources for the tests, made in memory: photos in each format, transparency, animation, and
//! handmade headers that declare more pixels than they hold.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// The four declared types with their formats.
pub const MIMES: [(&str, ImageFormat); 4] = [
    ("image/png", ImageFormat::Png),
    ("image/jpeg", ImageFormat::Jpeg),
    ("image/gif", ImageFormat::Gif),
    ("image/webp", ImageFormat::WebP),
];

/// A phone-style JPEG: 640x480 stored, EXIF Orientation 6 (displayed 480x640), with Make,
/// Model, GPS, XMP, IPTC, a comment and an Adobe RGB ICC profile; the stored top-left
/// 160x120 is red. How it was made: `tests/data/previews/README.md`.
pub const PHONE_JPEG: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/previews/phone-orientation-6.jpg"
));

pub fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// An opaque gradient of `width` x `height` in `format` (GIF and WebP written as RGBA, as
/// `image`'s encoders for them take it; its WebP is lossless).
pub fn photo(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 90])
    });
    match format {
        ImageFormat::Gif | ImageFormat::WebP => encoded(
            DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(image).into_rgba8()),
            format,
        ),
        _ => encoded(DynamicImage::ImageRgb8(image), format),
    }
}

/// A PNG with an alpha channel: opaque everywhere, or with a transparent left half.
pub fn rgba_png(transparent: bool) -> Vec<u8> {
    let image = RgbaImage::from_fn(200, 100, |x, _| {
        let alpha = if transparent && x < 100 { 0 } else { 255 };
        Rgba([30, 120, 200, alpha])
    });
    encoded(DynamicImage::ImageRgba8(image), ImageFormat::Png)
}

/// An animated GIF of `frames` 40x30 frames, red first, then blue.
pub fn animated_gif(frames: usize) -> Vec<u8> {
    let frames = (0..frames).map(|i| {
        let colour = if i == 0 {
            [255, 0, 0, 255]
        } else {
            [0, 0, 255, 255]
        };
        image::Frame::new(RgbaImage::from_pixel(40, 30, Rgba(colour)))
    });
    let mut gif = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut gif)
        .encode_frames(frames)
        .unwrap();
    gif
}

/// CRC-32 as PNG uses it, so that handmade chunks are valid.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A PNG whose IHDR declares `width` x `height` RGBA, with a token IDAT.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let ihdr = [
        &width.to_be_bytes()[..],
        &height.to_be_bytes(),
        &[8, 6, 0, 0, 0],
    ]
    .concat();
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &[0x78, 0x9C, 0x63, 0, 0, 0, 1, 0, 1]);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A GIF whose logical screen is `width` x `height`, holding one 1x1 frame.
pub fn gif_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&width.to_le_bytes());
    gif.extend_from_slice(&height.to_le_bytes());
    // Global colour table of two entries, then one frame and the trailer.
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3B]);
    gif
}
