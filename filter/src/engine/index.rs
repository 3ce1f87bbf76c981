//! Index building: the last step of compilation, filing every clause where a
//! request will look for it.
//!
//! A [`Lowered`] engine has its model but neither its path automata nor its
//! indexes. Building it compiles the automata, records what evaluation will
//! need to read ([`Needs`], the condition headers), drops the clauses that can
//! never match, and files each remaining clause under exactly one index: the
//! path index, the identity maps, or the list checked on every request. Of the
//! path and identity indexes the one whose keys hold fewer clauses in total
//! wins, so a request verifies as few candidates as possible.

use rustc_hash::FxHashMap as HashMap;

use super::{path_refs, Clause, CompiledSource, ConditionKey, Engine, Needs};
use crate::error::ConfigError;
use crate::paths::{PathId, PendingPathIndex};
use crate::pattern::MatchStr;
use crate::postings::Postings;

/// A configuration validated and compiled but for its regex automaton and
/// its indexes; owns everything (see [`Engine::from_config`]).
pub(super) struct Lowered {
    /// The engine, its path index still empty.
    pub(super) engine: Engine,
    pub(super) paths: PendingPathIndex,
    /// Number of distinct path patterns (path ids are below it).
    pub(super) path_count: usize,
}

impl Lowered {
    /// Builds the path automata and the indexes: the finished engine.
    pub(super) fn build(self) -> Result<Engine, ConfigError> {
        let mut engine = self.engine;
        engine.paths = self.paths.build()?;
        let conditions = || engine.rules.iter().flat_map(|r| &r.when).map(|c| &c.key);
        let mut condition_headers: Vec<Box<str>> = conditions()
            .filter_map(|k| match k {
                ConditionKey::Header(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        condition_headers.sort_unstable();
        condition_headers.dedup();
        let sources = || engine.rules.iter().flat_map(|r| r.from.iter().flatten());
        let reads_identity = |s: &CompiledSource| {
            s.principals.is_some()
                || s.namespaces.is_some()
                || !s.not_principals.is_empty()
                || !s.not_namespaces.is_empty()
        };
        engine.needs = Needs {
            principal: sources().any(reads_identity)
                || conditions().any(|k| matches!(k, ConditionKey::SourcePrincipal | ConditionKey::SourceNamespace)),
            port: engine
                .clauses
                .iter()
                .any(|c| c.ports().is_some() || !c.not_ports().is_empty())
                || conditions().any(|k| *k == ConditionKey::DestinationPort),
            headers: !condition_headers.is_empty(),
            source_address: sources().any(|s| !s.ip_blocks.is_unset() || !s.remote_ip_blocks.is_unset())
                || conditions().any(|k| matches!(k, ConditionKey::SourceIp | ConditionKey::RemoteIp)),
            destination_address: conditions().any(|k| *k == ConditionKey::DestinationIp),
            sni: conditions().any(|k| *k == ConditionKey::ConnectionSni),
            auth: sources().any(|s| s.jwt.is_some()) || conditions().any(ConditionKey::reads_auth),
        };
        engine.condition_headers = condition_headers;
        engine.reads_grpc = engine.clauses.iter().any(|c| c.grpc);
        engine.build_indexes(self.path_count);
        Ok(engine)
    }
}

/// The identity keys a rule can be indexed under: exact principals and exact
/// namespaces. `None` when some `from` entry has no exact key.
fn identity_keys(from: &[CompiledSource]) -> Option<(Vec<&str>, Vec<&str>)> {
    fn exact(l: &Option<Vec<MatchStr>>) -> Option<Vec<&str>> {
        l.as_ref()?.iter().map(MatchStr::as_exact).collect()
    }
    let mut principals = Vec::new();
    let mut namespaces = Vec::new();
    for s in from {
        if let Some(p) = exact(&s.principals) {
            principals.extend(p);
        } else if let Some(n) = exact(&s.namespaces) {
            namespaces.extend(n);
        } else {
            return None;
        }
    }
    Some((principals, namespaces))
}

impl Engine {
    /// Files every live clause under the most selective index available;
    /// path ids are below `path_count`.
    fn build_indexes(&mut self, path_count: usize) {
        let refs = std::mem::take(&mut self.path_refs);
        // Pass 1: how many clauses each key would hold, to pick the smaller.
        let mut path_load = vec![0usize; path_count];
        let mut principal_load: HashMap<&str, usize> = HashMap::default();
        let mut namespace_load: HashMap<&str, usize> = HashMap::default();
        let keys: Vec<Option<(Vec<&str>, Vec<&str>)>> = self
            .clauses
            .iter()
            .map(|cl| {
                let rule = self.rules.get(cl.rule as usize)?;
                identity_keys(rule.from.as_deref()?)
            })
            .collect();
        for (cl, key) in self.clauses.iter().zip(&keys) {
            for &p in cl.paths.as_ref().map_or(&[][..], |r| path_refs(&refs, r)) {
                if let Some(l) = path_load.get_mut(p as usize) {
                    *l += 1;
                }
            }
            if let Some((ps, ns)) = key {
                ps.iter().for_each(|p| *principal_load.entry(p).or_default() += 1);
                ns.iter().for_each(|n| *namespace_load.entry(n).or_default() += 1);
            }
        }
        // Pass 2: file each clause.
        let mut path_filed: Vec<(PathId, u32)> = Vec::new();
        let mut principal_index: HashMap<Box<str>, Vec<u32>> = HashMap::default();
        let mut namespace_index: HashMap<Box<str>, Vec<u32>> = HashMap::default();
        for (ci, (cl, key)) in self.clauses.iter().zip(&keys).enumerate() {
            let ci = ci as u32;
            if self.clause_is_dead(cl) {
                continue;
            }
            let path_cost = cl.paths.as_ref().map(|r| {
                path_refs(&refs, r)
                    .iter()
                    .map(|&p| path_load.get(p as usize).copied().unwrap_or(0))
                    .sum::<usize>()
            });
            let identity_cost = key.as_ref().map(|(ps, ns)| {
                ps.iter()
                    .map(|p| principal_load.get(p).copied().unwrap_or(0))
                    .sum::<usize>()
                    + ns.iter()
                        .map(|n| namespace_load.get(n).copied().unwrap_or(0))
                        .sum::<usize>()
            });
            match (path_cost, identity_cost) {
                (Some(pc), ic) if ic.is_none_or(|ic| pc <= ic) => {
                    for &p in cl.paths.as_ref().map_or(&[][..], |r| path_refs(&refs, r)) {
                        path_filed.push((p, ci));
                    }
                }
                (_, Some(_)) => {
                    if let Some((ps, ns)) = key {
                        ps.iter()
                            .for_each(|&p| principal_index.entry(p.into()).or_default().push(ci));
                        ns.iter()
                            .for_each(|&n| namespace_index.entry(n.into()).or_default().push(ci));
                    }
                }
                _ => self.unindexed.push(ci),
            }
        }
        for list in principal_index.values_mut().chain(namespace_index.values_mut()) {
            list.dedup();
        }
        self.path_postings = Postings::new(path_count, &path_filed);
        self.principal_index = principal_index;
        self.namespace_index = namespace_index;
        self.path_refs = refs;
    }

    /// A clause that can never match: some positive list is empty, or its rule
    /// admits no caller. It is filed nowhere and not counted in the stats.
    pub(super) fn clause_is_dead(&self, cl: &Clause) -> bool {
        let rule_dead = self.rules.get(cl.rule as usize).is_none_or(|r| {
            r.from.as_ref().is_some_and(|f| f.is_empty()) || r.when.iter().any(|c| c.values.is_empty_positive())
        });
        rule_dead
            || cl.methods == Some(0)
            || cl.paths.as_ref().is_some_and(|r| r.is_empty())
            || cl.hosts().is_some_and(<[_]>::is_empty)
            || cl.ports().is_some_and(<[_]>::is_empty)
    }
}
