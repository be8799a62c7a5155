//! `--allow-tcp` rules: parsing, matching, and narrowing per app.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::destination::{canonical_ip, is_dns_name, looks_numeric};
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
    fn allows_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    /// Whether the rule names this host name (already lower case) and port.
    fn allows_name(&self, name: &str, port: u16) -> bool {
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
    fn network_allows(&self, ip: IpAddr, port: u16) -> Option<&Cidr> {
        match &self.host {
            HostPattern::Network(cidr) if self.allows_port(port) && cidr.contains(ip) => Some(cidr),
            _ => None,
        }
    }

    /// Whether every destination this rule allows is allowed by `wider`.
    pub fn is_covered_by(&self, wider: &TcpRule) -> bool {
        let ports = wider.ports.0 <= self.ports.0 && self.ports.1 <= wider.ports.1;
        ports
            && match (&self.host, &wider.host) {
                (HostPattern::Network(inner), HostPattern::Network(outer)) => {
                    inner.is_within(outer)
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

/// The outcome of checking one destination address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The connection may go ahead; the rule that allowed it.
    Allowed(String),
    /// Refused, with the rule that would have been needed.
    Denied(String),
}

/// The rules one app's connections are checked against. Empty means no
/// outbound connection at all.
#[derive(Clone, Debug, Default)]
pub struct TcpAllowlist {
    rules: Vec<TcpRule>,
}

impl TcpAllowlist {
    /// An allowlist of these rules.
    pub fn new(rules: Vec<TcpRule>) -> TcpAllowlist {
        TcpAllowlist { rules }
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, as written.
    pub fn rules(&self) -> &[TcpRule] {
        &self.rules
    }

    /// The rules joined for messages, or `(none)`.
    pub fn describe(&self) -> String {
        describe_rules(&self.rules)
    }

    /// The name rule allowing `name` (lower case) on `port`, if any. Such a
    /// rule allows the ordinary addresses the name resolves to.
    pub fn name_rule(&self, name: &str, port: u16) -> Option<&TcpRule> {
        self.rules.iter().find(|rule| rule.allows_name(name, port))
    }

    /// Whether resolving a name for `port` could lead anywhere: some name
    /// rule matches it, or some network rule covers the port.
    pub fn worth_resolving(&self, name: &str, port: u16) -> bool {
        self.name_rule(name, port).is_some()
            || self
                .rules
                .iter()
                .any(|r| r.is_network() && r.allows_port(port))
    }

    /// Decides whether a connection to `ip:port` may go ahead. `via` is the
    /// name rule that allowed the host name `ip` was resolved from, if any.
    ///
    /// Special-use addresses (loopback, link-local, unspecified, metadata)
    /// need a network rule inside their special range: neither a name rule
    /// nor a wide network such as `0.0.0.0/0` unlocks them.
    pub fn check_address(&self, ip: IpAddr, port: u16, via: Option<&TcpRule>) -> Decision {
        let ip = canonical_ip(ip);
        if let Some((special, what)) = special_range(ip) {
            let explicit = self.rules.iter().find(|rule| {
                rule.network_allows(ip, port)
                    .is_some_and(|cidr| cidr.is_within(&special))
            });
            return match explicit {
                Some(rule) => Decision::Allowed(rule.text.clone()),
                None => Decision::Denied(format!(
                    "{ip} is {what}, which only a rule naming it allows, such as `--allow-tcp {}`",
                    bracketed(ip, port)
                )),
            };
        }
        if let Some(rule) = self
            .rules
            .iter()
            .find(|rule| rule.network_allows(ip, port).is_some())
        {
            return Decision::Allowed(rule.text.clone());
        }
        match via {
            Some(rule) => Decision::Allowed(rule.text.clone()),
            None => Decision::Denied(format!("no rule allows {}", bracketed(ip, port))),
        }
    }

    /// Narrows this (the operator's) allowlist to an app's own entries,
    /// each of which must be covered by one of the operator's rules.
    /// Returns the first entry that is not covered.
    pub fn narrow(&self, entries: Vec<TcpRule>) -> Result<TcpAllowlist, TcpRule> {
        if let Some(uncovered) = first_uncovered(&entries, &self.rules, TcpRule::is_covered_by) {
            return Err(uncovered.clone());
        }
        Ok(TcpAllowlist { rules: entries })
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
fn bracketed(ip: IpAddr, port: u16) -> String {
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

    fn list(rules: &[&str]) -> TcpAllowlist {
        TcpAllowlist::new(rules.iter().map(|r| rule(r)).collect())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
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

    #[test]
    fn names_match_exactly_and_wildcards_match_subdomains_only() {
        let rules = list(&["redis.internal:6379", "*.db.example.com:5432"]);
        assert!(rules.name_rule("redis.internal", 6379).is_some());
        assert!(rules.name_rule("redis.internal", 6380).is_none());
        assert!(rules.name_rule("other.internal", 6379).is_none());
        assert!(rules.name_rule("a.db.example.com", 5432).is_some());
        assert!(rules.name_rule("x.y.db.example.com", 5432).is_some());
        assert!(rules.name_rule("db.example.com", 5432).is_none());
        assert!(rules.name_rule("evildb.example.com", 5432).is_none());
    }

    #[test]
    fn networks_match_addresses_and_port_ranges() {
        let rules = list(&["10.0.0.0/8:8000-8999", "[fd00::/8]:443", "192.0.2.7:25"]);
        assert_eq!(
            rules.check_address(ip("10.20.30.40"), 8080, None),
            Decision::Allowed("10.0.0.0/8:8000-8999".into())
        );
        assert!(matches!(
            rules.check_address(ip("10.20.30.40"), 9000, None),
            Decision::Denied(_)
        ));
        assert!(matches!(
            rules.check_address(ip("11.0.0.1"), 8080, None),
            Decision::Denied(_)
        ));
        assert_eq!(
            rules.check_address(ip("fd12::1"), 443, None),
            Decision::Allowed("[fd00::/8]:443".into())
        );
        assert!(matches!(
            rules.check_address(ip("fe00::1"), 443, None),
            Decision::Denied(_)
        ));
        assert_eq!(
            rules.check_address(ip("192.0.2.7"), 25, None),
            Decision::Allowed("192.0.2.7:25".into())
        );
        assert_eq!(
            rules.check_address(ip("192.0.2.8"), 25, None),
            Decision::Denied("no rule allows 192.0.2.8:25".into())
        );
    }

    #[test]
    fn a_name_rule_allows_ordinary_resolved_addresses_only() {
        let rules = list(&["localhost:6379", "api.internal:443"]);
        let via = rules.name_rule("api.internal", 443);
        assert_eq!(
            rules.check_address(ip("10.1.2.3"), 443, via),
            Decision::Allowed("api.internal:443".into())
        );
        let via = rules.name_rule("localhost", 6379);
        assert_eq!(
            rules.check_address(ip("127.0.0.1"), 6379, via),
            Decision::Denied(
                "127.0.0.1 is a loopback address, which only a rule naming it allows, such as `--allow-tcp 127.0.0.1:6379`"
                    .into()
            )
        );
        assert!(matches!(
            rules.check_address(ip("::1"), 6379, via),
            Decision::Denied(_)
        ));
        assert!(matches!(
            rules.check_address(ip("::ffff:127.0.0.1"), 6379, via),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn special_addresses_need_a_rule_inside_their_range() {
        let wide = list(&["0.0.0.0/0:*", "[::/0]:*"]);
        for target in [
            "127.0.0.1",
            "169.254.169.254",
            "169.254.3.4",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "64:ff9b::7f00:1",
        ] {
            assert!(
                matches!(
                    wide.check_address(ip(target), 80, None),
                    Decision::Denied(_)
                ),
                "{target} must need an explicit rule"
            );
        }
        assert!(matches!(
            wide.check_address(ip("8.8.8.8"), 80, None),
            Decision::Allowed(_)
        ));

        let explicit = list(&["127.0.0.1:6379", "169.254.0.0/16:80", "[::1]:7000"]);
        assert!(matches!(
            explicit.check_address(ip("127.0.0.1"), 6379, None),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            explicit.check_address(ip("::ffff:127.0.0.1"), 6379, None),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            explicit.check_address(ip("::1"), 7000, None),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            explicit.check_address(ip("169.254.3.4"), 80, None),
            Decision::Allowed(_)
        ));
        // The metadata address is its own range: a link-local rule is not
        // enough.
        assert!(matches!(
            explicit.check_address(ip("169.254.169.254"), 80, None),
            Decision::Denied(_)
        ));
        let metadata = list(&["169.254.169.254:80"]);
        assert!(matches!(
            metadata.check_address(ip("169.254.169.254"), 80, None),
            Decision::Allowed(_)
        ));
    }

    #[test]
    fn an_empty_allowlist_allows_nothing() {
        let none = TcpAllowlist::default();
        assert!(none.is_empty());
        assert_eq!(none.describe(), "(none)");
        assert!(!none.worth_resolving("example.com", 80));
        assert!(matches!(
            none.check_address(ip("8.8.8.8"), 80, None),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn resolving_is_worth_it_only_when_a_rule_could_match() {
        let rules = list(&["redis.internal:6379", "10.0.0.0/8:5432"]);
        assert!(rules.worth_resolving("redis.internal", 6379));
        assert!(rules.worth_resolving("anything.example", 5432));
        assert!(!rules.worth_resolving("anything.example", 80));
    }

    #[test]
    fn app_entries_must_narrow_the_operator_rules() {
        let operator = list(&[
            "*.db.example.com:5432",
            "10.0.0.0/8:8000-8999",
            "redis.internal:6379",
        ]);
        let narrowed = operator
            .narrow(vec![
                rule("orders.db.example.com:5432"),
                rule("10.1.0.0/16:8080-8081"),
                rule("*.eu.db.example.com:5432"),
            ])
            .unwrap();
        assert_eq!(narrowed.rules().len(), 3);
        for wider in [
            "10.0.0.0/7:8080",
            "10.1.0.0/16:9000",
            "redis.internal:6380",
            "db.example.com:5432",
            "*.example.com:5432",
            "other:1",
        ] {
            let uncovered = operator.narrow(vec![rule(wider)]).unwrap_err();
            assert_eq!(uncovered.to_string(), wider);
        }
        assert!(TcpAllowlist::default().narrow(vec![rule("a:1")]).is_err());
    }
}
