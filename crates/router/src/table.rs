//! The route table: every route of one configuration, found through a
//! segment trie in match order.

use std::borrow::Cow;
use std::ops::ControlFlow;

use percent_encoding::percent_decode_str;

use crate::method::{MethodFilter, MethodSet};
use crate::pattern::RoutePattern;
use crate::trie::Node;

/// The routes of one configuration. A request's path is matched segment
/// by segment, more specific patterns first, so a lookup costs the same
/// with one route or ten thousand.
#[derive(Debug)]
pub struct RouteTable<T> {
    /// In insertion order; the trie refers to routes by position here.
    routes: Vec<Route<T>>,
    trie: Node,
}

#[derive(Debug)]
struct Route<T> {
    pattern: RoutePattern,
    methods: MethodFilter,
    value: T,
}

/// A route that would make requests ambiguous with one already in the
/// table: the same paths and at least one common method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "route {methods} {pattern} conflicts with an earlier route {existing_methods} {existing_pattern}"
)]
pub struct RouteConflict {
    /// The rejected route's pattern.
    pub pattern: String,
    /// The rejected route's methods.
    pub methods: MethodFilter,
    /// The earlier route's pattern.
    pub existing_pattern: String,
    /// The earlier route's methods.
    pub existing_methods: MethodFilter,
    /// The earlier route's position in insertion order.
    pub existing_index: usize,
    /// Whether the routes share only the `HEAD` that a `GET` route
    /// answers.
    pub implied_head: bool,
}

/// The answer to one request.
#[derive(Debug)]
pub enum Lookup<'a, T> {
    /// A route serves the request.
    Found(RouteMatch<'a, T>),
    /// Some routes match the path, none the method: answer `405` with this
    /// set in the `Allow` header.
    MethodNotAllowed(MethodSet),
    /// No route matches the path: answer `404`.
    NotFound,
    /// The path has a percent-escape that does not decode to UTF-8 text:
    /// answer `400`.
    BadPath,
}

/// A route that serves a request, with the values of its parameters.
#[derive(Debug)]
pub struct RouteMatch<'a, T> {
    /// What was stored with the route.
    pub value: &'a T,
    /// The pattern that matched.
    pub pattern: &'a RoutePattern,
    /// Parameter values, percent-decoded, in pattern order.
    pub params: Vec<(String, String)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable {
            routes: Vec::new(),
            trie: Node::default(),
        }
    }
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, refusing it when an existing route matches the same
    /// paths with a common method.
    pub fn insert(
        &mut self,
        pattern: RoutePattern,
        methods: MethodFilter,
        value: T,
    ) -> Result<(), RouteConflict> {
        // Routes of the same shape share one list of the trie: only they
        // can conflict.
        let slot = self.trie.slot(pattern.segments());
        if let Some(&existing_index) = slot
            .iter()
            .find(|&&index| self.routes[index].methods.overlaps(methods))
        {
            let existing = &self.routes[existing_index];
            return Err(RouteConflict {
                pattern: pattern.as_str().to_owned(),
                methods,
                existing_pattern: existing.pattern.as_str().to_owned(),
                existing_methods: existing.methods,
                existing_index,
                implied_head: existing.methods.overlap_is_implied_head(methods),
            });
        }
        slot.push(self.routes.len());
        self.routes.push(Route {
            pattern,
            methods,
            value,
        });
        Ok(())
    }

    /// Finds the route for a request. `raw_path` is the path as received,
    /// still percent-encoded and without the query string.
    pub fn lookup(&self, method: &str, raw_path: &str) -> Lookup<'_, T> {
        let Some(segments) = decode_segments(raw_path) else {
            return Lookup::BadPath;
        };
        let mut allowed = 0u16;
        let mut path_matched = false;
        let mut found = None;
        // The first route that matches the path and allows the method
        // serves it; the others that match the path make up the `Allow`
        // header of a `405`.
        let _ = self.trie.matches(&segments, &mut |index| {
            let route = &self.routes[index];
            if route.methods.allows(method) {
                found = Some(route);
                return ControlFlow::Break(());
            }
            path_matched = true;
            route.methods.add_to(&mut allowed);
            ControlFlow::Continue(())
        });
        match found {
            Some(route) => Lookup::Found(RouteMatch {
                value: &route.value,
                pattern: &route.pattern,
                params: route.pattern.capture(&segments),
            }),
            None if path_matched => Lookup::MethodNotAllowed(MethodSet::from_bits(allowed)),
            None => Lookup::NotFound,
        }
    }

    /// Every route in insertion order, for printing the table.
    pub fn routes(&self) -> impl Iterator<Item = (&RoutePattern, MethodFilter, &T)> {
        self.routes
            .iter()
            .map(|r| (&r.pattern, r.methods, &r.value))
    }

    /// Converts every stored value, keeping the routes and their order.
    pub fn try_map<U, E>(
        self,
        mut convert: impl FnMut(T) -> Result<U, E>,
    ) -> Result<RouteTable<U>, E> {
        let routes = self
            .routes
            .into_iter()
            .map(|r| {
                Ok(Route {
                    pattern: r.pattern,
                    methods: r.methods,
                    value: convert(r.value)?,
                })
            })
            .collect::<Result<_, E>>()?;
        Ok(RouteTable {
            routes,
            trie: self.trie,
        })
    }

    /// How many routes the table holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table holds no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Splits a raw request path into percent-decoded segments; `None` when a
/// segment does not decode to UTF-8 or the path does not start with `/`.
fn decode_segments(raw_path: &str) -> Option<Vec<Cow<'_, str>>> {
    let rest = raw_path.strip_prefix('/')?;
    rest.split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(names: &[&str]) -> MethodFilter {
        MethodFilter::from_names(names.iter().copied()).unwrap()
    }

    fn table(routes: &[(&str, &[&str], &'static str)]) -> RouteTable<&'static str> {
        let mut table = RouteTable::new();
        for (pattern, methods, value) in routes {
            table
                .insert(pattern.parse().unwrap(), filter(methods), *value)
                .unwrap();
        }
        table
    }

    fn found(
        table: &RouteTable<&'static str>,
        method: &str,
        path: &str,
    ) -> (&'static str, Vec<(String, String)>) {
        match table.lookup(method, path) {
            Lookup::Found(m) => (*m.value, m.params),
            other => panic!("{method} {path}: expected a match, got {other:?}"),
        }
    }

    #[test]
    fn literal_beats_parameter_beats_wildcard() {
        let t = table(&[
            ("/files/*", &["GET"], "wildcard"),
            ("/files/:name", &["GET"], "param"),
            ("/files/readme", &["GET"], "literal"),
        ]);
        assert_eq!(found(&t, "GET", "/files/readme").0, "literal");
        assert_eq!(found(&t, "GET", "/files/other").0, "param");
        assert_eq!(found(&t, "GET", "/files/a/b").0, "wildcard");
        assert_eq!(found(&t, "GET", "/files").0, "wildcard");
    }

    #[test]
    fn earlier_literal_segment_wins() {
        let t = table(&[
            ("/:a/b", &["GET"], "second-literal"),
            ("/a/:b", &["GET"], "first-literal"),
        ]);
        assert_eq!(found(&t, "GET", "/a/b").0, "first-literal");
    }

    #[test]
    fn a_less_specific_route_serves_a_method_the_specific_one_lacks() {
        let t = table(&[
            ("/users/new", &["GET"], "form"),
            ("/users/:id", &["POST"], "update"),
        ]);
        assert_eq!(found(&t, "POST", "/users/new").0, "update");
        assert_eq!(found(&t, "GET", "/users/new").0, "form");
    }

    #[test]
    fn wrong_method_gives_405_with_every_matching_method() {
        let t = table(&[
            ("/items/:id", &["GET"], "read"),
            ("/items/:n", &["PUT", "DELETE"], "write"),
        ]);
        match t.lookup("POST", "/items/3") {
            Lookup::MethodNotAllowed(set) => {
                assert_eq!(set.to_allow_header(), "GET, HEAD, PUT, DELETE")
            }
            other => panic!("expected 405, got {other:?}"),
        }
        assert!(matches!(t.lookup("GET", "/nothing"), Lookup::NotFound));
    }

    #[test]
    fn any_route_serves_extension_methods_and_head_uses_get() {
        let t = table(&[("/echo", &["ANY"], "echo"), ("/hello", &["GET"], "hello")]);
        assert_eq!(found(&t, "PROPFIND", "/echo").0, "echo");
        assert_eq!(found(&t, "HEAD", "/hello").0, "hello");
    }

    #[test]
    fn parameters_are_percent_decoded() {
        let t = table(&[("/users/:name", &["GET"], "user")]);
        let (_, params) = found(&t, "GET", "/users/J%C3%BCrgen%20K");
        assert_eq!(params, vec![("name".to_owned(), "Jürgen K".to_owned())]);
        assert!(matches!(t.lookup("GET", "/users/%FF"), Lookup::BadPath));
    }

    #[test]
    fn conflicts_name_the_earlier_route() {
        let mut t = table(&[("/users/:id", &["GET", "POST"], "a")]);
        let err = t
            .insert("/users/:name".parse().unwrap(), filter(&["POST"]), "b")
            .unwrap_err();
        assert_eq!(err.existing_index, 0);
        assert_eq!(
            err.to_string(),
            "route POST /users/:name conflicts with an earlier route GET,POST /users/:id"
        );
        assert!(
            t.insert("/users/:name".parse().unwrap(), filter(&["DELETE"]), "c")
                .is_ok()
        );
        assert!(
            t.insert("/users/:name".parse().unwrap(), filter(&["ANY"]), "d")
                .is_err()
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_head_route_conflicts_with_a_get_route_on_the_same_paths() {
        let mut t = table(&[("/items/:id", &["GET"], "get")]);
        let err = t
            .insert("/items/:name".parse().unwrap(), filter(&["HEAD"]), "head")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "route HEAD /items/:name conflicts with an earlier route GET /items/:id"
        );
        assert!(err.implied_head);
        let mut t = table(&[("/items", &["HEAD"], "head")]);
        let err = t
            .insert("/items".parse().unwrap(), filter(&["GET", "POST"]), "get")
            .unwrap_err();
        assert!(err.implied_head);
        let err = t
            .insert("/items".parse().unwrap(), filter(&["HEAD"]), "again")
            .unwrap_err();
        assert!(!err.implied_head, "a HEAD route named twice");
    }

    #[test]
    fn routes_are_listed_in_insertion_order() {
        let t = table(&[
            ("/b/*", &["GET"], "1"),
            ("/a", &["GET"], "2"),
            ("/:c", &["GET"], "3"),
        ]);
        let order: Vec<&str> = t.routes().map(|(_, _, v)| *v).collect();
        assert_eq!(order, ["1", "2", "3"]);
    }
}
