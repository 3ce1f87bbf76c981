//! The install manifests and examples: every `*.yaml`/`*.yml` under `istio/`
//! and `examples/` is parsed and checked, so a new file is covered without
//! touching this test, and a document of a kind this test does not know
//! fails it.
//!
//! * Kubernetes kinds (core, apps, rbac, apiextensions) are deserialized
//!   into their `k8s-openapi` types with unknown fields refused (the object
//!   is converted back and must keep every field, as `manifests.rs` does).
//! * Istio kinds (WasmPlugin, AuthorizationPolicy, TrafficExtension,
//!   Telemetry) are validated against Istio's CRD schemas vendored in
//!   `tests/data/`; a WasmPlugin's `pluginConfig` is also compiled by the
//!   filter's engine, and every access-log provider a Telemetry names is
//!   declared in the mesh config snippet beside it.
//! * Allowlists are validated against the CRD generated from the Rust types
//!   and deserialized strictly.
//! * Kinds with no schema available here get a **structural check only**:
//!   `PrometheusRule` (groups with names; every rule has `alert`, `expr`,
//!   `for` and `labels.severity`). Its semantics (Prometheus) are not
//!   exercised.
//! * Envoy configuration embedded in these files (the bootstrap override of
//!   a ConfigMap, the access-log format of the mesh config snippet) must pass
//!   `envoy --mode validate` with the project's Envoy 1.40 (`.venv`, installed
//!   by `make setup`); only when that binary is missing are these checks
//!   skipped, saying so.
//!
//! Plus: the control service's ClusterRole grants exactly the documented
//! permissions, its Deployment is hardened and runs flags `serve` accepts,
//! and the Dockerfiles keep Istio's module layout and a non-root user.
//!
//! The Helm chart (`istio/chart/meshward`) is rendered by the subset renderer
//! in `chart/gotemplate.rs` (no `helm` binary here): with its default values
//! it must give the objects of `istio/control.yaml`; with every value set,
//! every object passes the checks above, the Deployment's flags exist, and
//! the WasmPlugins they derive validate against Istio's schema. Its values
//! are checked against `values.schema.json`, and its CRD is `istio/crd.yaml`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
#[path = "chart/gotemplate.rs"]
mod gotemplate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{crd_schema, validate};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use meshward_control::crd::Allowlist;
use meshward_control::manifests;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// The directories whose manifests are checked.
const DIRS: [&str; 2] = ["istio", "examples"];

/// The Helm chart: templates, not manifests (rendered by its own tests).
const CHART: &str = "istio/chart/meshward";

/// Istio's CRDs, vendored from istio/istio (Apache-2.0).
const ISTIO_CRDS: [&str; 4] = [
    include_str!("data/istio-wasmplugin-crd.yaml"),
    include_str!("data/istio-authorizationpolicy-crd.yaml"),
    include_str!("data/istio-trafficextension-crd.yaml"),
    include_str!("data/istio-telemetry-crd.yaml"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One YAML document of one file.
struct Doc {
    /// `path#index (Kind namespace/name)`, for messages.
    at: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.starts_with(workspace().join(CHART)) {
            continue;
        }
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
}

/// Every document of every manifest under [`DIRS`].
fn docs() -> Vec<Doc> {
    let mut paths = Vec::new();
    for dir in DIRS {
        yaml_files(&workspace().join(dir), &mut paths);
    }
    let mut docs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path.strip_prefix(workspace()).unwrap_or(&path).display().to_string();
        let parsed =
            meshward_control::manifests::parse_documents(&text).unwrap_or_else(|(line, e)| panic!("{rel}:{line}: {e}"));
        // A `List` (as `kubectl get -o yaml` prints) is checked item by item.
        let values = parsed.into_iter().flat_map(|doc| match doc.value["kind"].as_str() {
            Some("List") => doc.value["items"].as_array().cloned().unwrap_or_default(),
            _ => vec![doc.value],
        });
        for (index, value) in values.enumerate() {
            let m = &value["metadata"];
            let at = format!(
                "{rel}#{index} ({} {}/{})",
                value["kind"].as_str().unwrap_or("?"),
                m["namespace"].as_str().unwrap_or(""),
                m["name"].as_str().unwrap_or("?")
            );
            docs.push(Doc { at, value });
        }
    }
    assert!(docs.len() > 10, "found only {} documents: wrong directory?", docs.len());
    docs
}

fn one<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| d.kind() == kind && d.name() == name).collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name}");
    &found[0].value
}

/// Deserializes into `T` and back with the loader's own check
/// ([`manifests::strict`]): a field that did not survive is unknown to `T`.
fn strict<T: DeserializeOwned + Serialize>(v: &Value) -> Result<(), String> {
    manifests::strict::<T>(v).map(|_| ()).map_err(|e| e.to_string())
}

/// `(apiVersion, kind)` → the `openAPIV3Schema` of every served version of the
/// vendored Istio CRDs.
fn istio_schemas() -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for text in ISTIO_CRDS {
        let crd: Value = common::yaml(text);
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            let version = v["name"].as_str().unwrap();
            out.insert(
                (format!("{group}/{version}"), kind.to_string()),
                crd_schema(text, version),
            );
        }
    }
    out
}

/// Checks one document by its kind; `Err` for an invalid one, panics for a
/// kind this test does not know.
fn check(doc: &Doc, istio: &BTreeMap<(String, String), Value>, allowlist_schema: &Value) -> Result<(), String> {
    let v = &doc.value;
    if doc.name().is_empty() {
        return Err("metadata.name is missing".into());
    }
    let api_version = v["apiVersion"].as_str().unwrap_or("");
    let kind = doc.kind();
    if let Some(schema) = istio.get(&(api_version.to_string(), kind.to_string())) {
        validate(&schema["properties"]["spec"], &v["spec"], "spec")?;
        if kind == "WasmPlugin" {
            if let Some(cfg) = v["spec"].get("pluginConfig") {
                meshward_filter::Engine::from_json(&serde_json::to_vec(cfg).unwrap())
                    .map_err(|e| format!("spec.pluginConfig: {e}"))?;
            }
        }
        return Ok(());
    }
    match (api_version, kind) {
        ("v1", "Namespace") => strict::<Namespace>(v),
        ("v1", "ServiceAccount") => strict::<ServiceAccount>(v),
        ("v1", "Service") => strict::<Service>(v),
        ("v1", "Pod") => strict::<Pod>(v),
        ("v1", "ConfigMap") => strict::<ConfigMap>(v).and_then(|()| config_map(v)),
        ("apps/v1", "Deployment") => strict::<Deployment>(v),
        ("apps/v1", "StatefulSet") => strict::<StatefulSet>(v),
        ("apps/v1", "DaemonSet") => strict::<DaemonSet>(v),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => strict::<ClusterRole>(v),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => strict::<ClusterRoleBinding>(v),
        ("rbac.authorization.k8s.io/v1", "Role") => strict::<Role>(v),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => strict::<RoleBinding>(v),
        ("networking.k8s.io/v1", "NetworkPolicy") => strict::<NetworkPolicy>(v),
        ("policy/v1", "PodDisruptionBudget") => strict::<PodDisruptionBudget>(v),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => service_monitor(v),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => strict::<CustomResourceDefinition>(v),
        ("meshward.io/v1alpha1", "Allowlist") => {
            validate(&allowlist_schema["properties"]["spec"], &v["spec"], "spec")?;
            strict::<Allowlist>(v)
        }
        ("monitoring.coreos.com/v1", "PrometheusRule") => prometheus_rule(v),
        _ => panic!(
            "{}: no check for {api_version} {kind}: add one to control/tests/install_yaml.rs \
             (a schema in tests/data/ if one exists, a structural check otherwise)",
            doc.at
        ),
    }
}

/// The data keys a ConfigMap here may carry, and what checks them. One
/// labelled `meshward.io/api-description: "true"` holds API descriptions:
/// OpenAPI documents in `data`, descriptor sets in `binaryData`, each read as
/// meshward reads it.
fn config_map(v: &Value) -> Result<(), String> {
    if v["metadata"]["labels"]["meshward.io/api-description"] == "true" {
        let cm = manifests::strict::<k8s_openapi::api::core::v1::ConfigMap>(v).map_err(|e| e.to_string())?;
        for (key, text) in cm.data.iter().flatten() {
            meshward_control::apidesc::OpenApi::parse(text).map_err(|e| format!("data.{key}: {e}"))?;
        }
        for (key, bytes) in cm.binary_data.iter().flatten() {
            meshward_control::apidesc::GrpcApi::decode(&bytes.0).map_err(|e| format!("binaryData.{key}: {e}"))?;
        }
        return Ok(());
    }
    for (key, text) in v["data"].as_object().into_iter().flatten() {
        match key.as_str() {
            // Envoy bootstrap override (sidecar.istio.io/bootstrapOverride):
            // JSON here; validated by Envoy in `envoy_configs_pass_validation`.
            "custom_bootstrap.json" => {
                serde_json::from_str::<Value>(text.as_str().unwrap_or("")).map_err(|e| format!("data.{key}: {e}"))?;
            }
            _ => return Err(format!("data.{key}: no check for this key")),
        }
    }
    Ok(())
}

fn only_keys(v: &Value, path: &str, allowed: &[&str]) -> Result<(), String> {
    let obj = v.as_object().ok_or(format!("{path}: not an object"))?;
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{path}: unknown field {k}")),
        None => Ok(()),
    }
}

/// Structural only: top-level keys, and the provider names of every
/// access-log entry (returned).
fn telemetry(v: &Value) -> Result<Vec<String>, String> {
    only_keys(v, "", &["apiVersion", "kind", "metadata", "spec"])?;
    let spec = &v["spec"];
    only_keys(
        spec,
        "spec",
        &["selector", "targetRefs", "tracing", "metrics", "accessLogging"],
    )?;
    let mut names = Vec::new();
    for (i, entry) in spec["accessLogging"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.accessLogging[{i}]");
        only_keys(entry, &at, &["match", "providers", "disabled", "filter"])?;
        let providers = entry["providers"].as_array().ok_or(format!("{at}: no providers"))?;
        for (j, p) in providers.iter().enumerate() {
            only_keys(p, &format!("{at}.providers[{j}]"), &["name"])?;
            let name = p["name"].as_str().filter(|n| !n.is_empty());
            names.push(name.ok_or(format!("{at}.providers[{j}]: no name"))?.to_string());
        }
    }
    if names.is_empty() {
        return Err("spec.accessLogging: no provider".into());
    }
    Ok(names)
}

/// Structural only: a selector, and endpoints naming a port and a path.
fn service_monitor(v: &Value) -> Result<(), String> {
    only_keys(v, "", &["apiVersion", "kind", "metadata", "spec"])?;
    only_keys(
        &v["spec"],
        "spec",
        &["selector", "namespaceSelector", "endpoints", "jobLabel"],
    )?;
    v["spec"]["selector"]["matchLabels"]
        .as_object()
        .filter(|m| !m.is_empty())
        .ok_or("spec.selector.matchLabels: empty")?;
    let endpoints = v["spec"]["endpoints"].as_array().filter(|e| !e.is_empty());
    for (i, e) in endpoints.ok_or("spec.endpoints: empty")?.iter().enumerate() {
        let at = format!("spec.endpoints[{i}]");
        only_keys(e, &at, &["port", "path", "interval", "scheme", "scrapeTimeout"])?;
        for key in ["port", "path"] {
            e[key].as_str().ok_or(format!("{at}: no {key}"))?;
        }
    }
    Ok(())
}

/// Structural only: every group has a name and rules; every rule is an
/// alert with an expression, a `for` and a severity.
fn prometheus_rule(v: &Value) -> Result<(), String> {
    only_keys(v, "", &["apiVersion", "kind", "metadata", "spec"])?;
    only_keys(&v["spec"], "spec", &["groups"])?;
    let groups = v["spec"]["groups"].as_array().filter(|g| !g.is_empty());
    for (i, g) in groups.ok_or("spec.groups: empty")?.iter().enumerate() {
        let at = format!("spec.groups[{i}]");
        only_keys(
            g,
            &at,
            &["name", "interval", "rules", "limit", "partial_response_strategy"],
        )?;
        g["name"].as_str().ok_or(format!("{at}: no name"))?;
        let rules = g["rules"].as_array().filter(|r| !r.is_empty());
        for (j, r) in rules.ok_or(format!("{at}.rules: empty"))?.iter().enumerate() {
            let at = format!("{at}.rules[{j}]");
            only_keys(
                r,
                &at,
                &["alert", "expr", "for", "labels", "annotations", "keep_firing_for"],
            )?;
            for key in ["alert", "expr", "for"] {
                r[key]
                    .as_str()
                    .filter(|s| !s.trim().is_empty())
                    .ok_or(format!("{at}: no {key}"))?;
            }
            let severity = r["labels"]["severity"]
                .as_str()
                .ok_or(format!("{at}: no labels.severity"))?;
            if !["info", "warning", "critical"].contains(&severity) {
                return Err(format!("{at}: severity {severity}"));
            }
            r["annotations"]["summary"]
                .as_str()
                .ok_or(format!("{at}: no annotations.summary"))?;
        }
    }
    Ok(())
}

#[test]
fn every_manifest_is_a_known_kind_and_valid() {
    let istio = istio_schemas();
    let allowlist_schema = crd_schema(&meshward_control::crd::crd_yaml().unwrap(), "v1alpha1");
    let docs = docs();
    let errors: Vec<String> = docs
        .iter()
        .filter_map(|d| {
            check(d, &istio, &allowlist_schema)
                .err()
                .map(|e| format!("{}: {e}", d.at))
        })
        .collect();
    assert!(errors.is_empty(), "invalid manifests:\n{}", errors.join("\n"));
    // The CLI's own loader accepts the same files, each on its own (the
    // JSON files under examples/ are plugin configurations, not manifests;
    // examples/learn's proposal and examples/bookinfo's Allowlists are
    // alternatives, not one set).
    let mut paths = Vec::new();
    for dir in DIRS {
        yaml_files(&workspace().join(dir), &mut paths);
    }
    for path in paths {
        if let Err(e) = manifests::load(std::slice::from_ref(&path), "cluster.local") {
            panic!("{e}");
        }
    }
}

#[test]
fn the_checks_refuse_what_they_should() {
    let istio = istio_schemas();
    let allowlist_schema = crd_schema(&meshward_control::crd::crd_yaml().unwrap(), "v1alpha1");
    let check = |value: Value| {
        check(
            &Doc {
                at: "test".into(),
                value,
            },
            &istio,
            &allowlist_schema,
        )
    };
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c",
            "securityContext": {"readOnlyRootFileSystem": true}}]}}}});
    let e = check(deployment).unwrap_err();
    assert!(e.contains("readOnlyRootFileSystem"), "{e}");
    let plugin = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "w"},
        "spec": {"url": "oci://x", "phase": "AUTHZ", "pluginConfig": {"policies": [{"name": "p",
            "rules": [{"to": [{"paths": ["relative"]}]}]}]}}});
    let e = check(plugin).unwrap_err();
    assert!(e.contains("pluginConfig"), "{e}");
    let plugin = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "w"},
        "spec": {"url": "oci://x", "phase": "AUTHORIZATION"}});
    assert!(check(plugin).is_err());
    let policy = json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": {"name": "a"},
        "spec": {"action": "ALLOW", "rulez": []}});
    assert!(check(policy).is_err());
    let rule = json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "r"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5m", "labels": {}}]}]}});
    assert!(check(rule).unwrap_err().contains("severity"));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"other": "x"}});
    assert!(check(cm).is_err());
    let unknown = std::panic::catch_unwind(|| {
        check(json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "g"}}))
    });
    assert!(unknown.is_err(), "an unknown kind must fail the test");
}

/// `(apiGroup, resource, verb)` of every permission the service needs
/// (README, "The service: meshward-control serve").
fn documented_permissions() -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                out.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    };
    let read = ["get", "list", "watch"];
    add("", &["namespaces", "pods", "services", "serviceaccounts"], &read);
    // API descriptions; the watch selects meshward.io/api-description=true.
    add("", &["configmaps"], &["list", "watch"]);
    // Sidecar logs for learn and replay in the cluster.
    add("", &["pods/log"], &["get"]);
    add("apps", &["deployments", "statefulsets", "daemonsets"], &read);
    add("meshward.io", &["allowlists"], &["get", "list", "watch", "patch"]);
    add("meshward.io", &["allowlists/status"], &["patch"]);
    // Server-side apply of a WasmPlugin that does not exist yet is also
    // authorized as `create` by the API server.
    add(
        "extensions.istio.io",
        &["wasmplugins"],
        &["get", "list", "watch", "create", "patch", "delete"],
    );
    add("authentication.k8s.io", &["tokenreviews"], &["create"]);
    add("authorization.k8s.io", &["subjectaccessreviews"], &["create"]);
    add("events.k8s.io", &["events"], &["create", "patch"]);
    out
}

#[test]
fn the_cluster_role_grants_exactly_the_documented_permissions() {
    let docs = docs();
    let role = one(&docs, "ClusterRole", "meshward-control");
    let role: ClusterRole = serde_json::from_value(role.clone()).unwrap();
    assert!(
        role.aggregation_rule.is_none(),
        "an aggregated role grants whatever others add"
    );
    let mut granted = BTreeSet::new();
    for rule in role.rules.unwrap_or_default() {
        assert!(rule.non_resource_urls.is_none(), "non-resource URLs: {rule:?}");
        assert!(rule.resource_names.is_none(), "resourceNames: {rule:?}");
        let groups = rule.api_groups.unwrap_or_default();
        let resources = rule.resources.unwrap_or_default();
        for name in groups.iter().chain(&resources).chain(&rule.verbs) {
            assert!(!name.contains('*'), "wildcard `{name}` in the ClusterRole");
        }
        assert!(
            !resources.iter().any(|r| r.starts_with("secrets")),
            "the service reads no secrets: {resources:?}"
        );
        // ConfigMaps: only listed and watched (with a label selector, which
        // RBAC cannot express), never read one by one.
        if resources.iter().any(|r| r.starts_with("configmaps")) {
            assert_eq!(resources, ["configmaps"]);
            assert_eq!(rule.verbs, ["list", "watch"], "{resources:?}");
        }
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    granted.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    let documented = documented_permissions();
    let extra: Vec<_> = granted.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "ClusterRole differs from README:\n  not documented: {extra:?}\n  missing: {missing:?}"
    );

    // The binding gives that role, and only it, to the service account the
    // Deployment runs as; no other RBAC object is installed.
    let binding = one(&docs, "ClusterRoleBinding", "meshward-control");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "meshward-control"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "meshward-control", "namespace": "meshward-system"}])
    );

    // In its own namespace, the Lease of the leader election: created, then
    // read and renewed by name; nothing else.
    let role = one(&docs, "Role", "meshward-control");
    assert_eq!(role["metadata"]["namespace"], "meshward-system");
    assert_eq!(
        role["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["meshward-control"], "verbs": ["get", "update"]}
        ])
    );
    let role_binding = one(&docs, "RoleBinding", "meshward-control");
    assert_eq!(role_binding["metadata"]["namespace"], "meshward-system");
    assert_eq!(
        role_binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "meshward-control"})
    );
    assert_eq!(role_binding["subjects"], binding["subjects"]);
    let rbac: Vec<_> = docs
        .iter()
        .filter(|d| d.value["apiVersion"] == "rbac.authorization.k8s.io/v1")
        .map(|d| d.at.clone())
        .collect();
    assert_eq!(rbac.len(), 4, "unexpected RBAC objects: {rbac:?}");
    let sa = one(&docs, "ServiceAccount", "meshward-control");
    assert_eq!(sa["metadata"]["namespace"], "meshward-system");
}

#[test]
fn the_control_deployment_is_hardened_and_runs_valid_flags() {
    let docs = docs();
    let d = one(&docs, "Deployment", "meshward-control");
    assert_eq!(d["metadata"]["namespace"], "meshward-system");
    // Two replicas, one writer (the Lease holder): new pods start before old
    // ones stop, replicas prefer different nodes, a drain keeps one.
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    let selector = &d["spec"]["selector"]["matchLabels"];
    let anti = &d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(&anti["labelSelector"]["matchLabels"], selector);
    let pdb = one(&docs, "PodDisruptionBudget", "meshward-control");
    assert_eq!(pdb["metadata"]["namespace"], "meshward-system");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
    let pod = &d["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["sidecar.istio.io/inject"], "false");
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "meshward-control");
    assert_eq!(spec["automountServiceAccountToken"], true);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["runAsUser"], 65532);
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert!(spec.get("hostNetwork").is_none() && spec.get("hostPID").is_none());
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(c["image"], format!("ghcr.io/meshward/control:{version}"));
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][kind][r].is_string(), "resources.{kind}.{r} missing");
        }
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    // The identity in the Lease and the Lease's namespace come from the pod.
    let env = c["env"].as_array().unwrap();
    for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        let var = env
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }
    let port = &c["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["containerPort"].as_i64()),
        (Some("http"), Some(8080))
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "http");
    }

    // The arguments are `serve` with flags the binary accepts, the listen
    // address on the container port, and the filter of the same version.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    let help = Command::new(env!("CARGO_BIN_EXE_meshward-control"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")),
            "`serve` has no flag {flag}:\n{help}"
        );
    }
    let value = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
    assert_eq!(value("--listen"), Some("0.0.0.0:8080"));
    assert_eq!(
        value("--url").map(str::to_string),
        Some(format!("oci://ghcr.io/meshward/filter:{version}"))
    );

    // The Service reaches that pod on that port, and announces /metrics.
    let svc = one(&docs, "Service", "meshward-control");
    assert_eq!(svc["metadata"]["namespace"], "meshward-system");
    let labels = pod["metadata"]["labels"].as_object().unwrap();
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(labels.get(k), Some(v), "Service selector {k} does not select the pod");
    }
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http",
        "protocol": "TCP", "appProtocol": "http"}])
    );
    let a = &svc["metadata"]["annotations"];
    assert_eq!(
        (
            &a["prometheus.io/scrape"],
            &a["prometheus.io/port"],
            &a["prometheus.io/path"]
        ),
        (&json!("true"), &json!("8080"), &json!("/metrics"))
    );
    let ns = one(&docs, "Namespace", "meshward-system");
    assert_eq!(ns["kind"], "Namespace");
}

#[test]
fn the_stats_tags_are_the_readmes() {
    // The `stats_tags` YAML block of README "Metrics".
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme
        .find("stats_config:\n  stats_tags:")
        .expect("README stats_tags block");
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let documented: Value = common::yaml(block);
    let docs = docs();
    let mut seen = 0;
    for d in docs.iter().filter(|d| d.kind() == "ConfigMap") {
        if let Some(text) = d.value["data"]["custom_bootstrap.json"].as_str() {
            let bootstrap: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                bootstrap["stats_config"]["stats_tags"], documented["stats_config"]["stats_tags"],
                "{}: stats_tags differ from README",
                d.at
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "no bootstrap override found");
}

/// The mesh config snippet of a Telemetry file: the comment lines from
/// `#   meshConfig:` on that start with `#   `, without that prefix.
fn mesh_config_snippet(text: &str) -> Option<Value> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim_end() != "#   meshConfig:")
        .peekable();
    lines.peek()?;
    let yaml: Vec<&str> = lines.map_while(|l| l.strip_prefix("#   ")).collect();
    Some(common::yaml(&yaml.join("\n")))
}

#[test]
fn telemetry_providers_are_declared_in_the_mesh_config_snippet() {
    let mut checked = 0;
    for (path, providers) in mesh_config_providers() {
        let declared: Vec<_> = providers.iter().map(|p| p["name"].as_str().unwrap()).collect();
        let text = std::fs::read_to_string(&path).unwrap();
        for v in common::yaml_docs(&text) {
            if v["kind"] == "Telemetry" {
                for name in telemetry(&v).unwrap() {
                    assert!(
                        declared.contains(&name.as_str()),
                        "{}: provider {name} is not declared",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0);
}

/// Every file with a Telemetry object that configures access logs, and the
/// extension providers of its mesh config snippet (such a file without one
/// fails).
fn mesh_config_providers() -> Vec<(PathBuf, Vec<Value>)> {
    let mut paths = Vec::new();
    for dir in DIRS {
        yaml_files(&workspace().join(dir), &mut paths);
    }
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("\nkind: Telemetry") || !text.contains("accessLogging:") {
            continue;
        }
        let snippet = mesh_config_snippet(&text)
            .unwrap_or_else(|| panic!("{}: Telemetry without a `#   meshConfig:` snippet", path.display()));
        let providers = snippet["meshConfig"]["extensionProviders"].as_array().unwrap().clone();
        out.push((path, providers));
    }
    out
}

fn envoy() -> Option<PathBuf> {
    let path = std::env::var_os("MESHWARD_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/envoy"));
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is missing (run `make setup`); Envoy configuration not validated",
            path.display()
        );
        None
    }
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// `envoy --mode validate -c <config>` (plus `--config-yaml <overlay>`, as
/// istio-agent passes a bootstrap override).
fn envoy_validate(envoy: &Path, config: &Value, overlay: Option<&str>) -> Result<(), String> {
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("meshward-install-{}-{n}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let mut cmd = Command::new(envoy);
    cmd.args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&file);
    if let Some(o) = overlay {
        cmd.args(["--config-yaml", o]);
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The stats part of the bootstrap istio-agent generates (shape of
/// istio/istio tools/packaging/common/envoy_bootstrap.json: no default tags,
/// Istio's own tags, an inclusion list), to merge an override into.
fn istio_like_bootstrap() -> Value {
    json!({"stats_config": {
        "use_all_default_tags": false,
        "stats_tags": [
            {"tag_name": "cluster_name", "regex": "^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)"},
            {"tag_name": "response_code", "regex": "_rq(_(\\d{3}))$"},
            {"tag_name": "wasm_filter", "regex": "(wasm_filter\\.(.+?)\\.)"},
            {"tag_name": "component", "regex": "(component\\.(.+?)\\.)"}
        ],
        "stats_matcher": {"inclusion_list": {"patterns": [
            {"prefix": "reporter="}, {"prefix": "cluster_manager"}, {"prefix": "server"}, {"prefix": "wasm"}
        ]}}
    }})
}

/// A listener whose HTTP connection manager writes a file access log in
/// `format`, as istiod configures an `envoyFileAccessLog` provider.
fn access_log_bootstrap(path: &str, format: &str) -> Value {
    json!({"static_resources": {"listeners": [{
        "name": "inbound",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15006}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "inbound",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config":
                    {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": path,
                    "log_format": {"text_format_source": {"inline_string": format}}}}]
            }
        }]}]
    }]}})
}

#[test]
fn envoy_configs_pass_validation() {
    let Some(envoy) = envoy() else { return };
    let mut validated = 0;

    // Bootstrap overrides: alone, and merged into an Istio-like bootstrap the
    // way istio-agent passes them (`--config-yaml`).
    for d in docs().iter().filter(|d| d.kind() == "ConfigMap") {
        if let Some(text) = d.value["data"]["custom_bootstrap.json"].as_str() {
            let alone: Value = serde_json::from_str(text).unwrap();
            envoy_validate(&envoy, &alone, None).unwrap_or_else(|e| panic!("{}: {e}", d.at));
            envoy_validate(&envoy, &istio_like_bootstrap(), Some(text))
                .unwrap_or_else(|e| panic!("{} merged into an Istio-like bootstrap: {e}", d.at));
            validated += 1;
        }
    }
    // Access-log providers of mesh config snippets.
    for (path, providers) in mesh_config_providers() {
        for p in providers {
            let file = &p["envoyFileAccessLog"];
            let format = file["logFormat"]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: provider without logFormat.text", path.display()));
            let config = access_log_bootstrap(file["path"].as_str().unwrap(), format);
            envoy_validate(&envoy, &config, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            validated += 1;
        }
    }
    assert!(validated >= 2, "expected a bootstrap override and an access-log format");

    // The validation is real: Envoy refuses a broken regex, an unknown
    // field and an unknown format command.
    let bad_regex = r#"{"stats_config": {"stats_tags": [{"tag_name": "rule", "regex": "((\\.rule="}]}}"#;
    assert!(envoy_validate(&envoy, &istio_like_bootstrap(), Some(bad_regex)).is_err());
    assert!(envoy_validate(&envoy, &json!({"stats_config": {"stats_tagz": []}}), None).is_err());
    let bad_format = access_log_bootstrap("/dev/stdout", "%FILTER_STATE(wasm.meshward.verdict:BOGUS)%\n");
    assert!(envoy_validate(&envoy, &bad_format, None).is_err());
}

/// The instructions of a Dockerfile's last stage, `(INSTRUCTION, rest)`,
/// comments and continuations folded.
fn last_stage(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let joined = text.replace("\\\n", " ");
    for line in joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            out.clear();
        }
        out.push((op, rest.trim().to_string()));
    }
    out
}

#[test]
fn dockerfiles_keep_istios_layout_and_a_non_root_user() {
    let read = |f: &str| std::fs::read_to_string(workspace().join("docker").join(f)).unwrap();
    // Istio's image layout: FROM scratch, one file /plugin.wasm.
    let filter = last_stage(&read("filter.Dockerfile"));
    assert_eq!(
        filter,
        vec![
            ("FROM".into(), "scratch".into()),
            (
                "COPY".into(),
                "target/wasm32-wasip1/release/meshward_filter.wasm /plugin.wasm".into()
            ),
        ]
    );

    let text = read("control.Dockerfile");
    assert!(text.contains("cargo build --release -p meshward-control --locked"));
    let control = last_stage(&text);
    let get = |op: &str| {
        control
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .next_back()
    };
    assert_eq!(get("FROM"), Some("gcr.io/distroless/cc-debian12:nonroot"));
    assert_eq!(get("USER"), Some("65532:65532"), "the Deployment's runAsUser");
    assert_eq!(get("ENTRYPOINT"), Some(r#"["/usr/local/bin/meshward-control"]"#));

    // The filter image's input is in the build context.
    let ignore = std::fs::read_to_string(workspace().join(".dockerignore")).unwrap();
    assert!(ignore
        .lines()
        .any(|l| l == "!target/wasm32-wasip1/release/meshward_filter.wasm"));
}

/// The chart's `values.yaml` with `overrides` merged in (objects merged key
/// by key, anything else replaced), as `helm --set`/`-f` would.
fn chart_values(overrides: Value) -> Value {
    fn merge(base: &mut Value, over: Value) {
        match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                for (k, v) in o {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, o) => *b = o,
        }
    }
    let text = std::fs::read_to_string(workspace().join(CHART).join("values.yaml")).unwrap();
    let mut values = common::yaml(&text);
    merge(&mut values, overrides);
    values
}

/// Every object the chart renders with `values` in release namespace
/// `meshward-system`, after checking `values` against `values.schema.json`.
fn render_chart(values: &Value) -> Result<Vec<Doc>, String> {
    let chart = workspace().join(CHART);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart.join("values.schema.json")).unwrap()).unwrap();
    validate(&schema, values, "values")?;
    let meta = common::yaml(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap());
    let ctx = json!({
        "Values": values,
        "Release": {"Name": "meshward", "Namespace": "meshward-system"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
    });
    let mut templates: Vec<PathBuf> = std::fs::read_dir(chart.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    let mut docs = Vec::new();
    for t in templates {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let text =
            gotemplate::render(&std::fs::read_to_string(&t).unwrap(), &ctx).map_err(|e| format!("{name}: {e}"))?;
        let parsed = meshward_control::manifests::parse_documents(&text)
            .map_err(|(line, e)| format!("{name} rendered, line {line}: {e}\n{text}"))?;
        for (i, d) in parsed.into_iter().enumerate() {
            docs.push(Doc {
                at: format!("{CHART}/templates/{name}#{i}"),
                value: d.value,
            });
        }
    }
    Ok(docs)
}

#[test]
fn the_chart_with_its_defaults_renders_istio_control_yaml() {
    let rendered = render_chart(&chart_values(json!({}))).unwrap();
    let docs = docs();
    let control: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.at.starts_with("istio/control.yaml") && d.kind() != "Namespace")
        .collect();
    let mut seen = Vec::new();
    for d in &control {
        let twin = rendered
            .iter()
            .find(|r| r.kind() == d.kind() && r.name() == d.name())
            .unwrap_or_else(|| panic!("the chart renders no {} {}", d.kind(), d.name()));
        assert_eq!(
            twin.value, d.value,
            "{} differs from {}: keep istio/control.yaml and the chart's defaults in step",
            twin.at, d.at
        );
        seen.push((d.kind().to_string(), d.name().to_string()));
    }
    assert_eq!(
        rendered.len(),
        control.len(),
        "the chart renders objects istio/control.yaml lacks: {seen:?}"
    );
    // The chart installs the same CRD (Helm applies crds/ first).
    assert_eq!(
        std::fs::read_to_string(workspace().join(CHART).join("crds/allowlist.yaml")).unwrap(),
        std::fs::read_to_string(workspace().join("istio/crd.yaml")).unwrap(),
        "{CHART}/crds/allowlist.yaml is stale: run `make crd`"
    );
}

#[test]
fn every_chart_value_reaches_valid_objects_and_wasmplugins() {
    let sha = "0123456789abcdef".repeat(4);
    let values = chart_values(json!({
        "image": {"repository": "registry.example.com/meshward/control", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "replicas": 0,
        "resources": {"requests": {"cpu": "100m", "memory": "160Mi"}, "limits": {"memory": "320Mi"}},
        "trustDomain": "prod.example",
        "module": {
            "url": "oci://registry.example.com/meshward/filter:0.1.0",
            "sha256": sha,
            "imagePullPolicy": "Always",
            "imagePullSecret": "registry-creds",
            "priority": -10
        },
        "networkPolicy": {"from": [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}]},
        "serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prometheus"}}
    }));
    let rendered = render_chart(&values).unwrap();
    let istio = istio_schemas();
    let allowlist_schema = crd_schema(&meshward_control::crd::crd_yaml().unwrap(), "v1alpha1");
    for d in &rendered {
        check(d, &istio, &allowlist_schema).unwrap_or_else(|e| panic!("{}: {e}", d.at));
    }
    let one = |kind: &str| &rendered.iter().find(|d| d.kind() == kind).unwrap().value;
    let deployment = one("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert!(
        !rendered.iter().any(|d| d.kind() == "PodDisruptionBudget"),
        "no PodDisruptionBudget for fewer than two replicas (it would block every drain)"
    );
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example.com/meshward/control:0.1.0-rc1");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "320Mi");
    let monitor = one("ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(
        one("NetworkPolicy")["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["team"],
        "observability"
    );

    // The Deployment's flags, given to `render` (the flags `serve` shares),
    // produce WasmPlugins with every module field, valid for Istio.
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "serve");
    let derivation: Vec<&String> = {
        let listen = args.iter().position(|a| a == "--listen").unwrap();
        args[1..listen].iter().chain(&args[listen + 2..]).collect()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_meshward-control"))
        .args(["render", "-o", "json", "--manifests"])
        .arg(workspace().join("examples/bookinfo"))
        .args(derivation)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plugin = &list["items"][0];
    let spec = &plugin["spec"];
    assert_eq!(spec["url"], "oci://registry.example.com/meshward/filter:0.1.0");
    assert_eq!(spec["sha256"], sha.as_str());
    assert_eq!(spec["imagePullPolicy"], "Always");
    assert_eq!(spec["imagePullSecret"], "registry-creds");
    assert_eq!(spec["priority"], -10);
    let principal = spec["pluginConfig"]["policies"][0]["rules"][0]["from"][0]["principals"][0]
        .as_str()
        .unwrap();
    assert!(principal.starts_with("prod.example/ns/"), "{principal}");
    let doc = Doc {
        at: "render".into(),
        value: plugin.clone(),
    };
    check(&doc, &istio, &allowlist_schema).unwrap();
    // The schema catches what Istio would refuse.
    let mut bad = plugin.clone();
    bad["spec"]["imagePullPolicy"] = "Sometimes".into();
    assert!(check(
        &Doc {
            at: "bad".into(),
            value: bad
        },
        &istio,
        &allowlist_schema
    )
    .is_err());
}

#[test]
fn the_chart_refuses_values_istio_or_the_service_would_not_take() {
    for (over, why) in [
        (json!({"replicas": -1}), "a negative replica count"),
        (
            json!({"module": {"sha256": format!("sha256:{}", "a".repeat(64))}}),
            "a prefixed digest",
        ),
        (
            json!({"module": {"imagePullPolicy": "Never"}}),
            "a policy WasmPlugins lack",
        ),
        (json!({"module": {"imagePullSecret": "Creds"}}), "not a Secret name"),
        (json!({"modul": {}}), "a misspelled key"),
    ] {
        assert!(render_chart(&chart_values(over)).is_err(), "accepted {why}");
    }
}
