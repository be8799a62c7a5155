//! Outbound network policy: which destinations a handler may connect to.
//!
//! Nothing is allowed unless the operator says so with `--allow-tcp` rules
//! ([`TcpRule`]). A guest's destination is first parsed and normalised
//! ([`Destination`]): `127.1`, `2130706433`, `0x7f.0.0.1` and
//! `::ffff:127.0.0.1` all become `127.0.0.1` before any rule sees them. A
//! [`TcpAllowlist`] then decides, for the name and for every address the
//! host resolves it to, whether the connection may go ahead; loopback,
//! link-local, unspecified and cloud metadata addresses need an IP rule
//! that names them. `--allow-http` rules ([`HttpRule`]) add a scheme and
//! are checked by the same engine.

#![warn(missing_docs)]

mod allowlist;
mod destination;
mod http;
mod special;

pub use allowlist::{AllowlistError, Decision, TcpAllowlist, TcpRule};
pub use destination::{Destination, DestinationError, DestinationHost};
pub use http::{HttpAllowlist, HttpRule, HttpRuleError};
pub use special::special_use;
