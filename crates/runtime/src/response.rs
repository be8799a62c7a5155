//! The response a handler builds through the `response` interface.

use http::{HeaderMap, StatusCode};

/// What the handler asked the host to send.
#[derive(Debug, Clone)]
pub struct GuestResponse {
    /// The status code; `200` unless the handler set another.
    pub status: StatusCode,
    /// A custom reason phrase, when the handler gave one.
    pub reason: Option<String>,
    /// Headers set by the handler.
    pub headers: HeaderMap,
    /// The body; empty unless the handler set one.
    pub body: Vec<u8>,
    /// What the invocation cost, for the access log.
    pub stats: InvocationStats,
}

/// What one invocation cost, for the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvocationStats {
    /// Creating the instance from the pre-instantiated component.
    pub instantiate: std::time::Duration,
    /// Running `handle`, host calls included.
    pub execute: std::time::Duration,
    /// The largest linear memory the instance reached, in bytes.
    pub peak_memory: u64,
    /// Outbound TCP connections opened.
    pub tcp_connections: u32,
    /// Outbound TCP connections the policy refused.
    pub tcp_denied: u32,
}

impl Default for GuestResponse {
    fn default() -> Self {
        GuestResponse {
            status: StatusCode::OK,
            reason: None,
            headers: HeaderMap::new(),
            body: Vec::new(),
            stats: InvocationStats::default(),
        }
    }
}
