//! Signed object reads, kept for a while and reused. A video's seeks and a page's repeated
//! views read the same objects again and again, and signing each read (the canonical request,
//! the key derivation, two SHA-256 and five HMACs) was 9.6 % of a proxied 64 KiB range in the
//! profile (BENCHMARKS.md). S3 accepts a signed request for 15 minutes around its `x-amz-date`
//! (the allowed clock skew); the gateway reuses one for at most `REUSE`, well inside that.
//!
//! What is signed is the object's `GET` alone: host, the `x-amz-*` headers and the empty
//! payload. A read's `Range` is sent unsigned (SigV4 signs `host` and `x-amz-*`; other
//! headers only when the signer lists them), so one signature serves every range of an
//! object. Nothing here decides who may read: the cache is asked only with a `Permit`'s key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moka::sync::Cache;

use crate::storage::StorageError;

/// How long one signature is reused: a fraction of S3's 15-minute window, so a clock that
/// drifts a little, or a slow first byte, never meets an expired request.
pub const REUSE: Duration = Duration::from_secs(60);
/// Objects whose signed read is kept at once (about 0.5 KiB each).
const CAPACITY: u64 = 4096;

/// One object's signed `GET`: where, the signature's headers, and when it was signed.
pub struct SignedRead {
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub signed_at: SystemTime,
}

impl SignedRead {
    /// Still to be reused at `now`: younger than `REUSE`, and not from a clock that has since
    /// gone back.
    fn fresh_at(&self, now: SystemTime) -> bool {
        now.duration_since(self.signed_at)
            .is_ok_and(|age| age < REUSE)
    }
}

pub struct SignedReads {
    by_key: Cache<String, Arc<SignedRead>>,
}

impl std::fmt::Debug for SignedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The entries hold signatures: never printed.
        f.debug_struct("SignedReads").finish_non_exhaustive()
    }
}

impl Default for SignedReads {
    fn default() -> Self {
        SignedReads {
            by_key: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(REUSE)
                .build(),
        }
    }
}

impl SignedReads {
    /// The signed read of `key` at `now`: the kept one while it is fresh, else a new one from
    /// `sign`, kept for the next reads. (moka's time-to-live bounds the memory; freshness is
    /// checked here, on the signing time itself.)
    pub fn get_or_sign(
        &self,
        key: &str,
        now: SystemTime,
        sign: impl FnOnce(SystemTime) -> Result<SignedRead, StorageError>,
    ) -> Result<Arc<SignedRead>, StorageError> {
        if let Some(kept) = self.by_key.get(key) {
            if kept.fresh_at(now) {
                return Ok(kept);
            }
        }
        let signed = Arc::new(sign(now)?);
        self.by_key.insert(key.to_owned(), signed.clone());
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    /// A signer that counts its calls and tags what it signs.
    fn signer<'a>(
        calls: &'a Cell<u32>,
        tag: &'a str,
    ) -> impl FnOnce(SystemTime) -> Result<SignedRead, StorageError> + 'a {
        move |time| {
            calls.set(calls.get() + 1);
            Ok(SignedRead {
                url: url::Url::parse("http://127.0.0.1:1/b/k").unwrap(),
                headers: vec![("authorization".into(), tag.into())],
                signed_at: time,
            })
        }
    }

    #[test]
    fn a_key_is_signed_once_and_reused_and_another_key_gets_its_own() {
        let reads = SignedReads::default();
        let calls = Cell::new(0);
        let first = reads
            .get_or_sign("k1", at(0), signer(&calls, "one"))
            .unwrap();
        let again = reads
            .get_or_sign("k1", at(59), signer(&calls, "two"))
            .unwrap();
        assert_eq!(calls.get(), 1);
        assert!(Arc::ptr_eq(&first, &again));
        let other = reads
            .get_or_sign("k2", at(1), signer(&calls, "three"))
            .unwrap();
        assert_eq!(other.headers[0].1, "three");
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn a_signature_is_made_again_once_it_is_old_or_the_clock_went_back() {
        let reads = SignedReads::default();
        let calls = Cell::new(0);
        reads
            .get_or_sign("k", at(100), signer(&calls, "one"))
            .unwrap();
        let later = reads
            .get_or_sign("k", at(160), signer(&calls, "two"))
            .unwrap();
        assert_eq!(later.headers[0].1, "two", "60 s old: signed again");
        assert_eq!(later.signed_at, at(160));
        let back = reads
            .get_or_sign("k", at(150), signer(&calls, "three"))
            .unwrap();
        assert_eq!(
            back.headers[0].1, "three",
            "the clock went back: signed again"
        );
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_failed_signature_is_not_kept() {
        let reads = SignedReads::default();
        let failed = reads.get_or_sign("k", at(0), |_| Err(StorageError::Config("no".into())));
        assert!(failed.is_err());
        let calls = Cell::new(0);
        let ok = reads
            .get_or_sign("k", at(0), signer(&calls, "later"))
            .unwrap();
        assert_eq!(ok.headers[0].1, "later");
    }

    #[test]
    fn reuse_stays_well_inside_the_fifteen_minutes_s3_allows() {
        assert!(REUSE <= Duration::from_secs(15 * 60) / 10);
    }
}
