//! Legacy-ABI sample: a core module that imports its memory (`env.memory`,
//! at least 18 pages) and talks to a TCP backend.
//!
//! `handle` reads the backend's `host:port` from the app's `env` table
//! under `/env/backend`, sends it a line, reads the same number of bytes
//! back (less if the backend closes first) and answers with them. It
//! answers 500 when the address is missing and 502 when the backend cannot
//! be reached or the exchange fails.
#![cfg(target_arch = "wasm32")]

use serverless_wasm_legacy::{TcpStream, db_get, set_body, set_header, set_status};

/// What the backend is sent; an echo server sends it back.
const GREETING: &[u8] = b"hello from serverless-wasm\n";

/// Sets the whole plain-text response.
fn respond(status: u16, reason: &str, body: &[u8]) {
    set_status(status, reason);
    set_header("Content-Type", "text/plain");
    set_body(body);
}

/// Sends [`GREETING`] and reads back as many bytes, or until the end of
/// the stream.
fn exchange(address: &str) -> Result<Vec<u8>, String> {
    let mut stream =
        TcpStream::connect(address).map_err(|e| format!("cannot reach {address}: {e}\n"))?;
    stream
        .write_all(GREETING)
        .map_err(|e| format!("cannot write to {address}: {e}\n"))?;
    let mut answer = Vec::with_capacity(GREETING.len());
    let mut chunk = [0u8; 256];
    while answer.len() < GREETING.len() {
        let wanted = (GREETING.len() - answer.len()).min(chunk.len());
        let read = stream
            .read(&mut chunk[..wanted])
            .map_err(|e| format!("cannot read from {address}: {e}\n"))?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    Ok(answer)
}

/// Relays [`GREETING`] through the backend at `/env/backend`.
#[unsafe(no_mangle)]
pub extern "C" fn handle() {
    let Some(address) = db_get("/env/backend") else {
        respond(
            500,
            "Internal Server Error",
            b"no /env/backend in the app's env\n",
        );
        return;
    };
    let address = String::from_utf8_lossy(&address);
    match exchange(&address) {
        Ok(answer) => {
            let mut body = b"backend answered: ".to_vec();
            body.extend_from_slice(&answer);
            respond(200, "OK", &body);
        }
        Err(message) => respond(502, "Bad Gateway", message.as_bytes()),
    }
}
