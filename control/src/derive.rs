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
//!        invalid ─▶ its last valid version (Snapshot::previous), else a fail-closed placeholder
//!   ─▶ WasmPlugin `meshward` per enabled namespace; over Settings::budget_bytes:
//!      `meshward`, `meshward-1`, ... each holding whole groups of policies sharing a workload
//!   ─▶ every WasmPlugin compiled by the engine; rejected ─▶ the previous configs, else fail closed
//! ```
//!
//! Fail closed is the rule throughout: the filter passes requests to a
//! workload no policy applies to, so dropping a policy would silently open its
//! workloads. An Allowlist that cannot be derived is therefore replaced, never
//! left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, PodTemplateSpec, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use meshward_filter::config::{self, PluginConfig, Policy};
use meshward_filter::{ConfigError, Engine, Mode};
use serde::Serialize;

use crate::crd::{Allowlist, AllowlistMode, AllowlistSource, AllowlistStatus, PortName, Resolved, Selector};

/// The namespace label that enables meshward.
pub const ENFORCEMENT_LABEL: &str = "meshward.io/enforcement";
/// The label on every object the control service writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meshward-control");
/// The name of the WasmPlugin in each enabled namespace; when a namespace's
/// configuration is split, the others are `meshward-1`, `meshward-2`, ...
pub const PLUGIN_NAME: &str = "meshward";
/// The filter module's URL when none is given.
pub const DEFAULT_URL: &str = "oci://ghcr.io/meshward/filter:latest";

/// The default of [`Settings::budget_bytes`]: 512 KiB.
pub const DEFAULT_BUDGET_BYTES: usize = 512 * 1024;
/// The largest pluginConfig emitted at all, in bytes of JSON: Kubernetes
/// objects are limited to 1.5 MiB (etcd), minus a margin for the rest of the
/// WasmPlugin and for the writer's encoding.
pub const HARD_LIMIT_BYTES: usize = 1_400_000;

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
    /// The configuration in force: namespace → the `pluginConfig`s of the
    /// WasmPlugins meshward currently owns there (in the order of their names'
    /// index: `meshward`, `meshward-1`, ...). The service fills it from the
    /// cluster; offline rendering leaves it empty. Derivation falls back on it
    /// so that a broken Allowlist or namespace keeps its last valid version in
    /// force instead of opening traffic.
    pub previous: BTreeMap<String, Vec<PluginConfig>>,
    /// Allowlists whose spec the service could not read into the Rust types,
    /// by (namespace, name), with the reason. Their entry in `allowlists`
    /// carries what could be read (selector, mode) and no rule; derivation
    /// treats them as invalid (`InvalidSpec`), so one unreadable object
    /// neither stops the others nor opens its workloads.
    pub unreadable: BTreeMap<(String, String), String>,
}

/// Where the filter module comes from, and how large a WasmPlugin may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The module's URL (`oci://`, `https://`, `file://`).
    pub url: String,
    /// Its sha256, if pinned.
    pub sha256: Option<String>,
    /// The size budget of one WasmPlugin's `pluginConfig`, in bytes of its
    /// compact JSON. A namespace over it is split into several WasmPlugins
    /// (the CLI's default is [`DEFAULT_BUDGET_BYTES`]).
    pub budget_bytes: usize,
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
    /// `selector: {matchLabels}`: the workloads the plugin is delivered to.
    /// Absent (every workload of the namespace) unless the namespace's
    /// configuration is split: then the labels common to the selectors of all
    /// the plugin's policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
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
    /// The WasmPlugins of the enabled namespaces, sorted by namespace, then
    /// name: `meshward` alone while a namespace's configuration fits
    /// [`Settings::budget_bytes`], else `meshward`, `meshward-1`, ... Every
    /// pluginConfig compiles with the filter's engine.
    pub wasm_plugins: Vec<WasmPlugin>,
    /// One status per Allowlist, sorted by namespace, then name: in an
    /// enabled namespace with the conditions `Ready` and `WithinBudget`;
    /// elsewhere `Ready=False`, reason `NamespaceNotEnabled` (nothing enforces
    /// it, and a status left from when the namespace was enabled must not
    /// keep saying Ready).
    pub statuses: Vec<StatusUpdate>,
}

/// Why an Allowlist could not be derived as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invalid {
    reason: &'static str,
    message: String,
}

/// One Allowlist of an enabled namespace and the policy that stands for it.
struct Entry<'a> {
    name: &'a str,
    generation: Option<i64>,
    resolved: Resolved,
    /// Set when `policy` is its last valid version or a placeholder.
    invalid: Option<Invalid>,
    policy: Policy,
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

fn condition(type_: &str, ok: bool, reason: &str, message: String, generation: Option<i64>, now: &Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
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

    let mut entries: BTreeMap<&str, Vec<Entry<'_>>> = enabled.keys().map(|ns| (*ns, Vec::new())).collect();
    for a in allowlists {
        let (Some(ns), Some(name)) = (a.metadata.namespace.as_deref(), a.metadata.name.as_deref()) else {
            continue;
        };
        let audit = enabled.get(ns).copied().unwrap_or(false);
        let (result, resolved) = to_policy(a, ns, name, audit, snapshot, &index);
        let (policy, invalid) = match result {
            Ok(policy) => (policy, None),
            Err(invalid) => stand_in(a, ns, name, audit, snapshot.previous.get(ns), invalid),
        };
        if let Some(list) = entries.get_mut(ns) {
            list.push(Entry {
                name,
                generation: a.metadata.generation,
                resolved,
                invalid,
                policy,
            });
        }
    }

    let mut desired = Desired::default();
    for (ns, entries) in entries {
        let audit = enabled.get(ns).copied().unwrap_or(false);
        let labels: BTreeSet<&BTreeMap<String, String>> = index
            .in_namespace(ns)
            .iter()
            .map(|w| w.labels.unwrap_or(&NO_LABELS))
            .collect();
        let out = namespace_configs(
            &entries,
            &labels,
            snapshot.previous.get(ns),
            audit,
            settings.budget_bytes,
        );
        for (i, entry) in entries.iter().enumerate() {
            let plugin = out.placement.get(i).copied().flatten().map(plugin_name);
            let ready = match (&out.rejected, &entry.invalid) {
                (Some(rejected), invalid) => {
                    let mut message = rejected.clone();
                    if let Some(invalid) = invalid {
                        message.push_str(&format!("; this Allowlist is also invalid: {}", invalid.message));
                    }
                    condition(
                        "Ready",
                        false,
                        "NamespaceConfigRejected",
                        message,
                        entry.generation,
                        &now,
                    )
                }
                (None, Some(invalid)) => condition(
                    "Ready",
                    false,
                    invalid.reason,
                    invalid.message.clone(),
                    entry.generation,
                    &now,
                ),
                (None, None) => condition(
                    "Ready",
                    true,
                    "Derived",
                    format!("part of WasmPlugin {}", plugin.as_deref().unwrap_or(PLUGIN_NAME)),
                    entry.generation,
                    &now,
                ),
            };
            let budget = settings.budget_bytes;
            let within = match out.oversize.get(i).copied().flatten() {
                Some(size) => condition(
                    "WithinBudget",
                    false,
                    "OverBudget",
                    format!(
                        "with the Allowlists that share its workloads it serializes to {size} bytes, over the budget \
                         of {budget} bytes, and cannot be split; emitted whole up to {HARD_LIMIT_BYTES} bytes"
                    ),
                    entry.generation,
                    &now,
                ),
                None => condition(
                    "WithinBudget",
                    true,
                    "WithinBudget",
                    format!("within the budget of {budget} bytes"),
                    entry.generation,
                    &now,
                ),
            };
            desired.statuses.push(StatusUpdate {
                namespace: ns.into(),
                name: entry.name.into(),
                status: AllowlistStatus {
                    observed_generation: entry.generation,
                    conditions: vec![ready, within],
                    resolved: Some(entry.resolved),
                },
            });
        }
        let split = out.configs.len() > 1;
        for (i, plugin_config) in out.configs.into_iter().enumerate() {
            let labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
            let selector = if split {
                common_labels(&plugin_config.policies)
            } else {
                None
            };
            desired.wasm_plugins.push(WasmPlugin {
                api_version: "extensions.istio.io/v1alpha1",
                kind: "WasmPlugin",
                metadata: ObjectMeta {
                    name: Some(plugin_name(i)),
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
                    selector: selector.map(|match_labels| Selector { match_labels }),
                    plugin_config,
                },
            });
        }
    }
    for a in &snapshot.allowlists {
        let (Some(ns), Some(name)) = (a.metadata.namespace.as_deref(), a.metadata.name.as_deref()) else {
            continue;
        };
        if enabled.contains_key(ns) {
            continue;
        }
        let message = format!(
            "namespace {ns} is not labelled {ENFORCEMENT_LABEL}=enabled or audit; nothing enforces this Allowlist"
        );
        let generation = a.metadata.generation;
        desired.statuses.push(StatusUpdate {
            namespace: ns.into(),
            name: name.into(),
            status: AllowlistStatus {
                observed_generation: generation,
                conditions: vec![condition(
                    "Ready",
                    false,
                    "NamespaceNotEnabled",
                    message,
                    generation,
                    &now,
                )],
                resolved: None,
            },
        });
    }
    desired
        .statuses
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    desired
        .wasm_plugins
        .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    desired
}

/// The labels of a workload without labels.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The name of a namespace's WasmPlugin number `i`: `meshward`, `meshward-1`, ...
fn plugin_name(i: usize) -> String {
    if i == 0 {
        PLUGIN_NAME.into()
    } else {
        format!("{PLUGIN_NAME}-{i}")
    }
}

/// The labels (same key and value) common to the selectors of all
/// `policies`; `None` when that is none, so the plugin reaches every workload.
fn common_labels(policies: &[Policy]) -> Option<BTreeMap<String, String>> {
    let mut iter = policies.iter();
    let mut common = iter.next()?.selector.clone().unwrap_or_default();
    for p in iter {
        let selector = p.selector.as_ref();
        common.retain(|k, v| selector.and_then(|s| s.get(k)) == Some(v));
    }
    (!common.is_empty()).then_some(common)
}

/// What stands in for an invalid Allowlist: its last valid version if one is
/// in force (`previous`), else a placeholder with its selector and mode and no
/// rule, which admits nobody. Never nothing: the filter passes requests to a
/// workload no policy applies to, so leaving the Allowlist out would open its
/// workloads.
fn stand_in(
    a: &Allowlist,
    ns: &str,
    name: &str,
    audit: bool,
    previous: Option<&Vec<PluginConfig>>,
    mut invalid: Invalid,
) -> (Policy, Option<Invalid>) {
    let policy_name = format!("{ns}/{name}");
    let last = previous
        .into_iter()
        .flatten()
        .flat_map(|c| c.policies.iter().map(move |p| (c.mode, p)))
        // A policy without rule is no valid version to keep: it may be an
        // earlier placeholder, and admits nobody like the one made here.
        .find(|(_, p)| p.name == policy_name && !p.rules.is_empty());
    let policy = match last {
        Some((top_mode, p)) => {
            invalid.message.push_str("; the last valid version stays in force");
            let mut p = p.clone();
            // The mode it had under its old configuration, unless the
            // namespace is now in audit.
            if audit {
                p.mode = Some(Mode::Audit);
            } else if p.mode.is_none() && !top_mode.is_enforce() {
                p.mode = Some(top_mode);
            }
            p
        }
        None => {
            invalid
                .message
                .push_str("; its workloads deny every request until it is fixed");
            Policy {
                name: policy_name,
                selector: a.spec.selector.as_ref().map(|s| s.match_labels.clone()),
                mode: policy_mode(a, audit),
                rules: Vec::new(),
            }
        }
    };
    (policy, Some(invalid))
}

/// A placeholder for `p`: same name, selector and mode, no rule.
fn placeholder(p: &Policy) -> Policy {
    Policy {
        name: p.name.clone(),
        selector: p.selector.clone(),
        mode: p.mode,
        rules: Vec::new(),
    }
}

/// The mode of an Allowlist's policy: audit in an audit namespace, else its own.
fn policy_mode(a: &Allowlist, audit: bool) -> Option<Mode> {
    if audit {
        Some(Mode::Audit)
    } else {
        a.spec.mode.map(|m| match m {
            AllowlistMode::Enforce => Mode::Enforce,
            AllowlistMode::Audit => Mode::Audit,
        })
    }
}

/// A namespace's WasmPlugin configurations and where each Allowlist went.
struct NamespaceConfigs {
    /// The pluginConfigs, WasmPlugin `i` named [`plugin_name`]`(i)`.
    configs: Vec<PluginConfig>,
    /// Per entry: the WasmPlugin holding its policy (`None` when rejected).
    placement: Vec<Option<usize>>,
    /// Per entry: the size of its group when over the budget.
    oversize: Vec<Option<usize>>,
    /// Why the derived configuration was rejected, and what is in force instead.
    rejected: Option<String>,
}

/// Packs a namespace's policies into WasmPlugins within `budget` and checks
/// every one with the engine. If one is rejected (too large to emit, or over
/// the engine's limits together), the namespace's `previous` configurations
/// stay in force; without any, every Allowlist becomes a placeholder that
/// admits nobody.
fn namespace_configs(
    entries: &[Entry<'_>],
    workloads: &BTreeSet<&BTreeMap<String, String>>,
    previous: Option<&Vec<PluginConfig>>,
    audit: bool,
    budget: usize,
) -> NamespaceConfigs {
    let policies: Vec<&Policy> = entries.iter().map(|e| &e.policy).collect();
    let packing = pack(&policies, workloads, budget);
    let mut placement = vec![None; entries.len()];
    let mut configs = Vec::with_capacity(packing.bins.len());
    for (bi, bin) in packing.bins.iter().enumerate() {
        for &i in bin {
            if let Some(slot) = placement.get_mut(i) {
                *slot = Some(bi);
            }
        }
        configs.push(PluginConfig {
            policies: bin
                .iter()
                .filter_map(|&i| policies.get(i).map(|p| (*p).clone()))
                .collect(),
            ..PluginConfig::default()
        });
    }
    let Err(problem) = check_configs(&configs) else {
        return NamespaceConfigs {
            configs,
            placement,
            oversize: packing.oversize,
            rejected: None,
        };
    };
    // Fail closed: what is in force stays, else nobody is admitted.
    let (configs, instead) = match previous.filter(|p| !p.is_empty() && check_configs(p).is_ok()) {
        Some(previous) => (previous.clone(), "the namespace's last valid WasmPlugins stay in force"),
        None => (
            fail_closed(&policies, workloads, audit, budget),
            "its workloads deny every request until it is fixed",
        ),
    };
    NamespaceConfigs {
        configs,
        placement: vec![None; entries.len()],
        oversize: packing.oversize,
        rejected: Some(format!("{problem}; {instead}")),
    }
}

/// Placeholders for every policy (same name, selector and mode, no rule),
/// packed like the policies. If even they are rejected (a name the engine
/// refuses), one policy without selector and without rule: the whole
/// namespace denies every request.
fn fail_closed(
    policies: &[&Policy],
    workloads: &BTreeSet<&BTreeMap<String, String>>,
    audit: bool,
    budget: usize,
) -> Vec<PluginConfig> {
    let placeholders: Vec<Policy> = policies.iter().map(|p| placeholder(p)).collect();
    let refs: Vec<&Policy> = placeholders.iter().collect();
    let configs: Vec<PluginConfig> = pack(&refs, workloads, budget)
        .bins
        .iter()
        .map(|bin| PluginConfig {
            policies: bin.iter().filter_map(|&i| placeholders.get(i).cloned()).collect(),
            ..PluginConfig::default()
        })
        .collect();
    if check_configs(&configs).is_ok() {
        return configs;
    }
    vec![PluginConfig {
        policies: vec![Policy {
            name: "meshward:fail-closed".into(),
            selector: None,
            mode: audit.then_some(Mode::Audit),
            rules: Vec::new(),
        }],
        ..PluginConfig::default()
    }]
}

/// Checks that every configuration can be emitted and that the engine
/// accepts it; the error names the WasmPlugin.
fn check_configs(configs: &[PluginConfig]) -> Result<(), String> {
    for (i, config) in configs.iter().enumerate() {
        let name = plugin_name(i);
        let size = serde_json::to_vec(config).map_or(usize::MAX, |v| v.len());
        if size > HARD_LIMIT_BYTES {
            return Err(format!(
                "WasmPlugin {name}: its pluginConfig would be {size} bytes, over the limit of {HARD_LIMIT_BYTES}"
            ));
        }
        Engine::compile(config).map_err(|e| format!("WasmPlugin {name}: the engine rejects its pluginConfig: {e}"))?;
    }
    Ok(())
}

/// The representative of `i`'s set in a union-find forest, halving paths.
fn root(parent: &mut [usize], mut i: usize) -> usize {
    while let Some(&p) = parent.get(i) {
        if p == i {
            break;
        }
        let grand = parent.get(p).copied().unwrap_or(p);
        if let Some(slot) = parent.get_mut(i) {
            *slot = grand;
        }
        i = grand;
    }
    i
}

/// Policies packed into WasmPlugins.
struct Packing {
    /// Per WasmPlugin, the indices of its policies, ascending.
    bins: Vec<Vec<usize>>,
    /// Per policy: the size of its group when the group alone exceeds the budget.
    oversize: Vec<Option<usize>>,
}

/// The size of `{"policies":[]}`, the JSON of a configuration without policy.
const EMPTY_CONFIG_BYTES: usize = 15;

/// Packs `policies` into as few pluginConfigs of at most `budget` bytes as
/// first-fit decreasing finds, keeping together the policies that apply to a
/// common workload (`workloads`: the label sets of the namespace's pods and pod
/// templates): the filter admits a request if any applicable policy of one
/// configuration admits it, while two WasmPlugins on one workload must both
/// admit it. A workload that appears later and is selected by policies of two
/// WasmPlugins gets that intersection: stricter, never looser. Everything in
/// one configuration when it fits.
fn pack(policies: &[&Policy], workloads: &BTreeSet<&BTreeMap<String, String>>, budget: usize) -> Packing {
    let sizes: Vec<usize> = policies
        .iter()
        .map(|p| serde_json::to_vec(p).map_or(usize::MAX / 4, |v| v.len()))
        .collect();
    // The exact size of `{"policies":[...]}` holding `n` policies of `bytes` in all.
    let config_size = |bytes: usize, n: usize| {
        EMPTY_CONFIG_BYTES
            .saturating_add(bytes)
            .saturating_add(n.saturating_sub(1))
    };
    let total = config_size(sizes.iter().fold(0usize, |a, s| a.saturating_add(*s)), sizes.len());
    let mut oversize = vec![None; policies.len()];
    if total <= budget || policies.is_empty() {
        return Packing {
            bins: vec![(0..policies.len()).collect()],
            oversize,
        };
    }
    // Union-find over the policies applying to each workload.
    let mut parent: Vec<usize> = (0..policies.len()).collect();
    for labels in workloads {
        let mut first = None;
        for (i, p) in policies.iter().enumerate() {
            if p.selector.as_ref().is_none_or(|s| selects(s, Some(labels))) {
                match first {
                    None => first = Some(i),
                    Some(f) => {
                        let (a, b) = (root(&mut parent, f), root(&mut parent, i));
                        if let Some(slot) = parent.get_mut(a.max(b)) {
                            *slot = a.min(b);
                        }
                    }
                }
            }
        }
    }
    // Per group: its policies' bytes and indices.
    let mut groups: BTreeMap<usize, (usize, Vec<usize>)> = BTreeMap::new();
    for (i, size) in sizes.iter().enumerate() {
        let r = root(&mut parent, i);
        let g = groups.entry(r).or_default();
        g.0 = g.0.saturating_add(*size);
        g.1.push(i);
    }
    let mut groups: Vec<(usize, Vec<usize>)> = groups.into_values().collect();
    // Decreasing size; equal sizes by their first policy's index (name).
    groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    // Per bin: its policies' bytes, whether it is closed, its policies.
    let mut bins: Vec<(usize, bool, Vec<usize>)> = Vec::new();
    for (bytes, members) in groups {
        let alone = config_size(bytes, members.len());
        if alone > budget {
            // Cannot be split: emitted whole, alone.
            for &i in &members {
                if let Some(slot) = oversize.get_mut(i) {
                    *slot = Some(alone);
                }
            }
            bins.push((bytes, true, members));
            continue;
        }
        let fits = |(used, closed, list): &&mut (usize, bool, Vec<usize>)| {
            !*closed && config_size(used.saturating_add(bytes), list.len() + members.len()) <= budget
        };
        match bins.iter_mut().find(fits) {
            Some((used, _, list)) => {
                *used = used.saturating_add(bytes);
                list.extend(members);
            }
            None => bins.push((bytes, false, members)),
        }
    }
    Packing {
        bins: bins
            .into_iter()
            .map(|(_, _, mut list)| {
                list.sort_unstable();
                list
            })
            .collect(),
        oversize,
    }
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
    if let Some(e) = s.unreadable.get(&(ns.to_string(), name.to_string())) {
        let invalid = Invalid {
            reason: "InvalidSpec",
            message: format!("spec: {e}"),
        };
        return (Err(invalid), resolved);
    }
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
    let mode = policy_mode(a, audit);
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
