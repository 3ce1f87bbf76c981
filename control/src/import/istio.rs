//! Istio's `AuthorizationPolicy` (`security.istio.io/v1` and `v1beta1`, the
//! same schema) as `import` reads it: every field of Istio's CRD, so a
//! field Istio does not know is refused like a misspelling, and a field
//! meshward cannot express is reported by name rather than dropped.
//!
//! Lists are `Option<Vec<_>>` as written; Istio (protobuf) does not tell an
//! empty list from an absent one, and neither does the conversion.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API versions read (same schema).
pub const API_VERSIONS: [&str; 2] = ["security.istio.io/v1", "security.istio.io/v1beta1"];

/// The kind read.
pub const KIND: &str = "AuthorizationPolicy";

/// An `AuthorizationPolicy` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    /// `security.istio.io/v1` or `security.istio.io/v1beta1`.
    pub api_version: String,
    /// `AuthorizationPolicy`.
    pub kind: String,
    /// Name, namespace, annotations (`istio.io/dry-run`).
    pub metadata: ObjectMeta,
    /// The policy.
    #[serde(default)]
    pub spec: Spec,
    /// What istiod reported, as `kubectl get -o yaml` prints it; not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Workloads by labels; absent = every workload of the namespace (in the
    /// root namespace: of the mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A Gateway, GatewayClass, Service or ServiceEntry (waypoints, gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<Value>,
    /// Several of `targetRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_refs: Option<Vec<Value>>,
    /// The rules; see [`Action`] for what none means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    /// Absent = `ALLOW`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The external authorizer of a `CUSTOM` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
}

/// `spec.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Admit what a rule matches; with ALLOW policies applying, deny the rest.
    Allow,
    /// Deny what a rule matches.
    Deny,
    /// Log what a rule matches (needs a telemetry plugin).
    Audit,
    /// Ask an external authorizer about what a rule matches.
    Custom,
}

/// `spec.selector`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels; empty = every workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
}

/// `spec.rules[]`: `from` AND `to` AND `when`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Sources, OR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<From>>,
    /// Operations, OR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
    /// Conditions, AND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Vec<Condition>>,
}

/// `rules[].from[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct From {
    /// The source (Istio's validation requires it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// `rules[].to[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct To {
    /// The operation (Istio's validation requires it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// `from[].source`: every field set must match (AND), any value of one (OR).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Peer identities (`<trust-domain>/ns/<ns>/sa/<sa>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    /// Peer identities that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_principals: Option<Vec<String>>,
    /// JWT `iss/sub` of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_principals: Option<Vec<String>>,
    /// JWT `iss/sub` that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_request_principals: Option<Vec<String>>,
    /// Namespaces of the peer identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Namespaces that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_namespaces: Option<Vec<String>>,
    /// Service accounts (`ns/name`, or `name` in the policy's namespace), any trust domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<Vec<String>>,
    /// Service accounts that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_service_accounts: Option<Vec<String>>,
    /// Trust domains of the peer identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domains: Option<Vec<String>>,
    /// Trust domains that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_trust_domains: Option<Vec<String>>,
    /// Addresses or CIDRs of the direct peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_blocks: Option<Vec<String>>,
    /// Peer addresses that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ip_blocks: Option<Vec<String>>,
    /// Addresses or CIDRs of the original client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_blocks: Option<Vec<String>>,
    /// Original-client addresses that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

/// `to[].operation`: every field set must match (AND), any value of one (OR).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// `:authority` values, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Authorities that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_hosts: Option<Vec<String>>,
    /// Ports as strings (Istio's schema), parsed as integers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
    /// Ports that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ports: Option<Vec<String>>,
    /// HTTP methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Methods that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_methods: Option<Vec<String>>,
    /// Paths, with `{*}` / `{**}` templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Paths that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_paths: Option<Vec<String>>,
}

/// `rules[].when[]`: `key` with `values` (OR) and/or `notValues`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// An Istio attribute (`request.headers[x-user]`, `source.ip`, ...).
    #[serde(default)]
    pub key: String,
    /// The attribute matches one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// The attribute matches none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_values: Option<Vec<String>>,
}
