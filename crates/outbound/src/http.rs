//! `--allow-http` rules: a scheme plus the same host and port forms as
//! `--allow-tcp`, checked by the same engine.

use std::fmt;
use std::str::FromStr;

use crate::allowlist::{TcpRule, describe_rules, first_uncovered};
use crate::local::LocalInterfaces;
use crate::policy::TcpAllowlist;

/// The forms an HTTP rule may take, shown with every parse error.
pub const ACCEPTED_HTTP_FORMS: &str = "accepted forms: `http://127.0.0.1:8080`, `https://api.example.com`, \
     `https://*.example.com:443`, `*://backend.internal:*`, `http://10.0.0.0/8:8000-8999`, `http://[::1]:8080`; \
     the scheme is http, https or *, the port N, N-M or * (default 80 for http, 443 for https)";

/// Which schemes a rule allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schemes {
    Http,
    Https,
    Both,
}

/// One `--allow-http` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRule {
    text: String,
    schemes: Schemes,
    destination: TcpRule,
}

/// An HTTP rule that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{rule}`: {reason}; {ACCEPTED_HTTP_FORMS}")]
pub struct HttpRuleError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for HttpRule {
    type Err = HttpRuleError;

    fn from_str(text: &str) -> Result<HttpRule, HttpRuleError> {
        let fail = |reason: String| HttpRuleError {
            rule: text.to_owned(),
            reason,
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            fail("the rule has no scheme; start it with `http://`, `https://` or `*://`".into())
        })?;
        let schemes = match scheme.to_ascii_lowercase().as_str() {
            "http" => Schemes::Http,
            "https" => Schemes::Https,
            "*" => Schemes::Both,
            other => {
                return Err(fail(format!(
                    "`{other}` is not a scheme; use http, https or *"
                )));
            }
        };
        let (host, port) = match rest.strip_prefix('[') {
            Some(bracketed) => {
                let (inside, after) = bracketed.split_once(']').ok_or_else(|| {
                    fail("an IPv6 address opened with `[` is not closed with `]`".into())
                })?;
                match after.strip_prefix(':') {
                    Some(port) => (format!("[{inside}]"), Some(port)),
                    None if after.is_empty() => (format!("[{inside}]"), None),
                    None => {
                        return Err(fail(
                            "a rule names a scheme, host and port only; remove the path".into(),
                        ));
                    }
                }
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (rest.to_owned(), None),
            },
        };
        // A `/` may only introduce a CIDR prefix length (inside the
        // brackets for IPv6, `[fd00::/8]`); anything else is a path, which
        // rules do not take.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let cidr_only = bare.split_once('/').is_none_or(|(_, prefix)| {
            !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit())
        });
        let clean = |text: &str| !text.contains(['?', '#']);
        if !cidr_only || !clean(&host) || port.is_some_and(|p| p.contains(['/', '?', '#'])) {
            return Err(fail(
                "a rule names a scheme, host and port only; remove the path".into(),
            ));
        }
        let authority = match (port, schemes) {
            (Some(port), _) => format!("{host}:{port}"),
            (None, Schemes::Http) => format!("{host}:80"),
            (None, Schemes::Https) => format!("{host}:443"),
            (None, Schemes::Both) => {
                return Err(fail(
                    "`*://` needs a port, such as `*://backend.internal:8080` or `:*`".into(),
                ));
            }
        };
        let destination = authority.parse::<TcpRule>().map_err(|e| fail(e.reason))?;
        Ok(HttpRule {
            text: text.to_owned(),
            schemes,
            destination,
        })
    }
}

impl HttpRule {
    fn allows_scheme(&self, https: bool) -> bool {
        matches!(
            (self.schemes, https),
            (Schemes::Both, _) | (Schemes::Http, false) | (Schemes::Https, true)
        )
    }

    /// Whether every request this rule allows is allowed by `wider`.
    pub fn is_covered_by(&self, wider: &HttpRule) -> bool {
        let schemes = wider.schemes == Schemes::Both || wider.schemes == self.schemes;
        schemes && self.destination.is_covered_by(&wider.destination)
    }
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The HTTP rules of one app. Empty means no outbound request at all.
#[derive(Clone, Debug, Default)]
pub struct HttpAllowlist {
    rules: Vec<HttpRule>,
    /// When these are an app's entries: the operator's rules, which every
    /// destination must pass as well.
    operator: Option<Box<HttpAllowlist>>,
    /// The local interfaces the TCP lists of [`Self::for_scheme`] use;
    /// the machine's own when `None`.
    local: Option<LocalInterfaces>,
}

impl HttpAllowlist {
    /// An allowlist of these rules.
    pub fn new(rules: Vec<HttpRule>) -> HttpAllowlist {
        HttpAllowlist {
            rules,
            operator: None,
            local: None,
        }
    }

    /// The same rules with another list of local addresses (tests).
    pub fn with_local_interfaces(mut self, local: LocalInterfaces) -> HttpAllowlist {
        if let Some(operator) = self.operator.take() {
            self.operator = Some(Box::new(operator.with_local_interfaces(local.clone())));
        }
        self.local = Some(local);
        self
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, as written.
    pub fn rules(&self) -> &[HttpRule] {
        &self.rules
    }

    /// The rules joined for messages, or `(none)`.
    pub fn describe(&self) -> String {
        describe_rules(&self.rules)
    }

    /// The destinations allowed for one scheme, as a TCP allowlist: the
    /// same name, address and special-range checks then apply.
    /// For an app's narrowed rules, the result checks every address
    /// against the operator's rules for that scheme too.
    pub fn for_scheme(&self, https: bool) -> TcpAllowlist {
        let own: Vec<TcpRule> = self
            .rules
            .iter()
            .filter(|rule| rule.allows_scheme(https))
            .map(|rule| rule.destination.clone())
            .collect();
        let list = match &self.operator {
            None => TcpAllowlist::new(own),
            // `narrow` checked every entry against the operator's rules of
            // its schemes; an entry uncovered for one scheme (impossible
            // after that check) would allow nothing there.
            Some(operator) => operator.for_scheme(https).narrow(own).unwrap_or_default(),
        };
        match &self.local {
            Some(local) => list.with_local_interfaces(local.clone()),
            None => list,
        }
    }

    /// Narrows these (the operator's) rules to an app's entries, each of
    /// which must be covered by one operator rule; returns the first entry
    /// that is not.
    pub fn narrow(&self, entries: Vec<HttpRule>) -> Result<HttpAllowlist, HttpRule> {
        if let Some(uncovered) = first_uncovered(&entries, &self.rules, HttpRule::is_covered_by) {
            return Err(uncovered.clone());
        }
        Ok(HttpAllowlist {
            rules: entries,
            operator: Some(Box::new(self.clone())),
            local: self.local.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decision;
    use std::net::IpAddr;

    fn rule(text: &str) -> HttpRule {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reason(text: &str) -> String {
        text.parse::<HttpRule>().unwrap_err().reason
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn rules_take_a_scheme_host_and_optional_port() {
        for text in [
            "http://127.0.0.1:8080",
            "https://api.example.com",
            "https://*.example.com:443",
            "*://backend.internal:*",
            "http://10.0.0.0/8:8000-8999",
            "http://[::1]:8080",
            "http://[fd00::/8]:443",
            "https://[fd00::/8]",
            "HTTP://Example.com",
        ] {
            rule(text);
        }
        let list = HttpAllowlist::new(vec![
            rule("https://api.example.com"),
            rule("http://web.internal"),
        ]);
        assert!(list.for_scheme(true).may_resolve("api.example.com", 443));
        assert!(!list.for_scheme(true).may_resolve("api.example.com", 80));
        assert!(!list.for_scheme(false).may_resolve("api.example.com", 443));
        assert!(list.for_scheme(false).may_resolve("web.internal", 80));
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        assert_eq!(
            reason("api.example.com:443"),
            "the rule has no scheme; start it with `http://`, `https://` or `*://`"
        );
        assert_eq!(
            reason("ftp://x:21"),
            "`ftp` is not a scheme; use http, https or *"
        );
        assert_eq!(
            reason("*://x"),
            "`*://` needs a port, such as `*://backend.internal:8080` or `:*`"
        );
        assert_eq!(
            reason("http://x:80/path"),
            "a rule names a scheme, host and port only; remove the path"
        );
        assert_eq!(
            reason("https://x/path"),
            "a rule names a scheme, host and port only; remove the path"
        );
        assert_eq!(
            reason("http://[::1]/p"),
            "a rule names a scheme, host and port only; remove the path"
        );
        assert_eq!(rule("http://10.0.0.0/8").to_string(), "http://10.0.0.0/8");
        assert_eq!(
            reason("http://[fd00::/8]/x"),
            "a rule names a scheme, host and port only; remove the path"
        );
        assert_eq!(
            reason("http://[fd00::/x]:80"),
            "a rule names a scheme, host and port only; remove the path"
        );
        assert_eq!(reason("http://x:0"), "`0` is not a port from 1 to 65535");
        assert_eq!(
            reason("http://127.1:80"),
            "`127.1` is not an IPv4 address in dotted-quad form; write all four parts in decimal, as in `127.0.0.1`"
        );
        let message = "nope".parse::<HttpRule>().unwrap_err().to_string();
        assert!(
            message.contains("accepted forms: `http://127.0.0.1:8080`"),
            "{message}"
        );
    }

    #[test]
    fn wildcard_schemes_hosts_and_ports_match() {
        let list = HttpAllowlist::new(vec![
            rule("*://*.internal:*"),
            rule("http://10.0.0.0/8:8000-8999"),
        ]);
        for https in [false, true] {
            assert!(list.for_scheme(https).may_resolve("api.internal", 1234));
        }
        let http = list.for_scheme(false);
        assert!(matches!(
            http.decide(ip("10.9.9.9"), 8080, None),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            list.for_scheme(true).decide(ip("10.9.9.9"), 8080, None),
            Decision::Denied(_)
        ));
        assert!(matches!(
            http.decide(ip("127.0.0.1"), 8080, None),
            Decision::Denied(_)
        ));
    }

    #[test]
    fn app_entries_must_narrow_the_operator_rules() {
        let operator = HttpAllowlist::new(vec![
            rule("*://*.example.com:*"),
            rule("http://127.0.0.1:8080"),
        ]);
        assert!(
            operator
                .narrow(vec![
                    rule("https://api.example.com"),
                    rule("http://127.0.0.1:8080")
                ])
                .is_ok()
        );
        for wider in [
            "https://example.com",
            "http://127.0.0.1:*",
            "*://api.other.com:443",
        ] {
            assert_eq!(
                operator.narrow(vec![rule(wider)]).unwrap_err().to_string(),
                wider
            );
        }
        let http_only = HttpAllowlist::new(vec![rule("http://a.test")]);
        assert!(http_only.narrow(vec![rule("https://a.test:80")]).is_err());
    }

    #[test]
    fn every_tcp_host_form_works_in_http_rules() {
        let list = HttpAllowlist::new(vec![rule("http://[fd00::/8]:443")])
            .with_local_interfaces(LocalInterfaces::fixed([]));
        assert_eq!(
            list.for_scheme(false).decide(ip("fd12::1"), 443, None),
            Decision::Allowed("[fd00::/8]:443".into())
        );
    }

    #[test]
    fn an_app_entry_cannot_unlock_what_the_operator_rules_keep_closed() {
        let operator = HttpAllowlist::new(vec![rule("*://0.0.0.0/0:*")])
            .with_local_interfaces(LocalInterfaces::fixed([]));
        for entry in ["http://127.0.0.0/8:*", "http://169.254.169.254:80"] {
            assert_eq!(
                operator.narrow(vec![rule(entry)]).unwrap_err().to_string(),
                entry
            );
        }
        let narrowed = operator.narrow(vec![rule("http://10.0.0.0/8:80")]).unwrap();
        let http = narrowed.for_scheme(false);
        assert!(matches!(
            http.decide(ip("10.1.1.1"), 80, None),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            narrowed.for_scheme(true).decide(ip("10.1.1.1"), 80, None),
            Decision::Denied(_)
        ));
    }
}
