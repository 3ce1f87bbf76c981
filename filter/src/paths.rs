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
//! ## Regexes split at their literal prefix
//!
//! Path regexes usually start with a literal that differs from rule to rule
//! and end the same way (`/svc1/v[0-9]+/orders/[a-z0-9]+`,
//! `/svc2/v[0-9]+/orders/[a-z0-9]+`). One automaton over all of them repeats
//! that ending once per rule: it costs configure time, NFA memory, and lazy
//! DFA states for every literal a request walks. So a regex `L R` whose
//! literal prefix `L` is neither a proper prefix of another regex's literal
//! nor has one goes into a trie of literals, and only its rest `R` into an
//! automaton, shared by every regex with the same rest. Because no two such
//! literals are prefixes of one another, at most one of them is a prefix of a
//! given path, so a lookup walks the trie once and the rests' automaton at
//! most once, from the end of that literal (with the path before it as
//! look-behind context): still linear in the path length. Regexes without a
//! literal prefix, or whose literals nest, stay whole in the other automaton.

use rustc_hash::FxHashMap as HashMap;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures, NFA};
use regex_automata::{Anchored, Input, MatchError, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use crate::error::{ConfigError, PatternError};
use crate::pattern::MatchPath;
use crate::postings::Postings;
use crate::template::{TemplateBuilder, TemplateIndex};
use crate::trie::{PrefixTrie, TrieBuilder};

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

/// [`literal_prefix`], with the rest absent when the literal is the whole
/// pattern (an empty pattern has an empty rest: it still goes through the
/// parser).
fn literal_and_rest(re: &str) -> (&str, Option<&str>) {
    let (literal, rest) = literal_prefix(re);
    (literal, (literal.is_empty() || !rest.is_empty()).then_some(rest))
}

/// Parses the part of a regular expression after its literal prefix (see
/// [`literal_prefix`]): parsing is most of the cost of compiling thousands of
/// path regexes. `parsed` remembers the rests parsed so far: path regexes of
/// one service tend to differ only in their literal prefix (`/svc1/v[0-9]+`,
/// `/svc2/v[0-9]+`), and the parser's output depends on nothing but the text.
fn parse_rest<'c>(rest: &'c str, parsed: &mut HashMap<&'c str, Hir>) -> Result<Hir, Box<regex_syntax::Error>> {
    if let Some(hir) = parsed.get(rest) {
        return Ok(hir.clone());
    }
    let hir = parser().parse(rest).map_err(Box::new)?;
    parsed.insert(rest, hir.clone());
    Ok(hir)
}

/// `literal`, then `rest` (absent: nothing), then the end of the path (`\z`).
fn anchored(literal: &str, rest: Option<Hir>) -> Hir {
    let mut parts = Vec::with_capacity(3);
    if !literal.is_empty() {
        parts.push(Hir::literal(literal.as_bytes()));
    }
    parts.extend(rest);
    parts.push(Hir::look(Look::End));
    Hir::concat(parts)
}

/// A `regex:` pattern split at its literal prefix, checked, waiting for
/// [`PathIndexBuilder::finish`] to file it whole or split.
#[derive(Debug)]
struct PendingRegex<'c> {
    id: PathId,
    literal: &'c str,
    /// The text after the literal (a key of `parsed_rests`); `None` when the
    /// literal is the whole pattern.
    rest: Option<&'c str>,
}

/// Parses and size-checks one `regex:` pattern on its own, so that an error
/// names the pattern that caused it.
fn check_regex<'c>(
    re: &'c str,
    id: PathId,
    parsed: &mut HashMap<&'c str, Hir>,
) -> Result<PendingRegex<'c>, PatternError> {
    let (literal, rest) = literal_and_rest(re);
    let rest_hir = rest
        .map(|r| parse_rest(r, parsed))
        .transpose()
        .map_err(PatternError::Regex)?;
    // The bound of the anchored concatenation, without building it: its
    // parts' states plus one per part (at most three).
    let estimate = rest_hir
        .as_ref()
        .map_or(0, estimated_nfa_bytes)
        .saturating_add((literal.len() + 3 + 1) * NFA_BYTES_PER_STATE);
    // Only a pattern whose bound exceeds the limit is compiled to decide.
    if estimate > MAX_REGEX_SIZE {
        thompson::Compiler::new()
            .configure(nfa_config(MAX_REGEX_SIZE))
            .build_from_hir(&anchored(literal, rest_hir))
            .map_err(|_| PatternError::RegexTooLarge(MAX_REGEX_SIZE))?;
    }
    Ok(PendingRegex { id, literal, rest })
}

/// For each literal of `trie` (id → text in `literals`), whether it is a
/// proper prefix of another or has one: the keys that are prefixes of a
/// literal are the literal itself and those.
fn nested(trie: &PrefixTrie, literals: &HashMap<&str, u32>) -> Vec<bool> {
    let mut nested = vec![false; literals.len()];
    let mut found = Vec::new();
    for literal in literals.keys() {
        found.clear();
        trie.for_each_prefix_of(literal.bytes(), |id| found.push(id));
        if found.len() > 1 {
            for &id in &found {
                if let Some(flag) = nested.get_mut(id as usize) {
                    *flag = true;
                }
            }
        }
    }
    nested
}

/// Parses a regular expression anchored at its end (`\z`), with a literal
/// prefix taken as is (the form both automata compile).
#[cfg(test)]
fn parse_anchored<'c>(re: &'c str, parsed: &mut HashMap<&'c str, Hir>) -> Result<Hir, Box<regex_syntax::Error>> {
    let (literal, rest) = literal_and_rest(re);
    let rest = rest.map(|r| parse_rest(r, parsed)).transpose()?;
    Ok(anchored(literal, rest))
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
    regexes: Vec<PendingRegex<'c>>,
    /// Regex text after the literal prefix → its parse (see [`parse_rest`]).
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
                self.regexes.push(check_regex(re, id, &mut self.parsed_rests)?);
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

    /// Everything but the regex automata, owning its data: what is left to
    /// build no longer borrows the configuration, which can go first. Here
    /// each regex is filed whole or split at its literal prefix.
    pub(crate) fn finish(self) -> PendingPathIndex {
        // The distinct literal prefixes, numbered in order of appearance.
        let mut literal_ids: HashMap<&str, u32> = HashMap::default();
        let mut trie = TrieBuilder::default();
        let mut literal_lens = Vec::new();
        for r in self.regexes.iter().filter(|r| !r.literal.is_empty()) {
            let next = literal_ids.len() as u32;
            literal_ids.entry(r.literal).or_insert_with(|| {
                trie.insert(r.literal.bytes(), next);
                literal_lens.push(r.literal.len() as u32);
                next
            });
        }
        let literals = trie.build();
        let nested = nested(&literals, &literal_ids);
        let parsed = self.parsed_rests;
        let rest_hir = |rest: Option<&str>| rest.and_then(|r| parsed.get(r)).cloned();
        let mut whole = Vec::new();
        let mut whole_ids = Vec::new();
        // Split regexes: (literal id, index in `members`); members are
        // (rest index, path id). Rests by text; a split regex's rest is
        // absent only where its literal is all of it, so "" stands for that.
        let mut filed = Vec::new();
        let mut members = Vec::new();
        let mut rest_ids: HashMap<&str, u32> = HashMap::default();
        let mut rests = Vec::new();
        for r in &self.regexes {
            let split = literal_ids
                .get(r.literal)
                .filter(|&&l| !nested.get(l as usize).copied().unwrap_or(true));
            match split {
                Some(&literal) => {
                    let next = rest_ids.len() as u32;
                    let rest = *rest_ids.entry(r.rest.unwrap_or("")).or_insert_with(|| {
                        rests.push(anchored("", rest_hir(r.rest)));
                        next
                    });
                    filed.push((literal, members.len() as u32));
                    members.push((rest, r.id));
                }
                None => {
                    whole.push(anchored(r.literal, rest_hir(r.rest)));
                    whole_ids.push(r.id);
                }
            }
        }
        let split = (!members.is_empty()).then(|| PendingSplit {
            members_of: Postings::new(literal_lens.len(), &filed),
            literals,
            literal_lens,
            members,
            rests,
        });
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
            whole,
            whole_ids,
            split,
        }
    }
}

impl Default for PathIndex {
    /// An index of no pattern.
    fn default() -> Self {
        PathIndexBuilder::default().finish().index
    }
}

/// A [`PathIndex`] whose regex automata are still to be built.
#[derive(Debug)]
pub(crate) struct PendingPathIndex {
    index: PathIndex,
    /// Regexes kept whole, anchored at both ends, and their path ids.
    whole: Vec<Hir>,
    whole_ids: Vec<PathId>,
    split: Option<PendingSplit>,
}

/// [`SplitRegexes`] but for its automaton.
#[derive(Debug)]
struct PendingSplit {
    literals: PrefixTrie,
    literal_lens: Vec<u32>,
    members_of: Postings,
    members: Vec<(u32, PathId)>,
    /// The distinct rests, anchored at the end.
    rests: Vec<Hir>,
}

impl PendingPathIndex {
    /// Builds the regex automata (the largest allocations of configure),
    /// within [`MAX_AUTOMATON_SIZE`] together.
    pub(crate) fn build(self) -> Result<PathIndex, ConfigError> {
        let mut index = self.index;
        let mut budget = MAX_AUTOMATON_SIZE;
        let automata = usize::from(!self.whole.is_empty()) + usize::from(self.split.is_some());
        let cache = DFA_CACHE_CAPACITY / automata.max(1);
        if !self.whole.is_empty() {
            let automaton = Automaton::build(&self.whole, self.whole_ids, budget, cache)?;
            budget = budget.saturating_sub(automaton.nfa_bytes);
            index.automaton = Some(automaton);
        }
        if let Some(split) = self.split {
            let ids = (0..split.rests.len() as u32).collect();
            index.split = Some(SplitRegexes {
                rests: Automaton::build(&split.rests, ids, budget, cache)?,
                literals: split.literals,
                literal_lens: split.literal_lens,
                members_of: split.members_of,
                members: split.members,
            });
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
    /// The regexes kept whole.
    automaton: Option<Automaton>,
    /// The regexes split at their literal prefix.
    split: Option<SplitRegexes>,
    counts: PathCounts,
}

/// Regexes split at their literal prefix (see the module docs).
#[derive(Debug)]
struct SplitRegexes {
    /// Every regex literal prefix → literal id. Those that are prefixes of
    /// one another (kept whole) have no members, the others are not a prefix
    /// of any other literal.
    literals: PrefixTrie,
    /// Literal id → its length in bytes.
    literal_lens: Vec<u32>,
    /// Literal id → indexes in `members`.
    members_of: Postings,
    /// (rest index, path id) of each split regex.
    members: Vec<(u32, PathId)>,
    /// The distinct rests, each anchored at the end; pattern index = rest index.
    rests: Automaton,
}

impl SplitRegexes {
    /// Appends the id of every split regex that matches the whole of `path`.
    fn find(&self, path: &str, scratch: &mut PathScratch, out: &mut Vec<PathId>) -> Result<(), MatchError> {
        scratch.literals.clear();
        let literals = &mut scratch.literals;
        self.literals.for_each_prefix_of(path.bytes(), |l| literals.push(l));
        // At most one literal with members: no such literal is a prefix of
        // another literal, so two of them cannot both be prefixes of a path.
        for &literal in &scratch.literals {
            let members = self.members_of.get(literal);
            if members.is_empty() {
                continue;
            }
            let start = self.literal_lens.get(literal as usize).copied().unwrap_or(u32::MAX) as usize;
            scratch.rests.clear();
            let cache = scratch.rest_cache.get_or_insert_with(|| self.rests.dfa.create_cache());
            self.rests.matches_to_end(path, start, cache, &mut scratch.rests)?;
            for &m in members {
                if let Some(&(rest, id)) = self.members.get(m as usize) {
                    if scratch.rests.contains(&rest) {
                        out.push(id);
                    }
                }
            }
        }
        Ok(())
    }

    fn heap_size(&self) -> usize {
        self.literals.heap_size()
            + self.literal_lens.capacity() * 4
            + self.members_of.heap_size()
            + self.members.capacity() * 8
            + self.rests.heap_size()
    }
}

#[derive(Debug)]
struct Automaton {
    dfa: DFA,
    /// Automaton pattern index → path id.
    ids: Vec<PathId>,
    nfa_bytes: usize,
}

impl Automaton {
    /// Appends the id of every pattern that matches all of `path` from
    /// byte `start` on (0: the whole path); `path` before `start` is the
    /// context look-behind assertions (`^`, `\b`) see.
    ///
    /// Every pattern is anchored at both ends, so this is one walk of the
    /// lazy DFA from the anchored start state over the path's bytes and then
    /// the end-of-input transition; the state it ends in lists every pattern
    /// that matched (`MatchKind::All` keeps them all). An overlapping search
    /// reports the same set, at about five times the instructions per byte
    /// (callgrind).
    fn matches_to_end(
        &self,
        path: &str,
        start: usize,
        cache: &mut Cache,
        out: &mut Vec<PathId>,
    ) -> Result<(), MatchError> {
        let dfa = &self.dfa;
        let Some(bytes) = path.as_bytes().get(start..) else {
            return Ok(());
        };
        let input = Input::new(path).range(start..).anchored(Anchored::Yes);
        let mut sid = dfa.start_state_forward(cache, &input)?;
        for (at, &byte) in bytes.iter().enumerate() {
            let at = start + at;
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

    /// The automaton of `hirs`, its NFA at most `limit` bytes, its lazy
    /// DFA's cache `cache_capacity` bytes (at least four times the minimum
    /// the DFA needs).
    fn build(hirs: &[Hir], ids: Vec<PathId>, limit: usize, cache_capacity: usize) -> Result<Self, ConfigError> {
        let too_large = |e: Box<dyn std::error::Error + Send + Sync>| ConfigError::AutomatonTooLarge {
            limit: MAX_AUTOMATON_SIZE,
            source: e,
        };
        let nfa: NFA = thompson::Compiler::new()
            .configure(nfa_config(limit))
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

    /// The NFA and the pattern ids, without the lazy DFA's cache.
    fn heap_size(&self) -> usize {
        self.nfa_bytes + self.ids.capacity() * 4
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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A small deterministic generator (xorshift64) for test inputs.
    #[cfg(not(target_arch = "wasm32"))]
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The reference: each regex anchored at both ends, by the `regex` crate.
    #[cfg(not(target_arch = "wasm32"))]
    fn whole_path_regexes(sources: &[impl AsRef<str>]) -> Vec<regex::Regex> {
        sources
            .iter()
            .map(|re| regex::Regex::new(&format!("^(?:{})$", re.as_ref())).unwrap())
            .collect()
    }

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
        let automaton = Automaton::build(&hirs, ids, MAX_AUTOMATON_SIZE, 0).unwrap();
        let reference = whole_path_regexes(&sources);
        let mut cache = automaton.dfa.create_cache();
        let mut next = xorshift(7);
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
            automaton.matches_to_end(&path, 0, &mut cache, &mut got).unwrap();
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
    fn nested_literals_are_those_with_a_prefix_among_the_others() {
        fn flags<'a>(literals: &[&'a str]) -> Vec<(&'a str, bool)> {
            let mut ids = HashMap::default();
            let mut trie = TrieBuilder::default();
            for (i, l) in literals.iter().enumerate() {
                ids.insert(*l, i as u32);
                trie.insert(l.bytes(), i as u32);
            }
            let nested = nested(&trie.build(), &ids);
            literals.iter().copied().zip(nested).collect()
        }
        assert_eq!(
            flags(&["/svc1/v", "/svc12/v", "/svc2/v"]),
            [("/svc1/v", false), ("/svc12/v", false), ("/svc2/v", false)]
        );
        assert_eq!(
            flags(&["/ab", "/a", "/aa"]),
            [("/ab", true), ("/a", true), ("/aa", true)]
        );
        assert_eq!(
            flags(&["/x/y/z", "/y", "/x", "/x/y"]),
            [("/x/y/z", true), ("/y", false), ("/x", true), ("/x/y", true)]
        );
        assert_eq!(
            flags(&["/a/", "/a0", "/a/b"]),
            [("/a/", true), ("/a0", false), ("/a/b", true)]
        );
        assert_eq!(flags(&[]), []);
    }

    /// Regexes filed whole and split at their literal prefix together match
    /// exactly what the `regex` crate matches on the whole path, including
    /// look-behind at the split point (`\b`, `^`, `\B` right after the
    /// literal), literals that nest (kept whole), shared rests and a literal
    /// that is the whole pattern.
    #[cfg(not(target_arch = "wasm32"))]
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
        let split = pending.split.as_ref().unwrap();
        let split_literals = (0..split.literal_lens.len() as u32)
            .filter(|&l| !split.members_of.get(l).is_empty())
            .count();
        assert!(split_literals >= 3, "too few literals split: {split_literals}");
        assert!(!pending.whole.is_empty(), "nothing kept whole");
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
