//! Namespaces (tenants) and the route prefix each one's apps live under.
//!
//! The `default` namespace is the operator's: its apps may take any path
//! that no other namespace owns. Every other namespace deploys only once
//! an admin of `default` has given it a prefix such as `/team-a`, and
//! then only routes under it; no other namespace may put a route under
//! that prefix. So one tenant cannot take another's paths.

use crate::audit::{Actor, record};
use crate::state::now;
use crate::tokens::check_namespace;
use crate::{CatalogError, StateDir};

/// The operator's namespace.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A namespace as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Its name.
    pub name: String,
    /// The path prefix its routes must start with, once assigned.
    pub route_prefix: Option<String>,
}

/// Checks a route prefix: `/` and one or more literal segments, without
/// a trailing `/`, parameters or wildcards.
pub fn check_prefix(prefix: &str) -> Result<(), CatalogError> {
    let fix = "write it as `/` and literal path segments, such as `/team-a` or `/tenants/a`";
    let Some(rest) = prefix.strip_prefix('/') else {
        return Err(CatalogError::Invalid(format!(
            "route prefix `{prefix}` does not start with `/`; {fix}"
        )));
    };
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'~'))
    };
    if rest.is_empty() || !rest.split('/').all(segment_ok) || prefix.len() > 200 {
        return Err(CatalogError::Invalid(format!(
            "route prefix `{prefix}` is not a literal path prefix; {fix}"
        )));
    }
    Ok(())
}

/// The path of a route written `METHODS PATH`.
pub fn route_path(route: &str) -> &str {
    route.rsplit(' ').next().unwrap_or(route)
}

/// Whether the route pattern `pattern` (as written, such as `/team-a/*`)
/// lies under `prefix`.
pub fn route_is_under(pattern: &str, prefix: &str) -> bool {
    pattern
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl StateDir {
    /// Checks that `routes` (each `METHODS PATH`) of an app of
    /// `namespace` lie under its prefix when it is a tenant, and under no
    /// other namespace's prefix.
    pub fn check_routes_owned(
        &self,
        namespace: &str,
        routes: &[String],
    ) -> Result<(), CatalogError> {
        let namespaces = self.namespaces()?;
        if namespace != DEFAULT_NAMESPACE {
            let prefix = namespaces
                .iter()
                .find(|n| n.name == namespace)
                .and_then(|n| n.route_prefix.clone())
                .ok_or_else(|| {
                    CatalogError::Forbidden(format!(
                        "namespace `{namespace}` has no route prefix yet; an admin of `default` assigns one (`host namespaces set {namespace} --prefix /{namespace}`)"
                    ))
                })?;
            if let Some(route) = routes
                .iter()
                .find(|r| !route_is_under(route_path(r), &prefix))
            {
                return Err(CatalogError::Forbidden(format!(
                    "route `{route}` is outside namespace `{namespace}`'s prefix `{prefix}`; its routes must start with `{prefix}/`"
                )));
            }
        }
        for other in namespaces.iter().filter(|n| n.name != namespace) {
            let Some(prefix) = &other.route_prefix else {
                continue;
            };
            if let Some(route) = routes
                .iter()
                .find(|r| route_is_under(route_path(r), prefix))
            {
                return Err(CatalogError::Forbidden(format!(
                    "route `{route}` lies under `{prefix}`, which belongs to namespace `{}`",
                    other.name
                )));
            }
        }
        Ok(())
    }

    /// Gives `namespace` (made when new) the route prefix `prefix`. A
    /// prefix that another namespace has, or that lies inside another's
    /// or holds it, is refused.
    pub fn set_route_prefix(
        &mut self,
        namespace: &str,
        prefix: &str,
        actor: &Actor,
    ) -> Result<NamespaceInfo, CatalogError> {
        check_namespace(namespace)?;
        check_prefix(prefix)?;
        if namespace == DEFAULT_NAMESPACE {
            return Err(CatalogError::Invalid(
                "the `default` namespace is the operator's and takes any path no other namespace owns; it has no prefix".to_owned(),
            ));
        }
        for other in self.namespaces()? {
            let Some(theirs) = other.route_prefix.as_deref() else {
                continue;
            };
            if other.name != namespace
                && (route_is_under(prefix, theirs) || route_is_under(theirs, prefix))
            {
                return Err(CatalogError::Conflict(format!(
                    "route prefix `{prefix}` overlaps `{theirs}` of namespace `{}`; choose a prefix that neither holds nor lies inside another's",
                    other.name
                )));
            }
        }
        // The namespace's apps must still fit the new prefix, and no other
        // namespace's may lie under it.
        for other in self.namespaces()? {
            let own = other.name == namespace;
            for app in self.app_names(&other.name)? {
                let record_of = self.app(&other.name, &app)?;
                for version in &record_of.versions {
                    let misplaced = version
                        .routes
                        .iter()
                        .find(|route| route_is_under(route_path(route), prefix) != own);
                    let Some(route) = misplaced else {
                        continue;
                    };
                    return Err(CatalogError::Conflict(if own {
                        format!(
                            "app `{app}` version {} of namespace `{namespace}` has route `{route}`, outside `{prefix}`; delete the app first, or choose a prefix that holds its routes",
                            version.number
                        )
                    } else {
                        format!(
                            "app `{app}` version {} of namespace `{}` has route `{route}`, inside `{prefix}`; delete that app first, or choose another prefix",
                            version.number, other.name
                        )
                    }));
                }
            }
        }
        let at = now();
        let db = self.db_error_fn();
        self.write(|transaction| {
            transaction
                .execute(
                    "INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?1, ?2)",
                    rusqlite::params![namespace, at],
                )
                .map_err(&db)?;
            transaction
                .execute(
                    "UPDATE namespaces SET route_prefix = ?2 WHERE name = ?1",
                    rusqlite::params![namespace, prefix],
                )
                .map_err(&db)?;
            record(
                transaction,
                actor,
                "namespace.prefix",
                &format!("{namespace} {prefix}"),
            )
            .map_err(&db)
        })?;
        Ok(NamespaceInfo {
            name: namespace.to_owned(),
            route_prefix: Some(prefix.to_owned()),
        })
    }

    /// Every namespace, by name.
    pub fn namespaces(&self) -> Result<Vec<NamespaceInfo>, CatalogError> {
        let db = self.db_error_fn();
        let mut statement = self
            .connection
            .prepare("SELECT name, route_prefix FROM namespaces ORDER BY name")
            .map_err(&db)?;
        let rows = statement
            .query_map([], |row| {
                Ok(NamespaceInfo {
                    name: row.get(0)?,
                    route_prefix: row.get(1)?,
                })
            })
            .map_err(&db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&db)?;
        Ok(rows)
    }

    /// One namespace, when the catalog knows it.
    pub fn namespace(&self, name: &str) -> Result<Option<NamespaceInfo>, CatalogError> {
        Ok(self
            .namespaces()?
            .into_iter()
            .find(|namespace| namespace.name == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_literal_and_never_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDir::open(dir.path()).unwrap();
        let actor = Actor::local();
        state.set_route_prefix("team-a", "/team-a", &actor).unwrap();
        for (prefix, error) in [
            (
                "team-a",
                "route prefix `team-a` does not start with `/`; write it as `/` and literal path segments, such as `/team-a` or `/tenants/a`",
            ),
            (
                "/x/:id",
                "route prefix `/x/:id` is not a literal path prefix; write it as `/` and literal path segments, such as `/team-a` or `/tenants/a`",
            ),
            (
                "/team-a/b",
                "route prefix `/team-a/b` overlaps `/team-a` of namespace `team-a`; choose a prefix that neither holds nor lies inside another's",
            ),
        ] {
            assert_eq!(
                state
                    .set_route_prefix("team-b", prefix, &actor)
                    .unwrap_err()
                    .to_string(),
                error
            );
        }
        state
            .set_route_prefix("team-b", "/team-ab", &actor)
            .unwrap();
        assert!(state.set_route_prefix("default", "/d", &actor).is_err());
        assert_eq!(
            state
                .namespace("team-b")
                .unwrap()
                .unwrap()
                .route_prefix
                .as_deref(),
            Some("/team-ab")
        );
        // A prefix over another namespace's routes is refused.
        let digest = state.blobs().put(b"\0asm").unwrap();
        let routes = ["GET /team-c/x".to_owned()];
        state
            .deploy(
                &crate::apps::Deploy {
                    namespace: DEFAULT_NAMESPACE,
                    app: "x",
                    digest: &digest,
                    spec: "",
                    routes: &routes,
                    activate: true,
                    keep: 3,
                },
                &actor,
            )
            .unwrap();
        assert_eq!(
            state
                .set_route_prefix("team-c", "/team-c", &actor)
                .unwrap_err()
                .to_string(),
            "app `x` version 1 of namespace `default` has route `GET /team-c/x`, inside `/team-c`; delete that app first, or choose another prefix"
        );
        assert!(route_is_under("/team-a/*", "/team-a"));
        assert!(route_is_under("/team-a", "/team-a"));
        assert!(!route_is_under("/team-ab/x", "/team-a"));
    }
}
