//! `regex:` path patterns: parsing, size checks, and filing each regex whole
//! or split at its literal prefix.
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
//!
//! Each pattern is parsed and size-checked when it is interned, so that an
//! error names it; the automata are compiled later, all patterns at once (see
//! the `automaton` module). The size check compiles a pattern only when an
//! upper bound estimated from its parse exceeds [`MAX_REGEX_SIZE`].

use rustc_hash::FxHashMap as HashMap;

use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::automaton::PendingSplit;
use super::{PathId, MAX_REGEX_SIZE};
use crate::error::PatternError;
use crate::postings::Postings;
use crate::trie::{PrefixTrie, TrieBuilder};

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

/// The Thompson compiler's settings for path automata: no captures, at most
/// `limit` bytes.
pub(super) fn nfa_config(limit: usize) -> thompson::Config {
    thompson::Config::new()
        .which_captures(WhichCaptures::None)
        .nfa_size_limit(Some(limit))
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

/// Parses a regular expression anchored at its end (`\z`), with a literal
/// prefix taken as is (the form both automata compile).
#[cfg(test)]
pub(super) fn parse_anchored<'c>(
    re: &'c str,
    parsed: &mut HashMap<&'c str, Hir>,
) -> Result<Hir, Box<regex_syntax::Error>> {
    let (literal, rest) = literal_and_rest(re);
    let rest = rest.map(|r| parse_rest(r, parsed)).transpose()?;
    Ok(anchored(literal, rest))
}

/// A `regex:` pattern split at its literal prefix, checked, waiting for
/// [`RegexBuilder::finish`] to file it whole or split.
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

/// The `regex:` patterns of a configuration, checked one by one as they are
/// interned.
#[derive(Debug, Default)]
pub(super) struct RegexBuilder<'c> {
    regexes: Vec<PendingRegex<'c>>,
    /// Regex text after the literal prefix → its parse (see [`parse_rest`]).
    parsed_rests: HashMap<&'c str, Hir>,
}

/// The regexes of a configuration, parsed and filed, their automata still to
/// be built.
#[derive(Debug)]
pub(super) struct PendingRegexes {
    /// Regexes kept whole, anchored at both ends, and their path ids.
    pub(super) whole: Vec<Hir>,
    pub(super) whole_ids: Vec<PathId>,
    /// The regexes split at their literal prefix, if any.
    pub(super) split: Option<PendingSplit>,
}

impl<'c> RegexBuilder<'c> {
    /// Parses and size-checks the regex `re` (without `regex:`) of path id `id`.
    pub(super) fn push(&mut self, re: &'c str, id: PathId) -> Result<(), PatternError> {
        self.regexes.push(check_regex(re, id, &mut self.parsed_rests)?);
        Ok(())
    }

    /// Files each regex whole or split at its literal prefix; what is left
    /// owns its data and no longer borrows the configuration.
    pub(super) fn finish(self) -> PendingRegexes {
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
        PendingRegexes {
            whole,
            whole_ids,
            split,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::hybrid::dfa::DFA;
    use regex_automata::nfa::thompson::NFA;
    use regex_automata::{Anchored, Input};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
