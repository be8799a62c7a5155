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
/// host resolves a name itself, and only when a name rule allows it, so
/// that a guest cannot make the host look up names of its choosing (and
/// send data out through DNS queries).
pub(crate) async fn allowed_addresses(
    allowlist: &TcpAllowlist,
    destination: &Destination,
) -> Result<Vec<SocketAddr>, Refusal> {
    let port = destination.port;
    let (candidates, name) = match &destination.host {
        DestinationHost::Ip(ip) => (vec![*ip], None),
        DestinationHost::Name(name) => {
            precheck(allowlist, destination)?;
            let resolved: Vec<_> = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|error| Refusal::Dns(format!("{name}: {error}")))?
                .map(|address| address.ip())
                .collect();
            if resolved.is_empty() {
                return Err(Refusal::Dns(format!("{name}: no addresses")));
            }
            (resolved, Some(name.as_str()))
        }
    };
    let mut allowed = Vec::new();
    let mut first_denial = None;
    for ip in candidates {
        match allowlist.decide(ip, port, name) {
            Decision::Allowed(_) => allowed.push(SocketAddr::new(ip, port)),
            Decision::Denied(why) => {
                first_denial.get_or_insert(why);
            }
        }
    }
    match first_denial {
        Some(why) if allowed.is_empty() => Err(Refusal::NotAllowed(why.to_string())),
        _ => Ok(allowed),
    }
}

/// What can be decided about `destination` without resolving it: an
/// address is decided in full; a name may go on to be resolved only if a
/// name rule allows it. Cheap enough to run before every outbound request,
/// pooled connection or not.
pub(crate) fn precheck(allowlist: &TcpAllowlist, destination: &Destination) -> Result<(), Refusal> {
    let port = destination.port;
    match &destination.host {
        DestinationHost::Ip(ip) => match allowlist.decide(*ip, port, None) {
            Decision::Allowed(_) => Ok(()),
            Decision::Denied(why) => Err(Refusal::NotAllowed(why.to_string())),
        },
        DestinationHost::Name(name) if allowlist.may_resolve(name, port) => Ok(()),
        DestinationHost::Name(_) => Err(Refusal::NotAllowed(format!(
            "no name rule allows {destination}; the host looks up only names that a name rule allows (rules: {})",
            allowlist.describe()
        ))),
    }
}
