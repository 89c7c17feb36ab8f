//! Authentication: a JWT from `Authorization: Bearer` or the session cookie -> `Principal`
//! (RFC 7519, RFC 8725). Algorithms are pinned by config; the reason a token is refused goes to
//! the log, never to the client. What the caller may read is decided later, by `authz`.
//!
//! This file holds the types and the [`Authenticator`] facade; the work is in `token`
//! (finding the token), `verify` (header and signature), `keys` (which key) and `claims`
//! (times and the `Principal`).

mod cache;
mod claims;
mod keys;
#[cfg(test)]
mod testkit;
mod token;
mod verify;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Validation;

use crate::config::{AuthConfig, JwtAlgorithm};
use claims::ClaimNames;
use keys::Keys;

pub use token::{has_bearer, MAX_TOKEN_BYTES};

/// The caller's role, from the `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Staff,
    Admin,
}

/// Who is calling: a validated user id, role and permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Matches `[A-Za-z0-9_-]{1,128}`: safe in keys and queries.
    pub user_id: String,
    pub role: Role,
    pub permissions: Vec<String>,
}

/// Why a request is not authenticated. Every variant becomes the same `401` for the client;
/// [`AuthError::reason`] is the log label. No variant carries any part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token and no session cookie")]
    Missing,
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token header is not acceptable")]
    BadHeader,
    #[error("no configured key matches the token's kid")]
    UnknownKid,
    #[error("token algorithm is not allowed")]
    AlgorithmNotAllowed,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    BadIssuer,
    #[error("token audience is not accepted")]
    BadAudience,
    #[error("token signature does not verify")]
    BadSignature,
    /// The signature is good but a claim is missing or has the wrong shape; the payload is the
    /// log label (`missing_exp`, `bad_user`, `bad_role`, ...).
    #[error("token claims are not acceptable ({0})")]
    BadClaims(&'static str),
}

impl AuthError {
    /// Short snake_case label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::TooLong => "too_long",
            AuthError::Malformed => "malformed",
            AuthError::BadHeader => "bad_header",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::AlgorithmNotAllowed => "alg_not_allowed",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::BadIssuer => "bad_issuer",
            AuthError::BadAudience => "bad_audience",
            AuthError::BadSignature => "bad_signature",
            AuthError::BadClaims(reason) => reason,
        }
    }
}

/// Verifies tokens against the configured algorithms and keys. Built once, shared by requests.
pub struct Authenticator {
    algorithms: Vec<JwtAlgorithm>,
    keys: Keys,
    /// `iss`/`aud` checks; `exp`/`nbf` are checked by `claims` against an injected clock.
    validation: Validation,
    leeway_s: u64,
    cookie: String,
    claims: ClaimNames,
    /// Tokens verified already, until they expire.
    verified: cache::Verified,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material stays out of logs; kids and algorithms are enough to debug config.
        f.debug_struct("Authenticator")
            .field("algorithms", &self.algorithms)
            .field("hmac", &self.keys.has_hmac())
            .field("keys", &self.keys.kids())
            .field("leeway_s", &self.leeway_s)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Cannot fail: `config` has judged `[auth]` and parsed every key (`validate::auth`).
    /// An `AuthConfig` assembled by hand that breaks its rules fails closed: a token whose
    /// algorithm has no key (or no secret) is refused.
    pub fn new(cfg: &AuthConfig) -> Authenticator {
        Authenticator {
            algorithms: cfg.algorithms.clone(),
            keys: Keys::new(cfg),
            validation: verify::base_validation(cfg),
            leeway_s: cfg.leeway.as_secs(),
            cookie: cfg.cookie.clone(),
            claims: ClaimNames::new(cfg),
            verified: cache::Verified::new(),
        }
    }

    /// Extract and verify in one step, against the system clock.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        cookie_headers: &[&str],
    ) -> Result<Principal, AuthError> {
        let token = self
            .token_from_headers(authorization, cookie_headers)
            .ok_or(AuthError::Missing)?;
        self.verify(token)
    }

    /// Verify and map to a Principal, against the system clock. A token verified before
    /// (the exact same bytes) is answered from the cache while its `exp`/`nbf` allow it: the
    /// signature and the claims of those bytes cannot have changed, and the keys are fixed
    /// for the life of the process.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let (principal, window) = self.verify_window(token, now)?;
        self.verified.insert(token, &principal, window, now);
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use jsonwebtoken::Algorithm;
    use serde_json::json;
    use AuthError::*;

    #[test]
    fn verify_uses_the_system_clock() {
        let auth = authenticator();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let live = hs256(&set("exp", json!(now + 600)));
        assert_eq!(auth.verify(&live), Ok(user_42()));
        let dead = hs256(&set("exp", json!(now - 600)));
        assert_eq!(auth.verify(&dead), Err(Expired));
    }

    #[test]
    fn authenticate_extracts_then_verifies() {
        let auth = authenticator();
        let token = sign(Algorithm::EdDSA, Some("ed-1"), &set("exp", json!(u32::MAX)));
        let cookie = format!("theme=dark; session={token}");
        assert_eq!(auth.authenticate(None, &[&cookie]), Ok(user_42()));
        let bearer = format!("Bearer {token}");
        assert_eq!(
            auth.authenticate(Some(&bearer), &["session=junk"]),
            Ok(user_42())
        );
        assert_eq!(
            auth.authenticate(Some("Bearer junk"), &[&cookie]),
            Err(Malformed)
        );
    }

    #[test]
    fn reasons_are_distinct_short_labels() {
        let all = [
            Missing,
            TooLong,
            Malformed,
            BadHeader,
            UnknownKid,
            AlgorithmNotAllowed,
            Expired,
            NotYetValid,
            BadIssuer,
            BadAudience,
            BadSignature,
            BadClaims("bad_role"),
        ];
        let mut seen = std::collections::HashSet::new();
        for err in all {
            let reason = err.reason();
            assert!(seen.insert(reason), "duplicate reason {reason}");
            let snake = reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            assert!(snake, "{reason}");
        }
        assert_eq!(Expired.reason(), "expired");
        assert_eq!(BadClaims("missing_exp").reason(), "missing_exp");
    }

    #[test]
    fn debug_shows_the_key_set_never_key_material() {
        // Debug shows the shape of the key set, never key material or the secret.
        let debug = format!("{:?}", authenticator());
        assert!(
            debug.contains("rsa-1") && !debug.contains(HS_SECRET),
            "{debug}"
        );
    }
}
