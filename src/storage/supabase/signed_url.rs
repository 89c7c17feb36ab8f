//! Supabase's signed read URLs, made from the sign route's answer: only a URL on our own API
//! is handed to a browser, with the `download` name that matches the wanted disposition. Pure:
//! it asks the service nothing (the `supabase` provider does).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::storage::sign::encode_query_value;
use crate::storage::StorageError;

/// The browser's URL from the sign route's answer (`{"signedURL": "/object/sign/...?token=..."}`).
pub(super) fn from_answer(
    api: &str,
    answer: &str,
    disposition: Option<&str>,
) -> Result<String, StorageError> {
    let signed: SignAnswer = serde_json::from_str(answer)
        .map_err(|e| StorageError::Transport(format!("unreadable sign answer: {e}")))?;
    signed_url(api, &signed.signed_url, disposition)
}

#[derive(Debug, Deserialize)]
struct SignAnswer {
    #[serde(rename = "signedURL", alias = "signedUrl")]
    signed_url: String,
}

/// What `encodeURI` leaves alone (ECMA-262 §19.2.6.5): the answer's path is raw, and Supabase's
/// own client encodes it this way.
const ENCODE_URI: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b';')
    .remove(b',')
    .remove(b'/')
    .remove(b'?')
    .remove(b':')
    .remove(b'@')
    .remove(b'&')
    .remove(b'=')
    .remove(b'+')
    .remove(b'$')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'#');

/// The absolute signed URL from the answer's relative `signedURL`. Only a path under
/// `/object/sign/` of our own API is accepted: the browser is never sent anywhere else.
fn signed_url(
    api: &str,
    relative: &str,
    disposition: Option<&str>,
) -> Result<String, StorageError> {
    if !relative.starts_with("/object/sign/") || !relative.contains("?token=") {
        return Err(StorageError::Transport(
            "storage answered an unexpected signed URL".into(),
        ));
    }
    let mut url = format!("{api}{}", utf8_percent_encode(relative, ENCODE_URI));
    if let Some(name) = download_name(disposition) {
        url.push_str("&download=");
        url.push_str(&encode_query_value(&name));
    }
    Ok(url)
}

/// The `download` value that makes Supabase answer like `disposition`: `None` for inline, the
/// file name (from `filename*`, RFC 6266 §4.3, else `filename`) for an attachment.
fn download_name(disposition: Option<&str>) -> Option<String> {
    let disposition = disposition?;
    let mut parts = disposition.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("attachment") {
        return None;
    }
    let params: Vec<(String, &str)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let extended = params
        .iter()
        .find(|(k, _)| k == "filename*")
        .and_then(|(_, v)| {
            let encoded = v
                .strip_prefix("UTF-8''")
                .or_else(|| v.strip_prefix("utf-8''"))?;
            percent_encoding::percent_decode_str(encoded)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        });
    let plain = || {
        params
            .iter()
            .find(|(k, _)| k == "filename")
            .map(|(_, v)| v.trim_matches('"').to_string())
    };
    Some(extended.or_else(plain).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names() {
        assert_eq!(download_name(None), None);
        assert_eq!(download_name(Some("inline; filename=\"a.png\"")), None);
        assert_eq!(
            download_name(Some(
                "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20a.pdf"
            )),
            Some("résumé a.pdf".into())
        );
        assert_eq!(
            download_name(Some("attachment; filename=\"plain.txt\"")),
            Some("plain.txt".into())
        );
        assert_eq!(download_name(Some("attachment")), Some(String::new()));
    }

    #[test]
    fn signed_urls_stay_on_our_api() {
        let api = "https://p.supabase.co/storage/v1";
        let url = signed_url(
            api,
            "/object/sign/files/support-chat/a b+ф?token=ey.J.x",
            Some("attachment; filename*=UTF-8''x%20y.bin"),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://p.supabase.co/storage/v1/object/sign/files/support-chat/a%20b+%D1%84\
             ?token=ey.J.x&download=x%20y.bin"
        );
        for bad in [
            "https://evil.example/object/sign/files/a?token=x",
            "//evil.example/object/sign/files/a?token=x",
            "/object/public/files/a",
            "/object/sign/files/a",
        ] {
            assert!(signed_url(api, bad, None).is_err(), "{bad}");
        }
    }
}
