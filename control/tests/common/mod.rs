//! Helpers for the control service's tests: `mk_*` builders of cluster
//! objects and a structural OpenAPI v3 validator for generated objects.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount};
use meshward_control::crd::Allowlist;
use meshward_control::derive::Settings;
use meshward_control::state::Snapshot;
use serde_json::{json, Value};

pub mod service;

pub fn mk_ns(name: &str, enforcement: Option<&str>) -> Namespace {
    let mut labels = serde_json::Map::new();
    if let Some(e) = enforcement {
        labels.insert("meshward.io/enforcement".into(), e.into());
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

pub fn mk_pod(ns: &str, name: &str, labels: Value, sa: Option<&str>) -> Pod {
    let mut spec =
        json!({"containers": [{"name": "app", "image": "app", "ports": [{"name": "http", "containerPort": 9080}]}]});
    if let Some(sa) = sa {
        spec["serviceAccountName"] = sa.into();
    }
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec}))
        .unwrap()
}

pub fn mk_deployment(ns: &str, name: &str, labels: Value, sa: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "app",
                "ports": [{"name": "http-api", "containerPort": 8080}]}]}}}
    }))
    .unwrap()
}

pub fn mk_sa(ns: &str, name: &str) -> ServiceAccount {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).unwrap()
}

pub fn mk_service(ns: &str, name: &str, selector: Value, ports: Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector, "ports": ports}}),
    )
    .unwrap()
}

pub fn mk_allowlist(ns: &str, name: &str, spec: Value) -> Allowlist {
    serde_json::from_value(json!({
        "apiVersion": "meshward.io/v1alpha1", "kind": "Allowlist",
        "metadata": {"name": name, "namespace": ns, "generation": 3}, "spec": spec
    }))
    .unwrap()
}

/// A ConfigMap with `binary` keys in `binaryData` and `text` keys in
/// `data`; `labelled` = carrying `meshward.io/api-description: "true"`.
pub fn mk_config_map(
    ns: &str,
    name: &str,
    labelled: bool,
    binary: &[(&str, Vec<u8>)],
    text: &[(&str, &str)],
) -> ConfigMap {
    let labels = if labelled {
        json!({"meshward.io/api-description": "true"})
    } else {
        json!({})
    };
    let mut cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "labels": labels}})).unwrap();
    cm.binary_data = Some(
        binary
            .iter()
            .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.clone())))
            .collect(),
    );
    cm.data = Some(text.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    cm
}

/// The Allowlist `shop/api` the service tests change: `frontend` may `GET`
/// `path` on `api`.
pub fn api_allowlist(path: &str) -> Allowlist {
    mk_allowlist(
        "shop",
        "api",
        json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
            "name": "frontend-reads",
            "from": [{"workloads": {"selector": {"matchLabels": {"app": "frontend"}}}}],
            "to": [{"methods": ["GET"], "paths": [path]}]
        }]}),
    )
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        trust_domain: "cluster.local".into(),
        ..Snapshot::default()
    }
}

pub fn settings() -> Settings {
    Settings {
        url: "oci://registry.example.com/meshward/filter:0.1.0".into(),
        sha256: Some("a".repeat(64)),
        ..Settings::default()
    }
}

/// Validates `value` against a structural OpenAPI v3 schema (a CRD version's
/// `openAPIV3Schema`): types, required and unknown properties, enums,
/// patterns, lengths, bounds, item counts, `anyOf` and int-or-string. CEL rules
/// (`x-kubernetes-validations`) are not evaluated.
pub fn validate(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(|alt| validate(&merge(schema, alt), value, path).is_ok()) {
            return Err(format!("{path}: matches no anyOf alternative"));
        }
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return if value.is_i64() || value.is_u64() || value.is_string() {
            Ok(())
        } else {
            Err(format!("{path}: not int-or-string"))
        };
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match ty {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{path}: expected {ty:?}, got {value}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(value) {
            return Err(format!("{path}: {value} not in enum {e:?}"));
        }
    }
    if let (Some(p), Some(s)) = (schema.get("pattern").and_then(Value::as_str), value.as_str()) {
        if !regex::Regex::new(p).unwrap().is_match(s) {
            return Err(format!("{path}: {s:?} does not match {p}"));
        }
    }
    if let (Some(max), Some(s)) = (schema.get("maxLength").and_then(Value::as_u64), value.as_str()) {
        if s.chars().count() as u64 > max {
            return Err(format!("{path}: longer than {max}"));
        }
    }
    if let (Some(min), Some(s)) = (schema.get("minLength").and_then(Value::as_u64), value.as_str()) {
        if (s.chars().count() as u64) < min {
            return Err(format!("{path}: shorter than {min}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                return Err(format!("{path}: {n} is below the minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                return Err(format!("{path}: {n} is above the maximum {max}"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if items.len() as u64 > max {
                return Err(format!("{path}: more than {max} items"));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
    }
    if let Some(obj) = value.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let req = req.as_str().unwrap();
            if !obj.contains_key(req) {
                return Err(format!("{path}: missing required {req}"));
            }
        }
        let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        for (k, v) in obj {
            match (props.and_then(|p| p.get(k)), schema.get("additionalProperties")) {
                (Some(s), _) => validate(s, v, &format!("{path}.{k}"))?,
                (None, Some(ap)) if ap.is_object() => validate(ap, v, &format!("{path}.{k}"))?,
                (None, _) if preserve || props.is_none() => {}
                (None, _) => return Err(format!("{path}: unknown field {k}")),
            }
        }
    }
    Ok(())
}

fn merge(base: &Value, alt: &Value) -> Value {
    let mut m = base.as_object().cloned().unwrap_or_default();
    m.remove("anyOf");
    for (k, v) in alt.as_object().into_iter().flatten() {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

/// The documents of a YAML stream, read by the CLI's own reader.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    meshward_control::manifests::parse_documents(text)
        .unwrap_or_else(|(line, e)| panic!("line {line}: {e}"))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// The one document of a YAML text.
pub fn yaml(text: &str) -> Value {
    let mut docs = yaml_docs(text);
    assert_eq!(docs.len(), 1, "expected one YAML document");
    docs.remove(0)
}

/// The `openAPIV3Schema` of version `version` of a CRD in YAML.
pub fn crd_schema(crd_yaml: &str, version: &str) -> Value {
    let crd: Value = yaml(crd_yaml);
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap()["schema"]["openAPIV3Schema"]
        .clone()
}
