//! The adoption path end to end, with a real Envoy and the CLI run as a user
//! runs it:
//!
//! 1. `meshward-control render` on the manifests of a namespace labelled
//!    `meshward.io/enforcement: learn` gives the filter's configuration
//!    (every policy in audit, `log.requests: all`, the rule-less
//!    `meshward:learn` policy), delivered through ECDS;
//! 2. callers with different mTLS identities, and an anonymous one, send
//!    requests with several methods to id-bearing paths: all pass, each
//!    leaves its `meshward.request` line in Envoy's log;
//! 3. `meshward-control learn` on that log proposes Allowlists (enforce
//!    mode), and `meshward-control replay` of the same log against them exits
//!    0;
//! 4. the proposal, rendered with the namespace `enabled`, is delivered to the
//!    same Envoy; then requests to the learned endpoints with ids never seen
//!    pass, and requests from an unobserved caller, with an unobserved
//!    method, to an unobserved path, one level deeper than a learned
//!    template, or from the anonymous caller beyond what it was seen using,
//!    get 403.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::{Command, Output};

use meshward_e2e::{call, control_binary, Caller, EnvoyOptions, Scenario};
use serde_json::Value;

/// The workload under test and its callers, as manifests. `namespace` is
/// written separately so the same workloads can be learned (`learn`) and
/// enforced (`enabled`).
const WORKLOADS: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: frontend, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: checkout, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: stranger, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: orders, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders, version: v1}}
    spec:
      serviceAccountName: orders
      containers: [{name: orders, image: orders:1, ports: [{name: http, containerPort: 8080}]}]
"#;

fn namespace(enforcement: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {{meshward.io/enforcement: {enforcement}}}\n"
    )
}

const FRONTEND: &str = "cluster.local/ns/shop/sa/frontend";
const CHECKOUT: &str = "cluster.local/ns/shop/sa/checkout";
/// A caller from a namespace the manifests do not have: kept as a principal.
const NIGHTLY: &str = "cluster.local/ns/batch/sa/nightly";
/// A service account of the manifests that sends nothing while learning.
const STRANGER: &str = "cluster.local/ns/shop/sa/stranger";

/// Runs the CLI; panics with its output if it cannot start.
fn control(args: &[&str], dir: &Path) -> Output {
    Command::new(control_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run meshward-control")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `render -o json` on `manifests` → the `pluginConfig` of the one
/// WasmPlugin of `shop`, as JSON.
fn render(dir: &Path, manifests: &[&str]) -> Value {
    let mut args = vec![
        "render",
        "--url",
        "file:///meshward_filter.wasm",
        "-o",
        "json",
        "--manifests",
    ];
    args.extend(manifests);
    let out = control(&args, dir);
    assert!(out.status.success(), "render: {}", text(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let plugins: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "WasmPlugin" && d["metadata"]["namespace"] == "shop")
        .collect();
    assert_eq!(plugins.len(), 1, "{list:#}");
    plugins[0]["spec"]["pluginConfig"].clone()
}

/// The learning traffic: (caller, method, path). `None` is the anonymous
/// caller (plaintext, no certificate).
fn learning_traffic() -> Vec<(Option<&'static str>, &'static str, String)> {
    let mut t = Vec::new();
    for id in [17, 42, 1001, 7, 3] {
        t.push((Some(FRONTEND), "GET", format!("/orders/{id}")));
        t.push((Some(FRONTEND), "GET", format!("/orders/{id}/items")));
    }
    t.push((Some(FRONTEND), "GET", "/orders".into()));
    t.push((Some(FRONTEND), "POST", "/orders".into()));
    for uuid in [
        "123e4567-e89b-12d3-a456-426614174000",
        "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
        "00000000-0000-4000-8000-000000000001",
    ] {
        t.push((Some(CHECKOUT), "PUT", format!("/orders/{uuid}/status")));
    }
    for cus in ["cus_Nffr1a9", "cus_Q2x8LmZ4", "cus_7HgT0pWe"] {
        t.push((Some(CHECKOUT), "GET", format!("/customers/{cus}/orders")));
    }
    for day in ["2026-11-20", "2026-11-21"] {
        t.push((Some(NIGHTLY), "DELETE", format!("/archive/{day}")));
    }
    t.push((None, "GET", "/healthz".into()));
    t.push((None, "GET", "/healthz".into()));
    t
}

#[test]
fn learned_allowlists_admit_held_out_traffic_and_nothing_else() {
    let envoy_opts = |config: String| {
        let mut o = EnvoyOptions::new(config)
            .ecds()
            .labels(&[("app", "orders"), ("version", "v1")]);
        o.workload = "orders".into();
        o.namespace = "shop".into();
        o
    };
    // The scenario directory is created with Envoy; render into a temporary
    // one first, then keep everything in the scenario's.
    let pre = meshward_e2e::Scratch::new();
    std::fs::write(pre.path().join("workloads.yaml"), WORKLOADS).unwrap();
    std::fs::write(pre.path().join("ns-learn.yaml"), namespace("learn")).unwrap();
    let learn_config = render(pre.path(), &["ns-learn.yaml", "workloads.yaml"]);
    // What derivation makes of a learn namespace.
    assert_eq!(learn_config["log"]["requests"], "all", "{learn_config:#}");
    let policies = learn_config["policies"].as_array().unwrap();
    assert!(
        policies
            .iter()
            .any(|p| p["name"] == "meshward:learn" && p["rules"].as_array().is_none_or(|r| r.is_empty())),
        "{learn_config:#}"
    );
    assert!(policies.iter().all(|p| p["mode"] == "audit"), "{learn_config:#}");

    let s = Scenario::start(envoy_opts(learn_config.to_string()));
    let dir = s.dir().to_path_buf();
    std::fs::write(dir.join("workloads.yaml"), WORKLOADS).unwrap();
    std::fs::write(dir.join("ns-learn.yaml"), namespace("learn")).unwrap();
    std::fs::write(dir.join("ns-enabled.yaml"), namespace("enabled")).unwrap();

    let caller = |who: Option<&str>| match who {
        Some(p) => s.pki.caller(p),
        None => Caller::Anonymous,
    };
    let status = |who: &Caller, method: &str, path: &str| s.envoy.send(who, &call(method, path)).status;

    // 2. Learning: nothing is refused, every request is logged.
    let traffic = learning_traffic();
    let callers: Vec<(Option<&str>, Caller)> = [Some(FRONTEND), Some(CHECKOUT), Some(NIGHTLY), None]
        .into_iter()
        .map(|w| (w, caller(w)))
        .collect();
    let who = |w: Option<&str>| &callers.iter().find(|(c, _)| *c == w).unwrap().1;
    for (w, method, path) in &traffic {
        assert_eq!(status(who(*w), method, path), 200, "learning: {w:?} {method} {path}");
    }
    let logged = s
        .envoy
        .eventually(|e| Some(e.request_log()).filter(|l| l.len() >= traffic.len()))
        .unwrap_or_else(|| panic!("{} request lines expected", traffic.len()));
    assert!(logged.iter().all(|l| l["verdict"] == "audit_deny"), "{logged:#?}");
    assert!(logged
        .iter()
        .all(|l| l["workload"] == "orders" && l["namespace"] == "shop"));
    // Envoy's own log, as it is, is what `learn` reads.
    std::fs::write(dir.join("envoy-learn.log"), s.envoy.log()).unwrap();

    // 3. Propose (enforce mode), then replay the same log against it.
    let learned = control(
        &[
            "learn",
            "--manifests",
            "ns-learn.yaml",
            "workloads.yaml",
            "--logs",
            "envoy-learn.log",
            "--mode",
            "enforce",
        ],
        &dir,
    );
    assert!(learned.status.success(), "learn: {}", text(&learned));
    let proposal = String::from_utf8(learned.stdout.clone()).unwrap();
    std::fs::write(dir.join("proposed.yaml"), &proposal).unwrap();
    let summary = String::from_utf8_lossy(&learned.stderr);
    assert!(
        summary.contains(&format!("learned from {}", traffic.len())),
        "{}",
        text(&learned)
    );
    assert!(
        summary.contains("shop/orders/anonymous-no-identity"),
        "{}",
        text(&learned)
    );
    // One Allowlist, one rule per caller, ids generalized to one segment.
    let docs: Vec<Value> = serde_saphyr::from_multiple(&proposal).unwrap();
    assert_eq!(docs.len(), 1, "{proposal}");
    let spec = &docs[0]["spec"];
    assert_eq!(docs[0]["metadata"]["name"], "orders");
    assert_eq!(spec["mode"], "enforce");
    assert_eq!(spec["selector"]["matchLabels"]["app"], "orders");
    let rules: Vec<(String, Value, Vec<String>)> = spec["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let paths = r["to"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|op| {
                    let methods: Vec<&str> = op["methods"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m.as_str().unwrap())
                        .collect();
                    op["paths"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(move |p| format!("{} {}", methods.join(","), p.as_str().unwrap()))
                })
                .collect();
            (r["name"].as_str().unwrap().to_string(), r["from"].clone(), paths)
        })
        .collect();
    let expected = [
        ("anonymous-no-identity", Value::Null, vec!["GET /healthz"]),
        (
            "batch.nightly",
            serde_json::json!([{"principals": [NIGHTLY]}]),
            vec!["DELETE /archive/{*}"],
        ),
        (
            "shop.checkout",
            serde_json::json!([{"serviceAccounts": ["shop/checkout"]}]),
            vec!["GET /customers/{*}/orders", "PUT /orders/{*}/status"],
        ),
        (
            "shop.frontend",
            serde_json::json!([{"serviceAccounts": ["shop/frontend"]}]),
            vec!["GET /orders/{*}", "GET /orders/{*}/items", "GET,POST /orders"],
        ),
    ];
    let mut got = rules.clone();
    for r in &mut got {
        r.2.sort();
    }
    let expected: Vec<(String, Value, Vec<String>)> = expected
        .into_iter()
        .map(|(n, f, p)| (n.to_string(), f, p.into_iter().map(str::to_string).collect()))
        .collect();
    assert_eq!(got, expected, "{proposal}");
    assert!(!proposal.contains("{**}"), "{proposal}");
    let replayed = control(
        &[
            "replay",
            "--manifests",
            "ns-enabled.yaml",
            "workloads.yaml",
            "proposed.yaml",
            "--logs",
            "envoy-learn.log",
        ],
        &dir,
    );
    assert_eq!(replayed.status.code(), Some(0), "replay: {}", text(&replayed));
    assert!(
        String::from_utf8_lossy(&replayed.stdout)
            .contains(&format!("admitted {}, denied 0, still refused 0", traffic.len())),
        "{}",
        text(&replayed)
    );

    // 4. Enforce the proposal in the same Envoy.
    let enforce_config = render(&dir, &["ns-enabled.yaml", "workloads.yaml", "proposed.yaml"]);
    assert!(
        enforce_config["policies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "meshward:learn" && p["mode"] != "audit"),
        "{enforce_config:#}"
    );
    s.envoy.update_config(&enforce_config.to_string());
    let stranger = caller(Some(STRANGER));
    let applied = s
        .envoy
        .eventually(|_| (status(&stranger, "GET", "/orders/17") == 403).then_some(()));
    assert!(applied.is_some(), "the proposal never took effect:\n{}", s.envoy.log());

    let send = |w: Option<&str>, method: &str, path: &str, id: &str| {
        let c = if w == Some(STRANGER) { &stranger } else { who(w) };
        s.envoy.send(c, &call(method, path).header("x-request-id", id)).status
    };
    // Held out: the learned endpoints, with ids never seen.
    let held_out = [
        (Some(FRONTEND), "GET", "/orders/31337"),
        (Some(FRONTEND), "GET", "/orders/8/items"),
        (Some(FRONTEND), "GET", "/orders"),
        (Some(FRONTEND), "POST", "/orders"),
        (
            Some(CHECKOUT),
            "PUT",
            "/orders/5b1e0c4a-7d2f-4e8b-9a3c-6f0d1e2b3c4d/status",
        ),
        (Some(CHECKOUT), "GET", "/customers/cus_Zz9Yy8Xx/orders"),
        (Some(NIGHTLY), "DELETE", "/archive/2026-12-01"),
        (None, "GET", "/healthz"),
    ];
    for (i, (w, method, path)) in held_out.iter().enumerate() {
        let id = format!("held-out-{i}");
        assert_eq!(send(*w, method, path, &id), 200, "held out: {w:?} {method} {path}");
    }
    // Not learned: refused.
    let refused = [
        // An unobserved caller (a known service account), a learned request.
        (Some(STRANGER), "GET", "/orders/17"),
        // Unobserved methods on learned paths.
        (Some(FRONTEND), "DELETE", "/orders/17"),
        (Some(FRONTEND), "PUT", "/orders/17/items"),
        (
            Some(CHECKOUT),
            "GET",
            "/orders/123e4567-e89b-12d3-a456-426614174000/status",
        ),
        // Unobserved paths.
        (Some(FRONTEND), "GET", "/admin"),
        (Some(FRONTEND), "GET", "/orders/17/invoices"),
        // One level deeper than a learned template.
        (Some(FRONTEND), "GET", "/orders/17/items/3"),
        (Some(FRONTEND), "GET", "/orders/17/18"),
        (Some(NIGHTLY), "DELETE", "/archive/2026-11-20/x"),
        // Another caller's learned request.
        (Some(NIGHTLY), "GET", "/orders/17"),
        // The anonymous caller beyond its health check.
        (None, "GET", "/orders/17"),
        (None, "GET", "/healthz/deep"),
    ];
    for (i, (w, method, path)) in refused.iter().enumerate() {
        let id = format!("refused-{i}");
        assert_eq!(send(*w, method, path, &id), 403, "not learned: {w:?} {method} {path}");
    }
    // Each decided by the proposal in enforce mode. The refusals are in the
    // request log (an enabled namespace logs denials); the access log says
    // which rule admitted each held-out request.
    let lines = s
        .envoy
        .eventually(|e| {
            let lines: Vec<Value> = e
                .request_log()
                .into_iter()
                .filter(|l| l["requestId"].as_str().is_some_and(|id| id.starts_with("refused-")))
                .collect();
            (lines.len() >= refused.len()).then_some(lines)
        })
        .unwrap_or_else(|| panic!("{} request lines expected", refused.len()));
    for l in &lines {
        assert_eq!(
            (&l["verdict"], &l["mode"], &l["policy"]),
            (
                &Value::from("deny"),
                &Value::from("enforce"),
                &Value::from("shop/orders")
            ),
            "{l}"
        );
    }
    let expected: Vec<String> = held_out
        .iter()
        .map(|(w, method, path)| {
            let rule = match *w {
                Some(FRONTEND) => "shop.frontend",
                Some(CHECKOUT) => "shop.checkout",
                Some(NIGHTLY) => "batch.nightly",
                _ => "anonymous-no-identity",
            };
            format!("{method} {path} 200 verdict=allow policy=shop/orders rule={rule}")
        })
        .collect();
    let logged = s.envoy.eventually(|e| {
        let access = e.access_log();
        expected.iter().all(|l| access.contains(l)).then_some(())
    });
    assert!(
        logged.is_some(),
        "expected {expected:#?}\nin the access log: {:#?}",
        s.envoy.access_log()
    );
}
