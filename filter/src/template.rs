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

/// Index of a template pattern's path id.
type PathId = u32;

#[derive(Debug, Clone, Default)]
struct Node {
    /// `{*}` child.
    one: Option<u32>,
    /// Templates that end at this node.
    ends: Vec<PathId>,
    /// Templates whose `{**}` starts at this node.
    rest: Vec<PathId>,
}

/// All templates of a configuration.
#[derive(Debug, Clone)]
pub(crate) struct TemplateIndex {
    nodes: Vec<Node>,
    /// Literal edges, sorted by (parent, segment): (parent, segment range in
    /// `arena`, child).
    edges: Vec<(u32, u32, u32, u32)>,
    arena: String,
}

impl Default for TemplateIndex {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
            edges: Vec::new(),
            arena: String::new(),
        }
    }
}

/// Builds a [`TemplateIndex`].
#[derive(Debug)]
pub(crate) struct TemplateBuilder<'c> {
    nodes: Vec<Node>,
    /// (parent, segment) → child, while building; segments borrow the config.
    literal: rustc_hash::FxHashMap<(u32, &'c str), u32>,
}

impl Default for TemplateBuilder<'_> {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
            literal: rustc_hash::FxHashMap::default(),
        }
    }
}

impl<'c> TemplateBuilder<'c> {
    pub(crate) fn insert(&mut self, segments: &[TemplateSegment<'c>], id: PathId) {
        let mut node = 0u32;
        for seg in segments {
            let next = self.nodes.len() as u32;
            node = match seg {
                TemplateSegment::Rest => {
                    // Parsing guarantees `{**}` is last.
                    if let Some(n) = self.nodes.get_mut(node as usize) {
                        n.rest.push(id);
                    }
                    return;
                }
                TemplateSegment::One => match self.nodes.get_mut(node as usize) {
                    Some(Node { one: Some(child), .. }) => *child,
                    Some(n) => {
                        n.one = Some(next);
                        self.nodes.push(Node::default());
                        next
                    }
                    None => return,
                },
                TemplateSegment::Literal(lit) => *self.literal.entry((node, lit)).or_insert_with(|| {
                    self.nodes.push(Node::default());
                    next
                }),
            };
        }
        if let Some(n) = self.nodes.get_mut(node as usize) {
            n.ends.push(id);
        }
    }

    pub(crate) fn build(self) -> TemplateIndex {
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
        TemplateIndex {
            nodes: self.nodes,
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
        // No template at all (`/{**}` alone is a root with a rest, no edge).
        if self.edges.is_empty() && self.nodes.len() <= 1 && self.nodes.first().is_none_or(|n| n.rest.is_empty()) {
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
                let Some(node) = self.nodes.get(n as usize) else {
                    continue;
                };
                // `{**}` takes everything from this segment on: one or more bytes.
                if !rest.is_empty() {
                    out.extend_from_slice(&node.rest);
                }
                if let Some(child) = self.literal_child(n, seg) {
                    next.push(child);
                }
                if let (Some(child), false) = (node.one, seg.is_empty()) {
                    next.push(child);
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
            if let Some(node) = self.nodes.get(n as usize) {
                out.extend_from_slice(&node.ends);
            }
        }
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self
                .nodes
                .iter()
                .map(|n| (n.ends.capacity() + n.rest.capacity()) * 4)
                .sum::<usize>()
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
