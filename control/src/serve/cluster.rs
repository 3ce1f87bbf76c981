//! The service's view of the cluster: one kube-runtime reflector per kind the
//! derivation reads, plus the WasmPlugins meshward owns, and per-kind health
//! so the writer knows when its view is complete.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::crd::{Allowlist, AllowlistSpec};
use crate::derive::{PluginName, Snapshot, MANAGED_BY};
use crate::serve::plan::{Observed, OwnedPlugin};
use meshward_filter::config::PluginConfig;

/// Istio's WasmPlugin, as a dynamic resource (its Rust types are not ours).
pub fn wasm_plugin_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions.istio.io", "v1alpha1", "WasmPlugin"),
        "wasmplugins",
    )
}

/// The health of one watched kind.
#[derive(Debug, Default)]
pub struct KindHealth {
    /// The kind's name, for logs.
    pub kind: &'static str,
    /// A full list has completed at least once.
    synced: AtomicBool,
    /// The last list or watch call failed (the watcher retries with backoff).
    failing: AtomicBool,
    /// A re-list is under way (the store keeps the previous complete list
    /// until it finishes).
    listing: AtomicBool,
}

impl KindHealth {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    fn complete(&self) -> bool {
        self.synced.load(Ordering::Acquire)
            && !self.failing.load(Ordering::Acquire)
            && !self.listing.load(Ordering::Acquire)
    }
}

/// Readers of every reflector store, and their health.
#[derive(Clone)]
pub struct Cluster {
    namespaces: Store<Namespace>,
    pods: Store<Pod>,
    deployments: Store<Deployment>,
    stateful_sets: Store<StatefulSet>,
    daemon_sets: Store<DaemonSet>,
    service_accounts: Store<ServiceAccount>,
    services: Store<Service>,
    /// Read as dynamic objects and parsed one by one: a single object the
    /// Rust types cannot read must not fail the whole list.
    allowlists: Store<DynamicObject>,
    wasm_plugins: Store<DynamicObject>,
    health: Arc<Vec<Arc<KindHealth>>>,
}

impl Cluster {
    /// Starts one watcher per kind on `tasks`; every change notifies `changed`.
    pub fn start(client: &Client, tasks: &mut JoinSet<()>, changed: &Arc<Notify>) -> Self {
        let mut w = Watchers {
            client,
            tasks,
            changed,
            health: Vec::new(),
        };
        let namespaces = w.typed("Namespace");
        let pods = w.typed("Pod");
        let deployments = w.typed("Deployment");
        let stateful_sets = w.typed("StatefulSet");
        let daemon_sets = w.typed("DaemonSet");
        let service_accounts = w.typed("ServiceAccount");
        let services = w.typed("Service");
        let allowlists = w.dynamic(
            "Allowlist",
            &ApiResource::erase::<Allowlist>(&()),
            watcher::Config::default(),
        );
        let owned = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        let wasm_plugins = w.dynamic("WasmPlugin", &wasm_plugin_resource(), owned);
        Self {
            namespaces,
            pods,
            deployments,
            stateful_sets,
            daemon_sets,
            service_accounts,
            services,
            allowlists,
            wasm_plugins,
            health: Arc::new(w.health),
        }
    }

    /// Every kind has completed its first full list.
    pub fn synced(&self) -> bool {
        self.health.iter().all(|h| h.synced.load(Ordering::Acquire))
    }

    /// Every kind is synced, healthy and not re-listing: the view is
    /// complete and deletes are safe.
    pub fn complete(&self) -> bool {
        self.health.iter().all(|h| h.complete())
    }

    /// The kinds whose view is incomplete, for logs.
    pub fn incomplete(&self) -> Vec<&'static str> {
        self.health.iter().filter(|h| !h.complete()).map(|h| h.kind).collect()
    }

    /// The derivation's input.
    pub fn snapshot(&self, trust_domain: &str) -> Snapshot {
        fn all<K: Clone + kube::runtime::reflector::Lookup>(s: &Store<K>) -> Vec<K>
        where
            K::DynamicType: Eq + Hash + Clone,
        {
            s.state().iter().map(|k| K::clone(k)).collect()
        }
        let mut unreadable = BTreeMap::new();
        let allowlists = self
            .allowlists
            .state()
            .iter()
            .map(|o| {
                let (allowlist, error) = read_allowlist(o);
                if let Some(e) = error {
                    let key = (
                        o.metadata.namespace.clone().unwrap_or_default(),
                        o.metadata.name.clone().unwrap_or_default(),
                    );
                    unreadable.insert(key, e);
                }
                allowlist
            })
            .collect();
        Snapshot {
            trust_domain: trust_domain.to_string(),
            namespaces: all(&self.namespaces),
            pods: all(&self.pods),
            deployments: all(&self.deployments),
            stateful_sets: all(&self.stateful_sets),
            daemon_sets: all(&self.daemon_sets),
            service_accounts: all(&self.service_accounts),
            services: all(&self.services),
            allowlists,
            previous: self.previous(),
            unreadable,
        }
    }

    /// The plugin configurations of the WasmPlugins meshward owns, by
    /// namespace, in the order `meshward`, `meshward-1`, ... (what derivation
    /// keeps in force when a new configuration is invalid).
    fn previous(&self) -> BTreeMap<String, Vec<PluginConfig>> {
        let mut by_ns: BTreeMap<String, Vec<(usize, PluginConfig)>> = BTreeMap::new();
        for o in self.wasm_plugins.state() {
            let (Some(ns), Some(name)) = (o.metadata.namespace.as_deref(), o.metadata.name.as_deref()) else {
                continue;
            };
            let Some(index) = PluginName::parse(name) else {
                continue;
            };
            let config = o.data.get("spec").and_then(|s| s.get("pluginConfig")).cloned();
            match config.map(serde_json::from_value::<PluginConfig>) {
                Some(Ok(config)) => by_ns.entry(ns.to_string()).or_default().push((index, config)),
                Some(Err(e)) => {
                    tracing::warn!(namespace = ns, name, error = %e, "owned WasmPlugin has an unreadable pluginConfig")
                }
                None => {}
            }
        }
        by_ns
            .into_iter()
            .map(|(ns, mut configs)| {
                configs.sort_by_key(|(i, _)| *i);
                (ns, configs.into_iter().map(|(_, c)| c).collect())
            })
            .collect()
    }

    /// What the writer compares the desired objects with.
    pub fn observed(&self) -> Observed {
        let plugins = self
            .wasm_plugins
            .state()
            .iter()
            .filter_map(|o| {
                Some(OwnedPlugin {
                    namespace: o.metadata.namespace.clone()?,
                    name: o.metadata.name.clone()?,
                    labels: o.metadata.labels.clone().unwrap_or_default(),
                    spec: o.data.get("spec").cloned().unwrap_or_default(),
                    uid: o.metadata.uid.clone(),
                    resource_version: o.metadata.resource_version.clone(),
                })
            })
            .collect();
        let statuses = self
            .allowlists
            .state()
            .iter()
            .filter_map(|a| {
                let key = (a.metadata.namespace.clone()?, a.metadata.name.clone()?);
                let status = a
                    .data
                    .get("status")
                    .cloned()
                    .and_then(|s| serde_json::from_value(s).ok());
                Some((key, status))
            })
            .collect();
        Observed { plugins, statuses }
    }
}

/// Starts watchers and collects their health.
struct Watchers<'a> {
    client: &'a Client,
    tasks: &'a mut JoinSet<()>,
    changed: &'a Arc<Notify>,
    health: Vec<Arc<KindHealth>>,
}

impl Watchers<'_> {
    /// A watcher over every object of a kind with Rust types.
    fn typed<K>(&mut self, kind: &'static str) -> Store<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let health = self.health(kind);
        watch(
            self.tasks,
            Api::all(self.client.clone()),
            watcher::Config::default(),
            (),
            health,
        )
    }

    /// A watcher over a kind read as dynamic objects.
    fn dynamic(&mut self, kind: &'static str, ar: &ApiResource, config: watcher::Config) -> Store<DynamicObject> {
        let health = self.health(kind);
        watch(
            self.tasks,
            Api::all_with(self.client.clone(), ar),
            config,
            ar.clone(),
            health,
        )
    }

    fn health(&mut self, kind: &'static str) -> (Arc<KindHealth>, Arc<Notify>) {
        let h = Arc::new(KindHealth::new(kind));
        self.health.push(h.clone());
        (h, self.changed.clone())
    }
}

/// An Allowlist from its dynamic form. When the spec does not fit the Rust
/// types (a schema change between versions, a value the CRD schema let
/// through), the result keeps the metadata, and the selector and mode if
/// they can be read, with no rule, and the error says why.
fn read_allowlist(o: &DynamicObject) -> (Allowlist, Option<String>) {
    let spec = o.data.get("spec").cloned().unwrap_or(serde_json::Value::Null);
    match serde_path_to_error::deserialize::<_, AllowlistSpec>(spec.clone()) {
        Ok(spec) => (
            Allowlist {
                metadata: o.metadata.clone(),
                spec,
                status: None,
            },
            None,
        ),
        Err(e) => {
            let lenient = AllowlistSpec {
                selector: spec
                    .get("selector")
                    .cloned()
                    .and_then(|s| serde_json::from_value(s).ok()),
                mode: spec.get("mode").cloned().and_then(|m| serde_json::from_value(m).ok()),
                rules: Vec::new(),
            };
            let allowlist = Allowlist {
                metadata: o.metadata.clone(),
                spec: lenient,
                status: None,
            };
            (allowlist, Some(e.to_string()))
        }
    }
}

/// Backoff between a failed list or watch and the next full re-list.
const RELIST_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// Runs a reflector for `K` on `tasks`, keeping `health` and notifying on change.
///
/// Any error ends the watcher and starts a new one, after a backoff: a fresh
/// list is the only way to know the view is whole again (a resumed watch
/// that sees no events says nothing), and the store swaps to the new list
/// atomically when it completes.
fn watch<K>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    config: watcher::Config,
    dyntype: K::DynamicType,
    (health, changed): (Arc<KindHealth>, Arc<Notify>),
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
{
    let mut writer = reflector::store::Writer::new(dyntype);
    let reader = writer.as_reader();
    tasks.spawn(async move {
        let (min, max) = RELIST_BACKOFF;
        let mut backoff = min;
        loop {
            let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()));
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        if !health.failing.swap(true, Ordering::AcqRel) {
                            tracing::warn!(kind = health.kind, error = %e, "list or watch failed; re-listing with backoff");
                        }
                        break;
                    }
                };
                writer.apply_watcher_event(&event);
                match event {
                    watcher::Event::Init => health.listing.store(true, Ordering::Release),
                    watcher::Event::InitApply(_) => {}
                    watcher::Event::InitDone => {
                        let first = !health.synced.swap(true, Ordering::AcqRel);
                        health.listing.store(false, Ordering::Release);
                        if health.failing.swap(false, Ordering::AcqRel) {
                            tracing::info!(kind = health.kind, "re-listed; view complete again");
                        }
                        if first {
                            tracing::info!(kind = health.kind, "initial list complete");
                        }
                        backoff = min;
                        changed.notify_one();
                    }
                    watcher::Event::Apply(_) | watcher::Event::Delete(_) => changed.notify_one(),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    });
    reader
}
