//! The host side of the interfaces a component imports, one file per
//! interface: the handler world's four, outbound `wasi:http`, and the one
//! `wasi:filesystem` function the host wraps (`symlink-at`), and the WASI
//! functions that open OS handles, wrapped to count them (`os_handles`).

pub(crate) mod filesystem;
pub(crate) mod log;
pub(crate) mod os_handles;
pub(crate) mod outbound_http;
pub mod outbound_tcp;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod response_body;
