//! The watched kinds as they come off the wire, deserialized straight into
//! small types: serde skips every field these types do not name without
//! building it, so a Pod's `managedFields`, `status`, env and volumes cost
//! parsing time but no memory. Each type is a [`kube::Resource`], so kube's
//! watcher lists and watches it like any other; [`Watched::into_object`]
//! turns it into what [`ClusterState`](super::ClusterState) keeps.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::apidesc::{ApiConfigMap, API_ANNOTATION, API_LABEL};

use super::objects::{
    foreign_appliers, managed_fields, NamespaceEntry, OwnedPlugin, Service, ServicePort, StoredAllowlist, TargetPort,
    TemplateKind, Workload,
};
use super::{Body, Kind, Object};
use crate::crd::{AllowlistAction, AllowlistSpec};
use crate::derive::{Enforcement, DEFAULT_SERVICE_ACCOUNT, ENFORCEMENT_LABEL};
use crate::serve::FIELD_MANAGER;

/// A kind the service watches: deserialized from the API, turned into what
/// the state keeps.
pub trait Watched: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// The kind in the state.
    const KIND: Kind;

    /// What the state keeps; `None` for an object without a name.
    fn into_object(self) -> Option<Object>;
}

/// The metadata fields kept of every object: name, namespace, uid, resource
/// version, generation, labels, and of the annotations only
/// [`API_ANNOTATION`]. Everything else (`managedFields` above all, the other
/// annotations, owner references) is skipped while parsing.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaWire {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "api_annotation")]
    annotations: Option<String>,
}

/// The value of [`API_ANNOTATION`] in `metadata.annotations`; the other
/// annotations (`kubectl.kubernetes.io/last-applied-configuration` can be
/// large) are skipped without being built.
fn api_annotation<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == API_ANNOTATION {
                    found = map.next_value::<Option<String>>()?;
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    d.deserialize_option(Visit)
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<MetaWire>::deserialize(d)?.unwrap_or_default();
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        labels: m.labels,
        annotations: m.annotations.map(|a| BTreeMap::from([(API_ANNOTATION.to_string(), a)])),
        ..ObjectMeta::default()
    })
}

/// The value of [`API_ANNOTATION`] a slim `metadata` kept.
fn api_descriptions(metadata: &ObjectMeta) -> Option<Box<str>> {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(API_ANNOTATION))
        .map(|v| v.as_str().into())
}

/// Implements [`kube::Resource`] for a wire type with static type information.
macro_rules! resource {
    ($ty:ty, $kind:literal, $group:literal, $version:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// `spec.containers[].ports[]` of a pod spec.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct PortWire {
    name: Option<String>,
    #[serde(default)]
    container_port: i32,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct ContainerWire {
    #[serde(default)]
    ports: Vec<PortWire>,
}

/// The parts of a pod spec derivation reads.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecWire {
    service_account_name: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerWire>,
}

impl PodSpecWire {
    fn workload(&self, labels: Option<BTreeMap<String, String>>) -> Workload {
        let ports = || self.containers.iter().flat_map(|c| c.ports.iter());
        Workload {
            labels: labels.unwrap_or_default(),
            service_account: self
                .service_account_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string()),
            named_ports: ports()
                .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.container_port).ok()?)))
                .collect(),
            first_port: ports().next().and_then(|p| u16::try_from(p.container_port).ok()),
        }
    }
}

fn named(metadata: &ObjectMeta) -> Option<(String, String)> {
    let name = metadata.name.clone()?;
    let namespace = metadata.namespace.clone().unwrap_or_else(|| "default".into());
    Some((namespace, name))
}

/// A Pod: labels, service account, container ports.
#[derive(Deserialize, Clone, Debug)]
pub struct PodWire {
    #[serde(deserialize_with = "slim_meta", default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: PodSpecWire,
}
resource!(PodWire, "Pod", "", "v1", "pods", NamespaceResourceScope);

impl Watched for PodWire {
    const KIND: Kind = Kind::Pod;

    fn into_object(mut self) -> Option<Object> {
        let (namespace, name) = named(&self.metadata)?;
        let workload = self.spec.workload(self.metadata.labels.take());
        Some(Object {
            namespace,
            name,
            body: Body::Pod(Arc::new(workload)),
        })
    }
}

#[derive(Deserialize, Clone, Debug, Default)]
struct TemplateMetaWire {
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct TemplateWire {
    #[serde(default)]
    metadata: TemplateMetaWire,
    #[serde(default)]
    spec: PodSpecWire,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct OwnerSpecWire {
    template: Option<TemplateWire>,
}

/// Defines the wire type of a kind that owns a pod template.
macro_rules! template_owner {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $plural:literal, $tk:expr) => {
        $(#[$doc])*
        #[derive(Deserialize, Clone, Debug)]
        pub struct $ty {
            #[serde(deserialize_with = "slim_meta", default)]
            metadata: ObjectMeta,
            #[serde(default)]
            spec: OwnerSpecWire,
        }
        resource!($ty, $kind, "apps", "v1", $plural, NamespaceResourceScope);

        impl Watched for $ty {
            const KIND: Kind = Kind::$ty;

            fn into_object(self) -> Option<Object> {
                let (namespace, name) = named(&self.metadata)?;
                let described = api_descriptions(&self.metadata);
                let workload = self
                    .spec
                    .template
                    .map(|t| Arc::new(t.spec.workload(t.metadata.labels)));
                Some(Object {
                    namespace,
                    name,
                    body: Body::Template($tk, workload, described),
                })
            }
        }
    };
}

template_owner!(
    /// A Deployment: its pod template's labels, service account and ports.
    Deployment,
    "Deployment",
    "deployments",
    TemplateKind::Deployment
);
template_owner!(
    /// A StatefulSet: its pod template's labels, service account and ports.
    StatefulSet,
    "StatefulSet",
    "statefulsets",
    TemplateKind::StatefulSet
);
template_owner!(
    /// A DaemonSet: its pod template's labels, service account and ports.
    DaemonSet,
    "DaemonSet",
    "daemonsets",
    TemplateKind::DaemonSet
);

#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
struct ServicePortWire {
    name: Option<String>,
    #[serde(default)]
    port: i32,
    target_port: Option<IntOrString>,
}

#[derive(Deserialize, Clone, Debug, Default)]
struct ServiceSpecWire {
    selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ports: Vec<ServicePortWire>,
}

/// A Service: its selector and ports.
#[derive(Deserialize, Clone, Debug)]
pub struct ServiceWire {
    #[serde(deserialize_with = "slim_meta", default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: ServiceSpecWire,
}
resource!(ServiceWire, "Service", "", "v1", "services", NamespaceResourceScope);

impl Watched for ServiceWire {
    const KIND: Kind = Kind::Service;

    fn into_object(self) -> Option<Object> {
        let (namespace, name) = named(&self.metadata)?;
        let ports = self
            .spec
            .ports
            .into_iter()
            .map(|p| ServicePort {
                name: p.name,
                port: p.port,
                target: match p.target_port {
                    None => TargetPort::Same,
                    Some(IntOrString::Int(n)) => TargetPort::Number(n),
                    Some(IntOrString::String(s)) => TargetPort::Name(s),
                },
            })
            .collect();
        let service = Service {
            selector: self.spec.selector.unwrap_or_default(),
            ports,
            api_descriptions: api_descriptions(&self.metadata),
        };
        Some(Object {
            namespace,
            name,
            body: Body::Service(service),
        })
    }
}

/// A ServiceAccount: its name only (for `lint` and `check`).
#[derive(Deserialize, Clone, Debug)]
pub struct ServiceAccountWire {
    #[serde(deserialize_with = "slim_meta", default)]
    metadata: ObjectMeta,
}
resource!(
    ServiceAccountWire,
    "ServiceAccount",
    "",
    "v1",
    "serviceaccounts",
    NamespaceResourceScope
);

impl Watched for ServiceAccountWire {
    const KIND: Kind = Kind::ServiceAccount;

    fn into_object(self) -> Option<Object> {
        let (namespace, name) = named(&self.metadata)?;
        Some(Object {
            namespace,
            name,
            body: Body::ServiceAccount,
        })
    }
}

/// A Namespace: its enforcement label only.
#[derive(Deserialize, Clone, Debug)]
pub struct NamespaceWire {
    #[serde(deserialize_with = "slim_meta", default)]
    metadata: ObjectMeta,
}
resource!(NamespaceWire, "Namespace", "", "v1", "namespaces", ClusterResourceScope);

impl Watched for NamespaceWire {
    const KIND: Kind = Kind::Namespace;

    fn into_object(self) -> Option<Object> {
        let name = self.metadata.name.clone()?;
        let enforcement = self
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ENFORCEMENT_LABEL))
            .and_then(|v| Enforcement::from_label(v));
        Some(Object {
            namespace: name.clone(),
            name,
            body: Body::Namespace(NamespaceEntry { enforcement }),
        })
    }
}

/// An Allowlist, its spec read leniently: one object the Rust types cannot
/// read must not fail the whole list (see [`StoredAllowlist`]).
#[derive(Deserialize, Clone, Debug)]
pub struct AllowlistWire {
    #[serde(deserialize_with = "slim_meta", default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Value,
    #[serde(default)]
    status: Value,
}
resource!(
    AllowlistWire,
    "Allowlist",
    "meshward.io",
    "v1alpha1",
    "allowlists",
    NamespaceResourceScope
);

impl Watched for AllowlistWire {
    const KIND: Kind = Kind::Allowlist;

    fn into_object(self) -> Option<Object> {
        let (namespace, name) = named(&self.metadata)?;
        let (spec, unreadable) = read_spec(self.spec);
        let status = serde_json::from_value(self.status).ok();
        Some(Object {
            namespace,
            name,
            body: Body::Allowlist(StoredAllowlist {
                generation: self.metadata.generation,
                spec,
                unreadable,
                status,
                resource_version: self.metadata.resource_version,
                uid: self.metadata.uid,
            }),
        })
    }
}

/// An Allowlist spec from its JSON. When it does not fit the Rust types (a
/// schema change between versions, a value the CRD schema let through), the
/// selector and mode if they can be read, no rule, and why.
fn read_spec(spec: Value) -> (AllowlistSpec, Option<String>) {
    match serde_path_to_error::deserialize::<_, AllowlistSpec>(&spec) {
        Ok(spec) => (spec, None),
        Err(e) => {
            let lenient = AllowlistSpec {
                selector: spec
                    .get("selector")
                    .cloned()
                    .and_then(|s| serde_json::from_value(s).ok()),
                mode: spec.get("mode").cloned().and_then(|m| serde_json::from_value(m).ok()),
                // An action that cannot be read stands as deny: its
                // placeholder then refuses every request, the strictest.
                action: spec
                    .get("action")
                    .map(|a| serde_json::from_value(a.clone()).unwrap_or(AllowlistAction::Deny)),
                rules: Vec::new(),
            };
            (lenient, Some(e.to_string()))
        }
    }
}

/// A WasmPlugin meshward owns: labels, the managed spec fields, uid,
/// resource version, and who else applies its fields (its `managedFields`:
/// read whole, there are a few WasmPlugins per namespace, not thousands).
#[derive(Deserialize, Clone, Debug)]
pub struct WasmPluginWire {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Value,
}
resource!(
    WasmPluginWire,
    "WasmPlugin",
    "extensions.istio.io",
    "v1alpha1",
    "wasmplugins",
    NamespaceResourceScope
);

impl Watched for WasmPluginWire {
    const KIND: Kind = Kind::WasmPlugin;

    fn into_object(self) -> Option<Object> {
        let (namespace, name) = named(&self.metadata)?;
        Some(Object {
            namespace,
            name,
            body: Body::WasmPlugin(OwnedPlugin {
                foreign_appliers: foreign_appliers(
                    self.metadata.managed_fields.as_deref().unwrap_or_default(),
                    FIELD_MANAGER,
                ),
                labels: self.metadata.labels.unwrap_or_default(),
                managed: managed_fields(&self.spec),
                uid: self.metadata.uid,
                resource_version: self.metadata.resource_version,
            }),
        })
    }
}

/// A ConfigMap labelled [`API_LABEL`]: its keys, parsed into API
/// descriptions as they arrive ([`ApiConfigMap::parse`]); the bytes are not
/// kept. A ConfigMap without the label is not an object of the state (the
/// service's watch selects the label; manifests hold any ConfigMap).
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapWire {
    #[serde(deserialize_with = "slim_meta", default)]
    metadata: ObjectMeta,
    #[serde(default)]
    binary_data: BTreeMap<String, k8s_openapi::ByteString>,
    #[serde(default)]
    data: BTreeMap<String, String>,
}
resource!(
    ConfigMapWire,
    "ConfigMap",
    "",
    "v1",
    "configmaps",
    NamespaceResourceScope
);

impl Watched for ConfigMapWire {
    const KIND: Kind = Kind::ConfigMap;

    fn into_object(self) -> Option<Object> {
        let (namespace, name) = named(&self.metadata)?;
        let labelled = self
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(API_LABEL.0))
            .is_some_and(|v| v == API_LABEL.1);
        if !labelled {
            return None;
        }
        let parsed = ApiConfigMap::parse(
            self.binary_data.iter().map(|(k, v)| (k.as_str(), v.0.as_slice())),
            self.data.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        Some(Object {
            namespace,
            name,
            body: Body::ConfigMap(Arc::new(parsed)),
        })
    }
}

/// Reads `value` (an object as the API serves it, or as a manifest holds
/// it) as `W`, then as what the state keeps.
pub fn object_of<W: Watched>(value: &Value) -> Result<Option<Object>, serde_json::Error> {
    Ok(W::deserialize(value)?.into_object())
}
