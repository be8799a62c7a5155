//! `/v1/components` and `/v1/apps`: uploading components and the apps'
//! lifecycle. Every change goes through [`Reloader::change`], which loads
//! the new table before the catalog commits and swaps it after, one
//! change at a time: concurrent deploys of one app are serialised.

use std::collections::BTreeMap;

use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serverless_catalog::Scope;
use serverless_catalog::apps::{Deploy, Version, check_app_name};

use super::auth::allow;
use super::reply::{ApiError, json, parse_json, read_body};
use super::{Api, Caller, MAX_JSON};
use crate::admin::AdminBody;
use crate::catalog::spec::AppSpec;
use crate::catalog::{Proposal, runtime_name};
use crate::reload::ChangeError;

/// `POST /v1/apps/NAME/versions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    /// The uploaded component's digest.
    component: String,
    routes: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    settings: serde_json::Map<String, serde_json::Value>,
    /// Whether the version serves at once (default) or waits.
    #[serde(default = "yes")]
    activate: bool,
}

fn yes() -> bool {
    true
}

/// Which of the two calls that make an existing version active.
#[derive(Clone, Copy)]
enum Activation {
    Promote,
    Rollback,
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Activation::Promote => "promote",
            Activation::Rollback => "rollback",
        })
    }
}

/// `POST /v1/apps/NAME/promote` and `.../rollback`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionRequest {
    version: Option<i64>,
}

impl From<ChangeError> for ApiError {
    fn from(error: ChangeError) -> ApiError {
        match error {
            ChangeError::Refused(crate::catalog::Refused::Conflict(message)) => {
                ApiError::new(StatusCode::CONFLICT, message)
            }
            ChangeError::Refused(crate::catalog::Refused::Invalid(message)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
            }
            ChangeError::Catalog(error) => error.into(),
            ChangeError::Internal(error) => ApiError::internal(format!("{error:#}")),
        }
    }
}

/// The env of a spec as answers show it: literal values, and `from_env`
/// as the variable's name only (its value is the operator's secret).
fn env_json(spec: &AppSpec) -> serde_json::Value {
    spec.env
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn version_json(version: &Version, active: Option<i64>) -> serde_json::Value {
    let spec = AppSpec::from_json(&version.spec).ok();
    serde_json::json!({
        "version": version.number,
        "active": Some(version.number) == active,
        "digest": version.digest,
        "created_at": version.created_at,
        "routes": version.routes,
        "env": spec.as_ref().map(env_json),
        "settings": spec.map(|spec| serde_json::Value::Object(spec.settings)),
    })
}

/// Checks an app name from a path.
fn app_name(name: &str) -> Result<String, ApiError> {
    check_app_name(name)?;
    Ok(name.to_owned())
}

impl Api {
    /// The app `name` of `namespace`, or its `404`.
    async fn app_record(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<serverless_catalog::apps::AppRecord, ApiError> {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        self.blocking(move |state| Ok(state.app(&namespace, &name)?))
            .await
    }

    pub(super) async fn upload(
        &self,
        caller: &Caller,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<AdminBody>, ApiError> {
        allow(&caller.token, &caller.token.namespace, Scope::Deploy)?;
        let bytes = read_body(request.into_body(), self.max_upload).await?;
        if !bytes.starts_with(b"\0asm") {
            return Err(ApiError::bad_request(
                "the body is not WebAssembly (it does not start with `\\0asm`); upload the .wasm file itself",
            ));
        }
        let size = bytes.len();
        // Hashed and written without holding the catalog.
        let blobs = self.catalog.blobs().clone();
        let digest = tokio::task::spawn_blocking(move || blobs.put(&bytes))
            .await
            .map_err(ApiError::internal)??;
        let (recorded, actor) = (digest.clone(), caller.actor.clone());
        self.blocking(move |state| Ok(state.record_upload(&recorded, size, &actor)?))
            .await?;
        Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "digest": digest, "size": size }),
        ))
    }

    pub(super) async fn list_apps(&self, caller: &Caller) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        allow(&caller.token, &namespace, Scope::Read)?;
        let apps = self
            .blocking(move |state| {
                let mut apps = Vec::new();
                for name in state.app_names(&namespace)? {
                    let app = state.app(&namespace, &name)?;
                    apps.push(serde_json::json!({
                        "name": app.name,
                        "active": app.active,
                        "versions": app.versions.iter().map(|v| v.number).collect::<Vec<_>>(),
                        "routes": app.active_version().map(|v| v.routes.clone()).unwrap_or_default(),
                    }));
                }
                Ok(apps)
            })
            .await?;
        Ok(json(StatusCode::OK, &serde_json::json!({ "apps": apps })))
    }

    pub(super) async fn show_app(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        allow(&caller.token, &namespace, Scope::Read)?;
        let name = app_name(name)?;
        let app = self.app_record(&namespace, &name).await?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "namespace": app.namespace,
                "name": app.name,
                "served_as": runtime_name(&app.namespace, &app.name),
                "active": app.active,
                "versions": app.versions.iter().map(|v| version_json(v, app.active)).collect::<Vec<_>>(),
            }),
        ))
    }

    pub(super) async fn deploy(
        &self,
        caller: &Caller,
        name: &str,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        allow(&caller.token, &namespace, Scope::Deploy)?;
        let name = app_name(name)?;
        let body = read_body(request.into_body(), MAX_JSON).await?;
        let request: DeployRequest = parse_json(&body)?;
        let spec = AppSpec {
            routes: request.routes,
            env: request.env,
            settings: request.settings,
        };
        // Validate the specification against its component, and the
        // routes against the namespaces' prefixes, before any change.
        let (digest, routes, number) = {
            let (namespace, name, spec, digest) = (
                namespace.clone(),
                name.clone(),
                spec.clone(),
                request.component.clone(),
            );
            self.blocking(move |state| {
                // Kept from garbage collection until the deploy is done.
                let _ = state.blobs().touch(&digest);
                let path = state.blobs().checked_path(&digest).map_err(|error| match error {
                    serverless_catalog::CatalogError::Directory { error, .. }
                        if error.kind() == std::io::ErrorKind::NotFound =>
                    {
                        ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("no component has the digest {digest}; upload it first with PUT /v1/components"),
                    )
                    }
                    error => error.into(),
                })?;
                let routes = spec
                    .routes(&namespace, &name, &path)
                    .map_err(|message| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message))?;
                let lines = crate::catalog::spec::route_lines(&routes);
                // Early, for the message before anything compiles; the
                // deploy checks again as it writes.
                state.check_routes_owned(&namespace, &lines)?;
                let next = match state.app(&namespace, &name) {
                    Ok(app) => app.versions.last().map_or(1, |v| v.number + 1),
                    Err(serverless_catalog::CatalogError::UnknownApp { .. }) => 1,
                    Err(error) => return Err(error.into()),
                };
                Ok((digest, lines, next))
            })
            .await?
        };
        let activate = request.activate;
        let keep = self.catalog.keep;
        let version = Version {
            number,
            digest: digest.clone(),
            spec: spec.to_json().map_err(ApiError::internal)?,
            routes: routes.clone(),
            created_at: 0,
        };
        let actor = caller.actor.clone();
        let why = format!(
            "deploy of {} version {number}{} by {}",
            runtime_name(&namespace, &name),
            if activate { "" } else { " (not active)" },
            actor.who
        );
        let stored_spec = version.spec.clone();
        let (ns, app) = (namespace.clone(), name.clone());
        let number = self
            .reloader
            .change(
                why,
                Proposal::Activate {
                    namespace: namespace.clone(),
                    app: name.clone(),
                    version,
                },
                activate,
                move |state| {
                    state.deploy(
                        &Deploy {
                            namespace: &ns,
                            app: &app,
                            digest: &digest,
                            spec: &stored_spec,
                            routes: &routes,
                            activate,
                            keep,
                        },
                        &actor,
                    )
                },
            )
            .await?;
        self.previews.forget(&namespace, &name);
        Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "name": name, "version": number, "active": activate }),
        ))
    }

    pub(super) async fn promote(
        &self,
        caller: &Caller,
        name: &str,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<AdminBody>, ApiError> {
        let body = read_body(request.into_body(), MAX_JSON).await?;
        let request: VersionRequest = parse_json(&body)?;
        let Some(wanted) = request.version else {
            return Err(ApiError::bad_request(
                "a promote names the version: {\"version\": N}",
            ));
        };
        self.activate(caller, name, Some(wanted), Activation::Promote)
            .await
    }

    pub(super) async fn rollback(
        &self,
        caller: &Caller,
        name: &str,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<AdminBody>, ApiError> {
        let body = read_body(request.into_body(), MAX_JSON).await?;
        let request: VersionRequest = if body.is_empty() {
            VersionRequest { version: None }
        } else {
            parse_json(&body)?
        };
        self.activate(caller, name, request.version, Activation::Rollback)
            .await
    }

    /// Promote (`version` given) or rollback (`version`, or the newest
    /// older than the active one).
    async fn activate(
        &self,
        caller: &Caller,
        name: &str,
        version: Option<i64>,
        kind: Activation,
    ) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        allow(&caller.token, &namespace, Scope::Deploy)?;
        let name = app_name(name)?;
        let record = self.app_record(&namespace, &name).await?;
        let target = match version {
            Some(number) => number,
            None => {
                let active = record.active.unwrap_or(i64::MAX);
                record
                    .versions
                    .iter()
                    .map(|v| v.number)
                    .filter(|number| *number < active)
                    .max()
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::CONFLICT,
                            format!("app `{name}` has no version older than its active one to roll back to"),
                        )
                    })?
            }
        };
        let Some(chosen) = record.versions.iter().find(|v| v.number == target).cloned() else {
            let known: Vec<String> = record
                .versions
                .iter()
                .map(|v| v.number.to_string())
                .collect();
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "app `{name}` has no version {target}; its versions are {}",
                    known.join(", ")
                ),
            ));
        };
        let actor = caller.actor.clone();
        let why = format!(
            "{kind} of {} to version {target} by {}",
            runtime_name(&namespace, &name),
            actor.who
        );
        let (ns, app) = (namespace.clone(), name.clone());
        self.reloader
            .change(
                why,
                Proposal::Activate {
                    namespace: namespace.clone(),
                    app: name.clone(),
                    version: chosen,
                },
                true,
                move |state| match kind {
                    Activation::Promote => state.promote(&ns, &app, target, &actor),
                    Activation::Rollback => {
                        state.rollback(&ns, &app, Some(target), &actor).map(|_| ())
                    }
                },
            )
            .await?;
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "name": name, "active": target }),
        ))
    }

    pub(super) async fn delete_app(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        allow(&caller.token, &namespace, Scope::Deploy)?;
        let name = app_name(name)?;
        self.app_record(&namespace, &name).await?;
        let actor = caller.actor.clone();
        let why = format!(
            "delete of {} by {}",
            runtime_name(&namespace, &name),
            actor.who
        );
        let (ns, app) = (namespace.clone(), name.clone());
        self.reloader
            .change(
                why,
                Proposal::Remove {
                    namespace: namespace.clone(),
                    app: name.clone(),
                },
                true,
                move |state| state.delete_app(&ns, &app, &actor),
            )
            .await?;
        self.previews.forget(&namespace, &name);
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "name": name, "deleted": true }),
        ))
    }

    pub(super) async fn logs(
        &self,
        caller: &Caller,
        name: &str,
        follow: bool,
    ) -> Result<Response<AdminBody>, ApiError> {
        let namespace = caller.token.namespace.clone();
        allow(&caller.token, &namespace, Scope::Read)?;
        let name = app_name(name)?;
        self.app_record(&namespace, &name).await?;
        let served = runtime_name(&namespace, &name);
        if follow {
            let mut response = Response::new(crate::admin::follow_logs(&self.invocations, served));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/event-stream"),
            );
            return Ok(response);
        }
        let kept: Vec<serde_json::Value> = self
            .invocations
            .recent(&served)
            .iter()
            .map(|invocation| invocation.to_json())
            .collect();
        Ok(json(StatusCode::OK, &serde_json::Value::Array(kept)))
    }
}
