//! The offline CLI, run as a binary: `crd`, `render --manifests`, `validate`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshward-control"))
}

fn dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshward-control-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (f, text) in files {
        std::fs::write(d.join(f), text).unwrap();
    }
    d
}

const NAMESPACE: &str =
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    meshward.io/enforcement: enabled\n";
const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      serviceAccountName: frontend
      containers: [{name: app, image: frontend}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored, namespace: shop}
"#;
const ALLOWLIST: &str = r#"apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - name: frontend-reads
    from: [{workloads: {selector: {matchLabels: {app: frontend}}}}]
    to: [{methods: [GET], paths: ["/cart/*"]}]
"#;

#[test]
fn render_prints_the_wasmplugin_of_each_enabled_namespace() {
    let d = dir(
        "render",
        &[
            ("00-ns.yaml", NAMESPACE),
            ("10-workloads.yaml", WORKLOADS),
            ("20-allowlist.yml", ALLOWLIST),
        ],
    );
    let out = bin()
        .args(["render", "--manifests"])
        .arg(&d)
        .args(["--url", "file:///meshward.wasm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 1, "{text}");
    let spec = &docs[0]["spec"];
    assert_eq!(spec["url"].as_str(), Some("file:///meshward.wasm"));
    let policy = &spec["pluginConfig"]["policies"][0];
    assert_eq!(policy["name"].as_str(), Some("shop/cart"));
    assert_eq!(
        policy["rules"][0]["from"][0]["principals"][0].as_str(),
        Some("cluster.local/ns/shop/sa/frontend")
    );
    // Byte-identical when run again.
    let again = bin()
        .args(["render", "--manifests"])
        .arg(&d)
        .args(["--url", "file:///meshward.wasm"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

#[test]
fn render_fails_on_an_invalid_allowlist_naming_it() {
    let bad = ALLOWLIST.replace("\"/cart/*\"", "\"cart\"");
    let d = dir("invalid", &[("ns.yaml", NAMESPACE), ("a.yaml", &bad)]);
    let out = bin().args(["render", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Allowlist shop/cart: InvalidPath: rules[0].to[0].paths[0]"),
        "{err}"
    );
}

#[test]
fn manifest_errors_name_the_file_document_and_object() {
    let typo = ALLOWLIST.replace("rules:", "rulez:");
    let d = dir(
        "typo",
        &[("ns.yaml", NAMESPACE), ("a.yaml", &format!("{NAMESPACE}---\n{typo}"))],
    );
    let out = bin().args(["render", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.yaml: document 1 (Allowlist shop/cart): unknown field `rulez`"),
        "{err}"
    );
}

#[test]
fn crd_prints_the_committed_crd() {
    let out = bin().arg("crd").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        include_str!("../../istio/crd.yaml")
    );
}

#[test]
fn validate_reports_each_file() {
    let d = dir(
        "validate",
        &[
            ("good.json", r#"{"policies":[{"name":"p","rules":[{}]}]}"#),
            (
                "bad.json",
                r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["x"]}]}]}]}"#,
            ),
        ],
    );
    assert!(bin()
        .arg("validate")
        .arg(d.join("good.json"))
        .status()
        .unwrap()
        .success());
    let out = bin()
        .arg("validate")
        .arg(d.join("good.json"))
        .arg(d.join("bad.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policies[0].rules[0].to[0].paths[0]"));
}
