//! `GET /static/*`: serves the files of the folder mounted at `SITE_ROOT`
//! (default `/site`) through the standard library's `std::fs`
//! (`wasi:filesystem`).
//!
//! A folder answers with its `index.html`; a missing file is `404`; a path
//! with a `..` segment is refused with `400` (the host would not let it
//! leave the mount anyway).

use serverless_wasm_sdk::{Handler, request, response};

struct StaticFiles;

/// The content type for a file name, by extension.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

impl Handler for StaticFiles {
    fn handle() {
        let root = std::env::var("SITE_ROOT").unwrap_or_else(|_| "/site".to_owned());
        let rest = request::param("*").unwrap_or_default();
        if rest.split('/').any(|segment| segment == "..") {
            serverless_wasm_sdk::warn!("refused path traversal: {rest}");
            response::text(400, "refused: the path leaves the site\n");
            return;
        }
        let mut path = format!("{}/{rest}", root.trim_end_matches('/'));
        if std::fs::metadata(&path).is_ok_and(|meta| meta.is_dir()) {
            path = format!("{}/index.html", path.trim_end_matches('/'));
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                response::set_header("content-type", content_type(&path))
                    .unwrap_or_else(|e| panic!("content-type: {e}"));
                if let Err(error) = response::set_body(&bytes) {
                    panic!("cannot send {path}: {error}");
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                response::text(404, "not found\n");
            }
            Err(error) => {
                serverless_wasm_sdk::warn!("cannot read {path}: {error}");
                response::text(403, "forbidden\n");
            }
        }
    }
}

serverless_wasm_sdk::export_handler!(StaticFiles);
