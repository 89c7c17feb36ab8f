//! `supabase` provider: Supabase Storage's own REST API (`<url>/storage/v1/...`) with the
//! project's service key, sent as `Authorization: Bearer` and `apikey` on every call. Bodies
//! stream both ways; every wait is bounded by the configured timeouts, as for `s3`.
//!
//! Routes used (Supabase Storage API): `GET|POST /object/{bucket}/{path}` (read with `Range`,
//! upload with `x-upsert`), `POST /object/copy`, `POST /object/move`, `DELETE /object/{bucket}`
//! (`{"prefixes": [...]}`), `POST /object/list/{bucket}` (one folder level per call),
//! `POST /object/sign/{bucket}/{path}` (signed read URL) and `GET /bucket/{bucket}` (ping).

mod list;
mod signed_url;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::http_provider::{
    http_client, object_body, parse_url, range_value, read_status, send, small_body, upload_body,
};
use super::reader::{body_stream, small_text, ReadClient};
use super::sign::encode_key_path;
use super::{ByteStream, ListedObject, ObjectBody, Storage, StorageError, StorageKey};
use crate::authz::Permit;
use crate::config::{Secret, SupabaseConfig};
use crate::http::range::ByteRange;

#[derive(Debug, Clone)]
pub struct SupabaseStorage {
    client: reqwest::Client,
    /// Object reads only: a client whose read-ahead per download is bounded (`reader`).
    reader: ReadClient,
    /// `<url>/storage/v1`, without a trailing slash.
    api: String,
    bucket: String,
    service_key: Secret,
    read_timeout: Duration,
}

impl SupabaseStorage {
    pub fn new(
        cfg: &SupabaseConfig,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, StorageError> {
        let base = cfg.url.as_str().trim_end_matches('/');
        Ok(SupabaseStorage {
            client: http_client(cfg.ca_file.as_deref(), connect_timeout)?,
            reader: ReadClient::new(cfg.ca_file.as_deref(), connect_timeout)?,
            api: format!("{base}/storage/v1"),
            bucket: cfg.bucket.clone(),
            service_key: cfg.service_key.clone(),
            read_timeout,
        })
    }

    fn bucket_path(&self) -> String {
        encode_key_path(&self.bucket)
    }

    fn object_url(&self, route: &str, key: &StorageKey) -> String {
        format!(
            "{}/object/{route}{}/{}",
            self.api,
            self.bucket_path(),
            encode_key_path(key.as_str())
        )
    }

    /// The only headers of ours every call carries: the service key, twice as the API wants.
    fn auth_headers(&self) -> [(&'static str, String); 2] {
        let key = self.service_key.expose();
        [
            ("apikey", key.to_string()),
            ("authorization", format!("Bearer {key}")),
        ]
    }

    /// A request carrying the service key, and nothing of any client's.
    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, url);
        for (name, value) in self.auth_headers() {
            request = request.header(name, value);
        }
        request
    }

    async fn send_json(
        &self,
        method: Method,
        url: &str,
        body: serde_json::Value,
    ) -> Result<reqwest::Response, StorageError> {
        let req = self
            .request(method, url)
            .header("content-type", "application/json")
            .body(body.to_string());
        send(req, self.read_timeout).await
    }

    /// `Ok(resp)` when the status is `expected`, else the error the answer describes.
    async fn expect(
        &self,
        resp: reqwest::Response,
        expected: StatusCode,
    ) -> Result<reqwest::Response, StorageError> {
        if resp.status() == expected {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Err(StorageError::Status(status));
        }
        let body = small_body(resp, self.read_timeout)
            .await
            .unwrap_or_default();
        Err(classify(status, &body))
    }

    /// Rename `from` to `to` inside the bucket (`POST /object/move`), one call on the service.
    pub async fn move_object(
        &self,
        from: &StorageKey,
        to: &StorageKey,
    ) -> Result<(), StorageError> {
        let url = format!("{}/object/move", self.api);
        let body = serde_json::json!({
            "bucketId": self.bucket,
            "sourceKey": from.as_str(),
            "destinationKey": to.as_str(),
        });
        let resp = self.send_json(Method::POST, &url, body).await?;
        self.expect(resp, StatusCode::OK).await.map(drop)
    }
}

#[async_trait]
impl Storage for SupabaseStorage {
    async fn get(
        &self,
        permit: &Permit,
        range: Option<ByteRange>,
    ) -> Result<ObjectBody, StorageError> {
        let url = parse_url(&self.object_url("", permit.key()))?;
        // The same headers as `request`: the service key, and nothing of any client's.
        let auth = self.auth_headers();
        let range_header = range.map(range_value);
        let mut headers: Vec<(&str, &str)> = auth.iter().map(|(n, v)| (*n, v.as_str())).collect();
        if let Some(value) = &range_header {
            headers.push(("range", value.as_str()));
        }
        let resp = self.reader.get(&url, &headers, self.read_timeout).await?;
        let (head, body) = resp.into_parts();
        if head.status != read_status(range) {
            let status = head.status.as_u16();
            if head.status.is_success() {
                return Err(StorageError::Status(status));
            }
            return Err(classify(status, &small_text(body, self.read_timeout).await));
        }
        object_body(&head.headers, body_stream(body), range, self.read_timeout)
    }

    async fn put(
        &self,
        key: &StorageKey,
        content_type: &str,
        content_length: u64,
        body: ByteStream,
    ) -> Result<(), StorageError> {
        // The object's type is the upload's `Content-Type`; `x-upsert` overwrites, as S3 does.
        let (body, progress) = upload_body(body, content_length);
        let req = self
            .request(Method::POST, &self.object_url("", key))
            .header("content-type", content_type)
            .header("content-length", content_length.to_string())
            .header("x-upsert", "true")
            .body(body);
        let resp = progress.send(req, self.read_timeout).await?;
        self.expect(resp, StatusCode::OK).await.map(drop)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StorageError> {
        // The bulk route answers 200 with what it removed (nothing for a missing key), where
        // the single-object one would answer "not found".
        let url = format!("{}/object/{}", self.api, self.bucket_path());
        let body = serde_json::json!({ "prefixes": [key.as_str()] });
        let resp = self.send_json(Method::DELETE, &url, body).await?;
        self.expect(resp, StatusCode::OK).await.map(drop)
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let url = format!("{}/bucket/{}", self.api, self.bucket_path());
        let resp = send(self.request(Method::GET, &url), self.read_timeout).await?;
        self.expect(resp, StatusCode::OK).await.map(drop)
    }

    async fn signed_read_url(
        &self,
        permit: &Permit,
        ttl: Duration,
        _response_content_type: Option<&str>,
        response_content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        // Supabase serves the type stored at upload (the uploader's validated type); it has no
        // content-type override. `download=<name>` makes it answer `attachment`.
        let url = self.object_url("sign/", permit.key());
        let body = serde_json::json!({ "expiresIn": ttl.as_secs().max(1) });
        let resp = self.send_json(Method::POST, &url, body).await?;
        let resp = self.expect(resp, StatusCode::OK).await?;
        let text = small_body(resp, self.read_timeout).await?;
        signed_url::from_answer(&self.api, &text, response_content_disposition)
    }

    async fn copy(&self, from: &StorageKey, to: &StorageKey) -> Result<(), StorageError> {
        let url = format!("{}/object/copy", self.api);
        let body = serde_json::json!({
            "bucketId": self.bucket,
            "sourceKey": from.as_str(),
            "destinationKey": to.as_str(),
        });
        // A retried commit copies onto its own earlier copy: overwrite, as S3 does.
        let req = self
            .request(Method::POST, &url)
            .header("content-type", "application/json")
            .header("x-upsert", "true")
            .body(body.to_string());
        let resp = send(req, self.read_timeout).await?;
        self.expect(resp, StatusCode::OK).await.map(drop)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        self.list_all(prefix).await
    }
}

/// The error an answer describes. A missing object is `404`, or `400` with a "not found" body
/// in older versions of the API (`{"statusCode":"404","error":"not_found",...}`).
fn classify(status: u16, body: &str) -> StorageError {
    if status == 404 {
        return StorageError::NotFound;
    }
    if status == 400 {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, rename = "statusCode")]
            status_code: Option<serde_json::Value>,
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            code: Option<String>,
        }
        if let Ok(answer) = serde_json::from_str::<Answer>(body) {
            let says_404 = match &answer.status_code {
                Some(serde_json::Value::String(s)) => s == "404",
                Some(serde_json::Value::Number(n)) => n.as_u64() == Some(404),
                _ => false,
            };
            let not_found = answer.error.as_deref() == Some("not_found")
                || answer.code.as_deref() == Some("NoSuchKey");
            if says_404 || not_found {
                return StorageError::NotFound;
            }
        }
    }
    StorageError::Status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_objects_in_every_version_of_the_api() {
        let cases = [
            (404, "", true),
            (
                404,
                r#"{"statusCode":"404","code":"NoSuchKey","error":"not_found","message":"Object not found"}"#,
                true,
            ),
            (
                400,
                r#"{"statusCode":"404","error":"not_found","message":"Object not found"}"#,
                true,
            ),
            (400, r#"{"statusCode":404,"error":"x"}"#, true),
            (400, r#"{"code":"NoSuchKey","message":"x"}"#, true),
            (
                400,
                r#"{"statusCode":"400","error":"InvalidKey","message":"Invalid key"}"#,
                false,
            ),
            (
                400,
                r#"{"statusCode":"403","error":"Unauthorized","message":"invalid signature"}"#,
                false,
            ),
            (400, "not json", false),
            (401, r#"{"message":"Invalid API key"}"#, false),
            (500, "", false),
        ];
        for (status, body, missing) in cases {
            let got = classify(status, body);
            match (missing, &got) {
                (true, StorageError::NotFound) => {}
                (false, StorageError::Status(s)) if *s == status => {}
                _ => panic!("{status} {body}: {got:?}"),
            }
        }
    }
}
