//! `fs` provider: objects are files under one root directory (`root/<key>`). Writes go to a
//! temporary file in the same directory and are renamed into place, so a reader never sees a
//! half-written object. It never follows a path (or symlink) out of the root.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{
    exact_length, ByteStream, ListedObject, ObjectBody, Storage, StorageError, StorageKey,
};
use crate::authz::Permit;
use crate::http::range::ByteRange;

/// Read chunk size: bounds the memory a download holds at once.
const CHUNK: usize = 64 * 1024;

/// Temporary files carry this prefix; listing skips them.
const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of an existing object, or `NotFound` when it is missing or resolves
    /// (through `..` or symlinks) to somewhere outside the root.
    async fn existing(&self, key: &StorageKey) -> Result<PathBuf, StorageError> {
        let root = self.canonical_root().await?;
        let path = match tokio::fs::canonicalize(self.root.join(key.as_str())).await {
            Ok(path) => path,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound)
            }
            Err(e) => return Err(e.into()),
        };
        if path.starts_with(&root) && path != root {
            Ok(path)
        } else {
            Err(StorageError::NotFound)
        }
    }

    /// The directory an object of `key` lives in (created if needed, checked to be inside the
    /// root after symlinks are resolved) and the object's file name.
    async fn parent_dir(
        &self,
        key: &StorageKey,
        create: bool,
    ) -> Result<(PathBuf, std::ffi::OsString), StorageError> {
        let path = self.root.join(key.as_str());
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StorageError::NotFound);
        };
        if create {
            tokio::fs::create_dir_all(parent).await?;
        }
        let root = self.canonical_root().await?;
        let parent = match tokio::fs::canonicalize(parent).await {
            Ok(parent) => parent,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound)
            }
            Err(e) => return Err(e.into()),
        };
        if !parent.starts_with(&root) {
            return Err(StorageError::NotFound);
        }
        Ok((parent, name.to_owned()))
    }

    async fn canonical_root(&self) -> Result<PathBuf, StorageError> {
        tokio::fs::canonicalize(&self.root)
            .await
            .map_err(|e| StorageError::Config(format!("storage root {}: {e}", self.root.display())))
    }

    async fn read(
        &self,
        key: &StorageKey,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StorageError> {
        let path = self.existing(key).await?;
        let mut file = File::open(&path).await?;
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Err(StorageError::NotFound);
        }
        let size = meta.len();
        let (start, len) = match range {
            None => (0, size),
            Some(r) if r.end < size => (r.start, r.len()),
            Some(_) => {
                return Err(StorageError::Transport(
                    "range beyond the end of the object".into(),
                ))
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        let stream = ReaderStream::with_capacity(file.take(len), CHUNK)
            .map(|chunk| chunk.map_err(StorageError::from));
        Ok(ObjectBody {
            content_length: len,
            stream: exact_length(Box::pin(stream), len),
        })
    }

    async fn write(
        &self,
        key: &StorageKey,
        content_length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        let (dir, name) = self.parent_dir(key, true).await?;
        let temp = TempFile(dir.join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4())));
        let mut file = File::create(&temp.0).await?;
        copy_exact(body, &mut file, content_length).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp.0, dir.join(name)).await?;
        temp.keep();
        Ok(())
    }
}

/// Write exactly `expected` bytes of `body` to `file`; a short or long body is an error.
async fn copy_exact(
    mut body: ByteStream,
    file: &mut File,
    expected: u64,
) -> Result<(), StorageError> {
    let mut written: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > expected {
            return Err(StorageError::Transport(
                "upload body longer than its length".into(),
            ));
        }
        file.write_all(&chunk).await?;
    }
    if written != expected {
        return Err(StorageError::Transport(
            "upload body shorter than its length".into(),
        ));
    }
    file.flush().await?;
    Ok(())
}

/// Removes the temporary file unless it was renamed into place, also when the upload future
/// is dropped half-way (client gone).
struct TempFile(PathBuf);

impl TempFile {
    fn keep(mut self) {
        self.0 = PathBuf::new();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn get(
        &self,
        permit: &Permit,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StorageError> {
        self.read(permit.key(), range).await
    }

    async fn put(
        &self,
        key: &StorageKey,
        _content_type: &str,
        content_length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        self.write(key, content_length, body).await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let (dir, name) = match self.parent_dir(key, false).await {
            Ok(found) => found,
            Err(StorageError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        match tokio::fs::remove_file(dir.join(name)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let meta = tokio::fs::metadata(&self.root).await?;
        if !meta.is_dir() {
            return Err(StorageError::Config(format!(
                "storage root {} is not a directory",
                self.root.display()
            )));
        }
        // Listing proves the directory is readable, not only present.
        let _entries = tokio::fs::read_dir(&self.root).await?;
        Ok(())
    }

    async fn copy(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
        let object = self.read(from, None).await?;
        self.write(to, object.content_length, object.stream).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        let root = self.canonical_root().await?;
        // Walk only the deepest directory the prefix names; keys are compared as strings. That
        // directory must resolve inside the root (no `..`, no symlink out).
        let start = match prefix.rfind('/') {
            Some(i) => match tokio::fs::canonicalize(root.join(&prefix[..i])).await {
                Ok(dir) if dir.starts_with(&root) => dir,
                Ok(_) => return Ok(Vec::new()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            },
            None => root.clone(),
        };
        let mut found = Vec::new();
        let mut dirs = vec![start];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                // `file_type` does not follow symlinks: links are neither walked nor listed.
                let file_type = entry.file_type().await?;
                let path = entry.path();
                if file_type.is_dir() {
                    dirs.push(path);
                } else if file_type.is_file() {
                    if let Some(object) = listed(&root, &path, prefix, &entry).await? {
                        found.push(object);
                    }
                }
            }
        }
        found.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(found)
    }
}

async fn listed(
    root: &Path,
    path: &Path,
    prefix: &str,
    entry: &tokio::fs::DirEntry,
) -> Result<Option<ListedObject>, StorageError> {
    if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
        return Ok(None);
    }
    let Ok(relative) = path.strip_prefix(root) else {
        return Ok(None);
    };
    let Some(relative) = relative.to_str() else {
        return Ok(None);
    };
    let relative = relative.replace(std::path::MAIN_SEPARATOR, "/");
    if !relative.starts_with(prefix) {
        return Ok(None);
    }
    let Ok(key) = StorageKey::parse(&relative) else {
        return Ok(None);
    };
    let meta = entry.metadata().await?;
    Ok(Some(ListedObject {
        key,
        size: meta.len(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }))
}
