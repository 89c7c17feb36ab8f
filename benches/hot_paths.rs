//! Criterion micro-benchmarks of the pure work every attachment read does before (or instead
//! of) touching storage: route matching, token verification, authorization with range and
//! conditional evaluation, `Content-Disposition` building and SigV4 request signing.
//! Run with `cargo bench --bench hot_paths`; the load test is `benches/load/run.sh`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use attachment_gateway::attachment::SharedRow;
use attachment_gateway::authn::{Authenticator, Principal, Role};
use attachment_gateway::authz::{self, Access};
use attachment_gateway::catalog::{AttachmentRow, AttachmentStatus};
use attachment_gateway::config;
use attachment_gateway::http::{conditional, disposition, range};
use attachment_gateway::route;
use attachment_gateway::storage::sign::{PayloadHash, Signer};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";
const PATH: &str = "/api/support-chat/attachments/dlg_8f3a2c/att_01HZX3K9Q2";

fn row() -> AttachmentRow {
    AttachmentRow {
        id: "att_01HZX3K9Q2".into(),
        dialog_id: Some("dlg_8f3a2c".into()),
        message_id: Some("msg_1".into()),
        storage_path: "support-chat/dialogs/dlg_8f3a2c/att_01HZX3K9Q2".into(),
        mime_type: "video/mp4".into(),
        size_bytes: 256 << 20,
        original_name: "screen recording.mp4".into(),
        created_by_user_id: "user_42".into(),
        status: AttachmentStatus::Linked,
        created_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
        linked_at: None,
        dialog_owner_id: Some("user_42".into()),
        image: Default::default(),
    }
}

fn token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn bench_route(c: &mut Criterion) {
    c.bench_function("route/classify_linked_read", |b| {
        b.iter(|| route::classify(black_box("GET"), black_box(PATH)))
    });
    c.bench_function("route/classify_passthrough", |b| {
        b.iter(|| route::classify(black_box("GET"), black_box("/api/dialogs/42/messages")))
    });
}

fn bench_authn(c: &mut Criterion) {
    let text = format!("[auth]\nalgorithms = [\"HS256\"]\nhs_secret = \"{SECRET}\"\n");
    let cfg = config::from_toml_str(&text, Path::new("."), &|_| None).expect("bench config");
    let authn = Authenticator::new(&cfg.auth);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let good = token(serde_json::json!({
        "sub": "user_42", "role": "USER", "permissions": [], "exp": exp,
    }));
    let forged = format!("{}x", &good[..good.len() - 1]);
    assert!(authn.verify(&good).is_ok());
    c.bench_function("authn/verify_hs256", |b| {
        b.iter(|| authn.verify(black_box(&good)))
    });
    c.bench_function("authn/reject_bad_signature", |b| {
        b.iter(|| authn.verify(black_box(&forged)))
    });
}

/// What `proxy::read::plan` does once the row is found: authorize, compute validators, decide
/// 304, then the range.
fn bench_policy(c: &mut Criterion) {
    let who = Principal {
        user_id: "user_42".into(),
        role: Role::User,
        permissions: vec![],
    };
    let row = row();
    let etag = conditional::strong_etag(&row.id, row.size_bytes, row.created_at, &row.mime_type);
    c.bench_function("policy/authorize_etag_range", |b| {
        b.iter(|| {
            let permit = authz::authorize(
                black_box(&who),
                SharedRow::new(row.clone()),
                Access::Linked,
                "support_chat:read",
            )
            .unwrap();
            let r = permit.row();
            let tag = conditional::strong_etag(&r.id, r.size_bytes, r.created_at, &r.mime_type);
            let fresh = conditional::is_not_modified(None, None, &tag, r.created_at);
            let partial = conditional::if_range_allows_partial(None, &tag, r.created_at);
            (
                fresh,
                partial,
                range::evaluate(black_box(Some("bytes=1048576-1114111")), r.size_bytes),
            )
        })
    });
    c.bench_function("policy/if_none_match_304", |b| {
        b.iter(|| {
            conditional::is_not_modified(
                black_box(Some(etag.as_str())),
                None,
                black_box(&etag),
                row.created_at,
            )
        })
    });
    c.bench_function("policy/range_evaluate", |b| {
        b.iter(|| range::evaluate(black_box(Some("bytes=1048576-1114111")), 256 << 20))
    });
    c.bench_function("policy/strong_etag", |b| {
        b.iter(|| {
            conditional::strong_etag(
                black_box(&row.id),
                row.size_bytes,
                row.created_at,
                &row.mime_type,
            )
        })
    });
}

fn bench_disposition(c: &mut Criterion) {
    c.bench_function("disposition/ascii", |b| {
        b.iter(|| disposition::content_disposition(black_box("screen recording.mp4"), true))
    });
    c.bench_function("disposition/unicode_hostile", |b| {
        b.iter(|| {
            disposition::content_disposition(
                black_box("Отчёт \"квартал\"\u{202E}fdp.exe\\..\\ 2026.pdf"),
                false,
            )
        })
    });
}

fn bench_sign(c: &mut Criterion) {
    let signer = Signer::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        "us-east-1",
        "s3",
    );
    let url = "http://127.0.0.1:8333/attachments/support-chat/dialogs/dlg_8f3a2c/att_01HZX3K9Q2";
    let time = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
    c.bench_function("sign/get_headers", |b| {
        b.iter(|| {
            signer.sign_headers(
                "GET",
                black_box(url),
                &[("range", "bytes=1048576-1114111")],
                &PayloadHash::Unsigned,
                time,
            )
        })
    });
    c.bench_function("sign/presign_get", |b| {
        b.iter(|| {
            signer.presign_get(
                black_box(url),
                Duration::from_secs(60),
                Some("video/mp4"),
                Some("inline; filename=\"screen recording.mp4\""),
                time,
            )
        })
    });
}

criterion_group!(
    benches,
    bench_route,
    bench_authn,
    bench_policy,
    bench_disposition,
    bench_sign
);
criterion_main!(benches);
