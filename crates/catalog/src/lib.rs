//! The state directory of a host (`host serve --state-dir`, and the
//! offline `host tokens` commands): an embedded SQLite catalog, written in
//! transactions that a crash leaves either done or undone.
//!
//! - [`StateDir`]: opening (and creating) the directory and its catalog,
//!   the schema's migrations.
//! - [`tokens`]: API tokens: random, shown once, stored as hashes, each
//!   with scopes and a namespace.
//! - [`audit`]: the record of every change: who, what, when, from where.
//! - [`blobs`]: components stored by SHA-256, checked whenever read.
//! - [`apps`]: apps and their versions: deploy, promote, roll back,
//!   delete.
//! - [`namespaces`]: tenants and the route prefixes they own.

pub mod apps;
pub mod audit;
pub mod blobs;
mod error;
pub mod namespaces;
mod state;
mod text;
pub mod tokens;

pub use error::CatalogError;
pub use state::StateDir;
pub use tokens::{Scope, Token, TokenInfo};
