//! `[auth]`: pinned algorithms, the HMAC secret and the PEM public keys, read and parsed at
//! load so that a wrong key fails here rather than on the first request.

use super::super::checker::Checker;
use super::super::raw::{RawAuth, RawPublicKey};
use super::super::{AuthConfig, JwtAlgorithm, PublicKeyConfig};

pub(super) fn section(raw: RawAuth, c: &mut Checker) -> AuthConfig {
    let mut algorithms: Vec<JwtAlgorithm> = Vec::new();
    let names = raw.algorithms.unwrap_or_else(|| vec!["HS256".to_string()]);
    if names.is_empty() {
        c.problem("auth.algorithms", "must list at least one algorithm");
    }
    for (i, name) in names.iter().enumerate() {
        match name.parse::<JwtAlgorithm>() {
            Ok(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
            Ok(_) => {}
            Err(e) => c.problem(format!("auth.algorithms[{i}]"), e),
        }
    }

    let hs_secret = c.secret(
        "auth.hs_secret",
        raw.hs_secret,
        raw.hs_secret_env,
        raw.hs_secret_file,
    );
    if let Some(hmac) = algorithms.iter().find(|a| a.is_hmac()) {
        match &hs_secret {
            // RFC 7518 section 3.2: the key must be at least as long as the hash output
            // (32 bytes for HS256); below 16 bytes it is refused outright.
            Some(secret) if secret.expose().len() < 16 => c.problem(
                "auth.hs_secret",
                format!(
                    "is only {} bytes; use at least 32 random bytes",
                    secret.expose().len()
                ),
            ),
            Some(_) => {}
            None if c.reported("auth.hs_secret") => {}
            None => c.problem(
                "auth.hs_secret",
                format!(
                    "{hmac} is in auth.algorithms: set hs_secret, hs_secret_env or hs_secret_file"
                ),
            ),
        }
    }

    let public_keys = public_keys(raw.public_keys.unwrap_or_default(), &algorithms, c);
    for alg in algorithms.iter().filter(|a| !a.is_hmac()) {
        if !public_keys.iter().any(|k| k.alg == *alg) {
            c.problem(
                "auth.public_keys",
                format!("{alg} is in auth.algorithms but no public key has alg = \"{alg}\""),
            );
        }
    }

    let cookie = c.non_empty("auth.cookie", raw.cookie, "session");
    // RFC 6265 section 4.1.1: a cookie name is an RFC 7230 token.
    if !cookie
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        c.problem(
            "auth.cookie",
            format!("{cookie:?} is not a valid cookie name"),
        );
    }
    AuthConfig {
        algorithms,
        hs_secret,
        public_keys,
        issuer: c.optional_non_empty("auth.issuer", raw.issuer),
        audience: c.optional_non_empty("auth.audience", raw.audience),
        leeway: c.seconds("auth.leeway_s", raw.leeway_s, 30, 0),
        cookie,
        user_claim: c.non_empty("auth.user_claim", raw.user_claim, "sub"),
        role_claim: c.non_empty("auth.role_claim", raw.role_claim, "role"),
        permissions_claim: c.non_empty(
            "auth.permissions_claim",
            raw.permissions_claim,
            "permissions",
        ),
        staff_permission: c.non_empty(
            "auth.staff_permission",
            raw.staff_permission,
            "support_chat:read",
        ),
    }
}

fn public_keys(
    raw: Vec<RawPublicKey>,
    algorithms: &[JwtAlgorithm],
    c: &mut Checker,
) -> Vec<PublicKeyConfig> {
    let mut keys: Vec<PublicKeyConfig> = Vec::new();
    let mut kids: Vec<String> = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("auth.public_keys[{i}].{field}");
        let kid = match entry.kid {
            Some(kid) if kid.trim().is_empty() => {
                c.problem(at("kid"), "must not be empty");
                None
            }
            Some(kid) if kids.contains(&kid) => {
                c.problem(at("kid"), format!("{kid:?} is used by an earlier key"));
                None
            }
            Some(kid) => {
                kids.push(kid.clone());
                Some(kid)
            }
            None => {
                c.problem(at("kid"), "is required");
                None
            }
        };
        let alg = match entry.alg.as_deref().map(str::parse::<JwtAlgorithm>) {
            Some(Ok(alg)) if alg.is_hmac() => {
                c.problem(
                    at("alg"),
                    format!("{alg} uses auth.hs_secret, not a public key"),
                );
                None
            }
            Some(Ok(alg)) if !algorithms.contains(&alg) => {
                c.problem(at("alg"), format!("{alg} is not listed in auth.algorithms"));
                None
            }
            Some(Ok(alg)) => Some(alg),
            Some(Err(e)) => {
                c.problem(at("alg"), e);
                None
            }
            None => {
                c.problem(at("alg"), "is required");
                None
            }
        };
        let pem = match &entry.pem_file {
            Some(path) => c.read_file(&at("pem_file"), path),
            None => {
                c.problem(at("pem_file"), "is required");
                None
            }
        };
        let (Some(kid), Some(alg), Some(pem), Some(pem_file)) = (kid, alg, pem, entry.pem_file)
        else {
            continue;
        };
        if let Err(what) = check_pem(alg, &pem) {
            c.problem(at("pem_file"), format!("{pem_file:?} is not {what}"));
            continue;
        }
        keys.push(PublicKeyConfig {
            kid,
            alg,
            pem,
            pem_file: c.path(&pem_file),
        });
    }
    keys
}

/// Parse the PEM the way verification will, so a wrong key type fails at load, not on the
/// first request.
fn check_pem(alg: JwtAlgorithm, pem: &str) -> Result<(), &'static str> {
    use jsonwebtoken::DecodingKey;
    let (parsed, what) = match alg {
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => (
            DecodingKey::from_ec_pem(pem.as_bytes()),
            "an EC public key (PEM)",
        ),
        JwtAlgorithm::EdDSA => (
            DecodingKey::from_ed_pem(pem.as_bytes()),
            "an Ed25519 public key (PEM)",
        ),
        _ => (
            DecodingKey::from_rsa_pem(pem.as_bytes()),
            "an RSA public key (PEM)",
        ),
    };
    parsed.map(drop).map_err(|_| what)
}
