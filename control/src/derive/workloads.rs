//! Workloads as derivation sees them: the distinct [`Workload`]s (labels,
//! service account, container ports) of a namespace's pods and pod templates,
//! as the [`ClusterState`] counts them, and the Services whose ports resolve
//! through them.

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::PortName;
use crate::state::{ClusterState, TargetPort, Workload};

/// The service account of a pod that names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Whether `matchLabels` selects an object with `labels`: every selector
/// label present with the same value (an empty selector selects everything).
pub fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The workloads of namespace `ns` that `selector` selects, with the number
/// of pods and templates that have each.
pub(super) fn selected<'s>(
    state: &'s ClusterState,
    ns: &str,
    selector: &'s BTreeMap<String, String>,
) -> impl Iterator<Item = (&'s Workload, u32)> + 's {
    state
        .namespace(ns)
        .into_iter()
        .flat_map(|s| s.workloads())
        .filter(move |(w, _)| selects(selector, Some(&w.labels)))
}

/// The container ports a Service port sends traffic to. `None` when the
/// Service or the port does not exist, or a named target port is found on no
/// selected pod.
pub(super) fn service_port(state: &ClusterState, ns: &str, service: &str, port: &PortName) -> Option<Vec<u16>> {
    let svc = state.namespace(ns)?.service(service)?;
    let sp = svc.ports.iter().find(|p| match port {
        PortName::Number(n) => p.port == i32::from(*n),
        PortName::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })?;
    match &sp.target {
        TargetPort::Same => u16::try_from(sp.port).ok().map(|p| vec![p]),
        TargetPort::Number(n) => u16::try_from(*n).ok().map(|p| vec![p]),
        TargetPort::Name(name) => {
            if svc.selector.is_empty() {
                return None;
            }
            let found: BTreeSet<u16> = selected(state, ns, &svc.selector)
                .flat_map(|(w, _)| w.named_ports.iter())
                .filter(|(n, _)| n == name)
                .map(|(_, p)| *p)
                .collect();
            (!found.is_empty()).then(|| found.into_iter().collect())
        }
    }
}
