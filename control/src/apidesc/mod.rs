//! API descriptions that `to` entries name: protobuf descriptor sets for
//! `grpc` entries ([`grpc`]) and OpenAPI documents for `openapi` entries
//! ([`openapi`]), read from ConfigMaps.
//!
//! A ConfigMap is read only when it carries the label [`API_LABEL`]
//! (`meshward.io/api-description: "true"`): the service watches ConfigMaps
//! with that label selector, so the many ConfigMaps of a cluster (every
//! namespace's `kube-root-ca.crt`, application configuration) are never
//! transferred or held; the offline commands apply the same rule to the
//! ConfigMaps of their manifests, so both judge an Allowlist alike.
//!
//! Each key is parsed once, when the ConfigMap arrives, into a slim model:
//! for a descriptor set, the services and the names and idempotency levels of
//! their methods; for an OpenAPI document, each operation's key, method,
//! tags and path patterns. Nothing else (messages, schemas, descriptions) is
//! kept.
//!
//! Which workloads serve which description: those an Allowlist naming it
//! selects, and those [`described_workloads`] finds through the annotation
//! [`API_ANNOTATION`] (`meshward.io/api-description: <configmap>/<key>,...`)
//! on their Deployment, StatefulSet or DaemonSet or on a Service selecting
//! them. `lint` reports the operations of those descriptions no rule admits.
//!
//! ```text
//! ConfigMap (labelled) ──▶ ApiConfigMap: key ─▶ ApiKey
//!   binaryData[key] ─▶ FileDescriptorSet (prost-types) ─▶ GrpcApi: service ─▶ [method, idempotency]
//!   data[key]       ─▶ OpenAPI 3.0/3.1 (YAML or JSON) ─▶ OpenApi: [operation: key, method, tags, patterns]
//! Allowlist grpc.api {configMap, key}    ──lookup──▶ GrpcApi ──▶ methods expanded or checked
//! Allowlist openapi.api {configMap, key} ──lookup──▶ OpenApi ──▶ (methods, paths) entries
//! ```

pub mod grpc;
pub mod openapi;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use thiserror::Error;

use crate::derive::selects;
use crate::state::{Snapshot, TemplateKind};

pub use grpc::{GrpcApi, GrpcMethod, Idempotency};
pub use openapi::OpenApi;

/// The label (key, value) a ConfigMap must carry for meshward to read it as
/// API descriptions.
pub const API_LABEL: (&str, &str) = ("meshward.io/api-description", "true");

/// One key of a labelled ConfigMap, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKey {
    /// A key of `binaryData`: a `FileDescriptorSet`, or why it is not one.
    Descriptors(Result<Arc<GrpcApi>, String>),
    /// A key of `data` (text): an OpenAPI document, or why it is not one.
    /// Descriptor sets are binary: `kubectl create configmap --from-file`
    /// puts a `.binpb` file in `binaryData`, and a YAML or JSON file in `data`.
    Document(Result<Arc<OpenApi>, String>),
}

/// What the state keeps of a labelled ConfigMap: each key, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiConfigMap {
    /// Keys of `binaryData` and `data`, sorted.
    pub keys: BTreeMap<String, ApiKey>,
}

impl ApiConfigMap {
    /// Parses the keys of a ConfigMap: `binary_data` as descriptor sets,
    /// `data` as OpenAPI documents.
    pub fn parse<'a>(
        binary_data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        data: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut keys = BTreeMap::new();
        for (key, text) in data {
            let parsed = OpenApi::parse(text).map(Arc::new).map_err(|e| e.to_string());
            keys.insert(key.to_string(), ApiKey::Document(parsed));
        }
        for (key, bytes) in binary_data {
            let parsed = GrpcApi::decode(bytes).map(Arc::new).map_err(|e| e.to_string());
            keys.insert(key.to_string(), ApiKey::Descriptors(parsed));
        }
        Self { keys }
    }
}

/// Why an API description could not be found or used. The messages name
/// neither the Allowlist nor its field: the caller prefixes the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// No ConfigMap of that name carries [`API_LABEL`] in the namespace.
    #[error(
        "no ConfigMap {namespace}/{name} labelled {}={} (meshward reads only ConfigMaps with that label)",
        API_LABEL.0,
        API_LABEL.1
    )]
    NoConfigMap {
        /// The namespace (the Allowlist's).
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// The ConfigMap has no such key.
    #[error("ConfigMap {namespace}/{name} has no key {key} (has: {})", list(has))]
    NoKey {
        /// The namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The key asked for.
        key: String,
        /// The keys it has.
        has: Vec<String>,
    },
    /// The key is in `data`, where a descriptor set cannot be.
    #[error(
        "ConfigMap {namespace}/{name} has {key} in data, not binaryData: a FileDescriptorSet is binary \
         (`kubectl create configmap --from-file` puts it in binaryData)"
    )]
    NotBinary {
        /// The namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The key.
        key: String,
    },
    /// The key is in `binaryData`, where an OpenAPI document is not read.
    #[error(
        "ConfigMap {namespace}/{name} has {key} in binaryData, not data: an OpenAPI document is text \
         (`kubectl create configmap --from-file` puts a UTF-8 file in data)"
    )]
    NotText {
        /// The namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The key.
        key: String,
    },
    /// The key does not decode as a `FileDescriptorSet`, or does not parse
    /// as an OpenAPI document.
    #[error("ConfigMap {namespace}/{name} key {key} is not {what}: {reason}")]
    Undecodable {
        /// `a FileDescriptorSet` or `an OpenAPI 3 document`.
        what: &'static str,
        /// The namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The key.
        key: String,
        /// What the decoder said.
        reason: String,
    },
}

/// The most names an error lists: a status condition's message is limited
/// (32 KiB), and a large document has thousands of operations.
pub const LISTED: usize = 50;

/// `a, b, c`, or `none`; past [`LISTED`] names, `... and N more`.
pub(crate) fn list(items: &[String]) -> String {
    match items {
        [] => "none".into(),
        _ if items.len() > LISTED => {
            let shown = items.get(..LISTED).unwrap_or_default().join(", ");
            format!("{shown}, ... and {} more", items.len() - LISTED)
        }
        _ => items.join(", "),
    }
}

/// The key `key` of the labelled ConfigMap `name` of namespace `namespace`
/// (`config_maps` finds a ConfigMap of that namespace by name).
fn lookup<'a>(
    config_maps: impl FnOnce(&str) -> Option<&'a ApiConfigMap>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<&'a ApiKey, ApiError> {
    let cm = config_maps(name).ok_or_else(|| ApiError::NoConfigMap {
        namespace: namespace.into(),
        name: name.into(),
    })?;
    cm.keys.get(key).ok_or_else(|| ApiError::NoKey {
        namespace: namespace.into(),
        name: name.into(),
        key: key.into(),
        has: cm.keys.keys().cloned().collect(),
    })
}

/// The descriptor set at `key` of the labelled ConfigMap `name`.
pub fn descriptors<'a>(
    config_maps: impl FnOnce(&str) -> Option<&'a ApiConfigMap>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<&'a Arc<GrpcApi>, ApiError> {
    let at = || (namespace.to_string(), name.to_string(), key.to_string());
    match lookup(config_maps, namespace, name, key)? {
        ApiKey::Descriptors(Ok(api)) => Ok(api),
        ApiKey::Descriptors(Err(reason)) => {
            let (namespace, name, key) = at();
            Err(ApiError::Undecodable {
                what: "a FileDescriptorSet",
                namespace,
                name,
                key,
                reason: reason.clone(),
            })
        }
        ApiKey::Document(_) => {
            let (namespace, name, key) = at();
            Err(ApiError::NotBinary { namespace, name, key })
        }
    }
}

/// The OpenAPI document at `key` of the labelled ConfigMap `name`.
pub fn document<'a>(
    config_maps: impl FnOnce(&str) -> Option<&'a ApiConfigMap>,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<&'a Arc<OpenApi>, ApiError> {
    let at = || (namespace.to_string(), name.to_string(), key.to_string());
    match lookup(config_maps, namespace, name, key)? {
        ApiKey::Document(Ok(doc)) => Ok(doc),
        ApiKey::Document(Err(reason)) => {
            let (namespace, name, key) = at();
            Err(ApiError::Undecodable {
                what: "an OpenAPI 3 document",
                namespace,
                name,
                key,
                reason: reason.clone(),
            })
        }
        ApiKey::Descriptors(_) => {
            let (namespace, name, key) = at();
            Err(ApiError::NotText { namespace, name, key })
        }
    }
}

/// The annotation that says which API descriptions a workload serves, on a
/// Deployment, StatefulSet or DaemonSet, or on a Service (for the workloads
/// it selects): `<configmap>/<key>`, several separated by commas. The
/// ConfigMap is a [labelled](API_LABEL) one of the object's namespace.
pub const API_ANNOTATION: &str = "meshward.io/api-description";

/// A key of a labelled ConfigMap, as the annotation names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DescriptionRef {
    /// The ConfigMap's name.
    pub config_map: String,
    /// The key.
    pub key: String,
}

impl fmt::Display for DescriptionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.config_map, self.key)
    }
}

/// A workload (the pod template of a Deployment, StatefulSet or DaemonSet)
/// whose annotation, or a Service's that selects it, names API descriptions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DescribedWorkload {
    /// The namespace.
    pub namespace: String,
    /// The kind owning the pod template.
    pub kind: TemplateKind,
    /// The owner's name.
    pub name: String,
    /// The descriptions, sorted, each once, with the first object whose
    /// annotation names it (`Deployment shop/petstore`, `Service shop/petstore`).
    pub apis: BTreeMap<DescriptionRef, String>,
}

/// An annotation entry that is not `<configmap>/<key>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Error)]
#[error("{object}: metadata.annotations[{API_ANNOTATION}]: {entry:?} is not <configmap>/<key>")]
pub struct BadAnnotation {
    /// `Kind namespace/name` of the annotated object.
    pub object: String,
    /// The entry as written.
    pub entry: String,
}

/// The workloads of `snapshot` that carry [`API_ANNOTATION`] on their
/// Deployment, StatefulSet or DaemonSet, or whose pod template labels a
/// Service with the annotation selects (a Service without a selector selects
/// nothing), sorted by namespace, kind and name; and the annotation entries
/// that are not `<configmap>/<key>`. Whether the ConfigMap and key exist is
/// not checked here: [`descriptors`] and [`document`] say.
pub fn described_workloads(snapshot: &Snapshot) -> (Vec<DescribedWorkload>, Vec<BadAnnotation>) {
    fn template_labels(t: Option<&PodTemplateSpec>) -> Option<&BTreeMap<String, String>> {
        t.and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.as_ref())
    }
    let mut bad = Vec::new();
    let mut parse = |object: String, annotations: Option<&BTreeMap<String, String>>| -> Vec<(DescriptionRef, String)> {
        let Some(value) = annotations.and_then(|a| a.get(API_ANNOTATION)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in value.split(',').map(str::trim) {
            match entry.split_once('/') {
                Some((cm, key)) if !cm.is_empty() && !key.is_empty() && !key.contains('/') => out.push((
                    DescriptionRef {
                        config_map: cm.into(),
                        key: key.into(),
                    },
                    object.clone(),
                )),
                _ => bad.push(BadAnnotation {
                    object: object.clone(),
                    entry: entry.into(),
                }),
            }
        }
        out
    };
    // (namespace, kind, name) → (template labels, descriptions).
    type Templates =
        BTreeMap<(String, TemplateKind, String), (BTreeMap<String, String>, Vec<(DescriptionRef, String)>)>;
    let mut templates: Templates = BTreeMap::new();
    let mut add = |kind: TemplateKind, meta: &ObjectMeta, labels: Option<&BTreeMap<String, String>>| {
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let apis = parse(format!("{} {ns}/{name}", kind.as_str()), meta.annotations.as_ref());
        templates.insert((ns, kind, name), (labels.cloned().unwrap_or_default(), apis));
    };
    for d in &snapshot.deployments {
        add(
            TemplateKind::Deployment,
            &d.metadata,
            template_labels(d.spec.as_ref().map(|s| &s.template)),
        );
    }
    for s in &snapshot.stateful_sets {
        add(
            TemplateKind::StatefulSet,
            &s.metadata,
            template_labels(s.spec.as_ref().map(|s| &s.template)),
        );
    }
    for d in &snapshot.daemon_sets {
        add(
            TemplateKind::DaemonSet,
            &d.metadata,
            template_labels(d.spec.as_ref().map(|s| &s.template)),
        );
    }
    for svc in &snapshot.services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let apis = parse(format!("Service {ns}/{name}"), svc.metadata.annotations.as_ref());
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .filter(|s| !s.is_empty());
        let (false, Some(selector)) = (apis.is_empty(), selector) else {
            continue;
        };
        for ((tns, _, _), (labels, described)) in templates.iter_mut() {
            if *tns == ns && selects(selector, Some(labels)) {
                described.extend(apis.iter().cloned());
            }
        }
    }
    let mut out = Vec::new();
    for ((namespace, kind, name), (_, described)) in templates {
        if described.is_empty() {
            continue;
        }
        let mut apis = BTreeMap::new();
        for (api, object) in described {
            apis.entry(api).or_insert(object);
        }
        out.push(DescribedWorkload {
            namespace,
            kind,
            name,
            apis,
        });
    }
    bad.sort();
    bad.dedup();
    (out, bad)
}
