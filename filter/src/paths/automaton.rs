//! The regex automata: lazy DFAs over many patterns at once, each walked once
//! per path.
//!
//! An [`Automaton`] compiles a set of patterns, each anchored at both ends,
//! into one Thompson NFA and searches it with a lazy DFA (`regex-automata`'s
//! hybrid DFA): states are built on demand in a cache of bounded size, so
//! compiling is cheap and memory stays bounded, and a search is linear in the
//! path length whatever the patterns. Patterns are matched with
//! `MatchKind::All`, so the state a walk ends in lists every pattern that
//! matched.
//!
//! [`SplitRegexes`] are the regexes split at their literal prefix (see the
//! `regex` module): a trie of the literals finds the one literal that can
//! start the path, and an automaton over the distinct rests is walked from
//! the end of that literal.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, NFA};
use regex_automata::{Anchored, Input, MatchError, MatchKind};
use regex_syntax::hir::Hir;

use super::regex::nfa_config;
use super::{PathId, PathScratch, MAX_AUTOMATON_SIZE};
use crate::error::ConfigError;
use crate::postings::Postings;
use crate::trie::PrefixTrie;

/// Patterns anchored at both ends, compiled together and walked by a lazy DFA.
#[derive(Debug)]
pub(super) struct Automaton {
    dfa: DFA,
    /// Automaton pattern index → path id.
    ids: Vec<PathId>,
    nfa_bytes: usize,
}

impl Automaton {
    /// The automaton of `hirs`, its NFA at most `limit` bytes, its lazy
    /// DFA's cache `cache_capacity` bytes (at least four times the minimum
    /// the DFA needs).
    pub(super) fn build(
        hirs: &[Hir],
        ids: Vec<PathId>,
        limit: usize,
        cache_capacity: usize,
    ) -> Result<Self, ConfigError> {
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

    /// A new search cache for this automaton (one per evaluator).
    pub(super) fn create_cache(&self) -> Cache {
        self.dfa.create_cache()
    }

    /// The size of the compiled NFA, in bytes.
    pub(super) fn nfa_bytes(&self) -> usize {
        self.nfa_bytes
    }

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
    pub(super) fn matches_to_end(
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

    /// The NFA and the pattern ids, without the lazy DFA's cache.
    pub(super) fn heap_size(&self) -> usize {
        self.nfa_bytes + self.ids.capacity() * 4
    }
}

/// [`SplitRegexes`] but for its automaton.
#[derive(Debug)]
pub(super) struct PendingSplit {
    pub(super) literals: PrefixTrie,
    pub(super) literal_lens: Vec<u32>,
    pub(super) members_of: Postings,
    pub(super) members: Vec<(u32, PathId)>,
    /// The distinct rests, anchored at the end.
    pub(super) rests: Vec<Hir>,
}

impl PendingSplit {
    /// Builds the rests' automaton, its NFA at most `limit` bytes, its cache
    /// `cache_capacity` bytes (see [`Automaton::build`]).
    pub(super) fn build(self, limit: usize, cache_capacity: usize) -> Result<SplitRegexes, ConfigError> {
        let ids = (0..self.rests.len() as u32).collect();
        Ok(SplitRegexes {
            rests: Automaton::build(&self.rests, ids, limit, cache_capacity)?,
            literals: self.literals,
            literal_lens: self.literal_lens,
            members_of: self.members_of,
            members: self.members,
        })
    }
}

/// Regexes split at their literal prefix (see the `regex` module).
#[derive(Debug)]
pub(super) struct SplitRegexes {
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
    pub(super) fn find(&self, path: &str, scratch: &mut PathScratch, out: &mut Vec<PathId>) -> Result<(), MatchError> {
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
            let cache = scratch.rest_cache.get_or_insert_with(|| self.rests.create_cache());
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

    pub(super) fn heap_size(&self) -> usize {
        self.literals.heap_size()
            + self.literal_lens.capacity() * 4
            + self.members_of.heap_size()
            + self.members.capacity() * 8
            + self.rests.heap_size()
    }
}

// The reference is the `regex` crate, a native dev-dependency only.
#[cfg(test)]
#[cfg(not(target_arch = "wasm32"))]
mod tests {
    use rustc_hash::FxHashMap as HashMap;

    use super::*;
    use crate::paths::regex::parse_anchored;
    use crate::paths::tests::{whole_path_regexes, xorshift};

    /// The walk of `matches_to_end` keeps working when the lazy DFA's
    /// cache fills up and is cleared in the middle of a path: with the
    /// smallest cache allowed, many patterns and long paths, the patterns
    /// reported are exactly those the `regex` crate matches on the whole path.
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
        let mut cache = automaton.create_cache();
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
}
