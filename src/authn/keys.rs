//! Which key verifies a token: the HMAC secret for HS*, else the public key its `kid` names,
//! bound to one algorithm. Keys arrive parsed from `config`; nothing here reads a PEM.

use jsonwebtoken::DecodingKey;

use super::AuthError;
use crate::config::{AuthConfig, JwtAlgorithm};

/// A public key, bound to the one algorithm it may verify.
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
    /// The secret's length, and that it is set when HS* is allowed, are config's to judge
    /// (RFC 7518 §3.2).
    pub(super) fn new(cfg: &AuthConfig) -> Keys {
        let hmac_allowed = cfg.algorithms.iter().any(|a| a.is_hmac());
        let hmac = cfg
            .hs_secret
            .as_ref()
            .filter(|_| hmac_allowed)
            .map(|secret| DecodingKey::from_secret(secret.expose().as_bytes()));
        let public = cfg
            .public_keys
            .iter()
            .map(|k| PublicKey {
                kid: k.kid.clone(),
                alg: k.alg,
                key: k.key.clone(),
            })
            .collect();
        Keys { hmac, public }
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
        let auth = Authenticator::new(&rs_only);
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
        let auth = Authenticator::new(&two);
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
