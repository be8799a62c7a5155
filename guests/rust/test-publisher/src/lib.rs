//! The publishing handler of the messaging tests: `POST /…?topic=T` sends
//! the body on T; with `&request=MS` it sends a request and waits up to
//! MS milliseconds for one reply, which it answers with. The outcome is
//! the response: `202 sent`, `200` and the reply, or the error as
//! `403` (permission-denied), `503` (connection), `504` (timeout) or
//! `500` (other), with the host's text.

use serverless_wasm_sdk::messaging::{self, Error};
use serverless_wasm_sdk::{Handler, request, response};

struct Publisher;

fn refused(error: Error) {
    let (status, text) = match error {
        Error::PermissionDenied(why) => (403, why),
        Error::Connection(why) => (503, why),
        Error::Timeout => (504, "timeout".to_owned()),
        Error::Other(why) => (500, why),
    };
    response::text(status, &format!("{text}\n"));
}

impl Handler for Publisher {
    fn handle() {
        let Some(topic) = request::query_param("topic") else {
            response::text(400, "?topic= is missing\n");
            return;
        };
        let body = request::body();
        match request::query_param("request") {
            Some(ms) => match messaging::request(&topic, &body, ms.parse().ok()) {
                Ok(replies) => {
                    let texts: Vec<String> = replies
                        .iter()
                        .map(|reply| String::from_utf8_lossy(&reply.data()).into_owned())
                        .collect();
                    response::text(200, &format!("{}\n", texts.join("\n")));
                }
                Err(error) => refused(error),
            },
            None => match messaging::send(&topic, &body) {
                Ok(()) => response::text(202, "sent\n"),
                Err(error) => refused(error),
            },
        }
    }
}

serverless_wasm_sdk::export_handler!(Publisher);
