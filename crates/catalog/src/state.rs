//! Opening the state directory and its catalog.
//!
//! The directory is created readable by its owner only (0700), and so is
//! the database file (0600): it holds token hashes and the audit log. The
//! database runs in WAL mode with `synchronous=FULL`, so that a committed
//! transaction survives a crash or a power cut, and an uncommitted one
//! leaves no trace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::CatalogError;

/// The catalog's file in the state directory.
const CATALOG_FILE: &str = "catalog.sqlite3";

/// The schema, one entry per version: what takes a catalog of the version
/// before to this one.
const MIGRATIONS: &[&str] = &[
    // 1: namespaces, tokens and the audit log.
    "CREATE TABLE namespaces (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        scopes TEXT NOT NULL,
        hash BLOB NOT NULL,
        description TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
     ) STRICT;
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        origin TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL
     ) STRICT;",
    // 2: apps and their versions.
    "CREATE TABLE apps (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        name TEXT NOT NULL,
        active_version INTEGER,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, name)
     ) STRICT;
     CREATE TABLE versions (
        namespace TEXT NOT NULL,
        app TEXT NOT NULL,
        version INTEGER NOT NULL,
        digest TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, app, version),
        FOREIGN KEY (namespace, app) REFERENCES apps(namespace, name)
     ) STRICT;",
    // 3: the route prefix each namespace's apps live under, and each
    // version's routes (`METHODS PATH`, one a line) to check them against.
    "ALTER TABLE namespaces ADD COLUMN route_prefix TEXT;
     ALTER TABLE versions ADD COLUMN routes TEXT NOT NULL DEFAULT '';",
];

/// An open state directory.
pub struct StateDir {
    pub(crate) path: PathBuf,
    pub(crate) database: PathBuf,
    pub(crate) connection: Connection,
    blobs: crate::blobs::Blobs,
}

impl StateDir {
    /// Opens the state directory at `path`, creating it and its catalog
    /// when missing and bringing the schema up to date.
    pub fn open(path: &Path) -> Result<StateDir, CatalogError> {
        let directory = |error| CatalogError::Directory {
            path: path.to_owned(),
            error,
        };
        create_private_dir(path).map_err(directory)?;
        let database = path.join(CATALOG_FILE);
        let db = |error| CatalogError::Database {
            path: database.clone(),
            error,
        };
        let connection = Connection::open(&database).map_err(db)?;
        restrict_file(&database).map_err(directory)?;
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(db)?;
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CatalogError::Invalid(format!(
                "catalog {}: the file system does not support WAL mode (journal_mode is {mode}); put the state directory on a local disk",
                database.display()
            )));
        }
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(db)?;
        let mut state = StateDir {
            blobs: crate::blobs::Blobs::open(path)?,
            path: path.to_owned(),
            database,
            connection,
        };
        state.migrate()?;
        Ok(state)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored components.
    pub fn blobs(&self) -> &crate::blobs::Blobs {
        &self.blobs
    }

    /// [`StateDir::db_error`] as a closure that owns what it needs.
    pub(crate) fn db_error_fn(&self) -> impl Fn(rusqlite::Error) -> CatalogError + use<> {
        let path = self.database.clone();
        move |error| CatalogError::Database {
            path: path.clone(),
            error,
        }
    }

    /// A failure of the catalog database, named by its file.
    pub(crate) fn db_error(&self, error: rusqlite::Error) -> CatalogError {
        CatalogError::Database {
            path: self.database.clone(),
            error,
        }
    }

    /// Runs `change` in one write transaction: all of it is committed, or
    /// none of it.
    pub(crate) fn write<T>(
        &mut self,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let database = self.database.clone();
        let db = |error| CatalogError::Database {
            path: database.clone(),
            error,
        };
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let value = change(&transaction)?;
        transaction.commit().map_err(db)?;
        Ok(value)
    }

    /// Applies the migrations the catalog has not had, each in its own
    /// transaction with its version.
    fn migrate(&mut self) -> Result<(), CatalogError> {
        let known = MIGRATIONS.len() as i64;
        let found: i64 = self
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|error| self.db_error(error))?;
        if found > known {
            return Err(CatalogError::NewerSchema {
                path: self.database.clone(),
                found,
                known,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let version = index as i64 + 1;
            self.write(|transaction| {
                transaction
                    .execute_batch(migration)
                    .and_then(|()| transaction.pragma_update(None, "user_version", version))
                    .map_err(|error| {
                        CatalogError::Invalid(format!(
                            "catalog migration to version {version} failed: {error}"
                        ))
                    })
            })?;
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, for the catalog's timestamps.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

/// Creates `path` (and its parents) readable by its owner only; an
/// existing directory is left as it is.
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Makes `file` readable and writable by its owner only.
fn restrict_file(file: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_state_directory_is_private_and_reopens_at_the_same_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        drop(StateDir::open(&path).unwrap());
        let state = StateDir::open(&path).unwrap();
        let version: i64 = state
            .connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o700);
            assert_eq!(mode(&path.join(CATALOG_FILE)), 0o600);
        }
    }

    #[test]
    fn a_catalog_from_a_newer_host_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state
            .connection
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(state);
        let error = StateDir::open(dir.path()).err().unwrap().to_string();
        assert!(
            error.ends_with("has schema version 99; this host knows up to 3: upgrade the host"),
            "{error}"
        );
    }

    #[test]
    fn a_failed_change_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDir::open(dir.path()).unwrap();
        let result: Result<(), CatalogError> = state.write(|transaction| {
            transaction
                .execute(
                    "INSERT INTO namespaces (name, created_at) VALUES ('a', 1)",
                    [],
                )
                .unwrap();
            Err(CatalogError::Invalid("stop".to_owned()))
        });
        assert!(result.is_err());
        let count: i64 = state
            .connection
            .query_row("SELECT count(*) FROM namespaces", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }
}
