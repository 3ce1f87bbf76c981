//! Compilation: a [`PluginConfig`] validated and lowered into the engine's
//! model.
//!
//! Every value is checked where it is lowered, and the first invalid one
//! rejects the whole configuration with a [`ConfigError`] naming its field
//! (`policies[2].rules[0].to[0].paths[3]`). The field path is built only when
//! an error occurs: while all is well an [`At`] is a chain of borrowed
//! segments on the stack. Limits ([`MAX_RULES`], [`MAX_PATTERNS`], 64
//! distinct methods) are counted as the configuration is walked.
//!
//! Compilation stops short of the path automata and the indexes: it returns a
//! [`Lowered`] engine that owns everything it needs, so that the parsed
//! configuration can be dropped before the largest allocations of configure
//! (see [`Engine::from_config`]).

use rustc_hash::FxHashSet as HashSet;
use std::ops::Range;

use super::index::Lowered;
use super::{
    generated_index, Clause, CompiledCondition, CompiledPolicy, CompiledRule, CompiledSource, ConditionKey,
    ConditionValues, Engine, Names, Needs, SourceJwt, Target, Values,
};
use crate::address::Cidr;
use crate::auth::MatchRequestPrincipal;
use crate::config::{Condition, GrpcMethods, Mode, Operation, PluginConfig, Policy, Rule, Source};
use crate::error::{ConfigError, PatternError};
use crate::paths::{PathId, PathIndex, PathIndexBuilder};
use crate::pattern::{parse_header_value, valid_method_pattern, MatchHost, MatchStr, MAX_PATTERN_LEN};
use crate::postings::Postings;

/// The default status of a denied request.
pub const DEFAULT_DENY_STATUS: u16 = 403;
/// Most rules a configuration may hold, over all policies.
pub const MAX_RULES: usize = 100_000;
/// Most patterns (of any kind) a configuration may hold.
pub const MAX_PATTERNS: usize = 1_000_000;

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
            .map(|op| {
                op.paths.as_ref().map_or(0, Vec::len)
                    + op.not_paths.as_ref().map_or(0, Vec::len)
                    + op.grpc.as_ref().map_or(0, |g| g.methods.len())
            })
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
                principal_index: Default::default(),
                namespace_index: Default::default(),
                unindexed: Vec::new(),
                needs: Needs::default(),
                condition_headers: Vec::new(),
                reads_grpc: false,
            },
            paths: c.paths.finish(),
            path_count: paths_len,
        })
    }
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

/// A protobuf identifier: a letter or `_`, then letters, digits and `_`.
fn valid_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A full protobuf name as gRPC paths carry it: identifiers separated by `.`
/// (no leading `.`), at most [`MAX_PATTERN_LEN`] bytes.
fn valid_grpc_service(name: &str) -> bool {
    name.len() <= MAX_PATTERN_LEN && name.split('.').all(valid_identifier)
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(crate::canonical::is_tchar)
}

/// Compilation state: counters for limits, the path interner and the model
/// built so far.
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
            self.rule(rule, pi, &at_rules.index(ri))?;
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
            action: policy.action,
        });
        Ok(())
    }

    /// Compiles one rule of policy `pi` into its sources, conditions and
    /// clauses (one per `to` entry, or one for any operation).
    fn rule(&mut self, rule: &'c Rule, pi: u32, at: &At<'_>) -> Result<(), ConfigError> {
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
                grpc: false,
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
        Ok(())
    }

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
            mask |= self.method_bit(m, &at.index(i))?;
        }
        Ok(Some(mask))
    }

    /// The method bits of a `notMethods` list. `*` excludes every method:
    /// the caller makes the clause match no method.
    fn not_methods(&mut self, list: &'c [String], at: &At<'_>) -> Result<u64, ConfigError> {
        self.count(list.len(), at)?;
        if let Some(i) = list.iter().position(|m| !valid_method_pattern(m)) {
            return Err(ConfigError::InvalidMethod {
                field: at.index(i).path(),
                value: list.get(i).cloned().unwrap_or_default(),
            });
        }
        let mut mask = 0u64;
        for (i, m) in list.iter().enumerate().filter(|(_, m)| *m != "*") {
            mask |= self.method_bit(m, &at.index(i))?;
        }
        Ok(mask)
    }

    /// The bit of method `m` in the engine's method table, added if new.
    fn method_bit(&mut self, m: &'c str, at: &At<'_>) -> Result<u64, ConfigError> {
        let bit = match self.methods.iter().position(|known| *known == m) {
            Some(bit) => bit,
            None if self.methods.len() < 64 => {
                self.methods.push(m);
                self.methods.len() - 1
            }
            None => {
                return Err(ConfigError::TooLarge {
                    field: at.path(),
                    limit: 64,
                    what: "distinct methods in the configuration",
                })
            }
        };
        Ok(1 << bit)
    }

    /// Validates a `grpc` entry and interns the paths of its methods.
    fn grpc(&mut self, grpc: &'c GrpcMethods, at: &At<'_>) -> Result<Range<u32>, ConfigError> {
        if !valid_grpc_service(&grpc.service) {
            return Err(ConfigError::InvalidGrpcName {
                field: at.field("service").path(),
                value: grpc.service.clone(),
                expected: "not a full protobuf service name: identifiers (A-Z a-z 0-9 _, not starting with a digit) \
                           separated by '.', such as shop.inventory.v1.Inventory",
            });
        }
        let at_methods = at.field("methods");
        if grpc.methods.is_empty() {
            return Err(ConfigError::EmptyEntry {
                field: at_methods.path(),
                what: "name at least one method, or [\"*\"] for every method of the service",
            });
        }
        self.count(grpc.methods.len(), &at_methods)?;
        let every = grpc.methods.len() == 1 && grpc.methods.iter().all(|m| m == "*");
        let start = self.path_refs.len() as u32;
        if every {
            let id = self.paths.intern_grpc(&grpc.service, None);
            self.path_refs.push(id);
        } else {
            for (i, m) in grpc.methods.iter().enumerate() {
                if !valid_identifier(m) {
                    return Err(ConfigError::InvalidGrpcName {
                        field: at_methods.index(i).path(),
                        value: m.clone(),
                        expected: if m == "*" {
                            "\"*\" (every method) must be the only entry"
                        } else {
                            "not a protobuf method name: an identifier of A-Z a-z 0-9 _, not starting with a digit \
                             (or \"*\" alone for every method)"
                        },
                    });
                }
                let id = self.paths.intern_grpc(&grpc.service, Some(m));
                self.path_refs.push(id);
            }
        }
        Ok(start..self.path_refs.len() as u32)
    }

    fn source(&mut self, s: &'c Source, at: &At<'_>) -> Result<CompiledSource, ConfigError> {
        let given = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
        let sets_field = s.principals.is_some()
            || s.namespaces.is_some()
            || s.ip_blocks.is_some()
            || s.remote_ip_blocks.is_some()
            || s.request_principals.is_some()
            || given(&s.not_principals)
            || given(&s.not_namespaces)
            || given(&s.not_ip_blocks)
            || given(&s.not_remote_ip_blocks)
            || given(&s.not_request_principals);
        if !sets_field {
            return Err(ConfigError::EmptyEntry {
                field: at.path(),
                what: "a from entry must set principals, namespaces, requestPrincipals, ipBlocks or remoteIpBlocks, \
                       or one of their negations (omit `from` to admit any caller)",
            });
        }
        let request_principals = s
            .request_principals
            .as_deref()
            .map(|l| self.patterns(l, &at.field("requestPrincipals"), MatchRequestPrincipal::parse))
            .transpose()?;
        let not_request_principals = match s.not_request_principals.as_deref() {
            Some(l) => self.patterns(l, &at.field("notRequestPrincipals"), MatchRequestPrincipal::parse)?,
            None => Vec::new(),
        };
        let jwt = (request_principals.is_some() || !not_request_principals.is_empty()).then(|| {
            Box::new(SourceJwt {
                request_principals,
                not_request_principals,
            })
        });
        Ok(CompiledSource {
            principals: self.opt_strs(&s.principals, &at.field("principals"))?,
            not_principals: self.not_strs(&s.not_principals, &at.field("notPrincipals"))?,
            namespaces: self.opt_strs(&s.namespaces, &at.field("namespaces"))?,
            not_namespaces: self.not_strs(&s.not_namespaces, &at.field("notNamespaces"))?,
            ip_blocks: self.cidrs(&s.ip_blocks, &s.not_ip_blocks, at, ("ipBlocks", "notIpBlocks"))?,
            remote_ip_blocks: self.cidrs(
                &s.remote_ip_blocks,
                &s.not_remote_ip_blocks,
                at,
                ("remoteIpBlocks", "notRemoteIpBlocks"),
            )?,
            jwt,
        })
    }

    /// A positive and a negative list of address blocks, fields `names` of `at`.
    fn cidrs(
        &mut self,
        positive: &Option<Vec<String>>,
        negative: &Option<Vec<String>>,
        at: &At<'_>,
        names: (&str, &str),
    ) -> Result<Values<Cidr>, ConfigError> {
        Ok(Values {
            positive: positive
                .as_deref()
                .map(|l| self.patterns(l, &at.field(names.0), Cidr::parse))
                .transpose()?,
            negative: match negative.as_deref() {
                Some(l) => self.patterns(l, &at.field(names.1), Cidr::parse)?,
                None => Vec::new(),
            },
        })
    }

    /// A list of destination ports; port 0 is refused.
    fn ports(list: &[u16], at: &At<'_>) -> Result<Vec<u16>, ConfigError> {
        match list.iter().position(|&p| p == 0) {
            Some(i) => Err(ConfigError::InvalidPort {
                field: at.index(i).path(),
            }),
            None => Ok(list.to_vec()),
        }
    }

    fn clause(&mut self, rule: u32, op: &'c Operation, at: &At<'_>) -> Result<Clause, ConfigError> {
        let sets_field = op.methods.is_some()
            || op.paths.is_some()
            || op.hosts.is_some()
            || op.ports.is_some()
            || op.grpc.is_some()
            || op.not_paths.as_ref().is_some_and(|l| !l.is_empty())
            || op.not_hosts.as_ref().is_some_and(|l| !l.is_empty())
            || op.not_methods.as_ref().is_some_and(|l| !l.is_empty())
            || op.not_ports.as_ref().is_some_and(|l| !l.is_empty());
        if !sets_field {
            return Err(ConfigError::EmptyEntry {
                field: at.path(),
                what: "a to entry must set methods, notMethods, paths, notPaths, hosts, notHosts, ports, notPorts \
                       or grpc (omit `to` to admit any operation)",
            });
        }
        let (methods, grpc_paths) = match &op.grpc {
            Some(grpc) => {
                if op.methods.is_some() || op.paths.is_some() || op.not_paths.is_some() {
                    return Err(ConfigError::ConflictingFields {
                        field: at.path(),
                        what: "grpc sets the method (POST) and the paths (/<service>/<method>): \
                               a to entry with grpc cannot also set methods, paths or notPaths",
                    });
                }
                let paths = self.grpc(grpc, &at.field("grpc"))?;
                (Some(self.method_bit("POST", &at.field("grpc"))?), Some(paths))
            }
            None => {
                let methods = match &op.methods {
                    None => None,
                    Some(list) => self.methods(list, &at.field("methods"))?,
                };
                (methods, None)
            }
        };
        let ports = op
            .ports
            .as_deref()
            .map(|l| Self::ports(l, &at.field("ports")))
            .transpose()?;
        // `notMethods: ["*"]` excludes every method: the entry matches nothing.
        let methods = match op.not_methods.as_deref() {
            Some(l) if l.iter().any(|m| m == "*") => Some(0),
            _ => methods,
        };
        let paths = match grpc_paths {
            Some(range) => Some(range),
            None => op
                .paths
                .as_deref()
                .map(|l| self.path_ids(l, &at.field("paths")))
                .transpose()?,
        };
        Ok(Clause {
            rule,
            methods,
            paths,
            grpc: op.grpc.is_some(),
            not_paths: match op.not_paths.as_deref() {
                Some(l) => self.path_ids(l, &at.field("notPaths"))?,
                None => 0..0,
            },
            target: self.target(op, ports, at)?,
        })
    }

    /// The host, port and excluded-method fields of `op`, if it sets any.
    fn target(
        &mut self,
        op: &'c Operation,
        ports: Option<Vec<u16>>,
        at: &At<'_>,
    ) -> Result<Option<Box<Target>>, ConfigError> {
        let not_methods = match op.not_methods.as_deref() {
            Some(l) => self.not_methods(l, &at.field("notMethods"))?,
            None => 0,
        };
        let not_ports = match op.not_ports.as_deref() {
            Some(l) => Self::ports(l, &at.field("notPorts"))?,
            None => Vec::new(),
        };
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
            not_ports,
            not_methods,
        };
        let any = target.hosts.is_some()
            || !target.not_hosts.is_empty()
            || target.ports.is_some()
            || !target.not_ports.is_empty()
            || target.not_methods != 0;
        Ok(any.then(|| Box::new(target)))
    }

    fn condition(&mut self, c: &'c Condition, at: &At<'_>) -> Result<CompiledCondition, ConfigError> {
        let key = match (&c.header, &c.key) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::ConflictingFields {
                    field: at.path(),
                    what: "a when condition sets either header or key, not both",
                })
            }
            (None, None) => {
                return Err(ConfigError::EmptyEntry {
                    field: at.path(),
                    what: "a when condition must set header or key",
                })
            }
            (Some(name), None) => header_key(name, &at.field("header"))?,
            (None, Some(key)) => {
                let at_key = at.field("key");
                match ConditionKey::parse(key) {
                    Some(ConditionKey::Header(name)) => header_key(&name, &at_key)?,
                    Some(k) => k,
                    None if key.starts_with("request.auth.claims") => {
                        return Err(ConfigError::InvalidKey {
                            field: at_key.path(),
                            value: key.clone(),
                            expected: format!(
                                "a claim is named in brackets, request.auth.claims[<name>], nested claims as \
                                 request.auth.claims[<name>][<name>] (at most {} names, each non-empty, without \
                                 '[' or ']')",
                                ConditionKey::MAX_CLAIM_PATH
                            ),
                        })
                    }
                    None => {
                        return Err(ConfigError::UnknownConditionKey {
                            field: at_key.path(),
                            value: key.clone(),
                            supported: ConditionKey::SUPPORTED,
                        })
                    }
                }
            }
        };
        if c.values.is_none() && c.not_values.as_ref().is_none_or(|l| l.is_empty()) {
            return Err(ConfigError::EmptyEntry {
                field: at.path(),
                what: "a when condition must set values or notValues",
            });
        }
        let (at_values, at_not) = (at.field("values"), at.field("notValues"));
        let values = match &key {
            ConditionKey::Header(_) => {
                ConditionValues::Strings(self.values(c, (&at_values, &at_not), parse_header_value)?)
            }
            // Claims are matched whole (a value may hold a comma).
            ConditionKey::SourceNamespace
            | ConditionKey::SourcePrincipal
            | ConditionKey::ConnectionSni
            | ConditionKey::AuthAudiences
            | ConditionKey::AuthPresenter
            | ConditionKey::AuthClaim(_) => {
                ConditionValues::Strings(self.values(c, (&at_values, &at_not), MatchStr::parse)?)
            }
            ConditionKey::AuthPrincipal => ConditionValues::RequestPrincipals(self.values(
                c,
                (&at_values, &at_not),
                MatchRequestPrincipal::parse,
            )?),
            ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp => {
                ConditionValues::Addresses(self.values(c, (&at_values, &at_not), Cidr::parse)?)
            }
            ConditionKey::DestinationPort => {
                ConditionValues::Ports(self.values(c, (&at_values, &at_not), parse_port)?)
            }
        };
        Ok(CompiledCondition { key, values })
    }

    /// A condition's `values` and `notValues`, each parsed with `parse`.
    fn values<T>(
        &mut self,
        c: &Condition,
        at: (&At<'_>, &At<'_>),
        parse: impl Fn(&str) -> Result<T, PatternError> + Copy,
    ) -> Result<Values<T>, ConfigError> {
        Ok(Values {
            positive: c.values.as_deref().map(|l| self.patterns(l, at.0, parse)).transpose()?,
            negative: match c.not_values.as_deref() {
                Some(l) => self.patterns(l, at.1, parse)?,
                None => Vec::new(),
            },
        })
    }
}

/// The key of a header condition, its name validated and lower-cased.
fn header_key(name: &str, at: &At<'_>) -> Result<ConditionKey, ConfigError> {
    if !valid_header_name(name) {
        return Err(ConfigError::InvalidHeaderName {
            field: at.path(),
            value: name.to_string(),
        });
    }
    Ok(ConditionKey::Header(name.to_ascii_lowercase().into()))
}

/// A `destination.port` value: a decimal port number, 1–65535, as Istio
/// writes it (a string).
fn parse_port(s: &str) -> Result<u16, PatternError> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u16>() {
        Ok(p) if digits && p != 0 => Ok(p),
        _ => Err(PatternError::NotAPort),
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
