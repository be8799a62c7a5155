//! The handler world's path: the whole body is read before the request
//! takes a slot, then `handle` runs on it and what the guest set becomes
//! the response.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serverless_router::RouteMatch;
use serverless_runtime::{App, GuestResponse, IncomingRequest};

use super::refusal::{Refusal, failed, log_too_large};
use super::{RequestBody, Served, Stats, full};
use crate::admission::Admitted;

/// Reads a handler-world request's whole body, at most the app's
/// `max_request_body`, within the app's `timeout`.
pub(super) async fn read_body<B: RequestBody>(
    app: &App,
    body: B,
    request_id: &Arc<str>,
) -> Result<Bytes, Refusal> {
    let limit = app.max_request_body();
    let timeout = app.limits().timeout;
    let collecting = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)).collect();
    match tokio::time::timeout(timeout, collecting).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            log_too_large(app.name(), request_id, limit);
            Err(Refusal::TooLarge)
        }
        Ok(Err(error)) => {
            tracing::info!(
                app = &**app.name(),
                request_id = &**request_id,
                "cannot read the request body: {error}"
            );
            Err(Refusal::BodyRead)
        }
        Err(_elapsed) => {
            tracing::info!(
                app = &**app.name(),
                request_id = &**request_id,
                "the request body did not arrive within the app's timeout of {timeout:?}"
            );
            Err(Refusal::BodyTimedOut)
        }
    }
}

/// Handler world: run `handle` on the body already read, send what it
/// built.
pub(super) async fn run_handler(
    app: &App,
    parts: http::request::Parts,
    body: Bytes,
    found: RouteMatch<'_, Arc<App>>,
    request_id: &Arc<str>,
    admitted: Admitted,
) -> Result<Served, Refusal> {
    let bytes_in = body.len() as u64;
    let route: Arc<str> = found.pattern.as_str().into();
    let incoming = IncomingRequest {
        request_id: request_id.clone(),
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        route: route.clone(),
        params: found.params,
    };
    // The admission slot is released once the instance's pool slot is.
    match app.handle(incoming, admitted).await {
        Ok(guest) => {
            let stats = Stats::Known(guest.stats);
            Ok(Served {
                response: into_http(guest),
                app: app.name().clone(),
                route,
                bytes_in: Some(bytes_in),
                stats,
            })
        }
        Err(error) => Err(failed(app, request_id, &error)),
    }
}

/// Builds the HTTP response from what a handler-world guest set.
fn into_http(guest: GuestResponse) -> http::Response<serverless_runtime::ResponseBody> {
    let mut response = http::Response::new(full(guest.body));
    *response.status_mut() = guest.status;
    *response.headers_mut() = guest.headers;
    if let Some(reason) = guest.reason
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes())
    {
        response.extensions_mut().insert(reason);
    }
    response
}
