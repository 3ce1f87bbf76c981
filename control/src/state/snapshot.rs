//! A set of whole Kubernetes objects, as manifests hold them or tests build
//! them, and its [`ClusterState`]. The objects go through the same wire
//! types as the service's watch events, so offline commands and the service
//! derive from exactly the same reading of an object.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount};
use meshward_filter::config::PluginConfig;
use serde::Serialize;

use super::objects::{managed_fields, OwnedPlugin};
use super::wire::{self, object_of, Watched};
use super::{Body, ClusterState, Object};
use crate::crd::Allowlist;
use crate::derive::{PluginName, MANAGED_BY};

/// Whole objects, by kind.
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
    /// ConfigMaps; only those labelled
    /// [`API_LABEL`](crate::apidesc::API_LABEL) are read (API descriptions).
    pub config_maps: Vec<ConfigMap>,
    /// The configuration in force: namespace → the `pluginConfig`s of the
    /// WasmPlugins meshward owns there (`meshward`, `meshward-1`, ...).
    /// Offline rendering leaves it empty; derivation falls back on it so that
    /// a broken Allowlist or namespace keeps its last valid version in force.
    pub previous: BTreeMap<String, Vec<PluginConfig>>,
}

fn add<W: Watched, T: Serialize>(state: &mut ClusterState, objects: &[T]) {
    for o in objects {
        // Whole objects always fit the wire types, which read a subset of them.
        if let Ok(value) = serde_json::to_value(o) {
            if let Ok(Some(object)) = object_of::<W>(&value) {
                state.apply(object);
            }
        }
    }
}

impl Snapshot {
    /// The state the service would hold for these objects.
    pub fn to_state(&self) -> ClusterState {
        let mut state = ClusterState::new(self.trust_domain.clone());
        add::<wire::NamespaceWire, _>(&mut state, &self.namespaces);
        add::<wire::PodWire, _>(&mut state, &self.pods);
        add::<wire::Deployment, _>(&mut state, &self.deployments);
        add::<wire::StatefulSet, _>(&mut state, &self.stateful_sets);
        add::<wire::DaemonSet, _>(&mut state, &self.daemon_sets);
        add::<wire::ServiceAccountWire, _>(&mut state, &self.service_accounts);
        add::<wire::ServiceWire, _>(&mut state, &self.services);
        add::<wire::AllowlistWire, _>(&mut state, &self.allowlists);
        add::<wire::ConfigMapWire, _>(&mut state, &self.config_maps);
        let labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
        for (ns, configs) in &self.previous {
            for (i, config) in configs.iter().enumerate() {
                let spec = serde_json::json!({ "pluginConfig": config });
                state.apply(Object {
                    namespace: ns.clone(),
                    name: PluginName(i).to_string(),
                    body: Body::WasmPlugin(OwnedPlugin {
                        labels: labels.clone(),
                        managed: managed_fields(&spec),
                        uid: None,
                        resource_version: None,
                        foreign_appliers: Vec::new(),
                    }),
                });
            }
        }
        state
    }
}
