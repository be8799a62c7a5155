//! Outbound network policy: which destinations a handler may connect to.
//!
//! Nothing is allowed unless the operator says so with `--allow-tcp` rules
//! ([`TcpRule`]). A guest's destination is first parsed and normalised
//! ([`Destination`]): `127.1`, `2130706433`, `0x7f.0.0.1` and
//! `::ffff:127.0.0.1` all become `127.0.0.1` before any rule sees them. A
//! [`TcpAllowlist::decide`] then decides, for every address the host
//! resolves a name to, whether the connection may go ahead: the one
//! decision function that every door (outbound TCP, `wasi:sockets`,
//! outbound HTTP) calls, with its evaluation order in the `policy` module.
//! `--allow-http` rules ([`HttpRule`]) add a scheme and are checked by the
//! same engine.

mod allowlist;
mod destination;
mod http;
mod local;
mod policy;
mod special;

pub use allowlist::{AllowlistError, TcpRule};
pub use destination::{Destination, DestinationError, DestinationHost};
pub use http::{HttpAllowlist, HttpRule, HttpRuleError};
pub use local::{LocalInterfaces, REFRESH_AFTER};
pub use policy::{Decision, Denial, TcpAllowlist};
pub use special::special_use;
