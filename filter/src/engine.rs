//! The compiled engine: validation, indexing and evaluation.
//!
//! [`Engine::compile`] turns a [`PluginConfig`] into immutable, validated
//! structures. Each rule is split into *clauses*, one per `to` entry (or one
//! for a rule without `to`). Every clause is filed under one index, chosen at
//! compile time as the most selective one available:
//!
//! * the **path index**: under each of its `paths` patterns;
//! * the **identity index**: under the exact principals or namespaces of its
//!   rule's `from` entries, when every entry has such a key;
//! * otherwise the short list of clauses checked on every request.
//!
//! A request looks up the path index once and the identity maps once; the
//! clauses found are the only candidates, and each is verified against every
//! field of its rule. The cost of a request is therefore the path length plus
//! the number of candidates, not the number of rules.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::ops::Range;
use std::sync::Arc;

use crate::canonical::{
    canonicalize_authority, canonicalize_path, namespace_of, validate_method, Authority, CanonicalPath, RequestError,
};
use crate::config::{Condition, LogConfig, Mode, Operation, PluginConfig, Policy, Rule, Source};
use crate::error::{ConfigError, PatternError};
use crate::paths::{PathCounts, PathId, PathIndex, PathIndexBuilder, PathScratch, PendingPathIndex};
use crate::pattern::{parse_header_value, valid_method_pattern, MatchHost, MatchStr};
use crate::postings::Postings;

/// The default status of a denied request.
pub const DEFAULT_DENY_STATUS: u16 = 403;
/// Most rules a configuration may hold, over all policies.
pub const MAX_RULES: usize = 100_000;
/// Most patterns (of any kind) a configuration may hold.
pub const MAX_PATTERNS: usize = 1_000_000;

/// A compiled, validated plugin configuration. Immutable; share it with `Arc`.
#[derive(Debug)]
pub struct Engine {
    mode: Mode,
    deny_status: u16,
    log: LogConfig,
    policies: Vec<CompiledPolicy>,
    rules: Vec<CompiledRule>,
    /// The rules' names, by rule index.
    rule_names: Names,
    clauses: Vec<Clause>,
    paths: PathIndex,
    /// The path ids of all clauses' `paths` and `notPaths`, by range.
    path_refs: Vec<PathId>,
    /// The distinct methods named by rules; bit positions of `Clause::methods`.
    methods: Vec<Box<str>>,
    /// Path id → clauses filed under it.
    path_postings: Postings,
    principal_index: HashMap<Box<str>, Vec<u32>>,
    namespace_index: HashMap<Box<str>, Vec<u32>>,
    unindexed: Vec<u32>,
    needs: Needs,
    /// The header names `when` conditions read, lower-case, sorted, distinct.
    condition_headers: Vec<Box<str>>,
}

/// What evaluating a request can read besides its method, path and
/// authority, so that a proxy fetches only that: every hostcall on the
/// request path costs. A field the configuration never reads does not
/// change any decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Some rule has `from` (principals or namespaces).
    pub principal: bool,
    /// Some `to` entry has `ports`.
    pub port: bool,
    /// Some rule has `when` (header conditions).
    pub headers: bool,
}

#[derive(Debug)]
struct CompiledPolicy {
    name: Box<str>,
    selector: Vec<(Box<str>, Box<str>)>,
    mode: Mode,
}

#[derive(Debug)]
struct CompiledRule {
    policy: u32,
    /// `None` = any caller. `Some(empty)` = no caller.
    from: Option<Vec<CompiledSource>>,
    when: Vec<CompiledCondition>,
}

#[derive(Debug)]
struct CompiledSource {
    principals: Option<Vec<MatchStr>>,
    not_principals: Vec<MatchStr>,
    namespaces: Option<Vec<MatchStr>>,
    not_namespaces: Vec<MatchStr>,
}

/// One `to` entry of a rule (or the whole rule, when it has no `to`).
#[derive(Debug)]
struct Clause {
    rule: u32,
    /// Bit `i` = method `i` of the engine's method table. `None` = any method;
    /// `Some(0)` = an empty list, no method.
    methods: Option<u64>,
    /// Range of `Engine::path_refs`.
    paths: Option<Range<u32>>,
    not_paths: Range<u32>,
    /// Hosts and ports, which most `to` entries leave out: boxed, so that a
    /// clause without them takes 48 bytes instead of 80 (wasm32), 320 KB at
    /// 10,000 rules.
    target: Option<Box<Target>>,
}

/// The host and port fields of a clause.
#[derive(Debug)]
struct Target {
    hosts: Option<Vec<MatchHost>>,
    not_hosts: Vec<MatchHost>,
    ports: Option<Vec<u16>>,
}

impl Clause {
    fn hosts(&self) -> Option<&[MatchHost]> {
        self.target.as_ref().and_then(|t| t.hosts.as_deref())
    }

    fn not_hosts(&self) -> &[MatchHost] {
        self.target.as_ref().map_or(&[], |t| &t.not_hosts)
    }

    fn ports(&self) -> Option<&[u16]> {
        self.target.as_ref().and_then(|t| t.ports.as_deref())
    }
}

#[derive(Debug)]
struct CompiledCondition {
    /// Lower-case.
    header: Box<str>,
    values: Option<Vec<MatchStr>>,
    not_values: Vec<MatchStr>,
}

/// Orders `lower` (lower-case) against `name` as if `name` were lower-cased.
fn cmp_ignore_ascii_case(lower: &str, name: &[u8]) -> std::cmp::Ordering {
    lower.bytes().cmp(name.iter().map(u8::to_ascii_lowercase))
}

/// Identifies a rule of an [`Engine`]: what admitted a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Index of the policy in the configuration.
    pub policy: u32,
    /// Index of the rule among all rules of the configuration.
    pub rule: u32,
}

/// Sizes of a compiled engine, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStats {
    /// Policies.
    pub policies: usize,
    /// Rules over all policies.
    pub rules: usize,
    /// Clauses (`to` entries) that can match at all.
    pub clauses: usize,
    /// Clauses checked on every request because no index applies to them.
    pub unindexed_clauses: usize,
    /// Distinct path patterns by form.
    pub paths: PathCounts,
    /// Approximate heap size of the compiled structures, in bytes (without
    /// the per-evaluator lazy DFA cache).
    pub heap_bytes: usize,
}

/// Builds field paths for error messages only when an error occurs.
struct At<'a> {
    parent: Option<&'a At<'a>>,
    seg: Seg<'a>,
}

enum Seg<'a> {
    Root,
    Field(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    const ROOT: At<'static> = At {
        parent: None,
        seg: Seg::Root,
    };
    fn field(&'a self, name: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }
    fn index(&'a self, i: usize) -> At<'a> {
        At {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }
    fn path(&self) -> String {
        let mut out = String::new();
        self.write_path(&mut out);
        if out.is_empty() {
            out.push('.');
        }
        out
    }
    fn write_path(&self, out: &mut String) {
        if let Some(p) = self.parent {
            p.write_path(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Field(f) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(f);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    fn pattern_error(&self, value: &str, reason: PatternError) -> ConfigError {
        ConfigError::InvalidPattern {
            field: self.path(),
            value: value.to_string(),
            reason,
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':'))
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(crate::canonical::is_tchar)
}

/// Compilation state: counters for limits and the path interner.
struct Compiler<'c> {
    paths: PathIndexBuilder<'c>,
    path_refs: Vec<PathId>,
    methods: Vec<&'c str>,
    patterns: usize,
    policy_names: HashSet<&'c str>,
    policies: Vec<CompiledPolicy>,
    rules: Vec<CompiledRule>,
    rule_names: Names,
    clauses: Vec<Clause>,
}

/// Strings by index, in one buffer: one allocation for all of them where a
/// `Box<str>` each took one per rule (10,000 at 10,000 rules, most of them
/// generated `rule-<i>` names of a few bytes).
#[derive(Debug, Default)]
struct Names {
    text: String,
    /// End of string `i` in `text`; it starts where string `i - 1` ends.
    ends: Vec<u32>,
}

impl Names {
    fn with_capacity(names: usize) -> Self {
        Self {
            text: String::new(),
            ends: Vec::with_capacity(names),
        }
    }

    fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends.push(self.text.len() as u32);
    }

    /// Appends `rule-<index>`, the name of an unnamed rule.
    fn push_generated(&mut self, index: usize) {
        let mut digits = [0u8; 20];
        let mut len = 0;
        let mut n = index;
        for slot in digits.iter_mut() {
            *slot = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.text.push_str(GENERATED_NAME_PREFIX);
        self.text.extend(digits.iter().take(len).rev().map(|&d| char::from(d)));
        self.ends.push(self.text.len() as u32);
    }

    /// String `i` ("" for an unknown index).
    fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p)).copied().unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    fn heap_size(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4
    }
}

impl<'c> Compiler<'c> {
    fn count(&mut self, n: usize, at: &At<'_>) -> Result<(), ConfigError> {
        self.patterns += n;
        if self.patterns > MAX_PATTERNS {
            return Err(ConfigError::TooLarge {
                field: at.path(),
                limit: MAX_PATTERNS,
                what: "patterns in the configuration",
            });
        }
        Ok(())
    }

    /// Counts `list` against the pattern limit and parses every entry; an
    /// error names the entry's index.
    fn patterns<T>(
        &mut self,
        list: &[String],
        at: &At<'_>,
        parse: impl Fn(&str) -> Result<T, PatternError>,
    ) -> Result<Vec<T>, ConfigError> {
        self.count(list.len(), at)?;
        list.iter()
            .enumerate()
            .map(|(i, p)| parse(p).map_err(|e| at.index(i).pattern_error(p, e)))
            .collect()
    }

    fn opt_strs(&mut self, list: &Option<Vec<String>>, at: &At<'_>) -> Result<Option<Vec<MatchStr>>, ConfigError> {
        list.as_deref()
            .map(|l| self.patterns(l, at, MatchStr::parse))
            .transpose()
    }

    fn not_strs(&mut self, list: &Option<Vec<String>>, at: &At<'_>) -> Result<Vec<MatchStr>, ConfigError> {
        Ok(self.opt_strs(list, at)?.unwrap_or_default())
    }

    fn path_ids(&mut self, list: &'c [String], at: &At<'_>) -> Result<Range<u32>, ConfigError> {
        self.count(list.len(), at)?;
        let start = self.path_refs.len() as u32;
        for (i, p) in list.iter().enumerate() {
            let id = self.paths.intern(p).map_err(|e| at.index(i).pattern_error(p, e))?;
            self.path_refs.push(id);
        }
        Ok(start..self.path_refs.len() as u32)
    }

    fn methods(&mut self, list: &'c [String], at: &At<'_>) -> Result<Option<u64>, ConfigError> {
        self.count(list.len(), at)?;
        let mut mask = 0u64;
        for (i, m) in list.iter().enumerate() {
            if !valid_method_pattern(m) {
                return Err(ConfigError::InvalidMethod {
                    field: at.index(i).path(),
                    value: m.clone(),
                });
            }
        }
        if list.iter().any(|m| m == "*") {
            // `*` among the methods means any method.
            return Ok(None);
        }
        for (i, m) in list.iter().enumerate() {
            let bit = match self.methods.iter().position(|known| *known == m) {
                Some(bit) => bit,
                None if self.methods.len() < 64 => {
                    self.methods.push(m);
                    self.methods.len() - 1
                }
                None => {
                    return Err(ConfigError::TooLarge {
                        field: at.index(i).path(),
                        limit: 64,
                        what: "distinct methods in the configuration",
                    })
                }
            };
            mask |= 1 << bit;
        }
        Ok(Some(mask))
    }

    fn source(&mut self, s: &'c Source, at: &At<'_>) -> Result<CompiledSource, ConfigError> {
        let sets_field = s.principals.is_some()
            || s.namespaces.is_some()
            || s.not_principals.as_ref().is_some_and(|l| !l.is_empty())
            || s.not_namespaces.as_ref().is_some_and(|l| !l.is_empty());
        if !sets_field {
            return Err(ConfigError::EmptyEntry {
                field: at.path(),
                what: "a from entry must set principals, namespaces, notPrincipals or notNamespaces (omit `from` to admit any caller)",
            });
        }
        Ok(CompiledSource {
            principals: self.opt_strs(&s.principals, &at.field("principals"))?,
            not_principals: self.not_strs(&s.not_principals, &at.field("notPrincipals"))?,
            namespaces: self.opt_strs(&s.namespaces, &at.field("namespaces"))?,
            not_namespaces: self.not_strs(&s.not_namespaces, &at.field("notNamespaces"))?,
        })
    }

    fn clause(&mut self, rule: u32, op: &'c Operation, at: &At<'_>) -> Result<Clause, ConfigError> {
        let sets_field = op.methods.is_some()
            || op.paths.is_some()
            || op.hosts.is_some()
            || op.ports.is_some()
            || op.not_paths.as_ref().is_some_and(|l| !l.is_empty())
            || op.not_hosts.as_ref().is_some_and(|l| !l.is_empty());
        if !sets_field {
            return Err(ConfigError::EmptyEntry {
                field: at.path(),
                what: "a to entry must set methods, paths, notPaths, hosts, notHosts or ports (omit `to` to admit any operation)",
            });
        }
        let methods = match &op.methods {
            None => None,
            Some(list) => self.methods(list, &at.field("methods"))?,
        };
        let ports = match &op.ports {
            None => None,
            Some(list) => {
                if let Some(i) = list.iter().position(|&p| p == 0) {
                    return Err(ConfigError::InvalidPort {
                        field: at.field("ports").index(i).path(),
                    });
                }
                Some(list.clone())
            }
        };
        Ok(Clause {
            rule,
            methods,
            paths: op
                .paths
                .as_deref()
                .map(|l| self.path_ids(l, &at.field("paths")))
                .transpose()?,
            not_paths: match op.not_paths.as_deref() {
                Some(l) => self.path_ids(l, &at.field("notPaths"))?,
                None => 0..0,
            },
            target: self.target(op, ports, at)?,
        })
    }

    /// The host and port fields of `op`, if it sets any.
    fn target(
        &mut self,
        op: &Operation,
        ports: Option<Vec<u16>>,
        at: &At<'_>,
    ) -> Result<Option<Box<Target>>, ConfigError> {
        let target = Target {
            hosts: op
                .hosts
                .as_deref()
                .map(|l| self.patterns(l, &at.field("hosts"), MatchHost::parse))
                .transpose()?,
            not_hosts: match op.not_hosts.as_deref() {
                Some(l) => self.patterns(l, &at.field("notHosts"), MatchHost::parse)?,
                None => Vec::new(),
            },
            ports,
        };
        let any = target.hosts.is_some() || !target.not_hosts.is_empty() || target.ports.is_some();
        Ok(any.then(|| Box::new(target)))
    }

    fn condition(&mut self, c: &'c Condition, at: &At<'_>) -> Result<CompiledCondition, ConfigError> {
        if !valid_header_name(&c.header) {
            return Err(ConfigError::InvalidHeaderName {
                field: at.field("header").path(),
                value: c.header.clone(),
            });
        }
        if c.values.is_none() && c.not_values.as_ref().is_none_or(|l| l.is_empty()) {
            return Err(ConfigError::EmptyEntry {
                field: at.path(),
                what: "a when condition must set values or notValues",
            });
        }
        Ok(CompiledCondition {
            header: c.header.to_ascii_lowercase().into(),
            values: c
                .values
                .as_deref()
                .map(|l| self.patterns(l, &at.field("values"), parse_header_value))
                .transpose()?,
            not_values: match c.not_values.as_deref() {
                Some(l) => self.patterns(l, &at.field("notValues"), parse_header_value)?,
                None => Vec::new(),
            },
        })
    }
}

/// The path ids of `range` in `refs`.
fn path_refs<'a>(refs: &'a [PathId], range: &Range<u32>) -> &'a [PathId] {
    refs.get(range.start as usize..range.end as usize).unwrap_or_default()
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

/// A configuration validated and compiled but for its regex automaton; owns
/// everything (see [`Engine::from_config`]).
struct Lowered {
    /// The engine, its path index still empty.
    engine: Engine,
    paths: PendingPathIndex,
    /// Number of distinct path patterns (path ids are below it).
    path_count: usize,
}

impl Lowered {
    fn build(self) -> Result<Engine, ConfigError> {
        let mut engine = self.engine;
        engine.paths = self.paths.build()?;
        let mut condition_headers: Vec<Box<str>> = engine
            .rules
            .iter()
            .flat_map(|r| &r.when)
            .map(|c| c.header.clone())
            .collect();
        condition_headers.sort_unstable();
        condition_headers.dedup();
        engine.needs = Needs {
            principal: engine.rules.iter().any(|r| r.from.is_some()),
            port: engine.clauses.iter().any(|c| c.ports().is_some()),
            headers: !condition_headers.is_empty(),
        };
        engine.condition_headers = condition_headers;
        engine.build_indexes(self.path_count);
        Ok(engine)
    }
}

impl Engine {
    /// Parses and compiles a JSON plugin configuration.
    pub fn from_json(json: &[u8]) -> Result<Self, ConfigError> {
        Self::from_config(PluginConfig::from_json(json)?)
    }

    /// Validates and compiles a configuration. Any invalid value rejects the
    /// whole configuration with an error naming its field.
    pub fn compile(config: &PluginConfig) -> Result<Self, ConfigError> {
        Self::lower(config)?.build()
    }

    /// [`Engine::compile`], dropping the configuration as soon as nothing
    /// borrows it: before the regex automaton is built, the peak of
    /// configure's memory (a wasm VM keeps its peak for good). At 10,000
    /// rules the parsed configuration is 1.7 MiB of that peak.
    pub fn from_config(config: PluginConfig) -> Result<Self, ConfigError> {
        let lowered = Self::lower(&config)?;
        drop(config);
        lowered.build()
    }

    /// Validates the configuration and compiles all but the regex automaton.
    fn lower(config: &PluginConfig) -> Result<Lowered, ConfigError> {
        let deny_status = config.deny_status.unwrap_or(DEFAULT_DENY_STATUS);
        if !(400..=599).contains(&deny_status) {
            return Err(ConfigError::InvalidDenyStatus { value: deny_status });
        }
        let total_rules: usize = config.policies.iter().map(|p| p.rules.len()).sum();
        if total_rules > MAX_RULES {
            return Err(ConfigError::TooLarge {
                field: "policies".into(),
                limit: MAX_RULES,
                what: "rules over all policies",
            });
        }
        let path_patterns: usize = config
            .policies
            .iter()
            .flat_map(|p| &p.rules)
            .flat_map(|r| r.to.iter().flatten())
            .map(|op| op.paths.as_ref().map_or(0, Vec::len) + op.not_paths.as_ref().map_or(0, Vec::len))
            .sum();
        let mut c = Compiler {
            paths: PathIndexBuilder::with_capacity(path_patterns.min(MAX_RULES)),
            path_refs: Vec::with_capacity(total_rules),
            methods: Vec::new(),
            patterns: 0,
            policy_names: HashSet::default(),
            policies: Vec::with_capacity(config.policies.len()),
            rules: Vec::with_capacity(total_rules),
            rule_names: Names::with_capacity(total_rules),
            clauses: Vec::with_capacity(total_rules),
        };
        let root = At::ROOT;
        let at_policies = root.field("policies");
        for (pi, policy) in config.policies.iter().enumerate() {
            c.policy(policy, pi as u32, config.mode, &at_policies.index(pi))?;
        }
        let paths_len = c.paths.len();
        Ok(Lowered {
            engine: Engine {
                mode: config.mode,
                deny_status,
                log: config.log.unwrap_or_default(),
                policies: c.policies,
                rules: c.rules,
                rule_names: c.rule_names,
                clauses: c.clauses,
                paths: PathIndex::default(),
                path_refs: c.path_refs,
                methods: c.methods.into_iter().map(Into::into).collect(),
                path_postings: Postings::default(),
                principal_index: HashMap::default(),
                namespace_index: HashMap::default(),
                unindexed: Vec::new(),
                needs: Needs::default(),
                condition_headers: Vec::new(),
            },
            paths: c.paths.finish(),
            path_count: paths_len,
        })
    }

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
    /// admits no caller.
    fn clause_is_dead(&self, cl: &Clause) -> bool {
        let rule_dead = self.rules.get(cl.rule as usize).is_none_or(|r| {
            r.from.as_ref().is_some_and(|f| f.is_empty())
                || r.when.iter().any(|c| c.values.as_ref().is_some_and(Vec::is_empty))
        });
        rule_dead
            || cl.methods == Some(0)
            || cl.paths.as_ref().is_some_and(|r| r.is_empty())
            || cl.hosts().is_some_and(<[_]>::is_empty)
            || cl.ports().is_some_and(<[_]>::is_empty)
    }

    /// Whether some `when` condition reads header `name` (compared
    /// case-insensitively; a name that is not ASCII is read by none).
    pub fn reads_header(&self, name: &[u8]) -> bool {
        self.condition_headers
            .binary_search_by(|h| cmp_ignore_ascii_case(h, name))
            .is_ok()
    }

    /// What an evaluation can read besides method, path and authority.
    pub fn needs(&self) -> Needs {
        self.needs
    }

    /// The top-level mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The status of denied requests (400–599).
    pub fn deny_status(&self) -> u16 {
        self.deny_status
    }

    /// The request-log settings.
    pub fn log_config(&self) -> LogConfig {
        self.log
    }

    /// Number of policies.
    pub fn policy_count(&self) -> usize {
        self.policies.len()
    }

    /// The name of policy `index`; empty if out of range.
    pub fn policy_name(&self, index: u32) -> &str {
        self.policies.get(index as usize).map_or("", |p| &p.name)
    }

    /// The effective mode of policy `index`.
    pub fn policy_mode(&self, index: u32) -> Mode {
        self.policies.get(index as usize).map_or(self.mode, |p| p.mode)
    }

    /// The name of the rule (explicit, or `rule-<index in policy>`).
    pub fn rule_name(&self, rule: RuleRef) -> &str {
        self.rule_names.get(rule.rule as usize)
    }

    /// Sizes of the compiled structures.
    pub fn stats(&self) -> EngineStats {
        let clause_bytes = self.clauses.capacity() * std::mem::size_of::<Clause>() + self.path_refs.capacity() * 4;
        let postings = self.path_postings.heap_size();
        EngineStats {
            policies: self.policies.len(),
            rules: self.rules.len(),
            clauses: self.clauses.iter().filter(|c| !self.clause_is_dead(c)).count(),
            unindexed_clauses: self.unindexed.len(),
            paths: self.paths.counts(),
            heap_bytes: self.paths.heap_size()
                + clause_bytes
                + postings
                + self.rules.capacity() * std::mem::size_of::<CompiledRule>()
                + self.rule_names.heap_size(),
        }
    }

    /// Which policies apply to a workload with the given labels. `label(key)`
    /// returns the workload's value for a label key. Call once per
    /// configuration, not per request.
    pub fn select(&self, mut label: impl FnMut(&str) -> Option<String>) -> Selection {
        let applies: Vec<bool> = self
            .policies
            .iter()
            .map(|p| p.selector.iter().all(|(k, v)| label(k).as_deref() == Some(&**v)))
            .collect();
        let count = |mode| {
            self.policies
                .iter()
                .zip(&applies)
                .filter(|(p, &a)| a && p.mode == mode)
                .count()
        };
        Selection {
            enforce: count(Mode::Enforce),
            audit: count(Mode::Audit),
            applies,
        }
    }

    /// Policy names that apply in a selection.
    pub fn selected_policies<'a>(&'a self, selection: &'a Selection) -> impl Iterator<Item = &'a str> + 'a {
        self.policies
            .iter()
            .zip(&selection.applies)
            .filter(|(_, &a)| a)
            .map(|(p, _)| &*p.name)
    }
}

impl<'c> Compiler<'c> {
    fn policy(&mut self, policy: &'c Policy, pi: u32, top_mode: Mode, at: &At<'_>) -> Result<(), ConfigError> {
        if !valid_name(&policy.name) {
            return Err(ConfigError::InvalidName {
                field: at.field("name").path(),
                value: policy.name.clone(),
            });
        }
        if !self.policy_names.insert(&policy.name) {
            return Err(ConfigError::DuplicateName {
                field: at.field("name").path(),
                name: policy.name.clone(),
            });
        }
        let at_rules = at.field("rules");
        check_rule_names(&policy.rules, &at_rules)?;
        for (ri, rule) in policy.rules.iter().enumerate() {
            match &rule.name {
                Some(name) => self.rule_names.push(name),
                None => self.rule_names.push_generated(ri),
            }
            let at = at_rules.index(ri);
            let rule_index = self.rules.len() as u32;
            let from = match &rule.from {
                None => None,
                Some(list) => {
                    let at_from = at.field("from");
                    Some(
                        list.iter()
                            .enumerate()
                            .map(|(i, s)| self.source(s, &at_from.index(i)))
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                }
            };
            let when = match &rule.when {
                None => Vec::new(),
                Some(list) => {
                    let at_when = at.field("when");
                    list.iter()
                        .enumerate()
                        .map(|(i, w)| self.condition(w, &at_when.index(i)))
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            match &rule.to {
                None => self.clauses.push(Clause {
                    rule: rule_index,
                    methods: None,
                    paths: None,
                    not_paths: 0..0,
                    target: None,
                }),
                Some(ops) => {
                    let at_to = at.field("to");
                    for (oi, op) in ops.iter().enumerate() {
                        let clause = self.clause(rule_index, op, &at_to.index(oi))?;
                        self.clauses.push(clause);
                    }
                }
            }
            self.rules.push(CompiledRule { policy: pi, from, when });
        }
        self.policies.push(CompiledPolicy {
            name: policy.name.as_str().into(),
            selector: policy
                .selector
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            mode: policy.mode.unwrap_or(top_mode),
        });
        Ok(())
    }
}

/// Checks the names of a policy's rules (as written, or `rule-<index>` when
/// absent): valid, and unique within the policy. The error names the first
/// rule (in order) whose name an earlier rule already has.
///
/// Generated names are distinct from each other by construction, so only the
/// written ones go through a set; a written name that reads as a generated one
/// (`rule-7`) is checked against the rule at that index. At 10,000 unnamed
/// rules this replaces 10,000 `format!`s and set insertions in configure.
fn check_rule_names(rules: &[Rule], at: &At<'_>) -> Result<(), ConfigError> {
    let mut written: HashSet<&str> = HashSet::default();
    written.reserve(rules.iter().filter(|r| r.name.is_some()).count());
    // The earliest rule whose name an earlier rule has: a repeated written
    // name is reported where it repeats, a clash with a generated name at the
    // later of the two rules.
    let mut duplicate: Option<usize> = None;
    let mut found = |k: usize| duplicate = Some(duplicate.map_or(k, |d| d.min(k)));
    for (k, name) in rules
        .iter()
        .enumerate()
        .filter_map(|(k, r)| Some((k, r.name.as_deref()?)))
    {
        if !valid_name(name) {
            return Err(ConfigError::InvalidName {
                field: at.index(k).field("name").path(),
                value: name.to_string(),
            });
        }
        if !written.insert(name) {
            found(k);
        }
        if let Some(i) = generated_index(name).filter(|&i| rules.get(i).is_some_and(|r| r.name.is_none())) {
            found(i.max(k));
        }
    }
    match duplicate {
        Some(k) => {
            let name = match rules.get(k).and_then(|r| r.name.as_deref()) {
                Some(name) => name.to_string(),
                None => {
                    let mut generated = Names::default();
                    generated.push_generated(k);
                    generated.text
                }
            };
            Err(ConfigError::DuplicateName {
                field: at.index(k).field("name").path(),
                name,
            })
        }
        None => Ok(()),
    }
}

const GENERATED_NAME_PREFIX: &str = "rule-";

/// The index `name` would be generated for, if it has the generated form
/// (`rule-0`, `rule-12`; not `rule-012`).
fn generated_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(GENERATED_NAME_PREFIX)?;
    let canonical =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// The policies that apply to one workload, resolved from its labels by
/// [`Engine::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    applies: Vec<bool>,
    enforce: usize,
    audit: usize,
}

impl Selection {
    /// Number of applicable policies in enforce mode.
    pub fn enforce_count(&self) -> usize {
        self.enforce
    }

    /// Number of applicable policies in audit mode.
    pub fn audit_count(&self) -> usize {
        self.audit
    }

    /// Whether policy `policy` (its index in the configuration) applies.
    pub fn applies(&self, policy: u32) -> bool {
        self.applies.get(policy as usize).copied().unwrap_or(false)
    }
}

/// Access to a request's headers.
///
/// Implementations return every value of a header, one per field line, in
/// order, without joining repeated headers.
pub trait Headers {
    /// Every value of header `name` (compared case-insensitively).
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a;
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter()
            .filter(move |(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

/// One HTTP request as the engine sees it. All fields are raw, as received;
/// the engine canonicalizes them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'r, H: ?Sized = [(&'r str, &'r str)]> {
    /// `:method`.
    pub method: &'r str,
    /// `:path`, with query string.
    pub path: &'r str,
    /// `:authority` (or `Host`); `None` when absent.
    pub authority: Option<&'r str>,
    /// The destination port the proxy received the request on.
    pub port: Option<u16>,
    /// The caller's principal in Istio form (SPIFFE id without `spiffe://`);
    /// `None` for an anonymous (plaintext) caller.
    pub principal: Option<&'r str>,
    /// The request headers.
    pub headers: &'r H,
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Forward the request.
    Allow,
    /// Answer with the deny status; never forward.
    Deny,
    /// Would be denied, but only audit policies apply: forward, log and count.
    AuditDeny,
    /// Malformed or ambiguous request: answer 400.
    Reject,
}

impl Verdict {
    /// The lower-case name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::AuditDeny => "audit_deny",
            Verdict::Reject => "reject",
        }
    }
}

/// Why the verdict was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// This rule admitted the request.
    Matched(RuleRef),
    /// No policy applies to the workload: the request passes.
    NoPolicy,
    /// Policies apply and no rule of them matched.
    NoMatch,
    /// The request is malformed or ambiguous.
    Malformed(RequestError),
    /// The path automaton failed (never expected; fails closed).
    Internal,
}

/// The engine's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'r> {
    /// What to do with the request.
    pub verdict: Verdict,
    /// The mode the verdict was given in: enforce if any applicable policy
    /// enforces, audit otherwise.
    pub mode: Mode,
    /// Why.
    pub reason: Reason,
    /// The canonical path that was judged; `None` when no policy applies or
    /// the request was malformed.
    pub path: Option<CanonicalPath<'r>>,
}

impl Decision<'_> {
    /// The rule that admitted the request, if one did.
    pub fn matched(&self) -> Option<RuleRef> {
        match self.reason {
            Reason::Matched(r) => Some(r),
            _ => None,
        }
    }
}

/// Per-evaluator buffers, reused across requests.
#[derive(Debug, Default)]
struct Scratch {
    matched_paths: Vec<PathId>,
    candidates: Vec<u32>,
    paths: PathScratch,
}

/// Evaluates requests for one workload. Owns the mutable search state, so
/// keep one per thread (one per wasm VM).
#[derive(Debug)]
pub struct Evaluator {
    engine: Arc<Engine>,
    selection: Selection,
    scratch: Scratch,
}

/// A request's canonical attributes.
struct Canonical<'r> {
    method: &'r str,
    path: CanonicalPath<'r>,
    authority: Option<Authority<'r>>,
}

impl Evaluator {
    /// An evaluator for the workload `selection` was made for.
    pub fn new(engine: Arc<Engine>, selection: Selection) -> Self {
        Self {
            engine,
            selection,
            scratch: Scratch::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The applicable policies.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The decision for a request that cannot be evaluated as received, the
    /// one [`Evaluator::evaluate`] gives when canonicalization fails: reject
    /// (audit_deny if only audit policies apply); allow if no policy applies.
    pub fn malformed(&self, error: RequestError) -> Decision<'static> {
        let sel = &self.selection;
        let (verdict, mode, reason) = match (sel.enforce, sel.audit) {
            (0, 0) => (Verdict::Allow, self.engine.mode, Reason::NoPolicy),
            (0, _) => (Verdict::AuditDeny, Mode::Audit, Reason::Malformed(error)),
            _ => (Verdict::Reject, Mode::Enforce, Reason::Malformed(error)),
        };
        Decision {
            verdict,
            mode,
            reason,
            path: None,
        }
    }

    /// Decides one request.
    pub fn evaluate<'r, H: Headers + ?Sized>(&mut self, req: &Request<'r, H>) -> Decision<'r> {
        let sel = &self.selection;
        if sel.enforce == 0 && sel.audit == 0 {
            return Decision {
                verdict: Verdict::Allow,
                mode: self.engine.mode,
                reason: Reason::NoPolicy,
                path: None,
            };
        }
        let mode = if sel.enforce > 0 { Mode::Enforce } else { Mode::Audit };
        let canonical = match canonicalize(req) {
            Ok(c) => c,
            Err(e) => return self.malformed(e),
        };
        let (verdict, reason) = match self.decide(req, &canonical) {
            Ok(v) => v,
            Err(_) => (
                if mode == Mode::Enforce {
                    Verdict::Deny
                } else {
                    Verdict::AuditDeny
                },
                Reason::Internal,
            ),
        };
        Decision {
            verdict,
            mode,
            reason,
            path: Some(canonical.path),
        }
    }

    fn decide<H: Headers + ?Sized>(
        &mut self,
        req: &Request<'_, H>,
        c: &Canonical<'_>,
    ) -> Result<(Verdict, Reason), regex_automata::MatchError> {
        let engine = &*self.engine;
        let sel = &self.selection;
        let s = &mut self.scratch;
        s.matched_paths.clear();
        engine.paths.find(c.path.path(), &mut s.paths, &mut s.matched_paths)?;
        s.matched_paths.sort_unstable();
        s.matched_paths.dedup();

        s.candidates.clear();
        for &p in &s.matched_paths {
            s.candidates.extend_from_slice(engine.path_postings.get(p));
        }
        let namespace = req.principal.and_then(namespace_of);
        if let Some(list) = req.principal.and_then(|p| engine.principal_index.get(p)) {
            s.candidates.extend_from_slice(list);
        }
        if let Some(list) = namespace.and_then(|n| engine.namespace_index.get(n)) {
            s.candidates.extend_from_slice(list);
        }
        s.candidates.extend_from_slice(&engine.unindexed);
        s.candidates.sort_unstable();
        s.candidates.dedup();

        let method_bit = engine
            .methods
            .iter()
            .position(|m| **m == *c.method)
            .map_or(0, |bit| 1u64 << bit);
        let ctx = MatchContext {
            method_bit,
            path_refs: &engine.path_refs,
            path_ids: &s.matched_paths,
            authority: c.authority.as_ref(),
            port: req.port,
            principal: req.principal,
            namespace,
        };
        let mut first_audit = None;
        for &ci in &s.candidates {
            let Some(clause) = engine.clauses.get(ci as usize) else {
                continue;
            };
            let Some(rule) = engine.rules.get(clause.rule as usize) else {
                continue;
            };
            if !sel.applies(rule.policy) {
                continue;
            }
            let policy_mode = engine.policy_mode(rule.policy);
            if policy_mode == Mode::Audit && first_audit.is_some() {
                continue;
            }
            if !(ctx.clause_matches(clause) && ctx.rule_matches(rule, req.headers)) {
                continue;
            }
            let r = RuleRef {
                policy: rule.policy,
                rule: clause.rule,
            };
            if policy_mode == Mode::Enforce {
                return Ok((Verdict::Allow, Reason::Matched(r)));
            }
            first_audit = Some(r);
        }
        Ok(if sel.enforce > 0 {
            (Verdict::Deny, Reason::NoMatch)
        } else if let Some(r) = first_audit {
            (Verdict::Allow, Reason::Matched(r))
        } else {
            (Verdict::AuditDeny, Reason::NoMatch)
        })
    }
}

fn canonicalize<'r, H: ?Sized>(req: &Request<'r, H>) -> Result<Canonical<'r>, RequestError> {
    let method = validate_method(req.method)?;
    let path = canonicalize_path(req.path)?;
    let authority = match req.authority {
        None | Some("") => None,
        Some(a) => Some(canonicalize_authority(a)?),
    };
    Ok(Canonical {
        method,
        path,
        authority,
    })
}

struct MatchContext<'a> {
    /// The request method's bit in the engine's method table; 0 if no rule
    /// names it.
    method_bit: u64,
    path_refs: &'a [PathId],
    /// Sorted.
    path_ids: &'a [PathId],
    authority: Option<&'a Authority<'a>>,
    port: Option<u16>,
    principal: Option<&'a str>,
    namespace: Option<&'a str>,
}

impl MatchContext<'_> {
    fn path_matched(&self, id: PathId) -> bool {
        self.path_ids.binary_search(&id).is_ok()
    }

    fn clause_matches(&self, cl: &Clause) -> bool {
        let method_ok = cl.methods.is_none_or(|m| m & self.method_bit != 0);
        let port_ok = cl.ports().is_none_or(|ps| self.port.is_some_and(|p| ps.contains(&p)));
        let paths = cl.paths.as_ref().map(|r| path_refs(self.path_refs, r));
        let paths_ok = passes(paths, path_refs(self.path_refs, &cl.not_paths), |&p| {
            self.path_matched(p)
        });
        // A request without authority fails every host field, negative ones included.
        let hosts_ok = (cl.hosts().is_none() && cl.not_hosts().is_empty())
            || self
                .authority
                .is_some_and(|a| passes(cl.hosts(), cl.not_hosts(), |h| h.matches(a.host(), a.port())));
        method_ok && port_ok && paths_ok && hosts_ok
    }

    fn rule_matches<H: Headers + ?Sized>(&self, rule: &CompiledRule, headers: &H) -> bool {
        rule.from
            .as_ref()
            .is_none_or(|from| from.iter().any(|s| self.source_matches(s)))
            && rule.when.iter().all(|c| condition_holds(c, headers))
    }

    fn source_matches(&self, s: &CompiledSource) -> bool {
        // Every source entry sets some field, so an anonymous caller never
        // matches; a principal without a namespace fails namespace fields.
        let Some(principal) = self.principal else { return false };
        passes(s.principals.as_deref(), &s.not_principals, |m| m.matches(principal))
            && ((s.namespaces.is_none() && s.not_namespaces.is_empty())
                || self
                    .namespace
                    .is_some_and(|ns| passes(s.namespaces.as_deref(), &s.not_namespaces, |m| m.matches(ns))))
    }
}

/// Whether a value passes a positive list (absent = any value; present = one
/// must match) and a negative list (none may match).
fn passes<T>(positive: Option<&[T]>, negative: &[T], matches: impl Fn(&T) -> bool) -> bool {
    positive.is_none_or(|p| p.iter().any(&matches)) && !negative.iter().any(matches)
}

/// Splits a header value into its comma-separated elements, trimmed of
/// optional whitespace; empty elements are skipped, but a value with no
/// non-empty element counts as one empty element.
pub(crate) fn header_elements(value: &str) -> impl Iterator<Item = &str> {
    let mut any = false;
    let mut parts = value.split(',');
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        for part in parts.by_ref() {
            let t = part.trim_matches([' ', '\t']);
            if !t.is_empty() {
                any = true;
                return Some(t);
            }
        }
        done = true;
        (!any).then_some("")
    })
}

fn condition_holds<H: Headers + ?Sized>(c: &CompiledCondition, headers: &H) -> bool {
    let mut present = false;
    for value in headers.values(&c.header) {
        present = true;
        let all_pass =
            header_elements(value).all(|item| passes(c.values.as_deref(), &c.not_values, |m| m.matches(item)));
        if !all_pass {
            return false;
        }
    }
    // `values` requires the header; `notValues` alone admits its absence.
    present || c.values.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn header_elements_split() {
        fn e(v: &str) -> Vec<&str> {
            header_elements(v).collect()
        }
        assert_eq!(e("a"), vec!["a"]);
        assert_eq!(e("a, b,c"), vec!["a", "b", "c"]);
        assert_eq!(e("a,,b, "), vec!["a", "b"]);
        assert_eq!(e(""), vec![""]);
        assert_eq!(e(" , "), vec![""]);
    }

    #[test]
    fn names_by_index() {
        let mut names = Names::default();
        names.push_generated(0);
        names.push("reads");
        names.push("");
        names.push_generated(10_203);
        names.push("é");
        let all: Vec<&str> = (0..6).map(|i| names.get(i)).collect();
        assert_eq!(all, ["rule-0", "reads", "", "rule-10203", "é", ""]);
        for (i, name) in all.iter().enumerate().take(5) {
            assert_eq!(generated_index(name).is_some(), [0, 3].contains(&i), "{name}");
        }
    }

    #[test]
    fn rule_names_in_a_compiled_engine() {
        let engine = Engine::from_json(
            br#"{"policies":[{"name":"a","rules":[{},{"name":"x"},{}]},{"name":"b","rules":[{"name":"y"},{}]}]}"#,
        )
        .unwrap();
        let name = |policy, rule| engine.rule_name(RuleRef { policy, rule });
        assert_eq!([name(0, 0), name(0, 1), name(0, 2)], ["rule-0", "x", "rule-2"]);
        assert_eq!([name(1, 3), name(1, 4)], ["y", "rule-1"]);
    }
}
