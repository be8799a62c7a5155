//! Special-use addresses that a name rule alone never unlocks: loopback,
//! link-local, unspecified, cloud metadata, and every IPv6 form that embeds
//! an IPv4 address (IPv4-compatible, NAT64 and local-use NAT64,
//! IPv4-translated, 6to4, Teredo), since a translator or relay may deliver
//! those to the embedded address. IPv4-mapped addresses never get here:
//! they are turned into plain IPv4 first.

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
    SpecialRange {
        // Local-use NAT64 (RFC 8215): a translator may embed the IPv4
        // address anywhere in the low bits.
        network: IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0)),
        prefix: 48,
        what: "a local-use NAT64 address",
    },
    SpecialRange {
        // IPv4-translated addresses (RFC 2765, `::ffff:0:a.b.c.d`).
        network: IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0)),
        prefix: 96,
        what: "an IPv4-translated address",
    },
    SpecialRange {
        // 6to4 (RFC 3056): `2002:AABB:CCDD::/48` reaches a.b.c.d's site.
        network: IpAddr::V6(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0)),
        prefix: 16,
        what: "a 6to4 address",
    },
    SpecialRange {
        // Teredo (RFC 4380): the server and the client's IPv4 addresses
        // are embedded in the address.
        network: IpAddr::V6(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0)),
        prefix: 32,
        what: "a Teredo address",
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
    fn every_ipv6_form_that_embeds_ipv4_is_special() {
        for (text, what) in [
            ("64:ff9b:1::7f00:1", "a local-use NAT64 address"),
            ("64:ff9b:1:ffff::a9fe:a9fe", "a local-use NAT64 address"),
            ("::ffff:0:7f00:1", "an IPv4-translated address"),
            ("::ffff:0:a9fe:a9fe", "an IPv4-translated address"),
            ("2002:7f00:1::", "a 6to4 address"),
            ("2002:a9fe:a9fe::1", "a 6to4 address"),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a Teredo address"),
            ("2001::1", "a Teredo address"),
        ] {
            assert_eq!(special_use(ip(text)), Some(what), "{text}");
        }
        // Neighbours of those ranges are ordinary.
        for text in ["2001:1::1", "2001:db8::1", "2003::1", "64:ff9b:2::1"] {
            assert_eq!(special_use(ip(text)), None, "{text}");
        }
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
