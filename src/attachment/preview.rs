//! Previews as plain data (SPEC §12): which variant, in which format, and the row that records
//! one stored preview. What the gateway learned about the image itself (`ImageInfo`) travels
//! with the attachment's row.

/// `?variant=`: the two sizes a chat shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Longest side at most `preview.thumb_px`: the dialog's list.
    Thumb,
    /// Longest side at most `preview.preview_px`: the picture opened in the chat.
    Preview,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Thumb, Variant::Preview];

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Thumb => "thumb",
            Variant::Preview => "preview",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The encodings a preview is stored in: WebP for browsers that take it, JPEG (or PNG when the
/// image has transparency) for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Webp,
    Jpeg,
    Png,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Webp, Format::Jpeg, Format::Png];

    /// The `"format"` column and the key's extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Webp => "webp",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Format::Webp => "image/webp",
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One `"ChatAttachmentPreview"` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    pub attachment_id: String,
    pub variant: Variant,
    pub format: Format,
    pub storage_path: String,
    pub size_bytes: u64,
    pub width: u32,
    pub height: u32,
}

/// `"width"`, `"height"` (the display size, after EXIF orientation) and `"placeholder"` (a
/// ThumbHash, base64) of an image attachment: unknown until its thumb is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub placeholder: Option<String>,
}
