//! The subscription handler of the messaging tests. Each message says
//! what to do:
//!
//! - `trap`: panics;
//! - `fail:WHY`: returns `other(WHY)`;
//! - `sleep:MS`: waits MS milliseconds, then posts as below;
//! - `ask:TEXT`: replies `TEXT` in upper case (a request);
//! - `forward:TOPIC:TEXT`: sends TEXT on TOPIC, posting the outcome;
//! - anything else: posted to `SINK_URL` with `x-topic` and
//!   `x-attempt-id` (the host's delivery id in its log lines is not
//!   visible to the guest, so the body is posted as it came).

use std::time::Duration;

use serverless_wasm_sdk::messaging::{self, Error, Message, Subscriber};

struct TestSubscriber;

fn post(topic: &str, body: &[u8]) -> Result<(), Error> {
    let sink = std::env::var("SINK_URL").map_err(|_| Error::Other("no SINK_URL".into()))?;
    let status =
        serverless_wasm_sdk::http::post(&sink, Some("text/plain"), &[("x-topic", topic)], body)
            .map_err(Error::Connection)?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Error::Other(format!("the sink answered {status}")))
    }
}

impl Subscriber for TestSubscriber {
    fn handle(message: Message) -> Result<(), Error> {
        let topic = message.topic().unwrap_or_default();
        let data = message.data();
        let text = String::from_utf8_lossy(&data).into_owned();
        if text == "trap" {
            panic!("asked to trap");
        }
        if let Some(why) = text.strip_prefix("fail:") {
            return Err(Error::Other(why.to_owned()));
        }
        if let Some(question) = text.strip_prefix("ask:") {
            return messaging::reply(&message, question.to_uppercase().as_bytes());
        }
        if let Some(rest) = text.strip_prefix("forward:") {
            let (to, body) = rest.split_once(':').unwrap_or((rest, ""));
            let outcome = match messaging::send(to, body.as_bytes()) {
                Ok(()) => "sent".to_owned(),
                Err(error) => format!("{error:?}"),
            };
            return post(&topic, format!("forward {to}: {outcome}").as_bytes());
        }
        if let Some(ms) = text.strip_prefix("sleep:") {
            let ms: u64 = ms.parse().unwrap_or(100);
            std::thread::sleep(Duration::from_millis(ms));
        }
        post(&topic, &data)
    }
}

serverless_wasm_sdk::export_subscriber!(TestSubscriber);
