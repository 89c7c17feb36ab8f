//! `s3` provider: any S3-compatible service over HTTP(S), path-style or virtual-host style,
//! every request signed with SigV4 (`sign`). Requests carry only the headers built here, never
//! a client's; bodies stream both ways and every wait is bounded by the configured timeouts.

mod list;
mod request;
mod signed_reads;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};

use super::http_provider::{
    check_status, http_client, object_body, parse_url, range_value, read_status, small_body,
    upload_body,
};
use super::reader::{body_stream, ReadClient};
use super::sign::{encode_key_path, encode_query_value, PayloadHash, Signer};
use super::{ByteStream, ListedObject, ObjectBody, Storage, StorageError, StorageKey};
use crate::authz::Permit;
use crate::config::{S3Config, ServerSideEncryption};
use crate::http::range::ByteRange;
use request::Outgoing;
use signed_reads::SignedReads;

#[derive(Debug, Clone)]
pub struct S3Storage {
    client: reqwest::Client,
    /// Object reads only: a client whose read-ahead per download is bounded (`reader`).
    reader: ReadClient,
    signer: Signer,
    /// Object reads' signatures, reused for a while (`signed_reads`).
    signed_reads: std::sync::Arc<SignedReads>,
    /// `scheme://host[:port][/path-prefix]` that objects of the bucket live under, without a
    /// trailing slash: `endpoint/bucket` (path-style) or `scheme://bucket.host` (virtual-host).
    bucket_base: String,
    bucket: String,
    read_timeout: Duration,
    /// Server-side encryption asked for on every upload.
    sse: Option<ServerSideEncryption>,
}

impl S3Storage {
    pub fn new(
        cfg: &S3Config,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, StorageError> {
        let client = http_client(cfg.ca_file.as_deref(), connect_timeout)?;
        Ok(S3Storage {
            client,
            reader: ReadClient::new(cfg.ca_file.as_deref(), connect_timeout)?,
            sse: cfg.sse.clone(),
            signer: Signer::new(
                cfg.access_key_id.expose(),
                cfg.secret_access_key.expose(),
                None,
                &cfg.region,
                "s3",
            ),
            signed_reads: Default::default(),
            bucket_base: bucket_base(&cfg.endpoint, &cfg.bucket, cfg.path_style)?,
            bucket: cfg.bucket.clone(),
            read_timeout,
        })
    }

    fn object_url(&self, key: &StorageKey) -> Result<url::Url, StorageError> {
        parse_url(&format!(
            "{}/{}",
            self.bucket_base,
            encode_key_path(key.as_str())
        ))
    }

    fn bucket_url(&self, query: &[(&str, &str)]) -> Result<url::Url, StorageError> {
        let mut url = self.bucket_base.clone();
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode_query_value(name));
            url.push('=');
            url.push_str(&encode_query_value(value));
        }
        parse_url(&url)
    }

    /// Create the bucket (`PUT /bucket`); an existing bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), StorageError> {
        let resp = self
            .execute(Outgoing::new(Method::PUT, self.bucket_url(&[])?))
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = small_body(resp, self.read_timeout).await?;
        if status == StatusCode::CONFLICT && body.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(StorageError::Status(status.as_u16()))
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn get(
        &self,
        permit: &Permit,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StorageError> {
        // Read the object, optionally one inclusive byte range (RFC 9110 §14.2 `Range`),
        // with the object's kept signature (`signed_reads`): the range is not signed.
        let key = permit.key();
        let signed = self
            .signed_reads
            .get_or_sign(key.as_str(), SystemTime::now(), |now| {
                self.signed_read(key, now)
            })?;
        let range_header = range.map(range_value);
        let headers: Vec<(&str, &str)> = signed
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .chain(range_header.as_deref().map(|value| ("range", value)))
            .collect();
        let resp = self
            .reader
            .get(&signed.url, &headers, self.read_timeout)
            .await?;
        check_status(resp.status(), read_status(range))?;
        let (head, body) = resp.into_parts();
        object_body(&head.headers, body_stream(body), range, self.read_timeout)
    }

    async fn put(
        &self,
        key: &StorageKey,
        content_type: &str,
        content_length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        // S3 rejects chunked uploads: the length is sent explicitly and the body must match it.
        // The payload is streamed, so its hash cannot be known when signing.
        let (body, progress) = upload_body(body, content_length);
        let mut req = Outgoing::new(Method::PUT, self.object_url(key)?)
            .header("content-length", content_length.to_string())
            .header("content-type", content_type);
        // x-amz-* headers are always signed (SigV4), so the service cannot be told to skip it.
        match &self.sse {
            None => {}
            Some(ServerSideEncryption::Aes256) => {
                req = req.header("x-amz-server-side-encryption", "AES256");
            }
            Some(ServerSideEncryption::Kms { key_id }) => {
                req = req.header("x-amz-server-side-encryption", "aws:kms");
                if let Some(id) = key_id {
                    req = req.header("x-amz-server-side-encryption-aws-kms-key-id", id.clone());
                }
            }
        }
        req.payload = PayloadHash::Unsigned;
        req.body = Some(body);
        let resp = progress.send(self.signed(req)?, self.read_timeout).await?;
        check_status(resp.status(), StatusCode::OK)
    }

    fn presign_get(
        &self,
        permit: &Permit,
        ttl: Duration,
        response_content_type: Option<&str>,
        response_content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        let url = self.object_url(permit.key())?;
        self.signer
            .presign_get(
                url.as_str(),
                ttl,
                response_content_type,
                response_content_disposition,
                SystemTime::now(),
            )
            .map_err(|e| StorageError::Config(e.to_string()))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        let resp = self
            .execute(Outgoing::new(Method::DELETE, self.object_url(key)?))
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(StorageError::Status(s.as_u16())),
        }
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let resp = self
            .execute(Outgoing::new(Method::HEAD, self.bucket_url(&[])?))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            s => Err(StorageError::Status(s.as_u16())),
        }
    }

    async fn copy(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
        let source = format!("/{}/{}", self.bucket, encode_key_path(from.as_str()));
        let req =
            Outgoing::new(Method::PUT, self.object_url(to)?).header("x-amz-copy-source", source);
        let resp = self.execute(req).await?;
        check_status(resp.status(), StatusCode::OK)?;
        // CopyObject may fail after answering 200: the error is then in the body.
        let body = small_body(resp, self.read_timeout).await?;
        if body.contains("<Error>") {
            return Err(StorageError::Transport("storage copy failed".into()));
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        self.list_all(prefix).await
    }
}

fn bucket_base(
    endpoint: &url::Url,
    bucket: &str,
    path_style: bool,
) -> Result<String, StorageError> {
    let path = endpoint.path().trim_end_matches('/');
    if path_style {
        let origin = endpoint.origin().ascii_serialization();
        return Ok(format!("{origin}{path}/{}", encode_key_path(bucket)));
    }
    let host = endpoint
        .host_str()
        .ok_or_else(|| StorageError::Config("storage.endpoint has no host".into()))?;
    let port = endpoint.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!(
        "{}://{bucket}.{host}{port}{path}",
        endpoint.scheme()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_base_for_each_addressing_style() {
        let cases = [
            (
                "http://127.0.0.1:8333",
                "b",
                true,
                "http://127.0.0.1:8333/b",
            ),
            (
                "http://127.0.0.1:8333/",
                "b",
                true,
                "http://127.0.0.1:8333/b",
            ),
            (
                "https://x.supabase.co/storage/v1/s3",
                "files",
                true,
                "https://x.supabase.co/storage/v1/s3/files",
            ),
            (
                "https://s3.eu-central-1.amazonaws.com",
                "files",
                false,
                "https://files.s3.eu-central-1.amazonaws.com",
            ),
            (
                "https://s3.timeweb.cloud:8443/",
                "files",
                false,
                "https://files.s3.timeweb.cloud:8443",
            ),
            ("https://s3.example:443", "b", true, "https://s3.example/b"),
        ];
        for (endpoint, bucket, path_style, expected) in cases {
            let endpoint = url::Url::parse(endpoint).unwrap();
            assert_eq!(
                bucket_base(&endpoint, bucket, path_style).unwrap(),
                expected,
                "{endpoint} path_style={path_style}"
            );
        }
    }
}
