//! `--allow-tcp` rules: parsing, matching one host or address, and
//! whether one rule lies within another (an app's narrowing).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::destination::{is_dns_name, looks_numeric};
use crate::special::special_range;

/// The forms a rule may take, shown with every parse error.
pub const ACCEPTED_FORMS: &str = "accepted forms: `redis.internal:6379`, `*.db.example.com:5432`, `10.0.0.5:6379`, \
     `10.0.0.0/8:8000-8999`, `[::1]:7000`, `[fd00::/8]:443`; a port is N, N-M or *";

/// An IP network: an address and a prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A network from an address and prefix; host bits are cleared.
    pub(crate) fn new(address: IpAddr, prefix: u8) -> Cidr {
        let network = match address {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix))),
        };
        Cidr { network, prefix }
    }

    /// The network of `ip` alone (`/32` or `/128`).
    pub(crate) fn host(ip: IpAddr) -> Cidr {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Cidr::new(ip, prefix)
    }

    /// Whether `ip` is inside this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// Whether every address of `self` is inside `other`.
    pub(crate) fn is_within(&self, other: &Cidr) -> bool {
        self.prefix >= other.prefix && other.contains(self.network)
    }
}

fn mask_v4(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

fn mask_v6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

/// Which hosts a rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this DNS name (lower case, no trailing dot).
    Name(String),
    /// Any name ending in `.suffix`, but not `suffix` itself.
    Subdomains(String),
    /// An address or a network.
    Network(Cidr),
}

/// One `--allow-tcp` rule: hosts and an inclusive port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRule {
    text: String,
    host: HostPattern,
    ports: (u16, u16),
}

/// A rule that could not be parsed. The message says what is wrong and
/// lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{rule}`: {reason}; {ACCEPTED_FORMS}")]
pub struct AllowlistError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for TcpRule {
    type Err = AllowlistError;

    fn from_str(text: &str) -> Result<TcpRule, AllowlistError> {
        let fail = |reason: String| AllowlistError {
            rule: text.to_owned(),
            reason,
        };
        let (host, ports) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(|| {
                fail("an IPv6 address opened with `[` is not closed with `]`".into())
            })?;
            let ports = after
                .strip_prefix(':')
                .ok_or_else(|| fail("a port must follow the `]`, as in `[::1]:7000`".into()))?;
            let host = parse_v6_network(inside).map_err(&fail)?;
            (host, ports)
        } else {
            let (host, ports) = text.rsplit_once(':').ok_or_else(|| {
                fail("the rule has no port; add one, as in `redis.internal:6379`".into())
            })?;
            if host.contains(':') {
                return Err(fail(
                    "write IPv6 addresses in brackets, as in `[::1]:7000`".into(),
                ));
            }
            (parse_host(host).map_err(&fail)?, ports)
        };
        let ports = parse_ports(ports).map_err(fail)?;
        Ok(TcpRule {
            text: text.to_owned(),
            host,
            ports,
        })
    }
}

fn parse_v6_network(text: &str) -> Result<HostPattern, String> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    if address.contains('%') {
        return Err("zone ids (`%eth0`) are not supported in rules".into());
    }
    let ip: Ipv6Addr = address
        .parse()
        .map_err(|_| format!("`{address}` is not an IPv6 address"))?;
    if ip.to_ipv4_mapped().is_some() {
        return Err(format!(
            "`{address}` is an IPv4-mapped address; write the IPv4 address instead, as in `{}:PORT`",
            ip.to_ipv4_mapped()
                .map(|v4| v4.to_string())
                .unwrap_or_default()
        ));
    }
    network(IpAddr::V6(ip), prefix, 128)
}

fn parse_host(text: &str) -> Result<HostPattern, String> {
    if text.is_empty() {
        return Err("the host is empty".into());
    }
    if text == "*" {
        return Err("`*` alone would allow every host; name the hosts, or allow networks such as `0.0.0.0/0:443`".into());
    }
    if let Some((address, prefix)) = text.split_once('/') {
        let ip: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IPv4 address in dotted-quad form"))?;
        return network(IpAddr::V4(ip), Some(prefix), 32);
    }
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return network(IpAddr::V4(ip), None, 32);
    }
    if looks_numeric(text) {
        return Err(format!(
            "`{text}` is not an IPv4 address in dotted-quad form; write all four parts in decimal, as in `127.0.0.1`"
        ));
    }
    if let Some(suffix) = text.strip_prefix("*.") {
        let suffix = suffix.to_ascii_lowercase();
        if !is_dns_name(&suffix) {
            return Err(format!("`{suffix}` after `*.` is not a valid host name"));
        }
        return Ok(HostPattern::Subdomains(suffix));
    }
    if text.contains('*') {
        return Err("`*` may only stand as the whole first label, as in `*.example.com`".into());
    }
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    if !is_dns_name(&name) {
        return Err(format!(
            "`{text}` is not a valid host name (letters, digits and `-` in dot-separated labels)"
        ));
    }
    Ok(HostPattern::Name(name))
}

fn network(ip: IpAddr, prefix: Option<&str>, bits: u8) -> Result<HostPattern, String> {
    let prefix = match prefix {
        None => bits,
        Some(text) => text
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| format!("`/{text}` is not a prefix length from 0 to {bits}"))?,
    };
    let cidr = Cidr::new(ip, prefix);
    if cidr.network != ip {
        return Err(format!(
            "`{ip}/{prefix}` has bits set past the prefix; write the network as `{}/{prefix}`",
            cidr.network
        ));
    }
    Ok(HostPattern::Network(cidr))
}

fn parse_ports(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("`{p}` is not a port from 1 to 65535"))
    };
    match text {
        "*" => Ok((1, u16::MAX)),
        "" => Err("the port is empty".into()),
        _ => match text.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (port(low)?, port(high)?);
                if low > high {
                    return Err(format!(
                        "the port range `{text}` runs backwards; write `{high}-{low}`"
                    ));
                }
                Ok((low, high))
            }
            None => port(text).map(|p| (p, p)),
        },
    }
}

impl TcpRule {
    pub(crate) fn allows_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    /// Whether the rule names this host name (already lower case) and port.
    pub(crate) fn allows_name(&self, name: &str, port: u16) -> bool {
        self.allows_port(port)
            && match &self.host {
                HostPattern::Name(rule) => rule == name,
                HostPattern::Subdomains(suffix) => name
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
                HostPattern::Network(_) => false,
            }
    }

    /// Whether the rule's network contains `ip` and the port matches.
    pub(crate) fn network_allows(&self, ip: IpAddr, port: u16) -> Option<&Cidr> {
        match &self.host {
            HostPattern::Network(cidr) if self.allows_port(port) && cidr.contains(ip) => Some(cidr),
            _ => None,
        }
    }

    /// Whether every destination this rule allows is allowed by `wider`.
    ///
    /// A network inside a special-use range (loopback, metadata, ...) is
    /// allowed only by a rule inside that same range, so `wider` must lie
    /// inside it too: `127.0.0.0/8:*` does not narrow `0.0.0.0/0:*`, which
    /// never reaches loopback.
    pub fn is_covered_by(&self, wider: &TcpRule) -> bool {
        let ports = wider.ports.0 <= self.ports.0 && self.ports.1 <= wider.ports.1;
        ports
            && match (&self.host, &wider.host) {
                (HostPattern::Network(inner), HostPattern::Network(outer)) => {
                    let special = special_range(inner.network)
                        .map(|(range, _)| range)
                        .filter(|range| inner.is_within(range));
                    inner.is_within(outer) && special.is_none_or(|range| outer.is_within(&range))
                }
                (HostPattern::Name(name), _) => wider.allows_name(name, self.ports.0),
                (HostPattern::Subdomains(inner), HostPattern::Subdomains(outer)) => {
                    inner == outer || wider.allows_name(inner, self.ports.0)
                }
                _ => false,
            }
    }

    /// Whether the rule names an IP network (rather than host names).
    pub fn is_network(&self) -> bool {
        matches!(self.host, HostPattern::Network(_))
    }
}

impl fmt::Display for TcpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Rules joined for messages, or `(none)`.
pub(crate) fn describe_rules<R: fmt::Display>(rules: &[R]) -> String {
    if rules.is_empty() {
        return "(none)".to_owned();
    }
    let texts: Vec<String> = rules.iter().map(ToString::to_string).collect();
    texts.join(", ")
}

/// The first of an app's `entries` that no operator rule covers.
pub(crate) fn first_uncovered<'a, R>(
    entries: &'a [R],
    operator: &[R],
    is_covered_by: impl Fn(&R, &R) -> bool,
) -> Option<&'a R> {
    entries
        .iter()
        .find(|entry| !operator.iter().any(|rule| is_covered_by(entry, rule)))
}

/// `ip:port`, with brackets around IPv6 addresses.
pub(crate) fn bracketed(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> TcpRule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reason(text: &str) -> String {
        text.parse::<TcpRule>().unwrap_err().reason
    }

    #[test]
    fn every_documented_form_parses() {
        for text in [
            "redis.internal:6379",
            "*.db.example.com:5432",
            "10.0.0.0/8:8000-8999",
            "[::1]:7000",
            "[fd00::/8]:443",
            "10.0.0.5:*",
            "Example.COM.:80",
            "0.0.0.0/0:443",
        ] {
            rule(text);
        }
        assert_eq!(
            rule("Example.COM.:80").host,
            HostPattern::Name("example.com".into())
        );
        assert_eq!(rule("h:8000-8999").ports, (8000, 8999));
        assert_eq!(rule("h:*").ports, (1, 65535));
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        assert_eq!(
            reason("redis.internal"),
            "the rule has no port; add one, as in `redis.internal:6379`"
        );
        assert_eq!(
            reason("::1:7000"),
            "write IPv6 addresses in brackets, as in `[::1]:7000`"
        );
        assert_eq!(
            reason("[::1:7000"),
            "an IPv6 address opened with `[` is not closed with `]`"
        );
        assert_eq!(
            reason("[::1]7000"),
            "a port must follow the `]`, as in `[::1]:7000`"
        );
        assert_eq!(reason("h:0"), "`0` is not a port from 1 to 65535");
        assert_eq!(reason("h:70000"), "`70000` is not a port from 1 to 65535");
        assert_eq!(
            reason("h:9-1"),
            "the port range `9-1` runs backwards; write `1-9`"
        );
        assert_eq!(reason(":80"), "the host is empty");
        assert_eq!(
            reason("*:80"),
            "`*` alone would allow every host; name the hosts, or allow networks such as `0.0.0.0/0:443`"
        );
        assert_eq!(
            reason("a.*.com:80"),
            "`*` may only stand as the whole first label, as in `*.example.com`"
        );
        assert_eq!(
            reason("10.0.0.1/8:80"),
            "`10.0.0.1/8` has bits set past the prefix; write the network as `10.0.0.0/8`"
        );
        assert_eq!(
            reason("10.0.0.0/33:80"),
            "`/33` is not a prefix length from 0 to 32"
        );
        assert_eq!(
            reason("127.1:80"),
            "`127.1` is not an IPv4 address in dotted-quad form; write all four parts in decimal, as in `127.0.0.1`"
        );
        assert_eq!(
            reason("[::ffff:127.0.0.1]:80"),
            "`::ffff:127.0.0.1` is an IPv4-mapped address; write the IPv4 address instead, as in `127.0.0.1:PORT`"
        );
        assert_eq!(
            reason("bad_host:80"),
            "`bad_host` is not a valid host name (letters, digits and `-` in dot-separated labels)"
        );
        assert_eq!(
            reason("[fe80::1%eth0]:80"),
            "zone ids (`%eth0`) are not supported in rules"
        );
        let full = "nope".parse::<TcpRule>().unwrap_err().to_string();
        assert!(full.starts_with("`nope`: the rule has no port"), "{full}");
        assert!(
            full.contains("accepted forms: `redis.internal:6379`"),
            "{full}"
        );
    }
}
