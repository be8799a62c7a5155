//! `GET /env`: lists the environment the app was configured with, one
//! `NAME=value` line each, sorted by name, read through the standard
//! library (`wasi:cli/environment`). It logs what it listed, values
//! included: the host replaces the values that came from its own
//! environment (`from_env`) by `[redacted]` in the log.

use serverless_wasm_sdk::{Handler, response};

struct Env;

impl Handler for Env {
    fn handle() {
        let mut vars: Vec<(String, String)> = std::env::vars().collect();
        vars.sort();
        let body: String = vars
            .iter()
            .map(|(name, value)| format!("{name}={value}\n"))
            .collect();
        let listed: Vec<String> = vars
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println!(
            "listed {} environment variables: {}",
            vars.len(),
            listed.join(" ")
        );
        response::text(200, &body);
    }
}

serverless_wasm_sdk::export_handler!(Env);
