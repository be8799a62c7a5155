//! Routing for serverless-wasm: which app answers a request.
//!
//! A route is a [`RoutePattern`] (`/users/:id`, `/static/*`) plus a
//! [`MethodFilter`] (`GET`, `ANY`, ...). A [`RouteTable`] holds the routes of
//! one configuration, refuses ambiguous ones when they are added, and answers
//! each request with a [`Lookup`]: a match with its parameters, a `405` with
//! the methods that would have matched, or a `404`.

mod method;
mod pattern;
mod table;
mod trie;

pub use method::{Method, MethodError, MethodFilter};
pub use pattern::{InvalidPattern, RoutePattern, WILDCARD_PARAM};
pub use table::{Lookup, RouteConflict, RouteMatch, RouteTable};
