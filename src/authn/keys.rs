//! Which key verifies a token: the HMAC secret for HS*, else the public key its `kid` names,
//! bound to one algorithm. The secret and the PEM keys are parsed here, once, at start.

use jsonwebtoken::DecodingKey;

use super::{AuthConfigError, AuthError};
use crate::config::{AuthConfig, JwtAlgorithm, PublicKeyConfig};

/// A public key parsed once at start, bound to the one algorithm it may verify.
struct PublicKey {
    kid: String,
    alg: JwtAlgorithm,
    key: DecodingKey,
}

/// The secret and the public keys, as config allowed them.
pub(super) struct Keys {
    /// Present only when an HS* algorithm is allowed.
    hmac: Option<DecodingKey>,
    public: Vec<PublicKey>,
}

impl Keys {
    /// Parses the secret and every PEM key once; each key must fit the allowed algorithms, and
    /// every allowed asymmetric algorithm must have a key.
    pub(super) fn new(cfg: &AuthConfig) -> Result<Keys, AuthConfigError> {
        let hmac = hmac_key(cfg)?;
        let public = public_keys(cfg)?;
        for &alg in &cfg.algorithms {
            if !alg.is_hmac() && !public.iter().any(|k| k.alg == alg) {
                return Err(AuthConfigError::NoKeyForAlgorithm(alg));
            }
        }
        Ok(Keys { hmac, public })
    }

    pub(super) fn has_hmac(&self) -> bool {
        self.hmac.is_some()
    }

    /// `(kid, alg)` of every public key, for `Debug`: no key material.
    pub(super) fn kids(&self) -> Vec<(&str, JwtAlgorithm)> {
        self.public
            .iter()
            .map(|k| (k.kid.as_str(), k.alg))
            .collect()
    }

    /// HS* use the shared secret. Asymmetric algorithms use the key named by `kid`, which must
    /// be configured for exactly that algorithm, so a public key can never be used as an HMAC
    /// secret or for another scheme (RFC 8725 §2.1, §3.1). A token without `kid` is accepted
    /// only when one key alone is configured for its algorithm, so there is nothing to choose.
    pub(super) fn for_token(
        &self,
        alg: JwtAlgorithm,
        kid: Option<&str>,
    ) -> Result<&DecodingKey, AuthError> {
        if alg.is_hmac() {
            return self.hmac.as_ref().ok_or(AuthError::AlgorithmNotAllowed);
        }
        match kid {
            Some(kid) => {
                let found = self
                    .public
                    .iter()
                    .find(|k| k.kid == kid)
                    .ok_or(AuthError::UnknownKid)?;
                if found.alg != alg {
                    return Err(AuthError::AlgorithmNotAllowed);
                }
                Ok(&found.key)
            }
            None => {
                let mut candidates = self.public.iter().filter(|k| k.alg == alg);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(&only.key),
                    _ => Err(AuthError::UnknownKid),
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{AuthError::*, Authenticator};
    use crate::config::JwtAlgorithm;
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;

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
}
