//! Which stored preview answers a request (SPEC §12): `?variant=` from the query, and WebP
//! when the request's `Accept` takes it (RFC 9110 §12.5.1), else the JPEG or PNG fallback.
//! Pure.

use crate::attachment::{Format, PreviewRow, Variant};

/// A `?variant=` that names no variant, or two different ones: `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadVariant;

/// `?variant=`: `Ok(None)` without one.
pub fn variant(query: Option<&str>) -> Result<Option<Variant>, BadVariant> {
    let Some(query) = query else { return Ok(None) };
    let mut found = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "variant" {
            match (Variant::parse(&value), found) {
                (Some(v), None) => found = Some(v),
                // Two variants in one query are a contradiction, not a choice.
                (Some(v), Some(seen)) if v == seen => {}
                _ => return Err(BadVariant),
            }
        }
    }
    Ok(found)
}

/// Whether `Accept` takes `image/webp`: listed (or `image/*`, `*/*`) with a non-zero quality,
/// and not excluded by a more specific `q=0`.
pub fn accepts_webp(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut best: Option<(u8, bool)> = None; // (specificity, acceptable)
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let specificity = match media.as_str() {
            "image/webp" => 3,
            "image/*" => 2,
            "*/*" => 1,
            _ => continue,
        };
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .next()
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q > 0.0));
        }
    }
    best.is_some_and(|(_, ok)| ok)
}

/// The stored preview of `variant` to send: WebP when accepted, else the other format.
pub fn choose(rows: &[PreviewRow], variant: Variant, webp: bool) -> Option<&PreviewRow> {
    let of_variant = || rows.iter().filter(move |r| r.variant == variant);
    let webp_row = of_variant().find(|r| r.format == Format::Webp);
    let fallback = of_variant().find(|r| r.format != Format::Webp);
    if webp {
        webp_row.or(fallback)
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: Variant, format: Format) -> PreviewRow {
        PreviewRow {
            attachment_id: "a".into(),
            variant,
            format,
            storage_path: format!(
                "support-chat/previews/a/{}.{}",
                variant.as_str(),
                format.as_str()
            ),
            size_bytes: 1,
            width: 1,
            height: 1,
        }
    }

    #[test]
    fn variants_from_the_query() {
        assert_eq!(variant(None), Ok(None));
        assert_eq!(variant(Some("download=1")), Ok(None));
        assert_eq!(variant(Some("variant=thumb")), Ok(Some(Variant::Thumb)));
        assert_eq!(
            variant(Some("a=1&variant=preview")),
            Ok(Some(Variant::Preview))
        );
        assert_eq!(
            variant(Some("variant=thumb&variant=thumb")),
            Ok(Some(Variant::Thumb))
        );
        for bad in [
            "variant=",
            "variant=big",
            "variant=THUMB",
            "variant=thumb&variant=preview",
        ] {
            assert_eq!(variant(Some(bad)), Err(BadVariant), "{bad}");
        }
    }

    #[test]
    fn webp_only_when_accept_takes_it() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert!(accepts_webp(Some(chrome)));
        assert!(accepts_webp(Some("image/*")));
        assert!(accepts_webp(Some("*/*")));
        assert!(!accepts_webp(None));
        assert!(!accepts_webp(Some("image/jpeg,image/png")));
        assert!(!accepts_webp(Some("image/webp;q=0, */*")));
        assert!(!accepts_webp(Some("image/*, image/webp;q=0")));
        assert!(accepts_webp(Some("image/webp;q=0.5, image/*;q=0")));
    }

    #[test]
    fn choice_falls_back_to_what_exists() {
        let rows = [
            row(Variant::Thumb, Format::Webp),
            row(Variant::Thumb, Format::Png),
            row(Variant::Preview, Format::Jpeg),
        ];
        let pick = |v, webp| choose(&rows, v, webp).map(|r| r.format);
        assert_eq!(pick(Variant::Thumb, true), Some(Format::Webp));
        assert_eq!(pick(Variant::Thumb, false), Some(Format::Png));
        assert_eq!(pick(Variant::Preview, true), Some(Format::Jpeg));
        assert_eq!(choose(&rows[..1], Variant::Thumb, false), None);
    }
}
