//! Client IP (SPEC §8): the socket peer, unless the peer is a trusted proxy; then the
//! right-most address of `X-Forwarded-For` that is not itself trusted. Pure.

use std::net::IpAddr;

use crate::config::IpNet;

pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip, trusted) => continue,
            Ok(ip) => return ip,
            // A malformed hop ends the chain we can believe; the last trusted hop sent it.
            Err(_) => return peer,
        }
    }
    peer
}

pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, len: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix_len: len,
        }
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let ip = client_ip(peer, &["1.2.3.4"], &[net("10.0.0.0", 8)]);
        assert_eq!(ip, peer);
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        let trusted = [net("10.0.0.0", 8), net("192.168.1.0", 24)];
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let ip = client_ip(peer, &["6.6.6.6, 198.51.100.7", "192.168.1.5"], &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        // All hops trusted: the peer stands.
        assert_eq!(client_ip(peer, &["10.9.9.9"], &trusted), peer);
        // Garbage hop: stop believing the header.
        assert_eq!(client_ip(peer, &["1.1.1.1, junk"], &trusted), peer);
    }
}
