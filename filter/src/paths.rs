//! The path index: every distinct path pattern of a configuration, answering
//! "which patterns match this canonical path?" in one pass over the path.
//!
//! ```text
//!                      ┌ exact     → hash map            (one lookup)
//!  canonical path ─────┼ prefix*   → radix trie          (one walk)
//!                      ├ *suffix   → radix trie, reversed (one walk)
//!                      ├ *         → always
//!                      ├ {*} {**}  → segment trie        (one walk)
//!                      └ regex:    → one Thompson NFA, walked by a lazy DFA
//!                                    (anchored at both ends)
//! ```
//!
//! The cost of a lookup depends on the path length and on the number of
//! patterns that match, not on the number of patterns. The lazy DFA builds its
//! states on demand in a cache of bounded size, so compiling is cheap (no
//! determinization up front) and memory stays bounded; its search is linear in
//! the path length whatever the patterns.

use rustc_hash::FxHashMap as HashMap;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures, NFA};
use regex_automata::{Anchored, Input, MatchError, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use crate::error::{ConfigError, PatternError};
use crate::pattern::MatchPath;
use crate::template::{TemplateBuilder, TemplateIndex};
use crate::trie::{PrefixTrie, TrieBuilder};

/// Per-evaluator search state of a [`PathIndex`], reused across requests.
#[derive(Debug, Default)]
pub(crate) struct PathScratch {
    cache: Option<Cache>,
    active: Vec<u32>,
    next: Vec<u32>,
}

/// Index of a distinct path pattern.
pub(crate) type PathId = u32;

/// Compiled size limit of one `regex:` pattern.
pub const MAX_REGEX_SIZE: usize = 64 * 1024;
/// Compiled size limit of all templates and regular expressions together.
pub const MAX_AUTOMATON_SIZE: usize = 8 * 1024 * 1024;
/// Lazy DFA cache per evaluator (grown to the automaton's minimum if needed).
const DFA_CACHE_CAPACITY: usize = 2 * 1024 * 1024;

/// Regular expressions are byte-oriented: canonical paths are ASCII.
///
/// A `regex_syntax::Parser` must not be reused (it asserts that it is fresh,
/// a panic that would kill the VM), so each pattern gets a new one; its
/// buffers start empty, so this costs no allocation.
fn parser() -> regex_syntax::Parser {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .nest_limit(64)
        .build()
}

/// Bytes per NFA state assumed by [`estimated_nfa_bytes`]; above what the
/// Thompson compiler uses per state, so the estimate is an upper bound.
const NFA_BYTES_PER_STATE: usize = 32;

/// An upper bound of the compiled size of `hir`, computed from its shape
/// without compiling it.
fn estimated_nfa_bytes(hir: &Hir) -> usize {
    fn states(h: &Hir) -> usize {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => 1,
            HirKind::Literal(lit) => lit.0.len(),
            HirKind::Class(Class::Bytes(c)) => c.ranges().len() + 1,
            HirKind::Class(Class::Unicode(c)) => c.ranges().len().saturating_mul(8) + 1,
            HirKind::Repetition(r) => {
                let copies = r.max.unwrap_or(r.min).max(r.min).saturating_add(1) as usize;
                states(&r.sub).saturating_mul(copies).saturating_add(2)
            }
            HirKind::Capture(c) => states(&c.sub),
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().map(states).fold(v.len(), usize::saturating_add),
        }
    }
    states(hir).saturating_mul(NFA_BYTES_PER_STATE)
}

/// Splits `re` into a leading run of characters that are literal in any
/// regular expression and the rest: the literal ends before any
/// metacharacter, escape or whitespace, and gives back its last character when
/// a quantifier follows (in `ab+`, `+` applies to `b`). Patterns with `|`
/// (alternation binds loosest: `/a|b` is not `/a(?:|b)`) are not split.
fn literal_prefix(re: &str) -> (&str, &str) {
    if re.contains('|') {
        return ("", re);
    }
    let end = re
        .bytes()
        .position(|b| {
            !(b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'_'
                        | b'%'
                        | b'='
                        | b':'
                        | b'@'
                        | b'!'
                        | b','
                        | b';'
                        | b'\''
                        | b'"'
                        | b'<'
                        | b'>'
                        | b'-'
                        | b'~'
                ))
        })
        .unwrap_or(re.len());
    let quantified = matches!(re.as_bytes().get(end), Some(b'*' | b'+' | b'?' | b'{'));
    let end = if quantified { end.saturating_sub(1) } else { end };
    re.split_at(end)
}

/// Parses a regular expression anchored at its end (`\z`). A literal prefix
/// is taken as is and only the rest goes through the parser: parsing is most
/// of the cost of compiling thousands of path regexes. `parsed` remembers the
/// rests parsed so far: path regexes of one service tend to differ only in
/// their literal prefix (`/svc1/v[0-9]+`, `/svc2/v[0-9]+`), and the parser's
/// output depends on nothing but the text.
fn parse_anchored<'c>(re: &'c str, parsed: &mut HashMap<&'c str, Hir>) -> Result<Hir, Box<regex_syntax::Error>> {
    let (literal, rest) = literal_prefix(re);
    let mut parts = Vec::with_capacity(3);
    if !literal.is_empty() {
        parts.push(Hir::literal(literal.as_bytes()));
    }
    if literal.is_empty() || !rest.is_empty() {
        let hir = match parsed.get(rest) {
            Some(hir) => hir.clone(),
            None => {
                let hir = parser().parse(rest).map_err(Box::new)?;
                parsed.insert(rest, hir.clone());
                hir
            }
        };
        parts.push(hir);
    }
    parts.push(Hir::look(Look::End));
    Ok(Hir::concat(parts))
}

/// Parses and size-checks one `regex:` pattern on its own, so that an error
/// names the pattern that caused it. Returns the pattern anchored at its end.
fn check_regex<'c>(re: &'c str, parsed: &mut HashMap<&'c str, Hir>) -> Result<Hir, PatternError> {
    let hir = parse_anchored(re, parsed).map_err(PatternError::Regex)?;
    // Only a pattern whose bound exceeds the limit is compiled to decide.
    if estimated_nfa_bytes(&hir) > MAX_REGEX_SIZE {
        thompson::Compiler::new()
            .configure(nfa_config(MAX_REGEX_SIZE))
            .build_from_hir(&hir)
            .map_err(|_| PatternError::RegexTooLarge(MAX_REGEX_SIZE))?;
    }
    Ok(hir)
}

fn nfa_config(limit: usize) -> thompson::Config {
    thompson::Config::new()
        .which_captures(WhichCaptures::None)
        .nfa_size_limit(Some(limit))
}

/// Collects distinct path patterns, then builds the [`PathIndex`].
#[derive(Debug, Default)]
pub(crate) struct PathIndexBuilder<'c> {
    /// Pattern as written → id. Equal patterns share an id; two spellings of
    /// one pattern ("/a/*" and "/a/*") are one spelling.
    ids: HashMap<&'c str, PathId>,
    exact: HashMap<Box<str>, PathId>,
    prefixes: TrieBuilder,
    suffixes: TrieBuilder,
    templates: TemplateBuilder<'c>,
    any: Vec<PathId>,
    regexes: Vec<Hir>,
    regex_ids: Vec<PathId>,
    /// Regex text after the literal prefix → its parse (see [`parse_anchored`]).
    parsed_rests: HashMap<&'c str, Hir>,
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
        let id = self.ids.len() as PathId;
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
                self.regexes.push(check_regex(re, &mut self.parsed_rests)?);
                self.regex_ids.push(id);
                self.counts.regex += 1;
            }
        }
        self.ids.insert(source, id);
        Ok(id)
    }

    /// Number of distinct patterns so far.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Everything but the regex automaton, owning its data: what is left to
    /// build no longer borrows the configuration, which can go first.
    pub(crate) fn finish(self) -> PendingPathIndex {
        PendingPathIndex {
            index: PathIndex {
                exact: self.exact,
                prefixes: self.prefixes.build(),
                suffixes: self.suffixes.build(),
                templates: self.templates.build(),
                any: self.any,
                automaton: None,
                counts: self.counts,
            },
            regexes: self.regexes,
            regex_ids: self.regex_ids,
        }
    }
}

impl Default for PathIndex {
    /// An index of no pattern.
    fn default() -> Self {
        PathIndexBuilder::default().finish().index
    }
}

/// A [`PathIndex`] whose regex automaton is still to be built.
#[derive(Debug)]
pub(crate) struct PendingPathIndex {
    index: PathIndex,
    regexes: Vec<Hir>,
    regex_ids: Vec<PathId>,
}

impl PendingPathIndex {
    /// Builds the regex automaton (the largest allocation of configure).
    pub(crate) fn build(self) -> Result<PathIndex, ConfigError> {
        let mut index = self.index;
        if !self.regexes.is_empty() {
            index.automaton = Some(Automaton::build(&self.regexes, self.regex_ids, DFA_CACHE_CAPACITY)?);
        }
        Ok(index)
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
    templates: TemplateIndex,
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
    /// Appends the id of every pattern that matches the whole of `path`.
    ///
    /// Every pattern is anchored at both ends, so this is one walk of the
    /// lazy DFA from the anchored start state over the path's bytes and then
    /// the end-of-input transition; the state it ends in lists every pattern
    /// that matched (`MatchKind::All` keeps them all). An overlapping search
    /// reports the same set, at about five times the instructions per byte
    /// (callgrind).
    fn whole_path_matches(&self, path: &str, cache: &mut Cache, out: &mut Vec<PathId>) -> Result<(), MatchError> {
        let dfa = &self.dfa;
        let mut sid = dfa.start_state_forward(cache, &Input::new(path).anchored(Anchored::Yes))?;
        for (at, &byte) in path.as_bytes().iter().enumerate() {
            sid = dfa.next_state(cache, sid, byte).map_err(|_| MatchError::gave_up(at))?;
            if sid.is_tagged() {
                if sid.is_dead() {
                    return Ok(());
                }
                if sid.is_quit() {
                    return Err(MatchError::quit(byte, at));
                }
            }
        }
        sid = dfa
            .next_eoi_state(cache, sid)
            .map_err(|_| MatchError::gave_up(path.len()))?;
        if sid.is_match() {
            for i in 0..dfa.match_len(cache, sid) {
                if let Some(&id) = self.ids.get(dfa.match_pattern(cache, sid, i).as_usize()) {
                    out.push(id);
                }
            }
        }
        Ok(())
    }

    /// The automaton of `hirs`, its lazy DFA's cache `cache_capacity` bytes
    /// (at least four times the minimum the DFA needs).
    fn build(hirs: &[Hir], ids: Vec<PathId>, cache_capacity: usize) -> Result<Self, ConfigError> {
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
            .configure(config.cache_capacity(cache_capacity.max(minimum.saturating_mul(4))))
            .build_from_nfa(nfa)
            .map_err(|e| too_large(Box::new(e)))?;
        Ok(Self { dfa, ids, nfa_bytes })
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
            let cache = scratch.cache.get_or_insert_with(|| a.dfa.create_cache());
            a.whole_path_matches(path, cache, out)?;
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
            + self
                .automaton
                .as_ref()
                .map_or(0, |a| a.nfa_bytes + a.ids.capacity() * 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// The walk of `whole_path_matches` keeps working when the lazy DFA's
    /// cache fills up and is cleared in the middle of a path: with the
    /// smallest cache allowed, many patterns and long paths, the patterns
    /// reported are exactly those the `regex` crate matches on the whole path.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn walk_survives_cache_clears() {
        let sources: Vec<String> = (0..60)
            .map(|i| match i % 6 {
                0 => format!("/s{i}/v[0-9]+/[a-z]+"),
                1 => format!("/s{}/.*/x{i}", i % 7),
                2 => "/s[0-9]+/(a|b)+/.*".to_string(),
                3 => format!("/s{i}/[^/]+/[^/]+/end"),
                4 => format!("(/[a-z0-9]+){{2,{}}}", 2 + i % 5),
                // 2^11 DFA states over `a` and `b`: more than the cache holds.
                _ => format!("/s{}/[ab]*b[ab]{{{}}}", i % 4, 8 + i % 4),
            })
            .collect();
        let mut parsed = HashMap::default();
        let hirs: Vec<Hir> = sources
            .iter()
            .map(|re| parse_anchored(re, &mut parsed).unwrap())
            .collect();
        let ids: Vec<PathId> = (0..sources.len() as PathId).collect();
        let automaton = Automaton::build(&hirs, ids, 0).unwrap();
        let reference: Vec<regex::Regex> = sources
            .iter()
            .map(|re| regex::Regex::new(&format!("^(?:{re})$")).unwrap())
            .collect();
        let mut cache = automaton.dfa.create_cache();
        let mut seed = 7u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"/ababab0123sxendv";
        let mut matched_some = 0;
        for n in 0..3000 {
            let len = 1 + (next() % 60) as usize;
            // Every other path walks the `[ab]` patterns' many states.
            let (mut path, alphabet): (String, &[u8]) = if n % 2 == 0 {
                (format!("/s{}/", next() % 4), b"ab")
            } else {
                (String::from("/s"), alphabet)
            };
            for _ in 0..len {
                path.push(char::from(alphabet[(next() % alphabet.len() as u64) as usize]));
            }
            let mut got = Vec::new();
            automaton.whole_path_matches(&path, &mut cache, &mut got).unwrap();
            got.sort_unstable();
            let want: Vec<PathId> = (0..sources.len() as PathId)
                .filter(|&i| reference[i as usize].is_match(&path))
                .collect();
            assert_eq!(got, want, "{path}");
            matched_some += usize::from(!want.is_empty());
        }
        assert!(cache.clear_count() > 0, "the cache was never cleared");
        assert!(matched_some > 100, "too few paths matched anything: {matched_some}");
    }

    #[test]
    fn literal_prefix_stops_where_syntax_starts() {
        assert_eq!(literal_prefix("/svc3/v[0-9]+/report"), ("/svc3/v", "[0-9]+/report"));
        assert_eq!(literal_prefix("/ab+c"), ("/a", "b+c"));
        assert_eq!(literal_prefix("/ab{2}"), ("/a", "b{2}"));
        assert_eq!(literal_prefix("/a.b"), ("/a", ".b"));
        assert_eq!(literal_prefix("/a\\.b"), ("/a", "\\.b"));
        assert_eq!(literal_prefix("/a|/b"), ("", "/a|/b"));
        assert_eq!(literal_prefix("(?i)/a"), ("", "(?i)/a"));
        assert_eq!(literal_prefix("/plain"), ("/plain", ""));
        assert_eq!(literal_prefix("a?"), ("", "a?"));
    }

    #[test]
    fn split_parse_equals_full_parse() {
        // One memo for all, as in a configuration: the second and third
        // patterns reuse the first one's parsed rest.
        let mut parsed = HashMap::default();
        for re in [
            "/svc3/v[0-9]+/report",
            "/svc4/v[0-9]+/report",
            "/v[0-9]+/report",
            "/ab+c",
            "/a.b",
            "/x?",
            "/a(b|c)d",
            "/plain",
            "/a{2,3}",
            "/é+",
        ] {
            let full = Hir::concat(vec![parser().parse(re).unwrap(), Hir::look(Look::End)]);
            let split = parse_anchored(re, &mut parsed).unwrap();
            let a = thompson::Compiler::new()
                .configure(nfa_config(1 << 20))
                .build_from_hir(&full)
                .unwrap();
            let b = thompson::Compiler::new()
                .configure(nfa_config(1 << 20))
                .build_from_hir(&split)
                .unwrap();
            for hay in [
                "/svc3/v12/report",
                "/svc4/v12/report",
                "/v7/report",
                "/abbc",
                "/ac",
                "/axb",
                "/x",
                "/",
                "/abd",
                "/plain",
                "/aa",
                "/aaa",
                "/ab",
            ] {
                let m = |nfa: &NFA| {
                    let dfa = DFA::builder().build_from_nfa(nfa.clone()).unwrap();
                    let mut cache = dfa.create_cache();
                    let input = Input::new(hay).anchored(Anchored::Yes);
                    dfa.try_search_fwd(&mut cache, &input).unwrap().is_some()
                };
                assert_eq!(m(&a), m(&b), "{re} on {hay}");
            }
        }
    }
}
