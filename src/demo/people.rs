//! Who the demo lets you be: the dialog's owner, a stranger, staff with and without the
//! permission, an admin. Each gets a token signed with the demo's public secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;

use crate::config::Config;

/// Owner of both seeded dialogs.
pub const OWNER: &str = "alice";

pub struct Person {
    pub id: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    /// Whether the token carries `auth.staff_permission`.
    pub staff_permission: bool,
    /// What the page says this person should see.
    pub sees: &'static str,
}

pub const PEOPLE: [Person; 5] = [
    Person {
        id: OWNER,
        name: "Alice (owner of the dialogs)",
        role: "USER",
        staff_permission: false,
        sees: "every file of her dialogs, and her own staged uploads",
    },
    Person {
        id: "bob",
        name: "Bob (another user)",
        role: "USER",
        staff_permission: false,
        sees: "nothing: every file answers 404, like a missing one",
    },
    Person {
        id: "carol",
        name: "Carol (staff, with the permission)",
        role: "STAFF",
        staff_permission: true,
        sees: "every sent file; not Alice's staged uploads",
    },
    Person {
        id: "erin",
        name: "Erin (staff, without the permission)",
        role: "STAFF",
        staff_permission: false,
        sees: "nothing",
    },
    Person {
        id: "dave",
        name: "Dave (admin)",
        role: "ADMIN",
        staff_permission: false,
        sees: "everything, staged uploads included",
    },
];

pub fn find(id: &str) -> Option<&'static Person> {
    PEOPLE.iter().find(|p| p.id == id)
}

/// A token for `person`, valid for a day.
pub fn token_for(cfg: &Config, person: &Person) -> anyhow::Result<String> {
    let permissions: Vec<&str> = if person.staff_permission {
        vec![cfg.auth.staff_permission.as_str()]
    } else {
        Vec::new()
    };
    token(cfg, person.id, person.role, &permissions)
}

pub fn token(cfg: &Config, sub: &str, role: &str, permissions: &[&str]) -> anyhow::Result<String> {
    let secret = cfg
        .auth
        .hs_secret
        .as_ref()
        .ok_or_else(|| anyhow!("the demo needs auth.hs_secret to sign its tokens"))?;
    let exp = SystemTime::now()
        .checked_add(Duration::from_secs(24 * 3600))
        .unwrap_or(SystemTime::now())
        .duration_since(UNIX_EPOCH)?
        .as_secs();
    let claims = serde_json::json!({
        cfg.auth.user_claim.clone(): sub,
        cfg.auth.role_claim.clone(): role,
        cfg.auth.permissions_claim.clone(): permissions,
        "exp": exp,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes()),
    )?)
}
