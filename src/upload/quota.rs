//! The per-user staged quota (SPEC §3 "Upload"): at most `upload.max_staged_per_user` staged
//! uploads and `upload.max_staged_bytes_per_user` staged bytes at once, judged on the declared
//! length before a byte is stored. Pure: the usage is read by the caller.
//!
//! Uploads running at once each see the usage before the others' rows exist, so the quota can
//! be passed by at most `upload.max_concurrent_per_user - 1` uploads; the concurrency cap keeps
//! that small.

use crate::catalog::StagedUsage;
use crate::config::UploadConfig;

/// Over the staged quota: `413 {"error":"staged_quota_exceeded"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded;

/// Whether one more upload of `length` bytes fits next to `usage`.
pub fn check(usage: StagedUsage, length: u64, cfg: &UploadConfig) -> Result<(), QuotaExceeded> {
    let uploads_fit = usage.uploads < cfg.max_staged_per_user;
    let bytes_fit = usage
        .bytes
        .checked_add(length)
        .is_some_and(|total| total <= cfg.max_staged_bytes_per_user);
    if uploads_fit && bytes_fit {
        Ok(())
    } else {
        Err(QuotaExceeded)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn cfg() -> UploadConfig {
        UploadConfig {
            max_bytes: 1000,
            allowed_types: vec![],
            staged_ttl: Duration::from_secs(3600),
            cleanup_interval: Duration::from_secs(300),
            max_staged_per_user: 3,
            max_staged_bytes_per_user: 100,
            max_concurrent_per_user: 4,
        }
    }

    fn usage(uploads: u64, bytes: u64) -> StagedUsage {
        StagedUsage { uploads, bytes }
    }

    #[test]
    fn counts_and_bytes_both_bound() {
        let c = cfg();
        assert_eq!(check(usage(0, 0), 100, &c), Ok(()));
        assert_eq!(check(usage(2, 40), 60, &c), Ok(()));
        assert_eq!(check(usage(3, 0), 1, &c), Err(QuotaExceeded));
        assert_eq!(check(usage(2, 40), 61, &c), Err(QuotaExceeded));
        assert_eq!(check(usage(0, u64::MAX), 1, &c), Err(QuotaExceeded));
    }
}
