//! The audit log: one record per change to the catalog, written in the
//! change's own transaction, so that a change and its record are both
//! there or both not. Records name tokens by id, never by secret.

use crate::state::now;
use crate::{CatalogError, StateDir};

/// Who makes a change, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A token's id, or for the offline commands `local:USER`.
    pub who: String,
    /// The client's address, or `cli` for the offline commands.
    pub origin: String,
}

impl Actor {
    /// The user running an offline command on the state directory.
    pub fn local() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
        Actor {
            who: format!("local:{user}"),
            origin: "cli".to_owned(),
        }
    }
}

/// One change, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its place in the log, from 1.
    pub seq: i64,
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// Who made it.
    pub actor: String,
    /// From where.
    pub origin: String,
    /// What was done, such as `token.create`.
    pub action: String,
    /// What it was done to, such as a token's id.
    pub target: String,
}

/// Writes one record in `transaction`.
pub(crate) fn record(
    transaction: &rusqlite::Transaction<'_>,
    actor: &Actor,
    action: &str,
    target: &str,
) -> Result<(), rusqlite::Error> {
    transaction
        .execute(
            "INSERT INTO audit (at, actor, origin, action, target) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![now(), actor.who, actor.origin, action, target],
        )
        .map(|_| ())
}

impl StateDir {
    /// The last `limit` records, oldest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditRecord>, CatalogError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT seq, at, actor, origin, action, target FROM
                   (SELECT * FROM audit ORDER BY seq DESC LIMIT ?1) ORDER BY seq",
            )
            .map_err(|error| self.db_error(error))?;
        let rows = statement
            .query_map([limit], |row| {
                Ok(AuditRecord {
                    seq: row.get(0)?,
                    at: row.get(1)?,
                    actor: row.get(2)?,
                    origin: row.get(3)?,
                    action: row.get(4)?,
                    target: row.get(5)?,
                })
            })
            .map_err(|error| self.db_error(error))?;
        rows.collect::<Result<_, _>>()
            .map_err(|error| self.db_error(error))
    }
}
