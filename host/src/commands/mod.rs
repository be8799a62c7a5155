//! The subcommands, one file each with its arguments; what several share
//! is in [`common`].

pub(crate) mod common;
pub(crate) mod compile;
pub(crate) mod logs;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod services;
pub(crate) mod tokens;
