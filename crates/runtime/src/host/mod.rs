//! The host side of the handler world, one file per WIT interface.

pub(crate) mod log;
pub mod outbound_tcp;
pub(crate) mod request;
pub(crate) mod response;
