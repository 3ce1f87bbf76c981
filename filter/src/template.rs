//! Path templates (`/api/{*}/items/{**}`, `/store/{**}/cart`) matched
//! segment by segment.
//!
//! Templates are compiled into a trie over path segments: each node has
//! literal children, at most one `{*}` child, at most one `{**}` child and
//! the templates that end there. The segments a template has after its
//! `{**}` (only literals: no operator may follow `{**}`) hang below the
//! `{**}` child in reverse order, last segment first.
//!
//! Matching walks the request path's segments once, keeping the set of
//! nodes still alive; that set is bounded by the shape of the configuration
//! (how many templates share a prefix up to a `{*}`), not by anything the
//! request controls. Where a live node has a `{**}` child, the templates
//! below it are found by walking the rest of the path backwards from its
//! end, through the literal segments that may follow `{**}`: `{**}` takes
//! what lies between, provided it is at least one segment (possibly the
//! empty one after a trailing `/`) of characters it may match. No
//! automaton is built, so thousands of templates compile in microseconds
//! each.
//!
//! `{*}` matches one non-empty segment and `{**}` one or more consecutive
//! segments, without `[` or `]` (see [`operator_matches`]): on a canonical
//! path, which has no empty segment but a trailing one, this is what Envoy's
//! `uri_template` matches (`{*}` `[pchar]+`, `{**}` `[pchar/]*` between the
//! template's `/` separators) once Istio's default path normalization has
//! run.

use crate::pattern::TemplateSegment;
use crate::postings::Postings;

/// Whether `{*}` and `{**}` match byte `b` of a canonical path (`{**}` also
/// matches `/`).
///
/// Envoy's template operators match RFC 3986 `pchar` (Envoy 1.40 with `*`).
/// Istio's default path normalization percent-encodes `"` `<` `>` `` ` ``
/// `{` `}` `|` `^` before matching, and the escape is `pchar` again; of the
/// bytes a canonical path holds, only `[` and `]` are left out.
const fn operator_matches(b: u8) -> bool {
    !matches!(b, b'[' | b']' | b'/')
}

/// Index of a template pattern's path id.
type PathId = u32;

/// All templates of a configuration.
#[derive(Debug, Default)]
pub(crate) struct TemplateIndex {
    /// Node → its `{*}` child, 0 for none (the root, node 0, is no child).
    /// Empty for an index of no template.
    one: Vec<u32>,
    /// Node → its `{**}` child, 0 for none.
    rest: Vec<u32>,
    /// Node → the templates that end there.
    ends: Postings,
    /// Literal edges, sorted by (parent, segment): (parent, segment range in
    /// `arena`, child). Below a `{**}` child, the segments after `{**}`,
    /// last first.
    edges: Vec<(u32, u32, u32, u32)>,
    arena: String,
}

/// Builds a [`TemplateIndex`].
#[derive(Debug)]
pub(crate) struct TemplateBuilder<'c> {
    /// Node → `{*}` child, as in [`TemplateIndex`]; one entry per node.
    one: Vec<u32>,
    /// Node → `{**}` child, likewise.
    rest: Vec<u32>,
    /// (node, template) pairs, filed into [`Postings`] by `build`: a list per
    /// node took 24 bytes (wasm32) in every node, most of them empty.
    ends: Vec<(u32, PathId)>,
    /// (parent, segment) → child, while building; segments borrow the config.
    literal: rustc_hash::FxHashMap<(u32, &'c str), u32>,
}

impl Default for TemplateBuilder<'_> {
    fn default() -> Self {
        Self {
            one: vec![0],
            rest: vec![0],
            ends: Vec::new(),
            literal: rustc_hash::FxHashMap::default(),
        }
    }
}

impl<'c> TemplateBuilder<'c> {
    /// A new node with no children.
    fn node(&mut self) -> u32 {
        self.one.push(0);
        self.rest.push(0);
        self.one.len() as u32 - 1
    }

    /// The `{*}` child (`rest: false`) or `{**}` child of `node`, added if
    /// missing.
    fn operator_child(&mut self, node: u32, rest: bool) -> u32 {
        let slot = if rest { &self.rest } else { &self.one };
        match slot.get(node as usize).copied() {
            Some(0) | None => {
                let child = self.node();
                let slot = if rest { &mut self.rest } else { &mut self.one };
                if let Some(c) = slot.get_mut(node as usize) {
                    *c = child;
                }
                child
            }
            Some(child) => child,
        }
    }

    fn literal_child(&mut self, node: u32, segment: &'c str) -> u32 {
        match self.literal.get(&(node, segment)) {
            Some(&child) => child,
            None => {
                let child = self.node();
                self.literal.insert((node, segment), child);
                child
            }
        }
    }

    /// Files template `id`. Parsing guarantees that `{**}` occurs at most
    /// once and only literal segments follow it.
    pub(crate) fn insert(&mut self, segments: &[TemplateSegment<'c>], id: PathId) {
        let mut node = 0u32;
        let mut after = None;
        for (i, seg) in segments.iter().enumerate() {
            node = match seg {
                TemplateSegment::Literal(lit) => self.literal_child(node, lit),
                TemplateSegment::One => self.operator_child(node, false),
                TemplateSegment::Rest => {
                    after = segments.get(i + 1..);
                    self.operator_child(node, true)
                }
            };
            if after.is_some() {
                break;
            }
        }
        for seg in after.unwrap_or_default().iter().rev() {
            match seg {
                TemplateSegment::Literal(lit) => node = self.literal_child(node, lit),
                TemplateSegment::One | TemplateSegment::Rest => return,
            }
        }
        self.ends.push((node, id));
    }

    pub(crate) fn build(self) -> TemplateIndex {
        if self.ends.is_empty() {
            return TemplateIndex::default();
        }
        let mut literal: Vec<((u32, &str), u32)> = self.literal.into_iter().collect();
        literal.sort_unstable();
        let mut arena = String::new();
        let edges = literal
            .into_iter()
            .map(|((parent, seg), child)| {
                let start = arena.len() as u32;
                arena.push_str(seg);
                (parent, start, arena.len() as u32, child)
            })
            .collect();
        let nodes = self.one.len();
        TemplateIndex {
            ends: Postings::new(nodes, &self.ends),
            one: self.one,
            rest: self.rest,
            edges,
            arena,
        }
    }
}

impl TemplateIndex {
    fn literal_child(&self, parent: u32, seg: &str) -> Option<u32> {
        let arena = &self.arena;
        let text = |&(_, s, e, _): &(u32, u32, u32, u32)| arena.get(s as usize..e as usize).unwrap_or_default();
        self.edges
            .binary_search_by(|edge| edge.0.cmp(&parent).then_with(|| text(edge).cmp(seg)))
            .ok()
            .and_then(|i| self.edges.get(i))
            .map(|&(_, _, _, child)| child)
    }

    /// Appends the id of every template matching the canonical `path` to
    /// `out`. `active` and `next` are scratch buffers.
    pub(crate) fn find(&self, path: &str, active: &mut Vec<u32>, next: &mut Vec<u32>, out: &mut Vec<PathId>) {
        if self.one.is_empty() {
            return;
        }
        let Some(mut rest) = path.strip_prefix('/') else {
            return;
        };
        active.clear();
        active.push(0);
        loop {
            let (seg, tail) = match rest.bytes().position(|b| b == b'/') {
                Some(at) => (rest.get(..at).unwrap_or_default(), rest.get(at + 1..)),
                None => (rest, None),
            };
            // Whether `{*}` may take this segment, computed when needed.
            let mut one = None;
            next.clear();
            for &n in active.iter() {
                match self.rest.get(n as usize) {
                    Some(&child) if child != 0 => self.find_after_rest(child, rest, out),
                    _ => {}
                }
                if let Some(child) = self.literal_child(n, seg) {
                    next.push(child);
                }
                match self.one.get(n as usize) {
                    Some(&child)
                        if child != 0
                            && *one.get_or_insert_with(|| !seg.is_empty() && seg.bytes().all(operator_matches)) =>
                    {
                        next.push(child)
                    }
                    _ => {}
                }
            }
            std::mem::swap(active, next);
            match tail {
                Some(t) if !active.is_empty() => rest = t,
                Some(_) => return,
                None => break,
            }
        }
        for &n in active.iter() {
            out.extend_from_slice(self.ends.get(n));
        }
    }

    /// The templates below the `{**}` child `node`, whose `{**}` starts at
    /// `rest` (the path from one of its segments on): each whose literal
    /// segments after `{**}` end the path, when `{**}` keeps at least one
    /// segment and matches every character it keeps.
    fn find_after_rest(&self, mut node: u32, rest: &str, out: &mut Vec<PathId>) {
        // `{**}` may take `rest[..end]` for any `end` up to here.
        let takes = rest
            .bytes()
            .position(|b| b != b'/' && !operator_matches(b))
            .unwrap_or(rest.len());
        if takes == rest.len() {
            out.extend_from_slice(self.ends.get(node));
        }
        let mut end = rest.len();
        // Each step moves one literal segment from `{**}` to the suffix;
        // the first segment of `rest` always stays with `{**}`.
        while let Some(slash) = rest.get(..end).and_then(|r| r.rfind('/')) {
            let seg = rest.get(slash + 1..end).unwrap_or_default();
            let Some(child) = self.literal_child(node, seg) else {
                return;
            };
            node = child;
            end = slash;
            if end <= takes {
                out.extend_from_slice(self.ends.get(node));
            }
        }
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        (self.one.capacity() + self.rest.capacity()) * 4
            + self.ends.heap_size()
            + self.edges.capacity() * 16
            + self.arena.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::MatchPath;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn index(templates: &[&str]) -> TemplateIndex {
        let mut b = TemplateBuilder::default();
        for (i, t) in templates.iter().enumerate() {
            let MatchPath::Template(segs) = MatchPath::parse(t).unwrap() else {
                panic!("{t}")
            };
            b.insert(&segs, i as u32);
        }
        b.build()
    }

    fn find(ix: &TemplateIndex, path: &str) -> Vec<u32> {
        let (mut a, mut n, mut out) = (Vec::new(), Vec::new(), Vec::new());
        ix.find(path, &mut a, &mut n, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn segments_and_rest() {
        let ix = index(&["/api/{*}/items/{**}", "/api/{*}", "/{*}/{*}", "/api/v1/{**}", "/a/{*}/"]);
        assert_eq!(find(&ix, "/api/v1"), vec![1, 2]);
        assert_eq!(find(&ix, "/api/v1/items/7"), vec![0, 3]);
        assert_eq!(find(&ix, "/api/v1/items/7/8"), vec![0, 3]);
        // `{**}` matches nothing: the empty segment after a trailing `/`.
        assert_eq!(find(&ix, "/api/v1/items/"), vec![0, 3]);
        assert_eq!(find(&ix, "/api/v1/items"), vec![3]);
        assert_eq!(find(&ix, "/api/v1/"), vec![3]);
        assert_eq!(find(&ix, "/api/v1"), vec![1, 2]);
        assert_eq!(find(&ix, "/api/"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/x/y"), vec![2]);
        assert_eq!(find(&ix, "/a/b/"), vec![4]);
        assert_eq!(find(&ix, "/a/b"), vec![2]);
        assert_eq!(find(&ix, "/"), Vec::<u32>::new());
    }

    /// `{**}` followed by literal segments: it takes at least one segment,
    /// and the literals must end the path.
    #[test]
    fn rest_before_literals() {
        let ix = index(&[
            "/store/{**}/cart",
            "/foo/{**}/",
            "/{*}/foo/{**}/bar",
            "/{**}/path/template",
            "/store/{**}/cart/",
            "/store/{**}",
        ]);
        assert_eq!(find(&ix, "/store/cart"), vec![5]);
        assert_eq!(find(&ix, "/store/x/cart"), vec![0, 5]);
        assert_eq!(find(&ix, "/store/x/y/cart"), vec![0, 5]);
        assert_eq!(find(&ix, "/store/cart/cart"), vec![0, 5]);
        assert_eq!(find(&ix, "/store/x/cart/"), vec![4, 5]);
        assert_eq!(find(&ix, "/store/x/cartx"), vec![5]);
        assert_eq!(find(&ix, "/foo/"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/foo/bar"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/foo/bar/"), vec![1]);
        assert_eq!(find(&ix, "/foo/bar/baz/"), vec![1]);
        assert_eq!(find(&ix, "/x/foo/bar"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/x/foo/y/bar"), vec![2]);
        assert_eq!(find(&ix, "/x/foo/y/z/bar"), vec![2]);
        assert_eq!(find(&ix, "/path/template"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/a/path/template"), vec![3]);
        assert_eq!(find(&ix, "/a/b/path/template"), vec![3]);
    }

    /// `{*}` and `{**}` match every byte of a canonical path but `[` and
    /// `]`, as Envoy's templates do after Istio's path normalization.
    #[test]
    fn operators_match_what_envoy_matches() {
        let ix = index(&["/a/{*}", "/b/{**}", "/c/{**}/end"]);
        assert_eq!(find(&ix, "/a/x=y(z)!$&'+,:@~%C3%A9*\"<>`{|}^"), vec![0]);
        for odd in ["[", "]"] {
            assert_eq!(find(&ix, &format!("/a/x{odd}")), Vec::<u32>::new(), "{odd}");
            assert_eq!(find(&ix, &format!("/b/x/{odd}/y")), Vec::<u32>::new(), "{odd}");
            assert_eq!(find(&ix, &format!("/c/x{odd}/end")), Vec::<u32>::new(), "{odd}");
            // Outside what `{**}` takes, any character may stand.
            assert_eq!(find(&ix, &format!("/c/x/end{odd}")), Vec::<u32>::new(), "{odd}");
        }
        assert_eq!(find(&ix, "/c/x/y/end"), vec![2]);
    }

    #[test]
    fn empty_index() {
        assert!(find(&TemplateIndex::default(), "/a").is_empty());
        assert!(find(&index(&[]), "/a").is_empty());
    }

    /// `/{**}` alone files its template at the root's `{**}` child, with no
    /// other node: it once went unmatched, so as a `notPaths` entry it
    /// excluded nothing. It matches every path of template characters, `/`
    /// included.
    #[test]
    fn rest_at_the_root() {
        let ix = index(&["/{**}"]);
        assert_eq!(find(&ix, "/x"), vec![0]);
        assert_eq!(find(&ix, "/x/y/"), vec![0]);
        assert_eq!(find(&ix, "/"), vec![0]);
        let ix = index(&["/{**}", "/{*}"]);
        assert_eq!(find(&ix, "/x"), vec![0, 1]);
        assert_eq!(find(&ix, "/x/y"), vec![0]);
    }
}
