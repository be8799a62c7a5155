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
//!   gap is announced as a comment) and never holds a publisher.

use std::convert::Infallible;
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

/// Answers `/publish/...` and `/subscribe/...`; `None` for other paths.
pub(crate) async fn answer_tap(
    broker: &Broker,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<AdminBody>, Request<hyper::body::Incoming>> {
    let path = request.uri().path().to_owned();
    if let Some(topic) = path.strip_prefix("/publish/") {
        if request.method() != Method::POST {
            return Ok(plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST the message's body to /publish/TOPIC".to_owned(),
            ));
        }
        let topic = match Topic::new(topic) {
            Ok(topic) => topic,
            Err(error) => return Ok(plain(StatusCode::BAD_REQUEST, error.to_string())),
        };
        return Ok(publish(broker, topic, request).await);
    }
    if let Some(pattern) = path.strip_prefix("/subscribe/") {
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
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
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
            tracing::info!(%topic, message = %published.id, subscriptions = published.subscriptions, "published from the admin listener");
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

/// A body fed by a channel.
struct Stream(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(context)
            .map(|chunk| chunk.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

fn subscribe(broker: &Broker, pattern: TopicPattern) -> Response<AdminBody> {
    let dropped = Arc::new(AtomicU64::new(0));
    let mut subscription = broker.subscribe_lossy(
        &format!("admin tap {pattern}"),
        pattern.clone(),
        dropped.clone(),
    );
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let hello = format!(": subscribed to {pattern}\n\n");
        if sender.send(Bytes::from(hello)).await.is_err() {
            return;
        }
        let mut reported = 0;
        while let Some(delivery) = subscription.next().await {
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
    let mut response = Response::new(Stream(receiver).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}
