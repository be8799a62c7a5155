//! A route that publishes its request's body to a topic (`publish_to`),
//! so that a client can feed a pipeline over HTTP. No instance runs: the
//! body is read whole under the route's `max_request_body` and `timeout`,
//! then published on the host's broker with the request's content type
//! and its id as metadata (`request-id`).
//!
//! - Published: `202 Accepted` with `{"id", "topic", "subscriptions"}`
//!   (`subscriptions` is 0 when no one listens: the message is counted as
//!   unrouted, not an error).
//! - A subscriber's queue stayed full for the broker's wait, or the NATS
//!   server the broker is bridged to is down: `503` with `Retry-After: 1`;
//!   the message was not published anywhere.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serverless_config::PublishRoute;
use serverless_messaging::{Broker, Message, Topic};
use serverless_router::RouteMatch;

use super::refusal::Refusal;
use super::{RequestBody, Served, Stats, full};
use crate::routes::Target;

/// A loaded `publish_to` route.
pub(crate) struct Publisher {
    name: Arc<str>,
    route: PublishRoute,
    broker: Broker,
}

impl Publisher {
    /// Publishes `route`'s requests on `broker`.
    pub(crate) fn new(route: PublishRoute, broker: Broker) -> Publisher {
        Publisher {
            name: Arc::from(route.name.as_str()),
            route,
            broker,
        }
    }

    /// The route's name, for logs and metrics.
    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The topic it publishes to.
    pub(crate) fn topic(&self) -> &Topic {
        &self.route.topic
    }

    /// Its body limit.
    pub(crate) fn max_request_body(&self) -> u64 {
        self.route.max_request_body
    }

    /// Reads the body and publishes it.
    pub(super) async fn publish<B: RequestBody>(
        &self,
        request: Request<B>,
        found: RouteMatch<'_, Target>,
        request_id: &str,
    ) -> Result<Served, Refusal> {
        let (parts, body) = request.into_parts();
        let limit = usize::try_from(self.route.max_request_body).unwrap_or(usize::MAX);
        let read = tokio::time::timeout(self.route.timeout, Limited::new(body, limit).collect());
        let bytes: Bytes = match read.await {
            Err(_elapsed) => return Err(Refusal::BodyTimedOut),
            Ok(Err(error)) if error.is::<LengthLimitError>() => {
                super::refusal::log_too_large(&self.name, request_id, self.route.max_request_body);
                return Err(Refusal::TooLarge);
            }
            Ok(Err(_)) => return Err(Refusal::BodyRead),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let bytes_in = bytes.len() as u64;
        let mut message = Message::new(self.route.topic.clone(), bytes);
        message.content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        message
            .metadata
            .push(("request-id".to_owned(), request_id.to_owned()));
        let published = match self.broker.publish(message).await {
            Ok(published) => published,
            Err(error) => {
                tracing::warn!(
                    app = &*self.name,
                    request_id,
                    topic = %self.route.topic,
                    "refused: {error}"
                );
                return Err(match error {
                    serverless_messaging::PublishError::Full { .. } => Refusal::TopicFull,
                    serverless_messaging::PublishError::Unavailable(_) => Refusal::BrokerDown,
                    serverless_messaging::PublishError::TooLarge(_) => Refusal::TooLarge,
                });
            }
        };
        tracing::info!(
            app = &*self.name,
            request_id,
            topic = %self.route.topic,
            message = %published.id,
            subscriptions = ?published.subscriptions,
            "published"
        );
        let body = serde_json::json!({
            "id": published.id.to_string(),
            "topic": self.route.topic.as_str(),
            "subscriptions": published.subscriptions,
        });
        let mut response = Response::new(full(format!("{body}\n")));
        *response.status_mut() = StatusCode::ACCEPTED;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Served {
            response,
            app: self.name.clone(),
            route: Arc::from(found.pattern.as_str()),
            bytes_in: Some(bytes_in),
            stats: Stats::Published,
        })
    }
}

/// The `503` of a publish that found a subscriber's queue full.
pub(super) fn topic_full() -> Response<serverless_runtime::ResponseBody> {
    unavailable(b"busy: the topic's subscribers are not keeping up, retry shortly\n")
}

/// The `503` of a publish while the NATS server is down.
pub(super) fn broker_down() -> Response<serverless_runtime::ResponseBody> {
    unavailable(b"service unavailable: the message broker is not reachable, retry shortly\n")
}

fn unavailable(body: &'static [u8]) -> Response<serverless_runtime::ResponseBody> {
    let mut response = Response::new(full(Bytes::from_static(body)));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
