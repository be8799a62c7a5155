//! The gateway of the server-side-wasm pipeline, as a subscription
//! handler: every message on its topic is posted to the HTTP endpoint in
//! the `SINK_URL` environment variable, with its content type and an
//! `x-topic` header. The operator allows the endpoint with `--allow-http`.
//! An answer other than 2xx fails the delivery, so the subscription's
//! retry policy takes over.

use serverless_wasm_sdk::messaging::{Error, Message, Subscriber};

struct Gateway;

impl Subscriber for Gateway {
    fn handle(message: Message) -> Result<(), Error> {
        let sink = std::env::var("SINK_URL")
            .map_err(|_| Error::Other("SINK_URL is not set in the subscription's env".into()))?;
        let topic = message.topic().unwrap_or_default();
        let content_type = message.content_type();
        let status = serverless_wasm_sdk::http::post(
            &sink,
            Some(
                content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            ),
            &[("x-topic", &topic)],
            &message.data(),
        )
        .map_err(|error| Error::Connection(format!("posting to {sink}: {error}")))?;
        if !(200..300).contains(&status) {
            return Err(Error::Other(format!("{sink} answered {status}")));
        }
        serverless_wasm_sdk::debug!("forwarded a message on {topic} to {sink}");
        Ok(())
    }
}

serverless_wasm_sdk::export_subscriber!(Gateway);
