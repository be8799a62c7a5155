//! `GET /counter` and `GET /counter/*`: counts the requests for each path
//! in Redis (`INCR counter:PATH`) and answers with the new count.
//!
//! The Redis server is `REDIS_HOST`:`REDIS_PORT` from the app's env; the
//! operator must allow it with `--allow-tcp`. When Redis cannot be reached
//! the answer is `502` with the reason, for example `not-allowed`.

use std::io::{BufRead, BufReader, Write};

use serverless_wasm_sdk::{Handler, outbound_tcp, request, response};

struct RedisCounter;

/// Encodes a command as a RESP array of bulk strings.
fn resp_command(parts: &[&str]) -> Vec<u8> {
    let mut command = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        command.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        command.extend_from_slice(part.as_bytes());
        command.extend_from_slice(b"\r\n");
    }
    command
}

fn increment(address: &str, key: &str) -> Result<i64, String> {
    let mut connection = outbound_tcp::connect(address).map_err(|e| e.to_string())?;
    connection
        .write_all(&resp_command(&["INCR", key]))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(connection)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.trim_end().split_at_checked(1) {
        Some((":", number)) => number
            .parse()
            .map_err(|_| format!("Redis answered `{line}`")),
        Some(("-", message)) => Err(format!("Redis error: {message}")),
        _ => Err(format!("unexpected Redis reply `{}`", line.trim_end())),
    }
}

impl Handler for RedisCounter {
    fn handle() {
        let host = std::env::var("REDIS_HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
        let port = std::env::var("REDIS_PORT").unwrap_or_else(|_| "6379".to_owned());
        let address = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let key = format!("counter:{}", request::path());
        match increment(&address, &key) {
            Ok(count) => response::text(200, &format!("{count}\n")),
            Err(error) => {
                serverless_wasm_sdk::warn!("redis {address}: {error}");
                response::text(502, &format!("cannot use Redis at {address}: {error}\n"));
            }
        }
    }
}

serverless_wasm_sdk::export_handler!(RedisCounter);
