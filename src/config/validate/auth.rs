//! `[auth]`: pinned algorithms, the HMAC secret and the PEM public keys, read and parsed at
//! load so that a wrong key fails here rather than on the first request. The one place `[auth]`
//! is judged: `authn` builds its verifier from the result without checking again.

use std::path::PathBuf;

use jsonwebtoken::DecodingKey;

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
        match PublicKeyConfig::parse(kid, alg, pem, c.path(&pem_file)) {
            Ok(key) => keys.push(key),
            Err(why) => c.problem(at("pem_file"), format!("{pem_file:?} {why}")),
        }
    }
    keys
}

impl PublicKeyConfig {
    /// Parse `pem` the way verification will use it, so a wrong key type fails at load, not
    /// on the first request. The error completes "`<pem_file>` ...".
    pub fn parse(
        kid: String,
        alg: JwtAlgorithm,
        pem: String,
        pem_file: PathBuf,
    ) -> Result<PublicKeyConfig, &'static str> {
        let (parsed, what) = match alg {
            JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => (
                DecodingKey::from_ec_pem(pem.as_bytes()),
                "is not an EC public key (PEM)",
            ),
            JwtAlgorithm::EdDSA => (
                DecodingKey::from_ed_pem(pem.as_bytes()),
                "is not an Ed25519 public key (PEM)",
            ),
            _ => (
                DecodingKey::from_rsa_pem(pem.as_bytes()),
                "is not an RSA public key (PEM)",
            ),
        };
        let key = parsed.map_err(|_| what)?;
        // The RSA parser takes a private key too. A private key in the gateway's config is a
        // leak waiting to happen, even though it parses: refuse it outright.
        if pem.contains("PRIVATE KEY") {
            return Err("is a private key; configure the public key");
        }
        Ok(PublicKeyConfig {
            kid,
            alg,
            pem,
            pem_file,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// The files the keys below name, under the names they are given there.
    const PEMS: [(&str, &str); 6] = [
        (
            "rsa.pem",
            include_str!("../../../tests/data/keys/rsa2048-public.pem"),
        ),
        (
            "rsa-private.pem",
            include_str!("../../../tests/data/keys/rsa2048-private.pem"),
        ),
        (
            "p256.pem",
            include_str!("../../../tests/data/keys/ec-p256-public.pem"),
        ),
        (
            "p384.pem",
            include_str!("../../../tests/data/keys/ec-p384-public.pem"),
        ),
        (
            "ed.pem",
            include_str!("../../../tests/data/keys/ed25519-public.pem"),
        ),
        ("hello.pem", "hello"),
    ];

    fn key(kid: &str, alg: &str, pem_file: &str) -> RawPublicKey {
        RawPublicKey {
            kid: Some(kid.to_owned()),
            alg: Some(alg.to_owned()),
            pem_file: Some(pem_file.into()),
        }
    }

    /// Every algorithm family, one key each (the RSA key serves RS256 and, under another kid,
    /// PS256): the `authn` tests' config, as the file would give it.
    fn raw() -> RawAuth {
        let algorithms = [
            "HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA",
        ];
        RawAuth {
            algorithms: Some(algorithms.map(str::to_owned).to_vec()),
            hs_secret: Some(Secret::new("0123456789abcdef0123456789abcdef")),
            public_keys: Some(vec![
                key("rsa-1", "RS256", "rsa.pem"),
                key("rsa-pss", "PS256", "rsa.pem"),
                key("ec-256", "ES256", "p256.pem"),
                key("ec-384", "ES384", "p384.pem"),
                key("ed-1", "EdDSA", "ed.pem"),
            ]),
            ..RawAuth::default()
        }
    }

    fn keys(raw: &mut RawAuth) -> &mut Vec<RawPublicKey> {
        raw.public_keys.as_mut().expect("raw() has keys")
    }

    /// `[auth]` is judged here alone: whatever passes, `authn` builds on without a check.
    #[test]
    fn config_that_cannot_work_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, pem) in PEMS {
            std::fs::write(dir.path().join(name), pem).unwrap();
        }
        let env = |_: &str| None;
        let problems = |raw: RawAuth| {
            let mut c = Checker::new(dir.path(), &env);
            section(raw, &mut c);
            let problems = c.into_problems();
            problems.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(problems(raw()), Vec::<String>::new());

        type Edit = fn(&mut RawAuth);
        #[rustfmt::skip]
        let cases: [(&str, Edit, &str); 10] = [
            ("no algorithms",       |r| r.algorithms = Some(Vec::new()),                      "auth.algorithms: must list at least one algorithm"),
            ("hs without secret",   |r| r.hs_secret = None,                                   "auth.hs_secret: HS256 is in auth.algorithms"),
            ("duplicate kid",       |r| keys(r).push(key("ed-1", "EdDSA", "ed.pem")),         "[5].kid: \"ed-1\" is used by an earlier key"),
            ("hmac public key",     |r| keys(r).push(key("h", "HS256", "rsa.pem")),           "[5].alg: HS256 uses auth.hs_secret, not a public key"),
            ("key alg not allowed", |r| keys(r).push(key("r5", "RS512", "rsa.pem")),          "[5].alg: RS512 is not listed in auth.algorithms"),
            ("no key for alg",      |r| keys(r).retain(|k| k.kid.as_deref() != Some("ec-384")), "ES384 is in auth.algorithms but no public key"),
            ("private key",         |r| keys(r)[0].pem_file = Some("rsa-private.pem".into()), "[0].pem_file: \"rsa-private.pem\" is a private key"),
            ("rsa pem as ES256",    |r| keys(r)[2].pem_file = Some("rsa.pem".into()),         "[2].pem_file: \"rsa.pem\" is not an EC public key"),
            ("ec pem as EdDSA",     |r| keys(r)[4].pem_file = Some("p256.pem".into()),        "[4].pem_file: \"p256.pem\" is not an Ed25519 public key"),
            ("not a pem",           |r| keys(r)[0].pem_file = Some("hello.pem".into()),       "auth.public_keys[0].pem_file: \"hello.pem\" is not an RSA"),
        ];
        for (name, edit, want) in cases {
            let mut raw = raw();
            edit(&mut raw);
            let problems = problems(raw);
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{name}: {problems:#?}"
            );
        }
    }
}
