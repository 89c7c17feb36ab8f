//! Listing for the `supabase` provider: the API lists one folder level per call, so a listing
//! walks down the folders a prefix can reach, page by page. Names that are not valid storage
//! keys are skipped; nothing is deleted.

use std::time::SystemTime;

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::SupabaseStorage;
use crate::storage::http_provider::small_body;
use crate::storage::{ListedObject, StorageError, StorageKey};

/// Entries asked for per list call.
const LIST_PAGE: u64 = 1000;
/// Folders walked at most by one `list` (a bound against a misbehaving server, far above
/// what the gateway's key layout produces per prefix).
const LIST_MAX_CALLS: usize = 100_000;

impl SupabaseStorage {
    /// Every object under `prefix` (`Storage::list`).
    pub(super) async fn list_all(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        // The API lists one folder level; walk down the folders the prefix can reach.
        let start = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let mut folders = vec![start.to_string()];
        let mut found = Vec::new();
        let mut calls = 0;
        while let Some(folder) = folders.pop() {
            let mut offset = 0;
            loop {
                calls += 1;
                if calls > LIST_MAX_CALLS {
                    return Err(StorageError::Transport("list did not end".into()));
                }
                let page = self.list_page(&folder, offset).await?;
                let count = page.len() as u64;
                for entry in page {
                    let path = if folder.is_empty() {
                        entry.name.clone()
                    } else {
                        format!("{folder}/{}", entry.name)
                    };
                    match walk(prefix, &path, &entry) {
                        Walk::Skip => {}
                        Walk::Descend => folders.push(path),
                        Walk::Object => {
                            let Ok(key) = StorageKey::parse(&path) else {
                                continue;
                            };
                            found.push(ListedObject {
                                key,
                                size: entry.size(),
                                modified: entry.modified(),
                            });
                        }
                    }
                }
                if count < LIST_PAGE {
                    break;
                }
                offset += count;
            }
        }
        Ok(found)
    }

    /// One page of one folder level (`POST /object/list/{bucket}`).
    async fn list_page(&self, folder: &str, offset: u64) -> Result<Vec<ListEntry>, StorageError> {
        let url = format!("{}/object/list/{}", self.api, self.bucket_path());
        let body = serde_json::json!({
            "prefix": folder,
            "limit": LIST_PAGE,
            "offset": offset,
            "sortBy": { "column": "name", "order": "asc" },
        });
        let resp = self.send_json(Method::POST, &url, body).await?;
        let resp = self.expect(resp, StatusCode::OK).await?;
        let text = small_body(resp, self.read_timeout).await?;
        serde_json::from_str(&text)
            .map_err(|e| StorageError::Transport(format!("unreadable list answer: {e}")))
    }
}

/// One entry of a list answer: an object, or a folder (no `id`).
#[derive(Debug, Deserialize)]
struct ListEntry {
    name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    metadata: Option<ListMetadata>,
}

#[derive(Debug, Deserialize)]
struct ListMetadata {
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "lastModified")]
    last_modified: Option<String>,
}

impl ListEntry {
    fn size(&self) -> u64 {
        self.metadata.as_ref().and_then(|m| m.size).unwrap_or(0)
    }

    fn modified(&self) -> SystemTime {
        self.metadata
            .as_ref()
            .and_then(|m| m.last_modified.as_deref())
            .or(self.updated_at.as_deref())
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .map_or(SystemTime::UNIX_EPOCH, SystemTime::from)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Walk {
    Skip,
    Descend,
    Object,
}

/// What to do with the entry at `path` when listing everything under `prefix`. Pure.
fn walk(prefix: &str, path: &str, entry: &ListEntry) -> Walk {
    if entry.id.is_none() {
        let dir = format!("{path}/");
        if dir.starts_with(prefix) || prefix.starts_with(&dir) {
            return Walk::Descend;
        }
        return Walk::Skip;
    }
    if path.starts_with(prefix) {
        Walk::Object
    } else {
        Walk::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_walks_only_folders_the_prefix_reaches() {
        let folder = |name: &str| ListEntry {
            name: name.into(),
            id: None,
            updated_at: None,
            metadata: None,
        };
        let object = |name: &str| ListEntry {
            name: name.into(),
            id: Some("x".into()),
            updated_at: None,
            metadata: None,
        };
        let p = "support-chat/dialogs/d1/";
        let open = "support-chat/dialogs/d";
        let cases = [
            (p, "support-chat", folder("support-chat"), Walk::Descend),
            (p, "support-chat/dialogs/d1", folder("d1"), Walk::Descend),
            (p, "support-chat/dialogs/d10", folder("d10"), Walk::Skip),
            (p, "support-chat/staged", folder("staged"), Walk::Skip),
            (p, "support-chat/dialogs/d1/a", object("a"), Walk::Object),
            (p, "support-chat/dialogs/d1", object("d1"), Walk::Skip),
            (
                open,
                "support-chat/dialogs/d10",
                folder("d10"),
                Walk::Descend,
            ),
            (open, "support-chat/dialogs/x", folder("x"), Walk::Skip),
        ];
        for (prefix, path, entry, expected) in cases {
            assert_eq!(walk(prefix, path, &entry), expected, "{prefix} {path}");
        }
    }
}
