//! Path generalization: the observed paths of one workload in, path
//! templates out, so that a policy lists neither every id ever seen nor more
//! than was seen.
//!
//! Paths are kept in a trie over their segments. A segment becomes `{*}`
//! (one non-empty segment, the engine's template operator) when
//!
//! * it looks like an identifier ([`is_identifier`]): an integer, a UUID, a
//!   date, a long hex string, a prefixed id (`ch_3Nf8xYz2`, `order-84213`),
//!   a long token mixing letters and digits; or
//! * more than [`DISTINCT_THRESHOLD`] distinct other values were seen at the
//!   same position under the same (generalized) parent: then every value
//!   there becomes `{*}`.
//!
//! Otherwise it stays literal. The subtrees of the segments that become
//! `{*}` are merged, so `/users/17/orders` and `/users/42/invoices` give
//! `/users/{*}/orders` and `/users/{*}/invoices`. A template has exactly the
//! depth of the paths it stands for: `{**}` and prefix patterns are never
//! produced, so a request one level deeper than anything seen is never
//! admitted. The empty segment (a trailing `/`) and segments holding `[` or
//! `]` (which `{*}` does not match) always stay literal.
//!
//! Memory grows with the number of distinct path *shapes*, not paths: an
//! identifier goes to `{*}` as it is read, and a position collapses into
//! `{*}` as soon as it passes the threshold. The result does not depend on
//! the order the paths are read in.

use std::collections::BTreeMap;

/// Distinct literal values at one position (under one parent) above which
/// every value there becomes `{*}`.
pub const DISTINCT_THRESHOLD: usize = 10;

/// The template operator for one segment.
pub const ANY: &str = "{*}";

/// Whether `segment` looks like an identifier rather than a fixed name.
///
/// * integers: `0`, `42`, `20261122`;
/// * UUIDs: `123e4567-e89b-12d3-a456-426614174000` (any case);
/// * dates: `2026-11-22`;
/// * hex strings of 16 characters or more with a digit: object ids, hashes;
/// * prefixed ids: a lower-case word of at most 8 letters, `_` or `-`, then
///   3 or more digits, or 6 or more letters and digits with at least one
///   digit (`order-84213`, `ch_3Nf8xYz2`, `cus_Nffr1a`);
/// * tokens: 16 characters or more of letters, digits, `-` and `_`, with
///   letters and at least 2 digits;
/// * anything holding `*`, `{` or `}`, which cannot be written literally in
///   a path pattern.
///
/// Short names with a digit (`v1`, `v2beta`, `s3`, `ipv4`) stay literal.
pub fn is_identifier(segment: &str) -> bool {
    let b = segment.as_bytes();
    if b.is_empty() {
        return false;
    }
    if segment.contains(['*', '{', '}']) {
        return true;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    if digits == b.len() {
        return true;
    }
    let hex = |c: &u8| c.is_ascii_hexdigit();
    // UUID 8-4-4-4-12.
    if b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                hex(c)
            }
        })
    {
        return true;
    }
    // Date yyyy-mm-dd.
    if b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 4 | 7) {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
    {
        return true;
    }
    if b.len() >= 16 && digits > 0 && b.iter().all(hex) {
        return true;
    }
    let token_char = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
    // Prefixed id: word, separator, alphanumeric rest with a digit.
    if let Some(sep) = b.iter().position(|c| *c == b'_' || *c == b'-') {
        let (word, rest) = (b.get(..sep).unwrap_or_default(), b.get(sep + 1..).unwrap_or_default());
        let digits_only = rest.len() >= 3 && rest.iter().all(u8::is_ascii_digit);
        let mixed =
            rest.len() >= 6 && rest.iter().all(u8::is_ascii_alphanumeric) && rest.iter().any(u8::is_ascii_digit);
        if (1..=8).contains(&word.len()) && word.iter().all(u8::is_ascii_lowercase) && (digits_only || mixed) {
            return true;
        }
    }
    b.len() >= 16 && b.iter().all(token_char) && digits >= 2 && b.iter().any(u8::is_ascii_alphabetic)
}

/// Whether `{*}` may stand for `segment`: not empty, no `[` or `]`.
fn mergeable(segment: &str) -> bool {
    !segment.is_empty() && !segment.contains(['[', ']'])
}

/// One position of the trie.
#[derive(Debug, Default, Clone)]
struct Node {
    /// Literal segments seen here.
    literals: BTreeMap<Box<str>, Node>,
    /// `{*}`: what identifiers (and, once `wild`, every mergeable segment)
    /// lead to.
    any: Option<Box<Node>>,
    /// More than the threshold of distinct values were seen here.
    wild: bool,
    /// A path ends here.
    end: bool,
}

impl Node {
    fn insert<'s>(&mut self, mut segments: impl Iterator<Item = &'s str>, threshold: usize) {
        let Some(segment) = segments.next() else {
            self.end = true;
            return;
        };
        if mergeable(segment) && (self.wild || is_identifier(segment)) {
            self.any.get_or_insert_with(Box::default).insert(segments, threshold);
            return;
        }
        if let Some(child) = self.literals.get_mut(segment) {
            child.insert(segments, threshold);
            return;
        }
        let mut child = Node::default();
        child.insert(segments, threshold);
        self.literals.insert(segment.into(), child);
        self.collapse_if_over(threshold);
    }

    /// Past the threshold, every mergeable literal moves under `{*}`.
    fn collapse_if_over(&mut self, threshold: usize) {
        if !self.wild && self.literals.keys().filter(|k| mergeable(k)).count() > threshold {
            self.wild = true;
        }
        if !self.wild {
            return;
        }
        let moving: Vec<Box<str>> = self.literals.keys().filter(|k| mergeable(k)).cloned().collect();
        for key in moving {
            if let Some(child) = self.literals.remove(&key) {
                self.any.get_or_insert_with(Box::default).merge(child, threshold);
            }
        }
    }

    /// Adds everything `other` holds.
    fn merge(&mut self, other: Node, threshold: usize) {
        self.end |= other.end;
        self.wild |= other.wild;
        if let Some(any) = other.any {
            self.any.get_or_insert_with(Box::default).merge(*any, threshold);
        }
        for (key, child) in other.literals {
            if mergeable(&key) && self.wild {
                self.any.get_or_insert_with(Box::default).merge(child, threshold);
            } else if let Some(mine) = self.literals.get_mut(&key) {
                mine.merge(child, threshold);
            } else {
                self.literals.insert(key, child);
            }
        }
        self.collapse_if_over(threshold);
    }

    fn templates(&self, prefix: &mut Vec<String>, out: &mut Vec<String>) {
        if self.end {
            out.push(format!("/{}", prefix.join("/")));
        }
        for (key, child) in &self.literals {
            prefix.push(key.to_string());
            child.templates(prefix, out);
            prefix.pop();
        }
        if let Some(any) = &self.any {
            prefix.push(ANY.into());
            any.templates(prefix, out);
            prefix.pop();
        }
    }
}

/// The segments of an absolute path (`/` → one empty segment); `None` for
/// anything else (`*`, an authority).
fn segments(path: &str) -> Option<std::str::Split<'_, char>> {
    path.strip_prefix('/').map(|rest| rest.split('/'))
}

/// The observed paths of one workload, generalized as they are added.
#[derive(Debug, Clone)]
pub struct Generalizer {
    root: Node,
    threshold: usize,
}

impl Default for Generalizer {
    fn default() -> Self {
        Self::new(DISTINCT_THRESHOLD)
    }
}

impl Generalizer {
    /// An empty generalizer collapsing positions with more than `threshold`
    /// distinct values.
    pub fn new(threshold: usize) -> Self {
        Self {
            root: Node::default(),
            threshold,
        }
    }

    /// Adds an observed path (without query). Returns false, and adds
    /// nothing, for a path that does not start with `/`.
    pub fn add(&mut self, path: &str) -> bool {
        match segments(path) {
            Some(s) => {
                self.root.insert(s, self.threshold);
                true
            }
            None => false,
        }
    }

    /// The template standing for `path`, if `path` was added (or has the
    /// shape of one that was).
    pub fn template_of(&self, path: &str) -> Option<String> {
        let mut out = String::with_capacity(path.len());
        self.template_into(path, &mut out).then_some(out)
    }

    /// [`Generalizer::template_of`] appended to `out`, without allocating
    /// when `out` has room: `false` (and `out` in an unspecified state) if
    /// there is none.
    pub fn template_into(&self, path: &str, out: &mut String) -> bool {
        let mut node = &self.root;
        let Some(segments) = segments(path) else {
            return false;
        };
        for segment in segments {
            out.push('/');
            if let Some(child) = node.literals.get(segment) {
                out.push_str(segment);
                node = child;
            } else {
                match node.any.as_deref().filter(|_| mergeable(segment)) {
                    Some(any) => node = any,
                    None => return false,
                }
                out.push_str(ANY);
            }
        }
        node.end
    }

    /// Every template, sorted.
    pub fn templates(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.root.templates(&mut Vec::new(), &mut out);
        out.sort();
        out
    }
}

/// The number of segments of a path or template.
pub fn depth(path: &str) -> usize {
    path.split('/').count().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshward_filter::config::{Operation, PluginConfig, Policy, Rule};
    use meshward_filter::{Action, Engine, Evaluator, Request, Verdict};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// Whether the filter's engine admits `path` with a rule listing `templates`.
    fn admits(templates: &[String], path: &str) -> bool {
        let config = PluginConfig {
            policies: vec![Policy {
                name: "p".into(),
                selector: None,
                mode: None,
                action: Action::Allow,
                rules: vec![Rule {
                    to: Some(vec![Operation {
                        paths: Some(templates.to_vec()),
                        ..Operation::default()
                    }]),
                    ..Rule::default()
                }],
            }],
            ..PluginConfig::default()
        };
        let engine = Engine::compile(&config).unwrap_or_else(|e| panic!("{templates:?}: {e}"));
        let sel = engine.select(|_| None);
        let mut ev = Evaluator::new(Arc::new(engine), sel);
        let headers: [(&str, &str); 0] = [];
        let r = Request {
            connection: Default::default(),
            method: "GET",
            path,
            authority: Some("svc"),
            port: None,
            principal: None,
            auth: None,
            headers: &headers[..],
        };
        ev.evaluate(&r).verdict == Verdict::Allow
    }

    fn learned(paths: &[&str]) -> Vec<String> {
        let mut g = Generalizer::default();
        for p in paths {
            assert!(g.add(p));
        }
        g.templates()
    }

    #[test]
    fn identifiers() {
        for id in [
            "0",
            "42",
            "20261122",
            "2026-11-22",
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "5f2b9c0e8d1a4b3c",
            "ch_3Nf8xYz2AbCd",
            "order-84213",
            "cus_Nffr1a",
            "aGVsbG8gd29ybGQ1Mj",
            "a*b",
        ] {
            assert!(is_identifier(id), "{id}");
        }
        for name in [
            "",
            "v1",
            "v2beta1",
            "s3",
            "ipv4",
            "reviews",
            "productpage",
            "health-check",
            "well-known",
            "deadbeef",
            "api_v2",
            "user-settings",
            "Order-84213x",
            "main.css",
            "index.html",
        ] {
            assert!(!is_identifier(name), "{name}");
        }
    }

    #[test]
    fn ids_become_templates_of_the_same_depth() {
        assert_eq!(
            learned(&["/users/17/orders", "/users/42/invoices", "/users/me", "/health", "/"]),
            ["/", "/health", "/users/me", "/users/{*}/invoices", "/users/{*}/orders"]
        );
    }

    #[test]
    fn many_distinct_names_collapse_and_few_stay() {
        let few: Vec<String> = (0..DISTINCT_THRESHOLD)
            .map(|i| format!("/files/name{i}x.txt"))
            .collect();
        let few: Vec<&str> = few.iter().map(String::as_str).collect();
        assert_eq!(learned(&few).len(), DISTINCT_THRESHOLD, "at the threshold: literal");
        let many: Vec<String> = (0..=DISTINCT_THRESHOLD)
            .map(|i| format!("/files/name{i}x.txt/raw"))
            .collect();
        let mut many: Vec<&str> = many.iter().map(String::as_str).collect();
        many.push("/files/");
        assert_eq!(learned(&many), ["/files/", "/files/{*}/raw"]);
    }

    #[test]
    fn collapsing_merges_what_lies_below() {
        // Names under `/docs`, each with its own sub-page: once over the
        // threshold the sub-pages meet under `{*}`, and so do their own ids.
        let mut paths: Vec<String> = (0..=DISTINCT_THRESHOLD).map(|i| format!("/docs/page{i}/v1")).collect();
        paths.push("/docs/page0/edit/7".into());
        paths.push("/docs/page1/edit/8".into());
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(learned(&paths), ["/docs/{*}/edit/{*}", "/docs/{*}/v1"]);
    }

    #[test]
    fn other_paths_and_odd_segments() {
        let mut g = Generalizer::default();
        assert!(!g.add("*"));
        assert!(g.add("/a/[x]/1"));
        assert_eq!(g.templates(), ["/a/[x]/{*}"]);
        assert_eq!(g.template_of("/a/[x]/2").as_deref(), Some("/a/[x]/{*}"));
        assert_eq!(g.template_of("/a/[y]/2"), None);
        assert_eq!(
            g.template_of("/a/[x]"),
            None,
            "a prefix of a learned path is not learned"
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            // Fixed names, few of them.
            prop::sample::select(vec!["api", "users", "orders", "v1", "health", "items", "a.css", ""])
                .prop_map(str::to_string),
            // Ids.
            (0u32..100_000).prop_map(|n| n.to_string()),
            // Many names, so that some positions pass the threshold.
            "[a-z]{1,6}",
            "ch_[A-Za-z0-9]{6,10}",
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..6).prop_map(|s| format!("/{}", s.join("/")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every learned path is admitted by the templates learned from it;
        /// no template admits a path of another depth, in particular one
        /// segment deeper or shallower than a learned path; and the result
        /// does not depend on the order of the paths.
        #[test]
        fn learned_templates_admit_every_input_and_keep_depth(
            mut paths in prop::collection::vec(path(), 1..60),
            other in prop::collection::vec(path(), 1..20),
        ) {
            // Canonical paths only: no empty segment but the last.
            let canonical = |p: &String| !p.get(1..).unwrap_or_default().split('/').rev().skip(1).any(str::is_empty);
            paths.retain(canonical);
            let other: Vec<&String> = other.iter().filter(|p| canonical(p)).collect();
            prop_assume!(!paths.is_empty());
            let mut g = Generalizer::default();
            for p in &paths {
                g.add(p);
            }
            let templates = g.templates();
            let depths: std::collections::BTreeSet<usize> = paths.iter().map(|p| depth(p)).collect();
            for p in &paths {
                let t = g.template_of(p);
                prop_assert!(t.is_some(), "{} has no template", p);
                prop_assert!(admits(&templates, p), "{} not admitted by {:?}", p, templates);
                prop_assert!(templates.contains(&t.unwrap_or_default()));
                let deeper = if p.ends_with('/') { format!("{p}x/") } else { format!("{p}/x") };
                for deeper in [deeper, format!("{}/7", p.trim_end_matches('/'))] {
                    if !depths.contains(&depth(&deeper)) {
                        prop_assert!(!admits(&templates, &deeper), "{} admitted by {:?}", deeper, templates);
                    }
                }
            }
            for t in &templates {
                prop_assert!(depths.contains(&depth(t)), "{} has a depth no input has", t);
                prop_assert!(!t.contains("{**}"), "{} has {{**}}", t);
            }
            for o in other {
                if !depths.contains(&depth(o)) {
                    prop_assert!(!admits(&templates, o), "{} admitted by {:?}", o, templates);
                }
            }
            let mut reversed = Generalizer::default();
            for p in paths.iter().rev() {
                reversed.add(p);
            }
            prop_assert_eq!(reversed.templates(), templates);
        }
    }
}
