//! The verification order: size, then the JOSE header (judged before any key is chosen), then
//! the signature and `iss`/`aud` by `jsonwebtoken`, then the claims. Picking the key is `keys`'s
//! job, reading the claims `claims`'s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::claims::{check_times, Window};
use super::{AuthError, Authenticator, Principal, MAX_TOKEN_BYTES};
use crate::config::{AuthConfig, JwtAlgorithm};

impl Authenticator {
    /// Verify at `now` (seconds since the Unix epoch). Order matters: the header is judged
    /// before any key is chosen, the signature before any claim is believed.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        self.verify_window(token, now)
            .map(|(principal, _)| principal)
    }

    /// `verify_at`, with the times the token may be accepted in (for the token cache).
    pub(super) fn verify_window(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(Principal, Window), AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLong);
        }
        let header = parse_header(token)?;
        // RFC 8725 §3.1: the algorithm is ours to choose, not the token's.
        if !self.algorithms.contains(&header.alg) {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let key = self.keys.for_token(header.alg, header.kid.as_deref())?;
        let claims = self.decode_claims(token, key, header.alg)?;
        let window = check_times(&claims, now, self.leeway_s)?;
        Ok((self.claims.principal(&claims)?, window))
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
}

/// `exp`/`nbf` are left to [`check_times`]; `iss`/`aud` are checked, and then required, only
/// when configured. An `aud` in the token is not checked when no audience is configured.
pub(super) fn base_validation(cfg: &AuthConfig) -> Validation {
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

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{AuthError::*, Authenticator, MAX_TOKEN_BYTES};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn issuer_and_audience_are_checked_only_when_configured() {
        let mut cfg = config();
        cfg.issuer = Some("https://app.example".to_owned());
        cfg.audience = Some("attachments".to_owned());
        let strict = Authenticator::new(&cfg);

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
        let auth = Authenticator::new(&cfg);
        let hs512 = sign(Algorithm::HS512, None, &claims());
        assert_eq!(auth.verify_at(&hs512, NOW), Err(AlgorithmNotAllowed));
        let rs256 = sign(Algorithm::RS256, Some("rsa-1"), &claims());
        assert_eq!(auth.verify_at(&rs256, NOW), Err(AlgorithmNotAllowed));
        assert_eq!(auth.verify_at(&hs256(&claims()), NOW), Ok(user_42()));
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

    /// A JSON value of any shape, a few levels deep, for header fields and claims.
    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            (NOW - 100..NOW + 100).prop_map(serde_json::Value::from),
            "\\PC{0,12}|USER|STAFF|ADMIN|[A-Za-z0-9_-]{1,130}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4).prop_map(|m| json!(m)),
            ]
        })
    }

    /// A header or payload: arbitrary bytes, or an object whose named fields have any value.
    fn part(
        names: &'static [&'static str],
        fixed: serde_json::Value,
    ) -> impl Strategy<Value = Vec<u8>> {
        let object = proptest::collection::vec((proptest::sample::select(names), any_json()), 0..6)
            .prop_map(move |fields| {
                let mut object = fixed.clone();
                for (name, value) in fields {
                    object[name] = value;
                }
                serde_json::to_vec(&object).unwrap()
            });
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..80), object]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Correctly signed (HS256) tokens with arbitrary header and claims bytes reach the
        /// header and claims parsers: no panic, and whatever passes is a plain principal.
        #[test]
        fn signed_arbitrary_headers_and_claims_yield_only_plain_principals(
            header in part(&["alg", "typ", "kid", "crit", "cty", "jku"], json!({"alg": "HS256"})),
            payload in part(&["sub", "role", "permissions", "exp", "nbf", "iss", "aud"], claims()),
        ) {
            let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&payload));
            let key = jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes());
            let signature = jsonwebtoken::crypto::sign(
                signing_input.as_bytes(),
                &key,
                jsonwebtoken::Algorithm::HS256,
            )
            .unwrap();
            let token = format!("{signing_input}.{signature}");
            if let Ok(principal) = authenticator().verify_at(&token, NOW) {
                let id = &principal.user_id;
                prop_assert!(!id.is_empty() && id.len() <= 128, "{id:?}");
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            }
        }

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
    }
}
