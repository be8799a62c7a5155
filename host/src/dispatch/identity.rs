//! Who a request is: its id (the client's `x-request-id` when well formed,
//! else a fresh UUID), and the access record that closes it: one `access`
//! line and the invocation's entry for `host logs`.

use std::sync::Arc;
use std::time::Instant;

use serverless_runtime::InvocationStats;

use crate::invocations::Collecting;

/// The header that carries the request id on every response, and on the
/// request to a wasi:http component.
pub(super) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether an incoming `x-request-id` may be used as this request's id: 1
/// to 128 characters of letters, digits and `-_.:`, so that it is safe in
/// log lines and headers. Others are replaced by a fresh UUID.
fn is_well_formed_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The id of a request with `headers`: the client's when well formed, a
/// fresh UUID otherwise.
pub(super) fn request_id(headers: &http::HeaderMap) -> Arc<str> {
    match headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
    {
        Some(given) if is_well_formed_request_id(given) => given.into(),
        _ => uuid::Uuid::new_v4().to_string().into(),
    }
}

/// Everything the access line of one request says, but the guest's
/// figures.
pub(super) struct AccessRecord {
    /// Keeps the invocation's lines collected until the line is written.
    pub(super) collecting: Collecting,
    pub(super) request_id: Arc<str>,
    pub(super) app: Option<Arc<str>>,
    pub(super) route: Option<Arc<str>>,
    pub(super) method: http::Method,
    pub(super) path: String,
    pub(super) status: u16,
    pub(super) started: Instant,
    pub(super) bytes_in: Option<u64>,
    pub(super) bytes_out: Option<u64>,
}

impl AccessRecord {
    /// Writes the access line, then closes the invocation's log record.
    pub(super) fn emit(self, stats: Option<InvocationStats>) {
        tracing::info!(
            target: "access",
            request_id = &*self.request_id,
            app = self.app.as_deref().unwrap_or("-"),
            route = self.route.as_deref().unwrap_or("-"),
            method = self.method.as_str(),
            path = self.path,
            status = self.status,
            micros = self.started.elapsed().as_micros() as u64,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            instantiate_us = stats.map(|s| s.instantiate.as_micros() as u64),
            execute_us = stats.map(|s| s.execute.as_micros() as u64),
            peak_memory = stats.map(|s| s.peak_memory),
            tcp_connections = stats.map(|s| s.tcp_connections),
            tcp_denied = stats.map(|s| s.tcp_denied),
            "request"
        );
        self.collecting.finish(
            self.app.as_deref(),
            self.method.as_str(),
            &self.path,
            self.status,
            self.started.elapsed(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_bounded_request_ids_are_taken_from_the_client() {
        for good in ["abc", "0f8e-11:trace.1_x", &"a".repeat(128)] {
            assert!(is_well_formed_request_id(good), "{good}");
        }
        for bad in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "ünïcode",
            &"a".repeat(129),
        ] {
            assert!(!is_well_formed_request_id(bad), "{bad}");
        }
    }
}
