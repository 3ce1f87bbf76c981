//! Derivation: a cluster snapshot in, desired WasmPlugins and Allowlist
//! statuses out. Pure and deterministic: the same snapshot always yields
//! byte-identical objects, so the writer can skip unchanged ones (every
//! pluginConfig change reloads the wasm VM in every sidecar).
//!
//! ```text
//! Namespace (meshward.io/enforcement: enabled|audit)
//!   └─ Allowlists ──translate──▶ policies ──validate (the filter's engine)──▶ v1alpha1 config
//!        workloads ─▶ pods / pod templates ─▶ service accounts ─▶ principals   (workloads.rs)
//!        serviceAccounts ns/name ─▶ principals                                 (translate.rs)
//!        servicePorts ─▶ Service ─▶ targetPort (named: via the pods' containers)
//!        invalid ─▶ its last valid version (Snapshot::previous), else a fail-closed placeholder
//!                                                                               (fallback.rs)
//!   ─▶ WasmPlugin `meshward` per enabled namespace; over Settings::budget_bytes:
//!      `meshward`, `meshward-1`, ... each holding whole groups of policies sharing a workload
//!                                                                               (pack.rs, plugin.rs)
//!   ─▶ every WasmPlugin compiled by the engine; rejected ─▶ the previous configs, else fail closed
//!   ─▶ a status per Allowlist: Ready, WithinBudget                              (status.rs)
//! ```
//!
//! Fail closed is the rule throughout: the filter passes requests to a
//! workload no policy applies to, so dropping a policy would silently open its
//! workloads. An Allowlist that cannot be derived is therefore replaced, never
//! left out.

mod fallback;
mod pack;
mod plugin;
mod status;
mod translate;
mod workloads;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use meshward_filter::config::{PluginConfig, Policy};

pub use plugin::{
    PluginName, TrafficSelector, WasmPlugin, WasmPluginSpec, MANAGED_BY, PLUGIN_NAME, ROOT_ID, WASM_PLUGIN_API_VERSION,
};
pub use status::{
    REASON_DERIVED, REASON_NAMESPACE_CONFIG_REJECTED, REASON_NAMESPACE_NOT_ENABLED, REASON_OVER_BUDGET,
    REASON_WITHIN_BUDGET,
};
pub use translate::{Invalid, InvalidReason};
pub use workloads::{pod_templates, selects, DEFAULT_SERVICE_ACCOUNT};

use crate::crd::{Allowlist, AllowlistStatus, Resolved};
use fallback::{namespace_configs, stand_in};
use pack::common_labels;
use translate::Translator;
use workloads::Index;

/// The namespace label that enables meshward.
pub const ENFORCEMENT_LABEL: &str = "meshward.io/enforcement";
/// The mesh's trust domain when none is given (Istio's default).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
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

/// How meshward treats a namespace, from its [`ENFORCEMENT_LABEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// `enabled`: each Allowlist in its own mode.
    Enabled,
    /// `audit`: every Allowlist in audit mode.
    Audit,
}

impl Enforcement {
    /// The enforcement a label value asks for; `None` for any other value.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "enabled" => Some(Self::Enabled),
            "audit" => Some(Self::Audit),
            _ => None,
        }
    }
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

/// The labels of a workload without labels.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Derives the desired objects. `now` stamps status conditions (the writer
/// keeps an existing condition's time when its status did not change).
pub fn derive(snapshot: &Snapshot, settings: &Settings, now: Timestamp) -> Desired {
    let now = Time(now);
    let index = Index::new(snapshot);
    let mut enabled: BTreeMap<&str, Enforcement> = BTreeMap::new();
    for ns in &snapshot.namespaces {
        let label = ns.metadata.labels.as_ref().and_then(|l| l.get(ENFORCEMENT_LABEL));
        if let (Some(name), Some(e)) = (
            ns.metadata.name.as_deref(),
            label.and_then(|l| Enforcement::from_label(l)),
        ) {
            enabled.insert(name, e);
        }
    }
    let mut by_ns: BTreeMap<&str, Vec<(&str, &Allowlist)>> = BTreeMap::new();
    for a in &snapshot.allowlists {
        if let (Some(ns), Some(name)) = (a.metadata.namespace.as_deref(), a.metadata.name.as_deref()) {
            by_ns.entry(ns).or_default().push((name, a));
        }
    }
    for list in by_ns.values_mut() {
        list.sort_by_key(|(name, _)| *name);
    }
    let mut desired = Desired::default();
    for (&ns, &enforcement) in &enabled {
        let allowlists = by_ns.get(ns).map_or(&[][..], Vec::as_slice);
        derive_namespace(
            snapshot,
            &index,
            ns,
            enforcement,
            allowlists,
            settings,
            &now,
            &mut desired,
        );
    }
    for (&ns, allowlists) in &by_ns {
        if enabled.contains_key(ns) {
            continue;
        }
        for (name, a) in allowlists {
            desired.statuses.push(StatusUpdate {
                namespace: ns.into(),
                name: (*name).into(),
                status: status::not_enabled(ns, a.metadata.generation, &now),
            });
        }
    }
    desired
        .statuses
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    desired
        .wasm_plugins
        .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    desired
}

/// Derives one enabled namespace: its Allowlists (sorted by name) to
/// policies, packed into WasmPlugins, and a status each.
#[allow(clippy::too_many_arguments)]
fn derive_namespace(
    snapshot: &Snapshot,
    index: &Index<'_>,
    ns: &str,
    enforcement: Enforcement,
    allowlists: &[(&str, &Allowlist)],
    settings: &Settings,
    now: &Time,
    desired: &mut Desired,
) {
    let audit = enforcement == Enforcement::Audit;
    let previous = snapshot.previous.get(ns);
    let translator = Translator {
        ns,
        audit,
        trust_domain: &snapshot.trust_domain,
        index,
        unreadable: &snapshot.unreadable,
    };
    let entries: Vec<Entry<'_>> = allowlists
        .iter()
        .map(|&(name, a)| {
            let (result, resolved) = translator.policy(a, name);
            let (policy, invalid) = match result {
                Ok(policy) => (policy, None),
                Err(invalid) => stand_in(a, ns, name, audit, previous, invalid),
            };
            Entry {
                name,
                generation: a.metadata.generation,
                resolved,
                invalid,
                policy,
            }
        })
        .collect();
    let labels: BTreeSet<&BTreeMap<String, String>> = index
        .in_namespace(ns)
        .iter()
        .map(|w| w.labels.unwrap_or(&NO_LABELS))
        .collect();
    let policies: Vec<&Policy> = entries.iter().map(|e| &e.policy).collect();
    let out = namespace_configs(&policies, &labels, previous, audit, settings.budget_bytes);
    for (i, entry) in entries.iter().enumerate() {
        let outcome = status::Outcome {
            generation: entry.generation,
            resolved: entry.resolved,
            invalid: entry.invalid.as_ref(),
            rejected: out.rejected.as_deref(),
            plugin: out
                .placement
                .get(i)
                .copied()
                .flatten()
                .map(|p| PluginName(p).to_string()),
            oversize: out.oversize.get(i).copied().flatten(),
            budget: settings.budget_bytes,
        };
        desired.statuses.push(StatusUpdate {
            namespace: ns.into(),
            name: entry.name.into(),
            status: status::enabled(&outcome, now),
        });
    }
    let split = out.configs.len() > 1;
    for (i, plugin_config) in out.configs.into_iter().enumerate() {
        let selector = if split {
            common_labels(&plugin_config.policies)
        } else {
            None
        };
        desired
            .wasm_plugins
            .push(WasmPlugin::new(ns, i, settings, selector, plugin_config));
    }
}
