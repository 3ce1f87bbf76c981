//! `meshward-control lint`: what is wrong or risky in a set of manifests,
//! from the same derivation as the service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use meshward_filter::config::{self, Action, PluginConfig, Policy, Rule};
use meshward_filter::{Engine, Evaluator, Mode, Verdict};

use crate::apidesc::{
    self, annotated_workloads, list, AnnotatedWorkload, ApiError, BadAnnotation, DescriptionRef, API_ANNOTATION,
};
use crate::crd::AllowlistAction;
use crate::derive::{derive, selects, Desired, Settings};
use crate::simulate::delivered;
use crate::state::{ClusterState, NamespaceState, Snapshot};

/// The labels of a workload without labels.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `Kind namespace/name` of the object concerned.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// Everything `lint` reports, sorted: invalid Allowlists, Allowlists in
/// namespaces nothing enforces, selectors that match nothing, references to
/// missing service accounts, and workloads of enabled namespaces that no
/// Allowlist protects.
pub fn lint(state: &ClusterState, settings: &Settings) -> Vec<Finding> {
    let desired: Desired = derive(state, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let mut findings = Vec::new();
    for st in &desired.statuses {
        let object = format!("Allowlist {}/{}", st.namespace, st.name);
        for c in st.status.conditions.iter().filter(|c| c.status != "True") {
            findings.push(Finding {
                object: object.clone(),
                message: format!("{}: {}", c.reason, c.message),
            });
        }
    }
    // The pod templates of enabled namespaces: (namespace, `Kind ns/name`, labels).
    let enabled: BTreeSet<&str> = desired
        .wasm_plugins
        .iter()
        .filter_map(|p| p.metadata.namespace.as_deref())
        .collect();
    let mut workloads: Vec<(&str, String, &BTreeMap<String, String>)> = Vec::new();
    for &ns in &enabled {
        for (kind, name, w) in state.namespace(ns).into_iter().flat_map(NamespaceState::templates) {
            let labels = w.map_or(&NO_LABELS, |w| &w.labels);
            workloads.push((ns, format!("{} {ns}/{name}", kind.as_str()), labels));
        }
    }
    let sa_exists = |ns: &str, name: &str| state.namespace(ns).is_some_and(|s| s.has_service_account(name));
    for &ns in &enabled {
        let Some(namespace) = state.namespace(ns) else {
            continue;
        };
        for (name, a) in namespace.allowlists() {
            let object = format!("Allowlist {ns}/{name}");
            let own = a.spec.selector.as_ref().map(|s| &s.match_labels);
            if !workloads
                .iter()
                .any(|(wns, _, labels)| *wns == ns && own.is_none_or(|sel| selects(sel, Some(labels))))
            {
                findings.push(Finding {
                    object: object.clone(),
                    message: "spec.selector matches no workload in the namespace".into(),
                });
            }
            for (ri, rule) in a.spec.rules.iter().enumerate() {
                for (si, src) in rule.from.iter().flatten().enumerate() {
                    if let Some(w) = &src.workloads {
                        let wns = w.namespace.as_deref().unwrap_or(ns);
                        let matched = state.namespace(wns).is_some_and(|s| {
                            s.workloads()
                                .any(|(wl, _)| selects(&w.selector.match_labels, Some(&wl.labels)))
                        });
                        if !matched {
                            findings.push(Finding {
                                object: object.clone(),
                                message: format!(
                                    "rules[{ri}].from[{si}].workloads: the selector matches no workload in {wns}, so it {} nobody",
                                    if a.spec.action == Some(AllowlistAction::Deny) { "refuses" } else { "admits" }
                                ),
                            });
                        }
                    }
                    for (i, sa) in src.service_accounts.iter().flatten().enumerate() {
                        if let Some((sns, sname)) = sa.split_once('/') {
                            if !sa_exists(sns, sname) {
                                findings.push(Finding {
                                    object: object.clone(),
                                    message: format!(
                                        "rules[{ri}].from[{si}].serviceAccounts[{i}]: ServiceAccount {sa} does not exist"
                                    ),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    // A workload is protected when a policy of a WasmPlugin delivered to it
    // applies (a valid Allowlist, the last valid version of an invalid one, or
    // the placeholder that admits nobody).
    for (ns, object, labels) in &workloads {
        // The actions of the policies that apply to it.
        let protected = desired
            .wasm_plugins
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(*ns) && delivered(p, labels))
            .flat_map(|p| &p.spec.plugin_config.policies)
            .filter(|p| p.selector.as_ref().is_none_or(|s| selects(s, Some(labels))))
            .map(|p| p.action)
            .collect::<Vec<_>>();
        if protected.is_empty() {
            findings.push(Finding {
                object: object.clone(),
                message: "in an enabled namespace but selected by no Allowlist: its traffic is not filtered".into(),
            });
        } else if !protected.contains(&Action::Allow) {
            findings.push(Finding {
                object: object.clone(),
                message: "selected only by deny Allowlists: every request they do not refuse passes".into(),
            });
        }
    }
    findings.sort();
    findings.dedup();
    findings
}

/// Everything [`lint`] reports, and what it reports of API descriptions
/// ([`api_findings`]): the offline `lint` command, on whole objects (the
/// annotations of Deployments and Services are read from them).
pub fn lint_snapshot(snapshot: &Snapshot, settings: &Settings) -> Vec<Finding> {
    let state = snapshot.to_state();
    let mut findings = lint(&state, settings);
    let (described, bad) = annotated_workloads(&state);
    findings.extend(api_findings(&state, settings, &described, &bad));
    findings.sort();
    findings.dedup();
    findings
}

/// The value of a path parameter in the request that stands for an
/// operation: a segment no document gives a concrete path of its own.
const SAMPLE: &str = "1";

/// One operation of an API description, as lint judges it.
#[derive(Debug, Clone)]
struct ApiOperation {
    /// How findings name it: `shop.inventory.v1.Inventory/Reserve`, an
    /// operationId, or `METHOD /path`.
    label: String,
    /// Its method.
    method: String,
    /// A request path for each base path, parameters set to [`SAMPLE`].
    samples: Vec<String>,
    /// The filter's path patterns of the operation.
    patterns: Vec<String>,
    /// A gRPC method (requests carry `content-type: application/grpc`).
    grpc: bool,
}

/// A concrete request path for the filter pattern `pattern` (a path, a
/// template with `{*}` segments, or a `regex:` made by
/// [`pattern`](crate::apidesc::openapi::pattern)): each parameter set to [`SAMPLE`].
fn sample(pattern: &str) -> String {
    let Some(regex) = pattern.strip_prefix("regex:") else {
        return pattern
            .split('/')
            .map(|s| if s == "{*}" { SAMPLE } else { s })
            .collect::<Vec<_>>()
            .join("/");
    };
    let mut out = String::new();
    let mut rest = regex;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("[^/]+") {
            out.push_str(SAMPLE);
            rest = r;
        } else if let Some(r) = rest.strip_prefix('\\') {
            let mut chars = r.chars();
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
            rest = chars.as_str();
        } else {
            out.push(c);
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
        }
    }
    out
}

/// Which part of a description a workload serves: all of it (an annotation,
/// an OpenAPI document), or the gRPC services `grpc` entries name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    /// Every service, every operation.
    All,
    /// These gRPC services of the descriptor set.
    Services(BTreeSet<String>),
}

impl Scope {
    fn widen(&mut self, other: Scope) {
        match (&mut *self, other) {
            (Self::All, _) => {}
            (_, Self::All) => *self = Self::All,
            (Self::Services(a), Self::Services(b)) => a.extend(b),
        }
    }
}

/// The operations of `api` (a key of a labelled ConfigMap of `ns`) within
/// `scope`, or why it cannot be read.
fn operations(
    state: &ClusterState,
    ns: &str,
    api: &DescriptionRef,
    scope: &Scope,
) -> Result<Vec<ApiOperation>, ApiError> {
    let namespace = state.namespace(ns);
    let cms = |name: &str| namespace.and_then(|n| n.config_map(name));
    let mut out = Vec::new();
    match apidesc::descriptors(cms, ns, &api.config_map, &api.key) {
        Ok(set) => {
            for service in set.services() {
                if let Scope::Services(named) = scope {
                    if !named.contains(service) {
                        continue;
                    }
                }
                for m in set.methods(service).unwrap_or_default() {
                    let path = format!("/{service}/{}", m.name);
                    out.push(ApiOperation {
                        label: format!("{service}/{}", m.name),
                        method: "POST".into(),
                        samples: vec![path.clone()],
                        patterns: vec![path],
                        grpc: true,
                    });
                }
            }
        }
        Err(ApiError::NotBinary { .. }) => {
            let doc = apidesc::document(cms, ns, &api.config_map, &api.key)?;
            for op in doc.operations() {
                out.push(ApiOperation {
                    label: op.key.clone(),
                    method: op.method.clone(),
                    samples: op.patterns.iter().map(|p| sample(p)).collect(),
                    patterns: op.patterns.clone(),
                    grpc: false,
                });
            }
        }
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// An engine holding one allow policy of `rules`.
fn probe(rules: Vec<Rule>) -> Option<Evaluator> {
    let config = PluginConfig {
        policies: vec![Policy {
            name: "lint".into(),
            selector: None,
            mode: Some(Mode::Enforce),
            action: Action::Allow,
            rules,
        }],
        ..PluginConfig::default()
    };
    let engine = Engine::compile(&config).ok()?;
    let selection = engine.select(|_| None);
    Some(Evaluator::new(Arc::new(engine), selection))
}

/// Whether `evaluator` admits `method path` (as a gRPC call when `grpc`),
/// from an anonymous caller on no particular host or port.
fn admits(evaluator: &mut Evaluator, method: &str, path: &str, grpc: bool) -> bool {
    evaluator
        .evaluate(&apidesc::operation_request(method, path, grpc))
        .verdict
        == Verdict::Allow
}

/// Whether a `from` list admits nobody (every entry a workload selector
/// that matched no pod).
fn admits_nobody(from: &[config::Source]) -> bool {
    from.iter().all(|s| s.principals.as_ref().is_some_and(Vec::is_empty))
}

/// What `lint` reports of API descriptions, for the workloads of enabled
/// namespaces:
///
/// * **unreachable operations**: for every description a workload serves
///   (`described`, from [`API_ANNOTATION`]; and every description a `grpc.api`
///   or `openapi.api` of an Allowlist selecting it names: the services those
///   `grpc` entries name, the whole OpenAPI document), the operations no
///   rule of the allow policies delivered to it admits. The filter's engine
///   judges, on the derived configuration with each rule's callers, `when`
///   conditions, hosts and ports set aside: a gRPC method is
///   `POST /<service>/<method>` with `content-type: application/grpc`, an
///   OpenAPI operation its method on each of its paths, path parameters set
///   to `1`. A rule whose callers are only selectors matching nothing admits
///   nobody and counts for nothing. Workloads no allow policy applies to are
///   not judged (`lint` already says they are not filtered);
/// * **paths that match no documented operation**: each `paths` entry of an
///   Allowlist all of whose selected workloads have descriptions, when the
///   engine finds no operation of them that the path admits (as a pattern,
///   against each operation's request) or that admits it (a plain path,
///   against the operation's templates);
/// * annotation entries that are not `<configmap>/<key>` (`bad`) or name no
///   labelled ConfigMap or key.
pub fn api_findings(
    state: &ClusterState,
    settings: &Settings,
    described: &[AnnotatedWorkload],
    bad: &[BadAnnotation],
) -> Vec<Finding> {
    let desired: Desired = derive(state, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let mut findings: Vec<Finding> = bad
        .iter()
        .map(|b| Finding {
            object: b.object.clone(),
            message: format!(
                "metadata.annotations[{API_ANNOTATION}]: {:?} is not <configmap>/<key>",
                b.entry
            ),
        })
        .collect();
    let enabled: BTreeSet<&str> = desired
        .wasm_plugins
        .iter()
        .filter_map(|p| p.metadata.namespace.as_deref())
        .collect();
    // The operations of each described workload: (namespace, `Kind ns/name`) → operations.
    let mut served: BTreeMap<(String, String), Vec<ApiOperation>> = BTreeMap::new();
    for &ns in &enabled {
        let Some(namespace) = state.namespace(ns) else {
            continue;
        };
        for (kind, name, w) in namespace.templates() {
            let Some(w) = w else { continue };
            let object = format!("{} {ns}/{name}", kind.as_str());
            // Each description, its scope, and the annotated object naming it.
            let mut apis: BTreeMap<DescriptionRef, (Scope, Option<String>)> = BTreeMap::new();
            if let Some(d) = described
                .iter()
                .find(|d| d.namespace == ns && d.kind == kind && d.name == name)
            {
                for (api, by) in &d.apis {
                    apis.insert(api.clone(), (Scope::All, Some(by.clone())));
                }
            }
            for (_, a) in namespace.allowlists() {
                if !a
                    .spec
                    .selector
                    .as_ref()
                    .is_none_or(|s| selects(&s.match_labels, Some(&w.labels)))
                {
                    continue;
                }
                for op in a.spec.rules.iter().flat_map(|r| r.to.iter().flatten()) {
                    let named = match (&op.grpc, &op.openapi) {
                        (Some(g), _) => g
                            .api
                            .as_ref()
                            .map(|api| (api, Scope::Services(BTreeSet::from([g.service.clone()])))),
                        (None, Some(o)) => Some((&o.api, Scope::All)),
                        (None, None) => None,
                    };
                    if let Some((api, scope)) = named {
                        let key = DescriptionRef {
                            config_map: api.config_map.clone(),
                            key: api.key.clone(),
                        };
                        match apis.get_mut(&key) {
                            Some((s, _)) => s.widen(scope),
                            None => {
                                apis.insert(key, (scope, None));
                            }
                        }
                    }
                }
            }
            if apis.is_empty() {
                continue;
            }
            // The allow rules delivered to the workload, callers set aside.
            let policies: Vec<&Policy> = desired
                .wasm_plugins
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && delivered(p, &w.labels))
                .flat_map(|p| &p.spec.plugin_config.policies)
                .filter(|p| p.selector.as_ref().is_none_or(|s| selects(s, Some(&w.labels))))
                .collect();
            let allow: Vec<&&Policy> = policies.iter().filter(|p| p.action == Action::Allow).collect();
            let rules: Vec<Rule> = allow
                .iter()
                .flat_map(|p| &p.rules)
                .filter(|r| !r.from.as_deref().is_some_and(admits_nobody))
                .map(|r| Rule {
                    name: None,
                    from: None,
                    when: None,
                    to: r.to.as_ref().map(|ops| {
                        ops.iter()
                            .map(|o| config::Operation {
                                hosts: None,
                                not_hosts: None,
                                ports: None,
                                not_ports: None,
                                ..o.clone()
                            })
                            .collect()
                    }),
                })
                .collect();
            let mut evaluator = if allow.is_empty() { None } else { probe(rules) };
            let mut all = Vec::new();
            for (api, (scope, by)) in &apis {
                let ops = match operations(state, ns, api, scope) {
                    Ok(ops) => ops,
                    Err(e) => {
                        // An Allowlist naming it is reported invalid already.
                        if let Some(by) = by {
                            findings.push(Finding {
                                object: by.clone(),
                                message: format!("metadata.annotations[{API_ANNOTATION}]: {api}: {e}"),
                            });
                        }
                        continue;
                    }
                };
                if let Some(ev) = evaluator.as_mut() {
                    let unreachable: Vec<String> = ops
                        .iter()
                        .filter(|op| !op.samples.iter().any(|s| admits(ev, &op.method, s, op.grpc)))
                        .map(|op| op.label.clone())
                        .collect();
                    if !unreachable.is_empty() {
                        findings.push(Finding {
                            object: object.clone(),
                            message: format!(
                                "{api}: {} of {} operations unreachable, no rule admits them: {}",
                                unreachable.len(),
                                ops.len(),
                                list(&unreachable)
                            ),
                        });
                    }
                }
                all.extend(ops);
            }
            served.insert((ns.to_string(), object), all);
        }
    }
    // Paths of Allowlists whose workloads are all described.
    for &ns in &enabled {
        let Some(namespace) = state.namespace(ns) else {
            continue;
        };
        for (name, a) in namespace.allowlists() {
            let own = a.spec.selector.as_ref().map(|s| &s.match_labels);
            let selected: Vec<String> = namespace
                .templates()
                .filter_map(|(kind, wname, w)| {
                    let w = w?;
                    own.is_none_or(|sel| selects(sel, Some(&w.labels)))
                        .then(|| format!("{} {ns}/{wname}", kind.as_str()))
                })
                .collect();
            let ops: Option<Vec<&ApiOperation>> = selected
                .iter()
                .map(|o| served.get(&(ns.to_string(), o.clone())))
                .collect::<Option<Vec<_>>>()
                .map(|v| v.into_iter().flatten().collect());
            let (false, Some(ops)) = (selected.is_empty(), ops) else {
                continue;
            };
            let templates = probe(vec![Rule {
                to: Some(vec![config::Operation {
                    paths: Some(ops.iter().flat_map(|o| o.patterns.iter().cloned()).collect()),
                    ..config::Operation::default()
                }]),
                ..Rule::default()
            }]);
            let mut templates = templates;
            for (ri, rule) in a.spec.rules.iter().enumerate() {
                for (oi, op) in rule.to.iter().flatten().enumerate() {
                    if op.grpc.is_some() || op.openapi.is_some() {
                        continue;
                    }
                    for (pi, path) in op.paths.iter().flatten().enumerate() {
                        // The path as a pattern, against each operation's requests.
                        let matched = probe(vec![Rule {
                            to: Some(vec![config::Operation {
                                paths: Some(vec![path.clone()]),
                                ..config::Operation::default()
                            }]),
                            ..Rule::default()
                        }])
                        .is_some_and(|mut ev| {
                            ops.iter()
                                .any(|o| o.samples.iter().any(|s| admits(&mut ev, &o.method, s, false)))
                        });
                        // A plain path, against the operations' templates.
                        let plain = !path.contains(['*', '{']) && !path.starts_with("regex:");
                        let matched =
                            matched || (plain && templates.as_mut().is_some_and(|ev| admits(ev, "GET", path, false)));
                        if !matched {
                            findings.push(Finding {
                                object: format!("Allowlist {ns}/{name}"),
                                message: format!(
                                    "rules[{ri}].to[{oi}].paths[{pi}]: {path} matches no operation of the API descriptions of {}",
                                    selected.join(", ")
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    findings.sort();
    findings.dedup();
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apidesc::openapi::pattern;

    #[test]
    fn samples_are_requests_the_operations_patterns_admit() {
        assert_eq!(sample(&pattern("/api/v3", "/pet/{petId}")), "/api/v3/pet/1");
        assert_eq!(sample(&pattern("", "/store/inventory")), "/store/inventory");
        // Parameters inside a segment, and escaped literals, in a regular expression.
        let p = pattern("/2.0", "/files/{file_id}/thumbnail.{extension}");
        assert!(p.starts_with("regex:"), "{p}");
        assert_eq!(sample(&p), "/2.0/files/1/thumbnail.1");
        assert_eq!(sample(&pattern("", "/v1/{name}:cancel")), "/v1/1:cancel");
        // Each sample is admitted by its own pattern, as the engine judges.
        for p in [p, pattern("/api/v3", "/pet/{petId}"), pattern("", "/v1/{name}:cancel")] {
            let mut ev = probe(vec![Rule {
                to: Some(vec![config::Operation {
                    paths: Some(vec![p.clone()]),
                    ..config::Operation::default()
                }]),
                ..Rule::default()
            }])
            .unwrap();
            assert!(admits(&mut ev, "GET", &sample(&p), false), "{p}");
        }
    }
}
