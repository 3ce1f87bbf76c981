//! The `Allowlist` custom resource (`meshward.io/v1alpha1`, namespaced).
//!
//! Its spec mirrors one policy of the filter's plugin configuration, with
//! cluster-level references the control service resolves: `workloads` and
//! `serviceAccounts` become principals, `servicePorts` become container ports.
//! The CRD YAML is generated from these types (`meshward-control crd`) and
//! committed as `istio/crd.yaml`; a test fails when the two drift apart.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition as StatusCondition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An allowlist for the workloads of one namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "meshward.io",
    version = "v1alpha1",
    kind = "Allowlist",
    namespaced,
    status = "AllowlistStatus",
    shortname = "al",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Principals","type":"integer","jsonPath":".status.resolved.principals"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistSpec {
    /// The protected workloads of this namespace. Absent = all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// `enforce` or `audit`. Absent = enforce (a namespace labelled
    /// `meshward.io/enforcement: audit` puts every Allowlist in audit mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AllowlistMode>,
    /// `allow` or `deny`, as an AuthorizationPolicy's `action`. Absent =
    /// allow. A deny Allowlist's matching rules refuse requests whatever the
    /// allow Allowlists admit; it does not make its workloads default-deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AllowlistAction>,
    /// Rules: a request is allowed if any rule of any applicable allow
    /// Allowlist matches, and refused if any rule of a deny Allowlist does.
    pub rules: Vec<AllowlistRule>,
}

/// What an Allowlist's matching rules do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllowlistAction {
    /// Matching requests are admitted; with allow Allowlists applying, others are denied.
    Allow,
    /// Matching requests are denied, whatever the allow Allowlists admit.
    Deny,
}

/// Enforce or audit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllowlistMode {
    /// Denied requests are refused.
    Enforce,
    /// Denied requests are logged and counted, and forwarded.
    Audit,
}

/// A label selector (`matchLabels` only, as Istio's WasmPlugin selector).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// Labels a workload must carry. Empty = every workload.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// One rule: `from` AND `to` AND `when`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistRule {
    /// Name unique within the Allowlist. Absent = `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Callers, OR. Absent = any caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<AllowlistSource>>,
    /// Operations, OR. Absent = any operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<AllowlistOperation>>,
    /// Conditions, AND.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Vec<HeaderCondition>>,
}

/// Callers. Name them with exactly one of `workloads`, `serviceAccounts` or
/// `principals`; the other fields narrow further (AND).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistSource {
    /// Workloads selected by labels, resolved through their pods and pod
    /// templates to service accounts, then to principals. A selector that
    /// matches nothing admits nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<WorkloadSelector>,
    /// Service accounts as `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts: Option<Vec<String>>,
    /// Principals (`<trust-domain>/ns/<ns>/sa/<sa>`), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    /// Principals that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_principals: Option<Vec<String>>,
    /// Caller namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Caller namespaces that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_namespaces: Option<Vec<String>>,
    /// Address blocks (`10.1.2.3`, `10.1.0.0/16`, `2001:db8::/32`) the direct
    /// peer, the other end of the connection, must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_blocks: Option<Vec<String>>,
    /// Address blocks the direct peer must not be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ip_blocks: Option<Vec<String>>,
    /// Address blocks the original client (from `x-forwarded-for` with the
    /// proxy's trusted hops) must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_blocks: Option<Vec<String>>,
    /// Address blocks the original client must not be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_remote_ip_blocks: Option<Vec<String>>,
    /// Request principals (`<iss>/<sub>` of the JWT Envoy's `jwt_authn`
    /// verified, as a `RequestAuthentication` configures it), passed
    /// through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_principals: Option<Vec<String>>,
    /// Request principals that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_request_principals: Option<Vec<String>>,
}

/// Workloads of a namespace, by labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// The namespace. Absent = the Allowlist's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The workloads' labels.
    pub selector: Selector,
}

/// Operations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistOperation {
    /// Methods (upper-case) or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Methods the request's must not be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_methods: Option<Vec<String>>,
    /// Path patterns (see the plugin configuration reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Paths that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_paths: Option<Vec<String>>,
    /// Hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Hosts that must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_hosts: Option<Vec<String>>,
    /// Destination (container) ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    /// Ports of Services of this namespace, resolved to their target
    /// (container) ports and added to `ports`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ports: Option<Vec<ServicePortRef>>,
    /// Destination (container) ports the request's must not be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ports: Option<Vec<u16>>,
    /// gRPC methods of one service: the entry admits only gRPC requests
    /// (`content-type` `application/grpc` or `application/grpc+...`) with
    /// method POST and path `/<service>/<method>`. Cannot be combined with
    /// `methods`, `paths` or `notPaths`; combines with hosts and ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMethods>,
    /// Operations of an OpenAPI 3.0/3.1 document: each admits its method on
    /// its path template under its servers' base paths. Cannot be combined
    /// with `methods`, `paths`, `notPaths` or `grpc`; combines with hosts and
    /// ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<OpenApiOperations>,
}

/// Operations of an OpenAPI document, by operationId or by tag.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenApiOperations {
    /// The document (YAML or JSON) in the `data` of a ConfigMap of the
    /// Allowlist's namespace labelled `meshward.io/api-description: "true"`.
    pub api: ApiRef,
    /// operationIds, `METHOD /path` (as the document writes the path), or
    /// `["*"]` for every operation. Exactly one of `operations` and `tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub operations: Option<Vec<String>>,
    /// Every operation carrying any of these tags. Exactly one of
    /// `operations` and `tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tags: Option<Vec<String>>,
}

/// Methods of one gRPC service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethods {
    /// The service's full protobuf name: identifiers separated by `.`
    /// (`shop.inventory.v1.Inventory`).
    #[schemars(length(min = 1))]
    pub service: String,
    /// Method names (`GetItem`), or `["*"]` for every method of the service.
    /// With `api`, `["*"]` expands to the service's methods (sorted) and
    /// every name must be a method of the service.
    #[schemars(length(min = 1))]
    pub methods: Vec<String>,
    /// The service's protobuf descriptors: a `FileDescriptorSet` in the
    /// `binaryData` of a ConfigMap of the Allowlist's namespace labelled
    /// `meshward.io/api-description: "true"`. Absent = names are not checked
    /// and `["*"]` admits any method of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiRef>,
    /// Only methods whose descriptor declares this `idempotency_level`:
    /// `NO_SIDE_EFFECTS` (reads), or `IDEMPOTENT` (which includes
    /// `NO_SIDE_EFFECTS`). `["*"]` expands to those methods; a named method of
    /// another level is an error. Needs `api`. Absent = any level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_level: Option<IdempotencyLevel>,
}

/// A key of a ConfigMap in the Allowlist's namespace that holds an API
/// description. The ConfigMap must carry the label
/// `meshward.io/api-description: "true"`: the control service reads no other.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiRef {
    /// The ConfigMap's name.
    #[schemars(length(min = 1))]
    pub config_map: String,
    /// The key (of `binaryData` for a descriptor set, of `data` for an
    /// OpenAPI document).
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A protobuf method's `idempotency_level`, as a `grpc` entry selects by it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IdempotencyLevel {
    /// Methods without side effects (reads).
    #[serde(rename = "NO_SIDE_EFFECTS")]
    NoSideEffects,
    /// Idempotent methods, those without side effects included.
    #[serde(rename = "IDEMPOTENT")]
    Idempotent,
}

/// A port of a Service in the Allowlist's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePortRef {
    /// The Service's name.
    pub service: String,
    /// The port's name or number.
    #[schemars(schema_with = "int_or_string")]
    pub port: PortName,
}

/// A port given by name or number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum PortName {
    /// A port number.
    Number(u16),
    /// A port name.
    Name(String),
}

/// The number, or the name as written (`8080`, `http`).
impl std::fmt::Display for PortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl Default for PortName {
    fn default() -> Self {
        Self::Number(0)
    }
}

/// A port number (1-65535) or a non-empty name: the API server enforces the
/// range, so an Allowlist that the service could not read is refused at
/// admission.
fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // Without `type` (int-or-string), `minimum`/`maximum` judge only
    // numbers and `minLength` only strings.
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "minimum": 1,
        "maximum": 65535,
        "minLength": 1
    })
}

/// A condition on a request header (`header`) or another attribute Istio
/// names (`key`); set exactly one of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderCondition {
    /// Header name, case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// An Istio condition key: `request.headers[<name>]`, `source.ip`,
    /// `remote.ip`, `destination.ip`, `destination.port`,
    /// `source.namespace`, `source.principal`, `connection.sni`,
    /// `request.auth.principal`, `request.auth.audiences`,
    /// `request.auth.presenter`, `request.auth.claims[<name>]` (nested
    /// `request.auth.claims[<name>][<name>]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Every value the attribute carries must match one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// No value the attribute carries may match these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_values: Option<Vec<String>>,
}

/// What the control service found for an Allowlist.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: True when the Allowlist is part of its namespace's
    /// configuration; False with the reason and the offending field (its last
    /// valid version, or a placeholder admitting nobody, stands in).
    /// `WithinBudget`: False (reason `OverBudget`) when the Allowlists sharing
    /// its workloads exceed the WasmPlugin size budget together.
    #[serde(default)]
    pub conditions: Vec<StatusCondition>,
    /// What the references resolved to, so selectors that match nothing show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolved>,
}

/// Counts of what an Allowlist's references resolved to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    /// Workloads (pods and pod templates) matched by `workloads` selectors.
    pub workloads: u32,
    /// Distinct principals in the derived policy.
    pub principals: u32,
}

/// The CRD as YAML, as committed in `istio/crd.yaml`.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    use kube::CustomResourceExt;
    let body = crate::manifests::to_yaml(&Allowlist::crd())?;
    Ok(format!("# Generated by `meshward-control crd`; do not edit.\n{body}"))
}
