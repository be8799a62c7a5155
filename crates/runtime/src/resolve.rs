//! Resolving a destination and keeping only the addresses the policy
//! allows: shared by `outbound-tcp` and outbound `wasi:http`.

use std::net::SocketAddr;

use serverless_outbound::{Decision, Destination, DestinationHost, TcpAllowlist};

/// Why no address of a destination may be used.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Refusal {
    /// The policy allows none of them; the message names the rule that
    /// would have been needed.
    #[error("{0}")]
    NotAllowed(String),
    /// The name did not resolve.
    #[error("{0}")]
    Dns(String),
}

/// The addresses `destination` may be reached at, in resolver order. The
/// host resolves names itself, and only when some rule could allow the
/// result, so that a refused name never reaches the resolver.
pub(crate) async fn allowed_addresses(
    allowlist: &TcpAllowlist,
    destination: &Destination,
) -> Result<Vec<SocketAddr>, Refusal> {
    let port = destination.port;
    let (candidates, via) = match &destination.host {
        DestinationHost::Ip(ip) => (vec![*ip], None),
        DestinationHost::Name(name) => {
            if !allowlist.worth_resolving(name, port) {
                return Err(Refusal::NotAllowed(format!(
                    "no rule allows {destination} (rules: {})",
                    allowlist.describe()
                )));
            }
            let resolved: Vec<_> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|error| Refusal::Dns(format!("{name}: {error}")))?
                .map(|address| address.ip())
                .collect();
            if resolved.is_empty() {
                return Err(Refusal::Dns(format!("{name}: no addresses")));
            }
            (resolved, allowlist.name_rule(name, port).cloned())
        }
    };
    let mut allowed = Vec::new();
    let mut first_denial = None;
    for ip in candidates {
        match allowlist.check_address(ip, port, via.as_ref()) {
            Decision::Allowed(_) => allowed.push(SocketAddr::new(ip, port)),
            Decision::Denied(why) => {
                first_denial.get_or_insert(why);
            }
        }
    }
    if allowed.is_empty() {
        return Err(Refusal::NotAllowed(
            first_denial.unwrap_or_else(|| "no address allowed".to_owned()),
        ));
    }
    Ok(allowed)
}
