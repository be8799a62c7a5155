//! Apps and their versions. Every deploy of an app is a new version,
//! numbered from 1: a component (stored by digest in [`crate::blobs`]) and
//! its specification (routes, env, limits, outbound rules, as the host
//! validated them). A version is active at once or waits to be promoted;
//! a rollback makes an older version active again; old versions beyond
//! the app's kept count are deleted, never the active one. Each change is
//! one transaction with its audit record.

use crate::audit::{Actor, record};
use crate::state::now;
use crate::tokens::check_namespace;
use crate::{CatalogError, StateDir};

/// One version of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// From 1, one more than the app's newest.
    pub number: i64,
    /// Its component's SHA-256.
    pub digest: String,
    /// Its specification, as the host validated it.
    pub spec: String,
    /// Its routes, each `METHODS PATH`.
    pub routes: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// An app with its versions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// The namespace it belongs to.
    pub namespace: String,
    /// Its name in the namespace.
    pub name: String,
    /// The version that serves its routes, if one does.
    pub active: Option<i64>,
    /// Its versions, oldest first.
    pub versions: Vec<Version>,
}

impl AppRecord {
    /// The active version.
    pub fn active_version(&self) -> Option<&Version> {
        let active = self.active?;
        self.versions
            .iter()
            .find(|version| version.number == active)
    }
}

/// What a deploy asks for.
pub struct Deploy<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// The app's name.
    pub app: &'a str,
    /// The stored component's digest.
    pub digest: &'a str,
    /// The validated specification.
    pub spec: &'a str,
    /// Its routes, each `METHODS PATH`, for the namespaces' prefix checks.
    pub routes: &'a [String],
    /// Whether the new version serves at once.
    pub activate: bool,
    /// How many versions to keep (at least 1; the active one always).
    pub keep: u32,
}

impl StateDir {
    /// Adds a version of an app (made when new) and returns its number.
    pub fn deploy(&mut self, deploy: &Deploy<'_>, actor: &Actor) -> Result<i64, CatalogError> {
        check_namespace(deploy.namespace)?;
        check_app_name(deploy.app)?;
        // Checked here, under the same `&mut self` as the write, so that
        // a prefix assigned meanwhile cannot slip between.
        self.check_routes_owned(deploy.namespace, deploy.routes)?;
        self.blobs().get(deploy.digest)?;
        let at = now();
        let db = self.db_error_fn();
        let number = self.write(|transaction| {
            transaction
                .execute(
                    "INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?1, ?2)",
                    rusqlite::params![deploy.namespace, at],
                )
                .map_err(&db)?;
            transaction
                .execute(
                    "INSERT OR IGNORE INTO apps (namespace, name, created_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![deploy.namespace, deploy.app, at],
                )
                .map_err(&db)?;
            let number: i64 = transaction
                .query_row(
                    "SELECT coalesce(max(version), 0) + 1 FROM versions WHERE namespace = ?1 AND app = ?2",
                    rusqlite::params![deploy.namespace, deploy.app],
                    |row| row.get(0),
                )
                .map_err(&db)?;
            transaction
                .execute(
                    "INSERT INTO versions (namespace, app, version, digest, spec, created_at, routes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![deploy.namespace, deploy.app, number, deploy.digest, deploy.spec, at, deploy.routes.join("\n")],
                )
                .map_err(&db)?;
            if deploy.activate {
                set_active(transaction, deploy.namespace, deploy.app, number).map_err(&db)?;
            }
            // Prune: the newest `keep`, and the active one whatever its age.
            transaction
                .execute(
                    "DELETE FROM versions WHERE namespace = ?1 AND app = ?2
                       AND version <= (SELECT coalesce(max(version), 0) FROM versions WHERE namespace = ?1 AND app = ?2) - ?3
                       AND version IS NOT (SELECT active_version FROM apps WHERE namespace = ?1 AND name = ?2)",
                    rusqlite::params![deploy.namespace, deploy.app, i64::from(deploy.keep.max(1))],
                )
                .map_err(&db)?;
            let target = format!("{}/{} v{number}", deploy.namespace, deploy.app);
            let action = if deploy.activate { "app.deploy" } else { "app.deploy-inactive" };
            record(transaction, actor, action, &target).map_err(&db)?;
            Ok(number)
        })?;
        Ok(number)
    }

    /// Makes `version` the app's active one.
    pub fn promote(
        &mut self,
        namespace: &str,
        app: &str,
        version: i64,
        actor: &Actor,
    ) -> Result<(), CatalogError> {
        let record_of = self.app(namespace, app)?;
        if !record_of.versions.iter().any(|v| v.number == version) {
            return Err(unknown_version(&record_of, version));
        }
        let db = self.db_error_fn();
        self.write(|transaction| {
            set_active(transaction, namespace, app, version).map_err(&db)?;
            record(
                transaction,
                actor,
                "app.promote",
                &format!("{namespace}/{app} v{version}"),
            )
            .map_err(&db)
        })
    }

    /// Makes an older version active again: `to`, or the newest one older
    /// than the active one. Returns the version now active.
    pub fn rollback(
        &mut self,
        namespace: &str,
        app: &str,
        to: Option<i64>,
        actor: &Actor,
    ) -> Result<i64, CatalogError> {
        let record_of = self.app(namespace, app)?;
        let target =
            match to {
                Some(version) => version,
                None => {
                    let active = record_of.active.unwrap_or(i64::MAX);
                    record_of
                    .versions
                    .iter()
                    .map(|v| v.number)
                    .filter(|number| *number < active)
                    .max()
                    .ok_or_else(|| CatalogError::Invalid(format!(
                        "app `{app}` has no version older than its active one to roll back to"
                    )))?
                }
            };
        if !record_of.versions.iter().any(|v| v.number == target) {
            return Err(unknown_version(&record_of, target));
        }
        let db = self.db_error_fn();
        self.write(|transaction| {
            set_active(transaction, namespace, app, target).map_err(&db)?;
            record(
                transaction,
                actor,
                "app.rollback",
                &format!("{namespace}/{app} v{target}"),
            )
            .map_err(&db)
        })?;
        Ok(target)
    }

    /// Deletes an app and every version of it.
    pub fn delete_app(
        &mut self,
        namespace: &str,
        app: &str,
        actor: &Actor,
    ) -> Result<(), CatalogError> {
        self.app(namespace, app)?;
        let db = self.db_error_fn();
        self.write(|transaction| {
            transaction
                .execute(
                    "DELETE FROM versions WHERE namespace = ?1 AND app = ?2",
                    rusqlite::params![namespace, app],
                )
                .map_err(&db)?;
            transaction
                .execute(
                    "DELETE FROM apps WHERE namespace = ?1 AND name = ?2",
                    rusqlite::params![namespace, app],
                )
                .map_err(&db)?;
            record(
                transaction,
                actor,
                "app.delete",
                &format!("{namespace}/{app}"),
            )
            .map_err(&db)
        })
    }

    /// An app with its versions.
    pub fn app(&self, namespace: &str, app: &str) -> Result<AppRecord, CatalogError> {
        let db = self.db_error_fn();
        let active: Option<Option<i64>> = self
            .connection
            .query_row(
                "SELECT active_version FROM apps WHERE namespace = ?1 AND name = ?2",
                rusqlite::params![namespace, app],
                |row| row.get(0),
            )
            .map(Some)
            .or_else(|error| match error {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                error => Err(db(error)),
            })?;
        let Some(active) = active else {
            return Err(CatalogError::UnknownApp {
                namespace: namespace.to_owned(),
                app: app.to_owned(),
            });
        };
        let mut statement = self
            .connection
            .prepare(
                "SELECT version, digest, spec, created_at, routes FROM versions
                 WHERE namespace = ?1 AND app = ?2 ORDER BY version",
            )
            .map_err(&db)?;
        let versions = statement
            .query_map(rusqlite::params![namespace, app], |row| {
                Ok(Version {
                    number: row.get(0)?,
                    digest: row.get(1)?,
                    spec: row.get(2)?,
                    created_at: row.get(3)?,
                    routes: split_routes(&row.get::<_, String>(4)?),
                })
            })
            .map_err(&db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&db)?;
        Ok(AppRecord {
            namespace: namespace.to_owned(),
            name: app.to_owned(),
            active,
            versions,
        })
    }

    /// Every app that has an active version, with that version only, by
    /// namespace and name: what the host serves.
    pub fn active_apps(&self) -> Result<Vec<AppRecord>, CatalogError> {
        let db = self.db_error_fn();
        let mut statement = self
            .connection
            .prepare(
                "SELECT a.namespace, a.name, v.version, v.digest, v.spec, v.created_at, v.routes
                 FROM apps a JOIN versions v
                   ON v.namespace = a.namespace AND v.app = a.name AND v.version = a.active_version
                 ORDER BY a.namespace, a.name",
            )
            .map_err(&db)?;
        let apps = statement
            .query_map([], |row| {
                let number: i64 = row.get(2)?;
                Ok(AppRecord {
                    namespace: row.get(0)?,
                    name: row.get(1)?,
                    active: Some(number),
                    versions: vec![Version {
                        number,
                        digest: row.get(3)?,
                        spec: row.get(4)?,
                        created_at: row.get(5)?,
                        routes: split_routes(&row.get::<_, String>(6)?),
                    }],
                })
            })
            .map_err(&db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&db)?;
        Ok(apps)
    }

    /// The names of a namespace's apps, in order.
    pub fn app_names(&self, namespace: &str) -> Result<Vec<String>, CatalogError> {
        let db = self.db_error_fn();
        let mut statement = self
            .connection
            .prepare("SELECT name FROM apps WHERE namespace = ?1 ORDER BY name")
            .map_err(&db)?;
        let names = statement
            .query_map([namespace], |row| row.get(0))
            .map_err(&db)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(&db)?;
        Ok(names)
    }
}

fn split_routes(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

fn set_active(
    transaction: &rusqlite::Transaction<'_>,
    namespace: &str,
    app: &str,
    version: i64,
) -> Result<(), rusqlite::Error> {
    transaction
        .execute(
            "UPDATE apps SET active_version = ?3 WHERE namespace = ?1 AND name = ?2",
            rusqlite::params![namespace, app, version],
        )
        .map(|_| ())
}

fn unknown_version(app: &AppRecord, version: i64) -> CatalogError {
    let known: Vec<String> = app.versions.iter().map(|v| v.number.to_string()).collect();
    CatalogError::UnknownVersion {
        app: app.name.clone(),
        version,
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    }
}

/// Checks an app name as the configuration does.
pub fn check_app_name(name: &str) -> Result<(), CatalogError> {
    crate::text::check_name("app name", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy<'a>(app: &'a str, digest: &'a str, spec: &'a str, activate: bool) -> Deploy<'a> {
        Deploy {
            namespace: "default",
            app,
            digest,
            spec,
            routes: &[],
            activate,
            keep: 3,
        }
    }

    #[test]
    fn versions_deploy_promote_roll_back_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDir::open(dir.path()).unwrap();
        let actor = Actor::local();
        let one = state.blobs().put(b"\0asm one").unwrap();
        let two = state.blobs().put(b"\0asm two").unwrap();
        assert_eq!(
            state
                .deploy(&deploy("hello", &one, "v1", true), &actor)
                .unwrap(),
            1
        );
        assert_eq!(
            state
                .deploy(&deploy("hello", &two, "v2", false), &actor)
                .unwrap(),
            2
        );
        let app = state.app("default", "hello").unwrap();
        assert_eq!(
            app.active,
            Some(1),
            "a version deployed without activating waits"
        );
        state.promote("default", "hello", 2, &actor).unwrap();
        assert_eq!(
            state
                .app("default", "hello")
                .unwrap()
                .active_version()
                .unwrap()
                .spec,
            "v2"
        );
        assert_eq!(state.rollback("default", "hello", None, &actor).unwrap(), 1);
        // Versions 3, 4, 5 with keep 3: 2 goes; 1 stays while active.
        for spec in ["v3", "v4", "v5"] {
            state
                .deploy(&deploy("hello", &two, spec, false), &actor)
                .unwrap();
        }
        let numbers: Vec<i64> = state
            .app("default", "hello")
            .unwrap()
            .versions
            .iter()
            .map(|v| v.number)
            .collect();
        assert_eq!(numbers, [1, 3, 4, 5]);
        let error = state
            .promote("default", "hello", 2, &actor)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "app `hello` has no version 2; its versions are 1, 3, 4, 5"
        );
        // Reopened, it is all there; deleted, it is gone.
        drop(state);
        let mut state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.app("default", "hello").unwrap().active, Some(1));
        state.delete_app("default", "hello", &actor).unwrap();
        assert_eq!(
            state.app("default", "hello").unwrap_err().to_string(),
            "namespace `default` has no app `hello`"
        );
        let actions: Vec<String> = state
            .audit_log(20)
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [
                "app.deploy",
                "app.deploy-inactive",
                "app.promote",
                "app.rollback",
                "app.deploy-inactive",
                "app.deploy-inactive",
                "app.deploy-inactive",
                "app.delete"
            ]
        );
    }

    #[test]
    fn a_deploy_needs_a_stored_component_and_a_valid_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDir::open(dir.path()).unwrap();
        let actor = Actor::local();
        let missing = crate::blobs::digest_of(b"never stored");
        assert!(
            state
                .deploy(&deploy("hello", &missing, "", true), &actor)
                .is_err()
        );
        let stored = state.blobs().put(b"\0asm").unwrap();
        let error = state
            .deploy(&deploy("a b", &stored, "", true), &actor)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "app name `a b` is not a name: use 1 to 64 letters, digits, `.`, `_` or `-`"
        );
        assert!(
            state.app_names("default").unwrap().is_empty(),
            "nothing was written"
        );
    }
}
