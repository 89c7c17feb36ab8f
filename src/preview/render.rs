//! STAND-IN until the image pipeline lands: the API the service calls.
pub use crate::attachment::{Format, Variant};

pub struct Limits {
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
}
pub struct Sizes {
    pub thumb_px: u32,
    pub preview_px: u32,
}
pub struct Encoded {
    pub variant: Variant,
    pub format: Format,
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    pub placeholder: String,
    pub has_alpha: bool,
    pub outputs: Vec<Encoded>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPreview {
    UnsupportedType,
    TooManyBytes,
    TooManyPixels,
    Undecodable,
}
impl NoPreview {
    pub fn as_str(self) -> &'static str {
        match self {
            NoPreview::UnsupportedType => "unsupported_type",
            NoPreview::TooManyBytes => "too_many_bytes",
            NoPreview::TooManyPixels => "too_many_pixels",
            NoPreview::Undecodable => "undecodable",
        }
    }
}
pub fn supports(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}
pub fn render(_: &str, _: &[u8], _: &Limits, _: &Sizes) -> Result<Rendered, NoPreview> {
    Err(NoPreview::Undecodable)
}
