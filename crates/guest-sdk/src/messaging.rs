//! Messages: send them from any handler or service, and handle them in a
//! `[[subscriptions]]` entry.
//!
//! Sending needs a `publish` rule for the topic in the app's entry;
//! without one the host answers [`Error::PermissionDenied`] and logs the
//! rule to add.
//!
//! ```no_run
//! use serverless_wasm_sdk::messaging;
//!
//! messaging::send("telemetry", br#"{"celsius":21.5}"#).expect("sent");
//! let answers = messaging::request("prices.lookup", b"AAPL", Some(500)).expect("answered");
//! ```
//!
//! A subscription handler implements [`Subscriber`] and is exported with
//! [`export_subscriber!`]:
//!
//! ```no_run
//! use serverless_wasm_sdk::messaging::{self, Error, Message, Subscriber};
//!
//! struct Gateway;
//!
//! impl Subscriber for Gateway {
//!     fn handle(message: Message) -> Result<(), Error> {
//!         let reading = message.data();
//!         serverless_wasm_sdk::info!("{} bytes on {:?}", reading.len(), message.topic());
//!         Ok(())
//!     }
//! }
//!
//! serverless_wasm_sdk::export_subscriber!(Gateway);
//! ```

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "serverless-wasm:platform/subscriber",
        with: {
            "serverless-wasm:platform/log@0.1.0": crate::bindings::serverless_wasm::platform::log,
            "serverless-wasm:platform/outbound-tcp@0.1.0": crate::bindings::serverless_wasm::platform::outbound_tcp,
            "wasi:messaging/types@0.2.0-draft": generate,
            "wasi:messaging/producer@0.2.0-draft": generate,
            "wasi:messaging/request-reply@0.2.0-draft": generate,
            "wasi:messaging/incoming-handler@0.2.0-draft": generate,
        },
        pub_export_macro: true,
        export_macro_name: "export_subscriber",
        default_bindings_module: "serverless_wasm_sdk::messaging::bindings",
    });
}

/// Exports a [`Subscriber`] as the component's
/// `wasi:messaging/incoming-handler`.
pub use bindings::export_subscriber;
pub use bindings::exports::wasi::messaging::incoming_handler::Guest as Subscriber;
pub use bindings::wasi::messaging::request_reply::{self, RequestOptions};
pub use bindings::wasi::messaging::types::{Client, Error, Message, Metadata, MetadataError};
pub use bindings::wasi::messaging::{producer, types};

/// The name this SDK's client connects with, for the host's log.
const CLIENT_NAME: &str = "serverless-wasm-sdk";

/// Sends `data` on `topic`.
pub fn send(topic: &str, data: &[u8]) -> Result<(), Error> {
    send_message(topic, Message::new(data))
}

/// Sends `message` (with its content type and metadata) on `topic`.
pub fn send_message(topic: &str, message: Message) -> Result<(), Error> {
    let client = Client::connect(CLIENT_NAME)?;
    producer::send(&client, topic, message)
}

/// Sends `data` on `topic` as a request and waits for one reply, for at
/// most `timeout_ms` when given (otherwise as long as the app's timeout
/// allows).
pub fn request(topic: &str, data: &[u8], timeout_ms: Option<u32>) -> Result<Vec<Message>, Error> {
    let client = Client::connect(CLIENT_NAME)?;
    let options = RequestOptions::new();
    if let Some(timeout) = timeout_ms {
        options.set_timeout_ms(timeout);
    }
    request_reply::request(&client, topic, &Message::new(data), Some(options))
}

/// Answers `request` (a message that came with one) with `data`.
pub fn reply(request: &Message, data: &[u8]) -> Result<(), Error> {
    request_reply::reply(request, Message::new(data))
}
