//! Process-wide counts of outbound attempts the policy refused, for the
//! host's metrics. Each refusal is also logged with its app and request.

use std::sync::atomic::{AtomicU64, Ordering};

static TCP: AtomicU64 = AtomicU64::new(0);
static HTTP: AtomicU64 = AtomicU64::new(0);
static SOCKETS: AtomicU64 = AtomicU64::new(0);

/// Through which door a refused attempt came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedVia {
    /// `outbound-tcp.connect` of the handler world.
    OutboundTcp,
    /// An outgoing `wasi:http` request.
    OutboundHttp,
    /// A `wasi:sockets` connection.
    WasiSockets,
}

impl DeniedVia {
    /// Every door, for reporting.
    pub const ALL: [DeniedVia; 3] = [
        DeniedVia::OutboundTcp,
        DeniedVia::OutboundHttp,
        DeniedVia::WasiSockets,
    ];

    /// The name used in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DeniedVia::OutboundTcp => "outbound-tcp",
            DeniedVia::OutboundHttp => "outbound-http",
            DeniedVia::WasiSockets => "wasi-sockets",
        }
    }

    fn counter(self) -> &'static AtomicU64 {
        match self {
            DeniedVia::OutboundTcp => &TCP,
            DeniedVia::OutboundHttp => &HTTP,
            DeniedVia::WasiSockets => &SOCKETS,
        }
    }

    /// How many attempts through this door were refused since the process
    /// started.
    pub fn total(self) -> u64 {
        self.counter().load(Ordering::Relaxed)
    }

    pub(crate) fn count(self) {
        self.counter().fetch_add(1, Ordering::Relaxed);
    }
}
