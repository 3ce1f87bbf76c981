//! A compact radix trie that answers "which keys are prefixes of this input?".
//!
//! Used for `prefix*` path patterns, and, with keys and input reversed, for
//! `*suffix` patterns. A lookup walks the input once, so its cost depends on the
//! input length, not on the number of keys. The frozen trie is four flat
//! vectors, cheap to build and to serialize.

use std::ops::Range;

/// A set of byte-string keys, each carrying a `u32` value.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTrie {
    nodes: Vec<Node>,
    /// Child edges of all nodes: (first byte of the child's label, child index),
    /// sorted by byte within each node's range.
    edges: Vec<(u8, u32)>,
    labels: Vec<u8>,
    values: Vec<u32>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    label: Range<u32>,
    edges: Range<u32>,
    values: Range<u32>,
}

/// A node of the mutable trie used while building.
#[derive(Debug, Default)]
struct BuildNode {
    label: Vec<u8>,
    children: Vec<(u8, usize)>,
    values: Vec<u32>,
}

/// Collects keys, then [`TrieBuilder::build`] freezes them into a [`PrefixTrie`].
#[derive(Debug)]
pub(crate) struct TrieBuilder {
    nodes: Vec<BuildNode>,
}

impl Default for TrieBuilder {
    fn default() -> Self {
        Self {
            nodes: vec![BuildNode::default()],
        }
    }
}

// Node indices are only ever taken from `self.nodes.len()` before a push and
// never removed, and `tail` is non-empty because `common < label.len()`: the
// indexing below cannot go out of bounds.
#[allow(clippy::indexing_slicing)]
impl TrieBuilder {
    /// Adds `key` with `value`; a key may carry several values.
    pub(crate) fn insert(&mut self, key: impl Iterator<Item = u8>, value: u32) {
        let key: Vec<u8> = key.collect();
        let mut node = 0usize;
        let mut rest: &[u8] = &key;
        loop {
            let Some(&first) = rest.first() else {
                self.nodes[node].values.push(value);
                return;
            };
            let found = self.nodes[node].children.binary_search_by_key(&first, |&(b, _)| b);
            match found {
                Err(at) => {
                    let child = self.nodes.len();
                    self.nodes.push(BuildNode {
                        label: rest.to_vec(),
                        children: Vec::new(),
                        values: vec![value],
                    });
                    self.nodes[node].children.insert(at, (first, child));
                    return;
                }
                Ok(at) => {
                    let child = self.nodes[node].children[at].1;
                    let label = &self.nodes[child].label;
                    let common = label.iter().zip(rest).take_while(|(a, b)| a == b).count();
                    if common < label.len() {
                        // Split the child's label at `common`.
                        let tail = self.nodes[child].label.split_off(common);
                        let tail_first = tail[0];
                        let moved = BuildNode {
                            label: tail,
                            children: std::mem::take(&mut self.nodes[child].children),
                            values: std::mem::take(&mut self.nodes[child].values),
                        };
                        let moved_idx = self.nodes.len();
                        self.nodes.push(moved);
                        self.nodes[child].children.push((tail_first, moved_idx));
                    }
                    rest = &rest[common..];
                    node = child;
                }
            }
        }
    }

    /// Freezes the trie into flat vectors, breadth-first.
    pub(crate) fn build(self) -> PrefixTrie {
        let mut trie = PrefixTrie::default();
        let mut order = vec![0usize];
        let mut index_of = vec![0u32; self.nodes.len()];
        let mut i = 0;
        while let Some(&n) = order.get(i) {
            index_of[n] = i as u32;
            order.extend(self.nodes[n].children.iter().map(|&(_, c)| c));
            i += 1;
        }
        for &n in &order {
            let b = &self.nodes[n];
            let label_start = trie.labels.len() as u32;
            trie.labels.extend_from_slice(&b.label);
            let edge_start = trie.edges.len() as u32;
            trie.edges
                .extend(b.children.iter().map(|&(byte, c)| (byte, index_of[c])));
            let value_start = trie.values.len() as u32;
            trie.values.extend_from_slice(&b.values);
            trie.nodes.push(Node {
                label: label_start..trie.labels.len() as u32,
                edges: edge_start..trie.edges.len() as u32,
                values: value_start..trie.values.len() as u32,
            });
        }
        trie
    }
}

impl PrefixTrie {
    /// Calls `found` with the values of every key that is a prefix of `input`
    /// (the empty key included), shortest key first.
    pub(crate) fn for_each_prefix_of(&self, input: impl Iterator<Item = u8>, mut found: impl FnMut(u32)) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let mut input = input.peekable();
        loop {
            self.values_of(node).iter().for_each(|&v| found(v));
            let Some(&next) = input.peek() else {
                return;
            };
            let edges = self.slice(&self.edges, &node.edges);
            let Ok(at) = edges.binary_search_by_key(&next, |&(b, _)| b) else {
                return;
            };
            let Some(child) = edges.get(at).and_then(|&(_, c)| self.nodes.get(c as usize)) else {
                return;
            };
            for &expected in self.slice(&self.labels, &child.label) {
                if input.next() != Some(expected) {
                    return;
                }
            }
            node = child;
        }
    }

    fn values_of(&self, node: &Node) -> &[u32] {
        self.slice(&self.values, &node.values)
    }

    fn slice<'a, T>(&self, v: &'a [T], r: &Range<u32>) -> &'a [T] {
        v.get(r.start as usize..r.end as usize).unwrap_or_default()
    }

    /// Approximate heap size in bytes.
    pub(crate) fn heap_size(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.edges.capacity() * std::mem::size_of::<(u8, u32)>()
            + self.labels.capacity()
            + self.values.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn prefixes(trie: &PrefixTrie, input: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.for_each_prefix_of(input.bytes(), |v| out.push(v));
        out
    }

    #[test]
    fn finds_every_prefix() {
        let mut b = TrieBuilder::default();
        for (i, k) in ["/a/", "/a/b", "/ab", "/", "/a/", "/xyz", ""].iter().enumerate() {
            b.insert(k.bytes(), i as u32);
        }
        let t = b.build();
        assert_eq!(prefixes(&t, "/a/bc"), vec![6, 3, 0, 4, 1]);
        assert_eq!(prefixes(&t, "/a"), vec![6, 3]);
        assert_eq!(prefixes(&t, "/abc"), vec![6, 3, 2]);
        assert_eq!(prefixes(&t, "/xy"), vec![6, 3]);
        assert_eq!(prefixes(&t, ""), vec![6]);
    }

    #[test]
    fn reversed_keys_find_suffixes() {
        let mut b = TrieBuilder::default();
        b.insert(".css".bytes().rev(), 1);
        b.insert("s".bytes().rev(), 2);
        let t = b.build();
        let mut out = Vec::new();
        t.for_each_prefix_of("/a/b.css".bytes().rev(), |v| out.push(v));
        assert_eq!(out, vec![2, 1]);
    }

    #[test]
    fn empty_trie() {
        let t = TrieBuilder::default().build();
        assert!(prefixes(&t, "/a").is_empty());
        assert!(prefixes(&PrefixTrie::default(), "/a").is_empty());
    }
}
