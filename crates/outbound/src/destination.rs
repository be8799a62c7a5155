//! A guest's `host:port`, parsed and normalised before any rule sees it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Where a guest wants to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host, normalised.
    pub host: DestinationHost,
    /// The port, from 1 to 65535.
    pub port: u16,
}

/// A destination host: an address (in canonical form) or a DNS name (lower
/// case, no trailing dot) for the host to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHost {
    /// An IP address. IPv4 in any spelling and IPv4-mapped IPv6 are IPv4.
    Ip(IpAddr),
    /// A host name.
    Name(String),
}

/// Why a destination is not `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{address}` is not host:port ({reason}); write for example `db.internal:5432`, `10.0.0.5:6379` or `[::1]:7000`"
)]
pub struct DestinationError {
    /// The destination as given.
    pub address: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl FromStr for Destination {
    type Err = DestinationError;

    fn from_str(address: &str) -> Result<Destination, DestinationError> {
        let fail = |reason| DestinationError {
            address: address.to_owned(),
            reason,
        };
        let (host, port) = if let Some(rest) = address.strip_prefix('[') {
            let (inside, port) = rest
                .split_once("]:")
                .ok_or_else(|| fail("an IPv6 address needs `[...]:port`"))?;
            if inside.contains('%') {
                return Err(fail("zone ids are not supported"));
            }
            let ip: Ipv6Addr = inside.parse().map_err(|_| fail("not an IPv6 address"))?;
            (DestinationHost::Ip(canonical_ip(IpAddr::V6(ip))), port)
        } else {
            let (host, port) = address.rsplit_once(':').ok_or_else(|| fail("no port"))?;
            if host.contains(':') {
                return Err(fail("IPv6 addresses go in brackets"));
            }
            let host = if looks_numeric(host) {
                DestinationHost::Ip(IpAddr::V4(
                    parse_ipv4_any(host).ok_or_else(|| fail("not a valid IPv4 address"))?,
                ))
            } else {
                let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                if !is_dns_name(&name) {
                    return Err(fail("not a valid host name"));
                }
                DestinationHost::Name(name)
            };
            (host, port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| fail("the port must be from 1 to 65535"))?;
        Ok(Destination { host, port })
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            DestinationHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            DestinationHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            DestinationHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as the IPv4 address they
/// reach; every other address as it is.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `host` is meant as a number: its last dot-separated label is a
/// decimal, octal or hexadecimal number, as resolvers treat `127.1`,
/// `2130706433` and `0x7f.0.0.1`. Such hosts are never looked up as names.
pub(crate) fn looks_numeric(host: &str) -> bool {
    let last = host
        .strip_suffix('.')
        .unwrap_or(host)
        .rsplit('.')
        .next()
        .unwrap_or("");
    let digits = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .map_or_else(
            || last.chars().all(|c| c.is_ascii_digit()),
            |hex| hex.chars().all(|c| c.is_ascii_hexdigit()),
        );
    !last.is_empty() && digits
}

/// Parses IPv4 the way `inet_aton` does: one to four parts, each decimal,
/// octal (leading `0`) or hexadecimal (`0x`), the last part filling the
/// remaining bytes.
fn parse_ipv4_any(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let value = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            if hex.is_empty() {
                Some(0)
            } else {
                u32::from_str_radix(hex, 16).ok()
            }
        } else if part.len() > 1 && part.starts_with('0') {
            u32::from_str_radix(&part[1..], 8).ok()
        } else if part.is_empty() {
            None
        } else {
            part.parse::<u32>().ok()
        }?;
        values.push(value);
    }
    let (last, leading) = values.split_last()?;
    let mut address: u32 = 0;
    for (index, value) in leading.iter().enumerate() {
        if *value > 255 {
            return None;
        }
        address |= value << (24 - 8 * index);
    }
    let remaining_bits = 32 - 8 * leading.len() as u32;
    if remaining_bits < 32 && *last >= 1 << remaining_bits {
        return None;
    }
    Some(Ipv4Addr::from(address | last))
}

/// Whether `name` is a DNS host name: dot-separated labels of letters,
/// digits and inner `-`, at most 63 bytes each and 253 in all, with a last
/// label that is not a number.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !looks_numeric(name)
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Destination {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn ip_of(text: &str) -> String {
        match parse(text).host {
            DestinationHost::Ip(ip) => ip.to_string(),
            DestinationHost::Name(name) => panic!("{text} parsed as the name {name}"),
        }
    }

    #[test]
    fn names_are_lower_cased_and_lose_the_trailing_dot() {
        assert_eq!(
            parse("Redis.Internal.:6379").host,
            DestinationHost::Name("redis.internal".into())
        );
        assert_eq!(parse("localhost:80").to_string(), "localhost:80");
    }

    #[test]
    fn every_spelling_of_loopback_becomes_127_0_0_1() {
        for spelling in [
            "127.0.0.1:80",
            "127.1:80",
            "127.0.1:80",
            "2130706433:80",
            "0x7f.0.0.1:80",
            "0x7f000001:80",
            "0177.0.0.1:80",
            "017700000001:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:7f00:1]:80",
        ] {
            assert_eq!(ip_of(spelling), "127.0.0.1", "{spelling}");
        }
        assert_eq!(ip_of("[::1]:80"), "::1");
        assert_eq!(ip_of("169.254.43518:80"), "169.254.169.254");
    }

    #[test]
    fn malformed_destinations_are_refused() {
        let cases = [
            ("db.internal", "no port"),
            ("db:0", "the port must be from 1 to 65535"),
            ("db:65536", "the port must be from 1 to 65535"),
            (":80", "not a valid host name"),
            ("a..b:80", "not a valid host name"),
            ("bad_name:80", "not a valid host name"),
            ("-lead.example:80", "not a valid host name"),
            ("::1:80", "IPv6 addresses go in brackets"),
            ("[::1:80", "an IPv6 address needs `[...]:port`"),
            ("[fe80::1%eth0]:80", "zone ids are not supported"),
            ("256.1.1.1:80", "not a valid IPv4 address"),
            ("1.2.3.4.5:80", "not a valid IPv4 address"),
            ("0x100.0.0.1:80", "not a valid IPv4 address"),
            ("4294967296:80", "not a valid IPv4 address"),
            ("09.0.0.1:80", "not a valid IPv4 address"),
            ("example.123:80", "not a valid IPv4 address"),
        ];
        for (text, reason) in cases {
            let error = text.parse::<Destination>().unwrap_err();
            assert_eq!(error.reason, reason, "{text}");
        }
        let message = "db".parse::<Destination>().unwrap_err().to_string();
        assert_eq!(
            message,
            "`db` is not host:port (no port); write for example `db.internal:5432`, `10.0.0.5:6379` or `[::1]:7000`"
        );
    }
}
