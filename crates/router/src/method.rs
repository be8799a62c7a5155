//! HTTP methods as they appear in route configuration.

use std::fmt;

/// One of the standard HTTP methods that a route may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`; a `GET` route also answers `HEAD`.
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
    /// `CONNECT`
    Connect,
    /// `TRACE`
    Trace,
}

impl Method {
    /// Every method, in the order used for `Allow` headers and messages.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
        Method::Connect,
        Method::Trace,
    ];

    /// The method's name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
        }
    }

    /// Parses a method name exactly as sent on the wire (methods are case
    /// sensitive). Returns `None` for extension methods such as `PROPFIND`.
    pub fn from_wire(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The methods a route answers: `ANY` or a set of standard methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MethodFilter {
    /// Every method, extension methods included.
    Any,
    /// Only these methods (a bit set over [`Method`]); never empty.
    Only(MethodSet),
}

/// A non-empty set of [`Method`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MethodSet(u16);

impl MethodSet {
    /// The methods in the set, in [`Method::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Method> {
        Method::ALL
            .into_iter()
            .filter(move |m| self.0 & m.bit() != 0)
    }

    fn contains(self, method: Method) -> bool {
        self.0 & method.bit() != 0
    }
}

/// Why a configured method list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    /// Not a standard method and not `ANY`.
    #[error("unknown method `{0}`; use one of {choices}", choices = METHOD_CHOICES)]
    Unknown(String),
    /// A standard method written in lower or mixed case.
    #[error("method `{0}` must be written in upper case: `{upper}`", upper = .0.to_ascii_uppercase())]
    NotUpperCase(String),
    /// An empty list.
    #[error("no method given; use one of {choices}", choices = METHOD_CHOICES)]
    Empty,
    /// `ANY` next to other methods, which it already covers.
    #[error("`ANY` already covers every method; write either `ANY` alone or a list of methods")]
    AnyWithOthers,
}

const METHOD_CHOICES: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE or ANY";

impl MethodFilter {
    /// Builds a filter from configuration names such as `["GET", "POST"]`
    /// or `["ANY"]`. Names are upper case; `ANY` may not be combined with
    /// others because it already covers them.
    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<MethodFilter, MethodError> {
        let mut set = 0u16;
        let mut any = false;
        let mut count = 0usize;
        for name in names {
            count += 1;
            if name == "ANY" {
                any = true;
            } else if let Some(method) = Method::from_wire(name) {
                set |= method.bit();
            } else {
                let upper = name.to_ascii_uppercase();
                if upper == "ANY" || Method::from_wire(&upper).is_some() {
                    return Err(MethodError::NotUpperCase(name.to_owned()));
                }
                return Err(MethodError::Unknown(name.to_owned()));
            }
        }
        match (any, set) {
            (true, _) if count == 1 => Ok(MethodFilter::Any),
            (true, _) => Err(MethodError::AnyWithOthers),
            (false, 0) => Err(MethodError::Empty),
            (false, set) => Ok(MethodFilter::Only(MethodSet(set))),
        }
    }

    /// Whether a request with this method (as sent on the wire) is served
    /// by the route. `HEAD` is served by `GET` routes.
    pub fn allows(self, method: &str) -> bool {
        match self {
            MethodFilter::Any => true,
            MethodFilter::Only(set) => match Method::from_wire(method) {
                Some(Method::Head) => set.contains(Method::Head) || set.contains(Method::Get),
                Some(m) => set.contains(m),
                None => false,
            },
        }
    }

    /// Whether some request method would be served by both filters,
    /// counting the `HEAD` that a `GET` route answers.
    pub fn overlaps(self, other: MethodFilter) -> bool {
        match (self.allowed_methods(), other.allowed_methods()) {
            (Some(a), Some(b)) => a.0 & b.0 != 0,
            _ => true,
        }
    }

    /// Whether the filters overlap only because a `GET` route also
    /// answers `HEAD`, so that an error can say why.
    pub fn overlap_is_implied_head(self, other: MethodFilter) -> bool {
        match (self, other) {
            (MethodFilter::Only(a), MethodFilter::Only(b)) => {
                a.0 & b.0 == 0 && self.overlaps(other)
            }
            _ => false,
        }
    }

    /// The methods to list in an `Allow` header for this filter, `HEAD`
    /// included where `GET` implies it. `None` for `ANY`.
    pub fn allowed_methods(self) -> Option<MethodSet> {
        match self {
            MethodFilter::Any => None,
            MethodFilter::Only(set) if set.contains(Method::Get) => {
                Some(MethodSet(set.0 | Method::Head.bit()))
            }
            MethodFilter::Only(set) => Some(set),
        }
    }

    /// Adds this filter's methods to `set`, for building an `Allow` header.
    pub(crate) fn add_to(self, set: &mut u16) {
        if let Some(methods) = self.allowed_methods() {
            *set |= methods.0;
        }
    }
}

impl MethodSet {
    pub(crate) fn from_bits(bits: u16) -> MethodSet {
        MethodSet(bits)
    }

    /// The set as an `Allow` header value, for example `GET, HEAD, POST`.
    pub fn to_allow_header(self) -> String {
        let names: Vec<&str> = self.iter().map(Method::as_str).collect();
        names.join(", ")
    }
}

impl fmt::Display for MethodFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MethodFilter::Any => f.write_str("ANY"),
            MethodFilter::Only(set) => {
                let names: Vec<&str> = set.iter().map(Method::as_str).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(names: &[&str]) -> MethodFilter {
        MethodFilter::from_names(names.iter().copied()).unwrap()
    }

    #[test]
    fn any_allows_every_method_including_extensions() {
        let any = filter(&["ANY"]);
        assert!(any.allows("GET"));
        assert!(any.allows("PROPFIND"));
        assert_eq!(any.to_string(), "ANY");
    }

    #[test]
    fn get_route_answers_head_but_not_post() {
        let get = filter(&["GET"]);
        assert!(get.allows("GET"));
        assert!(get.allows("HEAD"));
        assert!(!get.allows("POST"));
        assert!(!get.allows("get"), "methods on the wire are case sensitive");
        let allow: Vec<Method> = get.allowed_methods().unwrap().iter().collect();
        assert_eq!(allow, vec![Method::Get, Method::Head]);
    }

    #[test]
    fn sets_overlap_only_when_they_share_a_method() {
        assert!(filter(&["GET", "POST"]).overlaps(filter(&["POST"])));
        assert!(!filter(&["GET"]).overlaps(filter(&["POST", "PUT"])));
        assert!(filter(&["ANY"]).overlaps(filter(&["DELETE"])));
        // A GET route answers HEAD too.
        for (a, b) in [(&["GET"][..], &["HEAD"][..]), (&["HEAD"], &["GET", "PUT"])] {
            assert!(filter(a).overlaps(filter(b)), "{a:?} {b:?}");
            assert!(filter(a).overlap_is_implied_head(filter(b)), "{a:?} {b:?}");
        }
        assert!(!filter(&["GET"]).overlap_is_implied_head(filter(&["GET"])));
        assert!(!filter(&["HEAD"]).overlaps(filter(&["POST"])));
        assert_eq!(filter(&["POST", "GET"]).to_string(), "GET,POST");
    }

    #[test]
    fn bad_names_say_what_to_write() {
        let err = MethodFilter::from_names(["GETT"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown method `GETT`; use one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, CONNECT, TRACE or ANY"
        );
        let err = MethodFilter::from_names(["post"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "method `post` must be written in upper case: `POST`"
        );
        assert_eq!(
            MethodFilter::from_names(["ANY", "GET"]),
            Err(MethodError::AnyWithOthers)
        );
        assert_eq!(
            MethodFilter::from_names(std::iter::empty()),
            Err(MethodError::Empty)
        );
    }
}
