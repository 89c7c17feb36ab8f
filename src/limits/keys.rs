//! The limiter's Redis key names. On a Redis Cluster a script may only touch keys of one hash
//! slot, and the slot of a key with a hash tag is the slot of the text inside its first `{...}`.
//! So every key of one user carries the same tag, every key of one address another, and the
//! tag holds a digest, never the user's own text: a user id cannot pick a slot (or pile many
//! users onto one), nor break out of the braces, and keys stay short whatever the id.
//!
//! ```text
//! agw:rl:{u:<digest>}    the user's GCRA state        agw:rl:{ip:<digest>}  the address's
//! agw:cc:{u:<digest>}    the user's download leases   agw:up:{u:<digest>}   upload leases
//! ```

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The hash tag of a user: 128 bits of SHA-256 of the id, in hex.
fn user_tag(user: &str) -> String {
    format!("{{u:{}}}", digest(user.as_bytes()))
}

/// The limit key of an address (`super::ip_key`), `-` when there is none (a Unix socket
/// peer: one key shared by all such requests).
pub fn ip_id(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "-".to_string(), super::ip_key)
}

fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The user's rate-limit state.
pub fn user_rate(user: &str) -> String {
    format!("agw:rl:{}", user_tag(user))
}

/// The address's rate-limit state.
pub fn ip_rate(ip: Option<IpAddr>) -> String {
    ip_rate_of(&ip_id(ip))
}

/// The same, from the address's limit key (`ip_id`).
pub fn ip_rate_of(id: &str) -> String {
    format!("agw:rl:{{ip:{}}}", digest(id.as_bytes()))
}

/// The user's download leases (`limits.max_concurrent_per_user`).
pub fn user_downloads(user: &str) -> String {
    format!("agw:cc:{}", user_tag(user))
}

/// The user's upload leases (`upload.max_concurrent_per_user`).
pub fn user_uploads(user: &str) -> String {
    format!("agw:up:{}", user_tag(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster would use: the text inside the first `{...}`.
    fn tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn a_users_keys_share_one_tag_and_hide_the_id() {
        let user = "evil}{user-with-braces";
        let tags = [user_rate(user), user_downloads(user), user_uploads(user)];
        assert!(tags.iter().all(|k| tag(k) == tag(&tags[0])), "{tags:?}");
        assert!(tags.iter().all(|k| !k.contains("evil")), "{tags:?}");
        assert_eq!(tag(&tags[0]).len(), "u:".len() + 32);
        assert_ne!(tag(&user_rate("alice")), tag(&user_rate("bob")));
    }

    #[test]
    fn addresses_are_tagged_by_their_limit_key() {
        let a = ip_rate(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = ip_rate(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(a, b, "one /64, one key");
        assert_ne!(a, ip_rate(Some("192.0.2.1".parse().unwrap())));
        assert_ne!(a, ip_rate(None));
        assert!(tag(&a).starts_with("ip:"));
        // A user and an address never share a tag by accident of their text.
        assert_ne!(
            tag(&user_rate("192.0.2.1")),
            tag(&ip_rate(Some("192.0.2.1".parse().unwrap())))
        );
    }
}
