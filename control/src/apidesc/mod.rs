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

use meshward_filter::Request;
use thiserror::Error;

pub use grpc::{GrpcApi, GrpcMethod, Idempotency};
pub use openapi::OpenApi;

use crate::derive::selects;
use crate::state::{ClusterState, TemplateKind};

/// The request that stands for a call of an operation: `method path`, as a
/// gRPC call (`content-type: application/grpc`) when `grpc`, from an
/// anonymous caller on no particular host or port. `lint` and `learn` judge
/// operations with it against the filter's engine.
pub fn operation_request<'a>(method: &'a str, path: &'a str, grpc: bool) -> Request<'a> {
    const GRPC: &[(&str, &str)] = &[("content-type", "application/grpc")];
    Request {
        connection: Default::default(),
        method,
        path,
        authority: None,
        port: None,
        principal: None,
        auth: None,
        headers: if grpc { GRPC } else { &[] },
    }
}

/// The label (key, value) a ConfigMap must carry for meshward to read it as
/// API descriptions.
pub const API_LABEL: (&str, &str) = ("meshward.io/api-description", "true");

/// The annotation of a Deployment, StatefulSet, DaemonSet or Service naming
/// the API descriptions its workloads serve: `<configmap>/<key>`, several
/// separated by commas (`inventory-api/inventory.binpb, petstore-api/openapi.yaml`).
/// The ConfigMaps are labelled ConfigMaps of the object's namespace.
pub const API_ANNOTATION: &str = "meshward.io/api-description";

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
    /// An item of [`API_ANNOTATION`] is not `<configmap>/<key>`.
    #[error("{item:?} is not <configmap>/<key>")]
    Annotation {
        /// The item, trimmed.
        item: String,
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

/// A workload whose annotation, or a Service's that selects it, names API
/// descriptions, as `lint` reports on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnnotatedWorkload {
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

/// Every workload of `state` that [`described_workloads`] finds, sorted by
/// namespace, kind and name, with the descriptions its annotations name
/// (whether or not they resolve: `lint` says why one does not), and the
/// annotation entries that are not `<configmap>/<key>`.
pub fn annotated_workloads(state: &ClusterState) -> (Vec<AnnotatedWorkload>, Vec<BadAnnotation>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (namespace, _) in state.namespaces() {
        for w in described_workloads(state, namespace) {
            // `Deployment/orders` → `Deployment shop/orders`.
            let object = |source: &str| match source.split_once('/') {
                Some((kind, name)) => format!("{kind} {namespace}/{name}"),
                None => source.to_string(),
            };
            let mut apis = BTreeMap::new();
            for d in &w.apis {
                match &d.api {
                    Err(ApiError::Annotation { item }) => bad.push(BadAnnotation {
                        object: object(&d.source),
                        entry: item.clone(),
                    }),
                    _ => {
                        let key = DescriptionRef {
                            config_map: d.config_map.clone(),
                            key: d.key.clone(),
                        };
                        apis.entry(key).or_insert_with(|| object(&d.source));
                    }
                }
            }
            if !apis.is_empty() {
                out.push(AnnotatedWorkload {
                    namespace: namespace.to_string(),
                    kind: w.kind,
                    name: w.name,
                    apis,
                });
            }
        }
    }
    out.sort();
    bad.sort();
    bad.dedup();
    (out, bad)
}

/// A parsed API description, as a workload's annotation finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api<'a> {
    /// A descriptor set (a key of `binaryData`).
    Grpc(&'a Arc<GrpcApi>),
    /// An OpenAPI document (a key of `data`).
    OpenApi(&'a Arc<OpenApi>),
}

/// One API description a workload carries, through [`API_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described<'a> {
    /// The object whose annotation names it: `Deployment/orders`,
    /// `Service/orders`.
    pub source: String,
    /// The ConfigMap's name (empty when the item is malformed).
    pub config_map: String,
    /// The key (empty when the item is malformed).
    pub key: String,
    /// The description, or why it cannot be used.
    pub api: Result<Api<'a>, ApiError>,
}

/// A workload that carries API descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedWorkload<'a> {
    /// The kind of the object owning the pod template.
    pub kind: TemplateKind,
    /// Its name: what request log lines say in `workload`.
    pub name: String,
    /// Its descriptions: those its own annotation names, then those of the
    /// Services selecting its pod template (Services by name), each
    /// (ConfigMap, key) once.
    pub apis: Vec<Described<'a>>,
}

/// The `(configmap, key)` items of an [`API_ANNOTATION`] value; a malformed
/// item is an error naming it.
fn annotation_items(value: &str) -> Vec<Result<(String, String), ApiError>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|item| match item.split_once('/') {
            Some((cm, key)) if !cm.is_empty() && !key.is_empty() && !key.contains('/') => {
                Ok((cm.to_string(), key.to_string()))
            }
            _ => Err(ApiError::Annotation { item: item.to_string() }),
        })
        .collect()
}

/// The workloads of `namespace` that carry API descriptions: each
/// Deployment, StatefulSet and DaemonSet (by kind, then name) whose own
/// metadata, or the metadata of a Service selecting its pod template, has
/// [`API_ANNOTATION`], with the descriptions resolved against the labelled
/// ConfigMaps of `namespace` in `state`. Workloads without any are left out;
/// bare Pods are not considered. Deterministic.
pub fn described_workloads<'a>(state: &'a ClusterState, namespace: &str) -> Vec<DescribedWorkload<'a>> {
    let Some(ns) = state.namespace(namespace) else {
        return Vec::new();
    };
    let resolve = |cm: &str, key: &str| -> Result<Api<'a>, ApiError> {
        match lookup(|n| ns.config_map(n), namespace, cm, key)? {
            ApiKey::Descriptors(_) => descriptors(|n| ns.config_map(n), namespace, cm, key).map(Api::Grpc),
            ApiKey::Document(_) => document(|n| ns.config_map(n), namespace, cm, key).map(Api::OpenApi),
        }
    };
    let mut out = Vec::new();
    for (kind, name, workload) in ns.templates() {
        let Some(workload) = workload else { continue };
        let own = ns
            .template_api_descriptions(kind, name)
            .map(|v| (format!("{}/{name}", kind.as_str()), v));
        let services = ns
            .services()
            .filter(|(_, s)| !s.selector.is_empty() && selects(&s.selector, Some(&workload.labels)))
            .filter_map(|(n, s)| s.api_descriptions.as_deref().map(|v| (format!("Service/{n}"), v)));
        let mut apis: Vec<Described<'a>> = Vec::new();
        for (source, value) in own.into_iter().chain(services) {
            for item in annotation_items(value) {
                let described = match item {
                    Ok((config_map, key)) => {
                        if apis.iter().any(|d| d.config_map == config_map && d.key == key) {
                            continue;
                        }
                        let api = resolve(&config_map, &key);
                        Described {
                            source: source.clone(),
                            config_map,
                            key,
                            api,
                        }
                    }
                    Err(e) => Described {
                        source: source.clone(),
                        config_map: String::new(),
                        key: String::new(),
                        api: Err(e),
                    },
                };
                apis.push(described);
            }
        }
        if !apis.is_empty() {
            out.push(DescribedWorkload {
                kind,
                name: name.to_string(),
                apis,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(docs: &str) -> ClusterState {
        let sources = [crate::manifests::Source {
            name: "m.yaml".into(),
            text: docs.into(),
        }];
        crate::manifests::load_sources(&sources, "cluster.local")
            .unwrap()
            .snapshot
            .to_state()
    }

    #[test]
    fn workloads_carry_the_descriptions_of_their_annotation_and_their_services() {
        let s = state(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
  namespace: shop
  annotations: {meshward.io/api-description: "apis/orders.yaml, bad, apis/missing.yaml", other: x}
spec:
  selector: {matchLabels: {app: orders}}
  template: {metadata: {labels: {app: orders}}, spec: {containers: []}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain, namespace: shop}
spec:
  selector: {matchLabels: {app: plain}}
  template: {metadata: {labels: {app: plain}}, spec: {containers: []}}
---
apiVersion: v1
kind: Service
metadata:
  name: orders
  namespace: shop
  annotations: {meshward.io/api-description: "apis/orders.yaml,nope/x"}
spec: {selector: {app: orders}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: apis, namespace: shop, labels: {meshward.io/api-description: "true"}}
data:
  orders.yaml: "openapi: 3.0.0\npaths: {/orders: {get: {operationId: list}}}\n"
"#,
        );
        let described = described_workloads(&s, "shop");
        assert_eq!(described.len(), 1, "{described:?}");
        let w = &described[0];
        assert_eq!((w.kind, w.name.as_str()), (TemplateKind::Deployment, "orders"));
        let summary: Vec<(String, String, String, Result<usize, String>)> = w
            .apis
            .iter()
            .map(|d| {
                let api = match &d.api {
                    Ok(Api::OpenApi(doc)) => Ok(doc.operations().len()),
                    Ok(Api::Grpc(_)) => Ok(0),
                    Err(e) => Err(e.to_string()),
                };
                (d.source.clone(), d.config_map.clone(), d.key.clone(), api)
            })
            .collect();
        let s = |x: &str| x.to_string();
        assert_eq!(
            summary,
            [
                (s("Deployment/orders"), s("apis"), s("orders.yaml"), Ok(1)),
                (
                    s("Deployment/orders"),
                    s(""),
                    s(""),
                    Err(s("\"bad\" is not <configmap>/<key>"))
                ),
                (
                    s("Deployment/orders"),
                    s("apis"),
                    s("missing.yaml"),
                    Err(s("ConfigMap shop/apis has no key missing.yaml (has: orders.yaml)"))
                ),
                (
                    s("Service/orders"),
                    s("nope"),
                    s("x"),
                    Err(s("no ConfigMap shop/nope labelled meshward.io/api-description=true \
                         (meshward reads only ConfigMaps with that label)"))
                ),
            ]
        );
    }
}
