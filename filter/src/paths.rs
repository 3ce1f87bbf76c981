//! The path index: every distinct path pattern of a configuration, answering
//! "which patterns match this canonical path?" in one pass over the path.
//!
//! ```text
//!                      ┌ exact     → hash map            (one lookup)
//!  canonical path ─────┼ prefix*   → radix trie          (one walk)
//!                      ├ *suffix   → radix trie, reversed (one walk)
//!                      ├ *         → always
//!                      └ {*} {**} regex: → one Thompson NFA searched by a
//!                                          lazy DFA (overlapping, anchored)
//! ```
//!
//! The cost of a lookup depends on the path length and on the number of
//! patterns that match, not on the number of patterns. The lazy DFA builds its
//! states on demand in a cache of bounded size, so compiling is cheap (no
//! determinization up front) and memory stays bounded; its search is linear in
//! the path length whatever the patterns.

use std::collections::HashMap;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures, NFA};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchError, MatchKind};
use regex_syntax::hir::{Hir, Look};

use crate::error::{ConfigError, PatternError};
use crate::pattern::{MatchPath, TemplateSegment};
use crate::trie::{PrefixTrie, TrieBuilder};

/// Index of a distinct path pattern.
pub(crate) type PathId = u32;

/// Compiled size limit of one `regex:` pattern.
pub const MAX_REGEX_SIZE: usize = 64 * 1024;
/// Compiled size limit of all templates and regular expressions together.
pub const MAX_AUTOMATON_SIZE: usize = 8 * 1024 * 1024;
/// Lazy DFA cache per evaluator (grown to the automaton's minimum if needed).
const DFA_CACHE_CAPACITY: usize = 2 * 1024 * 1024;

/// Regular expressions are byte-oriented: canonical paths are ASCII.
fn syntax_config() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false).nest_limit(64)
}

/// Parses and size-checks one `regex:` pattern on its own, so that an error
/// names the pattern that caused it.
pub(crate) fn check_regex(re: &str) -> Result<(), PatternError> {
    let hir = syntax::parse_with(re, &syntax_config()).map_err(|e| PatternError::Regex(Box::new(e)))?;
    thompson::Compiler::new()
        .configure(nfa_config(MAX_REGEX_SIZE))
        .build_from_hir(&anchored_end(hir))
        .map(|_| ())
        .map_err(|_| PatternError::RegexTooLarge(MAX_REGEX_SIZE))
}

fn nfa_config(limit: usize) -> thompson::Config {
    thompson::Config::new()
        .which_captures(WhichCaptures::None)
        .nfa_size_limit(Some(limit))
}

/// The search is anchored at the start; `\z` anchors the end, so every
/// reported match covers the whole path.
fn anchored_end(hir: Hir) -> Hir {
    Hir::concat(vec![hir, Hir::look(Look::End)])
}

fn template_hir(segments: &[TemplateSegment]) -> Hir {
    let any_but_slash = || {
        Hir::class(regex_syntax::hir::Class::Bytes(regex_syntax::hir::ClassBytes::new([
            regex_syntax::hir::ClassBytesRange::new(0, b'/' - 1),
            regex_syntax::hir::ClassBytesRange::new(b'/' + 1, 0xff),
        ])))
    };
    let any_byte = || {
        Hir::class(regex_syntax::hir::Class::Bytes(regex_syntax::hir::ClassBytes::new([
            regex_syntax::hir::ClassBytesRange::new(0, 0xff),
        ])))
    };
    let one_or_more = |h: Hir| {
        Hir::repetition(regex_syntax::hir::Repetition {
            min: 1,
            max: None,
            greedy: true,
            sub: Box::new(h),
        })
    };
    let mut parts = Vec::with_capacity(segments.len() * 2);
    for seg in segments {
        parts.push(Hir::literal(*b"/"));
        parts.push(match seg {
            TemplateSegment::Literal(l) => Hir::literal(l.as_bytes()),
            TemplateSegment::One => one_or_more(any_but_slash()),
            TemplateSegment::Rest => one_or_more(any_byte()),
        });
    }
    Hir::concat(parts)
}

/// Collects distinct path patterns, then builds the [`PathIndex`].
#[derive(Debug, Default)]
pub(crate) struct PathIndexBuilder {
    ids: HashMap<MatchPath, PathId>,
    patterns: Vec<MatchPath>,
}

impl PathIndexBuilder {
    /// The id of `pattern`, the same for equal patterns.
    pub(crate) fn intern(&mut self, pattern: MatchPath) -> PathId {
        if let Some(&id) = self.ids.get(&pattern) {
            return id;
        }
        let id = self.patterns.len() as PathId;
        self.patterns.push(pattern.clone());
        self.ids.insert(pattern, id);
        id
    }

    /// Number of distinct patterns so far.
    pub(crate) fn len(&self) -> usize {
        self.patterns.len()
    }

    pub(crate) fn build(self) -> Result<PathIndex, ConfigError> {
        let mut exact = HashMap::new();
        let mut prefixes = TrieBuilder::default();
        let mut suffixes = TrieBuilder::default();
        let mut any = Vec::new();
        let mut hirs = Vec::new();
        let mut automaton_ids = Vec::new();
        let mut counts = PathCounts::default();
        for (id, pattern) in self.patterns.into_iter().enumerate() {
            let id = id as PathId;
            match pattern {
                MatchPath::Exact(p) => {
                    counts.exact += 1;
                    exact.insert(p, id);
                }
                MatchPath::Prefix(p) => {
                    counts.prefix += 1;
                    prefixes.insert(p.bytes(), id);
                }
                MatchPath::Suffix(s) => {
                    counts.suffix += 1;
                    suffixes.insert(s.bytes().rev(), id);
                }
                MatchPath::Any => {
                    counts.any += 1;
                    any.push(id);
                }
                MatchPath::Template(segments) => {
                    counts.template += 1;
                    hirs.push(anchored_end(template_hir(&segments)));
                    automaton_ids.push(id);
                }
                MatchPath::Regex(re) => {
                    counts.regex += 1;
                    // Already checked by `check_regex` during validation.
                    let hir =
                        syntax::parse_with(&re, &syntax_config()).map_err(|e| ConfigError::AutomatonTooLarge {
                            limit: MAX_AUTOMATON_SIZE,
                            source: Box::new(e),
                        })?;
                    hirs.push(anchored_end(hir));
                    automaton_ids.push(id);
                }
            }
        }
        let automaton = if hirs.is_empty() {
            None
        } else {
            Some(Automaton::build(&hirs, automaton_ids)?)
        };
        Ok(PathIndex {
            exact,
            prefixes: prefixes.build(),
            suffixes: suffixes.build(),
            any,
            automaton,
            counts,
        })
    }
}

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

/// All path patterns of a configuration, compiled.
#[derive(Debug)]
pub(crate) struct PathIndex {
    exact: HashMap<Box<str>, PathId>,
    prefixes: PrefixTrie,
    suffixes: PrefixTrie,
    any: Vec<PathId>,
    automaton: Option<Automaton>,
    counts: PathCounts,
}

#[derive(Debug)]
struct Automaton {
    dfa: DFA,
    /// Automaton pattern index → path id.
    ids: Vec<PathId>,
    nfa_bytes: usize,
}

impl Automaton {
    fn build(hirs: &[Hir], ids: Vec<PathId>) -> Result<Self, ConfigError> {
        let too_large = |e: Box<dyn std::error::Error + Send + Sync>| ConfigError::AutomatonTooLarge {
            limit: MAX_AUTOMATON_SIZE,
            source: e,
        };
        let nfa: NFA = thompson::Compiler::new()
            .configure(nfa_config(MAX_AUTOMATON_SIZE))
            .build_many_from_hir(hirs)
            .map_err(|e| too_large(Box::new(e)))?;
        let nfa_bytes = nfa.memory_usage();
        let config = DFA::config().match_kind(MatchKind::All);
        let minimum = config
            .get_minimum_cache_capacity(&nfa)
            .map_err(|e| too_large(Box::new(e)))?;
        let dfa = DFA::builder()
            .configure(config.cache_capacity(DFA_CACHE_CAPACITY.max(minimum.saturating_mul(4))))
            .build_from_nfa(nfa)
            .map_err(|e| too_large(Box::new(e)))?;
        Ok(Self { dfa, ids, nfa_bytes })
    }
}

impl PathIndex {
    /// A search cache for this index (one per evaluator, reused per request).
    pub(crate) fn create_cache(&self) -> Option<Cache> {
        self.automaton.as_ref().map(|a| a.dfa.create_cache())
    }

    /// Appends the id of every pattern that matches `path` to `out`, unsorted.
    ///
    /// `cache` must be empty or come from [`PathIndex::create_cache`] of this
    /// index; an empty one is created here.
    pub(crate) fn find(&self, path: &str, cache: &mut Option<Cache>, out: &mut Vec<PathId>) -> Result<(), MatchError> {
        out.extend_from_slice(&self.any);
        if let Some(&id) = self.exact.get(path) {
            out.push(id);
        }
        self.prefixes.for_each_prefix_of(path.bytes(), |id| out.push(id));
        self.suffixes.for_each_prefix_of(path.bytes().rev(), |id| out.push(id));
        if let Some(a) = &self.automaton {
            let cache = cache.get_or_insert_with(|| a.dfa.create_cache());
            let input = Input::new(path).anchored(Anchored::Yes);
            let mut state = regex_automata::hybrid::dfa::OverlappingState::start();
            loop {
                a.dfa.try_search_overlapping_fwd(cache, &input, &mut state)?;
                let Some(m) = state.get_match() else { break };
                if let Some(&id) = a.ids.get(m.pattern().as_usize()) {
                    out.push(id);
                }
            }
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
            + self.any.capacity() * 4
            + self
                .automaton
                .as_ref()
                .map_or(0, |a| a.nfa_bytes + a.ids.capacity() * 4)
    }
}
