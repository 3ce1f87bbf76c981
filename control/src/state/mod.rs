//! The cluster as meshward needs it: small, indexed by namespace, and told
//! which namespaces each change affects.
//!
//! ```text
//!  watch events (serve) ─┐
//!                        ├─▶ Object ─▶ ClusterState::apply / delete / replace ─▶ Changes
//!  manifests (offline) ──┘     (slim: wire.rs, objects.rs)                       derive: {ns}
//!                                                                                plan:   {ns}
//!  ClusterState ──▶ derive_namespace(ns) (pure) for every ns in Changes::derive
//! ```
//!
//! Each watched object is reduced to what derivation reads before it is
//! stored ([`objects`]); pods are counted per distinct [`Workload`] (labels,
//! service account, ports), which the pods of one ReplicaSet share. A change
//! reports the namespaces whose derivation it can affect:
//!
//! * an Allowlist, Service, Namespace, or a new or vanished workload in
//!   namespace `A` → `A`, and every namespace whose Allowlists select
//!   workloads in `A` (`from: [{workloads: {namespace: A}}]`);
//! * a pod whose labels, service account and ports are those of an existing
//!   one (a new replica, a status update) → still `A` and its referrers, as
//!   an Allowlist's status counts the pods its selectors match;
//!   a pod event that changes nothing derivation reads → nothing;
//! * an owned WasmPlugin, or only an Allowlist's status → planning only;
//! * a ServiceAccount → nothing (derivation never reads them; `lint` does);
//! * a ConfigMap labelled [`API_LABEL`](crate::apidesc::API_LABEL) in `A`
//!   whose parsed keys changed → `A` if an Allowlist of `A` names it (`grpc.api`, `openapi.api`),
//!   else nothing.

pub mod objects;
pub mod snapshot;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::apidesc::ApiConfigMap;

pub use objects::{
    foreign_appliers, managed_fields, NamespaceEntry, OwnedPlugin, Service, ServicePort, StoredAllowlist, TargetPort,
    TemplateKind, Workload, MANAGED_SPEC_FIELDS,
};
pub use snapshot::Snapshot;

use crate::derive::Enforcement;

/// The kinds the state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `v1` Namespace.
    Namespace,
    /// `v1` Pod.
    Pod,
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `v1` Service.
    Service,
    /// `v1` ServiceAccount.
    ServiceAccount,
    /// `meshward.io/v1alpha1` Allowlist.
    Allowlist,
    /// `extensions.istio.io/v1alpha1` WasmPlugin (those meshward owns).
    WasmPlugin,
    /// `v1` ConfigMap (those labelled [`API_LABEL`](crate::apidesc::API_LABEL)).
    ConfigMap,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 10] = [
        Self::Namespace,
        Self::Pod,
        Self::Deployment,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::Service,
        Self::ServiceAccount,
        Self::Allowlist,
        Self::WasmPlugin,
        Self::ConfigMap,
    ];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Service => "Service",
            Self::ServiceAccount => "ServiceAccount",
            Self::Allowlist => "Allowlist",
            Self::WasmPlugin => "WasmPlugin",
            Self::ConfigMap => "ConfigMap",
        }
    }

    fn template(kind: TemplateKind) -> Self {
        match kind {
            TemplateKind::Deployment => Self::Deployment,
            TemplateKind::StatefulSet => Self::StatefulSet,
            TemplateKind::DaemonSet => Self::DaemonSet,
        }
    }
}

/// One object, reduced to what the state keeps; `namespace` is the object's
/// own name for a Namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The namespace (for a Namespace: its name).
    pub namespace: String,
    /// The name (for a Namespace: its name too).
    pub name: String,
    /// What is kept.
    pub body: Body,
}

/// What the state keeps of an object, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A Namespace.
    Namespace(NamespaceEntry),
    /// A Pod.
    Pod(Arc<Workload>),
    /// The pod template of a Deployment, StatefulSet or DaemonSet (`None`
    /// when the object has no template), and the object's
    /// [`API_ANNOTATION`](crate::apidesc::API_ANNOTATION), if any.
    Template(TemplateKind, Option<Arc<Workload>>, Option<Box<str>>),
    /// A Service.
    Service(Service),
    /// A ServiceAccount.
    ServiceAccount,
    /// An Allowlist.
    Allowlist(StoredAllowlist),
    /// A WasmPlugin meshward owns.
    WasmPlugin(OwnedPlugin),
    /// A ConfigMap labelled [`API_LABEL`](crate::apidesc::API_LABEL), its keys parsed.
    ConfigMap(Arc<ApiConfigMap>),
}

/// Shares equal [`Workload`]s among objects before they reach the state: a
/// re-list of 100,000 pods then holds one `Workload` per ReplicaSet while it
/// is collected, not one per pod.
#[derive(Debug, Default)]
pub struct Interner(std::collections::HashSet<Arc<Workload>>);

impl Interner {
    /// `object`, its workload shared with equal ones seen before.
    pub fn intern(&mut self, mut object: Object) -> Object {
        let slot = match &mut object.body {
            Body::Pod(w) | Body::Template(_, Some(w), _) => w,
            _ => return object,
        };
        match self.0.get(&**slot) {
            Some(shared) => *slot = shared.clone(),
            None => {
                self.0.insert(slot.clone());
            }
        }
        object
    }
}

impl Body {
    /// The kind of object this is.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Namespace(_) => Kind::Namespace,
            Self::Pod(_) => Kind::Pod,
            Self::Template(kind, _, _) => Kind::template(*kind),
            Self::Service(_) => Kind::Service,
            Self::ServiceAccount => Kind::ServiceAccount,
            Self::Allowlist(_) => Kind::Allowlist,
            Self::WasmPlugin(_) => Kind::WasmPlugin,
            Self::ConfigMap(_) => Kind::ConfigMap,
        }
    }
}

/// The namespaces a change affects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Namespaces to derive again.
    pub derive: BTreeSet<String>,
    /// Namespaces to plan again (compare desired with observed) without
    /// deriving: their owned WasmPlugins or Allowlist statuses changed.
    pub plan: BTreeSet<String>,
}

impl Changes {
    /// Adds `other`.
    pub fn merge(&mut self, other: Changes) {
        self.derive.extend(other.derive);
        self.plan.extend(other.plan);
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.derive.is_empty() && self.plan.is_empty()
    }
}

/// One namespace's objects.
#[derive(Debug, Clone, Default)]
pub struct NamespaceState {
    /// The Namespace object, when it exists.
    pub namespace: Option<NamespaceEntry>,
    /// Pods by name.
    pods: HashMap<Box<str>, Arc<Workload>>,
    /// Pod templates by owner kind and name.
    templates: BTreeMap<(TemplateKind, Box<str>), Option<Arc<Workload>>>,
    /// Every distinct workload of the namespace, with the number of pods and
    /// templates that have it.
    workloads: BTreeMap<Arc<Workload>, u32>,
    /// Services by name.
    services: BTreeMap<Box<str>, Service>,
    /// ServiceAccounts by name.
    service_accounts: BTreeSet<Box<str>>,
    /// Allowlists by name.
    allowlists: BTreeMap<Box<str>, StoredAllowlist>,
    /// Owned WasmPlugins by name.
    plugins: BTreeMap<Box<str>, OwnedPlugin>,
    /// Labelled ConfigMaps by name, parsed.
    config_maps: BTreeMap<Box<str>, Arc<ApiConfigMap>>,
    /// The [`API_ANNOTATION`](crate::apidesc::API_ANNOTATION) of pod
    /// template owners that carry one.
    template_apis: BTreeMap<(TemplateKind, Box<str>), Box<str>>,
    /// The namespaces whose workloads this namespace's Allowlists select.
    refs: BTreeSet<String>,
}

impl NamespaceState {
    /// How meshward treats the namespace (`None`: not enabled, or no
    /// Namespace object).
    pub fn enforcement(&self) -> Option<Enforcement> {
        self.namespace.and_then(|n| n.enforcement)
    }

    /// Every distinct workload, with the number of pods and pod templates
    /// that have it; in a stable order.
    pub fn workloads(&self) -> impl Iterator<Item = (&Workload, u32)> + '_ {
        self.workloads.iter().map(|(w, n)| (&**w, *n))
    }

    /// A pod by name.
    pub fn pod(&self, name: &str) -> Option<&Workload> {
        self.pods.get(name).map(|w| &**w)
    }

    /// The workload a user names `name`: the pod template of a Deployment,
    /// StatefulSet or DaemonSet of that name (in that order), else the pod.
    pub fn workload_named(&self, name: &str) -> Option<&Workload> {
        self.templates()
            .filter(|(_, n, _)| *n == name)
            .find_map(|(_, _, w)| w)
            .or_else(|| self.pod(name))
    }

    /// Pods by name, in no particular order.
    pub fn pods(&self) -> impl Iterator<Item = (&str, &Workload)> + '_ {
        self.pods.iter().map(|(n, w)| (&**n, &**w))
    }

    /// Pod templates by owner kind and name, sorted; the workload is `None`
    /// for an owner without a template.
    pub fn templates(&self) -> impl Iterator<Item = (TemplateKind, &str, Option<&Workload>)> + '_ {
        self.templates.iter().map(|((k, n), w)| (*k, &**n, w.as_deref()))
    }

    /// A Service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Services by name, sorted.
    pub fn services(&self) -> impl Iterator<Item = (&str, &Service)> + '_ {
        self.services.iter().map(|(n, s)| (&**n, s))
    }

    /// The [`API_ANNOTATION`](crate::apidesc::API_ANNOTATION) of the
    /// Deployment, StatefulSet or DaemonSet `name`, if it carries one.
    pub fn template_api_descriptions(&self, kind: TemplateKind, name: &str) -> Option<&str> {
        self.template_apis.get(&(kind, name.into())).map(|d| &**d)
    }

    /// Whether a ServiceAccount of that name exists.
    pub fn has_service_account(&self, name: &str) -> bool {
        self.service_accounts.contains(name)
    }

    /// Allowlists by name, sorted.
    pub fn allowlists(&self) -> impl Iterator<Item = (&str, &StoredAllowlist)> + '_ {
        self.allowlists.iter().map(|(n, a)| (&**n, a))
    }

    /// An Allowlist by name.
    pub fn allowlist(&self, name: &str) -> Option<&StoredAllowlist> {
        self.allowlists.get(name)
    }

    /// Owned WasmPlugins by name, sorted.
    pub fn plugins(&self) -> impl Iterator<Item = (&str, &OwnedPlugin)> + '_ {
        self.plugins.iter().map(|(n, p)| (&**n, p))
    }

    /// An owned WasmPlugin by name.
    pub fn plugin(&self, name: &str) -> Option<&OwnedPlugin> {
        self.plugins.get(name)
    }

    /// A labelled ConfigMap by name, its keys parsed.
    pub fn config_map(&self, name: &str) -> Option<&ApiConfigMap> {
        self.config_maps.get(name).map(|c| &**c)
    }

    /// Whether an Allowlist of the namespace names the ConfigMap `name` as an
    /// API description.
    fn references_config_map(&self, name: &str) -> bool {
        self.allowlists
            .values()
            .flat_map(|a| a.spec.rules.iter())
            .flat_map(|r| r.to.iter().flatten())
            .flat_map(|op| {
                let grpc = op.grpc.as_ref().and_then(|g| g.api.as_ref());
                let openapi = op.openapi.as_ref().map(|o| &o.api);
                grpc.into_iter().chain(openapi)
            })
            .any(|api| api.config_map == name)
    }

    fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.pods.is_empty()
            && self.templates.is_empty()
            && self.services.is_empty()
            && self.service_accounts.is_empty()
            && self.allowlists.is_empty()
            && self.plugins.is_empty()
            && self.config_maps.is_empty()
    }

    /// Adds one pod or template with `w`; whether `w` is new to the namespace.
    fn add_workload(&mut self, w: &Arc<Workload>) -> Arc<Workload> {
        if let Some((shared, n)) = self.workloads.get_key_value(&**w).map(|(k, n)| (k.clone(), *n)) {
            self.workloads.insert(shared.clone(), n.saturating_add(1));
            shared
        } else {
            self.workloads.insert(w.clone(), 1);
            w.clone()
        }
    }

    /// Removes one pod or template with `w`.
    fn remove_workload(&mut self, w: &Workload) {
        match self.workloads.get(w).copied() {
            Some(n) if n > 1 => {
                if let Some(slot) = self.workloads.get_mut(w) {
                    *slot = n - 1;
                }
            }
            Some(_) => {
                self.workloads.remove(w);
            }
            None => {}
        }
    }

    /// The namespaces other than `own` whose workloads the Allowlists select.
    fn referenced_namespaces(&self, own: &str) -> BTreeSet<String> {
        self.allowlists
            .values()
            .flat_map(|a| a.spec.rules.iter())
            .flat_map(|r| r.from.iter().flatten())
            .filter_map(|s| s.workloads.as_ref()?.namespace.clone())
            .filter(|ns| ns != own)
            .collect()
    }
}

/// Objects held, per kind (for metrics).
pub type Counts = BTreeMap<Kind, usize>;

/// The whole cluster as meshward keeps it.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// The mesh's trust domain (principals are `<td>/ns/<ns>/sa/<sa>`).
    pub trust_domain: String,
    namespaces: BTreeMap<String, NamespaceState>,
    /// Namespace `A` → the namespaces whose Allowlists select workloads in `A`.
    referenced_by: HashMap<String, BTreeSet<String>>,
    counts: Counts,
}

impl ClusterState {
    /// An empty cluster in `trust_domain`.
    pub fn new(trust_domain: impl Into<String>) -> Self {
        Self {
            trust_domain: trust_domain.into(),
            ..Self::default()
        }
    }

    /// A namespace's objects.
    pub fn namespace(&self, ns: &str) -> Option<&NamespaceState> {
        self.namespaces.get(ns)
    }

    /// A copy of what deriving `ns` reads: namespace `ns`, the namespaces
    /// whose workloads its Allowlists select, and `also`; nothing else of
    /// the cluster is copied. Object counts are not kept.
    pub fn excerpt<'a>(&'a self, ns: &'a str, also: impl IntoIterator<Item = &'a str>) -> ClusterState {
        let own_refs = self.namespaces.get(ns).into_iter().flat_map(|s| s.refs.iter());
        let wanted: BTreeSet<&str> = std::iter::once(ns)
            .chain(own_refs.map(String::as_str))
            .chain(also)
            .collect();
        let mut out = ClusterState::new(self.trust_domain.clone());
        for name in wanted {
            if let Some(s) = self.namespaces.get(name) {
                out.namespaces.insert(name.to_string(), s.clone());
            }
        }
        for (name, s) in &out.namespaces {
            for r in &s.refs {
                out.referenced_by.entry(r.clone()).or_default().insert(name.clone());
            }
        }
        out
    }

    /// Every namespace that holds an object, sorted by name.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &NamespaceState)> + '_ {
        self.namespaces.iter().map(|(n, s)| (n.as_str(), s))
    }

    /// Objects held, per kind.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The namespaces whose derivation reads namespace `ns`: itself and the
    /// namespaces whose Allowlists select workloads in it.
    pub fn readers_of(&self, ns: &str) -> BTreeSet<String> {
        let mut out = self.referenced_by.get(ns).cloned().unwrap_or_default();
        out.insert(ns.to_string());
        out
    }

    fn count(&mut self, kind: Kind, added: bool) {
        let n = self.counts.entry(kind).or_default();
        *n = if added {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }

    /// Stores `object` (added or modified) and reports what it affects.
    pub fn apply(&mut self, object: Object) -> Changes {
        let Object { namespace, name, body } = object;
        let kind = body.kind();
        let mut changes = Changes::default();
        let state = self.namespaces.entry(namespace.clone()).or_default();
        let (added, changed) = match body {
            Body::Namespace(entry) => {
                let before = state.namespace.replace(entry);
                (before.is_none(), before != Some(entry))
            }
            Body::Pod(w) => match state.pods.get(&*name).cloned() {
                Some(old) if *old == *w => (false, false),
                old => {
                    if let Some(old) = &old {
                        state.remove_workload(old);
                    }
                    let shared = state.add_workload(&w);
                    state.pods.insert(name.as_str().into(), shared);
                    (old.is_none(), true)
                }
            },
            Body::Template(kind, w, described) => {
                let key = (kind, name.as_str().into());
                // Derivation does not read the annotation: no change to derive.
                match described {
                    Some(d) => state.template_apis.insert(key.clone(), d),
                    None => state.template_apis.remove(&key),
                };
                match state.templates.get(&key).cloned() {
                    Some(old) if old.as_deref() == w.as_deref() => (false, false),
                    old => {
                        if let Some(Some(old)) = &old {
                            state.remove_workload(old);
                        }
                        let shared = w.as_ref().map(|w| state.add_workload(w));
                        state.templates.insert(key, shared);
                        (old.is_none(), true)
                    }
                }
            }
            Body::Service(svc) => {
                let before = state.services.insert(name.as_str().into(), svc.clone());
                (before.is_none(), before.as_ref() != Some(&svc))
            }
            Body::ServiceAccount => {
                let added = state.service_accounts.insert(name.as_str().into());
                // Derivation never reads service accounts.
                (added, false)
            }
            Body::Allowlist(a) => {
                let before = state.allowlists.insert(name.as_str().into(), a.clone());
                match &before {
                    Some(b) if !b.derivation_differs(&a) => {
                        if b.status != a.status {
                            changes.plan.insert(namespace.clone());
                        }
                        (false, false)
                    }
                    _ => {
                        self.update_refs(&namespace);
                        changes.derive.insert(namespace.clone());
                        (before.is_none(), false)
                    }
                }
            }
            Body::WasmPlugin(p) => {
                let before = state.plugins.insert(name.as_str().into(), p.clone());
                let appliers_before = before.as_ref().map_or(&[][..], |b| b.foreign_appliers.as_slice());
                if appliers_before != p.foreign_appliers.as_slice() {
                    // Statuses report other appliers.
                    changes.derive.insert(namespace.clone());
                } else if before.as_ref() != Some(&p) {
                    changes.plan.insert(namespace.clone());
                }
                (before.is_none(), false)
            }
            Body::ConfigMap(cm) => {
                let before = state.config_maps.insert(name.as_str().into(), cm.clone());
                if before.as_ref() != Some(&cm) && state.references_config_map(&name) {
                    changes.derive.insert(namespace.clone());
                }
                (before.is_none(), false)
            }
        };
        if added {
            self.count(kind, true);
        }
        if changed {
            changes.derive.extend(self.readers_of(&namespace));
        }
        changes
    }

    /// Removes an object and reports what it affects.
    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> Changes {
        let mut changes = Changes::default();
        let Some(state) = self.namespaces.get_mut(namespace) else {
            return changes;
        };
        let (removed, changed) = match kind {
            Kind::Namespace => {
                let removed = state.namespace.take().is_some();
                (removed, removed)
            }
            Kind::Pod => match state.pods.remove(name) {
                Some(w) => {
                    state.remove_workload(&w);
                    (true, true)
                }
                None => (false, false),
            },
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet => {
                let tk = match kind {
                    Kind::Deployment => TemplateKind::Deployment,
                    Kind::StatefulSet => TemplateKind::StatefulSet,
                    _ => TemplateKind::DaemonSet,
                };
                state.template_apis.remove(&(tk, name.into()));
                match state.templates.remove(&(tk, name.into())) {
                    Some(w) => {
                        if let Some(w) = w {
                            state.remove_workload(&w);
                        }
                        (true, true)
                    }
                    None => (false, false),
                }
            }
            Kind::Service => {
                let removed = state.services.remove(name).is_some();
                (removed, removed)
            }
            Kind::ServiceAccount => (state.service_accounts.remove(name), false),
            Kind::Allowlist => {
                let removed = state.allowlists.remove(name).is_some();
                if removed {
                    self.update_refs(namespace);
                    changes.derive.insert(namespace.to_string());
                }
                (removed, false)
            }
            Kind::WasmPlugin => match state.plugins.remove(name) {
                Some(p) => {
                    if p.foreign_appliers.is_empty() {
                        changes.plan.insert(namespace.to_string());
                    } else {
                        changes.derive.insert(namespace.to_string());
                    }
                    (true, false)
                }
                None => (false, false),
            },
            Kind::ConfigMap => {
                let removed = state.config_maps.remove(name).is_some();
                if removed && state.references_config_map(name) {
                    changes.derive.insert(namespace.to_string());
                }
                (removed, false)
            }
        };
        if removed {
            self.count(kind, false);
        }
        if changed {
            changes.derive.extend(self.readers_of(namespace));
        }
        if self.namespaces.get(namespace).is_some_and(NamespaceState::is_empty) {
            self.namespaces.remove(namespace);
        }
        changes
    }

    /// Replaces every object of `kind` with `objects` (a fresh list after a
    /// watch was lost: objects deleted meanwhile are gone from it) and
    /// reports what changed.
    pub fn replace(&mut self, kind: Kind, objects: Vec<Object>) -> Changes {
        let mut stale: BTreeSet<(String, String)> = self.keys(kind).into_iter().collect();
        let mut changes = Changes::default();
        for object in objects {
            if object.body.kind() != kind {
                continue;
            }
            stale.remove(&(object.namespace.clone(), object.name.clone()));
            changes.merge(self.apply(object));
        }
        for (ns, name) in stale {
            changes.merge(self.delete(kind, &ns, &name));
        }
        changes
    }

    /// The (namespace, name) of every object of `kind`.
    pub fn keys(&self, kind: Kind) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (ns, s) in &self.namespaces {
            let names: Vec<&str> = match kind {
                Kind::Namespace => s.namespace.iter().map(|_| ns.as_str()).collect(),
                Kind::Pod => s.pods.keys().map(|k| &**k).collect(),
                Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet => s
                    .templates
                    .keys()
                    .filter(|(k, _)| Kind::template(*k) == kind)
                    .map(|(_, n)| &**n)
                    .collect(),
                Kind::Service => s.services.keys().map(|k| &**k).collect(),
                Kind::ServiceAccount => s.service_accounts.iter().map(|k| &**k).collect(),
                Kind::Allowlist => s.allowlists.keys().map(|k| &**k).collect(),
                Kind::WasmPlugin => s.plugins.keys().map(|k| &**k).collect(),
                Kind::ConfigMap => s.config_maps.keys().map(|k| &**k).collect(),
            };
            out.extend(names.into_iter().map(|n| (ns.clone(), n.to_string())));
        }
        out
    }

    /// Recomputes which namespaces `ns`'s Allowlists refer to.
    fn update_refs(&mut self, ns: &str) {
        let Some(state) = self.namespaces.get_mut(ns) else {
            return;
        };
        let refs = state.referenced_namespaces(ns);
        let before = std::mem::replace(&mut state.refs, refs.clone());
        for gone in before.difference(&refs) {
            if let Some(set) = self.referenced_by.get_mut(gone) {
                set.remove(ns);
                if set.is_empty() {
                    self.referenced_by.remove(gone);
                }
            }
        }
        for new in refs.difference(&before) {
            self.referenced_by
                .entry(new.clone())
                .or_default()
                .insert(ns.to_string());
        }
    }
}
