//! Why a catalog operation failed.

use std::path::PathBuf;

/// A catalog operation that could not be done; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The state directory could not be created or used.
    #[error("state directory {}: {error}", path.display())]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The catalog database failed.
    #[error("catalog {}: {error}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        error: rusqlite::Error,
    },
    /// The catalog was written by a newer host.
    #[error("catalog {} has schema version {found}; this host knows up to {known}: upgrade the host", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A name, scope or token id that is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The operating system gave no random bytes.
    #[error("cannot get random bytes for a token: {0}")]
    Random(String),
    /// A stored component whose bytes no longer match its digest.
    #[error("stored component {} does not match its digest (expected {expected}, found {found}); deploy it again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The digest it is stored under.
        expected: String,
        /// The digest of its bytes now.
        found: String,
    },
    /// No app has this name in the namespace.
    #[error("namespace `{namespace}` has no app `{app}`")]
    UnknownApp {
        /// The namespace.
        namespace: String,
        /// The app's name.
        app: String,
    },
    /// The app has no such version (or it was pruned).
    #[error("app `{app}` has no version {version}; its versions are {known}")]
    UnknownVersion {
        /// The app's name.
        app: String,
        /// The version asked for.
        version: i64,
        /// The versions it has, for the message.
        known: String,
    },
    /// A change that policy forbids, such as a route outside the
    /// namespace's prefix.
    #[error("{0}")]
    Forbidden(String),
    /// A change that collides with what another namespace has.
    #[error("{0}")]
    Conflict(String),
    /// No token has this id.
    #[error("no token has the id `{0}`; `host tokens list` shows them")]
    UnknownToken(String),
}
