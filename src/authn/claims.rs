//! Claims of a token whose signature has verified -> `Principal`: `exp`/`nbf` against the
//! clock, a plain user id, one of three roles, a list of permissions. Trusts nothing unsigned.

use serde_json::{Map, Value};

use super::{AuthError, Principal, Role};
use crate::config::AuthConfig;

/// Longest user id accepted from the user claim.
const MAX_USER_ID_LEN: usize = 128;

/// Where the user id, role and permissions sit in the payload (`auth.*_claim`).
pub(super) struct ClaimNames {
    user: String,
    role: String,
    permissions: String,
}

impl ClaimNames {
    pub(super) fn new(cfg: &AuthConfig) -> ClaimNames {
        ClaimNames {
            user: cfg.user_claim.clone(),
            role: cfg.role_claim.clone(),
            permissions: cfg.permissions_claim.clone(),
        }
    }

    pub(super) fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let user_id = match claims.get(&self.user) {
            None => return Err(AuthError::BadClaims("missing_user")),
            Some(Value::String(id)) if is_plain_id(id) => id.clone(),
            Some(_) => return Err(AuthError::BadClaims("bad_user")),
        };
        let role = match claims.get(&self.role) {
            None => return Err(AuthError::BadClaims("missing_role")),
            Some(Value::String(role)) => {
                parse_role(role).ok_or(AuthError::BadClaims("bad_role"))?
            }
            Some(_) => return Err(AuthError::BadClaims("bad_role")),
        };
        let permissions = parse_permissions(claims.get(&self.permissions))
            .ok_or(AuthError::BadClaims("bad_permissions"))?;
        Ok(Principal {
            user_id,
            role,
            permissions,
        })
    }
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
/// When a token may be accepted (seconds since the Unix epoch, leeway included): from `from`
/// (its `nbf`, if any) until before `until` (its `exp`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from: Option<f64>,
    pub until: f64,
}

impl Window {
    pub fn contains(&self, now: u64) -> bool {
        let now = now as f64;
        now < self.until && self.from.is_none_or(|from| now >= from)
    }
}

pub(super) fn check_times(
    claims: &Map<String, Value>,
    now: u64,
    leeway_s: u64,
) -> Result<Window, AuthError> {
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
    Ok(Window {
        from: nbf.map(|nbf| nbf - leeway),
        until: exp + leeway,
    })
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

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{AuthError::*, Authenticator, Principal, Role};
    use serde_json::{json, Value};

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
        let auth = Authenticator::new(&cfg);
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
}
