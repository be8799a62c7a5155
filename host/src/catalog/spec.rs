//! What a deploy says about an app besides its component, as the API
//! takes it in JSON and the catalog keeps it:
//!
//! ```json
//! { "routes": ["GET /hello", "GET,POST /hello/:name"],
//!   "env": { "GREETING": "Hello", "TOKEN": { "from_env": "API_TOKEN" } },
//!   "settings": { "timeout": "5s", "max_memory": "64 MiB",
//!                 "allowed_http": ["https://api.example.com"] } }
//! ```
//!
//! `settings` takes every key of an `[[applications]]` entry except the
//! ones a deploy sets itself (`name`, `file_path`, `method`, `url_path`)
//! and `service`. Each route becomes one `[[applications]]` entry, read by
//! the configuration's own parser: the same fields, the same validation
//! and the same messages, which point at the entry's generated text.
//!
//! Only the operator's `default` namespace may use `from_env` (the host's
//! environment is the operator's) and `files` (host folders); a tenant's
//! values travel in its deploys.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serverless_catalog::namespaces::DEFAULT_NAMESPACE;
use serverless_config::{AppConfig, Config, MethodFilter, RoutePattern};

/// An app's specification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppSpec {
    /// `METHODS PATH` each: `GET /a`, `GET,POST /b/:id`, `ANY /c/*`.
    pub(crate) routes: Vec<String>,
    /// The component's environment: a string, or `{"from_env": "NAME"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, serde_json::Value>,
    /// The other keys of an `[[applications]]` entry.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub(crate) settings: serde_json::Map<String, serde_json::Value>,
}

/// One route of an app, validated.
#[derive(Debug)]
pub(crate) struct SpecRoute {
    pub(crate) pattern: RoutePattern,
    pub(crate) methods: MethodFilter,
    pub(crate) app: AppConfig,
}

/// The keys a deploy's `settings` may not hold: the deploy sets them.
const SET_BY_DEPLOY: &[(&str, &str)] = &[
    ("name", "the app's name is the deploy's"),
    ("file_path", "the component is the deploy's upload"),
    ("method", "methods are written in `routes`, as `GET /path`"),
    ("url_path", "paths are written in `routes`, as `GET /path`"),
    (
        "service",
        "routes to services belong in the configuration file",
    ),
    (
        "publish_to",
        "routes that publish to topics belong in the configuration file",
    ),
];

impl AppSpec {
    /// Parses a stored or received specification.
    pub(crate) fn from_json(text: &str) -> Result<AppSpec, String> {
        serde_json::from_str(text).map_err(|error| format!("the app specification: {error}"))
    }

    /// The stored form.
    pub(crate) fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Validates the specification of `namespace`'s app `app` with its
    /// component at `component`, through the configuration's parser, and
    /// returns its routes. Errors name the deploy and show the entry's
    /// line at fault.
    pub(crate) fn routes(
        &self,
        namespace: &str,
        app: &str,
        component: &Path,
    ) -> Result<Vec<SpecRoute>, String> {
        if self.routes.is_empty() {
            return Err(
                "a deploy needs at least one route, such as `--route 'GET /hello'`".to_owned(),
            );
        }
        let operator = namespace == DEFAULT_NAMESPACE;
        for (key, why) in SET_BY_DEPLOY {
            if self.settings.contains_key(*key) {
                return Err(format!(
                    "settings: `{key}` cannot be set in a deploy: {why}"
                ));
            }
        }
        if !operator && self.settings.contains_key("files") {
            return Err(format!(
                "settings: `files` mounts host folders, which only the operator's `default` namespace may do; namespace `{namespace}` cannot"
            ));
        }
        for (name, value) in &self.env {
            if !operator && value.get("from_env").is_some() {
                return Err(format!(
                    "env `{name}`: `from_env` reads the host's environment, which only the operator's `default` namespace may do; pass the value itself"
                ));
            }
        }
        let label = format!("deploy of {}", super::runtime_name(namespace, app));
        let mut found = Vec::with_capacity(self.routes.len());
        for route in &self.routes {
            let (methods, path) = split_route(route)?;
            let mut entry = toml::Table::new();
            entry.insert("name".into(), toml::Value::String(app.to_owned()));
            entry.insert(
                "file_path".into(),
                toml::Value::String(component.display().to_string()),
            );
            entry.insert("method".into(), methods);
            entry.insert("url_path".into(), toml::Value::String(path.to_owned()));
            if !self.env.is_empty() {
                let mut env = toml::Table::new();
                for (name, value) in &self.env {
                    env.insert(name.clone(), to_toml(value, &format!("env `{name}`"))?);
                }
                entry.insert("env".into(), toml::Value::Table(env));
            }
            for (key, value) in &self.settings {
                entry.insert(key.clone(), to_toml(value, &format!("settings `{key}`"))?);
            }
            let mut document = toml::Table::new();
            document.insert(
                "applications".into(),
                toml::Value::Array(vec![toml::Value::Table(entry)]),
            );
            let text = toml::to_string(&document)
                .map_err(|error| format!("the app specification: {error}"))?;
            let lookup = |name: &str| {
                if operator {
                    std::env::var(name).ok()
                } else {
                    None
                }
            };
            let config = Config::parse_with_env(&text, Path::new(&label), &lookup)
                .map_err(|error| error.to_string())?;
            for (pattern, methods, target) in config.routes.routes() {
                let Some(app_config) = target.app() else {
                    continue;
                };
                let mut app_config = app_config.clone();
                app_config.name = super::runtime_name(namespace, app);
                found.push(SpecRoute {
                    pattern: pattern.clone(),
                    methods,
                    app: app_config,
                });
            }
        }
        Ok(found)
    }
}

/// `METHODS PATH` as the configuration's `method` value and the path.
fn split_route(route: &str) -> Result<(toml::Value, &str), String> {
    let fix = "write a route as `METHOD /path`, such as `GET /hello` or `GET,POST /api/*`";
    let Some((methods, path)) = route.trim().split_once(char::is_whitespace) else {
        return Err(format!("route `{route}` has no method or no path; {fix}"));
    };
    let path = path.trim();
    if methods.is_empty() || path.is_empty() || path.contains(char::is_whitespace) {
        return Err(format!("route `{route}` is not `METHOD /path`; {fix}"));
    }
    let names: Vec<&str> = methods.split(',').collect();
    let value = if names.len() == 1 {
        toml::Value::String(names[0].to_owned())
    } else {
        toml::Value::Array(
            names
                .into_iter()
                .map(|name| toml::Value::String(name.to_owned()))
                .collect(),
        )
    };
    Ok((value, path))
}

/// A JSON value as TOML; `what` names it in the error for `null`.
fn to_toml(value: &serde_json::Value, what: &str) -> Result<toml::Value, String> {
    Ok(match value {
        serde_json::Value::Null => {
            return Err(format!(
                "{what}: null is not a value; leave the key out instead"
            ));
        }
        serde_json::Value::Bool(b) => toml::Value::Boolean(*b),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => toml::Value::Integer(integer),
            None => match number.as_f64() {
                Some(float) => toml::Value::Float(float),
                None => return Err(format!("{what}: {number} is too large")),
            },
        },
        serde_json::Value::String(text) => toml::Value::String(text.clone()),
        serde_json::Value::Array(items) => toml::Value::Array(
            items
                .iter()
                .map(|item| to_toml(item, what))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => {
            let mut table = toml::Table::new();
            for (key, item) in map {
                table.insert(key.clone(), to_toml(item, what)?);
            }
            toml::Value::Table(table)
        }
    })
}

/// The routes of `spec` as the catalog keeps them for its prefix checks:
/// `METHODS PATH`, the path as the configuration read it.
pub(crate) fn route_lines(routes: &[SpecRoute]) -> Vec<String> {
    routes
        .iter()
        .map(|route| format!("{} {}", route.methods, route.pattern.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> AppSpec {
        serde_json::from_value(json).unwrap()
    }

    fn component() -> tempfile::NamedTempFile {
        tempfile::NamedTempFile::new().unwrap()
    }

    #[test]
    fn a_spec_is_read_as_an_applications_entry_would_be() {
        let file = component();
        let routes = spec(serde_json::json!({
            "routes": ["GET /hello", "GET,POST /hello/:name"],
            "env": { "GREETING": "Hi" },
            "settings": { "timeout": "5s", "max_concurrency": 4 }
        }))
        .routes("team-a", "hello", file.path())
        .unwrap();
        assert_eq!(
            route_lines(&routes),
            ["GET /hello", "GET,POST /hello/:name"]
        );
        let app = &routes[1].app;
        assert_eq!(app.name, "team-a/hello");
        assert_eq!(app.env, [("GREETING".to_owned(), "Hi".to_owned())]);
        assert_eq!(app.limits.timeout, std::time::Duration::from_secs(5));
        assert_eq!(app.limits.max_concurrency, Some(4));
    }

    #[test]
    fn bad_specs_get_the_configuration_s_messages_or_say_what_to_do() {
        let file = component();
        let error = |json: serde_json::Value| {
            spec(json)
                .routes("team-a", "hello", file.path())
                .unwrap_err()
        };
        let timeout = error(serde_json::json!({
            "routes": ["GET /hello"], "settings": { "timeout": "5 parsecs" }
        }));
        assert!(timeout.starts_with("deploy of team-a/hello:"), "{timeout}");
        assert!(timeout.contains("timeout = \"5 parsecs\""), "{timeout}");
        assert_eq!(
            error(serde_json::json!({"routes": ["GET /a"], "settings": {"url_path": "/b"}})),
            "settings: `url_path` cannot be set in a deploy: paths are written in `routes`, as `GET /path`"
        );
        assert_eq!(
            error(serde_json::json!({"routes": ["GET /a"], "env": {"K": {"from_env": "HOME"}}})),
            "env `K`: `from_env` reads the host's environment, which only the operator's `default` namespace may do; pass the value itself"
        );
        assert_eq!(
            error(serde_json::json!({"routes": ["/a"]})),
            "route `/a` has no method or no path; write a route as `METHOD /path`, such as `GET /hello` or `GET,POST /api/*`"
        );
        assert!(
            error(serde_json::json!({"routes": ["GET /a"], "settings": {"fuel_x": 1}}))
                .contains("unknown field `fuel_x`")
        );
        assert_eq!(
            error(serde_json::json!({"routes": ["POST /a"], "settings": {"publish_to": "t"}})),
            "settings: `publish_to` cannot be set in a deploy: routes that publish to topics belong in the configuration file"
        );
        assert!(
            error(serde_json::json!({"routes": ["GET /a"], "settings": {"files": {"/data": "/"}}}))
                .starts_with("settings: `files` mounts host folders")
        );
    }
}
