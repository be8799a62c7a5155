//! `POST /tcp-echo`: sends the request body to the TCP echo backend named
//! by the `ECHO_ADDRESS` environment variable and answers with what comes
//! back. The operator must allow the backend with `--allow-tcp`.
//!
//! When the backend cannot be reached the answer is `502` with the reason,
//! for example `not-allowed`.

use std::io::{Read, Write};

use serverless_wasm_sdk::{Handler, outbound_tcp, request, response};

struct TcpEcho;

fn echo(address: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut connection = outbound_tcp::connect(address).map_err(|e| e.to_string())?;
    connection.write_all(body).map_err(|e| e.to_string())?;
    let mut reply = vec![0; body.len()];
    connection
        .read_exact(&mut reply)
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

impl Handler for TcpEcho {
    fn handle() {
        let Ok(address) = std::env::var("ECHO_ADDRESS") else {
            response::text(500, "ECHO_ADDRESS is not set in the app's env\n");
            return;
        };
        match echo(&address, &request::body()) {
            Ok(reply) => {
                if let Err(error) = response::set_body(&reply) {
                    panic!("cannot send the reply: {error}");
                }
            }
            Err(error) => {
                serverless_wasm_sdk::warn!("echo backend {address}: {error}");
                response::text(
                    502,
                    &format!("cannot use the echo backend at {address}: {error}\n"),
                );
            }
        }
    }
}

serverless_wasm_sdk::export_handler!(TcpEcho);
