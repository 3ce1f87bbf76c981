//! Path templates (`/api/{*}/items/{**}`) matched segment by segment.
//!
//! Templates are compiled into a trie over path segments: each node has
//! literal children, at most one `{*}` child, the templates that end there and
//! the templates whose `{**}` starts there. Matching walks the request path's
//! segments once, keeping the set of nodes still alive; that set is bounded by
//! the shape of the configuration (how many templates share a prefix up to a
//! `{*}`), not by anything the request controls. No automaton is built, so
//! thousands of templates compile in microseconds each.

use crate::pattern::TemplateSegment;
use crate::postings::Postings;

/// Index of a template pattern's path id.
type PathId = u32;

/// All templates of a configuration.
#[derive(Debug, Default)]
pub(crate) struct TemplateIndex {
    /// Node → its `{*}` child, 0 for none (the root, node 0, is no child).
    /// Empty for an index of no template.
    one: Vec<u32>,
    /// Node → the templates that end there.
    ends: Postings,
    /// Node → the templates whose `{**}` starts there.
    rests: Postings,
    /// Literal edges, sorted by (parent, segment): (parent, segment range in
    /// `arena`, child).
    edges: Vec<(u32, u32, u32, u32)>,
    arena: String,
}

/// Builds a [`TemplateIndex`].
#[derive(Debug)]
pub(crate) struct TemplateBuilder<'c> {
    /// Node → `{*}` child, as in [`TemplateIndex`]; one entry per node.
    one: Vec<u32>,
    /// (node, template) pairs, filed into [`Postings`] by `build`: a list per
    /// node took 24 bytes (wasm32) in every node, most of them empty.
    ends: Vec<(u32, PathId)>,
    rests: Vec<(u32, PathId)>,
    /// (parent, segment) → child, while building; segments borrow the config.
    literal: rustc_hash::FxHashMap<(u32, &'c str), u32>,
}

impl Default for TemplateBuilder<'_> {
    fn default() -> Self {
        Self {
            one: vec![0],
            ends: Vec::new(),
            rests: Vec::new(),
            literal: rustc_hash::FxHashMap::default(),
        }
    }
}

impl<'c> TemplateBuilder<'c> {
    pub(crate) fn insert(&mut self, segments: &[TemplateSegment<'c>], id: PathId) {
        let mut node = 0u32;
        for seg in segments {
            let next = self.one.len() as u32;
            node = match seg {
                TemplateSegment::Rest => {
                    // Parsing guarantees `{**}` is last.
                    self.rests.push((node, id));
                    return;
                }
                TemplateSegment::One => match self.one.get(node as usize).copied() {
                    Some(0) => {
                        if let Some(child) = self.one.get_mut(node as usize) {
                            *child = next;
                        }
                        self.one.push(0);
                        next
                    }
                    Some(child) => child,
                    None => return,
                },
                TemplateSegment::Literal(lit) => *self.literal.entry((node, lit)).or_insert_with(|| {
                    self.one.push(0);
                    next
                }),
            };
        }
        self.ends.push((node, id));
    }

    pub(crate) fn build(self) -> TemplateIndex {
        if self.ends.is_empty() && self.rests.is_empty() {
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
            rests: Postings::new(nodes, &self.rests),
            one: self.one,
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
            next.clear();
            for &n in active.iter() {
                // `{**}` takes everything from this segment on: one or more bytes.
                if !rest.is_empty() {
                    out.extend_from_slice(self.rests.get(n));
                }
                if let Some(child) = self.literal_child(n, seg) {
                    next.push(child);
                }
                match self.one.get(n as usize) {
                    Some(&child) if child != 0 && !seg.is_empty() => next.push(child),
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

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.one.capacity() * 4
            + self.ends.heap_size()
            + self.rests.heap_size()
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
        assert_eq!(find(&ix, "/api/v1/items/"), vec![3]);
        assert_eq!(find(&ix, "/api/v1/"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/api/"), Vec::<u32>::new());
        assert_eq!(find(&ix, "/x/y"), vec![2]);
        assert_eq!(find(&ix, "/a/b/"), vec![4]);
        assert_eq!(find(&ix, "/a/b"), vec![2]);
        assert_eq!(find(&ix, "/"), Vec::<u32>::new());
    }

    #[test]
    fn empty_index() {
        assert!(find(&TemplateIndex::default(), "/a").is_empty());
        assert!(find(&index(&[]), "/a").is_empty());
    }

    /// `/{**}` alone files its template at the root, with no edge and no
    /// other node: it once went unmatched, so as a `notPaths` entry it
    /// excluded nothing.
    #[test]
    fn rest_at_the_root() {
        let ix = index(&["/{**}"]);
        assert_eq!(find(&ix, "/x"), vec![0]);
        assert_eq!(find(&ix, "/x/y/"), vec![0]);
        assert_eq!(find(&ix, "/"), Vec::<u32>::new());
        let ix = index(&["/{**}", "/{*}"]);
        assert_eq!(find(&ix, "/x"), vec![0, 1]);
        assert_eq!(find(&ix, "/x/y"), vec![0]);
    }
}
