//! Counts of outbound attempts the policy refused, for the host's metrics,
//! kept by the runtime (each refusal is also logged with its app and
//! request).

use std::sync::atomic::{AtomicU64, Ordering};

/// Through which door a refused attempt came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedVia {
    /// `outbound-tcp.connect` of the handler world.
    OutboundTcp,
    /// An outgoing `wasi:http` request.
    OutboundHttp,
    /// A `wasi:sockets` connection.
    WasiSockets,
    /// A `wasi:messaging` send, request or reply outside the entry's
    /// `publish` rules.
    Messaging,
}

impl DeniedVia {
    /// Every door, for reporting.
    pub const ALL: [DeniedVia; 4] = [
        DeniedVia::OutboundTcp,
        DeniedVia::OutboundHttp,
        DeniedVia::WasiSockets,
        DeniedVia::Messaging,
    ];

    /// The name used in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DeniedVia::OutboundTcp => "outbound-tcp",
            DeniedVia::OutboundHttp => "outbound-http",
            DeniedVia::WasiSockets => "wasi-sockets",
            DeniedVia::Messaging => "messaging",
        }
    }

    fn index(self) -> usize {
        match self {
            DeniedVia::OutboundTcp => 0,
            DeniedVia::OutboundHttp => 1,
            DeniedVia::WasiSockets => 2,
            DeniedVia::Messaging => 3,
        }
    }
}

/// The refusals of one runtime, by door.
#[derive(Debug, Default)]
pub struct Denials([AtomicU64; 4]);

impl Denials {
    /// How many attempts through `via` were refused since the runtime
    /// started.
    pub fn total(&self, via: DeniedVia) -> u64 {
        self.0[via.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, via: DeniedVia) {
        self.0[via.index()].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_door_counts_apart() {
        let denials = Denials::default();
        denials.count(DeniedVia::OutboundTcp);
        denials.count(DeniedVia::OutboundTcp);
        denials.count(DeniedVia::WasiSockets);
        assert_eq!(denials.total(DeniedVia::OutboundTcp), 2);
        assert_eq!(denials.total(DeniedVia::OutboundHttp), 0);
        assert_eq!(denials.total(DeniedVia::WasiSockets), 1);
    }
}
