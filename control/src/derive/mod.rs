//! Derivation: the cluster state in, desired WasmPlugins and Allowlist
//! statuses out, one namespace at a time. Pure and deterministic: the same
//! state always yields byte-identical objects, so the writer can skip
//! unchanged ones (every pluginConfig change reloads the wasm VM in every
//! sidecar). A namespace's result depends only on its own objects and on the
//! workloads of the namespaces its Allowlists select from
//! ([`ClusterState::readers_of`] says which), so the service derives again
//! only the namespaces a change affects ([`Derivations`]).
//!
//! ```text
//! Namespace (meshward.io/enforcement: enabled|audit|learn)
//!   └─ Allowlists ──translate──▶ policies ──validate (the filter's engine)──▶ v1alpha1 config
//!        workloads ─▶ pods / pod templates ─▶ service accounts ─▶ principals   (workloads.rs)
//!        serviceAccounts ns/name ─▶ principals                                 (translate.rs)
//!        servicePorts ─▶ Service ─▶ targetPort (named: via the pods' containers)
//!        grpc.api, openapi.api ─▶ labelled ConfigMap ─▶ methods checked / expanded,
//!          operations ─▶ (methods, paths) entries                              (translate.rs, apidesc)
//!        invalid ─▶ its last valid version (the WasmPlugins in force), else a placeholder
//!                                                                               (fallback.rs)
//!   ─▶ WasmPlugin `meshward` per enabled namespace; over Settings::budget_bytes:
//!      `meshward`, `meshward-1`, ... each holding whole groups of policies sharing a workload
//!                                                                               (pack.rs, plugin.rs)
//!   ─▶ every WasmPlugin compiled by the engine; rejected ─▶ the previous configs, else fail closed
//!   ─▶ a status per Allowlist: Ready, WithinBudget                              (status.rs)
//!   learn: every policy in audit, `log.requests: all`, plus [`LEARN_POLICY`]
//! ```
//!
//! Fail closed is the rule throughout: the filter passes requests to a
//! workload no policy applies to, so dropping a policy would silently open its
//! workloads. An Allowlist that cannot be derived is therefore replaced, never
//! left out.

mod fallback;
mod incremental;
mod pack;
mod plugin;
mod status;
mod translate;
mod workloads;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use meshward_filter::config::{LogConfig, Policy, RequestLog};
use meshward_filter::{Action, Mode};

pub use incremental::Derivations;
pub use plugin::{
    check_module, check_sha256, ModuleDigest, ModuleError, PluginName, PullPolicy, TrafficSelector, WasmPlugin,
    WasmPluginSpec, MANAGED_BY, PLUGIN_NAME, ROOT_ID, WASM_PLUGIN_API_VERSION,
};
pub use status::{
    REASON_DERIVED, REASON_FIELD_MANAGER_CONFLICT, REASON_NAMESPACE_CONFIG_REJECTED, REASON_NAMESPACE_NOT_ENABLED,
    REASON_OVER_BUDGET, REASON_WITHIN_BUDGET,
};
pub use translate::{Invalid, InvalidReason};
pub use workloads::{selects, DEFAULT_SERVICE_ACCOUNT};

use crate::crd::{AllowlistStatus, Resolved};
use crate::state::{ClusterState, Snapshot};
use fallback::{namespace_configs, stand_in, Previous};
use pack::common_labels;
use translate::Translator;

/// The namespace label that enables meshward.
pub const ENFORCEMENT_LABEL: &str = "meshward.io/enforcement";
/// The policy every learn namespace's configuration ends with: no selector,
/// audit mode, no rule. It applies to every workload of the namespace, so a
/// request no Allowlist admits (including every request to a workload no
/// Allowlist selects, or to any workload before the first Allowlist exists)
/// is decided `audit_deny` and logged, instead of passing unlogged as
/// "no policy"; it admits nothing, so it never hides another Allowlist's
/// denial. Allowlist policies are named `<ns>/<name>`, so this name, without
/// a `/`, cannot collide with one.
pub const LEARN_POLICY: &str = "meshward:learn";
/// The mesh's trust domain when none is given (Istio's default).
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The filter module's URL when none is given: the filter image of the same
/// version as this binary.
pub const DEFAULT_URL: &str = concat!("oci://ghcr.io/meshward/filter:", env!("CARGO_PKG_VERSION"));
/// The default of [`Settings::budget_bytes`]: 512 KiB.
pub const DEFAULT_BUDGET_BYTES: usize = 512 * 1024;
/// The largest pluginConfig emitted at all, in bytes of JSON: Kubernetes
/// objects are limited to 1.5 MiB (etcd), minus a margin for the rest of the
/// WasmPlugin and for the writer's encoding.
pub const HARD_LIMIT_BYTES: usize = 1_400_000;

/// Where the filter module comes from, how istio-agent pulls it, and how
/// large a WasmPlugin may grow: the install-wide fields of every WasmPlugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The module's URL (`oci://`, `https://`, `http://`, `file://`).
    pub url: String,
    /// Its sha256, if pinned: for `oci://` the image manifest's digest, for
    /// `http(s)://` the module's ([`check_module`] has the rule).
    pub sha256: Option<String>,
    /// The size budget of one WasmPlugin's `pluginConfig`, in bytes of its
    /// compact JSON. A namespace over it is split into several WasmPlugins
    /// (the CLI's default is [`DEFAULT_BUDGET_BYTES`]).
    pub budget_bytes: usize,
    /// `spec.imagePullPolicy`; `None` = Istio's default.
    pub image_pull_policy: Option<PullPolicy>,
    /// `spec.imagePullSecret`: a Secret of that name must exist in every
    /// enabled namespace; `None` = none.
    pub image_pull_secret: Option<String>,
    /// `spec.priority` among a workload's AUTHZ WasmPlugins (higher first);
    /// `None` = Istio's default, 0.
    pub priority: Option<i32>,
}

impl Default for Settings {
    /// [`DEFAULT_URL`], unpinned, [`DEFAULT_BUDGET_BYTES`], Istio's defaults
    /// for the rest.
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.into(),
            sha256: None,
            budget_bytes: DEFAULT_BUDGET_BYTES,
            image_pull_policy: None,
            image_pull_secret: None,
            priority: None,
        }
    }
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

/// What one namespace should contain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamespaceDesired {
    /// Its WasmPlugins, sorted by name (none when the namespace is not enabled).
    pub wasm_plugins: Vec<WasmPlugin>,
    /// A status per Allowlist, sorted by name.
    pub statuses: Vec<StatusUpdate>,
    /// Derivation fell back on the WasmPlugins in force (an invalid Allowlist
    /// kept its last valid version, or the namespace's configuration was
    /// rejected): a change to those WasmPlugins can change this result.
    pub reads_plugins: bool,
}

/// How meshward treats a namespace, from its [`ENFORCEMENT_LABEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// `enabled`: each Allowlist in its own mode.
    Enabled,
    /// `audit`: every Allowlist in audit mode.
    Audit,
    /// `learn`: every Allowlist in audit mode, every request some policy
    /// applies to logged (`log.requests: all`), and [`LEARN_POLICY`] so that
    /// every request is: the traffic `meshward-control learn` reads.
    Learn,
}

impl Enforcement {
    /// The enforcement a label value asks for; `None` for any other value.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "enabled" => Some(Self::Enabled),
            "audit" => Some(Self::Audit),
            "learn" => Some(Self::Learn),
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

/// [`LEARN_POLICY`]: audit, every workload, no rule.
fn learn_policy() -> Policy {
    Policy {
        name: LEARN_POLICY.into(),
        selector: None,
        mode: Some(Mode::Audit),
        action: Action::Allow,
        rules: Vec::new(),
    }
}

/// Derives every namespace of `state`. `now` stamps status conditions (the
/// writer keeps an existing condition's time when its status did not change).
pub fn derive(state: &ClusterState, settings: &Settings, now: Timestamp) -> Desired {
    let mut desired = Desired::default();
    for (ns, _) in state.namespaces() {
        let d = derive_namespace(state, ns, settings, now);
        desired.wasm_plugins.extend(d.wasm_plugins);
        desired.statuses.extend(d.statuses);
    }
    desired
}

/// [`derive`] over whole objects (manifests, tests).
pub fn derive_snapshot(snapshot: &Snapshot, settings: &Settings, now: Timestamp) -> Desired {
    derive(&snapshot.to_state(), settings, now)
}

/// Derives one namespace: in an enabled namespace its Allowlists (sorted by
/// name) to policies, packed into WasmPlugins, and a status each; elsewhere a
/// `NamespaceNotEnabled` status for each Allowlist.
pub fn derive_namespace(state: &ClusterState, ns: &str, settings: &Settings, now: Timestamp) -> NamespaceDesired {
    let now = Time(now);
    let mut out = NamespaceDesired::default();
    let Some(namespace) = state.namespace(ns) else {
        return out;
    };
    let Some(enforcement) = namespace.enforcement() else {
        for (name, a) in namespace.allowlists() {
            out.statuses.push(StatusUpdate {
                namespace: ns.into(),
                name: name.into(),
                status: status::not_enabled(ns, a.generation, &now),
            });
        }
        return out;
    };
    let learn = enforcement == Enforcement::Learn;
    let audit = learn || enforcement == Enforcement::Audit;
    let previous = Previous::new(Some(namespace));
    let translator = Translator { ns, audit, state };
    let entries: Vec<Entry<'_>> = namespace
        .allowlists()
        .map(|(name, a)| {
            let (result, resolved) = translator.policy(a, name);
            let (policy, invalid) = match result {
                Ok(policy) => (policy, None),
                Err(invalid) => stand_in(&a.spec, ns, name, audit, previous.get(), invalid),
            };
            Entry {
                name,
                generation: a.generation,
                resolved,
                invalid,
                policy,
            }
        })
        .collect();
    let labels: BTreeSet<&BTreeMap<String, String>> = namespace.workloads().map(|(w, _)| &w.labels).collect();
    let catch_all = learn.then(learn_policy);
    let policies: Vec<&Policy> = entries.iter().map(|e| &e.policy).chain(catch_all.as_ref()).collect();
    let mut configs = namespace_configs(&policies, &labels, &previous, audit, settings.budget_bytes);
    if learn {
        // Whatever stands in (the configurations in force included) is
        // audited and logs every request.
        for config in &mut configs.configs {
            config.log = Some(LogConfig {
                requests: RequestLog::All,
                ..config.log.unwrap_or_default()
            });
            for p in &mut config.policies {
                p.mode = Some(Mode::Audit);
            }
        }
    }
    // WasmPlugins another field manager also applies: not written (the
    // writer does not fight another declarative owner), and said so.
    let conflicts: Vec<Option<String>> = (0..configs.configs.len())
        .map(|i| {
            let name = PluginName(i).to_string();
            let appliers = &namespace.plugin(&name)?.foreign_appliers;
            (!appliers.is_empty()).then(|| {
                format!(
                    "WasmPlugin {ns}/{name} is also applied by {}; meshward does not take another applier's \
                     fields back, so this Allowlist is not written: let meshward-control alone apply this object",
                    appliers.join(", ")
                )
            })
        })
        .collect();
    for (i, entry) in entries.iter().enumerate() {
        let outcome = status::Outcome {
            generation: entry.generation,
            resolved: entry.resolved,
            invalid: entry.invalid.as_ref(),
            rejected: configs.rejected.as_deref(),
            conflict: configs
                .placement
                .get(i)
                .copied()
                .flatten()
                .and_then(|p| conflicts.get(p))
                .and_then(|c| c.as_deref()),
            plugin: configs
                .placement
                .get(i)
                .copied()
                .flatten()
                .map(|p| PluginName(p).to_string()),
            oversize: configs.oversize.get(i).copied().flatten(),
            budget: settings.budget_bytes,
        };
        out.statuses.push(StatusUpdate {
            namespace: ns.into(),
            name: entry.name.into(),
            status: status::enabled(&outcome, &now),
        });
    }
    let split = configs.configs.len() > 1;
    for (i, plugin_config) in configs.configs.into_iter().enumerate() {
        let selector = if split {
            common_labels(&plugin_config.policies)
        } else {
            None
        };
        out.wasm_plugins
            .push(WasmPlugin::new(ns, i, settings, selector, plugin_config));
    }
    out.wasm_plugins.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out.reads_plugins = previous.was_read();
    out
}
