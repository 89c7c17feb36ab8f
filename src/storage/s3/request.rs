//! One S3 request: the method, URL, headers and body the `s3` provider decided on, signed with
//! SigV4 (`sign`) and sent within the read timeout. It adds no header of its own but the
//! signature's, and decides nothing about what a request asks.

use std::time::SystemTime;

use reqwest::Method;

use super::signed_reads::SignedRead;
use super::S3Storage;
use crate::storage::http_provider::send;
use crate::storage::sign::PayloadHash;
use crate::storage::{StorageError, StorageKey};

/// One request before signing: everything that will be sent, and nothing else.
pub(super) struct Outgoing {
    pub(super) method: Method,
    pub(super) url: url::Url,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) payload: PayloadHash,
    pub(super) body: Option<reqwest::Body>,
}

impl Outgoing {
    pub(super) fn new(method: Method, url: url::Url) -> Self {
        Outgoing {
            method,
            url,
            headers: Vec::new(),
            payload: PayloadHash::of(b""),
            body: None,
        }
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl S3Storage {
    /// Sign and send; bounded by the read timeout until the response headers arrive.
    pub(super) async fn execute(&self, req: Outgoing) -> Result<reqwest::Response, StorageError> {
        send(self.signed(req)?, self.read_timeout).await
    }

    /// The signed `GET` of an object at `time`, its range left out (`signed_reads`), for the
    /// read client (`reader`).
    pub(super) fn signed_read(
        &self,
        key: &StorageKey,
        time: SystemTime,
    ) -> Result<SignedRead, StorageError> {
        let req = Outgoing::new(Method::GET, self.object_url(key)?);
        Ok(SignedRead {
            headers: self.signature_at(&req, time)?,
            url: req.url,
            signed_at: time,
        })
    }

    /// The SigV4 headers for `req` (its own headers are signed too).
    fn signature(&self, req: &Outgoing) -> Result<Vec<(String, String)>, StorageError> {
        self.signature_at(req, SystemTime::now())
    }

    /// `signature`, signed at `time`.
    fn signature_at(
        &self,
        req: &Outgoing,
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let to_sign: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        self.signer
            .sign_headers(
                req.method.as_str(),
                req.url.as_str(),
                &to_sign,
                &req.payload,
                time,
            )
            .map_err(|e| StorageError::Config(e.to_string()))
    }

    pub(super) fn signed(&self, req: Outgoing) -> Result<reqwest::RequestBuilder, StorageError> {
        let signature = self.signature(&req)?;
        let mut builder = self.client.request(req.method, req.url);
        for (name, value) in req.headers.iter().map(|(n, v)| (*n, v.as_str())) {
            builder = builder.header(name, value);
        }
        for (name, value) in &signature {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        Ok(builder)
    }
}
