//! `meshward-control learn`: Allowlists proposed from observed traffic.
//!
//! ```text
//!  request log lines ─▶ logs (Record, where read) ─▶ Learner::observe
//!      per workload: a path Generalizer, and (caller, method, path shape) → count, ports
//!  Learner::finish(state) ─▶ per workload in the manifests: one Allowlist
//!      selector: the pod template's labels; one rule per caller, named after it
//!      to: operations of its API descriptions, then path templates grouped by
//!          (methods, ports)
//! ```
//!
//! A workload that carries API descriptions
//! ([`API_ANNOTATION`](crate::apidesc::API_ANNOTATION)) is learned in terms of
//! operations: [`Learner::with_apis`] judges each call with the filter's
//! engine against the operations of its descriptions ([`described`]); a
//! call that is an operation becomes part of a `grpc` (`service`, `methods`,
//! `api`) or `openapi` (`api`, `operations`) entry, and a call that is none
//! stays a path as for any workload, so the proposal admits it, and is listed
//! in [`Proposal::undocumented`].
//!
//! Only traffic that reached the workload is learned (`allow`, `audit_deny`);
//! `deny` only with [`Options::include_denied`], `reject` never (a malformed
//! request matches no rule). Callers are SPIFFE principals: one of a
//! service account in the manifests becomes `serviceAccounts: [ns/name]`,
//! any other passes through as `principals`; anonymous callers get a rule of
//! their own, without `from`, named [`ANONYMOUS_RULE`]. Paths are generalized
//! per workload ([`generalize`]); gRPC paths (`/package.Service/Method`) are
//! kept as they are. The output is deterministic: everything is sorted.

pub mod described;
pub mod generalize;
pub mod logs;

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::{
    Allowlist, AllowlistMode, AllowlistOperation, AllowlistRule, AllowlistSource, AllowlistSpec, Selector,
};
use crate::crd::{GrpcMethods, OpenApiOperations};
use crate::state::ClusterState;
use described::{Apis, Op};
use generalize::{Generalizer, ANY};
use logs::{At, Record};

/// The name of the rule of anonymous callers (no peer certificate).
pub const ANONYMOUS_RULE: &str = "anonymous-no-identity";

/// How `learn` proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `spec.mode` of every proposed Allowlist.
    pub mode: AllowlistMode,
    /// (caller, method, path template) seen fewer times are dropped.
    pub min_count: u64,
    /// Learn from `deny` lines too.
    pub include_denied: bool,
    /// [`generalize::DISTINCT_THRESHOLD`] unless changed.
    pub threshold: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: AllowlistMode::Audit,
            min_count: 1,
            include_denied: false,
            threshold: generalize::DISTINCT_THRESHOLD,
        }
    }
}

/// A caller: a principal, or anonymous (`None`), which sorts first.
type Caller = Option<String>;

/// What was seen of one (caller, method, path shape).
#[derive(Debug, Clone, Default)]
struct Seen {
    count: u64,
    ports: BTreeSet<u16>,
    /// Some line had no port (written before ports were logged).
    port_unknown: bool,
    grpc: bool,
}

impl Seen {
    fn add(&mut self, other: &Seen) {
        self.count += other.count;
        self.ports.extend(&other.ports);
        self.port_unknown |= other.port_unknown;
    }
}

/// The traffic of one workload.
#[derive(Debug, Clone, Default)]
struct Traffic {
    paths: Generalizer,
    /// (caller, method, path shape): the shape is the path as generalized
    /// when read (ids already `{*}`), mapped again at the end.
    seen: BTreeMap<(Caller, String, String), Seen>,
    /// (caller, description, operation) of calls that are operations of
    /// the workload's API descriptions (indexes into its matchers).
    ops: BTreeMap<(Caller, usize, usize), Seen>,
}

/// Lines read but not learned, by why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotLearned {
    /// `deny` or `reject` lines (traffic that did not reach the workload).
    pub refused: u64,
    /// Lines without `workload` or `namespace`.
    pub unattributed: u64,
    /// Lines whose path is not absolute (`*`, an authority).
    pub not_a_path: u64,
}

/// Reads request records and proposes Allowlists ([`Learner::finish`]).
#[derive(Debug, Clone)]
pub struct Learner {
    options: Options,
    apis: Apis,
    traffic: BTreeMap<(String, String), Traffic>,
    /// Lines learned from.
    pub learned: u64,
    /// Lines not learned from, by why.
    pub not_learned: NotLearned,
}

/// A (caller, method, path template) `--min-count` dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dropped {
    /// `namespace/workload`.
    pub workload: String,
    /// The caller's principal, or `anonymous`.
    pub caller: String,
    /// The method.
    pub method: String,
    /// The path template.
    pub path: String,
    /// How often it was seen.
    pub count: u64,
}

/// Calls to a workload with API descriptions that match none of their
/// operations: (workload, caller, method, path template, count), in the
/// fields of [`Dropped`].
pub type Undocumented = Dropped;

/// What `learn` proposes, and how it got there.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// One Allowlist per workload that received traffic, sorted by
    /// namespace and name.
    pub allowlists: Vec<Allowlist>,
    /// What `--min-count` dropped.
    pub dropped: Vec<Dropped>,
    /// Calls to workloads with API descriptions that are none of their
    /// operations; the proposal admits them by path. Sorted.
    pub undocumented: Vec<Undocumented>,
    /// API descriptions that could not be used (`namespace/workload:
    /// source annotation: why`); their workloads are learned by path.
    pub api_warnings: Vec<String>,
    /// Distinct operations over all rules (per workload and description).
    pub operations: usize,
    /// Workloads of the logs not in the manifests (`namespace/name`), with
    /// their line counts: no selector can be proposed for them.
    pub unknown_workloads: Vec<(String, u64)>,
    /// The anonymous rules, as `namespace/allowlist/rule`.
    pub anonymous_rules: Vec<String>,
    /// Distinct callers over all Allowlists.
    pub callers: usize,
    /// Rules proposed.
    pub rules: usize,
    /// Distinct path templates over all rules (`{*}` in at least one segment).
    pub templates: usize,
    /// Distinct paths over all rules.
    pub paths: usize,
}

impl Learner {
    /// An empty learner, learning every workload by path.
    pub fn new(options: Options) -> Self {
        Self::with_apis(options, Apis::default())
    }

    /// An empty learner that learns the workloads `apis` describes in terms
    /// of their operations.
    pub fn with_apis(options: Options, apis: Apis) -> Self {
        Self {
            options,
            apis,
            traffic: BTreeMap::new(),
            learned: 0,
            not_learned: NotLearned::default(),
        }
    }

    /// Takes one request record into account.
    pub fn observe(&mut self, record: Record, _at: At) {
        let learnable = record.reached() || (self.options.include_denied && record.verdict == "deny");
        if !learnable {
            self.not_learned.refused += 1;
            return;
        }
        let (Some(workload), Some(namespace)) = (record.workload, record.namespace) else {
            self.not_learned.unattributed += 1;
            return;
        };
        let path = record.path.split('?').next().unwrap_or_default();
        if !path.starts_with('/') {
            self.not_learned.not_a_path += 1;
            return;
        }
        let grpc = record.grpc == Some(true);
        let at = (namespace, workload);
        let op = self.apis.workloads.get_mut(&at).and_then(|matchers| {
            matchers
                .iter_mut()
                .enumerate()
                .find_map(|(a, m)| m.operation(&record.method, path, grpc).map(|o| (a, o)))
        });
        let traffic = self.traffic.entry(at).or_default();
        if let Some((a, o)) = op {
            let seen = traffic.ops.entry((record.principal, a, o)).or_default();
            seen.count += 1;
            seen.grpc = grpc;
            match record.port {
                Some(p) => {
                    seen.ports.insert(p);
                }
                None => seen.port_unknown = true,
            }
            self.learned += 1;
            return;
        }
        let shape = if grpc {
            path.to_string()
        } else {
            traffic.paths.add(path);
            traffic.paths.template_of(path).unwrap_or_else(|| path.to_string())
        };
        let seen = traffic
            .seen
            .entry((record.principal, record.method, shape))
            .or_default();
        seen.count += 1;
        seen.grpc = grpc;
        match record.port {
            Some(p) => {
                seen.ports.insert(p);
            }
            None => seen.port_unknown = true,
        }
        self.learned += 1;
    }

    /// The Allowlists, for the workloads found in `state`.
    pub fn finish(self, state: &ClusterState) -> Proposal {
        let mut proposal = Proposal::default();
        let mut callers = BTreeSet::new();
        let mut templates = BTreeSet::new();
        let mut paths = BTreeSet::new();
        let mut documented = BTreeSet::new();
        proposal.api_warnings = self.apis.warnings.clone();
        for ((ns, workload), traffic) in self.traffic {
            let Some(labels) = workload_labels(state, &ns, &workload) else {
                let lines = traffic.seen.values().chain(traffic.ops.values()).map(|s| s.count).sum();
                proposal.unknown_workloads.push((format!("{ns}/{workload}"), lines));
                continue;
            };
            let matchers = self.apis.workloads.get(&(ns.clone(), workload.clone()));
            // (caller, method, template) with everything seen of it.
            let mut by_template: BTreeMap<(Caller, String, String), Seen> = BTreeMap::new();
            for ((caller, method, shape), seen) in traffic.seen {
                let template = if seen.grpc {
                    shape
                } else {
                    traffic.paths.template_of(&shape).unwrap_or(shape)
                };
                let entry = by_template.entry((caller, method, template)).or_default();
                entry.add(&seen);
            }
            if matchers.is_some() {
                for ((caller, method, template), seen) in &by_template {
                    proposal.undocumented.push(Undocumented {
                        workload: format!("{ns}/{workload}"),
                        caller: caller.clone().unwrap_or_else(|| "anonymous".into()),
                        method: method.clone(),
                        path: template.clone(),
                        count: seen.count,
                    });
                }
            }
            // Per caller: the operations seen, with what was seen of each.
            let mut per_caller_ops: BTreeMap<Caller, BTreeMap<(usize, usize), Seen>> = BTreeMap::new();
            for ((caller, a, o), seen) in traffic.ops {
                let Some(op) = matchers.and_then(|m| m.get(a)).and_then(|m| m.ops.get(o)) else {
                    continue;
                };
                if seen.count < self.options.min_count {
                    let (method, path) = op.call();
                    proposal.dropped.push(Dropped {
                        workload: format!("{ns}/{workload}"),
                        caller: caller.clone().unwrap_or_else(|| "anonymous".into()),
                        method,
                        path,
                        count: seen.count,
                    });
                    continue;
                }
                documented.insert((ns.clone(), workload.clone(), a, o));
                per_caller_ops.entry(caller).or_default().insert((a, o), seen);
            }
            // Per caller: template → (methods, ports, port unknown).
            let mut per_caller: BTreeMap<Caller, BTreeMap<String, (BTreeSet<String>, Seen)>> = BTreeMap::new();
            for ((caller, method, template), seen) in by_template {
                if seen.count < self.options.min_count {
                    proposal.dropped.push(Dropped {
                        workload: format!("{ns}/{workload}"),
                        caller: caller.clone().unwrap_or_else(|| "anonymous".into()),
                        method,
                        path: template,
                        count: seen.count,
                    });
                    continue;
                }
                let slot = per_caller.entry(caller).or_default().entry(template).or_default();
                slot.0.insert(method);
                slot.1.add(&seen);
            }
            if per_caller.is_empty() && per_caller_ops.is_empty() {
                continue;
            }
            let callers_here: BTreeSet<Caller> = per_caller.keys().chain(per_caller_ops.keys()).cloned().collect();
            let mut rules = Vec::new();
            let mut names = BTreeSet::new();
            for caller in callers_here {
                let by_path = per_caller.remove(&caller).unwrap_or_default();
                let by_op = per_caller_ops.remove(&caller).unwrap_or_default();
                let (name, from) = caller_rule(state, caller.as_deref());
                let name = unique(name, &mut names);
                if caller.is_none() {
                    proposal.anonymous_rules.push(format!("{ns}/{workload}/{name}"));
                }
                callers.insert(caller.clone());
                for t in by_path.keys() {
                    paths.insert(t.clone());
                    if t.contains(ANY) {
                        templates.insert(t.clone());
                    }
                }
                let mut to = described_operations(matchers.map(Vec::as_slice).unwrap_or_default(), by_op);
                to.extend(operations(by_path));
                rules.push(AllowlistRule {
                    name: Some(name),
                    from,
                    to: Some(to),
                    when: None,
                });
            }
            rules.sort_by(|a, b| a.name.cmp(&b.name));
            proposal.rules += rules.len();
            let mut allowlist = Allowlist::new(
                &workload,
                AllowlistSpec {
                    selector: Some(Selector { match_labels: labels }),
                    mode: Some(self.options.mode),
                    action: None,
                    rules,
                },
            );
            allowlist.metadata.namespace = Some(ns.clone());
            proposal.allowlists.push(allowlist);
        }
        proposal.dropped.sort();
        proposal.undocumented.sort();
        proposal.operations = documented.len();
        proposal.callers = callers.len();
        proposal.templates = templates.len();
        proposal.paths = paths.len();
        proposal
    }
}

/// The pod-template labels of workload `name` in `ns` (a Deployment,
/// StatefulSet or DaemonSet of that name, else a pod).
fn workload_labels(state: &ClusterState, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
    state
        .namespace(ns)?
        .workload_named(name)
        .map(|w| w.labels.clone())
        .filter(|l| !l.is_empty())
}

/// The rule name and `from` of a caller.
fn caller_rule(state: &ClusterState, principal: Option<&str>) -> (String, Option<Vec<AllowlistSource>>) {
    let Some(p) = principal else {
        return (ANONYMOUS_RULE.into(), None);
    };
    let parsed = p
        .split_once("/ns/")
        .and_then(|(td, rest)| rest.split_once("/sa/").map(|(ns, sa)| (td, ns, sa)))
        .filter(|(_, ns, sa)| !ns.is_empty() && !sa.is_empty() && !ns.contains('/') && !sa.contains('/'));
    if let Some((td, ns, sa)) = parsed {
        let known = td == state.trust_domain && state.namespace(ns).is_some_and(|n| n.has_service_account(sa));
        let name = rule_name(&format!("{ns}.{sa}"));
        let source = if known {
            AllowlistSource {
                service_accounts: Some(vec![format!("{ns}/{sa}")]),
                ..AllowlistSource::default()
            }
        } else {
            AllowlistSource {
                principals: Some(vec![p.to_string()]),
                ..AllowlistSource::default()
            }
        };
        return (name, Some(vec![source]));
    }
    let source = AllowlistSource {
        principals: Some(vec![p.to_string()]),
        ..AllowlistSource::default()
    };
    (rule_name(p), Some(vec![source]))
}

/// `text` as a rule name: characters the engine refuses become `-`, at most
/// 200 characters.
fn rule_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    if name.is_empty() {
        "caller".into()
    } else {
        name
    }
}

/// `name`, or `name-2`, `name-3`, ... if taken.
fn unique(name: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// The `to` entries of one caller: paths grouped by their methods and ports
/// (ports only when every line said them), sorted; a literal path a
/// template of the same entry admits is left out.
fn operations(by_path: BTreeMap<String, (BTreeSet<String>, Seen)>) -> Vec<AllowlistOperation> {
    type Key = (Vec<String>, Option<Vec<u16>>);
    let mut groups: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for (path, (methods, seen)) in by_path {
        let ports = (!seen.port_unknown).then(|| seen.ports.iter().copied().collect());
        groups
            .entry((methods.into_iter().collect(), ports))
            .or_default()
            .push(path);
    }
    groups
        .into_iter()
        .map(|((methods, ports), paths)| {
            let kept: Vec<String> = paths
                .iter()
                .filter(|p| !paths.iter().any(|t| t != *p && covers(t, p)))
                .cloned()
                .collect();
            AllowlistOperation {
                methods: Some(methods),
                paths: Some(kept),
                ports,
                ..AllowlistOperation::default()
            }
        })
        .collect()
}

/// The `to` entries of one caller's operations: per description, a `grpc`
/// entry per service (methods sorted) or one `openapi` entry (operations
/// sorted), split by ports as [`operations`] splits paths.
fn described_operations(
    matchers: &[described::Matcher],
    by_op: BTreeMap<(usize, usize), Seen>,
) -> Vec<AllowlistOperation> {
    // (description, gRPC service or none, ports) → names.
    type Key = (usize, Option<String>, Option<Vec<u16>>);
    let mut groups: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for ((a, o), seen) in by_op {
        let Some(op) = matchers.get(a).and_then(|m| m.ops.get(o)) else {
            continue;
        };
        let ports = (!seen.port_unknown).then(|| seen.ports.iter().copied().collect());
        let (service, name) = match op {
            Op::Grpc { service, method } => (Some(service.clone()), method.clone()),
            Op::OpenApi { key, .. } => (None, key.clone()),
        };
        groups.entry((a, service, ports)).or_default().insert(name);
    }
    groups
        .into_iter()
        .filter_map(|((a, service, ports), names)| {
            let api = matchers.get(a)?.api.clone();
            let names: Vec<String> = names.into_iter().collect();
            Some(match service {
                Some(service) => AllowlistOperation {
                    grpc: Some(GrpcMethods {
                        service,
                        methods: names,
                        api: Some(api),
                        idempotency_level: None,
                    }),
                    ports,
                    ..AllowlistOperation::default()
                },
                None => AllowlistOperation {
                    openapi: Some(OpenApiOperations {
                        api,
                        operations: Some(names),
                        tags: None,
                    }),
                    ports,
                    ..AllowlistOperation::default()
                },
            })
        })
        .collect()
}

/// Whether template `t` admits every path `p` admits (same depth; each
/// segment equal, or `{*}` in `t` over a non-empty one in `p`).
fn covers(t: &str, p: &str) -> bool {
    let (mut ts, mut ps) = (t.split('/'), p.split('/'));
    loop {
        match (ts.next(), ps.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            (Some(ANY), Some(b)) if !b.is_empty() && !b.contains(['[', ']']) => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Snapshot;
    use serde_json::json;

    fn state() -> ClusterState {
        let docs = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {meshward.io/enforcement: learn}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: frontend, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders, tier: api}}
    spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}
"#;
        let sources = [crate::manifests::Source {
            name: "m.yaml".into(),
            text: docs.into(),
        }];
        let loaded = crate::manifests::load_sources(&sources, "cluster.local").unwrap();
        let snapshot: Snapshot = loaded.snapshot;
        snapshot.to_state()
    }

    fn rec(principal: Option<&str>, method: &str, path: &str, verdict: &str) -> Record {
        Record {
            method: method.into(),
            path: path.into(),
            principal: principal.map(str::to_string),
            port: Some(8080),
            workload: Some("orders".into()),
            namespace: Some("shop".into()),
            verdict: verdict.into(),
            ..Record::default()
        }
    }

    const FRONTEND: &str = "cluster.local/ns/shop/sa/frontend";

    fn learn(records: Vec<Record>, options: Options) -> Proposal {
        let mut l = Learner::new(options);
        for (i, r) in records.into_iter().enumerate() {
            l.observe(
                r,
                At {
                    file: 0,
                    line: i as u64 + 1,
                },
            );
        }
        l.finish(&state())
    }

    #[test]
    fn one_allowlist_per_workload_one_rule_per_caller() {
        let p = learn(
            vec![
                rec(Some(FRONTEND), "GET", "/orders/1", "allow"),
                rec(Some(FRONTEND), "GET", "/orders/2", "audit_deny"),
                rec(Some(FRONTEND), "POST", "/orders", "audit_deny"),
                rec(
                    Some("cluster.local/ns/batch/sa/nightly"),
                    "DELETE",
                    "/orders/3",
                    "audit_deny",
                ),
                rec(None, "GET", "/healthz", "audit_deny"),
                rec(Some(FRONTEND), "DELETE", "/orders/1", "deny"),
                rec(Some(FRONTEND), "GET", "/../etc", "reject"),
            ],
            Options::default(),
        );
        assert_eq!(p.allowlists.len(), 1);
        let a = serde_json::to_value(&p.allowlists[0]).unwrap();
        assert_eq!(a["metadata"], json!({"name": "orders", "namespace": "shop"}));
        assert_eq!(
            a["spec"],
            json!({
                "selector": {"matchLabels": {"app": "orders", "tier": "api"}},
                "mode": "audit",
                "rules": [
                    {"name": "anonymous-no-identity",
                     "to": [{"methods": ["GET"], "paths": ["/healthz"], "ports": [8080]}]},
                    {"name": "batch.nightly",
                     "from": [{"principals": ["cluster.local/ns/batch/sa/nightly"]}],
                     "to": [{"methods": ["DELETE"], "paths": ["/orders/{*}"], "ports": [8080]}]},
                    {"name": "shop.frontend",
                     "from": [{"serviceAccounts": ["shop/frontend"]}],
                     "to": [{"methods": ["GET"], "paths": ["/orders/{*}"], "ports": [8080]},
                            {"methods": ["POST"], "paths": ["/orders"], "ports": [8080]}]},
                ]
            })
        );
        assert_eq!(p.anonymous_rules, ["shop/orders/anonymous-no-identity"]);
        assert_eq!((p.callers, p.rules, p.templates, p.paths), (3, 3, 1, 3));
    }

    #[test]
    fn denied_traffic_is_learned_only_when_asked_and_rejected_never() {
        let records = || {
            vec![
                rec(Some(FRONTEND), "DELETE", "/orders/1", "deny"),
                rec(Some(FRONTEND), "GET", "/x", "reject"),
            ]
        };
        assert!(learn(records(), Options::default()).allowlists.is_empty());
        let p = learn(
            records(),
            Options {
                include_denied: true,
                ..Options::default()
            },
        );
        let rules = &p.allowlists[0].spec.rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].to.as_ref().unwrap()[0].methods,
            Some(vec!["DELETE".to_string()])
        );
    }

    #[test]
    fn min_count_drops_and_lists_what_it_dropped() {
        let mut records = vec![rec(Some(FRONTEND), "GET", "/orders/1", "allow"); 3];
        records.push(rec(Some(FRONTEND), "PUT", "/orders/9", "allow"));
        let p = learn(
            records,
            Options {
                min_count: 2,
                ..Options::default()
            },
        );
        assert_eq!(
            p.dropped,
            [Dropped {
                workload: "shop/orders".into(),
                caller: FRONTEND.into(),
                method: "PUT".into(),
                path: "/orders/{*}".into(),
                count: 1
            }]
        );
        let to = p.allowlists[0].spec.rules[0].to.clone().unwrap();
        assert_eq!(to.len(), 1);
        assert_eq!(to[0].methods, Some(vec!["GET".to_string()]));
    }

    #[test]
    fn grpc_paths_stay_exact_and_unknown_workloads_are_listed() {
        let mut records: Vec<Record> = (0..20)
            .map(|i| Record {
                grpc: Some(true),
                port: None,
                ..rec(Some(FRONTEND), "POST", &format!("/shop.Orders/Method{i}"), "allow")
            })
            .collect();
        records.push(Record {
            workload: Some("ghost".into()),
            ..rec(None, "GET", "/", "allow")
        });
        let p = learn(records, Options::default());
        let to = p.allowlists[0].spec.rules[0].to.clone().unwrap();
        assert_eq!(to[0].paths.as_ref().unwrap().len(), 20, "no {{*}} for gRPC methods");
        assert_eq!(to[0].ports, None, "lines without a port: no port constraint");
        assert_eq!(p.unknown_workloads, [("shop/ghost".to_string(), 1)]);
    }

    #[test]
    fn names_and_coverage() {
        assert_eq!(rule_name("spiffe://x y"), "spiffe---x-y");
        let mut taken = BTreeSet::new();
        assert_eq!(unique("a".into(), &mut taken), "a");
        assert_eq!(unique("a".into(), &mut taken), "a-2");
        assert!(covers("/a/{*}", "/a/b"));
        assert!(!covers("/a/{*}", "/a/"));
        assert!(!covers("/a/{*}", "/a/b/c"));
        assert!(!covers("/a/b", "/a/{*}"));
    }
}
