//! `GET /hello` and `GET /hello/:name`: a greeting.

use serverless_wasm_sdk::{Handler, request, response};

struct Hello;

impl Handler for Hello {
    fn handle() {
        let name = request::param("name").unwrap_or_else(|| "world".to_owned());
        serverless_wasm_sdk::info!("greeting {name}");
        response::text(200, &format!("Hello, {name}!\n"));
    }
}

serverless_wasm_sdk::export_handler!(Hello);
