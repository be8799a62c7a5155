//! Write serverless-wasm handlers as plain core WebAssembly modules, against
//! the raw ABI the host offers under the import module `env` (the ABI of the
//! original 2018 serverless-wasm project).
//!
//! Build for `wasm32-unknown-unknown` as a `cdylib`. The host calls one
//! exported function taking and returning nothing: `handle`, unless the
//! app's config key `function` names another. There is no way to read the
//! request; a handler only logs, answers, opens TCP connections and reads
//! its app's `env` table.
//!
//! ```ignore
//! use serverless_wasm_legacy::{set_body, set_status};
//!
//! #[unsafe(no_mangle)]
//! pub extern "C" fn handle() {
//!     set_status(200, "OK");
//!     set_body(b"Hello, world!\n");
//! }
//! ```
//!
//! The imports exist only on WebAssembly, so everything but [`TcpError`] is
//! compiled for `target_arch = "wasm32"` alone: on other targets the crate
//! is nearly empty, which keeps `cargo check` of the workspace working.

mod error;

pub use error::TcpError;

#[cfg(target_arch = "wasm32")]
pub mod raw;

#[cfg(target_arch = "wasm32")]
mod api;

#[cfg(target_arch = "wasm32")]
pub use api::{TcpStream, db_get, log, set_body, set_header, set_status};

/// Reads a value of unknown length through a `db_get`-style call, which
/// copies as much as fits into the buffer and returns the full length, or a
/// negative number when there is no value. Kept apart from the import so
/// that the host can test it.
#[cfg(any(target_arch = "wasm32", test))]
fn fetch_value(mut call: impl FnMut(&mut [u8]) -> i64) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    loop {
        // Negative: absent. Too large for this target's memory: cannot be
        // held either.
        let length = usize::try_from(call(&mut buffer)).ok()?;
        if length <= buffer.len() {
            buffer.truncate(length);
            return Some(buffer);
        }
        // The value is longer than the buffer (the first call, or it grew
        // between calls): make room and ask again.
        buffer.resize(length, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::fetch_value;

    /// A `db_get` over a value that changes after each call.
    fn changing(values: &[&'static [u8]]) -> impl FnMut(&mut [u8]) -> i64 {
        let mut values = values.iter().copied();
        let mut last: &[u8] = b"";
        move |buffer: &mut [u8]| {
            if let Some(next) = values.next() {
                last = next;
            }
            let copied = buffer.len().min(last.len());
            buffer[..copied].copy_from_slice(&last[..copied]);
            i64::try_from(last.len()).expect("test values are small")
        }
    }

    #[test]
    fn asks_the_size_then_fetches() {
        let mut calls = Vec::new();
        let value = fetch_value(|buffer| {
            calls.push(buffer.len());
            let value = b"http://backend";
            let copied = buffer.len().min(value.len());
            buffer[..copied].copy_from_slice(&value[..copied]);
            14
        });
        assert_eq!(value.as_deref(), Some(&b"http://backend"[..]));
        assert_eq!(calls, [0, 14]);
    }

    #[test]
    fn absent_is_none() {
        assert_eq!(fetch_value(|_| -1), None);
    }

    #[test]
    fn empty_value_is_one_call() {
        let mut calls = 0;
        assert_eq!(
            fetch_value(|_| {
                calls += 1;
                0
            }),
            Some(Vec::new())
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_value_that_grew_is_fetched_again() {
        let value = fetch_value(changing(&[b"abc", b"abcdef", b"abcdefgh"]));
        assert_eq!(value.as_deref(), Some(&b"abcdefgh"[..]));
    }

    #[test]
    fn a_value_that_shrank_is_cut_to_its_length() {
        let value = fetch_value(changing(&[b"abcdef", b"ab"]));
        assert_eq!(value.as_deref(), Some(&b"ab"[..]));
    }
}
