//! `ListObjectsV2` for the `s3` provider: every page of a prefix, and the XML answer's fields
//! that a listing needs. Keys that are not valid storage keys are skipped; nothing is deleted.

use std::time::SystemTime;

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::request::Outgoing;
use super::S3Storage;
use crate::storage::http_provider::{check_status, small_body};
use crate::storage::{ListedObject, StorageError, StorageKey};

/// ListObjectsV2 page size (the S3 maximum).
const LIST_PAGE: &str = "1000";

impl S3Storage {
    /// Every object under `prefix`, page after page (`Storage::list`).
    pub(super) async fn list_all(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(prefix, token.as_deref()).await?;
            for object in page.contents {
                let Ok(key) = StorageKey::parse(&object.key) else {
                    continue;
                };
                found.push(ListedObject {
                    key,
                    size: object.size,
                    modified: parse_last_modified(&object.last_modified),
                });
            }
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<ListBucketResult, StorageError> {
        let mut query = vec![
            ("list-type", "2"),
            ("max-keys", LIST_PAGE),
            ("prefix", prefix),
        ];
        if let Some(token) = token {
            query.push(("continuation-token", token));
        }
        let resp = self
            .execute(Outgoing::new(Method::GET, self.bucket_url(&query)?))
            .await?;
        check_status(resp.status(), StatusCode::OK)?;
        let body = small_body(resp, self.read_timeout).await?;
        quick_xml::de::from_str(&body)
            .map_err(|e| StorageError::Transport(format!("unreadable ListObjectsV2 answer: {e}")))
    }
}

/// `ListObjectsV2` answer, the fields used here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_continuation_token: Option<String>,
    #[serde(default)]
    contents: Vec<ListEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEntry {
    key: String,
    size: u64,
    #[serde(default)]
    last_modified: String,
}

fn parse_last_modified(value: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(SystemTime::from)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn list_answer_parses_with_and_without_contents() {
        let page: ListBucketResult = quick_xml::de::from_str(
            r#"<?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b</Name><Prefix>support-chat/</Prefix><KeyCount>2</KeyCount>
              <MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
              <Contents><Key>support-chat/a &amp; b</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>
                <ETag>"x"</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>
              <Contents><Key>support-chat/c</Key><LastModified>2026-01-02T03:04:06Z</LastModified>
                <Size>0</Size></Contents>
              <NextContinuationToken>tok/+=</NextContinuationToken>
            </ListBucketResult>"#,
        )
        .unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok/+="));
        assert_eq!(page.contents.len(), 2);
        assert_eq!(page.contents[0].key, "support-chat/a & b");
        assert_eq!(page.contents[0].size, 12);
        let modified = parse_last_modified(&page.contents[0].last_modified);
        assert_eq!(
            modified,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045)
        );

        let empty: ListBucketResult = quick_xml::de::from_str(
            "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>",
        )
        .unwrap();
        assert!(!empty.is_truncated);
        assert!(empty.contents.is_empty());
    }
}
