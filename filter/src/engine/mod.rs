//! The compiled engine: the immutable model a configuration compiles to.
//!
//! [`Engine::compile`] turns a [`PluginConfig`](crate::PluginConfig) into
//! validated, immutable structures, and an [`Evaluator`] decides requests
//! against them. This module holds the model and its accessors; its
//! submodules hold the work done on it:
//!
//! * `compile` — validation and lowering, each error naming its field;
//! * `index` — filing every clause under the most selective index;
//! * `select` — which policies apply to one workload;
//! * `request` — what goes in (a [`Request`]) and what comes out (a
//!   [`Decision`]);
//! * `evaluate` — the [`Evaluator`], which looks candidates up and verifies
//!   them.
//!
//! Each rule is split into *clauses*, one per `to` entry (or one for a rule
//! without `to`). Every clause is filed under one index, chosen at compile
//! time as the most selective one available:
//!
//! * the **path index**: under each of its `paths` patterns;
//! * the **identity index**: under the exact principals or namespaces of its
//!   rule's `from` entries, when every entry has such a key;
//! * otherwise the short list of clauses checked on every request.
//!
//! A request looks up the path index once and the identity maps once; the
//! clauses found are the only candidates, and each is verified against every
//! field of its rule. Deny policies' clauses are filed in the same indexes as
//! allow policies' ones, so a deny rule costs what an allow rule costs. A `grpc` entry is a clause like any other: `POST`, the
//! paths of its methods, and a flag that the request must be gRPC, read from
//! its `content-type` once per request when some clause has it. The cost of a request is therefore the path length plus
//! the number of candidates, not the number of rules. Address blocks,
//! `notMethods`, `notPorts` and the keyed `when` conditions are not indexed:
//! they are verified on the candidates the indexes return, each block by one
//! masked comparison.
//!
//! Everything refers to everything else by index, so the model is a handful
//! of flat vectors:
//!
//! ```text
//!  Engine
//!   ├─ policies   [CompiledPolicy {name, selector, mode, action}]
//!   ├─ rules      [CompiledRule {policy ──▶ policies, from [CompiledSource], when [CompiledCondition {key, values}]}]
//!   ├─ rule_names Names: rule ──▶ name
//!   ├─ clauses    [Clause {rule ──▶ rules, methods: bit i ──▶ methods, paths ──▶ path_refs, grpc, target}]
//!   ├─ methods    [method]
//!   ├─ path_refs  [PathId ──▶ paths]
//!   ├─ paths      PathIndex: canonical path ──▶ the PathIds of the patterns it matches
//!   └─ indexes    path_postings   PathId    ──▶ [clause]
//!                 principal_index principal ──▶ [clause]
//!                 namespace_index namespace ──▶ [clause]
//!                 unindexed                     [clause]
//! ```

use rustc_hash::FxHashMap as HashMap;
use std::ops::Range;

use crate::address::Cidr;
use crate::auth::MatchRequestPrincipal;
use crate::config::{Action, LogConfig, Mode};
use crate::paths::{PathCounts, PathId, PathIndex};
use crate::pattern::{MatchHost, MatchStr};
use crate::postings::Postings;

mod compile;
mod evaluate;
mod index;
mod request;
mod select;

pub use compile::{DEFAULT_DENY_STATUS, MAX_PATTERNS, MAX_RULES};
pub use evaluate::Evaluator;
pub use request::{
    is_grpc, is_grpc_content_type, ConnectionInfo, Decision, Headers, Reason, Request, RuleRef, Verdict,
};
pub use select::Selection;

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
    /// Some clause admits only gRPC requests: evaluation reads `content-type`.
    reads_grpc: bool,
}

/// What evaluating a request can read besides its method, path and
/// authority, so that a proxy fetches only that: every hostcall on the
/// request path costs. A field the configuration never reads does not
/// change any decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Some `from` entry names identities (principals, namespaces or their
    /// negations), or a condition reads `source.principal` or
    /// `source.namespace`.
    pub principal: bool,
    /// Some `to` entry has `ports` or `notPorts`, or a condition reads
    /// `destination.port`.
    pub port: bool,
    /// Some condition reads a header.
    pub headers: bool,
    /// Some rule reads the downstream address (`ipBlocks`,
    /// `remoteIpBlocks`, their negations, or a `source.ip` or `remote.ip`
    /// condition): Envoy's `source.address`.
    pub source_address: bool,
    /// Some condition reads `destination.ip`: Envoy's `destination.address`.
    pub destination_address: bool,
    /// Some condition reads `connection.sni`.
    pub sni: bool,
    /// Some `from` entry sets `requestPrincipals` or `notRequestPrincipals`,
    /// or some `when` condition reads a `request.auth.*` key: the claims of
    /// the verified JWT are read.
    pub auth: bool,
}

#[derive(Debug)]
struct CompiledPolicy {
    name: Box<str>,
    selector: Vec<(Box<str>, Box<str>)>,
    mode: Mode,
    action: Action,
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
    /// `ipBlocks` / `notIpBlocks`: the direct peer.
    ip_blocks: Values<Cidr>,
    /// `remoteIpBlocks` / `notRemoteIpBlocks`: the original client.
    remote_ip_blocks: Values<Cidr>,
    /// The request principal fields, which most entries leave out: boxed.
    jwt: Option<Box<SourceJwt>>,
}

/// A positive list (absent: any value; present: one entry must match) and a
/// negative one (no entry may match).
#[derive(Debug)]
struct Values<T> {
    positive: Option<Vec<T>>,
    negative: Vec<T>,
}

impl<T> Values<T> {
    /// Neither list is given: the field does not constrain the request.
    fn is_unset(&self) -> bool {
        self.positive.is_none() && self.negative.is_empty()
    }
}

/// The `requestPrincipals` and `notRequestPrincipals` of a `from` entry.
#[derive(Debug)]
struct SourceJwt {
    request_principals: Option<Vec<MatchRequestPrincipal>>,
    not_request_principals: Vec<MatchRequestPrincipal>,
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
    /// Only gRPC requests match (a `grpc` entry; `methods` and `paths` hold
    /// its `POST` and its methods' paths). Fits the clause's padding on
    /// wasm32: a clause stays 48 bytes.
    grpc: bool,
    /// Hosts and ports, which most `to` entries leave out: boxed, so that a
    /// clause without them takes 48 bytes instead of 80 (wasm32), 320 KB at
    /// 10,000 rules.
    target: Option<Box<Target>>,
}

/// The host, port and excluded-method fields of a clause.
#[derive(Debug)]
struct Target {
    hosts: Option<Vec<MatchHost>>,
    not_hosts: Vec<MatchHost>,
    ports: Option<Vec<u16>>,
    not_ports: Vec<u16>,
    /// `notMethods`: bit `i` = method `i` of the engine's method table.
    not_methods: u64,
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

    fn not_ports(&self) -> &[u16] {
        self.target.as_ref().map_or(&[], |t| &t.not_ports)
    }

    fn not_methods(&self) -> u64 {
        self.target.as_ref().map_or(0, |t| t.not_methods)
    }
}

/// What a `when` condition reads, compiled from its `header` or `key`.
///
/// Istio's condition keys, each with its own kind of value: headers and the
/// identity keys take string patterns, the IP keys addresses and CIDR blocks,
/// `destination.port` port numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionKey {
    /// `header: <name>` or `request.headers[<name>]`; the name lower-case.
    Header(Box<str>),
    /// `source.ip`: the direct peer, as `ipBlocks`.
    SourceIp,
    /// `remote.ip`: the original client, as `remoteIpBlocks`.
    RemoteIp,
    /// `destination.ip`: the address the request was received on.
    DestinationIp,
    /// `destination.port`: the port the request was received on.
    DestinationPort,
    /// `source.namespace`: the caller's namespace, from its principal.
    SourceNamespace,
    /// `source.principal`: the caller's principal (mTLS).
    SourcePrincipal,
    /// `connection.sni`: the server name the client sent in its TLS hello.
    ConnectionSni,
    /// `request.auth.principal`: the verified JWT's `iss`/`sub`, the
    /// condition's values parsed as request principal patterns.
    AuthPrincipal,
    /// `request.auth.audiences`: the `aud` claim.
    AuthAudiences,
    /// `request.auth.presenter`: the `azp` claim.
    AuthPresenter,
    /// `request.auth.claims[a][b]...`: the claim at this path of names.
    AuthClaim(Box<[Box<str>]>),
}

impl ConditionKey {
    /// The keys [`ConditionKey::parse`] accepts, as an error message lists them.
    pub const SUPPORTED: &'static str = "request.headers[<name>], source.ip, remote.ip, destination.ip, \
                                         destination.port, source.namespace, source.principal, connection.sni, \
                                         request.auth.principal, request.auth.audiences, request.auth.presenter, \
                                         request.auth.claims[<name>] (nested: request.auth.claims[<name>][<name>])";

    /// Most names in a nested claim path.
    pub const MAX_CLAIM_PATH: usize = 16;

    /// The key Istio writes as `key`; `None` for a key the engine does not
    /// know. The header name of `request.headers[<name>]` is returned as
    /// written (not validated, not lower-cased).
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "source.ip" => Self::SourceIp,
            "remote.ip" => Self::RemoteIp,
            "destination.ip" => Self::DestinationIp,
            "destination.port" => Self::DestinationPort,
            "source.namespace" => Self::SourceNamespace,
            "source.principal" => Self::SourcePrincipal,
            "connection.sni" => Self::ConnectionSni,
            "request.auth.principal" => Self::AuthPrincipal,
            "request.auth.audiences" => Self::AuthAudiences,
            "request.auth.presenter" => Self::AuthPresenter,
            _ => {
                if let Some(path) = key.strip_prefix("request.auth.claims") {
                    return parse_claim_path(path).map(Self::AuthClaim);
                }
                let name = key.strip_prefix("request.headers[")?.strip_suffix(']')?;
                Self::Header(name.into())
            }
        })
    }

    /// Whether it reads the verified JWT's claims.
    fn reads_auth(&self) -> bool {
        matches!(
            self,
            Self::AuthPrincipal | Self::AuthAudiences | Self::AuthPresenter | Self::AuthClaim(_)
        )
    }
}

/// `[a][b]...` as its names; `None` unless every name is non-empty and free
/// of brackets and control characters, and there are 1 to
/// [`ConditionKey::MAX_CLAIM_PATH`] of them.
fn parse_claim_path(mut path: &str) -> Option<Box<[Box<str>]>> {
    let mut names = Vec::new();
    while !path.is_empty() {
        let rest = path.strip_prefix('[')?;
        let end = rest.find(']')?;
        let name = rest.get(..end)?;
        if name.is_empty() || name.contains('[') || name.bytes().any(|b| b.is_ascii_control()) {
            return None;
        }
        names.push(Box::from(name));
        path = rest.get(end + 1..)?;
    }
    (1..=ConditionKey::MAX_CLAIM_PATH)
        .contains(&names.len())
        .then(|| names.into_boxed_slice())
}

/// The values of a condition, of the kind its key takes.
#[derive(Debug)]
enum ConditionValues {
    /// Header values and string attributes: exact, `prefix*`, `*suffix`, `*`.
    Strings(Values<MatchStr>),
    /// IP attributes: addresses and CIDR blocks.
    Addresses(Values<Cidr>),
    /// `destination.port`.
    Ports(Values<u16>),
    /// `request.auth.principal`: `<iss>/<sub>` patterns.
    RequestPrincipals(Values<MatchRequestPrincipal>),
}

impl ConditionValues {
    /// A present but empty `values`: the condition holds for no request.
    fn is_empty_positive(&self) -> bool {
        match self {
            Self::Strings(v) => v.positive.as_ref().is_some_and(Vec::is_empty),
            Self::Addresses(v) => v.positive.as_ref().is_some_and(Vec::is_empty),
            Self::Ports(v) => v.positive.as_ref().is_some_and(Vec::is_empty),
            Self::RequestPrincipals(v) => v.positive.as_ref().is_some_and(Vec::is_empty),
        }
    }
}

#[derive(Debug)]
struct CompiledCondition {
    key: ConditionKey,
    values: ConditionValues,
}

/// The path ids of `range` in `refs`.
fn path_refs<'a>(refs: &'a [PathId], range: &Range<u32>) -> &'a [PathId] {
    refs.get(range.start as usize..range.end as usize).unwrap_or_default()
}

/// Orders `lower` (lower-case) against `name` as if `name` were lower-cased.
fn cmp_ignore_ascii_case(lower: &str, name: &[u8]) -> std::cmp::Ordering {
    lower.bytes().cmp(name.iter().map(u8::to_ascii_lowercase))
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

/// How an unnamed rule is named: `rule-<index in its policy>`.
const GENERATED_NAME_PREFIX: &str = "rule-";

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

/// The index `name` would be generated for, if it has the generated form
/// (`rule-0`, `rule-12`; not `rule-012`).
fn generated_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(GENERATED_NAME_PREFIX)?;
    let canonical =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

impl Engine {
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

    /// The action of policy `index`; allow if out of range.
    pub fn policy_action(&self, index: u32) -> Action {
        self.policies.get(index as usize).map_or(Action::Allow, |p| p.action)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
