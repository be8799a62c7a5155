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
}

impl Default for GuestResponse {
    fn default() -> Self {
        GuestResponse {
            status: StatusCode::OK,
            reason: None,
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }
}
