//! Special-use addresses that a name rule alone never unlocks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::allowlist::Cidr;

/// A special-use range and what it is, for messages.
struct SpecialRange {
    network: IpAddr,
    prefix: u8,
    what: &'static str,
}

/// Most specific first: the first range containing an address decides
/// which explicit rule it needs.
const SPECIAL_RANGES: &[SpecialRange] = &[
    SpecialRange {
        network: IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        prefix: 32,
        what: "the cloud metadata address",
    },
    SpecialRange {
        network: IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
        prefix: 32,
        what: "a cloud metadata address",
    },
    SpecialRange {
        network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        prefix: 8,
        what: "a loopback address",
    },
    SpecialRange {
        network: IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)),
        prefix: 16,
        what: "a link-local address",
    },
    SpecialRange {
        network: IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
        prefix: 8,
        what: "an unspecified (\"this network\") address",
    },
    SpecialRange {
        network: IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
        prefix: 128,
        what: "the cloud metadata address",
    },
    SpecialRange {
        network: IpAddr::V6(Ipv6Addr::LOCALHOST),
        prefix: 128,
        what: "a loopback address",
    },
    SpecialRange {
        network: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        prefix: 128,
        what: "the unspecified address",
    },
    SpecialRange {
        network: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
        prefix: 10,
        what: "a link-local address",
    },
    SpecialRange {
        // IPv4-compatible (deprecated) addresses embed an IPv4 address.
        network: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        prefix: 96,
        what: "an IPv4-compatible address",
    },
    SpecialRange {
        // NAT64 can route these to the embedded IPv4 address, metadata
        // and loopback included.
        network: IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)),
        prefix: 96,
        what: "a NAT64 address",
    },
];

/// If `ip` is special-use (loopback, link-local, unspecified, cloud
/// metadata, or an IPv6 form that embeds an IPv4 address), the range it is
/// in and a description. Only an IP rule inside that range allows it.
pub(crate) fn special_range(ip: IpAddr) -> Option<(Cidr, &'static str)> {
    SPECIAL_RANGES.iter().find_map(|range| {
        let cidr = Cidr::new(range.network, range.prefix);
        cidr.contains(ip).then_some((cidr, range.what))
    })
}

/// Describes `ip` when it is special-use, for example `"a loopback
/// address"`; `None` for ordinary addresses.
pub fn special_use(ip: IpAddr) -> Option<&'static str> {
    special_range(ip).map(|(_, what)| what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_recognised() {
        assert_eq!(special_use(ip("127.0.0.1")), Some("a loopback address"));
        assert_eq!(special_use(ip("127.255.0.9")), Some("a loopback address"));
        assert_eq!(
            special_use(ip("169.254.169.254")),
            Some("the cloud metadata address")
        );
        assert_eq!(special_use(ip("169.254.1.1")), Some("a link-local address"));
        assert_eq!(
            special_use(ip("0.0.0.0")),
            Some("an unspecified (\"this network\") address")
        );
        assert_eq!(special_use(ip("::1")), Some("a loopback address"));
        assert_eq!(special_use(ip("::")), Some("the unspecified address"));
        assert_eq!(special_use(ip("fe80::1")), Some("a link-local address"));
        assert_eq!(
            special_use(ip("fd00:ec2::254")),
            Some("the cloud metadata address")
        );
        assert_eq!(
            special_use(ip("::127.0.0.1")),
            Some("an IPv4-compatible address")
        );
        assert_eq!(
            special_use(ip("64:ff9b::a9fe:a9fe")),
            Some("a NAT64 address")
        );
    }

    #[test]
    fn ordinary_addresses_are_not_special() {
        for text in [
            "10.0.0.1",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert_eq!(special_use(ip(text)), None, "{text}");
        }
    }
}
