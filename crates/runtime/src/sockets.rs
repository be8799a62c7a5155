//! `wasi:sockets`, the standard-library side door to the network: the same
//! allowlist as `outbound-tcp` decides every TCP connect; binding and
//! listening only a service may, on what the operator's `--allow-listen`
//! rules (narrowed by its `listen` entries) allow; UDP is refused.
//!
//! The order of the decision: an ephemeral bind on the unspecified address
//! (what every connect does first) passes; a connect asks the connect
//! allowlist; a bind or listen asks the listen allowlist, which handlers do
//! not have; everything else (UDP) is refused. Each refusal is counted and
//! logged with the address and what would allow it.
//!
//! Guests reach `wasi:sockets` with addresses only (name lookup is off), so
//! only network rules can allow them; name rules apply to `outbound-tcp`,
//! where the host resolves the name itself.

use std::net::SocketAddr;
use std::sync::Arc;

use serverless_outbound::{Decision, TcpAllowlist};
use tracing::Level;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::denials::{Denials, DeniedVia};
use crate::stdio::GuestOutput;

/// The check `WasiCtxBuilder::socket_addr_check` runs for every address a
/// guest binds or connects to.
pub(crate) fn address_check(
    allowlist: Arc<TcpAllowlist>,
    listen: Option<Arc<TcpAllowlist>>,
    output: GuestOutput,
    denials: Arc<Denials>,
) -> impl Fn(SocketAddr, SocketAddrUse) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    move |address, purpose| {
        let allowed = match purpose {
            // Every connect first asks to bind an ephemeral port on the
            // unspecified address, as the kernel does implicitly; listening
            // is checked separately (`TcpListen`) and refused.
            SocketAddrUse::TcpBind if address.ip().is_unspecified() && address.port() == 0 => true,
            SocketAddrUse::TcpConnect => {
                match allowlist.decide(address.ip(), address.port(), None) {
                    Decision::Allowed(_) => true,
                    Decision::Denied(why) => {
                        denials.count(DeniedVia::WasiSockets);
                        output.host_note(
                            Level::WARN,
                            "wasi-sockets",
                            &format!("refused TCP connection to {address}: {why}"),
                        );
                        false
                    }
                }
            }
            // A listener was allowed when it was bound: whoever connects
            // to it may be accepted.
            SocketAddrUse::TcpAccept if listen.is_some() => true,
            SocketAddrUse::TcpBind | SocketAddrUse::TcpListen if listen.is_some() => {
                match listen
                    .as_deref()
                    .map(|listen| listen.decide(address.ip(), address.port(), None))
                {
                    Some(Decision::Allowed(_)) => true,
                    Some(Decision::Denied(why)) => {
                        denials.count(DeniedVia::WasiSockets);
                        // The policy's advice names the connect flag.
                        let why = why.to_string().replace("--allow-tcp", "--allow-listen");
                        output.host_note(
                            Level::WARN,
                            "wasi-sockets",
                            &format!(
                                "refused to listen on {address}: no --allow-listen rule, narrowed by the service's listen entries, allows it ({why})"
                            ),
                        );
                        false
                    }
                    None => false,
                }
            }
            other => {
                denials.count(DeniedVia::WasiSockets);
                output.host_note(
                    Level::WARN,
                    "wasi-sockets",
                    &format!(
                        "refused {other:?} on {address}: {}",
                        if listen.is_some() {
                            "services may not use UDP"
                        } else {
                            "handlers may not bind, listen or use UDP"
                        }
                    ),
                );
                false
            }
        };
        Box::pin(async move { allowed })
    }
}
