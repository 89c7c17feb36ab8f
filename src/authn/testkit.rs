//! Test fixtures shared by the `authn` unit tests: one config with every algorithm family, the
//! keys that sign for it, and helpers to edit claims. Tests only; no test lives here.

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{AuthError, Authenticator, Principal, Role};
use crate::config::{AuthConfig, JwtAlgorithm, PublicKeyConfig, Secret};

pub const NOW: u64 = 1_750_000_000;
pub const HS_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const RSA_PRIVATE: &str = include_str!("../../tests/data/keys/rsa2048-private.pem");
pub const RSA_PUBLIC: &str = include_str!("../../tests/data/keys/rsa2048-public.pem");
const P256_PRIVATE: &str = include_str!("../../tests/data/keys/ec-p256-private.pem");
const P256_PUBLIC: &str = include_str!("../../tests/data/keys/ec-p256-public.pem");
const P384_PRIVATE: &str = include_str!("../../tests/data/keys/ec-p384-private.pem");
const P384_PUBLIC: &str = include_str!("../../tests/data/keys/ec-p384-public.pem");
const ED_PRIVATE: &str = include_str!("../../tests/data/keys/ed25519-private.pem");
const ED_PUBLIC: &str = include_str!("../../tests/data/keys/ed25519-public.pem");
/// An Ed25519 key no test config knows: a forger's key.
pub const STRANGER_PRIVATE: &str =
    include_str!("../../tests/data/keys/ed25519-stranger-private.pem");

/// (case name, input, expected outcome) for table tests.
pub type Row<T> = (&'static str, T, Result<(), AuthError>);

/// A key as config validation would have parsed it.
pub fn key(kid: &str, alg: JwtAlgorithm, pem: &str) -> PublicKeyConfig {
    let file = PathBuf::from(format!("keys/{kid}.pem"));
    PublicKeyConfig::parse(kid.to_owned(), alg, pem.to_owned(), file).expect("test key parses")
}

/// Every algorithm family, one key each (the RSA key serves RS256 and, under another kid,
/// PS256).
pub fn config() -> AuthConfig {
    use JwtAlgorithm::*;
    AuthConfig {
        algorithms: vec![HS256, HS384, HS512, RS256, PS256, ES256, ES384, EdDSA],
        hs_secret: Some(Secret::new(HS_SECRET)),
        public_keys: vec![
            key("rsa-1", RS256, RSA_PUBLIC),
            key("rsa-pss", PS256, RSA_PUBLIC),
            key("ec-256", ES256, P256_PUBLIC),
            key("ec-384", ES384, P384_PUBLIC),
            key("ed-1", EdDSA, ED_PUBLIC),
        ],
        issuer: None,
        audience: None,
        leeway: Duration::from_secs(60),
        cookie: "session".to_owned(),
        user_claim: "sub".to_owned(),
        role_claim: "role".to_owned(),
        permissions_claim: "permissions".to_owned(),
        staff_permission: "support_chat:read".to_owned(),
    }
}

pub fn authenticator() -> Authenticator {
    Authenticator::new(&config())
}

pub fn claims() -> Value {
    json!({
        "sub": "user_42",
        "role": "USER",
        "permissions": ["support_chat:read"],
        "exp": NOW + 600,
    })
}

pub fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

pub fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// The good claims with one claim replaced.
pub fn set(name: &str, value: Value) -> Value {
    with(claims(), name, value)
}

/// The good claims with one claim removed.
pub fn unset(name: &str) -> Value {
    without(claims(), name)
}

fn encoding_key(alg: Algorithm) -> EncodingKey {
    let pem = |p: &str| p.as_bytes().to_vec();
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(HS_SECRET.as_bytes())
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem(P256_PRIVATE)).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&pem(P384_PRIVATE)).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem(ED_PRIVATE)).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem(RSA_PRIVATE)).unwrap(),
    }
}

pub fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("test token signs")
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    sign_with(alg, kid, claims, &encoding_key(alg))
}

pub fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, claims)
}

pub fn b64(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
}

/// Signs each row's claims with HS256 and checks the outcome.
pub fn check_claims(auth: &Authenticator, rows: Vec<Row<Value>>) {
    for (name, claims, want) in rows {
        let got = auth.verify_at(&hs256(&claims), NOW).map(drop);
        assert_eq!(got, want, "{name}");
    }
}

pub fn user_42() -> Principal {
    Principal {
        user_id: "user_42".to_owned(),
        role: Role::User,
        permissions: vec!["support_chat:read".to_owned()],
    }
}
