//! The guests under `guests/rust/`, compiled to WebAssembly components.
//!
//! `build.rs` runs a nested `cargo build --target wasm32-wasip2 --release`
//! for every package under `guests/rust/` into this crate's `OUT_DIR` (adding the
//! target with rustup when it is missing). For each guest `NAME` this crate
//! exports `NAME_PATH`, the component file, and `NAME`, its bytes.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
