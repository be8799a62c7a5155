//! What went wrong before or around the handler, and the response the
//! client gets for it: a status and a short generic body; the details go
//! to the log.

use bytes::Bytes;
use http::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serverless_runtime::{App, FailureKind, HandleError, HandleRefusal, ResponseBody};

use super::full;

/// Why a request got no answer from its handler, with the status the
/// client gets.
pub(super) enum Refusal {
    NotFound,
    MethodNotAllowed(String),
    /// A request with more than one `Host` header, or an HTTP/1.1 one
    /// without any.
    BadHost {
        /// Whether it is HTTP/1.1, where exactly one is required.
        http_1_1: bool,
    },
    BadPath,
    TooLarge,
    BodyRead,
    /// A handler-world body did not arrive within the app's timeout.
    BodyTimedOut,
    /// The handler-world bodies being read before admission hold the
    /// host-wide budget (`--max-pending-body-bytes`).
    BodyBudget,
    /// The guest failed, and how (for the log and metrics).
    HandlerFailed(FailureKind),
    TimedOut,
    Busy,
    /// The request's mounted folders did not fit in the host-wide budget
    /// of OS handles: a capacity problem, to be retried.
    NoHandles,
    /// The service a route leads to is not running or not accepting
    /// connections.
    ServiceDown,
    /// The service a route leads to broke the exchange or gave no
    /// response the host may pass on.
    BadGateway,
    /// A `publish_to` route found a subscriber's queue full.
    TopicFull,
    /// A `publish_to` route found the NATS server down.
    BrokerDown,
    /// A preview request (`serverless-preview`) that is not let through:
    /// the status and what its sender, the app's deployer, is told.
    Preview(StatusCode, String),
}

impl Refusal {
    /// The kind of guest failure to count in the metrics, if the guest
    /// failed at all.
    pub(super) fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            Refusal::HandlerFailed(kind) => Some(*kind),
            Refusal::TimedOut => Some(FailureKind::Deadline),
            Refusal::NoHandles => Some(FailureKind::Handles),
            _ => None,
        }
    }

    pub(super) fn into_response(self) -> Response<ResponseBody> {
        if let Refusal::Preview(status, message) = &self {
            let mut response = Response::new(full(Bytes::from(format!("{message}\n"))));
            *response.status_mut() = *status;
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return response;
        }
        if let Refusal::TopicFull = self {
            return super::publish::topic_full();
        }
        if let Refusal::BrokerDown = self {
            return super::publish::broker_down();
        }
        let (status, body) = match &self {
            Refusal::TopicFull | Refusal::BrokerDown => (StatusCode::SERVICE_UNAVAILABLE, "\n"),
            Refusal::Preview(..) => (StatusCode::INTERNAL_SERVER_ERROR, "\n"),
            Refusal::NotFound => (StatusCode::NOT_FOUND, "not found\n"),
            Refusal::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            Refusal::BadHost { http_1_1: true } => (
                StatusCode::BAD_REQUEST,
                "bad request: an HTTP/1.1 request needs exactly one Host header\n",
            ),
            Refusal::BadHost { http_1_1: false } => (
                StatusCode::BAD_REQUEST,
                "bad request: a request may have at most one Host header\n",
            ),
            Refusal::BadPath => (
                StatusCode::BAD_REQUEST,
                "bad request: the path is not valid percent-encoded UTF-8\n",
            ),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            Refusal::BodyRead => (
                StatusCode::BAD_REQUEST,
                "bad request: the body could not be read\n",
            ),
            Refusal::BodyTimedOut => (
                StatusCode::REQUEST_TIMEOUT,
                "request timeout: the body did not arrive in time\n",
            ),
            Refusal::HandlerFailed(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            }
            Refusal::TimedOut => (StatusCode::GATEWAY_TIMEOUT, "gateway timeout\n"),
            Refusal::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: too many requests in flight, retry shortly\n",
            ),
            Refusal::BodyBudget => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: too many request bodies being received, retry shortly\n",
            ),
            Refusal::NoHandles => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: too many files and sockets open, retry shortly\n",
            ),
            Refusal::ServiceDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable: the service behind this route is not accepting requests, retry shortly\n",
            ),
            Refusal::BadGateway => (StatusCode::BAD_GATEWAY, "bad gateway\n"),
        };
        let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Refusal::MethodNotAllowed(allow) = &self
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(ALLOW, value);
        }
        if let Refusal::Busy | Refusal::NoHandles | Refusal::BodyBudget | Refusal::ServiceDown =
            self
        {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Refusal::BodyTimedOut | Refusal::BodyBudget = self {
            // The rest of the body may still come; the connection cannot
            // carry another request (RFC 9110 15.5.9).
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Logs that a request body is past its app's limit (before a
/// [`Refusal::TooLarge`]).
pub(super) fn log_too_large(app: &str, request_id: &str, limit: u64) {
    tracing::info!(
        app,
        request_id,
        limit,
        "request body is larger than the app's limit"
    );
}

/// Logs why a request failed and picks what the client sees: `504` when
/// it ran out of time, `503` when the host's guests hold all the OS
/// handles they may, `500` otherwise.
pub(super) fn failed(app: &App, request_id: &str, error: &HandleError) -> Refusal {
    let message = error.to_string();
    let message = app.redact(&message);
    tracing::error!(
        app = &**app.name(),
        request_id,
        kind = error.kind().as_str(),
        "request failed: {message}"
    );
    if error.is_deadline() {
        Refusal::TimedOut
    } else if let HandleError::Handles(HandleRefusal::Host(_)) = error {
        Refusal::NoHandles
    } else {
        Refusal::HandlerFailed(error.kind())
    }
}
