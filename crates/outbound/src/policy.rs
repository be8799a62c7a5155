//! The one decision every outbound door asks: may this request reach this
//! address on this port? `outbound-tcp`, `wasi:sockets` and outbound
//! `wasi:http` all call [`TcpAllowlist::decide`] (HTTP through
//! [`crate::HttpAllowlist::for_scheme`]), so a destination is judged the
//! same whichever way the guest tries it.
//!
//! # Evaluation order
//! 1. The address is made canonical: an IPv4-mapped IPv6 address becomes
//!    the plain IPv4 address.
//! 2. **Special-use addresses** (loopback, link-local, unspecified, cloud
//!    metadata, IPv6 forms that embed an IPv4 address; see
//!    [`crate::special_use`]) are allowed only by a network rule that lies
//!    inside the same special range. A name rule never allows them, nor
//!    does a wide network such as `0.0.0.0/0`.
//! 3. **This machine's own interface addresses** ([`LocalInterfaces`]) are
//!    treated as loopback: only a network rule within that very address
//!    (`10.0.0.5:8080`, not `10.0.0.0/8:*`) allows them, since a service
//!    bound to `0.0.0.0` answers there too.
//! 4. **Any other address** is allowed by a network rule containing it, or
//!    by the name rule that allowed the host name it was resolved from.
//! 5. **An app's narrowing** (`allowed_tcp`, `allowed_http`) is checked by
//!    steps 1-4 against the app's entries *and* against the operator's
//!    rules: both must allow the address, so an app entry can never widen
//!    what the operator allowed.
//!
//! Names are resolved by the host only when a name rule allows the name
//! ([`TcpAllowlist::may_resolve`]); a network rule never makes the host
//! look up a name, so a guest cannot send data out through DNS queries for
//! names it makes up.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::allowlist::{TcpRule, bracketed, describe_rules, first_uncovered};
use crate::destination::canonical_ip;
use crate::local::LocalInterfaces;
use crate::special::special_range;

/// The outcome of checking one destination address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The connection may go ahead; the rule that allowed it.
    Allowed(String),
    /// Refused, and why.
    Denied(Denial),
}

/// Why an address was refused. Its text says which rule would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No rule covers the address and port.
    NoRule {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
    /// A special-use address without a rule inside its range.
    Special {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
        /// What kind of address it is, such as "a loopback address".
        what: &'static str,
    },
    /// An address of this machine's own interfaces without a rule naming
    /// it.
    LocalInterface {
        /// The address.
        ip: IpAddr,
        /// The port.
        port: u16,
    },
    /// The app's entries allow it but the operator's rules do not.
    Operator {
        /// Why the operator's rules refuse it.
        why: Box<Denial>,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NoRule { ip, port } => write!(f, "no rule allows {}", bracketed(*ip, *port)),
            Denial::Special { ip, port, what } => write!(
                f,
                "{ip} is {what}, which only a rule naming it allows, such as `--allow-tcp {}`",
                bracketed(*ip, *port)
            ),
            Denial::LocalInterface { ip, port } => write!(
                f,
                "{ip} is an address of this host's own interfaces, which only a rule naming it allows, such as `--allow-tcp {}`",
                bracketed(*ip, *port)
            ),
            Denial::Operator { why } => write!(f, "the operator's rules refuse it: {why}"),
        }
    }
}

/// The rules one app's connections are checked against. Empty means no
/// outbound connection at all.
#[derive(Clone, Debug)]
pub struct TcpAllowlist {
    rules: Vec<TcpRule>,
    /// When these are an app's entries: the operator's rules, which every
    /// address must pass as well.
    operator: Option<Arc<TcpAllowlist>>,
    local: LocalInterfaces,
}

impl Default for TcpAllowlist {
    fn default() -> TcpAllowlist {
        TcpAllowlist::new(Vec::new())
    }
}

impl TcpAllowlist {
    /// An allowlist of these rules, which treats this machine's interface
    /// addresses as loopback.
    pub fn new(rules: Vec<TcpRule>) -> TcpAllowlist {
        TcpAllowlist {
            rules,
            operator: None,
            local: LocalInterfaces::system(),
        }
    }

    /// The same rules with another list of local addresses (tests, and
    /// tools that decide for another machine).
    pub fn with_local_interfaces(mut self, local: LocalInterfaces) -> TcpAllowlist {
        if let Some(operator) = &mut self.operator {
            *operator = Arc::new((**operator).clone().with_local_interfaces(local.clone()));
        }
        self.local = local;
        self
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

    /// The name rule allowing `name` (lower case) on `port`, if any.
    fn name_rule(&self, name: &str, port: u16) -> Option<&TcpRule> {
        self.rules.iter().find(|rule| rule.allows_name(name, port))
    }

    /// Whether the host may resolve `name` (lower case) for `port`: only
    /// when a name rule allows it (and, for an app, an operator's name rule
    /// too). Network rules never make the host look a name up.
    pub fn may_resolve(&self, name: &str, port: u16) -> bool {
        self.name_rule(name, port).is_some()
            && self
                .operator
                .as_ref()
                .is_none_or(|operator| operator.may_resolve(name, port))
    }

    /// Decides whether a connection to `ip:port` may go ahead; `name` is
    /// the host name `ip` was resolved from, if any. See the module doc
    /// for the order of the checks.
    pub fn decide(&self, ip: IpAddr, port: u16, name: Option<&str>) -> Decision {
        let decision = self.decide_own(ip, port, name);
        match (&decision, &self.operator) {
            (Decision::Allowed(_), Some(operator)) => match operator.decide(ip, port, name) {
                Decision::Allowed(_) => decision,
                Decision::Denied(why) => Decision::Denied(Denial::Operator { why: Box::new(why) }),
            },
            _ => decision,
        }
    }

    /// Steps 1 to 4 of the module doc, on these rules alone.
    fn decide_own(&self, ip: IpAddr, port: u16, name: Option<&str>) -> Decision {
        let ip = canonical_ip(ip);
        let within = |range: &crate::allowlist::Cidr| {
            self.rules.iter().find(|rule| {
                rule.network_allows(ip, port)
                    .is_some_and(|cidr| cidr.is_within(range))
            })
        };
        if let Some((special, what)) = special_range(ip) {
            return match within(&special) {
                Some(rule) => Decision::Allowed(rule.to_string()),
                None => Decision::Denied(Denial::Special { ip, port, what }),
            };
        }
        if self.local.contains(ip) {
            let only = crate::allowlist::Cidr::host(ip);
            return match within(&only) {
                Some(rule) => Decision::Allowed(rule.to_string()),
                None => Decision::Denied(Denial::LocalInterface { ip, port }),
            };
        }
        if let Some(rule) = self
            .rules
            .iter()
            .find(|rule| rule.network_allows(ip, port).is_some())
        {
            return Decision::Allowed(rule.to_string());
        }
        match name.and_then(|name| self.name_rule(name, port)) {
            Some(rule) => Decision::Allowed(rule.to_string()),
            None => Decision::Denied(Denial::NoRule { ip, port }),
        }
    }

    /// Narrows this (the operator's) allowlist to an app's own entries,
    /// each of which must be covered by one of the operator's rules.
    /// Returns the first entry that is not covered. The result checks
    /// every address against both.
    pub fn narrow(&self, entries: Vec<TcpRule>) -> Result<TcpAllowlist, TcpRule> {
        if let Some(uncovered) = first_uncovered(&entries, &self.rules, TcpRule::is_covered_by) {
            return Err(uncovered.clone());
        }
        Ok(TcpAllowlist {
            rules: entries,
            operator: Some(Arc::new(self.clone())),
            local: self.local.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> TcpRule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// An allowlist on a machine whose only non-loopback address is
    /// 192.0.2.10.
    fn list(rules: &[&str]) -> TcpAllowlist {
        TcpAllowlist::new(rules.iter().map(|r| rule(r)).collect())
            .with_local_interfaces(LocalInterfaces::fixed([ip("127.0.0.1"), ip("192.0.2.10")]))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn denied(decision: Decision) -> String {
        match decision {
            Decision::Denied(why) => why.to_string(),
            Decision::Allowed(rule) => panic!("allowed by {rule}"),
        }
    }

    #[test]
    fn names_match_exactly_and_wildcards_match_subdomains_only() {
        let rules = list(&["redis.internal:6379", "*.db.example.com:5432"]);
        assert!(rules.may_resolve("redis.internal", 6379));
        assert!(!rules.may_resolve("redis.internal", 6380));
        assert!(!rules.may_resolve("other.internal", 6379));
        assert!(rules.may_resolve("a.db.example.com", 5432));
        assert!(rules.may_resolve("x.y.db.example.com", 5432));
        assert!(!rules.may_resolve("db.example.com", 5432));
        assert!(!rules.may_resolve("evildb.example.com", 5432));
    }

    #[test]
    fn networks_match_addresses_and_port_ranges() {
        let rules = list(&["10.0.0.0/8:8000-8999", "[fd00::/8]:443", "192.0.2.7:25"]);
        assert_eq!(
            rules.decide(ip("10.20.30.40"), 8080, None),
            Decision::Allowed("10.0.0.0/8:8000-8999".into())
        );
        assert_eq!(
            denied(rules.decide(ip("10.20.30.40"), 9000, None)),
            "no rule allows 10.20.30.40:9000"
        );
        assert_eq!(
            denied(rules.decide(ip("11.0.0.1"), 8080, None)),
            "no rule allows 11.0.0.1:8080"
        );
        assert_eq!(
            rules.decide(ip("fd12::1"), 443, None),
            Decision::Allowed("[fd00::/8]:443".into())
        );
        assert_eq!(
            denied(rules.decide(ip("fe00::1"), 443, None)),
            "no rule allows [fe00::1]:443"
        );
        assert_eq!(
            rules.decide(ip("192.0.2.7"), 25, None),
            Decision::Allowed("192.0.2.7:25".into())
        );
        assert_eq!(
            denied(rules.decide(ip("192.0.2.8"), 25, None)),
            "no rule allows 192.0.2.8:25"
        );
    }

    #[test]
    fn a_name_rule_allows_ordinary_resolved_addresses_only() {
        let rules = list(&["localhost:6379", "api.internal:443"]);
        assert_eq!(
            rules.decide(ip("10.1.2.3"), 443, Some("api.internal")),
            Decision::Allowed("api.internal:443".into())
        );
        assert_eq!(
            denied(rules.decide(ip("10.1.2.3"), 443, Some("other.internal"))),
            "no rule allows 10.1.2.3:443"
        );
        assert_eq!(
            denied(rules.decide(ip("127.0.0.1"), 6379, Some("localhost"))),
            "127.0.0.1 is a loopback address, which only a rule naming it allows, such as `--allow-tcp 127.0.0.1:6379`"
        );
        assert_eq!(
            denied(rules.decide(ip("::1"), 6379, Some("localhost"))),
            "::1 is a loopback address, which only a rule naming it allows, such as `--allow-tcp [::1]:6379`"
        );
        assert_eq!(
            denied(rules.decide(ip("::ffff:127.0.0.1"), 6379, Some("localhost"))),
            "127.0.0.1 is a loopback address, which only a rule naming it allows, such as `--allow-tcp 127.0.0.1:6379`"
        );
    }

    #[test]
    fn special_addresses_need_a_rule_inside_their_range() {
        let wide = list(&["0.0.0.0/0:*", "[::/0]:*"]);
        for (target, what) in [
            ("127.0.0.1", "a loopback address"),
            ("169.254.169.254", "the cloud metadata address"),
            ("169.254.3.4", "a link-local address"),
            ("0.0.0.0", "an unspecified (\"this network\") address"),
            ("::1", "a loopback address"),
            ("fe80::1", "a link-local address"),
            ("fd00:ec2::254", "the cloud metadata address"),
            ("64:ff9b::7f00:1", "a NAT64 address"),
            ("64:ff9b:1::7f00:1", "a local-use NAT64 address"),
            ("::ffff:0:7f00:1", "an IPv4-translated address"),
            ("2002:7f00:1::", "a 6to4 address"),
            ("2001:0:7f00:1::", "a Teredo address"),
        ] {
            let shown = canonical_ip(ip(target));
            let shown = bracketed(shown, 80);
            assert_eq!(
                denied(wide.decide(ip(target), 80, None)),
                format!(
                    "{} is {what}, which only a rule naming it allows, such as `--allow-tcp {shown}`",
                    canonical_ip(ip(target))
                ),
                "{target} must need an explicit rule"
            );
        }
        assert_eq!(
            wide.decide(ip("8.8.8.8"), 80, None),
            Decision::Allowed("0.0.0.0/0:*".into())
        );

        let explicit = list(&[
            "127.0.0.1:6379",
            "169.254.0.0/16:80",
            "[::1]:7000",
            "[2002::/16]:443",
        ]);
        for (target, port) in [
            ("127.0.0.1", 6379),
            ("::ffff:127.0.0.1", 6379),
            ("::1", 7000),
            ("169.254.3.4", 80),
            ("2002:7f00:1::", 443),
        ] {
            assert!(
                matches!(
                    explicit.decide(ip(target), port, None),
                    Decision::Allowed(_)
                ),
                "{target}"
            );
        }
        // The metadata address is its own range: a link-local rule is not
        // enough.
        assert!(matches!(
            explicit.decide(ip("169.254.169.254"), 80, None),
            Decision::Denied(Denial::Special { .. })
        ));
        let metadata = list(&["169.254.169.254:80"]);
        assert!(matches!(
            metadata.decide(ip("169.254.169.254"), 80, None),
            Decision::Allowed(_)
        ));
    }

    #[test]
    fn the_hosts_own_addresses_need_a_rule_naming_them() {
        let wide = list(&["0.0.0.0/0:*", "10.0.0.0/8:*", "*.example.com:*"]);
        assert_eq!(
            denied(wide.decide(ip("192.0.2.10"), 8080, None)),
            "192.0.2.10 is an address of this host's own interfaces, which only a rule naming it allows, such as `--allow-tcp 192.0.2.10:8080`"
        );
        // Resolved from an allowed name: still refused.
        assert!(matches!(
            wide.decide(ip("192.0.2.10"), 8080, Some("a.example.com")),
            Decision::Denied(Denial::LocalInterface { .. })
        ));
        assert_eq!(
            wide.decide(ip("192.0.2.11"), 8080, None),
            Decision::Allowed("0.0.0.0/0:*".into())
        );
        let named = list(&["192.0.2.10:8080"]);
        assert_eq!(
            named.decide(ip("192.0.2.10"), 8080, None),
            Decision::Allowed("192.0.2.10:8080".into())
        );
        assert!(matches!(
            named.decide(ip("192.0.2.10"), 8081, None),
            Decision::Denied(Denial::LocalInterface { .. })
        ));
    }

    #[test]
    fn an_empty_allowlist_allows_nothing() {
        let none = TcpAllowlist::default();
        assert!(none.is_empty());
        assert_eq!(none.describe(), "(none)");
        assert!(!none.may_resolve("example.com", 80));
        assert!(matches!(
            none.decide(ip("8.8.8.8"), 80, None),
            Decision::Denied(Denial::NoRule { .. })
        ));
    }

    #[test]
    fn only_name_rules_make_a_name_worth_resolving() {
        let rules = list(&["redis.internal:6379", "10.0.0.0/8:5432", "0.0.0.0/0:*"]);
        assert!(rules.may_resolve("redis.internal", 6379));
        // A network rule on the port is no reason to ask DNS about a name
        // the guest made up.
        assert!(!rules.may_resolve("anything.example", 5432));
        assert!(!rules.may_resolve("exfiltrated-data.attacker.example", 80));
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

    #[test]
    fn an_app_entry_inside_a_special_range_needs_an_operator_rule_inside_it() {
        let operator = list(&["0.0.0.0/0:*", "[::/0]:*"]);
        for entry in [
            "127.0.0.0/8:*",
            "127.0.0.1:6379",
            "169.254.169.254:80",
            "169.254.0.0/16:80",
            "[::1]:7000",
            "[2002::/16]:443",
        ] {
            assert_eq!(
                operator.narrow(vec![rule(entry)]).unwrap_err().to_string(),
                entry,
                "{entry} must not narrow 0.0.0.0/0"
            );
        }
        let loopback = list(&["127.0.0.0/8:*", "169.254.0.0/16:*"]);
        assert!(loopback.narrow(vec![rule("127.0.0.1:6379")]).is_ok());
        assert!(loopback.narrow(vec![rule("169.254.1.0/24:80")]).is_ok());
        // The metadata address is its own range inside link-local.
        assert!(loopback.narrow(vec![rule("169.254.169.254:80")]).is_err());
        // A wide entry under a wide operator rule still cannot reach
        // loopback at run time.
        let narrowed = operator.narrow(vec![rule("0.0.0.0/1:*")]).unwrap();
        assert!(matches!(
            narrowed.decide(ip("127.0.0.1"), 80, None),
            Decision::Denied(Denial::Special { .. })
        ));
    }

    #[test]
    fn a_narrowed_list_checks_every_address_against_the_operator_too() {
        // The operator allows one name; the app's entry is the same name.
        // An address the name resolves to must pass the operator's rules
        // as well as the app's.
        let operator = list(&["api.example.com:443", "10.0.0.0/8:443"]);
        let app = operator
            .narrow(vec![rule("api.example.com:443"), rule("10.1.0.0/16:443")])
            .unwrap();
        assert!(app.may_resolve("api.example.com", 443));
        assert_eq!(
            app.decide(ip("10.1.2.3"), 443, None),
            Decision::Allowed("10.1.0.0/16:443".into())
        );
        assert_eq!(
            denied(app.decide(ip("10.2.0.1"), 443, None)),
            "no rule allows 10.2.0.1:443"
        );
        // A fake operator list that lost its rules since the narrowing:
        // the app's entries alone are not enough.
        let stricter = list(&["api.example.com:443"]);
        let app = TcpAllowlist {
            operator: Some(Arc::new(stricter)),
            ..app
        };
        assert_eq!(
            denied(app.decide(ip("10.1.2.3"), 443, None)),
            "the operator's rules refuse it: no rule allows 10.1.2.3:443"
        );
    }
}
