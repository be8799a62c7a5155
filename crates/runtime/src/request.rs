//! The request as the runtime hands it to a handler.

use std::sync::Arc;

use bytes::Bytes;

/// One HTTP request, already routed and with its body read.
#[derive(Debug, Clone)]
pub struct IncomingRequest {
    /// The id the host gave this request; it tags every log line.
    pub request_id: Arc<str>,
    /// The request method.
    pub method: http::Method,
    /// The path as received, still percent-encoded, without the query.
    pub path: String,
    /// The raw query string without `?`; empty when there is none.
    pub query: String,
    /// The request headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The route pattern that matched, for example `/users/:id`.
    pub route: Arc<str>,
    /// Decoded route parameters in pattern order.
    pub params: Vec<(String, String)>,
}
