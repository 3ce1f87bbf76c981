//! The plugin configuration, version `v1alpha1`: the wire format.
//!
//! This is the JSON object an Istio `WasmPlugin`'s `pluginConfig` holds, the
//! object the control service writes and the one users write by hand. These
//! types only describe its shape; [`Engine::compile`](crate::Engine::compile)
//! validates the values and builds the matcher. Field names are camelCase and
//! unknown fields are an error.
//!
//! ```text
//! PluginConfig ─┬─ mode, denyStatus
//!               └─ policies[] ─┬─ name, selector, mode, action
//!                              └─ rules[] ─┬─ from[]  (OR; fields inside AND)
//!                                          ├─ to[]    (OR; fields inside AND; grpc: service + methods)
//!                                          └─ when[]  (AND)
//! ```
//!
//! Absent and empty lists differ: an absent positive list (`paths`,
//! `principals`, ...) does not constrain the request, while a present but empty
//! one matches nothing. The control service relies on this: a workload selector
//! that resolves to no principal yields `principals: []`, which admits nobody.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ConfigError;

/// The whole plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginConfig {
    /// The mode of every policy that does not set its own. Absent = enforce.
    #[serde(default, skip_serializing_if = "Mode::is_enforce")]
    pub mode: Mode,
    /// The HTTP status of a denied request, 400–599. Absent = 403.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral_opt")]
    pub deny_status: Option<u16>,
    /// The per-request log line. Absent = denied requests only, no query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogConfig>,
    /// The policies. Required; an empty list means no policy applies, so every
    /// request passes.
    #[serde(deserialize_with = "tight")]
    pub policies: Vec<Policy>,
}

/// Which requests get a JSON log line, and what it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfig {
    /// Which requests are logged. Absent = `denied`.
    #[serde(default)]
    pub requests: RequestLog,
    /// Whether the logged path includes the query string (it may carry
    /// secrets). Absent = false.
    #[serde(default)]
    pub include_query: bool,
    /// Which filter-state entries every request leaves for access logs and
    /// telemetry. Absent = `all`.
    #[serde(default, skip_serializing_if = "FilterState::is_all")]
    pub filter_state: FilterState,
}

/// The filter-state entries a request leaves (`%FILTER_STATE(wasm.meshward.verdict:PLAIN)%`).
///
/// Each entry is one host call per request, the most expensive thing the
/// filter does per request after reading the headers (about 4,500 Envoy
/// instructions each, BENCHMARKS.md); the metric and the log line carry the
/// policy and the rule either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterState {
    /// `meshward.verdict`, `meshward.policy` and `meshward.rule`.
    #[default]
    All,
    /// `meshward.verdict` only.
    Verdict,
    /// None.
    Off,
}

impl FilterState {
    /// `true` for [`FilterState::All`].
    pub fn is_all(&self) -> bool {
        *self == FilterState::All
    }
}

/// Which requests get a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestLog {
    /// Every request a policy applies to.
    All,
    /// Requests denied, rejected or denied in audit mode.
    #[default]
    Denied,
    /// None.
    Off,
}

impl PluginConfig {
    /// Parses the JSON text of a plugin configuration. Errors name the field
    /// path, e.g. `policies[2].rules[0].to[0].paths[3]`.
    pub fn from_json(json: &[u8]) -> Result<Self, ConfigError> {
        serde_json::from_slice(json).map_err(|source| ConfigError::Syntax {
            field: crate::jsonpath::field_at(json, &source),
            source,
        })
    }

    /// Serializes the configuration as compact JSON, as the control service
    /// writes it.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Whether a policy's verdicts are enforced or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denied requests are answered with `denyStatus` and never reach the upstream.
    #[default]
    Enforce,
    /// Dry run: evaluate, log and count as enforce would, but forward every request.
    Audit,
}

impl Mode {
    /// `true` for [`Mode::Enforce`].
    pub fn is_enforce(&self) -> bool {
        *self == Mode::Enforce
    }

    /// The lower-case name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// One policy: the rules that admit (or, with `action: deny`, refuse)
/// requests to the workloads it selects.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Unique name, shown in logs, metrics and deny responses (for example
    /// `bookinfo/reviews`). 1–253 characters of `A-Z a-z 0-9 . _ - / :`.
    pub name: String,
    /// Labels the proxy's own workload must carry (matchLabels). Absent or
    /// empty = every workload the configuration is delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// Overrides the top-level mode for this policy. Absent = the top-level mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// What a matching rule does: admit the request (`allow`) or refuse it
    /// (`deny`), as Istio's `AuthorizationPolicy` action. Deny policies are
    /// evaluated first and win over allow policies; a workload only deny
    /// policies apply to passes what they do not refuse. Absent = allow.
    #[serde(default, skip_serializing_if = "Action::is_allow")]
    pub action: Action,
    /// The rules; with `action: allow`, a request is admitted if any rule of
    /// any applicable allow policy matches it (an empty list admits nothing);
    /// with `action: deny`, a request any rule matches is refused (an empty
    /// list refuses nothing). Required.
    #[serde(deserialize_with = "tight")]
    pub rules: Vec<Rule>,
}

/// What a policy's matching rule does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A matching rule admits the request; with allow policies applying, a
    /// request no rule admits is denied.
    #[default]
    Allow,
    /// A matching rule refuses the request, whatever allow policies say.
    Deny,
}

impl Action {
    /// `true` for [`Action::Allow`].
    pub fn is_allow(&self) -> bool {
        *self == Action::Allow
    }

    /// The lower-case name used in the configuration and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

/// One rule: `from` AND `to` AND `when`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Name unique within the policy. Absent = `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Callers, OR. Absent = any caller, including anonymous ones.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub from: Option<Vec<Source>>,
    /// Operations, OR. Absent = any operation.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub to: Option<Vec<Operation>>,
    /// Conditions on headers and other attributes, AND. Absent = no condition.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub when: Option<Vec<Condition>>,
}

/// A set of callers; every field given must match.
///
/// Identity comes from the mTLS peer certificate (`principals`,
/// `namespaces` and their negations) and from the JWT Envoy's `jwt_authn`
/// filter verified (`requestPrincipals`, `notRequestPrincipals`). In an allow
/// policy, a caller without an identity of a kind (plaintext; no verified
/// token) matches no entry that sets any field of that kind, negative ones
/// included: a rule that names identities never admits an anonymous caller.
/// In a deny policy, as in Istio, such a caller fails the positive fields and
/// passes the negative ones, so `notPrincipals: ["*"]` refuses every caller
/// without an mTLS identity and `notRequestPrincipals: ["*"]` every request
/// without a verified token.
///
/// Address fields take IPv4 or IPv6 addresses and CIDR blocks
/// (`10.1.2.3`, `10.1.0.0/16`, `2001:db8::/32`). `ipBlocks` judge the direct
/// peer, the other end of the TCP connection, which no header changes;
/// `remoteIpBlocks` judge the original client as Envoy derives it from
/// `x-forwarded-for` with the trusted hops its listener is configured with.
/// When the proxy cannot establish an address the entry reads, an allow
/// entry does not match and a deny entry does (see the configuration
/// reference).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Principals (`<trust-domain>/ns/<ns>/sa/<sa>`): exact, `prefix*`, `*suffix` or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub principals: Option<Vec<String>>,
    /// The caller's principal must match none of these.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_principals: Option<Vec<String>>,
    /// Namespaces, taken from the principal: exact, `prefix*`, `*suffix` or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub namespaces: Option<Vec<String>>,
    /// The caller's namespace must match none of these.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_namespaces: Option<Vec<String>>,
    /// Request principals, `<iss>/<sub>` of the verified JWT, split at the
    /// last `/` and matched on the `iss` and `sub` claims as Istio does:
    /// exact, `prefix*`, `*suffix` or `*` (both claims present).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub request_principals: Option<Vec<String>>,
    /// The request principal must match none of these.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_request_principals: Option<Vec<String>>,
    /// Address blocks the direct peer (the connection's remote address) must
    /// be in, one of them.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub ip_blocks: Option<Vec<String>>,
    /// The direct peer must be in none of these blocks.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_ip_blocks: Option<Vec<String>>,
    /// Address blocks the original client (from `x-forwarded-for` with the
    /// listener's trusted hops, else the direct peer) must be in, one of them.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub remote_ip_blocks: Option<Vec<String>>,
    /// The original client must be in none of these blocks.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

/// A set of operations; every field given must match.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Methods, exact and upper-case (`GET`), or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub methods: Option<Vec<String>>,
    /// The request's method must be none of these (`*`: the entry matches
    /// no request).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_methods: Option<Vec<String>>,
    /// Path patterns matched against the canonical path (see the crate docs).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub paths: Option<Vec<String>>,
    /// The canonical path must match none of these.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_paths: Option<Vec<String>>,
    /// Hosts, case-insensitive: `name`, `name:port`, `*.suffix`, `prefix*`, `*`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub hosts: Option<Vec<String>>,
    /// The request's host must match none of these (a request without host fails).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_hosts: Option<Vec<String>>,
    /// Destination ports (the port the proxy received the request on).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral_vec_opt"
    )]
    pub ports: Option<Vec<u16>>,
    /// The destination port must be none of these.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral_vec_opt"
    )]
    pub not_ports: Option<Vec<u16>>,
    /// gRPC methods: the entry matches only gRPC requests (`content-type`
    /// `application/grpc` or `application/grpc+...`) with method `POST` and
    /// path `/<service>/<method>`. Excludes `methods`, `paths` and `notPaths`;
    /// combines with hosts and ports. Absent = not restricted to gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMethods>,
}

/// Methods of one gRPC service, as a `to` entry names them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethods {
    /// The service's full protobuf name, dot-separated identifiers
    /// (`shop.inventory.v1.Inventory`).
    pub service: String,
    /// Method names (protobuf identifiers, `GetItem`), or `["*"]` for every
    /// method of the service. Must not be empty.
    #[serde(deserialize_with = "tight")]
    pub methods: Vec<String>,
}

/// A condition on one request attribute: a header (`header`, or `key:
/// request.headers[<name>]`) or another attribute Istio names (`key`).
/// Exactly one of `header` and `key` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The header name, case-insensitive. Pseudo-headers are not allowed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// An Istio condition key: `request.headers[<name>]`, `source.ip`,
    /// `remote.ip`, `destination.ip`, `destination.port`,
    /// `source.namespace`, `source.principal`, `connection.sni`,
    /// `request.auth.principal`, `request.auth.audiences`,
    /// `request.auth.presenter`, `request.auth.claims[<name>]` (nested:
    /// `request.auth.claims[<name>][<name>]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The attribute must be present and match one of these. A header: every
    /// value it carries (each repeated field line, each comma-separated
    /// element) must match one of these. A claim: a string that matches, or a
    /// list with a string element that matches.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub values: Option<Vec<String>>,
    /// The attribute must match none of these; no value a header carries may
    /// match any of these.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "tight_opt")]
    pub not_values: Option<Vec<String>>,
}

/// Accepts integers written as `403` or, as protobuf `Struct` values arrive
/// from istiod, `403.0`.
fn integral<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let as_int = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u16::MAX))
            .map(|f| f as u64)
    });
    as_int
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer in 0–65535, got {n}")))
}

fn integral_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    integral(d).map(Some)
}

fn integral_vec_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u16>>, D::Error> {
    #[derive(Deserialize)]
    struct Int(#[serde(deserialize_with = "integral")] u16);
    let v: Vec<Int> = tight(d)?;
    Ok(Some(v.into_iter().map(|Int(p)| p).collect()))
}

/// Deserializes a list into a `Vec` whose capacity is its length. JSON gives
/// no length up front, so serde's own `Vec` starts at four elements and
/// doubles: most lists in a configuration hold one element, and at 10,000
/// rules the slack was more than half of the parsed configuration's memory,
/// which stays in the VM's linear memory for good (it never shrinks).
fn tight<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Tight<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Tight<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(1).clamp(1, 4096));
            while let Some(item) = seq.next_element()? {
                v.push(item);
            }
            v.shrink_to_fit();
            Ok(v)
        }
    }
    d.deserialize_seq(Tight(std::marker::PhantomData))
}

/// [`tight`] for an optional list (`null` is absent).
fn tight_opt<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Vec<T>>, D::Error> {
    struct Present<T>(Vec<T>);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Present<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            tight(d).map(Present)
        }
    }
    Ok(Option::<Present<T>>::deserialize(d)?.map(|Present(v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn err(json: &str) -> String {
        PluginConfig::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_documented_example() {
        let json = r#"{
          "mode": "enforce", "denyStatus": 403,
          "policies": [{
            "name": "bookinfo/reviews", "selector": {"app": "reviews"}, "mode": "audit",
            "rules": [{
              "name": "productpage-reads",
              "from": [{"principals": ["cluster.local/ns/bookinfo/sa/productpage"], "notPrincipals": [],
                        "namespaces": ["bookinfo"], "notNamespaces": []}],
              "to": [{"methods": ["GET", "HEAD"], "paths": ["/reviews/*", "/health", "/api/{*}/items/{**}", "*.css"],
                      "notPaths": ["/reviews/internal/*"],
                      "hosts": ["reviews", "reviews.bookinfo.svc.cluster.local:9080", "*.example.com"],
                      "notHosts": [], "ports": [9080]}],
              "when": [{"header": "x-api-version", "values": ["v1", "v2*"], "notValues": []}]
            }]
          }]
        }"#;
        let c = PluginConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.deny_status, Some(403));
        assert_eq!(c.policies[0].mode, Some(Mode::Audit));
        assert_eq!(c.policies[0].rules[0].to.as_ref().unwrap()[0].ports, Some(vec![9080]));
        // Round trip through the writer's form.
        assert_eq!(PluginConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = err(r#"{"policies":[{"name":"a","rules":[]},{"name":"b","rules":[{"to":[{"pathz":["/"]}]}]}]}"#);
        assert!(e.starts_with("policies[1].rules[0].to[0]"), "{e}");
        assert!(e.contains("unknown field `pathz`"), "{e}");
        let e = err(r#"{"policies":[{"name":"a","rules":[{"to":[{"ports":[80, 70000]}]}]}]}"#);
        assert!(e.starts_with("policies[0].rules[0].to[0].ports"), "{e}");
        let e = err(r#"{"mode":"permissive","policies":[]}"#);
        assert!(e.starts_with("mode:"), "{e}");
        let e = err(r#"{"policies":[{"name":"a"}]}"#);
        assert!(e.contains("missing field `rules`"), "{e}");
        let e = err(r#"{}"#);
        assert!(e.contains("missing field `policies`"), "{e}");
        let e = err(r#"{"policies":[],"policies":[]}"#);
        assert!(e.contains("duplicate field"), "{e}");
        let e = err("not json");
        assert!(e.contains("expected"), "{e}");
    }

    #[test]
    fn integers_from_protobuf_struct() {
        let c = PluginConfig::from_json(
            br#"{"denyStatus":401.0,"policies":[{"name":"a","rules":[{"to":[{"ports":[9080.0]}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(c.deny_status, Some(401));
        assert_eq!(c.policies[0].rules[0].to.as_ref().unwrap()[0].ports, Some(vec![9080]));
        assert!(err(r#"{"denyStatus":403.5,"policies":[]}"#).starts_with("denyStatus"));
        assert!(err(r#"{"denyStatus":-1,"policies":[]}"#).starts_with("denyStatus"));
    }
}
