//! Request header budget (RFC 6585 §5, `431 Request Header Fields Too Large`). Pingora itself
//! only refuses above 1 MiB or 256 fields, with a bare `400`; the gateway's own, much smaller
//! budget answers a JSON `431` before any other work is done.

use http::HeaderMap;

/// A request over the budget; the reason is a closed set of labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request header fields too large ({0})")]
pub struct HeadersTooLarge(pub &'static str);

/// Most header fields one request may carry (browsers send ~20).
pub const MAX_HEADER_COUNT: usize = 100;
/// Most bytes of header names and values together (large cookies included).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuse a request whose headers exceed the budget.
pub fn check(headers: &HeaderMap) -> Result<(), HeadersTooLarge> {
    if headers.len() > MAX_HEADER_COUNT {
        return Err(HeadersTooLarge("too_many_headers"));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(HeadersTooLarge("headers_too_large"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(n: usize, value_len: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        for i in 0..n {
            let name = http::HeaderName::try_from(format!("x-h{i}")).unwrap();
            h.append(name, HeaderValue::from_str(&"v".repeat(value_len)).unwrap());
        }
        h
    }

    #[test]
    fn budget_is_enforced_on_count_and_bytes() {
        assert!(check(&map(MAX_HEADER_COUNT, 10)).is_ok());
        assert!(matches!(
            check(&map(MAX_HEADER_COUNT + 1, 1)),
            Err(HeadersTooLarge("too_many_headers"))
        ));
        assert!(check(&map(1, MAX_HEADER_BYTES - 100)).is_ok());
        assert!(matches!(
            check(&map(1, MAX_HEADER_BYTES)),
            Err(HeadersTooLarge("headers_too_large"))
        ));
    }
}
