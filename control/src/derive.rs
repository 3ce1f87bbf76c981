//! Derivation: a cluster snapshot in, desired WasmPlugins and Allowlist
//! statuses out. Pure and deterministic: the same snapshot always yields
//! byte-identical objects, so the writer can skip unchanged ones (every
//! pluginConfig change reloads the wasm VM in every sidecar).
//!
//! ```text
//! Namespace (meshward.io/enforcement: enabled|audit)
//!   └─ Allowlists ──resolve──▶ policies ──validate (the filter's engine)──▶ v1alpha1 config
//!        workloads ─▶ pods / pod templates ─▶ service accounts ─▶ principals
//!        serviceAccounts ns/name ─▶ principals
//!        servicePorts ─▶ Service ─▶ targetPort (named: via the pods' containers)
//!   ─▶ one WasmPlugin `meshward` per enabled namespace
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, PodTemplateSpec, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use meshward_filter::config::{self, PluginConfig, Policy};
use meshward_filter::{ConfigError, Engine, Mode};
use serde::Serialize;

use crate::crd::{Allowlist, AllowlistMode, AllowlistSource, AllowlistStatus, PortName, Resolved};

/// The namespace label that enables meshward.
pub const ENFORCEMENT_LABEL: &str = "meshward.io/enforcement";
/// The label on every object the control service writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meshward-control");
/// The name of the WasmPlugin in each enabled namespace.
pub const PLUGIN_NAME: &str = "meshward";

/// Everything derivation reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The mesh's trust domain (principals are `<td>/ns/<ns>/sa/<sa>`).
    pub trust_domain: String,
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Deployments (their pod templates).
    pub deployments: Vec<Deployment>,
    /// StatefulSets (their pod templates).
    pub stateful_sets: Vec<StatefulSet>,
    /// DaemonSets (their pod templates).
    pub daemon_sets: Vec<DaemonSet>,
    /// ServiceAccounts.
    pub service_accounts: Vec<ServiceAccount>,
    /// Services.
    pub services: Vec<Service>,
    /// Allowlists.
    pub allowlists: Vec<Allowlist>,
}

/// Where the filter module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The module's URL (`oci://`, `https://`, `file://`).
    pub url: String,
    /// Its sha256, if pinned.
    pub sha256: Option<String>,
}

/// An Istio `WasmPlugin` (`extensions.istio.io/v1alpha1`), the fields meshward sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    /// `extensions.istio.io/v1alpha1`.
    pub api_version: &'static str,
    /// `WasmPlugin`.
    pub kind: &'static str,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: WasmPluginSpec,
}

/// The spec of a [`WasmPlugin`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    /// Module URL.
    pub url: String,
    /// Module digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Root id: `meshward`.
    pub plugin_name: &'static str,
    /// `AUTHZ`.
    pub phase: &'static str,
    /// `[{mode: SERVER}]`: inbound only.
    #[serde(rename = "match")]
    pub match_: Vec<TrafficSelector>,
    /// `FAIL_CLOSE`.
    pub fail_strategy: &'static str,
    /// The v1alpha1 plugin configuration.
    pub plugin_config: PluginConfig,
}

/// A WasmPlugin traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficSelector {
    /// `SERVER`.
    pub mode: &'static str,
}

/// A status to write to an Allowlist.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The Allowlist's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The status.
    pub status: AllowlistStatus,
}

/// What the cluster should contain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Desired {
    /// One WasmPlugin per enabled namespace, sorted by namespace.
    pub wasm_plugins: Vec<WasmPlugin>,
    /// One status per Allowlist in an enabled namespace, sorted.
    pub statuses: Vec<StatusUpdate>,
}

/// Why an Allowlist is not part of its namespace's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invalid {
    reason: &'static str,
    message: String,
}

/// A pod or pod template: its namespace, labels and service account.
struct Workload<'a> {
    namespace: &'a str,
    labels: Option<&'a BTreeMap<String, String>>,
    spec: Option<&'a PodSpec>,
}

impl Workload<'_> {
    fn service_account(&self) -> &str {
        self.spec
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }

    fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selects(selector, self.labels)
    }
}

/// Whether `matchLabels` selects an object with `labels`: every selector
/// label present with the same value (an empty selector selects everything).
pub fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Workloads and Services by namespace, so each selector scans only its
/// namespace.
struct Index<'a> {
    workloads: HashMap<&'a str, Vec<Workload<'a>>>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
}

impl<'a> Index<'a> {
    fn new(s: &'a Snapshot) -> Self {
        let mut workloads: HashMap<&str, Vec<Workload<'_>>> = HashMap::new();
        for w in all_workloads(s) {
            workloads.entry(w.namespace).or_default().push(w);
        }
        let services = s
            .services
            .iter()
            .filter_map(|svc| Some(((svc.metadata.namespace.as_deref()?, svc.metadata.name.as_deref()?), svc)))
            .collect();
        Self { workloads, services }
    }

    fn in_namespace(&self, ns: &str) -> &[Workload<'a>] {
        self.workloads.get(ns).map_or(&[], Vec::as_slice)
    }
}

/// Every pod template of the snapshot's Deployments, StatefulSets and
/// DaemonSets, with the owner's kind and metadata.
pub fn pod_templates(s: &Snapshot) -> impl Iterator<Item = (&'static str, &ObjectMeta, Option<&PodTemplateSpec>)> + '_ {
    let deployments = s
        .deployments
        .iter()
        .map(|d| ("Deployment", &d.metadata, d.spec.as_ref().map(|s| &s.template)));
    let stateful_sets = s
        .stateful_sets
        .iter()
        .map(|d| ("StatefulSet", &d.metadata, d.spec.as_ref().map(|s| &s.template)));
    let daemon_sets = s
        .daemon_sets
        .iter()
        .map(|d| ("DaemonSet", &d.metadata, d.spec.as_ref().map(|s| &s.template)));
    deployments.chain(stateful_sets).chain(daemon_sets)
}

fn all_workloads(s: &Snapshot) -> Vec<Workload<'_>> {
    let mut out = Vec::new();
    for p in &s.pods {
        out.push(Workload {
            namespace: p.metadata.namespace.as_deref().unwrap_or("default"),
            labels: p.metadata.labels.as_ref(),
            spec: p.spec.as_ref(),
        });
    }
    let templates = pod_templates(s).map(|(_, meta, template)| (meta, template));
    for (meta, template) in templates {
        let Some(t) = template else { continue };
        out.push(Workload {
            namespace: meta.namespace.as_deref().unwrap_or("default"),
            labels: t.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            spec: t.spec.as_ref(),
        });
    }
    out
}

fn ready(generation: Option<i64>, invalid: Option<&Invalid>, now: &Time) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if invalid.is_some() { "False" } else { "True" }.into(),
        reason: invalid.map_or("Derived", |i| i.reason).into(),
        message: invalid.map_or_else(
            || "part of the namespace's WasmPlugin".to_string(),
            |i| i.message.clone(),
        ),
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// Derives the desired objects. `now` stamps status conditions (the writer
/// keeps an existing condition's time when its status did not change).
pub fn derive(snapshot: &Snapshot, settings: &Settings, now: Timestamp) -> Desired {
    let now = Time(now);
    let index = Index::new(snapshot);
    let mut enabled: BTreeMap<&str, bool> = BTreeMap::new(); // namespace → audit
    for ns in &snapshot.namespaces {
        let label = ns.metadata.labels.as_ref().and_then(|l| l.get(ENFORCEMENT_LABEL));
        if let (Some(name), Some(label)) = (ns.metadata.name.as_deref(), label) {
            match label.as_str() {
                "enabled" => enabled.insert(name, false),
                "audit" => enabled.insert(name, true),
                _ => None,
            };
        }
    }
    let mut allowlists: Vec<&Allowlist> = snapshot
        .allowlists
        .iter()
        .filter(|a| a.metadata.namespace.as_deref().is_some_and(|n| enabled.contains_key(n)))
        .collect();
    allowlists
        .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));

    let mut desired = Desired::default();
    let mut policies: BTreeMap<&str, Vec<Policy>> = enabled.keys().map(|ns| (*ns, Vec::new())).collect();
    for a in allowlists {
        let (Some(ns), Some(name)) = (a.metadata.namespace.as_deref(), a.metadata.name.as_deref()) else {
            continue;
        };
        let audit = enabled.get(ns).copied().unwrap_or(false);
        let (result, resolved) = to_policy(a, ns, name, audit, snapshot, &index);
        let invalid = result.as_ref().err().cloned();
        desired.statuses.push(StatusUpdate {
            namespace: ns.into(),
            name: name.into(),
            status: AllowlistStatus {
                observed_generation: a.metadata.generation,
                conditions: vec![ready(a.metadata.generation, invalid.as_ref(), &now)],
                resolved: Some(resolved),
            },
        });
        if let (Ok(policy), Some(list)) = (result, policies.get_mut(ns)) {
            list.push(policy);
        }
    }
    for (ns, policies) in policies {
        let labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
        desired.wasm_plugins.push(WasmPlugin {
            api_version: "extensions.istio.io/v1alpha1",
            kind: "WasmPlugin",
            metadata: ObjectMeta {
                name: Some(PLUGIN_NAME.into()),
                namespace: Some(ns.into()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            spec: WasmPluginSpec {
                url: settings.url.clone(),
                sha256: settings.sha256.clone(),
                plugin_name: "meshward",
                phase: "AUTHZ",
                match_: vec![TrafficSelector { mode: "SERVER" }],
                fail_strategy: "FAIL_CLOSE",
                plugin_config: PluginConfig {
                    policies,
                    ..PluginConfig::default()
                },
            },
        });
    }
    desired
}

/// Converts one Allowlist into a policy of the plugin configuration, resolving
/// its references, and validates it with the filter's own engine.
fn to_policy(
    a: &Allowlist,
    ns: &str,
    name: &str,
    audit: bool,
    s: &Snapshot,
    index: &Index<'_>,
) -> (Result<Policy, Invalid>, Resolved) {
    let mut resolved = Resolved::default();
    let mut principals_seen = BTreeSet::new();
    let mut rules = Vec::with_capacity(a.spec.rules.len());
    for (ri, rule) in a.spec.rules.iter().enumerate() {
        let from = match &rule.from {
            None => None,
            Some(sources) => {
                let mut out = Vec::with_capacity(sources.len());
                for (si, src) in sources.iter().enumerate() {
                    let field = format!("rules[{ri}].from[{si}]");
                    match to_source(src, ns, s, index, &field, &mut resolved) {
                        Ok(source) => {
                            principals_seen.extend(source.principals.iter().flatten().cloned());
                            out.push(source);
                        }
                        Err(e) => return (Err(e), resolved),
                    }
                }
                Some(out)
            }
        };
        let to = match &rule.to {
            None => None,
            Some(ops) => {
                let mut out = Vec::with_capacity(ops.len());
                for (oi, op) in ops.iter().enumerate() {
                    let mut ports: Option<Vec<u16>> = op.ports.clone();
                    if let Some(refs) = &op.service_ports {
                        let list = ports.get_or_insert_with(Vec::new);
                        for (pi, r) in refs.iter().enumerate() {
                            match resolve_service_port(index, ns, &r.service, &r.port) {
                                Some(found) => list.extend(found),
                                None => {
                                    let field = format!("rules[{ri}].to[{oi}].servicePorts[{pi}]");
                                    let message =
                                        format!("{field}: no port {:?} on Service {ns}/{}", r.port, r.service);
                                    return (
                                        Err(Invalid {
                                            reason: "UnresolvedServicePort",
                                            message,
                                        }),
                                        resolved,
                                    );
                                }
                            }
                        }
                        list.sort_unstable();
                        list.dedup();
                    }
                    out.push(config::Operation {
                        methods: op.methods.clone(),
                        paths: op.paths.clone(),
                        not_paths: op.not_paths.clone(),
                        hosts: op.hosts.clone(),
                        not_hosts: op.not_hosts.clone(),
                        ports,
                    });
                }
                Some(out)
            }
        };
        rules.push(config::Rule {
            name: rule.name.clone(),
            from,
            to,
            when: rule.when.as_ref().map(|w| {
                w.iter()
                    .map(|c| config::Condition {
                        header: c.header.clone(),
                        values: c.values.clone(),
                        not_values: c.not_values.clone(),
                    })
                    .collect()
            }),
        });
    }
    resolved.principals = principals_seen.len() as u32;
    let mode = if audit {
        Some(Mode::Audit)
    } else {
        a.spec.mode.map(|m| match m {
            AllowlistMode::Enforce => Mode::Enforce,
            AllowlistMode::Audit => Mode::Audit,
        })
    };
    let policy = Policy {
        name: format!("{ns}/{name}"),
        selector: a.spec.selector.as_ref().map(|s| s.match_labels.clone()),
        mode,
        rules,
    };
    // The filter's engine is the judge of validity: what it accepts here, the
    // sidecars accept.
    let single = PluginConfig {
        policies: vec![policy.clone()],
        ..PluginConfig::default()
    };
    match Engine::compile(&single) {
        Ok(_) => (Ok(policy), resolved),
        Err(e) => (Err(invalid_from(&e)), resolved),
    }
}

/// Maps an engine error to a status reason, with the field path relative to
/// the Allowlist's spec (`rules[0].to[0].paths[1]: ...`).
fn invalid_from(e: &ConfigError) -> Invalid {
    let message = e.to_string().replacen("policies[0].", "", 1);
    let field = message.split(':').next().unwrap_or_default();
    let last = field.rsplit('.').next().unwrap_or_default();
    let last = last.split('[').next().unwrap_or_default();
    let reason = match last {
        "paths" | "notPaths" => "InvalidPath",
        "hosts" | "notHosts" => "InvalidHost",
        "methods" => "InvalidMethod",
        "principals" | "notPrincipals" | "namespaces" | "notNamespaces" => "InvalidSource",
        "header" | "values" | "notValues" => "InvalidHeader",
        "name" => "InvalidName",
        "ports" => "InvalidPort",
        _ => "Invalid",
    };
    Invalid { reason, message }
}

fn to_source(
    src: &AllowlistSource,
    own_ns: &str,
    s: &Snapshot,
    index: &Index<'_>,
    field: &str,
    resolved: &mut Resolved,
) -> Result<config::Source, Invalid> {
    let named = [
        src.workloads.is_some(),
        src.service_accounts.is_some(),
        src.principals.is_some(),
    ];
    if named.iter().filter(|b| **b).count() > 1 {
        return Err(Invalid {
            reason: "InvalidSource",
            message: format!("{field}: set only one of workloads, serviceAccounts, principals per entry"),
        });
    }
    let td = &s.trust_domain;
    let principal = |ns: &str, sa: &str| format!("{td}/ns/{ns}/sa/{sa}");
    let principals = if let Some(w) = &src.workloads {
        let ns = w.namespace.as_deref().unwrap_or(own_ns);
        let matched: Vec<&Workload<'_>> = index
            .in_namespace(ns)
            .iter()
            .filter(|wl| wl.selected_by(&w.selector.match_labels))
            .collect();
        resolved.workloads += matched.len() as u32;
        let set: BTreeSet<String> = matched.iter().map(|wl| principal(ns, wl.service_account())).collect();
        // A selector that matches nothing yields an empty list: nobody.
        Some(set.into_iter().collect())
    } else if let Some(sas) = &src.service_accounts {
        let mut out = Vec::with_capacity(sas.len());
        for (i, sa) in sas.iter().enumerate() {
            match sa.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    out.push(principal(ns, name))
                }
                _ => {
                    return Err(Invalid {
                        reason: "InvalidServiceAccount",
                        message: format!("{field}.serviceAccounts[{i}]: {sa:?} is not namespace/name"),
                    })
                }
            }
        }
        Some(out)
    } else {
        src.principals.clone()
    };
    Ok(config::Source {
        principals,
        not_principals: src.not_principals.clone(),
        namespaces: src.namespaces.clone(),
        not_namespaces: src.not_namespaces.clone(),
    })
}

/// The container ports a Service port sends traffic to. `None` when the
/// Service or the port does not exist, or a named target port is found on no
/// selected pod.
fn resolve_service_port(index: &Index<'_>, ns: &str, service: &str, port: &PortName) -> Option<Vec<u16>> {
    let svc = index.services.get(&(ns, service))?;
    let spec = svc.spec.as_ref()?;
    let sp = spec.ports.as_ref()?.iter().find(|p| match port {
        PortName::Number(n) => p.port == i32::from(*n),
        PortName::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })?;
    match &sp.target_port {
        None => u16::try_from(sp.port).ok().map(|p| vec![p]),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok().map(|p| vec![p]),
        Some(IntOrString::String(name)) => {
            let selector = spec.selector.clone().unwrap_or_default();
            let found: BTreeSet<u16> = index
                .in_namespace(ns)
                .iter()
                .filter(|w| !selector.is_empty() && w.selected_by(&selector))
                .flat_map(|w| w.spec.map(|s| s.containers.iter()).into_iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .filter(|p| p.name.as_deref() == Some(name.as_str()))
                .filter_map(|p| u16::try_from(p.container_port).ok())
                .collect();
            (!found.is_empty()).then(|| found.into_iter().collect())
        }
    }
}
