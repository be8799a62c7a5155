//! The handler world's path: the whole body is read before the request
//! takes a slot (within a host-wide budget of bytes being read), then
//! `handle` runs on it and what the guest set becomes the response.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use serverless_router::RouteMatch;
use serverless_runtime::{App, GuestResponse, IncomingRequest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::refusal::{Refusal, failed, log_too_large};
use super::{RequestBody, Served, Stats, full};
use crate::admission::Admitted;
use crate::routes::Target;

/// The host-wide budget of handler-world request bodies being read before
/// admission (`--max-pending-body-bytes`), taken chunk by chunk as they
/// arrive, so that many uploads at once cannot hold more than this in
/// memory.
pub(crate) struct BodyBudget {
    permits: Arc<Semaphore>,
    bytes: u64,
}

impl BodyBudget {
    /// A budget of `bytes` (at most what a semaphore can count).
    pub(crate) fn new(bytes: u64) -> BodyBudget {
        let permits = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(permits)),
            bytes,
        }
    }

    /// Takes `len` more bytes into `held`, without waiting; `false` when
    /// the budget does not have them.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, len: usize) -> bool {
        let mut left = len;
        while left > 0 {
            let piece = u32::try_from(left).unwrap_or(u32::MAX);
            let Ok(permit) = self.permits.clone().try_acquire_many_owned(piece) else {
                return false;
            };
            match held {
                Some(held) => held.merge(permit),
                None => *held = Some(permit),
            }
            left -= piece as usize;
        }
        true
    }
}

/// A handler-world body read whole, holding its share of the
/// [`BodyBudget`] until it is handed to the guest or the request ends.
pub(super) struct PendingBody {
    bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl PendingBody {
    /// The body, for the guest; its share of the budget is given back.
    pub(super) fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// Why reading a body stopped.
enum ReadError {
    TooLarge,
    Budget,
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads a handler-world request's whole body, at most the app's
/// `max_request_body`, within the app's `timeout`, each chunk taken from
/// the host-wide `budget` as it arrives.
pub(super) async fn read_body<B: RequestBody>(
    app: &App,
    body: B,
    request_id: &Arc<str>,
    budget: &BodyBudget,
) -> Result<PendingBody, Refusal> {
    let limit = app.max_request_body();
    let timeout = app.limits().timeout;
    let reading = async {
        let mut body = std::pin::pin!(body);
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0u64;
        let mut held = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| ReadError::Body(error.into()))?;
            // Trailers are not handed to handler-world guests.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total = total.saturating_add(data.len() as u64);
            if total > limit {
                return Err(ReadError::TooLarge);
            }
            if !budget.take(&mut held, data.len()) {
                return Err(ReadError::Budget);
            }
            chunks.push(data);
        }
        let bytes = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => {
                let mut whole = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
                for chunk in &chunks {
                    whole.extend_from_slice(chunk);
                }
                whole.freeze()
            }
        };
        Ok(PendingBody { bytes, _held: held })
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(pending)) => Ok(pending),
        Ok(Err(ReadError::TooLarge)) => {
            log_too_large(app.name(), request_id, limit);
            Err(Refusal::TooLarge)
        }
        Ok(Err(ReadError::Budget)) => {
            tracing::warn!(
                app = &**app.name(),
                request_id = &**request_id,
                "refused: the request bodies being read before admission hold the host's budget of {} bytes (--max-pending-body-bytes)",
                budget.bytes
            );
            Err(Refusal::BodyBudget)
        }
        Ok(Err(ReadError::Body(error))) => {
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
    found: RouteMatch<'_, Target>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_budget_is_taken_chunk_by_chunk_and_given_back() {
        let budget = BodyBudget::new(10);
        let mut first = None;
        assert!(budget.take(&mut first, 4));
        assert!(budget.take(&mut first, 2));
        let mut second = None;
        assert!(!budget.take(&mut second, 5), "6 of 10 are held");
        assert!(budget.take(&mut second, 4));
        drop(first);
        let mut third = None;
        assert!(budget.take(&mut third, 6));
        assert!(!budget.take(&mut third, 1));
        // A budget past what a semaphore counts is clamped, not a panic.
        let mut huge = None;
        assert!(BodyBudget::new(u64::MAX).take(&mut huge, 1 << 20));
    }
}
