//! The subcommands, one file each with its arguments; what several share
//! is in [`common`].

pub(crate) mod apps;
pub(crate) mod client;
pub(crate) mod common;
pub(crate) mod compile;
pub(crate) mod login;
pub(crate) mod logs;
pub(crate) mod namespaces;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod services;
pub(crate) mod tokens;
pub(crate) mod topics;
