//! The Rust guests, compiled to WebAssembly, and the hand-written WAT
//! guests, converted to binary.
//!
//! `build.rs` runs a nested `cargo build --release` into this crate's
//! `OUT_DIR` twice (adding each target with rustup when it is missing):
//! for wasm32-wasip2, every package under `guests/rust/` (components), and
//! for wasm32-unknown-unknown, every package under `guests/legacy/` (core
//! modules of the raw `env` ABI). It also converts every
//! `guests/legacy/wat/*.wat` to a binary module.
//!
//! For each guest package `NAME` this crate exports `NAME_PATH`, the
//! `.wasm` file, and `NAME`, its bytes (`HELLO`, `LEGACY_HELLO`, ...); for
//! each WAT file `STEM.wat`, `LEGACY_WAT_STEM_PATH` and `LEGACY_WAT_STEM`.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
