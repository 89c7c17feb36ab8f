//! `Range` evaluation (RFC 9110 §14): one `bytes` range against a known size, decided before
//! storage is asked. No multipart responses: several ranges are answered with the full body.
//!
//! Numbers too large for `u64` are read as "larger than any object": an overflowing
//! first-pos is unsatisfiable, an overflowing last-pos is clamped to the end (§14.1.1), and an
//! overflowing suffix-length selects the whole object (§14.1.1: "the entire representation").

use std::cmp::Ordering;

/// An inclusive byte range `start..=end`, already validated against the object size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What to answer for a request's `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// `200` with the whole body: no header, an ignored header, or several ranges.
    Full,
    /// `206` with this range.
    Partial(ByteRange),
    /// `416` with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// Whether `Range` is honoured for `method`: `GET` only (RFC 9110 §14.2: "A server MUST
/// ignore a Range header field received with a request method that is unrecognized or for
/// which range handling is not defined", and only GET defines it). A `HEAD` with `Range`
/// answers as the `GET` without it would: `200`, the full `Content-Length`.
pub fn honoured_for(method: &str) -> bool {
    method == "GET"
}

/// Decide how to answer `range_header` for an object of `size` bytes.
pub fn evaluate(range_header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(spec) = range_header.and_then(single_byte_range_spec) else {
        return RangeOutcome::Full;
    };
    match parse_spec(spec) {
        Some(spec) => resolve(spec, size),
        // §14.2: a recipient ignores a Range header it cannot parse.
        None => RangeOutcome::Full,
    }
}

/// `Content-Range` of a `206` (§14.4): `bytes <start>-<end>/<size>`.
pub fn content_range(r: ByteRange, size: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.end, size)
}

/// `Content-Range` of a `416` (§14.4): `bytes */<size>`.
pub fn unsatisfied_content_range(size: u64) -> String {
    format!("bytes */{size}")
}

/// The single range-spec of a `bytes=` header, or `None` when the header is not a `bytes`
/// range (other units are ignored, §14.1) or holds several ranges (answered in full: we send
/// no `multipart/byteranges`, which §14.2 allows since a server may ignore `Range`).
fn single_byte_range_spec(header: &str) -> Option<&str> {
    let (unit, set) = header.split_once('=')?;
    // §14.1: range units are compared case-insensitively.
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    // §5.6.1: list elements may be empty and are surrounded by optional whitespace.
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let first = specs.next()?;
    match specs.next() {
        Some(_) => None,
        None => Some(first),
    }
}

/// A decimal number from the header, kept as its digits so that values past `u64` still
/// compare correctly.
#[derive(Debug, Clone, Copy)]
struct Decimal<'a>(&'a str);

impl Decimal<'_> {
    fn parse(s: &str) -> Option<Decimal<'_>> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let significant = s.trim_start_matches('0');
        Some(Decimal(if significant.is_empty() {
            "0"
        } else {
            significant
        }))
    }

    /// `None` when the value does not fit in `u64`.
    fn value(self) -> Option<u64> {
        self.0.parse().ok()
    }

    fn cmp(self, other: Decimal<'_>) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(other.0))
    }
}

#[derive(Debug, Clone, Copy)]
enum Spec<'a> {
    /// `first-` or `first-last` (§14.1.2 int-range).
    FromTo(Decimal<'a>, Option<Decimal<'a>>),
    /// `-length` (§14.1.2 suffix-range).
    Suffix(Decimal<'a>),
}

fn parse_spec(spec: &str) -> Option<Spec<'_>> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(Decimal::parse(last)?));
    }
    let first = Decimal::parse(first)?;
    if last.is_empty() {
        return Some(Spec::FromTo(first, None));
    }
    let last = Decimal::parse(last)?;
    // §14.1.1: an int-range whose last-pos is below its first-pos is invalid.
    if first.cmp(last) == Ordering::Greater {
        return None;
    }
    Some(Spec::FromTo(first, Some(last)))
}

fn resolve(spec: Spec<'_>, size: u64) -> RangeOutcome {
    // §14.1.1: nothing is satisfiable in an empty representation.
    if size == 0 {
        return RangeOutcome::Unsatisfiable;
    }
    let last_byte = size - 1;
    let range = match spec {
        Spec::FromTo(first, last) => {
            let start = match first.value() {
                Some(start) if start < size => start,
                _ => return RangeOutcome::Unsatisfiable,
            };
            let end = last
                .and_then(Decimal::value)
                .map_or(last_byte, |end| end.min(last_byte));
            ByteRange { start, end }
        }
        Spec::Suffix(length) => {
            let length = length.value().unwrap_or(u64::MAX);
            if length == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            ByteRange {
                start: size.saturating_sub(length),
                end: last_byte,
            }
        }
    };
    RangeOutcome::Partial(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partial(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial(ByteRange { start, end })
    }

    #[test]
    fn table() {
        use RangeOutcome::{Full, Unsatisfiable};
        let huge = "99999999999999999999999";
        let cases: Vec<(Option<String>, u64, RangeOutcome)> = vec![
            (None, 10, Full),
            (Some("bytes=0-1".into()), 10, partial(0, 1)),
            (Some("bytes=0-0".into()), 10, partial(0, 0)),
            (Some("bytes=-1".into()), 10, partial(9, 9)),
            (Some("bytes=5-".into()), 10, partial(5, 9)),
            (Some("bytes=0-999999".into()), 10, partial(0, 9)),
            (Some("bytes=9-9".into()), 10, partial(9, 9)),
            (Some("bytes=-10".into()), 10, partial(0, 9)),
            (Some("bytes=-20".into()), 10, partial(0, 9)),
            (Some("bytes=007-008".into()), 10, partial(7, 8)),
            (Some(" bytes = 2-3 ".into()), 10, partial(2, 3)),
            (Some("bytes= 2-3".into()), 10, partial(2, 3)),
            (Some("bytes=2-3 ,".into()), 10, partial(2, 3)),
            (Some("Bytes=0-1".into()), 10, partial(0, 1)),
            (Some("BYTES=0-1".into()), 10, partial(0, 1)),
            (Some("items=0-1".into()), 10, Full),
            (Some("bytes=10-".into()), 10, Unsatisfiable),
            (Some("bytes=10-20".into()), 10, Unsatisfiable),
            (Some("bytes=-0".into()), 10, Unsatisfiable),
            (Some("bytes=0-1".into()), 0, Unsatisfiable),
            (Some("bytes=-5".into()), 0, Unsatisfiable),
            (Some("bytes=0-".into()), 0, Unsatisfiable),
            (Some("bytes=3-2".into()), 10, Full),
            (Some("bytes=0-1,2-3".into()), 10, Full),
            (Some("bytes=0-1, 5-".into()), 10, Full),
            (Some("bytes=".into()), 10, Full),
            (Some("bytes=,".into()), 10, Full),
            (Some("bytes".into()), 10, Full),
            (Some("bytes=-".into()), 10, Full),
            (Some("bytes=a-b".into()), 10, Full),
            (Some("bytes=+1-2".into()), 10, Full),
            (Some("bytes=1 - 2".into()), 10, Full),
            (Some("bytes=1-2-3".into()), 10, Full),
            (Some("bytes=0x1-2".into()), 10, Full),
            (Some("".into()), 10, Full),
            (Some(format!("bytes={huge}-")), 10, Unsatisfiable),
            (Some(format!("bytes={huge}-{huge}")), 10, Unsatisfiable),
            (Some(format!("bytes=2-{huge}")), 10, partial(2, 9)),
            (Some(format!("bytes=-{huge}")), 10, partial(0, 9)),
            (Some(format!("bytes={huge}-1")), 10, Full),
            (Some(format!("bytes=1{huge}-{huge}")), 10, Full),
            (
                Some("bytes=0-18446744073709551615".into()),
                u64::MAX,
                partial(0, u64::MAX - 1),
            ),
        ];
        for (header, size, want) in cases {
            assert_eq!(
                evaluate(header.as_deref(), size),
                want,
                "{header:?} size {size}"
            );
        }
    }

    #[test]
    fn content_range_values() {
        assert_eq!(
            content_range(ByteRange { start: 0, end: 1 }, 10),
            "bytes 0-1/10"
        );
        assert_eq!(unsatisfied_content_range(10), "bytes */10");
        assert_eq!(ByteRange { start: 3, end: 3 }.len(), 1);
    }

    proptest! {
        #[test]
        fn partial_is_within_size(header in "\\PC{0,40}", size in any::<u64>()) {
            if let RangeOutcome::Partial(r) = evaluate(Some(&header), size) {
                prop_assert!(r.start <= r.end && r.end < size);
                prop_assert!(r.len() <= size);
            }
        }

        #[test]
        fn well_formed_ranges_are_within_size(
            a in 0u64..2000,
            b in proptest::option::of(0u64..2000),
            suffix in any::<bool>(),
            size in 0u64..1000,
        ) {
            let header = match (suffix, b) {
                (true, _) => format!("bytes=-{a}"),
                (false, Some(b)) => format!("bytes={a}-{b}"),
                (false, None) => format!("bytes={a}-"),
            };
            match evaluate(Some(&header), size) {
                RangeOutcome::Partial(r) => {
                    prop_assert!(r.start <= r.end && r.end < size);
                    if !suffix {
                        prop_assert_eq!(r.start, a);
                    }
                }
                RangeOutcome::Unsatisfiable => {
                    prop_assert!(size == 0 || (suffix && a == 0) || (!suffix && a >= size));
                }
                RangeOutcome::Full => prop_assert!(matches!(b, Some(b) if !suffix && a > b)),
            }
        }
    }
}
