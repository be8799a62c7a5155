//! One route table from the configuration's routes and the catalog's
//! active versions. The configuration's come first; each catalog app's
//! routes are added after, and one that overlaps another route is refused
//! with the configuration's own message, naming the other route's app and
//! where it comes from. A catalog app may not take the name of one of the
//! configuration's apps or services either.

use std::collections::HashMap;

use serverless_config::{RouteTable, RouteTarget};

use super::spec::SpecRoute;

/// A catalog app's routes, ready to join the table.
pub(crate) struct CatalogRoutes {
    /// Its name in the host (see [`super::runtime_name`]).
    pub(crate) name: String,
    /// `version N` of the app, for messages.
    pub(crate) version: i64,
    pub(crate) routes: Vec<SpecRoute>,
}

/// Where a route of the table comes from, for conflict messages; with
/// its place in the configuration file when `reveal`.
fn origin_of(target: &RouteTarget, reveal: bool) -> String {
    let (name, location) = match target {
        RouteTarget::App(app) => (&app.name, &app.location),
        RouteTarget::Service(route) => (&route.name, &route.location),
        RouteTarget::Publish(route) => (&route.name, &route.location),
    };
    match location {
        Some(location) if reveal => format!("app `{name}` ({location})"),
        _ => format!("app `{name}`"),
    }
}

/// Adds `apps` to `table` (the configuration's routes), or says which
/// route the first conflicting one overlaps, with the configuration's
/// file and line when `reveal`. `service_names` are the configuration's
/// service names, which no app may take either.
pub(crate) fn merge(
    mut table: RouteTable<RouteTarget>,
    service_names: &[String],
    apps: Vec<CatalogRoutes>,
    reveal: bool,
) -> Result<RouteTable<RouteTarget>, String> {
    let mut origins: Vec<String> = table
        .routes()
        .map(|(_, _, t)| origin_of(t, reveal))
        .collect();
    let mut names: HashMap<String, String> = table
        .routes()
        .map(|(_, _, t)| (t.name().to_owned(), origin_of(t, reveal)))
        .collect();
    for service in service_names {
        names.insert(service.clone(), format!("service `{service}`"));
    }
    for app in apps {
        if let Some(other) = names.get(&app.name) {
            return Err(format!(
                "app name `{}` is already used by the configuration's {other}; deploy under another name",
                app.name
            ));
        }
        let origin = format!("app `{}` version {}", app.name, app.version);
        for route in app.routes {
            let pattern = route.pattern.as_str().to_owned();
            table
                .insert(
                    route.pattern,
                    route.methods,
                    RouteTarget::App(Box::new(route.app)),
                )
                .map_err(|conflict| {
                    format!(
                        "route {} {} of {origin} overlaps route {} {} of {}{}; change the path or the methods so that each request has one route",
                        conflict.methods,
                        pattern,
                        conflict.existing_methods,
                        conflict.existing_pattern,
                        origins[conflict.existing_index],
                        if conflict.implied_head {
                            " (a GET route also answers HEAD)"
                        } else {
                            ""
                        },
                    )
                })?;
            origins.push(origin.clone());
        }
        names.insert(app.name.clone(), origin);
    }
    Ok(table)
}
