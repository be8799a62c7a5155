//! Route patterns: `/hello`, `/users/:id`, `/static/*`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

/// The parameter name under which a trailing `*` delivers the rest of the
/// path.
pub const WILDCARD_PARAM: &str = "*";

/// A parsed `url_path` from the configuration.
///
/// Segments are separated by `/`. A segment is either literal text, a
/// parameter `:name` that matches exactly one non-empty segment, or, as the
/// last segment only, `*`, which matches the rest of the path (possibly
/// nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Literal text, percent-decoded.
    Literal(String),
    /// `:name`
    Param(String),
    /// A trailing `*`.
    Wildcard,
}

impl Segment {
    fn same_shape(&self, other: &Segment) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Param(_), Segment::Param(_)) | (Segment::Wildcard, Segment::Wildcard) => true,
            _ => false,
        }
    }
}

/// Why a `url_path` is not a valid route pattern. Each message says how to
/// write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPattern {
    /// The pattern does not start with `/`.
    #[error("route `{0}` must start with `/`, for example `/{0}`")]
    NoLeadingSlash(String),
    /// Two slashes in a row.
    #[error("route `{0}` has an empty segment (`//`); remove the extra `/`")]
    EmptySegment(String),
    /// A `?` or `#` in the pattern.
    #[error(
        "route `{0}` contains `{1}`; routes match the path only, so remove the query or fragment"
    )]
    QueryOrFragment(String, char),
    /// Whitespace or a control character in the pattern.
    #[error(
        "route `{0}` contains whitespace or a control character; percent-encode it (a space is `%20`)"
    )]
    Whitespace(String),
    /// `:` with no name or a name with characters other than letters,
    /// digits and `_`.
    #[error(
        "route `{0}` has an invalid parameter `{1}`; a parameter is `:` followed by letters, digits or `_`, for example `:id`"
    )]
    BadParamName(String, String),
    /// The same parameter name twice.
    #[error("route `{0}` uses the parameter `:{1}` twice; give each parameter its own name")]
    DuplicateParam(String, String),
    /// `*` somewhere other than as the whole last segment.
    #[error(
        "route `{0}` has `*` inside or before other segments; `*` may only be the whole last segment, as in `/static/*`"
    )]
    MisplacedWildcard(String),
    /// A `%` escape that does not decode to UTF-8 text.
    #[error(
        "route `{0}` has a percent-escape that is not UTF-8 text; write the segment as plain text"
    )]
    BadEscape(String),
}

impl FromStr for RoutePattern {
    type Err = InvalidPattern;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let owned = || text.to_owned();
        let Some(rest) = text.strip_prefix('/') else {
            return Err(InvalidPattern::NoLeadingSlash(owned()));
        };
        if let Some(c) = text.chars().find(|c| *c == '?' || *c == '#') {
            return Err(InvalidPattern::QueryOrFragment(owned(), c));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidPattern::Whitespace(owned()));
        }
        let raw: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (index, part) in raw.iter().enumerate() {
            let last = index + 1 == raw.len();
            if part.is_empty() && !last {
                return Err(InvalidPattern::EmptySegment(owned()));
            }
            if let Some(name) = part.strip_prefix(':') {
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(InvalidPattern::BadParamName(owned(), (*part).to_owned()));
                }
                let duplicate = segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(existing) if existing == name));
                if duplicate {
                    return Err(InvalidPattern::DuplicateParam(owned(), name.to_owned()));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if *part == "*" && last {
                segments.push(Segment::Wildcard);
            } else if part.contains('*') {
                return Err(InvalidPattern::MisplacedWildcard(owned()));
            } else {
                let decoded = percent_decode_str(part)
                    .decode_utf8()
                    .map_err(|_| InvalidPattern::BadEscape(owned()))?;
                segments.push(Segment::Literal(decoded.into_owned()));
            }
        }
        Ok(RoutePattern {
            text: text.to_owned(),
            segments,
        })
    }
}

impl RoutePattern {
    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The names of the pattern's parameters, `*` included, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Wildcard => Some(WILDCARD_PARAM),
            Segment::Literal(_) => None,
        })
    }

    pub(crate) fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether both patterns match exactly the same paths (parameter names
    /// aside), which makes two routes with overlapping methods ambiguous.
    pub fn same_shape(&self, other: &RoutePattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a.same_shape(b))
    }

    /// Matches already-decoded path segments, returning the parameters in
    /// pattern order.
    #[cfg(test)]
    pub(crate) fn match_segments(&self, path: &[Cow<'_, str>]) -> Option<Vec<(String, String)>> {
        let mut params = Vec::new();
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Wildcard => {
                    params.push((WILDCARD_PARAM.to_owned(), rest_of(path, index)));
                    return Some(params);
                }
                Segment::Literal(text) => {
                    if path.get(index).map(|s| s.as_ref()) != Some(text.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => match path.get(index) {
                    Some(value) if !value.is_empty() => {
                        params.push((name.clone(), value.to_string()));
                    }
                    _ => return None,
                },
            }
        }
        (path.len() == self.segments.len()).then_some(params)
    }

    /// The parameters of a path this pattern is known to match (the route
    /// trie found it), in pattern order.
    pub(crate) fn capture(&self, path: &[Cow<'_, str>]) -> Vec<(String, String)> {
        self.segments
            .iter()
            .enumerate()
            .filter_map(|(index, segment)| match segment {
                Segment::Literal(_) => None,
                Segment::Param(name) => Some((
                    name.clone(),
                    path.get(index).map(|s| s.to_string()).unwrap_or_default(),
                )),
                Segment::Wildcard => Some((WILDCARD_PARAM.to_owned(), rest_of(path, index))),
            })
            .collect()
    }
}

/// The path segments from `index` on, joined again with `/`.
fn rest_of(path: &[Cow<'_, str>], index: usize) -> String {
    path.get(index..).unwrap_or_default().join("/")
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> RoutePattern {
        text.parse().unwrap()
    }

    fn segments(path: &str) -> Vec<Cow<'static, str>> {
        path[1..]
            .split('/')
            .map(|s| Cow::Owned(s.to_owned()))
            .collect()
    }

    fn matches(pattern_text: &str, path: &str) -> Option<Vec<(String, String)>> {
        pattern(pattern_text).match_segments(&segments(path))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn literal_routes_match_exactly() {
        assert_eq!(matches("/hello", "/hello"), Some(vec![]));
        assert_eq!(matches("/hello", "/hello/"), None);
        assert_eq!(matches("/hello", "/hell"), None);
        assert_eq!(matches("/", "/"), Some(vec![]));
        assert_eq!(matches("/", "/x"), None);
        assert_eq!(matches("/dir/", "/dir/"), Some(vec![]));
    }

    #[test]
    fn parameters_take_one_non_empty_segment() {
        assert_eq!(
            matches("/users/:id/posts/:post_id", "/users/42/posts/7"),
            Some(pairs(&[("id", "42"), ("post_id", "7")]))
        );
        assert_eq!(matches("/users/:id", "/users/"), None);
        assert_eq!(matches("/users/:id", "/users/1/2"), None);
    }

    #[test]
    fn wildcard_takes_the_rest_including_nothing() {
        assert_eq!(
            matches("/static/*", "/static/a/b.css"),
            Some(pairs(&[("*", "a/b.css")]))
        );
        assert_eq!(matches("/static/*", "/static/"), Some(pairs(&[("*", "")])));
        assert_eq!(matches("/static/*", "/static"), Some(pairs(&[("*", "")])));
        assert_eq!(matches("/static/*", "/other/x"), None);
        assert_eq!(
            matches("/*", "/anything/at/all"),
            Some(pairs(&[("*", "anything/at/all")]))
        );
    }

    #[test]
    fn literal_segments_are_percent_decoded() {
        assert_eq!(matches("/a%20b", "/a b"), Some(vec![]));
    }

    #[test]
    fn invalid_patterns_explain_the_fix() {
        let cases = [
            ("hello", "must start with `/`, for example `/hello`"),
            ("/a//b", "empty segment"),
            ("/a?x=1", "contains `?`"),
            ("/a b", "percent-encode it"),
            ("/users/:", "invalid parameter `:`"),
            ("/users/:id-x", "invalid parameter `:id-x`"),
            ("/a/:id/b/:id", "uses the parameter `:id` twice"),
            ("/static/*/x", "`*` may only be the whole last segment"),
            ("/static/x*", "`*` may only be the whole last segment"),
            ("/bad/%FF", "not UTF-8"),
        ];
        for (text, expected) in cases {
            let err = text.parse::<RoutePattern>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        assert!(pattern("/users/:id").same_shape(&pattern("/users/:name")));
        assert!(!pattern("/users/:id").same_shape(&pattern("/users/new")));
        assert!(!pattern("/users/:id").same_shape(&pattern("/users/*")));
        assert!(pattern("/s/*").same_shape(&pattern("/s/*")));
        assert!(!pattern("/a").same_shape(&pattern("/a/")));
    }

    #[test]
    fn param_names_include_the_wildcard() {
        let route = pattern("/a/:x/b/:y/*");
        let names: Vec<&str> = route.param_names().collect();
        assert_eq!(names, ["x", "y", "*"]);
    }
}
