//! What the state keeps of each watched object: only the fields derivation,
//! planning, `check` and `lint` read. Everything else a Kubernetes object
//! carries (`managedFields`, `status`, annotations, container images, env,
//! volumes: most of a 9 KB Pod) is never stored; the wire types in
//! [`super::wire`] do not even build it.

use std::collections::BTreeMap;

use crate::crd::{AllowlistSpec, AllowlistStatus};
use crate::derive::Enforcement;

/// What a pod or pod template contributes to derivation. Pods of one
/// ReplicaSet share one `Workload` (the state counts them), so 100,000 pods
/// of 10,000 Deployments hold 10,000 or so of these, not 100,000.
///
/// Kept: labels (selectors match them; the packing of a namespace groups
/// policies by them), the service account (a caller's principal), named
/// container ports (a Service's named `targetPort` resolves through them) and
/// the first container port (what `check` assumes when no port is given).
/// Not kept: the pod's phase and deletion time: a pod counts, and its
/// principal stays admitted, as long as its object exists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Workload {
    /// The pod's (or pod template's) labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.serviceAccountName`, `default` when absent or empty.
    pub service_account: String,
    /// `(name, containerPort)` of every named container port, in container order.
    pub named_ports: Vec<(String, u16)>,
    /// The first container port of the first container that has one.
    pub first_port: Option<u16>,
}

/// The kind of object that owns a pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemplateKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl TemplateKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
        }
    }
}

/// A Service's `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// Absent: the Service port itself.
    Same,
    /// A container port number.
    Number(i32),
    /// A container port name, resolved through the selected pods.
    Name(String),
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name`.
    pub name: Option<String>,
    /// `port`.
    pub port: i32,
    /// `targetPort`.
    pub target: TargetPort,
}

/// What derivation reads of a Service: `servicePorts` references resolve
/// through its ports and its selector. Nothing else is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `metadata.annotations["meshward.io/api-description"]`
    /// ([`API_ANNOTATION`](crate::apidesc::API_ANNOTATION)): the API
    /// descriptions of the workloads it selects, for `learn` and `lint`.
    pub api_descriptions: Option<Box<str>>,
}

/// An Allowlist: its spec (the input of derivation), its generation (stamped
/// on its status) and its status (what the writer compares with). When the
/// spec could not be read into the Rust types (a value the CRD schema let
/// through, a newer version), `spec` holds what could be read (selector and
/// mode, no rule) and `unreadable` says why: derivation treats it as invalid
/// and fails closed for its workloads, without stopping the others.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredAllowlist {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The spec, or what could be read of it.
    pub spec: AllowlistSpec,
    /// Why the spec could not be read, when so.
    pub unreadable: Option<String>,
    /// `status`, when it could be read.
    pub status: Option<AllowlistStatus>,
    /// `metadata.resourceVersion`: the writer tells by it whether the watch
    /// has shown its own last write yet.
    pub resource_version: Option<String>,
    /// `metadata.uid`, for the Events about it.
    pub uid: Option<String>,
}

impl StoredAllowlist {
    /// Whether `other` differs in what derivation reads (not only in status).
    pub fn derivation_differs(&self, other: &Self) -> bool {
        self.generation != other.generation || self.spec != other.spec || self.unreadable != other.unreadable
    }
}

/// A WasmPlugin meshward owns (labelled
/// [`MANAGED_BY`](crate::derive::MANAGED_BY)), as the cluster holds it: what
/// the writer compares the desired WasmPlugin with, and the configuration in
/// force that derivation falls back on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedPlugin {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The `spec` fields meshward manages ([`MANAGED_SPEC_FIELDS`]), as
    /// compact JSON with sorted keys: the whole spec is not kept.
    pub managed: Box<str>,
    /// Its uid (a delete is conditional on it).
    pub uid: Option<String>,
    /// Its resource version (a delete is conditional on it).
    pub resource_version: Option<String>,
    /// Other field managers that *apply* (server-side apply) some of the
    /// fields meshward sets, as `manager (spec.a, spec.b)`: another
    /// declarative owner (a GitOps tool, say), whose fields meshward reports
    /// instead of taking them back in a loop. Imperative edits (`kubectl
    /// edit`, operation `Update`) are not listed: they are drift, and the
    /// next apply restores the object.
    pub foreign_appliers: Vec<String>,
}

/// The managers other than `own` that apply any of [`MANAGED_SPEC_FIELDS`],
/// from an object's `metadata.managedFields`.
pub fn foreign_appliers(
    managed: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry],
    own: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for entry in managed {
        if entry.operation.as_deref() != Some("Apply") || entry.manager.as_deref() == Some(own) {
            continue;
        }
        let fields: Vec<&str> = entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:spec"))
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flat_map(|spec| spec.keys())
            .filter_map(|k| k.strip_prefix("f:"))
            .filter(|f| MANAGED_SPEC_FIELDS.contains(f))
            .collect();
        if !fields.is_empty() {
            let list: Vec<String> = fields.iter().map(|f| format!("spec.{f}")).collect();
            out.push(format!(
                "{} ({})",
                entry.manager.as_deref().unwrap_or("?"),
                list.join(", ")
            ));
        }
    }
    out
}

/// The `spec` fields meshward sets on a WasmPlugin. Only these are kept and
/// compared: a field another field manager added (server-side apply keeps
/// it) is not a difference.
pub const MANAGED_SPEC_FIELDS: [&str; 8] = [
    "url",
    "sha256",
    "pluginName",
    "phase",
    "match",
    "failStrategy",
    "selector",
    "pluginConfig",
];

/// The managed fields of a WasmPlugin `spec`, as compact JSON with sorted keys.
pub fn managed_fields(spec: &serde_json::Value) -> Box<str> {
    let managed: serde_json::Map<String, serde_json::Value> = MANAGED_SPEC_FIELDS
        .iter()
        .filter_map(|f| Some(((*f).to_string(), spec.get(*f)?.clone())))
        .collect();
    serde_json::Value::Object(managed).to_string().into_boxed_str()
}

/// What the state keeps of a Namespace: whether meshward is enabled there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NamespaceEntry {
    /// From the [`ENFORCEMENT_LABEL`](crate::derive::ENFORCEMENT_LABEL).
    pub enforcement: Option<Enforcement>,
}
