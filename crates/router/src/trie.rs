//! The segment trie that finds a request's routes without trying every
//! route: one step per path segment, whatever the number of routes.
//!
//! A node is reached by a sequence of pattern segments, literal text or a
//! parameter (all parameters at one depth share a node, whatever their
//! names). It holds the routes whose pattern ends there and the routes
//! whose trailing `*` follows there, by their position in the table's
//! insertion order. Routes that share a node's list have the same shape.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::pattern::Segment;

/// One node of the trie; the root is the node before the first segment.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Children by the literal segment (percent-decoded) that leads to
    /// them.
    literals: HashMap<String, Node>,
    /// The child for a `:param` segment.
    param: Option<Box<Node>>,
    /// Routes whose pattern ends here, in insertion order.
    ends: Vec<usize>,
    /// Routes whose `*` comes after this node's segments, in insertion
    /// order.
    wildcards: Vec<usize>,
}

impl Node {
    /// The list that holds the routes shaped like `segments`, made on the
    /// way if missing.
    pub(crate) fn slot(&mut self, segments: &[Segment]) -> &mut Vec<usize> {
        let mut node = self;
        for segment in segments {
            node = match segment {
                Segment::Literal(text) => node.literals.entry(text.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Box::default),
                Segment::Wildcard => return &mut node.wildcards,
            };
        }
        &mut node.ends
    }

    /// Offers `visit` each route that matches the decoded `path`, most
    /// specific first (segment by segment, literal before parameter before
    /// wildcard, then in insertion order), until it breaks.
    pub(crate) fn matches(
        &self,
        path: &[Cow<'_, str>],
        visit: &mut impl FnMut(usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        match path.split_first() {
            None => self.ends.iter().try_for_each(|&route| visit(route))?,
            Some((segment, rest)) => {
                if let Some(child) = self.literals.get(segment.as_ref()) {
                    child.matches(rest, visit)?;
                }
                // A parameter takes a non-empty segment only.
                if let (Some(child), false) = (&self.param, segment.is_empty()) {
                    child.matches(rest, visit)?;
                }
            }
        }
        // `*` takes the rest of the path, possibly nothing.
        self.wildcards.iter().try_for_each(|&route| visit(route))
    }
}

#[cfg(test)]
mod tests {
    //! The trie against the table it replaced: every route tried in order
    //! of specificity, for many generated tables and paths; and tables of
    //! ten thousand routes.

    use std::borrow::Cow;

    use crate::method::MethodFilter;
    use crate::pattern::{RoutePattern, Segment};
    use crate::table::{Lookup, RouteTable};

    /// The linear table the trie replaced: sorted by specificity (segment
    /// by segment, literal before parameter before wildcard, then
    /// insertion order), the first match that allows the method wins.
    #[derive(Default)]
    struct Linear {
        routes: Vec<(RoutePattern, MethodFilter, usize)>,
    }

    fn specificity(pattern: &RoutePattern) -> Vec<u8> {
        pattern
            .segments()
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param(_) => 1,
                Segment::Wildcard => 2,
            })
            .collect()
    }

    /// What a lookup answered, comparable across both tables.
    #[derive(Debug, PartialEq)]
    enum Answer {
        Found(usize, Vec<(String, String)>),
        NotAllowed(String),
        NotFound,
        BadPath,
    }

    impl Linear {
        /// `Err(existing index)` on a conflict.
        fn insert(&mut self, pattern: RoutePattern, methods: MethodFilter) -> Result<(), usize> {
            if let Some((_, _, existing)) = self
                .routes
                .iter()
                .find(|(p, m, _)| p.same_shape(&pattern) && m.overlaps(methods))
            {
                return Err(*existing);
            }
            let index = self.routes.len();
            let position = self
                .routes
                .partition_point(|(p, _, _)| specificity(p) <= specificity(&pattern));
            self.routes.insert(position, (pattern, methods, index));
            Ok(())
        }

        fn lookup(&self, method: &str, path: &str) -> Answer {
            let segments: Option<Vec<Cow<'_, str>>> = path[1..]
                .split('/')
                .map(|s| percent_encoding::percent_decode_str(s).decode_utf8().ok())
                .collect();
            let Some(segments) = segments else {
                return Answer::BadPath;
            };
            let mut allowed = 0u16;
            let mut matched = false;
            for (pattern, methods, index) in &self.routes {
                let Some(params) = pattern.match_segments(&segments) else {
                    continue;
                };
                if methods.allows(method) {
                    return Answer::Found(*index, params);
                }
                matched = true;
                methods.add_to(&mut allowed);
            }
            if matched {
                Answer::NotAllowed(crate::method::MethodSet::from_bits(allowed).to_allow_header())
            } else {
                Answer::NotFound
            }
        }
    }

    fn answer(table: &RouteTable<usize>, method: &str, path: &str) -> Answer {
        match table.lookup(method, path) {
            Lookup::Found(m) => Answer::Found(*m.value, m.params),
            Lookup::MethodNotAllowed(set) => Answer::NotAllowed(set.to_allow_header()),
            Lookup::NotFound => Answer::NotFound,
            Lookup::BadPath => Answer::BadPath,
        }
    }

    fn filter(names: &[&str]) -> MethodFilter {
        MethodFilter::from_names(names.iter().copied()).unwrap()
    }

    /// A small deterministic generator (xorshift), so that failures repeat.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// A pattern of up to three segments from a small alphabet, so that
    /// generated routes overlap often.
    fn random_pattern(rng: &mut Rng) -> String {
        let length = 1 + rng.below(3);
        let mut text = String::new();
        for index in 0..length {
            text.push('/');
            match rng.below(6) {
                0 => text.push('a'),
                1 => text.push('b'),
                // An empty literal, as in `/dir/`, only ends a pattern.
                2 if index + 1 == length => {}
                2 => text.push('c'),
                3 | 4 => text.push_str(&format!(":p{index}")),
                _ => {
                    text.push('*');
                    break;
                }
            }
        }
        text
    }

    /// Every path of up to four segments over `a`, `b`, `c` and the empty
    /// segment.
    fn all_paths() -> Vec<String> {
        let mut paths = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..4 {
            let mut longer = Vec::new();
            for path in &paths {
                for segment in ["a", "b", "c", ""] {
                    let next = format!("{path}/{segment}");
                    all.push(next.clone());
                    longer.push(next);
                }
            }
            paths = longer;
        }
        all
    }

    #[test]
    fn the_trie_answers_as_the_ordered_list_did() {
        let method_sets: [&[&str]; 5] = [&["GET"], &["POST"], &["GET", "PUT"], &["ANY"], &["HEAD"]];
        let paths = all_paths();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut trie = RouteTable::new();
            let mut linear = Linear::default();
            for _ in 0..(1 + rng.below(12)) {
                let text = random_pattern(&mut rng);
                let methods = filter(method_sets[rng.below(method_sets.len())]);
                let pattern: RoutePattern = text.parse().unwrap();
                let index = trie.len();
                let expected = linear.insert(pattern.clone(), methods);
                let got = trie
                    .insert(pattern, methods, index)
                    .map_err(|conflict| conflict.existing_index);
                assert_eq!(got, expected, "inserting {methods} {text}");
            }
            for path in &paths {
                for method in ["GET", "HEAD", "POST", "PUT", "PROPFIND"] {
                    assert_eq!(
                        answer(&trie, method, path),
                        linear.lookup(method, path),
                        "{method} {path} in {:?}",
                        trie.routes()
                            .map(|(p, m, _)| format!("{m} {p}"))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    /// Ten thousand literal routes, and at each of three levels a
    /// parameter and a wildcard route beside a literal one.
    fn big_table() -> RouteTable<String> {
        let mut table = RouteTable::new();
        let mut add = |pattern: &str, methods: &[&str]| {
            table
                .insert(
                    pattern.parse().unwrap(),
                    filter(methods),
                    pattern.to_owned(),
                )
                .unwrap();
        };
        for index in 0..10_000 {
            add(&format!("/r{index}/x"), &["GET"]);
        }
        add("/l1/l2/l3", &["GET"]);
        add("/l1/l2/:c", &["GET"]);
        add("/l1/l2/*", &["GET"]);
        add("/l1/:b/l3", &["GET"]);
        add("/l1/:b/:c", &["POST"]);
        add("/l1/*", &["GET"]);
        add("/:a/l2/l3", &["GET"]);
        add("/:a/:b", &["PUT"]);
        add("/*", &["DELETE"]);
        table
    }

    fn served(table: &RouteTable<String>, method: &str, path: &str) -> String {
        match table.lookup(method, path) {
            Lookup::Found(m) => format!("{} {:?}", m.value, m.params),
            Lookup::MethodNotAllowed(set) => format!("405 {}", set.to_allow_header()),
            Lookup::NotFound => "404".to_owned(),
            Lookup::BadPath => "400".to_owned(),
        }
    }

    #[test]
    fn ten_thousand_routes_keep_precedence_at_every_level() {
        let table = big_table();
        assert_eq!(table.len(), 10_009);
        let cases = [
            ("GET", "/r0/x", "/r0/x []"),
            ("GET", "/r9999/x", "/r9999/x []"),
            ("GET", "/l1/l2/l3", "/l1/l2/l3 []"),
            ("GET", "/l1/l2/other", r#"/l1/l2/:c [("c", "other")]"#),
            ("GET", "/l1/l2/a/b", r#"/l1/l2/* [("*", "a/b")]"#),
            ("GET", "/l1/l2", r#"/l1/l2/* [("*", "")]"#),
            ("GET", "/l1/other/l3", r#"/l1/:b/l3 [("b", "other")]"#),
            // `/l1/:b/:c` is POST only; `/l1/*` serves the GET.
            ("GET", "/l1/other/c", r#"/l1/* [("*", "other/c")]"#),
            (
                "POST",
                "/l1/other/c",
                r#"/l1/:b/:c [("b", "other"), ("c", "c")]"#,
            ),
            ("GET", "/zz/l2/l3", r#"/:a/l2/l3 [("a", "zz")]"#),
            ("PUT", "/r5/x", r#"/:a/:b [("a", "r5"), ("b", "x")]"#),
            ("DELETE", "/r5/x", r#"/* [("*", "r5/x")]"#),
            ("DELETE", "/", r#"/* [("*", "")]"#),
        ];
        for (method, path, expected) in cases {
            assert_eq!(served(&table, method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn ten_thousand_routes_tell_405_from_404() {
        let mut table = RouteTable::new();
        for index in 0..10_000 {
            let methods: &[&str] = if index % 2 == 0 { &["GET"] } else { &["POST"] };
            table
                .insert(
                    format!("/items/{index}").parse().unwrap(),
                    filter(methods),
                    index,
                )
                .unwrap();
        }
        table
            .insert("/items/:id".parse().unwrap(), filter(&["DELETE"]), 10_000)
            .unwrap();
        let status = |method: &str, path: &str| match table.lookup(method, path) {
            Lookup::Found(m) => m.value.to_string(),
            Lookup::MethodNotAllowed(set) => format!("405 {}", set.to_allow_header()),
            Lookup::NotFound => "404".to_owned(),
            Lookup::BadPath => "400".to_owned(),
        };
        assert_eq!(status("GET", "/items/9998"), "9998");
        assert_eq!(status("POST", "/items/9999"), "9999");
        assert_eq!(status("PUT", "/items/9998"), "405 GET, HEAD, DELETE");
        assert_eq!(status("GET", "/items/9999"), "405 POST, DELETE");
        assert_eq!(status("PUT", "/items/none"), "405 DELETE");
        assert_eq!(status("DELETE", "/items/7"), "10000");
        assert_eq!(status("GET", "/items/"), "404");
        assert_eq!(status("GET", "/items/1/2"), "404");
        assert_eq!(status("GET", "/item/1"), "404");
    }

    #[test]
    fn conflicts_among_ten_thousand_routes_name_the_earlier_one() {
        let mut table = big_table();
        let conflict = |table: &mut RouteTable<String>, pattern: &str, methods: &[&str]| {
            table
                .insert(pattern.parse().unwrap(), filter(methods), String::new())
                .map_err(|conflict| {
                    (
                        conflict.existing_index,
                        conflict.existing_pattern.clone(),
                        conflict.to_string(),
                    )
                })
        };
        assert_eq!(
            conflict(&mut table, "/r4321/x", &["ANY"]),
            Err((
                4321,
                "/r4321/x".to_owned(),
                "route ANY /r4321/x conflicts with an earlier route GET /r4321/x".to_owned()
            ))
        );
        assert_eq!(
            conflict(&mut table, "/l1/:name/:other", &["POST", "PATCH"]).map_err(|c| c.0),
            Err(10_004)
        );
        assert_eq!(
            conflict(&mut table, "/l1/*", &["HEAD"]).map_err(|c| c.0),
            Err(10_005)
        );
        assert_eq!(
            conflict(&mut table, "/:x/:y", &["PUT"]).map_err(|c| c.0),
            Err(10_007)
        );
        // Same shape, other methods: no conflict; then the next one
        // conflicts with it, not with an unrelated route.
        assert_eq!(conflict(&mut table, "/r4321/x", &["POST"]), Ok(()));
        assert_eq!(
            conflict(&mut table, "/r4321/x", &["POST", "PUT"]).map_err(|c| c.0),
            Err(10_009)
        );
        assert_eq!(table.len(), 10_010);
    }
}
