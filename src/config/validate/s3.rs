//! `storage.provider = "s3"`: the endpoint, region, bucket, credentials and server-side
//! encryption of any S3-compatible service.

use super::super::checker::Checker;
use super::super::raw::RawStorage;
use super::super::{S3Config, ServerSideEncryption};
use super::endpoint::{base_url, bucket, required_secret};

pub(super) fn section(raw: RawStorage, c: &mut Checker) -> Option<S3Config> {
    let endpoint = base_url(c, "storage.endpoint", "s3", raw.endpoint.as_deref());
    let region = c.non_empty("storage.region", raw.region, "us-east-1");
    let bucket = bucket(c, "s3", raw.bucket, 255);
    let access_key_id = required_secret(
        c,
        "storage.access_key_id",
        "s3",
        (
            raw.access_key_id,
            raw.access_key_id_env,
            raw.access_key_id_file,
        ),
    );
    let secret_access_key = required_secret(
        c,
        "storage.secret_access_key",
        "s3",
        (
            raw.secret_access_key,
            raw.secret_access_key_env,
            raw.secret_access_key_file,
        ),
    );
    let ca_file = raw.ca_file.map(|p| c.existing_file("storage.ca_file", &p));
    let sse = sse(raw.sse, raw.sse_kms_key_id, c);
    Some(S3Config {
        endpoint: endpoint?,
        region,
        bucket: bucket?,
        path_style: raw.path_style.unwrap_or(false),
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        ca_file,
        sse,
    })
}

/// `storage.sse` = "AES256" | "aws:kms" (+ optional `storage.sse_kms_key_id`).
fn sse(
    mode: Option<String>,
    kms_key_id: Option<String>,
    c: &mut Checker,
) -> Option<ServerSideEncryption> {
    let chosen = match mode.as_deref() {
        None => None,
        Some("AES256") => Some(ServerSideEncryption::Aes256),
        Some("aws:kms") => Some(ServerSideEncryption::Kms {
            key_id: kms_key_id.clone(),
        }),
        Some(other) => {
            c.problem(
                "storage.sse",
                format!("{other:?} must be \"AES256\" or \"aws:kms\""),
            );
            None
        }
    };
    match &kms_key_id {
        Some(id) if id.is_empty() || http::HeaderValue::from_str(id).is_err() => c.problem(
            "storage.sse_kms_key_id",
            "must be a non-empty key id or ARN",
        ),
        Some(_) if mode.as_deref() != Some("aws:kms") => c.problem(
            "storage.sse_kms_key_id",
            "only used with storage.sse = \"aws:kms\"",
        ),
        _ => {}
    }
    chosen
}
