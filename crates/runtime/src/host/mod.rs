//! The host side of the interfaces a component imports, one file per
//! interface: the handler world's four, and outbound `wasi:http`.

pub(crate) mod log;
pub(crate) mod outbound_http;
pub mod outbound_tcp;
pub(crate) mod request;
pub(crate) mod response;
