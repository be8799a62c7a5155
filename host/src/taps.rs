//! The admin listener's doors into the broker, for debugging and for
//! feeding a pipeline by hand (`host publish`, `host subscribe`):
//!
//! - `POST /publish/TOPIC`: publishes the body (at most [`MAX_BODY`]),
//!   with its content type, as a `publish_to` route does: `202` with
//!   `{"id", "topic", "subscriptions"}`, `400` for a bad topic, `413`,
//!   `503` when a subscriber's queue stays full.
//! - `GET /subscribe/PATTERN`: the messages of the matching topics from
//!   now on, as server-sent events, one JSON object each: `id`, `topic`,
//!   `content_type`, `metadata`, and `data` (UTF-8) or `data_hex`. The
//!   tap is lossy: a client that does not keep up misses messages (each
//!   gap is announced as a comment) and never holds a publisher. It ends
//!   as soon as its client goes away.
//!
//! A request that carries an `Origin` header comes from a web page, not
//! from `host publish` or a script: it is refused (`403`), so that a page
//! the operator visits cannot publish through a loopback listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use serverless_messaging::{Broker, Message, Topic, TopicPattern};

use crate::admin::AdminBody;

/// The largest body `/publish` takes: 1 MiB.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// How many messages one tap's queue holds before it misses some.
const TAP_QUEUE: usize = 64;

/// How long a `/publish` body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<AdminBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, message: String) -> Response<AdminBody> {
    answer(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

fn not_allowed(allow: &'static str, message: &str) -> Response<AdminBody> {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, message.to_owned());
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Answers `/publish/...` and `/subscribe/...`; `None` for other paths.
pub(crate) async fn answer_tap(
    broker: &Broker,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<AdminBody>, Request<hyper::body::Incoming>> {
    let path = request.uri().path().to_owned();
    let tap = path.starts_with("/publish/") || path.starts_with("/subscribe/");
    if tap && request.headers().contains_key(http::header::ORIGIN) {
        return Ok(plain(
            StatusCode::FORBIDDEN,
            "requests from web pages (with an `Origin` header) may not publish or subscribe; use `host publish` or `host subscribe`".to_owned(),
        ));
    }
    if let Some(topic) = path.strip_prefix("/publish/") {
        if request.method() != Method::POST {
            return Ok(not_allowed(
                "POST",
                "POST the message's body to /publish/TOPIC",
            ));
        }
        let topic = match Topic::new(topic) {
            Ok(topic) => topic,
            Err(error) => return Ok(plain(StatusCode::BAD_REQUEST, error.to_string())),
        };
        return Ok(publish(broker, topic, request).await);
    }
    if let Some(pattern) = path.strip_prefix("/subscribe/") {
        if request.method() != Method::GET {
            return Ok(not_allowed(
                "GET",
                "GET /subscribe/PATTERN to follow topics",
            ));
        }
        let pattern = match TopicPattern::new(pattern) {
            Ok(pattern) => pattern,
            Err(error) => return Ok(plain(StatusCode::BAD_REQUEST, error.to_string())),
        };
        return Ok(subscribe(broker, pattern));
    }
    Err(request)
}

async fn publish(
    broker: &Broker,
    topic: Topic,
    request: Request<hyper::body::Incoming>,
) -> Response<AdminBody> {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await;
    let Ok(read) = read else {
        return plain(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        );
    };
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes"),
            );
        }
        Err(error) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {error}"),
            );
        }
    };
    let mut message = Message::new(topic.clone(), bytes);
    message.content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match broker.publish(message).await {
        Ok(published) => {
            tracing::info!(%topic, message = %published.id, subscriptions = ?published.subscriptions, "published from the admin listener");
            answer(
                StatusCode::ACCEPTED,
                "application/json",
                format!(
                    "{}\n",
                    serde_json::json!({
                        "id": published.id.to_string(),
                        "topic": topic.as_str(),
                        "subscriptions": published.subscriptions,
                    })
                ),
            )
        }
        Err(error) => {
            let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// A message as one event's JSON.
fn event(id: &str, message: &Message) -> serde_json::Value {
    let mut value = serde_json::json!({
        "id": id,
        "topic": message.topic.as_str(),
        "content_type": message.content_type,
        "metadata": message.metadata,
    });
    match std::str::from_utf8(&message.data) {
        Ok(text) => value["data"] = text.into(),
        Err(_) => {
            value["data_hex"] = message
                .data
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into()
        }
    }
    value
}

fn subscribe(broker: &Broker, pattern: TopicPattern) -> Response<AdminBody> {
    let dropped = Arc::new(AtomicU64::new(0));
    let mut subscription = broker.subscribe_lossy(
        &format!("admin tap {pattern}"),
        pattern.clone(),
        TAP_QUEUE,
        dropped.clone(),
    );
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let hello = format!(": subscribed to {pattern}\n\n");
        if sender.send(Bytes::from(hello)).await.is_err() {
            return;
        }
        let mut reported = 0;
        loop {
            // A client gone ends the tap at once, quiet topic or not.
            let delivery = tokio::select! {
                () = sender.closed() => return,
                delivery = subscription.next() => delivery,
            };
            let Some(delivery) = delivery else {
                return;
            };
            let missed = dropped.load(Ordering::Relaxed);
            if missed > reported {
                let note = format!(": {} messages were missed\n\n", missed - reported);
                reported = missed;
                if sender.send(Bytes::from(note)).await.is_err() {
                    return;
                }
            }
            let line = format!(
                "data: {}\n\n",
                event(&delivery.id.to_string(), &delivery.message)
            );
            if sender.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(crate::admin::ChannelBody(receiver).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serverless_messaging::BrokerSettings;

    #[tokio::test]
    async fn a_tap_whose_client_went_away_unsubscribes_on_a_quiet_topic() {
        let broker = Broker::new(BrokerSettings::default());
        let response = subscribe(&broker, TopicPattern::new("quiet").unwrap());
        assert_eq!(broker.depths().len(), 1);
        // The client reads the greeting, so the tap is waiting for
        // messages, then goes away.
        let mut body = response.into_body();
        let hello = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(hello, Bytes::from_static(b": subscribed to quiet\n\n"));
        tokio::task::yield_now().await;
        drop(body);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !broker.depths().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the tap outlived its client"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
