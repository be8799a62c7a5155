//! The file as written, and its translation into a validated [`Config`].

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serverless_router::RouteTable;
use toml::Spanned;

use crate::error::Diagnostic;
use crate::fields::{
    AppName, ByteSize, EnvName, EnvValue, FunctionField, ListenAddress, Methods, MountValue,
    RestartField, Route, ServiceHttpAddress, Timeout, WorldField, guest_mount_path, is_name_char,
};
use crate::lines::LineIndex;
use crate::{
    AppConfig, ComponentSource, Config, ConfigError, DEFAULT_LISTEN_ADDRESS,
    DEFAULT_MAX_REQUEST_BODY, OutboundConfig,
};
use crate::{AppLimits, DEFAULT_MAX_MEMORY, DEFAULT_MAX_RESPONSE_BODY, DEFAULT_TIMEOUT};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen_address: Option<ListenAddress>,
    max_request_body: Option<ByteSize>,
    timeout: Option<Timeout>,
    max_memory: Option<ByteSize>,
    max_response_body: Option<ByteSize>,
    #[serde(default)]
    applications: Vec<Spanned<RawApp>>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    subscriptions: Vec<crate::messaging::RawSubscription>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<AppName>,
    file_path: Spanned<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<EnvName, Spanned<EnvValue>>,
    listen: Option<Vec<Spanned<String>>>,
    http: Option<Spanned<ServiceHttpAddress>>,
    files: Option<BTreeMap<Spanned<String>, Spanned<MountValue>>>,
    restart: Option<RestartField>,
    max_memory: Option<ByteSize>,
    max_runtime: Option<Timeout>,
    allowed_tcp: Option<Vec<Spanned<String>>>,
    allowed_http: Option<Vec<Spanned<String>>>,
    tcp_connect_timeout: Option<Timeout>,
    tcp_io_timeout: Option<Timeout>,
    max_tcp_connections: Option<u32>,
    publish: Option<Vec<Spanned<String>>>,
    max_message_size: Option<ByteSize>,
    max_publish_rate: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<Spanned<AppName>>,
    file_path: Option<Spanned<String>>,
    service: Option<Spanned<AppName>>,
    publish_to: Option<Spanned<String>>,
    method: Methods,
    url_path: Spanned<Route>,
    #[serde(default)]
    env: BTreeMap<EnvName, Spanned<EnvValue>>,
    files: Option<BTreeMap<Spanned<String>, Spanned<MountValue>>>,
    max_request_body: Option<ByteSize>,
    allowed_tcp: Option<Vec<Spanned<String>>>,
    allowed_http: Option<Vec<Spanned<String>>>,
    tcp_connect_timeout: Option<Timeout>,
    tcp_io_timeout: Option<Timeout>,
    max_tcp_connections: Option<u32>,
    world: Option<Spanned<WorldField>>,
    function: Option<Spanned<FunctionField>>,
    timeout: Option<Timeout>,
    max_memory: Option<ByteSize>,
    max_response_body: Option<ByteSize>,
    max_concurrency: Option<Spanned<u32>>,
    fuel: Option<Spanned<u64>>,
    publish: Option<Vec<Spanned<String>>>,
    max_message_size: Option<ByteSize>,
    max_publish_rate: Option<Spanned<u32>>,
}

impl RawApp {
    /// The keys given that only a component's route takes (its
    /// environment, files, outbound rules, world and instance limits), in
    /// the order the errors name them.
    fn component_keys(&self) -> Vec<&'static str> {
        [
            (!self.env.is_empty(), "env"),
            (self.files.is_some(), "files"),
            (self.allowed_tcp.is_some(), "allowed_tcp"),
            (self.allowed_http.is_some(), "allowed_http"),
            (self.tcp_connect_timeout.is_some(), "tcp_connect_timeout"),
            (self.tcp_io_timeout.is_some(), "tcp_io_timeout"),
            (self.max_tcp_connections.is_some(), "max_tcp_connections"),
            (self.world.is_some(), "world"),
            (self.function.is_some(), "function"),
            (self.max_memory.is_some(), "max_memory"),
            (self.fuel.is_some(), "fuel"),
            (self.publish.is_some(), "publish"),
            (self.max_message_size.is_some(), "max_message_size"),
            (self.max_publish_rate.is_some(), "max_publish_rate"),
        ]
        .into_iter()
        .filter_map(|(given, key)| given.then_some(key))
        .collect()
    }
}

/// Keys as an error lists them: `` `a`, `b` ``.
fn key_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an `[[applications]]` entry must have, for the errors about it.
const APP_NEEDS: &str = "; every [[applications]] entry needs `method`, `url_path`, and `file_path`, `service` or `publish_to`";

/// What an `[[services]]` entry says about the routes that name it.
struct ServiceEntry {
    line: usize,
    http: Option<std::net::SocketAddr>,
}

/// Parses and validates configuration text; see [`Config::parse`].
pub(crate) fn parse(
    source: &str,
    path: &Path,
    lookup_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let lines = LineIndex::new(path, source);
    let raw: RawConfig = toml::from_str(source).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let mut message = error.message().trim_end().to_owned();
        // The table the error is in: the last array-of-tables header
        // before it.
        let table = source
            .get(..(span.start + 2).min(source.len()))
            .and_then(|before| before.rfind("[["))
            .map_or("", |at| &source[at..]);
        if table.starts_with("[[subscriptions]]") {
            if message.starts_with("missing field `topic`")
                || message.starts_with("missing field `file_path`")
            {
                message.push_str("; every [[subscriptions]] entry needs `topic` and `file_path`");
            }
        } else if message.starts_with("missing field `method`")
            || message.starts_with("missing field `url_path`")
        {
            message.push_str(APP_NEEDS);
        } else if message.starts_with("missing field `name`")
            || message.starts_with("missing field `file_path`")
        {
            message.push_str("; every [[services]] entry needs `name` and `file_path`");
        }
        Diagnostic::at(&lines, span, message)
    })?;
    let at = |span: std::ops::Range<usize>, message: String| -> ConfigError {
        Diagnostic::at(&lines, span, message).into()
    };

    if raw.applications.is_empty() && raw.services.is_empty() && raw.subscriptions.is_empty() {
        return Err(at(
            0..0,
            "the configuration has no applications; add an [[applications]] table with file_path, method and url_path".to_owned(),
        ));
    }

    let listen_address = match raw.listen_address {
        Some(address) => address.0,
        None => DEFAULT_LISTEN_ADDRESS
            .parse()
            .map_err(|_| at(0..0, "invalid built-in listen address".to_owned()))?,
    };
    let global_body_limit = raw
        .max_request_body
        .map_or(DEFAULT_MAX_REQUEST_BODY, |size| size.0);
    let base = path.parent().unwrap_or(Path::new(""));
    let global_limits = AppLimits {
        timeout: raw.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
        max_memory: raw.max_memory.map_or(DEFAULT_MAX_MEMORY, |s| s.0),
        max_response_body: raw
            .max_response_body
            .map_or(DEFAULT_MAX_RESPONSE_BODY, |s| s.0),
        ..AppLimits::default()
    };

    // Explicit names first, so that a default name never takes one that an
    // app asked for.
    let mut taken: HashSet<String> = HashSet::new();
    let mut explicit_lines: BTreeMap<String, usize> = BTreeMap::new();
    // The routes that carry their service's name, by service: the route's
    // line. One may, since a route and its service are one thing in the
    // logs; a second must be named.
    let mut service_named_routes: BTreeMap<String, usize> = BTreeMap::new();
    for app in &raw.applications {
        if let Some(name) = &app.get_ref().name {
            let own_service = app
                .get_ref()
                .service
                .as_ref()
                .is_some_and(|service| service.get_ref().0 == name.get_ref().0);
            if own_service {
                let line = lines.line_of(app.span().start).0;
                if let Some(first) = service_named_routes.insert(name.get_ref().0.clone(), line) {
                    return Err(at(
                        name.span(),
                        format!(
                            "the route at line {first} to service `{}` already takes the service's name; give this route another `name`, or list both methods in one entry",
                            name.get_ref().0
                        ),
                    ));
                }
                continue;
            }
            let line = lines.line_of(name.span().start).0;
            if let Some(first) = explicit_lines.get(&name.get_ref().0) {
                return Err(at(
                    name.span(),
                    format!(
                        "app name `{}` is already used by the app at line {first}; names must be unique",
                        name.get_ref().0
                    ),
                ));
            }
            explicit_lines.insert(name.get_ref().0.clone(), line);
            taken.insert(name.get_ref().0.clone());
        }
    }

    let locate_in = |offset: usize| lines.locate(offset);
    let mut routes = RouteTable::new();
    let mut warnings = Vec::new();
    let mut route_lines = Vec::new();
    // The services the routes may name, known before the routes are read.
    let service_entries: BTreeMap<String, ServiceEntry> = raw
        .services
        .iter()
        .map(|service| {
            (
                service.name.get_ref().0.clone(),
                ServiceEntry {
                    line: lines.line_of(service.name.span().start).0,
                    http: service.http.as_ref().map(|http| http.get_ref().0),
                },
            )
        })
        .collect();
    for (index, app) in raw.applications.into_iter().enumerate() {
        let entry_span = app.span();
        let app = app.into_inner();
        // Taken before the fields move: routes that run no component
        // refuse these.
        let component_keys = app.component_keys();
        if let Some(topic) = app.publish_to {
            if let Some(other) = app
                .file_path
                .as_ref()
                .map(|f| ("file_path", f.span()))
                .or_else(|| app.service.as_ref().map(|s| ("service", s.span())))
            {
                return Err(at(
                    other.1,
                    format!(
                        "an [[applications]] entry has both `{}` and `publish_to`; a route runs a component, goes to a service or publishes to a topic, so keep one",
                        other.0
                    ),
                ));
            }
            let topic_span = topic.span();
            let topic_name = serverless_messaging::Topic::new(topic.get_ref())
                .map_err(|error| at(topic_span.clone(), error.to_string()))?;
            let mut not_here = component_keys;
            not_here.extend(
                [
                    (app.max_response_body.is_some(), "max_response_body"),
                    (app.max_concurrency.is_some(), "max_concurrency"),
                ]
                .into_iter()
                .filter_map(|(given, key)| given.then_some(key)),
            );
            if let Some(first) = not_here.first() {
                return Err(at(
                    key_span(source, entry_span.clone(), first).unwrap_or(topic_span),
                    format!(
                        "`{first}` does not apply to a route that publishes to topic `{topic_name}`: no component runs for it; remove {} from this entry",
                        key_list(&not_here)
                    ),
                ));
            }
            let name = match app.name {
                Some(name) => name.into_inner().0,
                None => {
                    let name = format!("publish-{topic_name}");
                    if name.len() > 64 {
                        return Err(at(
                            topic_span,
                            format!(
                                "the route's default name `publish-{topic_name}` is longer than 64 bytes; give it a `name`"
                            ),
                        ));
                    }
                    if !taken.insert(name.clone()) {
                        return Err(at(
                            topic_span,
                            format!(
                                "another route already takes the name `{name}`; give this route a `name`"
                            ),
                        ));
                    }
                    name
                }
            };
            let route_span = app.url_path.span();
            insert_route(
                &mut routes,
                &route_lines,
                &at,
                app.url_path.into_inner().0,
                app.method.0,
                crate::RouteTarget::Publish(crate::PublishRoute {
                    name: name.clone(),
                    topic: topic_name,
                    max_request_body: app
                        .max_request_body
                        .map_or(global_body_limit, |size| size.0),
                    timeout: app.timeout.map_or(global_limits.timeout, |t| t.0),
                    location: Some(lines.locate(topic_span.start)),
                }),
                route_span.clone(),
            )?;
            route_lines.push((name, lines.line_of(route_span.start).0));
            continue;
        }
        let file_path = match (app.file_path, app.service) {
            (Some(_), Some(service)) => {
                return Err(at(
                    service.span(),
                    "an [[applications]] entry has both `file_path` and `service`; a route runs a component or goes to a service, so remove one".to_owned(),
                ));
            }
            (None, None) => {
                return Err(at(
                    entry_span.clone(),
                    format!("missing field `file_path`{APP_NEEDS}"),
                ));
            }
            (None, Some(service)) => {
                let route_span = app.url_path.span();
                let service_span = service.span();
                let service_name = service.into_inner().0;
                let Some(entry) = service_entries.get(&service_name) else {
                    let known: Vec<String> = service_entries
                        .keys()
                        .map(|name| format!("`{name}`"))
                        .collect();
                    let known = if known.is_empty() {
                        "there are no [[services]] entries".to_owned()
                    } else {
                        format!("the services are {}", known.join(", "))
                    };
                    return Err(at(
                        service_span,
                        format!(
                            "no service is named `{service_name}` ({known}); name one of them, or add a [[services]] entry"
                        ),
                    ));
                };
                let Some(address) = entry.http else {
                    return Err(at(
                        service_span,
                        format!(
                            "service `{service_name}` (line {}) has no `http` address for routes to reach it; add `http = \"127.0.0.1:PORT\"` to its entry, the loopback address it answers HTTP on",
                            entry.line
                        ),
                    ));
                };
                let not_here = component_keys;
                if let Some(first) = not_here.first() {
                    return Err(at(
                        key_span(source, entry_span.clone(), first).unwrap_or(service_span),
                        format!(
                            "`{first}` does not apply to a route to service `{service_name}`: the service runs as its own [[services]] entry says; remove {} from this entry or set {} on the service",
                            key_list(&not_here),
                            if not_here.len() == 1 { "it" } else { "them" },
                        ),
                    ));
                }
                let name = match app.name {
                    Some(name) => name.into_inner().0,
                    None => {
                        let line = lines.line_of(entry_span.start).0;
                        if let Some(first) = service_named_routes.insert(service_name.clone(), line)
                        {
                            return Err(at(
                                service_span,
                                format!(
                                    "the route at line {first} to service `{service_name}` already takes the service's name; give this route a `name`, or list both methods in one entry"
                                ),
                            ));
                        }
                        service_name.clone()
                    }
                };
                if let Some(value) = app.max_concurrency.as_ref().filter(|v| *v.get_ref() == 0) {
                    return Err(at(
                        value.span(),
                        "max_concurrency must be at least 1; remove it for no limit of its own"
                            .to_owned(),
                    ));
                }
                let target = crate::RouteTarget::Service(crate::ServiceRoute {
                    name: name.clone(),
                    service: service_name,
                    address,
                    max_request_body: app
                        .max_request_body
                        .map_or(global_body_limit, |size| size.0),
                    timeout: app.timeout.map_or(global_limits.timeout, |t| t.0),
                    max_response_body: app
                        .max_response_body
                        .map_or(global_limits.max_response_body, |s| s.0),
                    max_concurrency: app.max_concurrency.map(Spanned::into_inner),
                    location: Some(lines.locate(service_span.start)),
                });
                insert_route(
                    &mut routes,
                    &route_lines,
                    &at,
                    app.url_path.into_inner().0,
                    app.method.0,
                    target,
                    route_span.clone(),
                )?;
                route_lines.push((name, lines.line_of(route_span.start).0));
                continue;
            }
            (Some(file_path), None) => file_path,
        };
        let file_span = file_path.span();
        let file = match resolve_component(base, file_path.get_ref())
            .map_err(|message| at(file_span.clone(), message))?
        {
            Resolved::NextToConfig(file) => file,
            Resolved::InWorkingDirectory { file, looked_for } => {
                warnings.push(crate::ConfigWarning {
                    location: lines.locate(file_span.start),
                    message: format!(
                        "file_path `{}` is not next to the configuration file (looked for {}); using {} in the working directory. Write the path relative to the configuration file to silence this",
                        file_path.get_ref(),
                        looked_for.display(),
                        file.display()
                    ),
                });
                file
            }
        };
        let name = match app.name {
            Some(name) => name.into_inner().0,
            None => default_name(&file, index, &mut taken),
        };
        let route_span = app.url_path.span();
        let route = app.url_path.into_inner().0;
        let (env, secrets) = env_table(app.env, &format!("app `{name}`"), lookup_env, &at)?;
        let files = match app.files {
            None => Vec::new(),
            Some(files) => mounts(base, files).map_err(|(span, message)| at(span, message))?,
        };
        for (value, what) in [
            (
                app.max_concurrency
                    .as_ref()
                    .map(|v| (u64::from(*v.get_ref()), v.span())),
                "max_concurrency",
            ),
            (app.fuel.as_ref().map(|v| (*v.get_ref(), v.span())), "fuel"),
        ] {
            if let Some((0, span)) = value {
                return Err(at(
                    span,
                    format!("{what} must be at least 1; remove it for no limit of its own"),
                ));
            }
        }
        let limits = AppLimits {
            timeout: app.timeout.map_or(global_limits.timeout, |t| t.0),
            max_memory: app.max_memory.map_or(global_limits.max_memory, |s| s.0),
            max_response_body: app
                .max_response_body
                .map_or(global_limits.max_response_body, |s| s.0),
            max_concurrency: app.max_concurrency.map(Spanned::into_inner),
            fuel: app.fuel.map(Spanned::into_inner),
        };
        let config = AppConfig {
            limits,
            name: name.clone(),
            component: ComponentSource::File(file),
            env,
            secrets,
            files,
            max_request_body: app
                .max_request_body
                .map_or(global_body_limit, |size| size.0),
            location: Some(lines.locate(file_span.start)),
            outbound: RawOutbound {
                allowed_tcp: app.allowed_tcp,
                allowed_http: app.allowed_http,
                connect_timeout: app.tcp_connect_timeout,
                io_timeout: app.tcp_io_timeout,
                max_connections: app.max_tcp_connections,
            }
            .validate(&at, &locate_in)?,
            world_location: app.world.as_ref().map(|w| lines.locate(w.span().start)),
            world: app.world.map(|w| w.into_inner().0),
            function: app.function.map(|function| crate::Function {
                location: Some(lines.locate(function.span().start)),
                name: function.into_inner().0,
            }),
            messaging: crate::messaging::rules(
                app.publish,
                app.max_message_size,
                app.max_publish_rate,
                &at,
                &locate_in,
            )?,
        };
        insert_route(
            &mut routes,
            &route_lines,
            &at,
            route,
            app.method.0,
            crate::RouteTarget::App(Box::new(config)),
            route_span.clone(),
        )?;
        route_lines.push((name, lines.line_of(route_span.start).0));
    }

    let mut services = Vec::with_capacity(raw.services.len());
    for service in raw.services {
        let name = service.name.get_ref().0.clone();
        let line = lines.line_of(service.name.span().start).0;
        if let Some(first) = explicit_lines.get(&name) {
            return Err(at(
                service.name.span(),
                format!(
                    "service name `{name}` is already used by the app or service at line {first}; names must be unique among apps and services"
                ),
            ));
        }
        if !taken.insert(name.clone()) {
            return Err(at(
                service.name.span(),
                format!(
                    "service name `{name}` is already the name of an app (from its file name); give the service another name"
                ),
            ));
        }
        explicit_lines.insert(name.clone(), line);
        let file_span = service.file_path.span();
        let file = match resolve_component(base, service.file_path.get_ref())
            .map_err(|message| at(file_span.clone(), message))?
        {
            Resolved::NextToConfig(file) | Resolved::InWorkingDirectory { file, .. } => file,
        };
        let (env, secrets) = env_table(service.env, &format!("service `{name}`"), lookup_env, &at)?;
        let files = match service.files {
            None => Vec::new(),
            Some(files) => mounts(base, files).map_err(|(span, message)| at(span, message))?,
        };
        services.push(crate::ServiceConfig {
            files,
            component: ComponentSource::File(file),
            args: service.args,
            env,
            secrets,
            listen: parse_rules(service.listen, "listen", &at, &locate_in)?,
            http: service
                .http
                .map(|http| (http.get_ref().0, lines.locate(http.span().start))),
            restart: service.restart.map_or(crate::Restart::OnFailure, |r| r.0),
            max_memory: service.max_memory.map_or(global_limits.max_memory, |s| s.0),
            max_runtime: service.max_runtime.map(|t| t.0),
            outbound: RawOutbound {
                allowed_tcp: service.allowed_tcp,
                allowed_http: service.allowed_http,
                connect_timeout: service.tcp_connect_timeout,
                io_timeout: service.tcp_io_timeout,
                max_connections: service.max_tcp_connections,
            }
            .validate(&at, &locate_in)?,
            messaging: crate::messaging::rules(
                service.publish,
                service.max_message_size,
                service.max_publish_rate,
                &at,
                &locate_in,
            )?,
            location: Some(lines.locate(file_span.start)),
            name,
        });
    }

    // Subscriptions with a name take it before any default name is made;
    // a name is unique among apps, services and subscriptions.
    for subscription in &raw.subscriptions {
        if let Some((name, span)) = subscription.name() {
            let line = lines.line_of(span.start).0;
            if let Some(first) = explicit_lines.get(name) {
                return Err(at(
                    span,
                    format!(
                        "subscription name `{name}` is already used by the entry at line {first}; names must be unique among apps, services and subscriptions"
                    ),
                ));
            }
            if !taken.insert(name.to_owned()) {
                return Err(at(
                    span,
                    format!(
                        "subscription name `{name}` is already the name of an app (from its file name); give the subscription another name"
                    ),
                ));
            }
            explicit_lines.insert(name.to_owned(), line);
        }
    }
    let context = crate::messaging::Context {
        base,
        limits: global_limits,
        max_request_body: global_body_limit,
        lookup_env,
        at: &at,
        locate: &locate_in,
    };
    let mut subscriptions = Vec::with_capacity(raw.subscriptions.len());
    let mut dead_letter_spans = Vec::with_capacity(raw.subscriptions.len());
    for (index, subscription) in raw.subscriptions.into_iter().enumerate() {
        let (entry, span) =
            crate::messaging::subscription(subscription, index, &mut taken, &context)?;
        subscriptions.push(entry);
        dead_letter_spans.push(span);
    }
    crate::messaging::dead_letter_cycles(&subscriptions, &dead_letter_spans, &at)?;

    Ok(Config {
        listen_address,
        routes,
        warnings,
        services,
        subscriptions,
    })
}

/// Where `key` is written in the entry whose header starts at `entry`:
/// the first line of the entry (up to the next table header that is not
/// one of its own) that starts with the key and `=` or `.`, or its
/// `[applications.KEY]` table.
fn key_span(
    source: &str,
    entry: std::ops::Range<usize>,
    key: &str,
) -> Option<std::ops::Range<usize>> {
    let text = source.get(entry.start..)?;
    // An inline table (`applications = [{ ... }]`): its keys are not on
    // lines of their own.
    if text.starts_with('{') {
        return None;
    }
    let own_table = format!("[applications.{key}]");
    let mut offset = entry.start;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        let at = offset + line.len() - trimmed.len();
        if trimmed.starts_with(&own_table) {
            return Some(at..at + own_table.len());
        }
        if index > 0 && trimmed.starts_with('[') && !trimmed.starts_with("[applications.") {
            return None;
        }
        let after = trimmed.strip_prefix(key).map(str::trim_start);
        if index > 0 && after.is_some_and(|rest| rest.starts_with(['=', '.'])) {
            return Some(at..at + key.len());
        }
        offset += line.len();
    }
    None
}

/// Adds a route, or says which earlier route (by its entry's name and
/// line in `route_lines`) it overlaps.
fn insert_route(
    routes: &mut RouteTable<crate::RouteTarget>,
    route_lines: &[(String, usize)],
    at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    pattern: serverless_router::RoutePattern,
    methods: serverless_router::MethodFilter,
    target: crate::RouteTarget,
    route_span: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let name = target.name().to_owned();
    routes.insert(pattern, methods, target).map_err(|conflict| {
        let (other_name, other_line) = &route_lines[conflict.existing_index];
        at(
            route_span,
            format!(
                "route {} {} of app `{name}` overlaps route {} {} of app `{other_name}` at line {other_line}{}; change the path or the methods so that each request has one route",
                conflict.methods, conflict.pattern, conflict.existing_methods, conflict.existing_pattern,
                if conflict.implied_head { " (a GET route also answers HEAD)" } else { "" },
            ),
        )
    })
}

/// The outbound keys an app and a service share, as written.
pub(crate) struct RawOutbound {
    pub(crate) allowed_tcp: Option<Vec<Spanned<String>>>,
    pub(crate) allowed_http: Option<Vec<Spanned<String>>>,
    pub(crate) connect_timeout: Option<Timeout>,
    pub(crate) io_timeout: Option<Timeout>,
    pub(crate) max_connections: Option<u32>,
}

impl RawOutbound {
    /// The rules parsed (an entry that does not parse is an error at it),
    /// and the defaults for what is not written.
    pub(crate) fn validate(
        self,
        at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
        locate_in: &dyn Fn(usize) -> crate::Location,
    ) -> Result<OutboundConfig, ConfigError> {
        let defaults = OutboundConfig::default();
        Ok(OutboundConfig {
            allowed_tcp: parse_rules(self.allowed_tcp, "allowed_tcp", at, locate_in)?,
            allowed_http: parse_rules(self.allowed_http, "allowed_http", at, locate_in)?,
            connect_timeout: self
                .connect_timeout
                .map_or(defaults.connect_timeout, |t| t.0),
            io_timeout: self.io_timeout.map_or(defaults.io_timeout, |t| t.0),
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
        })
    }
}

/// Environment variables, sorted by name.
type Env = Vec<(String, String)>;

/// An `env` table's variables, sorted by name, and the values that came
/// from the host's environment (secrets); `owner` names the app or service
/// in errors.
pub(crate) fn env_table(
    table: BTreeMap<EnvName, Spanned<EnvValue>>,
    owner: &str,
    lookup_env: &dyn Fn(&str) -> Option<String>,
    at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<(Env, Vec<String>), ConfigError> {
    let mut env = Vec::with_capacity(table.len());
    let mut secrets = Vec::new();
    for (key, value) in table {
        let span = value.span();
        match value.into_inner() {
            EnvValue::Literal(value) => env.push((key.0, value)),
            EnvValue::FromEnv(source_name) => {
                let value = lookup_env(&source_name).ok_or_else(|| {
                    at(
                        span,
                        format!(
                            "{owner}: env `{}` takes its value from the host environment variable `{source_name}`, which is not set; set it before starting the host",
                            key.0
                        ),
                    )
                })?;
                secrets.push(value.clone());
                env.push((key.0, value));
            }
        }
    }
    Ok((env, secrets))
}

/// Parses an app's `allowed_tcp` or `allowed_http` entries, each with
/// where it is written; an entry that does not parse is an error at it.
fn parse_rules<R>(
    entries: Option<Vec<Spanned<String>>>,
    key: &str,
    at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    locate_in: &dyn Fn(usize) -> crate::Location,
) -> Result<Option<Vec<(R, crate::Location)>>, ConfigError>
where
    R: std::str::FromStr,
    R::Err: std::fmt::Display,
{
    let Some(entries) = entries else {
        return Ok(None);
    };
    entries
        .into_iter()
        .map(|entry| {
            let rule = entry
                .get_ref()
                .parse::<R>()
                .map_err(|e| at(entry.span(), format!("invalid {key} entry {e}")))?;
            Ok((rule, locate_in(entry.span().start)))
        })
        .collect::<Result<Vec<_>, ConfigError>>()
        .map(Some)
}

/// Validates an app's `files` table: guest mount points and host folders.
pub(crate) fn mounts(
    base: &Path,
    files: BTreeMap<Spanned<String>, Spanned<MountValue>>,
) -> Result<Vec<crate::Mount>, (std::ops::Range<usize>, String)> {
    let mut mounts: Vec<crate::Mount> = Vec::with_capacity(files.len());
    for (guest, host) in files {
        let guest_path = guest_mount_path(guest.get_ref()).map_err(|m| (guest.span(), m))?;
        if mounts.iter().any(|m| m.guest_path == guest_path) {
            return Err((
                guest.span(),
                format!("mount point `{guest_path}` is given twice; mount one folder there"),
            ));
        }
        let host_span = host.span();
        let host = host.into_inner();
        let host_path = base.join(&host.path);
        match std::fs::metadata(&host_path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err((
                    host_span,
                    format!(
                        "`{}` ({}) is not a folder; mount a folder",
                        host.path,
                        host_path.display()
                    ),
                ));
            }
            Err(_) => {
                return Err((
                    host_span,
                    format!(
                        "folder `{}` does not exist (looked for {}); paths are relative to the configuration file",
                        host.path,
                        host_path.display()
                    ),
                ));
            }
        }
        mounts.push(crate::Mount {
            guest_path,
            host_path,
            writable: host.writable,
        });
    }
    Ok(mounts)
}

/// Where a `file_path` was found.
pub(crate) enum Resolved {
    /// Relative to the configuration's folder, as documented.
    NextToConfig(PathBuf),
    /// Relative to the working directory, where the original
    /// serverless-wasm looked (its README runs the host from the
    /// repository root with paths such as `./samples/testfunc.wasm`).
    InWorkingDirectory {
        file: PathBuf,
        /// Where it was looked for first.
        looked_for: PathBuf,
    },
}

/// Resolves `file_path` against the configuration's folder, then the
/// working directory, and checks that it names a file.
pub(crate) fn resolve_component(base: &Path, file_path: &str) -> Result<Resolved, String> {
    if file_path.is_empty() {
        return Err("file_path is empty; name the component's .wasm file, relative to this configuration file".to_owned());
    }
    let file = base.join(file_path);
    let in_working_directory = Path::new(file_path);
    let found_elsewhere = !base.as_os_str().is_empty()
        && in_working_directory.is_relative()
        && std::fs::metadata(&file).is_err()
        && std::fs::metadata(in_working_directory).is_ok_and(|meta| meta.is_file());
    if found_elsewhere {
        return Ok(Resolved::InWorkingDirectory {
            file: in_working_directory.to_owned(),
            looked_for: file,
        });
    }
    match std::fs::metadata(&file) {
        Ok(meta) if meta.is_file() => Ok(Resolved::NextToConfig(file)),
        Ok(_) => Err(format!(
            "file_path `{file_path}` is a directory ({}); name the component's .wasm file",
            file.display()
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let also = if base.as_os_str().is_empty() || in_working_directory.is_absolute() {
                String::new()
            } else {
                format!(
                    ", then {} in the working directory",
                    in_working_directory.display()
                )
            };
            Err(format!(
                "component file `{file_path}` does not exist (looked for {}{also}); paths are relative to the configuration file",
                file.display()
            ))
        }
        Err(error) => Err(format!(
            "cannot read component file `{file_path}` ({}): {error}",
            file.display()
        )),
    }
}

/// The name of an app without `name`: its file stem, made unique with the
/// entry's position when another app already has it.
pub(crate) fn default_name(file: &Path, index: usize, taken: &mut HashSet<String>) -> String {
    let stem: String = file
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| if is_name_char(c) { c } else { '_' })
                .collect()
        })
        .filter(|s: &String| !s.is_empty())
        .unwrap_or_else(|| "app".to_owned());
    let mut name = stem.clone();
    let mut suffix = index + 1;
    while taken.contains(&name) {
        name = format!("{stem}-{suffix}");
        suffix += 1;
    }
    taken.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding `hello.wasm` and `other.wasm` (contents do not
    /// matter to the configuration).
    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.path().join("other.wasm"), b"\0asm").unwrap();
        dir
    }

    fn parse_in(dir: &tempfile::TempDir, text: &str) -> Result<Config, String> {
        parse(text, &dir.path().join("app.toml"), &|name| {
            (name == "SECRET_SOURCE").then(|| "s3cr3t-value".to_owned())
        })
        .map_err(|e| e.to_string())
    }

    fn first_line(error: String) -> String {
        let line = error.lines().next().unwrap();
        // Drop the temporary folder from the location.
        line.rsplit_once("app.toml:")
            .map(|(_, rest)| rest.to_owned())
            .unwrap()
    }

    #[test]
    fn the_seed_format_works_unchanged() {
        let dir = folder();
        let config = parse_in(
            &dir,
            r#"listen_address = "127.0.0.1:8080"
[[applications]]
file_path = "./hello.wasm"
method = "GET"
url_path = "/hello"
"#,
        )
        .unwrap();
        assert_eq!(config.listen_address.to_string(), "127.0.0.1:8080");
        let apps: Vec<&AppConfig> = config.apps().collect();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name, "hello");
        assert_eq!(apps[0].max_request_body, DEFAULT_MAX_REQUEST_BODY);
        assert!(
            matches!(&apps[0].component, ComponentSource::File(p) if p == &dir.path().join("./hello.wasm"))
        );
        let location = apps[0].location.as_ref().unwrap();
        assert_eq!((location.line, location.column), (3, 13));
    }

    #[test]
    fn optional_fields_are_read() {
        let dir = folder();
        let config = parse_in(
            &dir,
            r#"max_request_body = "1 MiB"
[[applications]]
name = "greeter"
file_path = "hello.wasm"
method = ["GET", "POST"]
url_path = "/users/:id"
env = { B = "2", A = "1" }
max_request_body = 5
timeout = "2s"
max_memory = "16 MiB"
max_concurrency = 4
fuel = 1000000
allowed_tcp = ["10.0.0.0/8:5432", "cache.internal:6379"]
tcp_connect_timeout = "250ms"
tcp_io_timeout = 3
max_tcp_connections = 2
"#,
        )
        .unwrap();
        assert_eq!(config.listen_address.to_string(), DEFAULT_LISTEN_ADDRESS);
        let (pattern, methods, app) = config.routes.routes().next().unwrap();
        let app = app.app().unwrap();
        assert_eq!(pattern.as_str(), "/users/:id");
        assert_eq!(methods.to_string(), "GET,POST");
        assert_eq!(app.name, "greeter");
        assert_eq!(
            app.env,
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(app.max_request_body, 5);
        assert_eq!(
            app.limits,
            AppLimits {
                timeout: std::time::Duration::from_secs(2),
                max_memory: 16 << 20,
                max_response_body: DEFAULT_MAX_RESPONSE_BODY,
                max_concurrency: Some(4),
                fuel: Some(1_000_000),
            }
        );
        let allowed: Vec<String> = app
            .outbound
            .allowed_tcp
            .as_ref()
            .unwrap()
            .iter()
            .map(|(r, l)| format!("{r}@{}", l.line))
            .collect();
        assert_eq!(allowed, ["10.0.0.0/8:5432@13", "cache.internal:6379@13"]);
        assert_eq!(
            app.outbound.connect_timeout,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(app.outbound.io_timeout, std::time::Duration::from_secs(3));
        assert_eq!(app.outbound.max_connections, 2);
    }

    #[test]
    fn env_values_can_come_from_the_host_environment_as_secrets() {
        let dir = folder();
        let config = parse_in(
            &dir,
            "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\n\
             env = { PLAIN = \"x\", TOKEN = { from_env = \"SECRET_SOURCE\" } }\n",
        )
        .unwrap();
        let app = config.apps().next().unwrap();
        assert_eq!(
            app.env,
            vec![
                ("PLAIN".into(), "x".into()),
                ("TOKEN".into(), "s3cr3t-value".into())
            ]
        );
        assert_eq!(app.secrets, vec!["s3cr3t-value".to_owned()]);

        let error = parse_in(
            &dir,
            "[[applications]]\nname = \"api\"\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\n\
             env = { TOKEN = { from_env = \"MISSING_VAR\" } }\n",
        )
        .unwrap_err();
        assert_eq!(
            first_line(error),
            "6:17: app `api`: env `TOKEN` takes its value from the host environment variable `MISSING_VAR`, which is not set; set it before starting the host"
        );
    }

    #[test]
    fn files_mount_host_folders_read_only_unless_writable() {
        let dir = folder();
        std::fs::create_dir(dir.path().join("public")).unwrap();
        std::fs::create_dir(dir.path().join("scratch")).unwrap();
        let config = parse_in(
            &dir,
            "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\n\
             [applications.files]\n\"/site/\" = \"public\"\n\"/tmp\" = { path = \"scratch\", writable = true }\n",
        )
        .unwrap();
        let app = config.apps().next().unwrap();
        assert_eq!(
            app.files,
            vec![
                crate::Mount {
                    guest_path: "/site".into(),
                    host_path: dir.path().join("public"),
                    writable: false
                },
                crate::Mount {
                    guest_path: "/tmp".into(),
                    host_path: dir.path().join("scratch"),
                    writable: true
                },
            ]
        );
        for (files, expected) in [
            (
                "\"site\" = \"public\"",
                "6:1: mount point `site` must be an absolute guest path",
            ),
            (
                "\"/a/../b\" = \"public\"",
                "6:1: mount point `/a/../b` has an empty, `.` or `..` segment",
            ),
            (
                "\"/x\" = \"nowhere\"",
                "6:8: folder `nowhere` does not exist",
            ),
            ("\"/x\" = \"hello.wasm\"", "6:8: `hello.wasm`"),
            (
                "\"/x\" = { path = \"public\", writeable = true }",
                "6:27: unknown field `writeable`, expected `path` or `writable`",
            ),
        ] {
            let text = format!(
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\n[applications.files]\n{files}\n"
            );
            let error = first_line(parse_in(&dir, &text).unwrap_err());
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
    }

    #[test]
    fn default_names_stay_unique() {
        let dir = folder();
        let config = parse_in(
            &dir,
            r#"
[[applications]]
file_path = "hello.wasm"
method = "GET"
url_path = "/a"
[[applications]]
file_path = "hello.wasm"
method = "GET"
url_path = "/b"
[[applications]]
name = "other"
file_path = "hello.wasm"
method = "GET"
url_path = "/c"
[[applications]]
file_path = "other.wasm"
method = "GET"
url_path = "/d"
"#,
        )
        .unwrap();
        let names: Vec<&str> = config.apps().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["hello", "hello-2", "other", "other-4"]);
    }

    #[test]
    fn errors_point_at_the_value() {
        let dir = folder();
        let cases: &[(&str, &str)] = &[
            (
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GETT\"\nurl_path = \"/a\"\n",
                "3:10: unknown method `GETT`",
            ),
            (
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"a\"\n",
                "4:12: route `a` must start with `/`",
            ),
            (
                "[[applications]]\nfile_path = \"missing.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\n",
                "2:13: component file `missing.wasm` does not exist",
            ),
            (
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\nmethdo = 1\n",
                "5:1: unknown field `methdo`",
            ),
            (
                "listen_address = \"nowhere\"\n",
                "1:18: `nowhere` is not an IP address with a port",
            ),
            ("", "1:1: the configuration has no applications"),
            (
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\nmax_request_body = \"lots\"\n",
                "5:20: `lots` is not a size",
            ),
            (
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\nallowed_tcp = [\"ok:1\", \"nope\"]\n",
                "5:24: invalid allowed_tcp entry `nope`: the rule has no port",
            ),
            (
                "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\ntcp_io_timeout = \"0s\"\n",
                "5:18: `0s` is not a positive duration",
            ),
        ];
        for (text, expected) in cases {
            let error = first_line(parse_in(&dir, text).unwrap_err());
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
    }

    #[test]
    fn conflicting_routes_name_both_entries() {
        let dir = folder();
        let error = parse_in(
            &dir,
            r#"[[applications]]
name = "one"
file_path = "hello.wasm"
method = "ANY"
url_path = "/users/:id"

[[applications]]
name = "two"
file_path = "other.wasm"
method = "POST"
url_path = "/users/:name"
"#,
        )
        .unwrap_err();
        assert_eq!(
            first_line(error),
            "11:12: route POST /users/:name of app `two` overlaps route ANY /users/:id of app `one` at line 5; change the path or the methods so that each request has one route"
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = folder();
        let error = parse_in(
            &dir,
            "[[applications]]\nname = \"x\"\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/a\"\n\
             [[applications]]\nname = \"x\"\nfile_path = \"hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/b\"\n",
        )
        .unwrap_err();
        assert!(
            first_line(error).starts_with("7:8: app name `x` is already used by the app at line 2")
        );
    }

    #[test]
    fn routes_to_services_take_the_service_s_address_and_their_own_limits() {
        let dir = folder();
        let config = parse_in(
            &dir,
            r#"timeout = "10s"

[[applications]]
method = "ANY"
url_path = "/api/*"
service = "api"
timeout = "2s"
max_concurrency = 8

[[applications]]
name = "api-admin"
method = "GET"
url_path = "/admin"
service = "api"

[[applications]]
name = "other"
method = "GET"
url_path = "/other"
service = "other"

[[services]]
name = "api"
file_path = "hello.wasm"
http = "127.0.0.1:9001"

[[services]]
name = "other"
file_path = "other.wasm"
http = "[::1]:9002"
"#,
        )
        .unwrap();
        let routes: Vec<&crate::ServiceRoute> = config
            .routes
            .routes()
            .map(|(_, _, target)| match target {
                crate::RouteTarget::Service(route) => route,
                other => panic!("{other:?} is not a service route"),
            })
            .collect();
        let names: Vec<(&str, &str, String)> = routes
            .iter()
            .map(|r| (r.name.as_str(), r.service.as_str(), r.address.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("api", "api", "127.0.0.1:9001".to_owned()),
                ("api-admin", "api", "127.0.0.1:9001".to_owned()),
                ("other", "other", "[::1]:9002".to_owned()),
            ]
        );
        assert_eq!(routes[0].timeout, std::time::Duration::from_secs(2));
        assert_eq!(routes[0].max_concurrency, Some(8));
        assert_eq!(routes[1].timeout, std::time::Duration::from_secs(10));
        assert_eq!(routes[1].max_request_body, DEFAULT_MAX_REQUEST_BODY);
        assert_eq!(config.apps().count(), 0);
        let http: Vec<String> = config
            .services
            .iter()
            .map(|s| {
                let (address, at) = s.http.as_ref().unwrap();
                format!("{address} at {}:{}", at.line, at.column)
            })
            .collect();
        assert_eq!(http, ["127.0.0.1:9001 at 25:8", "[::1]:9002 at 30:8"]);
    }

    #[test]
    fn a_route_to_a_service_is_checked_against_it() {
        let dir = folder();
        let service = "[[services]]\nname = \"api\"\nfile_path = \"hello.wasm\"\n";
        let route = "[[applications]]\nmethod = \"GET\"\nurl_path = \"/a\"\n";
        let cases: &[(String, &str)] = &[
            (
                format!("{route}service = \"api\"\n{service}"),
                "4:11: service `api` (line 6) has no `http` address for routes to reach it",
            ),
            (
                format!("{route}service = \"nope\"\n{service}http = \"127.0.0.1:1\"\n"),
                "4:11: no service is named `nope` (the services are `api`)",
            ),
            (
                format!("{route}service = \"api\"\nfuel = 5\n{service}http = \"127.0.0.1:1\"\n"),
                "5:1: `fuel` does not apply to a route to service `api`",
            ),
            (
                format!("{service}http = \"10.0.0.1:80\"\n"),
                "4:8: http `10.0.0.1:80` is not a loopback address",
            ),
            (
                format!("{service}http = \"127.0.0.1:0\"\n"),
                "4:8: http `127.0.0.1:0` has port 0",
            ),
            (
                format!("{service}http = \"localhost:80\"\n"),
                "4:8: http `localhost:80` is not an IP address with a port",
            ),
        ];
        for (text, expected) in cases {
            let error = first_line(parse_in(&dir, text).unwrap_err());
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
        // A route may carry its service's name, but only one may.
        let twice = format!(
            "{route}name = \"api\"\nservice = \"api\"\n[[applications]]\nmethod = \"POST\"\nurl_path = \"/a\"\nservice = \"api\"\n{service}http = \"127.0.0.1:1\"\n"
        );
        assert_eq!(
            first_line(parse_in(&dir, &twice).unwrap_err()),
            "9:11: the route at line 1 to service `api` already takes the service's name; give this route a `name`, or list both methods in one entry"
        );
    }

    #[test]
    fn a_service_runs_alike_when_only_its_place_in_the_file_moved() {
        let dir = folder();
        let entry = "name = \"s\"\nfile_path = \"hello.wasm\"\nlisten = [\"127.0.0.1:9000\"]\nhttp = \"127.0.0.1:9000\"\n";
        let service = |text: &str| parse_in(&dir, text).unwrap().services.remove(0);
        let one = service(&format!("[[services]]\n{entry}"));
        let moved = service(&format!("# moved\n\n[[services]]\n{entry}"));
        assert_ne!(one.location, moved.location);
        assert!(one.runs_like(&moved));
        for change in [
            "args = [\"x\"]\n",
            "restart = \"always\"\n",
            "max_memory = \"1 MiB\"\n",
            "env = { A = \"1\" }\n",
            "allowed_tcp = [\"db:5432\"]\n",
        ] {
            let changed = service(&format!("[[services]]\n{entry}{change}"));
            assert!(!one.runs_like(&changed), "{change}");
        }
        let other_file = service(&format!(
            "[[services]]\n{}",
            entry.replace("hello.wasm", "other.wasm")
        ));
        assert!(!one.runs_like(&other_file));
    }

    #[test]
    fn a_key_is_found_on_its_own_line_of_its_own_entry() {
        let source = "[[applications]]\nenvx = 1\nenv = {}\n\n[[services]]\nfuel = 1\n";
        let at = |key: &str| key_span(source, 0..16, key).map(|span| &source[span]);
        assert_eq!(at("env"), Some("env"));
        assert_eq!(key_span(source, 0..16, "env"), Some(26..29));
        // Not in the next table, nor a key that only starts the same.
        assert_eq!(at("fuel"), None);
        assert_eq!(at("en"), None);
        let tables = "[[applications]]\nmethod = \"GET\"\n[applications.files]\n\"/a\" = \"b\"\n";
        assert_eq!(
            key_span(tables, 0..16, "files").map(|span| &tables[span]),
            Some("[applications.files]")
        );
        // An inline entry has no lines of its own.
        let inline = "applications = [{ service = \"api\", env = {} }]\nenv = 1\n";
        assert_eq!(key_span(inline, 16..44, "env"), None);
    }

    #[test]
    fn diagnostics_underline_the_value() {
        let dir = folder();
        let error = parse_in(
            &dir,
            "[[applications]]\nfile_path = \"hello.wasm\"\nmethod = \"GETT\"\nurl_path = \"/a\"\n",
        )
        .unwrap_err();
        let rendered: Vec<&str> = error.lines().skip(1).collect();
        assert_eq!(
            rendered,
            ["  |", "3 | method = \"GETT\"", "  |          ^^^^^^"]
        );
    }
}
