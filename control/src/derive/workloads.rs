//! Workloads as derivation sees them: every pod and every pod template of a
//! Deployment, StatefulSet or DaemonSet, with its namespace, labels, service
//! account and container ports; indexed by namespace so that a selector scans
//! only its own namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Snapshot;
use crate::crd::PortName;

/// The service account of a pod that names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// A pod or pod template: its namespace, labels and spec.
pub(super) struct Workload<'a> {
    pub(super) namespace: &'a str,
    pub(super) labels: Option<&'a BTreeMap<String, String>>,
    spec: Option<&'a PodSpec>,
}

impl Workload<'_> {
    /// The service account its pods run as.
    pub(super) fn service_account(&self) -> &str {
        self.spec
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
    }

    pub(super) fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
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
pub(super) struct Index<'a> {
    workloads: HashMap<&'a str, Vec<Workload<'a>>>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
}

impl<'a> Index<'a> {
    pub(super) fn new(s: &'a Snapshot) -> Self {
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

    /// The workloads of namespace `ns`.
    pub(super) fn in_namespace(&self, ns: &str) -> &[Workload<'a>] {
        self.workloads.get(ns).map_or(&[], Vec::as_slice)
    }

    /// The container ports a Service port sends traffic to. `None` when the
    /// Service or the port does not exist, or a named target port is found
    /// on no selected pod.
    pub(super) fn service_port(&self, ns: &str, service: &str, port: &PortName) -> Option<Vec<u16>> {
        let svc = self.services.get(&(ns, service))?;
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
                let found: BTreeSet<u16> = self
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
