//! IP addresses and CIDR blocks: what `ipBlocks`, `remoteIpBlocks` and the
//! `source.ip`, `remote.ip` and `destination.ip` conditions match, and how
//! the proxy's `ip:port` properties are read.
//!
//! A block is written as Istio writes it: a single address (`10.1.2.3`,
//! `2001:db8::1`) or a CIDR (`10.1.0.0/16`, `2001:db8::/32`). Unlike Istio,
//! which accepts `10.0.0.1/8` and matches it as `10.0.0.0/8`, a CIDR with bits
//! set beyond its prefix is refused with the form it means: the text says one
//! thing and the match would do another. Zones (`fe80::1%eth0`) are refused.
//! IPv4 blocks match IPv4 addresses only and IPv6 blocks IPv6 addresses only;
//! an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is read as the IPv4 address
//! it maps, as Envoy reports a dual-stack peer.

use std::net::{IpAddr, SocketAddr};

use crate::error::PatternError;

/// One address block: an address and a prefix length (32 or 128 for a
/// single address). The bits beyond the prefix are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address as a 128-bit number (an IPv4 address in the low 32 bits).
    bits: u128,
    /// Prefix length: 0–32 for IPv4, 0–128 for IPv6.
    len: u8,
    v6: bool,
}

impl Cidr {
    /// Parses `address` or `address/prefix-length`.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| PatternError::BadAddress)?;
        let (bits, max, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u8, false),
            IpAddr::V6(v6) => (u128::from(v6), 128u8, true),
        };
        let len = match len {
            None => max,
            Some(l) => {
                // Digits only: no sign, no spaces, no leading zeros but "0".
                let canonical =
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) && (l == "0" || !l.starts_with('0'));
                match l.parse::<u8>() {
                    Ok(n) if canonical && n <= max => n,
                    _ => return Err(PatternError::BadPrefixLength { max }),
                }
            }
        };
        let masked = bits & mask(len, max);
        if masked != bits {
            let network = Self { bits: masked, len, v6 };
            return Err(PatternError::HostBitsSet {
                network: network.to_string(),
            });
        }
        Ok(Self { bits, len, v6 })
    }

    /// Whether `ip` is in the block (same family, same leading `len` bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
            IpAddr::V6(v6) => (u128::from(v6), true),
        };
        let max = if v6 { 128 } else { 32 };
        v6 == self.v6 && bits & mask(self.len, max) == self.bits
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = if self.v6 {
            IpAddr::from(std::net::Ipv6Addr::from(self.bits))
        } else {
            IpAddr::from(std::net::Ipv4Addr::from(self.bits as u32))
        };
        write!(f, "{ip}/{}", self.len)
    }
}

/// The mask of the leading `len` bits of a `max`-bit address, in the low
/// `max` bits of a `u128`.
fn mask(len: u8, max: u8) -> u128 {
    let all: u128 = if max == 128 { u128::MAX } else { (1u128 << max) - 1 };
    let host_bits = u32::from(max.saturating_sub(len));
    if host_bits >= 128 {
        0
    } else {
        all & !((1u128 << host_bits) - 1)
    }
}

/// Reads an address as the proxy prints one (`10.1.2.3:8080`,
/// `[2001:db8::1]:8080`): the IP, IPv4-mapped IPv6 addresses as IPv4, and
/// the port. `None` for anything else (a Unix socket path, for one).
pub fn parse_socket_address(s: &str) -> Option<(IpAddr, u16)> {
    let addr: SocketAddr = s.parse().ok()?;
    Some((addr.ip().to_canonical(), addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_addresses_and_blocks() {
        let one = Cidr::parse("10.1.2.3").unwrap();
        assert!(one.contains(ip("10.1.2.3")));
        assert!(!one.contains(ip("10.1.2.4")));
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.255.7")));
        assert!(!block.contains(ip("10.2.0.1")));
        let all4 = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all4.contains(ip("203.0.113.9")));
        assert!(!all4.contains(ip("::1")), "an IPv4 block never holds an IPv6 address");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.1.2.3")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::1/128").unwrap().contains(ip("::1")));
    }

    #[test]
    fn refused_blocks() {
        assert!(matches!(Cidr::parse(""), Err(PatternError::Empty)));
        for bad in [
            "10.1.2",
            "10.1.2.3.4",
            "10.0.0.256",
            "host",
            "fe80::1%eth0",
            " 10.0.0.1",
            "10.0.0.1 ",
        ] {
            assert!(matches!(Cidr::parse(bad), Err(PatternError::BadAddress)), "{bad}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/08",
            "::/129",
            "10.0.0.0/8/8",
        ] {
            assert!(
                matches!(Cidr::parse(bad), Err(PatternError::BadPrefixLength { .. })),
                "{bad}"
            );
        }
        match Cidr::parse("10.0.0.1/8") {
            Err(PatternError::HostBitsSet { network }) => assert_eq!(network, "10.0.0.0/8"),
            other => panic!("{other:?}"),
        }
        match Cidr::parse("2001:db8::1/32") {
            Err(PatternError::HostBitsSet { network }) => assert_eq!(network, "2001:db8::/32"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn socket_addresses_as_envoy_prints_them() {
        assert_eq!(parse_socket_address("127.0.0.1:60598"), Some((ip("127.0.0.1"), 60598)));
        assert_eq!(parse_socket_address("10.9.9.9:0"), Some((ip("10.9.9.9"), 0)));
        assert_eq!(parse_socket_address("[2001:db8::1]:0"), Some((ip("2001:db8::1"), 0)));
        assert_eq!(parse_socket_address("[::ffff:10.1.2.3]:80"), Some((ip("10.1.2.3"), 80)));
        assert_eq!(parse_socket_address("/var/run/sock"), None);
        assert_eq!(parse_socket_address("10.1.2.3"), None);
    }
}
