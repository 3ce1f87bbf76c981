//! The path index: every distinct path pattern of a configuration, answering
//! "which patterns match this canonical path?" in one pass over the path.
//!
//! ```text
//!                      ┌ exact     → hash map            (one lookup)
//!  canonical path ─────┼ prefix*   → radix trie          (one walk)
//!                      ├ *suffix   → radix trie, reversed (one walk)
//!                      ├ *         → always
//!                      ├ {*} {**}  → segment trie        (one walk)
//!                      └ regex:    ┬ literal prefix → radix trie, then one
//!                                    │   Thompson NFA over the distinct rests
//!                                    └ the others → one Thompson NFA
//!                                      (both walked by lazy DFAs, anchored at
//!                                      both ends)
//! ```
//!
//! The cost of a lookup depends on the path length and on the number of
//! patterns that match, not on the number of patterns. The lazy DFAs build
//! their states on demand in caches of bounded size, so compiling is cheap (no
//! determinization up front) and memory stays bounded; each search is linear in
//! the path length whatever the patterns.
//!
//! Building takes two steps, so that the configuration can be dropped before
//! the largest allocations: a [`PathIndexBuilder`] interns each pattern as
//! compilation meets it (parsing and checking it, so that an error names it),
//! and its [`PendingPathIndex`], which owns its data, then builds the regex
//! automata. The `regex` submodule parses `regex:` patterns and files each
//! whole or split at its literal prefix; the `automaton` submodule compiles
//! and walks the automata.

use rustc_hash::FxHashMap as HashMap;

use regex_automata::hybrid::dfa::Cache;
use regex_automata::MatchError;

use crate::error::{ConfigError, PatternError};
use crate::pattern::{MatchPath, TemplateSegment};
use crate::template::{TemplateBuilder, TemplateIndex};
use crate::trie::{PrefixTrie, TrieBuilder};

mod automaton;
mod regex;

use automaton::{Automaton, SplitRegexes};
use regex::{PendingRegexes, RegexBuilder};

/// Per-evaluator search state of a [`PathIndex`], reused across requests.
#[derive(Debug, Default)]
pub(crate) struct PathScratch {
    cache: Option<Cache>,
    rest_cache: Option<Cache>,
    active: Vec<u32>,
    next: Vec<u32>,
    /// Literal ids, then the rests matched after one (split regexes).
    literals: Vec<u32>,
    rests: Vec<u32>,
}

/// Index of a distinct path pattern.
pub(crate) type PathId = u32;

/// Compiled size limit of one `regex:` pattern.
pub const MAX_REGEX_SIZE: usize = 64 * 1024;
/// Compiled size limit of all templates and regular expressions together.
pub const MAX_AUTOMATON_SIZE: usize = 8 * 1024 * 1024;
/// Lazy DFA caches per evaluator, shared equally by the (at most two)
/// automata; each is grown to four times its automaton's minimum if needed.
const DFA_CACHE_CAPACITY: usize = 2 * 1024 * 1024;

/// How many distinct path patterns of each form an index holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounts {
    /// Exact paths.
    pub exact: usize,
    /// `prefix*` paths.
    pub prefix: usize,
    /// `*suffix` paths.
    pub suffix: usize,
    /// `*`.
    pub any: usize,
    /// `{*}` / `{**}` templates.
    pub template: usize,
    /// `regex:` patterns.
    pub regex: usize,
}

/// Collects distinct path patterns, then builds the [`PathIndex`].
#[derive(Debug, Default)]
pub(crate) struct PathIndexBuilder<'c> {
    /// Pattern as written → id. Equal patterns share an id; two spellings of
    /// one pattern ("/a/*" and "/a/*") are one spelling.
    ids: HashMap<&'c str, PathId>,
    /// gRPC service → the id of `/<service>/{*}` (every method).
    grpc_services: HashMap<&'c str, PathId>,
    /// Number of distinct patterns: the next id.
    len: usize,
    exact: HashMap<Box<str>, PathId>,
    prefixes: TrieBuilder,
    suffixes: TrieBuilder,
    templates: TemplateBuilder<'c>,
    any: Vec<PathId>,
    regexes: RegexBuilder<'c>,
    counts: PathCounts,
}

impl<'c> PathIndexBuilder<'c> {
    /// A builder for about `patterns` patterns: the map of all patterns is
    /// sized once instead of rehashing every key at each doubling. (Not the
    /// map of exact ones: it is kept by the index, and its share is unknown.)
    pub(crate) fn with_capacity(patterns: usize) -> Self {
        let mut builder = Self::default();
        builder.ids.reserve(patterns);
        builder
    }

    /// The id of the path pattern written as `source`, the same for equal
    /// patterns. A new pattern is parsed (and a regex size-checked) here.
    pub(crate) fn intern(&mut self, source: &'c str) -> Result<PathId, PatternError> {
        if let Some(&id) = self.ids.get(source) {
            return Ok(id);
        }
        let pattern = MatchPath::parse(source)?;
        if let MatchPath::Exact(p) = pattern {
            // A gRPC method's path may have been interned without a source.
            if let Some(&id) = self.exact.get(p) {
                self.ids.insert(source, id);
                return Ok(id);
            }
        }
        let id = self.next_id();
        let c = &mut self.counts;
        match pattern {
            MatchPath::Exact(p) => {
                c.exact += 1;
                self.exact.insert(p.into(), id);
            }
            MatchPath::Prefix(p) => {
                c.prefix += 1;
                self.prefixes.insert(p.bytes(), id);
            }
            MatchPath::Suffix(p) => {
                c.suffix += 1;
                self.suffixes.insert(p.bytes().rev(), id);
            }
            MatchPath::Any => {
                c.any += 1;
                self.any.push(id);
            }
            MatchPath::Template(segments) => {
                c.template += 1;
                self.templates.insert(&segments, id);
            }
            MatchPath::Regex(re) => {
                self.regexes.push(re, id)?;
                self.counts.regex += 1;
            }
        }
        self.ids.insert(source, id);
        Ok(id)
    }

    /// The id of the path of gRPC method `method` of `service`
    /// (`/<service>/<method>`, exact), or with `None` of every method of it
    /// (`/<service>/{*}`, a template). Both names must be valid protobuf
    /// names, which are canonical path segments as they are.
    pub(crate) fn intern_grpc(&mut self, service: &'c str, method: Option<&str>) -> PathId {
        match method {
            Some(method) => {
                let path = format!("/{service}/{method}");
                if let Some(&id) = self.exact.get(path.as_str()) {
                    return id;
                }
                let id = self.next_id();
                self.counts.exact += 1;
                self.exact.insert(path.into(), id);
                id
            }
            None => {
                if let Some(&id) = self.grpc_services.get(service) {
                    return id;
                }
                let id = self.next_id();
                self.counts.template += 1;
                self.templates
                    .insert(&[TemplateSegment::Literal(service), TemplateSegment::One], id);
                self.grpc_services.insert(service, id);
                id
            }
        }
    }

    fn next_id(&mut self) -> PathId {
        let id = self.len as PathId;
        self.len += 1;
        id
    }

    /// Number of distinct patterns so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Everything but the regex automata, owning its data: what is left to
    /// build no longer borrows the configuration, which can go first. Here
    /// each regex is filed whole or split at its literal prefix.
    pub(crate) fn finish(self) -> PendingPathIndex {
        let regexes = self.regexes.finish();
        PendingPathIndex {
            index: PathIndex {
                exact: self.exact,
                prefixes: self.prefixes.build(),
                suffixes: self.suffixes.build(),
                templates: self.templates.build(),
                any: self.any,
                automaton: None,
                split: None,
                counts: self.counts,
            },
            regexes,
        }
    }
}

/// A [`PathIndex`] whose regex automata are still to be built.
#[derive(Debug)]
pub(crate) struct PendingPathIndex {
    index: PathIndex,
    regexes: PendingRegexes,
}

impl PendingPathIndex {
    /// Builds the regex automata (the largest allocations of configure),
    /// within [`MAX_AUTOMATON_SIZE`] together.
    pub(crate) fn build(self) -> Result<PathIndex, ConfigError> {
        let mut index = self.index;
        let regexes = self.regexes;
        let mut budget = MAX_AUTOMATON_SIZE;
        let automata = usize::from(!regexes.whole.is_empty()) + usize::from(regexes.split.is_some());
        let cache = DFA_CACHE_CAPACITY / automata.max(1);
        if !regexes.whole.is_empty() {
            let automaton = Automaton::build(&regexes.whole, regexes.whole_ids, budget, cache)?;
            budget = budget.saturating_sub(automaton.nfa_bytes());
            index.automaton = Some(automaton);
        }
        if let Some(split) = regexes.split {
            index.split = Some(split.build(budget, cache)?);
        }
        Ok(index)
    }
}

/// All path patterns of a configuration, compiled.
#[derive(Debug)]
pub(crate) struct PathIndex {
    exact: HashMap<Box<str>, PathId>,
    prefixes: PrefixTrie,
    suffixes: PrefixTrie,
    templates: TemplateIndex,
    any: Vec<PathId>,
    /// The regexes kept whole.
    automaton: Option<Automaton>,
    /// The regexes split at their literal prefix.
    split: Option<SplitRegexes>,
    counts: PathCounts,
}

impl Default for PathIndex {
    /// An index of no pattern.
    fn default() -> Self {
        PathIndexBuilder::default().finish().index
    }
}

impl PathIndex {
    /// Appends the id of every pattern that matches `path` to `out`, unsorted.
    ///
    /// `scratch` must be new or have been used with this index only.
    pub(crate) fn find(&self, path: &str, scratch: &mut PathScratch, out: &mut Vec<PathId>) -> Result<(), MatchError> {
        out.extend_from_slice(&self.any);
        if let Some(&id) = self.exact.get(path) {
            out.push(id);
        }
        self.prefixes.for_each_prefix_of(path.bytes(), |id| out.push(id));
        self.suffixes.for_each_prefix_of(path.bytes().rev(), |id| out.push(id));
        self.templates.find(path, &mut scratch.active, &mut scratch.next, out);
        if let Some(a) = &self.automaton {
            let cache = scratch.cache.get_or_insert_with(|| a.create_cache());
            a.matches_to_end(path, 0, cache, out)?;
        }
        if let Some(split) = &self.split {
            split.find(path, scratch, out)?;
        }
        Ok(())
    }

    pub(crate) fn counts(&self) -> PathCounts {
        self.counts
    }

    /// Approximate heap size in bytes, without the lazy DFA cache.
    pub(crate) fn heap_size(&self) -> usize {
        let exact: usize = self.exact.keys().map(|k| k.len() + 32).sum();
        exact
            + self.prefixes.heap_size()
            + self.suffixes.heap_size()
            + self.templates.heap_size()
            + self.any.capacity() * 4
            + self.automaton.as_ref().map_or(0, Automaton::heap_size)
            + self.split.as_ref().map_or(0, SplitRegexes::heap_size)
    }
}

// The reference is the `regex` crate, a native dev-dependency only.
#[cfg(test)]
#[cfg(not(target_arch = "wasm32"))]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64) for test inputs.
    pub(super) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The reference: each regex anchored at both ends, by the `regex` crate.
    pub(super) fn whole_path_regexes(sources: &[impl AsRef<str>]) -> Vec<::regex::Regex> {
        sources
            .iter()
            .map(|re| ::regex::Regex::new(&format!("^(?:{})$", re.as_ref())).unwrap())
            .collect()
    }

    /// Regexes filed whole and split at their literal prefix together match
    /// exactly what the `regex` crate matches on the whole path, including
    /// look-behind at the split point (`\b`, `^`, `\B` right after the
    /// literal), literals that nest (kept whole), shared rests and a literal
    /// that is the whole pattern.
    #[test]
    fn split_regexes_match_like_the_regex_crate() {
        let literals = ["/a", "/ab", "/b/", "/c1", "/c12/", "/d", "/e9/v", "/f/x"];
        let rests = [
            "[0-9]+",
            "x?",
            "\\b.*",
            "^x",
            "\\B[a-z]*",
            "(?i)X",
            "",
            "b+",
            ".*/end",
            "(a|b)/[^/]+",
            "$",
        ];
        let mut sources: Vec<String> = Vec::new();
        for (i, literal) in literals.iter().enumerate() {
            for (j, rest) in rests.iter().enumerate() {
                if (i + j) % 3 != 0 {
                    sources.push(format!("regex:{literal}{rest}"));
                }
            }
        }
        // No literal prefix at all.
        sources.push("regex:[/a-z]+9".to_string());
        let mut builder = PathIndexBuilder::default();
        let ids: Vec<PathId> = sources.iter().map(|s| builder.intern(s).unwrap()).collect();
        let pending = builder.finish();
        let split = pending.regexes.split.as_ref().unwrap();
        let split_literals = (0..split.literal_lens.len() as u32)
            .filter(|&l| !split.members_of.get(l).is_empty())
            .count();
        assert!(split_literals >= 3, "too few literals split: {split_literals}");
        assert!(!pending.regexes.whole.is_empty(), "nothing kept whole");
        let index = pending.build().unwrap();
        let texts: Vec<&str> = sources.iter().map(|s| s.trim_start_matches("regex:")).collect();
        let reference = whole_path_regexes(&texts);
        let mut scratch = PathScratch::default();
        let mut next = xorshift(11);
        let alphabet = b"/abcdefvxX0129end";
        let mut matched = 0;
        for _ in 0..20_000 {
            let mut path = literals[(next() % literals.len() as u64) as usize].to_string();
            for _ in 0..(next() % 8) {
                path.push(char::from(alphabet[(next() % alphabet.len() as u64) as usize]));
            }
            let mut got = Vec::new();
            index.find(&path, &mut scratch, &mut got).unwrap();
            got.sort_unstable();
            let want: Vec<PathId> = ids
                .iter()
                .zip(&reference)
                .filter(|(_, re)| re.is_match(&path))
                .map(|(&id, _)| id)
                .collect();
            assert_eq!(got, want, "{path}");
            matched += usize::from(!want.is_empty());
        }
        assert!(matched > 2_000, "too few paths matched anything: {matched}");
    }
}
