//! Authentication: a JWT from `Authorization: Bearer` or the session cookie -> `Principal`
//! (RFC 7519, RFC 8725). Algorithms are pinned by config; the reason a token is refused goes to
//! the log, never to the client. What the caller may read is decided later, by `authz`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, JwtAlgorithm, PublicKeyConfig};

/// Longest token we parse. Real session tokens are well under 2 KiB; the cap bounds the
/// base64, JSON and signature work one hostile request can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Longest user id accepted from the user claim.
const MAX_USER_ID_LEN: usize = 128;

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

/// Why `auth` config cannot be used; each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth.algorithms is empty: no token could ever be accepted")]
    NoAlgorithms,
    #[error("auth.algorithms allows {0} but auth.hs_secret is not set")]
    MissingHsSecret(JwtAlgorithm),
    #[error("auth.public_keys: kid {kid:?} has alg {alg}, which is not in auth.algorithms")]
    KeyAlgorithmNotAllowed { kid: String, alg: JwtAlgorithm },
    #[error("auth.public_keys: kid {kid:?} has HMAC alg {alg}; HMAC uses auth.hs_secret")]
    HmacPublicKey { kid: String, alg: JwtAlgorithm },
    #[error("auth.public_keys: kid {0:?} appears more than once")]
    DuplicateKid(String),
    #[error("auth.public_keys: kid {kid:?} ({file}) is a private key; configure the public key")]
    PrivateKey { kid: String, file: String },
    #[error("auth.public_keys: kid {kid:?} ({file}) is not a {alg} public key PEM: {reason}")]
    BadPem {
        kid: String,
        file: String,
        alg: JwtAlgorithm,
        reason: String,
    },
    #[error("auth.algorithms allows {0} but no auth.public_keys entry has that alg")]
    NoKeyForAlgorithm(JwtAlgorithm),
}

/// A public key parsed once at start, bound to the one algorithm it may verify.
struct PublicKey {
    kid: String,
    alg: JwtAlgorithm,
    key: DecodingKey,
}

/// Verifies tokens against the configured algorithms and keys. Built once, shared by requests.
pub struct Authenticator {
    algorithms: Vec<JwtAlgorithm>,
    /// Present only when an HS* algorithm is allowed.
    hmac: Option<DecodingKey>,
    keys: Vec<PublicKey>,
    /// `iss`/`aud` checks; `exp`/`nbf` are checked here against an injected clock.
    validation: Validation,
    leeway_s: u64,
    cookie: String,
    user_claim: String,
    role_claim: String,
    permissions_claim: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key material stays out of logs; kids and algorithms are enough to debug config.
        let keys: Vec<(&str, JwtAlgorithm)> =
            self.keys.iter().map(|k| (k.kid.as_str(), k.alg)).collect();
        f.debug_struct("Authenticator")
            .field("algorithms", &self.algorithms)
            .field("hmac", &self.hmac.is_some())
            .field("keys", &keys)
            .field("leeway_s", &self.leeway_s)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Parses the secret and every PEM key once, and refuses config that could never accept a
    /// token or that would let one key serve two algorithms.
    pub fn new(cfg: &AuthConfig) -> Result<Authenticator, AuthConfigError> {
        if cfg.algorithms.is_empty() {
            return Err(AuthConfigError::NoAlgorithms);
        }
        let hmac = hmac_key(cfg)?;
        let keys = public_keys(cfg)?;
        for &alg in &cfg.algorithms {
            if !alg.is_hmac() && !keys.iter().any(|k| k.alg == alg) {
                return Err(AuthConfigError::NoKeyForAlgorithm(alg));
            }
        }
        Ok(Authenticator {
            algorithms: cfg.algorithms.clone(),
            hmac,
            keys,
            validation: base_validation(cfg),
            leeway_s: cfg.leeway.as_secs(),
            cookie: cfg.cookie.clone(),
            user_claim: cfg.user_claim.clone(),
            role_claim: cfg.role_claim.clone(),
            permissions_claim: cfg.permissions_claim.clone(),
        })
    }

    /// Extract the token: `Authorization: Bearer <t>` (scheme case-insensitive, one space or
    /// more; RFC 6750 §2.1, RFC 9110 §11.1) wins; otherwise the cookie named `auth.cookie` from
    /// the `Cookie` header(s) (HTTP/2 may split cookies over several headers, RFC 9113 §8.2.3).
    /// Never from the query string: the API has no token parameter, so tokens stay out of
    /// access logs and `Referer` (RFC 6750 §5.3). Other schemes (`Basic`) and an empty bearer
    /// credential are ignored.
    pub fn token_from_headers<'a>(
        &self,
        authorization: Option<&'a str>,
        cookie_headers: &[&'a str],
    ) -> Option<&'a str> {
        authorization
            .and_then(bearer_token)
            .or_else(|| cookie_value(cookie_headers, &self.cookie))
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

    /// Verify and map to a Principal, against the system clock.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(token, now)
    }

    /// Verify at `now` (seconds since the Unix epoch). Order matters: the header is judged
    /// before any key is chosen, the signature before any claim is believed.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        let header = parse_header(token)?;
        // RFC 8725 §3.1: the algorithm is ours to choose, not the token's.
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let key = self.key_for(header.alg, header.kid.as_deref())?;
        let claims = self.decode_claims(token, key, header.alg)?;
        check_times(&claims, now, self.leeway_s)?;
        self.principal(&claims)
    }

    /// HS* use the shared secret. Asymmetric algorithms use the key named by `kid`, which must
    /// be configured for exactly that algorithm, so a public key can never be used as an HMAC
    /// secret or for another scheme (RFC 8725 §2.1, §3.1). A token without `kid` is accepted
    /// only when one key alone is configured for its algorithm, so there is nothing to choose.
    fn key_for(&self, alg: JwtAlgorithm, kid: Option<&str>) -> Result<&DecodingKey, AuthError> {
        if alg.is_hmac() {
            return self.hmac.as_ref().ok_or(AuthError::AlgorithmNotAllowed);
        }
        match kid {
            Some(kid) => {
                let found = self
                    .keys
                    .iter()
                    .find(|k| k.kid == kid)
                    .ok_or(AuthError::UnknownKid)?;
                if found.alg != alg {
                    return Err(AuthError::AlgorithmNotAllowed);
                }
                Ok(&found.key)
            }
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(&only.key),
                    _ => Err(AuthError::UnknownKid),
                }
            }
        }
    }

    /// Signature, then `iss`/`aud`, by `jsonwebtoken`; the payload comes back as a JSON object.
    fn decode_claims(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: JwtAlgorithm,
    ) -> Result<Map<String, Value>, AuthError> {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![to_jwt_algorithm(alg)];
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| from_jwt_error(e.kind()))
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let user_id = match claims.get(&self.user_claim) {
            None => return Err(AuthError::BadClaims("missing_user")),
            Some(Value::String(id)) if is_plain_id(id) => id.clone(),
            Some(_) => return Err(AuthError::BadClaims("bad_user")),
        };
        let role = match claims.get(&self.role_claim) {
            None => return Err(AuthError::BadClaims("missing_role")),
            Some(Value::String(role)) => {
                parse_role(role).ok_or(AuthError::BadClaims("bad_role"))?
            }
            Some(_) => return Err(AuthError::BadClaims("bad_role")),
        };
        let permissions = parse_permissions(claims.get(&self.permissions_claim))
            .ok_or(AuthError::BadClaims("bad_permissions"))?;
        Ok(Principal {
            user_id,
            role,
            permissions,
        })
    }
}

/// The secret's length is judged by config validation (RFC 7518 §3.2); here it only has to
/// exist when an HS* algorithm is allowed.
fn hmac_key(cfg: &AuthConfig) -> Result<Option<DecodingKey>, AuthConfigError> {
    let Some(&hmac) = cfg.algorithms.iter().find(|a| a.is_hmac()) else {
        return Ok(None);
    };
    let secret = cfg
        .hs_secret
        .as_ref()
        .ok_or(AuthConfigError::MissingHsSecret(hmac))?;
    Ok(Some(DecodingKey::from_secret(secret.expose().as_bytes())))
}

fn public_keys(cfg: &AuthConfig) -> Result<Vec<PublicKey>, AuthConfigError> {
    let mut keys: Vec<PublicKey> = Vec::with_capacity(cfg.public_keys.len());
    for entry in &cfg.public_keys {
        if keys.iter().any(|k| k.kid == entry.kid) {
            return Err(AuthConfigError::DuplicateKid(entry.kid.clone()));
        }
        if entry.alg.is_hmac() {
            return Err(AuthConfigError::HmacPublicKey {
                kid: entry.kid.clone(),
                alg: entry.alg,
            });
        }
        if !cfg.algorithms.contains(&entry.alg) {
            return Err(AuthConfigError::KeyAlgorithmNotAllowed {
                kid: entry.kid.clone(),
                alg: entry.alg,
            });
        }
        keys.push(PublicKey {
            kid: entry.kid.clone(),
            alg: entry.alg,
            key: parse_public_pem(entry)?,
        });
    }
    Ok(keys)
}

/// The PEM parser is picked by the configured alg, so an EC key cannot sit under an RS kid.
fn parse_public_pem(entry: &PublicKeyConfig) -> Result<DecodingKey, AuthConfigError> {
    let file = entry.pem_file.display().to_string();
    // A private key in the gateway's config is a leak waiting to happen, even if it would
    // happen to parse: refuse it outright.
    if entry.pem.contains("PRIVATE KEY") {
        return Err(AuthConfigError::PrivateKey {
            kid: entry.kid.clone(),
            file,
        });
    }
    let pem = entry.pem.as_bytes();
    let parsed = match entry.alg {
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => DecodingKey::from_ec_pem(pem),
        JwtAlgorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    };
    parsed.map_err(|e| AuthConfigError::BadPem {
        kid: entry.kid.clone(),
        file,
        alg: entry.alg,
        reason: e.to_string(),
    })
}

/// `exp`/`nbf` are left to [`check_times`]; `iss`/`aud` are checked, and then required, only
/// when configured. An `aud` in the token is not checked when no audience is configured.
fn base_validation(cfg: &AuthConfig) -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation.validate_aud = false;
    if let Some(issuer) = &cfg.issuer {
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims.insert("iss".to_owned());
    }
    if let Some(audience) = &cfg.audience {
        validation.validate_aud = true;
        validation.set_audience(&[audience]);
        validation.required_spec_claims.insert("aud".to_owned());
    }
    validation
}

fn to_jwt_algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn from_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        // Key-shape failures at verify time mean this key cannot vouch for the token.
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Crypto(_) => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => AuthError::AlgorithmNotAllowed,
        ErrorKind::InvalidIssuer => AuthError::BadIssuer,
        ErrorKind::InvalidAudience => AuthError::BadAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::BadIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::BadAudience,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        _ => AuthError::Malformed,
    }
}

/// The parts of the JOSE header that decide which key verifies the token.
struct TokenHeader {
    alg: JwtAlgorithm,
    kid: Option<String>,
}

/// Reads the protected header of a compact JWS (RFC 7515 §7.1) without trusting it: it only
/// names the algorithm and key, both of which must then be allowed by config.
fn parse_header(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    // Five parts would be a JWE; anything but three is not a JWS we accept.
    let (Some(encoded), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| AuthError::Malformed)?;
    let fields: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| AuthError::BadHeader)?;
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; we understand none
    // (this also refuses `b64: false`, RFC 7797 §6).
    if fields.contains_key("crit") {
        return Err(AuthError::BadHeader);
    }
    let alg = match fields.get("alg") {
        Some(Value::String(name)) => {
            // Exact, case-sensitive JOSE names; `none` is not among them (RFC 8725 §3.1).
            name.parse::<JwtAlgorithm>()
                .map_err(|_| AuthError::AlgorithmNotAllowed)?
        }
        _ => return Err(AuthError::BadHeader),
    };
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::BadHeader),
    };
    Ok(TokenHeader { alg, kid })
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional.
fn numeric_date(value: Option<&Value>) -> Result<Option<f64>, ()> {
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()).map(Some).ok_or(()),
        Some(_) => Err(()),
    }
}

/// `exp` is required and refused on or after expiry (RFC 7519 §4.1.4); `nbf`, when present,
/// refused before it (§4.1.5); both with `leeway_s` of clock skew.
fn check_times(claims: &Map<String, Value>, now: u64, leeway_s: u64) -> Result<(), AuthError> {
    let (now, leeway) = (now as f64, leeway_s as f64);
    let exp = numeric_date(claims.get("exp"))
        .map_err(|()| AuthError::BadClaims("bad_exp"))?
        .ok_or(AuthError::BadClaims("missing_exp"))?;
    if now >= exp + leeway {
        return Err(AuthError::Expired);
    }
    let nbf = numeric_date(claims.get("nbf")).map_err(|()| AuthError::BadClaims("bad_nbf"))?;
    if nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err(AuthError::NotYetValid);
    }
    Ok(())
}

/// `[A-Za-z0-9_-]{1,128}`: the id goes into storage keys and queries, so nothing else passes.
fn is_plain_id(id: &str) -> bool {
    (1..=MAX_USER_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_role(role: &str) -> Option<Role> {
    match role {
        "USER" => Some(Role::User),
        "STAFF" => Some(Role::Staff),
        "ADMIN" => Some(Role::Admin),
        _ => None,
    }
}

/// Missing or `null` means no permissions (the least privilege); anything but an array of
/// strings is refused rather than guessed at.
fn parse_permissions(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Some(_) => None,
    }
}

/// `Bearer 1*SP token` (RFC 6750 §2.1); the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

/// First non-empty value of cookie `name` across all `Cookie` headers (RFC 6265 §4.2.1,
/// §5.4). Names are case-sensitive; a quoted value loses its quotes.
fn cookie_value<'a>(cookie_headers: &[&'a str], name: &str) -> Option<&'a str> {
    cookie_headers
        .iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.trim() == name)
        .map(|(_, value)| {
            let value = value.trim();
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
        .find(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::json;
    use std::path::PathBuf;
    use std::time::Duration;
    use AuthError::*;

    const NOW: u64 = 1_750_000_000;
    const HS_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    const RSA_PRIVATE: &str = include_str!("../tests/data/keys/rsa2048-private.pem");
    const RSA_PUBLIC: &str = include_str!("../tests/data/keys/rsa2048-public.pem");
    const P256_PRIVATE: &str = include_str!("../tests/data/keys/ec-p256-private.pem");
    const P256_PUBLIC: &str = include_str!("../tests/data/keys/ec-p256-public.pem");
    const P384_PRIVATE: &str = include_str!("../tests/data/keys/ec-p384-private.pem");
    const P384_PUBLIC: &str = include_str!("../tests/data/keys/ec-p384-public.pem");
    const ED_PRIVATE: &str = include_str!("../tests/data/keys/ed25519-private.pem");
    const ED_PUBLIC: &str = include_str!("../tests/data/keys/ed25519-public.pem");
    /// An Ed25519 key no test config knows: a forger's key.
    const STRANGER_PRIVATE: &str = include_str!("../tests/data/keys/ed25519-stranger-private.pem");

    /// (case name, input, expected outcome) for table tests.
    type Row<T> = (&'static str, T, Result<(), AuthError>);

    fn key(kid: &str, alg: JwtAlgorithm, pem: &str) -> PublicKeyConfig {
        PublicKeyConfig {
            kid: kid.to_owned(),
            alg,
            pem: pem.to_owned(),
            pem_file: PathBuf::from(format!("keys/{kid}.pem")),
        }
    }

    /// Every algorithm family, one key each (the RSA key serves RS256 and, under another kid,
    /// PS256).
    fn config() -> AuthConfig {
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

    fn authenticator() -> Authenticator {
        Authenticator::new(&config()).expect("test config is valid")
    }

    fn claims() -> Value {
        json!({
            "sub": "user_42",
            "role": "USER",
            "permissions": ["support_chat:read"],
            "exp": NOW + 600,
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    /// The good claims with one claim replaced.
    fn set(name: &str, value: Value) -> Value {
        with(claims(), name, value)
    }

    /// The good claims with one claim removed.
    fn unset(name: &str) -> Value {
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

    fn sign_with(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("test token signs")
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        sign_with(alg, kid, claims, &encoding_key(alg))
    }

    fn hs256(claims: &Value) -> String {
        sign(Algorithm::HS256, None, claims)
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    /// Signs each row's claims with HS256 and checks the outcome.
    fn check_claims(auth: &Authenticator, rows: Vec<Row<Value>>) {
        for (name, claims, want) in rows {
            let got = auth.verify_at(&hs256(&claims), NOW).map(drop);
            assert_eq!(got, want, "{name}");
        }
    }

    fn user_42() -> Principal {
        Principal {
            user_id: "user_42".to_owned(),
            role: Role::User,
            permissions: vec!["support_chat:read".to_owned()],
        }
    }

    #[test]
    fn every_configured_algorithm_verifies_a_real_signature() {
        let auth = authenticator();
        let cases = [
            (Algorithm::HS256, None),
            (Algorithm::HS384, None),
            (Algorithm::HS512, None),
            (Algorithm::RS256, Some("rsa-1")),
            (Algorithm::PS256, Some("rsa-pss")),
            (Algorithm::ES256, Some("ec-256")),
            (Algorithm::ES384, Some("ec-384")),
            (Algorithm::EdDSA, Some("ed-1")),
        ];
        for (alg, kid) in cases {
            let token = sign(alg, kid, &claims());
            assert_eq!(auth.verify_at(&token, NOW), Ok(user_42()), "{alg:?}");
        }
    }

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
    fn time_claims_follow_rfc_7519_with_leeway() {
        // Leeway is 60 s.
        #[rustfmt::skip]
        let rows: Vec<Row<Value>> = vec![
            ("exp in future",      claims(),                               Ok(())),
            ("exp within leeway",  set("exp", json!(NOW - 30)),            Ok(())),
            ("exp at leeway edge", set("exp", json!(NOW - 60)),            Err(Expired)),
            ("exp beyond leeway",  set("exp", json!(NOW - 120)),           Err(Expired)),
            ("exp fractional",     set("exp", json!(NOW as f64 + 0.5)),    Ok(())),
            ("exp negative",       set("exp", json!(-1)),                  Err(Expired)),
            ("exp missing",        unset("exp"),                           Err(BadClaims("missing_exp"))),
            ("exp string",         set("exp", json!("soon")),              Err(BadClaims("bad_exp"))),
            ("exp null",           set("exp", Value::Null),                Err(BadClaims("bad_exp"))),
            ("nbf past",           set("nbf", json!(NOW - 10)),            Ok(())),
            ("nbf within leeway",  set("nbf", json!(NOW + 30)),            Ok(())),
            ("nbf future",         set("nbf", json!(NOW + 120)),           Err(NotYetValid)),
            ("nbf string",         set("nbf", json!("now")),               Err(BadClaims("bad_nbf"))),
        ];
        check_claims(&authenticator(), rows);
    }

    #[test]
    fn issuer_and_audience_are_checked_only_when_configured() {
        let mut cfg = config();
        cfg.issuer = Some("https://app.example".to_owned());
        cfg.audience = Some("attachments".to_owned());
        let strict = Authenticator::new(&cfg).unwrap();

        let good = || {
            let claims = set("iss", json!("https://app.example"));
            with(claims, "aud", json!("attachments"))
        };
        let alter = |name: &str, value: Value| with(good(), name, value);
        #[rustfmt::skip]
        let rows: Vec<Row<Value>> = vec![
            ("both right",           good(),                                     Ok(())),
            ("aud in array",         alter("aud", json!(["x", "attachments"])),  Ok(())),
            ("wrong iss",            alter("iss", json!("https://evil.example")), Err(BadIssuer)),
            ("numeric iss",          alter("iss", json!(7)),                     Err(BadIssuer)),
            ("missing iss",          without(good(), "iss"),                     Err(BadIssuer)),
            ("wrong aud",            alter("aud", json!("billing")),             Err(BadAudience)),
            ("aud array without us", alter("aud", json!(["billing"])),           Err(BadAudience)),
            ("missing aud",          without(good(), "aud"),                     Err(BadAudience)),
        ];
        // Without iss/aud in config, the same tokens are not judged on issuer or audience.
        let open = authenticator();
        for (name, claims, _) in &rows {
            assert!(open.verify_at(&hs256(claims), NOW).is_ok(), "open: {name}");
        }
        check_claims(&strict, rows);
    }

    #[test]
    fn only_configured_algorithms_are_accepted() {
        let mut cfg = config();
        cfg.algorithms = vec![JwtAlgorithm::HS256];
        cfg.public_keys.clear();
        let auth = Authenticator::new(&cfg).unwrap();
        let hs512 = sign(Algorithm::HS512, None, &claims());
        assert_eq!(auth.verify_at(&hs512, NOW), Err(AlgorithmNotAllowed));
        let rs256 = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        assert_eq!(auth.verify_at(&rs256, NOW), Err(AlgorithmNotAllowed));
        assert_eq!(auth.verify_at(&hs256(&claims()), NOW), Ok(user_42()));
    }

    #[test]
    fn rsa_public_key_is_never_an_hmac_secret() {
        // The classic algorithm-confusion forgery (RFC 8725 §2.1): HS256 keyed with the
        // server's RSA public key PEM, which anyone may read.
        let forged_key = EncodingKey::from_secret(RSA_PUBLIC.as_bytes());
        let forged = sign_with(Algorithm::HS256, Some("rsa-1"), &claims(), &forged_key);

        let mut rs_only = config();
        rs_only.algorithms = vec![JwtAlgorithm::RS256];
        rs_only.hs_secret = None;
        rs_only.public_keys = vec![key("rsa-1", JwtAlgorithm::RS256, RSA_PUBLIC)];
        let auth = Authenticator::new(&rs_only).unwrap();
        assert_eq!(auth.verify_at(&forged, NOW), Err(AlgorithmNotAllowed));

        // Even with HS256 allowed too, HS256 uses the shared secret, never the kid's key.
        assert_eq!(authenticator().verify_at(&forged, NOW), Err(BadSignature));
    }

    #[test]
    fn kid_must_name_a_key_of_the_same_algorithm() {
        let token = |alg, kid| sign(alg, kid, &claims());
        use Algorithm::{ES256, ES384, HS256, RS256};
        #[rustfmt::skip]
        let rows: Vec<Row<String>> = vec![
            ("unknown kid",         token(RS256, Some("rsa-9")),    Err(UnknownKid)),
            // Same RSA key, but configured under this kid for PS256 only.
            ("kid of other alg",    token(RS256, Some("rsa-pss")),  Err(AlgorithmNotAllowed)),
            ("kid of other family", token(ES256, Some("rsa-1")),    Err(AlgorithmNotAllowed)),
            // One key per alg here, so a token without kid is unambiguous.
            ("no kid, one ES384",   token(ES384, None),             Ok(())),
            ("no kid, one RS256",   token(RS256, None),             Ok(())),
            ("HS ignores kid",      token(HS256, Some("anything")), Ok(())),
        ];
        let auth = authenticator();
        for (name, token, want) in rows {
            assert_eq!(auth.verify_at(&token, NOW).map(drop), want, "{name}");
        }

        let mut two = config();
        two.public_keys
            .push(key("rsa-2", JwtAlgorithm::RS256, RSA_PUBLIC));
        let auth = Authenticator::new(&two).unwrap();
        assert_eq!(auth.verify_at(&token(RS256, None), NOW), Err(UnknownKid));
        assert_eq!(
            auth.verify_at(&token(RS256, Some("rsa-2")), NOW),
            Ok(user_42())
        );
    }

    #[test]
    fn wrong_key_and_tampering_break_the_signature() {
        let auth = authenticator();
        let other_secret = EncodingKey::from_secret(&[7u8; 64]);
        let wrong = sign_with(Algorithm::HS256, None, &claims(), &other_secret);
        assert_eq!(auth.verify_at(&wrong, NOW), Err(BadSignature));

        let stranger = EncodingKey::from_ed_pem(STRANGER_PRIVATE.as_bytes()).unwrap();
        let foreign = sign_with(Algorithm::EdDSA, Some("ed-1"), &claims(), &stranger);
        assert_eq!(auth.verify_at(&foreign, NOW), Err(BadSignature));

        let token = sign(Algorithm::ES256, Some("ec-256"), &claims());
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let admin = b64(&set("role", json!("ADMIN")));
        let tampered = format!("{header}.{admin}.{signature}");
        assert_eq!(auth.verify_at(&tampered, NOW), Err(BadSignature));
        let unsigned = format!("{signed}.");
        assert_eq!(auth.verify_at(&unsigned, NOW), Err(BadSignature));
    }

    #[test]
    fn header_is_judged_before_any_key() {
        let body = b64(&claims());
        let header = |h: Value| format!("{}.{body}.sig", b64(&h));
        #[rustfmt::skip]
        let rows: Vec<Row<String>> = vec![
            ("alg none",        format!("{}.{body}.", b64(&json!({"alg": "none"}))), Err(AlgorithmNotAllowed)),
            ("alg None",        header(json!({"alg": "None", "typ": "JWT"})),       Err(AlgorithmNotAllowed)),
            ("alg lowercase",   header(json!({"alg": "hs256"})),                    Err(AlgorithmNotAllowed)),
            ("alg missing",     header(json!({"typ": "JWT"})),                      Err(BadHeader)),
            ("alg number",      header(json!({"alg": 256})),                        Err(BadHeader)),
            ("kid number",      header(json!({"alg": "RS256", "kid": 1})),          Err(BadHeader)),
            ("crit",            header(json!({"alg": "HS256", "crit": ["exp"]})),   Err(BadHeader)),
            ("header array",    header(json!(["HS256"])),                           Err(BadHeader)),
            ("header not json", format!("{}.{body}.sig", URL_SAFE_NO_PAD.encode("alg")), Err(BadHeader)),
            ("padded base64",   format!("e30=.{body}.sig"),                         Err(Malformed)),
            ("two parts",       format!("{}.{body}", b64(&json!({"alg": "HS256"}))),  Err(Malformed)),
            ("five parts (JWE)", "a.b.c.d.e".to_owned(),                            Err(Malformed)),
            ("empty",           String::new(),                                      Err(Malformed)),
            ("too long",        "a".repeat(MAX_TOKEN_BYTES + 1),                    Err(TooLong)),
        ];
        let auth = authenticator();
        for (name, token, want) in rows {
            assert_eq!(auth.verify_at(&token, NOW).map(drop), want, "{name}");
        }
    }

    #[test]
    fn payload_must_be_a_json_object() {
        let auth = authenticator();
        // Unsigned: the signature fails first, as nothing in a payload is read before that.
        let header = b64(&json!({"alg": "HS256"}));
        let token = format!("{header}.{}.sig", b64(&json!([1, 2])));
        assert_eq!(auth.verify_at(&token, NOW), Err(BadSignature));
        let signed_string = hs256(&json!("just a string"));
        assert_eq!(auth.verify_at(&signed_string, NOW), Err(Malformed));
    }

    #[test]
    fn user_claim_must_be_a_plain_id() {
        let bad = || Err(BadClaims("bad_user"));
        #[rustfmt::skip]
        let rows: Vec<Row<Value>> = vec![
            ("plain",     set("sub", json!("user_42")),                              Ok(())),
            ("uuid",      set("sub", json!("3f2b6c1e-9a4d-4e8b-8f00-12ab34cd56ef")), Ok(())),
            ("128 chars", set("sub", json!("a".repeat(128))),                        Ok(())),
            ("path",      set("sub", json!("../x")),                                 bad()),
            ("slash",     set("sub", json!("a/b")),                                  bad()),
            ("empty",     set("sub", json!("")),                                     bad()),
            ("129 chars", set("sub", json!("a".repeat(129))),                        bad()),
            ("number",    set("sub", json!(42)),                                     bad()),
            ("space",     set("sub", json!("a b")),                                  bad()),
            ("quote",     set("sub", json!("a'b")),                                  bad()),
            ("non-ascii", set("sub", json!("usér")),                                 bad()),
            ("null",      set("sub", Value::Null),                                   bad()),
            ("missing",   unset("sub"),                                   Err(BadClaims("missing_user"))),
        ];
        check_claims(&authenticator(), rows);
    }

    #[test]
    fn role_must_be_one_of_three() {
        let auth = authenticator();
        let role_of = |role: Value| {
            auth.verify_at(&hs256(&set("role", role)), NOW)
                .map(|p| p.role)
        };
        assert_eq!(role_of(json!("USER")), Ok(Role::User));
        assert_eq!(role_of(json!("STAFF")), Ok(Role::Staff));
        assert_eq!(role_of(json!("ADMIN")), Ok(Role::Admin));
        for bad in [
            json!("admin"),
            json!("ADMIN "),
            json!("SUPERUSER"),
            json!(""),
            json!(["ADMIN"]),
            json!(1),
        ] {
            assert_eq!(role_of(bad.clone()), Err(BadClaims("bad_role")), "{bad}");
        }
        let missing = hs256(&unset("role"));
        assert_eq!(
            auth.verify_at(&missing, NOW),
            Err(BadClaims("missing_role"))
        );
    }

    #[test]
    fn permissions_are_an_array_of_strings() {
        let auth = authenticator();
        let permissions_of =
            |claims: Value| auth.verify_at(&hs256(&claims), NOW).map(|p| p.permissions);
        let none: Vec<String> = Vec::new();
        assert_eq!(permissions_of(unset("permissions")), Ok(none.clone()));
        assert_eq!(
            permissions_of(set("permissions", Value::Null)),
            Ok(none.clone())
        );
        assert_eq!(permissions_of(set("permissions", json!([]))), Ok(none));
        assert_eq!(
            permissions_of(set("permissions", json!(["a", "b:c"]))),
            Ok(vec!["a".to_owned(), "b:c".to_owned()])
        );
        for bad in [
            json!("a"),
            json!({"a": true}),
            json!(["a", 1]),
            json!([["a"]]),
        ] {
            let got = permissions_of(set("permissions", bad.clone()));
            assert_eq!(got, Err(BadClaims("bad_permissions")), "{bad}");
        }
    }

    #[test]
    fn claim_names_come_from_config() {
        let mut cfg = config();
        cfg.user_claim = "uid".to_owned();
        cfg.role_claim = "app_role".to_owned();
        cfg.permissions_claim = "scopes".to_owned();
        let auth = Authenticator::new(&cfg).unwrap();
        let custom = json!({
            "uid": "u-7",
            "app_role": "STAFF",
            "scopes": ["support_chat:read"],
            // The default names are ignored, whatever they say.
            "sub": "../etc",
            "role": "nonsense",
            "exp": NOW + 60,
        });
        let staff = Principal {
            user_id: "u-7".to_owned(),
            role: Role::Staff,
            permissions: vec!["support_chat:read".to_owned()],
        };
        assert_eq!(auth.verify_at(&hs256(&custom), NOW), Ok(staff));
        let default_names = hs256(&claims());
        assert_eq!(
            auth.verify_at(&default_names, NOW),
            Err(BadClaims("missing_user"))
        );
    }

    #[test]
    fn token_comes_from_bearer_or_cookie_never_elsewhere() {
        type Case = (
            &'static str,
            Option<&'static str>,
            &'static [&'static str],
            Option<&'static str>,
        );
        #[rustfmt::skip]
        let cases: [Case; 20] = [
            ("bearer",                 Some("Bearer abc.def.ghi"), &[],                     Some("abc.def.ghi")),
            ("lowercase scheme",       Some("bearer abc"),         &[],                     Some("abc")),
            ("uppercase scheme",       Some("BEARER abc"),         &[],                     Some("abc")),
            ("several spaces",         Some("Bearer   abc"),       &[],                     Some("abc")),
            ("trailing space",         Some("Bearer abc "),        &[],                     Some("abc")),
            ("no space",               Some("Bearerabc"),          &[],                     None),
            ("empty credential",       Some("Bearer "),            &[],                     None),
            ("basic ignored",          Some("Basic dXNlcjpwYXNz"), &[],                     None),
            ("basic, then cookie",     Some("Basic dXNlcjpwYXNz"), &["session=c1"],         Some("c1")),
            ("cookie only",            None,                       &["session=c1"],         Some("c1")),
            ("cookie among several",   None, &["theme=dark; session=c2; lang=en"],          Some("c2")),
            ("cookie without spaces",  None, &["theme=dark;session=c2"],                    Some("c2")),
            ("several Cookie headers", None, &["theme=dark", "lang=en; session=c3"],        Some("c3")),
            ("quoted cookie",          None, &["session=\"c4\""],                           Some("c4")),
            ("first non-empty wins",   None, &["session=; session=c5"],                     Some("c5")),
            ("name is case-sensitive", None, &["Session=c6"],                               None),
            ("prefix is not the name", None, &["my_session=c7; sessionx=c8"],               None),
            ("authorization wins",     Some("Bearer from-header"), &["session=from-cookie"], Some("from-header")),
            ("nothing",                None,                       &[],                     None),
            ("garbage cookie header",  None,                       &[";;=;session"],        None),
        ];
        let auth = authenticator();
        for (name, authorization, cookies, want) in cases {
            assert_eq!(
                auth.token_from_headers(authorization, cookies),
                want,
                "{name}"
            );
        }
        // There is no query-string source: the API takes no token parameter (RFC 6750 §5.3
        // advises against it) and only headers reach this function, so a request such as
        // `GET /api/...?access_token=<jwt>` authenticates as nobody.
        assert_eq!(auth.authenticate(None, &[]), Err(Missing));
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
    fn config_that_cannot_work_is_refused() {
        use JwtAlgorithm::*;
        type Edit = fn(&mut AuthConfig);
        #[rustfmt::skip]
        let cases: [(&str, Edit, &str); 10] = [
            ("no algorithms",       |c| c.algorithms.clear(),                               "auth.algorithms is empty"),
            ("hs without secret",   |c| c.hs_secret = None,                                 "auth.hs_secret is not set"),
            ("duplicate kid",       |c| c.public_keys.push(key("ed-1", EdDSA, ED_PUBLIC)),  "appears more than once"),
            ("hmac public key",     |c| c.public_keys.push(key("h", HS256, RSA_PUBLIC)),    "HMAC uses auth.hs_secret"),
            ("key alg not allowed", |c| c.public_keys.push(key("r5", RS512, RSA_PUBLIC)),   "not in auth.algorithms"),
            ("no key for alg",      |c| c.public_keys.retain(|k| k.alg != ES384),           "no auth.public_keys entry"),
            ("private key",         |c| c.public_keys[0].pem = RSA_PRIVATE.to_owned(),      "is a private key"),
            ("rsa pem as ES256",    |c| c.public_keys[2].pem = RSA_PUBLIC.to_owned(),       "not a ES256 public key"),
            ("ec pem as EdDSA",     |c| c.public_keys[4].pem = P256_PUBLIC.to_owned(),      "not a EdDSA public key"),
            ("not a pem",           |c| c.public_keys[0].pem = "hello".to_owned(),          "kid \"rsa-1\""),
        ];
        for (name, edit, want) in cases {
            let mut cfg = config();
            edit(&mut cfg);
            let err = Authenticator::new(&cfg).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
        // Debug shows the shape of the key set, never key material or the secret.
        let debug = format!("{:?}", authenticator());
        assert!(
            debug.contains("rsa-1") && !debug.contains(HS_SECRET),
            "{debug}"
        );
    }

    fn token_part() -> impl Strategy<Value = String> {
        let near_miss = json!({"exp": 1e300, "nbf": -1e300, "sub": "a", "role": "USER"});
        prop_oneof![
            "[A-Za-z0-9_-]{0,40}",
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            Just(b64(&json!({"alg": "HS256"}))),
            Just(b64(&json!({"alg": "RS256", "kid": "rsa-1"}))),
            Just(b64(&json!({"alg": "ES256"}))),
            Just(b64(&json!({"alg": "EdDSA", "kid": "ed-1"}))),
            Just(b64(&claims())),
            Just(b64(&near_miss)),
        ]
    }

    proptest! {
        #[test]
        fn verify_never_panics_on_arbitrary_text(token in ".{0,300}") {
            let _ = authenticator().verify_at(&token, NOW);
        }

        #[test]
        fn verify_never_panics_on_token_shaped_input(
            parts in proptest::collection::vec(token_part(), 1..5),
            now in any::<u64>(),
        ) {
            let result = authenticator().verify_at(&parts.join("."), now);
            // Nothing here carries a valid signature, so nothing may pass.
            prop_assert!(result.is_err());
        }

        #[test]
        fn header_extraction_never_panics(
            authorization in proptest::option::of(".{0,100}"),
            cookies in proptest::collection::vec(".{0,100}", 0..4),
        ) {
            let cookies: Vec<&str> = cookies.iter().map(String::as_str).collect();
            let _ = authenticator().token_from_headers(authorization.as_deref(), &cookies);
        }

        #[test]
        fn bearer_token_round_trips(
            scheme in "(?i)bearer",
            spaces in " {1,4}",
            token in "[A-Za-z0-9._~+/-]{1,200}",
        ) {
            let authorization = format!("{scheme}{spaces}{token}");
            let got = authenticator().token_from_headers(Some(&authorization), &["session=x"]);
            prop_assert_eq!(got, Some(token.as_str()));
        }
    }
}
