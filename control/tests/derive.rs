//! Derivation without a cluster: small `mk_*` inputs, assertions on the
//! desired WasmPlugins and Allowlist statuses.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use k8s_openapi::jiff::Timestamp;
use meshward_control::derive::{derive_snapshot as derive, Desired, StatusUpdate, WasmPlugin};
use meshward_control::state::Snapshot;
use meshward_filter::config::PluginConfig;
use meshward_filter::{Engine, Evaluator, Request, Verdict};
use serde_json::{json, Value};

fn now() -> Timestamp {
    Timestamp::from_second(1_795_000_000).unwrap()
}

fn plugin<'a>(d: &'a Desired, ns: &str) -> &'a WasmPlugin {
    d.wasm_plugins
        .iter()
        .find(|p| p.metadata.namespace.as_deref() == Some(ns))
        .unwrap_or_else(|| panic!("no WasmPlugin in {ns}: {d:#?}"))
}

fn status<'a>(d: &'a Desired, ns: &str, name: &str) -> &'a StatusUpdate {
    d.statuses.iter().find(|s| s.namespace == ns && s.name == name).unwrap()
}

fn config(p: &WasmPlugin) -> Value {
    serde_json::to_value(&p.spec.plugin_config).unwrap()
}

/// A bookinfo-like namespace: productpage calls reviews.
fn bookinfo() -> meshward_control::state::Snapshot {
    let mut s = snapshot();
    s.namespaces = vec![mk_ns("bookinfo", Some("enabled")), mk_ns("other", None)];
    s.pods = vec![
        mk_pod(
            "bookinfo",
            "productpage-1",
            json!({"app": "productpage"}),
            Some("bookinfo-productpage"),
        ),
        mk_pod(
            "bookinfo",
            "reviews-1",
            json!({"app": "reviews"}),
            Some("bookinfo-reviews"),
        ),
    ];
    s.services = vec![mk_service(
        "bookinfo",
        "reviews",
        json!({"app": "reviews"}),
        json!([{"name": "http", "port": 9080, "targetPort": "http"}]),
    )];
    s.allowlists = vec![mk_allowlist(
        "bookinfo",
        "reviews",
        json!({"selector": {"matchLabels": {"app": "reviews"}}, "rules": [{
            "name": "productpage-reads",
            "from": [{"workloads": {"selector": {"matchLabels": {"app": "productpage"}}}}],
            "to": [{"methods": ["GET"], "paths": ["/reviews/*"], "servicePorts": [{"service": "reviews", "port": "http"}]}]
        }]}),
    )];
    s
}

#[test]
fn an_enabled_namespace_gets_one_wasmplugin() {
    let d = derive(&bookinfo(), &settings(), now());
    assert_eq!(d.wasm_plugins.len(), 1, "only the enabled namespace");
    let p = plugin(&d, "bookinfo");
    assert_eq!(p.metadata.name.as_deref(), Some("meshward"));
    assert_eq!(
        p.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "meshward-control"
    );
    let spec = serde_json::to_value(&p.spec).unwrap();
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["match"], json!([{"mode": "SERVER"}]));
    assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
    assert_eq!(spec["pluginName"], "meshward");
    assert_eq!(spec["url"], "oci://registry.example.com/meshward/filter:0.1.0");
    assert_eq!(
        config(p),
        json!({"policies": [{"name": "bookinfo/reviews", "selector": {"app": "reviews"}, "rules": [{
            "name": "productpage-reads",
            "from": [{"principals": ["cluster.local/ns/bookinfo/sa/bookinfo-productpage"]}],
            "to": [{"methods": ["GET"], "paths": ["/reviews/*"], "ports": [9080]}]
        }]}]})
    );
    let st = &status(&d, "bookinfo", "reviews").status;
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(
        (st.conditions[0].type_.as_str(), st.conditions[0].status.as_str()),
        ("Ready", "True")
    );
    assert_eq!(st.resolved.unwrap().principals, 1);
}

#[test]
fn generated_wasmplugins_validate_against_istios_schema() {
    let schema = crd_schema(include_str!("data/istio-wasmplugin-crd.yaml"), "v1alpha1");
    let mut s = bookinfo();
    s.namespaces.push(mk_ns("empty", Some("audit")));
    let d = derive(&s, &settings(), now());
    assert_eq!(d.wasm_plugins.len(), 2);
    for p in &d.wasm_plugins {
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(
            (v["apiVersion"].as_str(), v["kind"].as_str()),
            (Some("extensions.istio.io/v1alpha1"), Some("WasmPlugin"))
        );
        validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
    }
    // The validator does refuse what Istio refuses.
    let mut bad = serde_json::to_value(&d.wasm_plugins[0]).unwrap();
    bad["spec"]["phase"] = "LATE".into();
    assert!(validate(&schema["properties"]["spec"], &bad["spec"], "spec").is_err());
    bad["spec"]["phase"] = "AUTHZ".into();
    bad["spec"]["sha256"] = "not-a-digest".into();
    assert!(validate(&schema["properties"]["spec"], &bad["spec"], "spec").is_err());
    bad["spec"]["sha256"] = Value::from("a".repeat(64));
    bad["spec"]["failStrategy2"] = "x".into();
    assert!(validate(&schema["properties"]["spec"], &bad["spec"], "spec").is_err());
}

#[test]
fn disabled_namespaces_get_no_wasmplugin_and_their_allowlists_say_why() {
    let mut s = bookinfo();
    s.namespaces = vec![mk_ns("bookinfo", Some("disabled"))];
    let d = derive(&s, &settings(), now());
    assert!(d.wasm_plugins.is_empty(), "{d:#?}");
    let reasons: Vec<&str> = d
        .statuses
        .iter()
        .map(|s| s.status.conditions[0].reason.as_str())
        .collect();
    assert_eq!(reasons, ["NamespaceNotEnabled"], "{d:#?}");
}

#[test]
fn a_new_service_account_becomes_a_principal() {
    let mut s = bookinfo();
    s.deployments.push(mk_deployment(
        "bookinfo",
        "productpage-v2",
        json!({"app": "productpage", "version": "v2"}),
        "productpage-v2",
    ));
    s.pods
        .push(mk_pod("bookinfo", "productpage-x", json!({"app": "productpage"}), None));
    let d = derive(&s, &settings(), now());
    assert_eq!(
        config(plugin(&d, "bookinfo"))["policies"][0]["rules"][0]["from"][0]["principals"],
        json!([
            "cluster.local/ns/bookinfo/sa/bookinfo-productpage",
            "cluster.local/ns/bookinfo/sa/default",
            "cluster.local/ns/bookinfo/sa/productpage-v2"
        ])
    );
    assert_eq!(status(&d, "bookinfo", "reviews").status.resolved.unwrap().workloads, 3);
}

#[test]
fn a_selector_that_matches_nothing_admits_nobody() {
    let mut s = bookinfo();
    s.pods.retain(|p| p.metadata.name.as_deref() != Some("productpage-1"));
    let d = derive(&s, &settings(), now());
    let cfg = config(plugin(&d, "bookinfo"));
    assert_eq!(cfg["policies"][0]["rules"][0]["from"][0]["principals"], json!([]));
    assert_eq!(status(&d, "bookinfo", "reviews").status.resolved.unwrap().workloads, 0);
    // And the filter's engine denies everyone for that rule.
    let engine = Engine::from_json(cfg.to_string().as_bytes()).unwrap();
    let sel = engine.select(|k| (k == "app").then(|| "reviews".to_string()));
    let mut ev = Evaluator::new(Arc::new(engine), sel);
    let headers: [(&str, &str); 0] = [];
    for principal in [Some("cluster.local/ns/bookinfo/sa/bookinfo-productpage"), None] {
        let r = Request {
            connection: Default::default(),
            method: "GET",
            path: "/reviews/1",
            authority: Some("reviews"),
            port: Some(9080),
            principal,
            auth: None,
            headers: &headers[..],
        };
        assert_eq!(ev.evaluate(&r).verdict, Verdict::Deny);
    }
}

#[test]
fn service_accounts_and_service_ports() {
    let mut s = bookinfo();
    s.service_accounts.push(mk_sa("monitoring", "prometheus"));
    s.services.push(mk_service(
        "bookinfo",
        "ratings",
        json!({"app": "ratings"}),
        json!([{"port": 80, "targetPort": 9081}]),
    ));
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "ratings",
        json!({"rules": [{"from": [{"serviceAccounts": ["monitoring/prometheus"]}], "to": [{"servicePorts": [{"service": "ratings", "port": 80}], "ports": [15020]}]}]}),
    ));
    let d = derive(&s, &settings(), now());
    let cfg = config(plugin(&d, "bookinfo"));
    let ratings = &cfg["policies"][0];
    assert_eq!(ratings["name"], "bookinfo/ratings");
    assert_eq!(
        ratings["rules"][0]["from"][0]["principals"],
        json!(["cluster.local/ns/monitoring/sa/prometheus"])
    );
    assert_eq!(ratings["rules"][0]["to"][0]["ports"], json!([9081, 15020]));
}

#[test]
fn invalid_allowlists_get_a_status_and_leave_the_rest_alone() {
    let mut s = bookinfo();
    s.namespaces.push(mk_ns("shop", Some("enabled")));
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "broken",
        json!({"rules": [{"to": [{"paths": ["/ok", "relative"]}]}]}),
    ));
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "bad-sa",
        json!({"rules": [{"from": [{"serviceAccounts": ["just-a-name"]}]}]}),
    ));
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "bad-port",
        json!({"rules": [{"to": [{"servicePorts": [{"service": "reviews", "port": "grpc"}]}]}]}),
    ));
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "empty-from",
        json!({"rules": [{"from": [{}]}]}),
    ));
    s.allowlists.push(mk_allowlist(
        "shop",
        "cart",
        json!({"rules": [{"to": [{"paths": ["/cart"]}]}]}),
    ));
    let d = derive(&s, &settings(), now());
    let cond = |name: &str| status(&d, "bookinfo", name).status.conditions[0].clone();
    let broken = cond("broken");
    assert_eq!(
        (broken.status.as_str(), broken.reason.as_str()),
        ("False", "InvalidPath")
    );
    assert!(
        broken.message.starts_with(r#"rules[0].to[0].paths[1]: "relative""#),
        "{}",
        broken.message
    );
    assert_eq!(cond("bad-sa").reason, "InvalidServiceAccount");
    assert!(cond("bad-sa")
        .message
        .starts_with("rules[0].from[0].serviceAccounts[0]"));
    assert_eq!(cond("bad-port").reason, "UnresolvedServicePort");
    // In the user's terms: the port as written, not a Rust value.
    assert!(
        cond("bad-port")
            .message
            .starts_with("rules[0].to[0].servicePorts[0]: no port grpc on Service bookinfo/reviews"),
        "{}",
        cond("bad-port").message
    );
    // An empty `from` entry names the Allowlist's own fields.
    let empty = cond("empty-from");
    assert_eq!(empty.reason, "InvalidSource");
    assert!(
        empty
            .message
            .starts_with("rules[0].from[0]: an entry must name its callers: set workloads, serviceAccounts"),
        "{}",
        empty.message
    );
    // Without a previous version in force, each stands as a placeholder that
    // admits nobody; the valid ones are unaffected, here and in other namespaces.
    for name in ["broken", "bad-sa", "bad-port", "empty-from"] {
        assert!(
            cond(name)
                .message
                .ends_with("; its workloads deny every request until it is fixed"),
            "{}",
            cond(name).message
        );
    }
    let cfg = config(plugin(&d, "bookinfo"));
    let names: Vec<&Value> = cfg["policies"].as_array().unwrap().iter().map(|p| &p["name"]).collect();
    assert_eq!(
        names,
        [
            "bookinfo/bad-port",
            "bookinfo/bad-sa",
            "bookinfo/broken",
            "bookinfo/empty-from",
            "bookinfo/reviews"
        ]
    );
    assert_eq!(cfg["policies"][2], json!({"name": "bookinfo/broken", "rules": []}));
    assert_eq!(config(plugin(&d, "shop"))["policies"][0]["name"], "shop/cart");
    assert_eq!(cond("reviews").status, "True");
}

#[test]
fn an_audit_namespace_puts_every_policy_in_audit() {
    let mut s = bookinfo();
    s.namespaces = vec![mk_ns("bookinfo", Some("audit"))];
    let d = derive(&s, &settings(), now());
    assert_eq!(config(plugin(&d, "bookinfo"))["policies"][0]["mode"], "audit");
}

/// In a learn namespace every request some workload receives is decided by
/// a policy (so `log.requests: all` logs it), in audit mode, and a request
/// an Allowlist admits stays admitted by it.
#[test]
fn a_learn_namespace_audits_and_logs_every_request_with_or_without_allowlists() {
    use meshward_filter::Reason;
    for with_allowlists in [true, false] {
        let mut s = bookinfo();
        s.namespaces = vec![mk_ns("bookinfo", Some("learn"))];
        if !with_allowlists {
            s.allowlists.clear();
        }
        let d = derive(&s, &settings(), now());
        let p = plugin(&d, "bookinfo");
        let cfg = &p.spec.plugin_config;
        assert_eq!(config(p)["log"], json!({"requests": "all", "includeQuery": false}));
        let names: Vec<&str> = cfg.policies.iter().map(|p| p.name.as_str()).collect();
        let expected: &[&str] = if with_allowlists {
            &["bookinfo/reviews", "meshward:learn"]
        } else {
            &["meshward:learn"]
        };
        assert_eq!(names, expected);
        assert!(cfg
            .policies
            .iter()
            .all(|p| p.mode == Some(meshward_filter::Mode::Audit)));
        let decide = |app: &str, principal: Option<&str>, path: &str| {
            let labels = BTreeMap::from([("app".to_string(), app.to_string())]);
            let engine = Engine::compile(cfg).unwrap();
            let sel = engine.select(|k| labels.get(k).cloned());
            let mut ev = Evaluator::new(Arc::new(engine), sel);
            let headers: [(&str, &str); 0] = [];
            let d = ev.evaluate(&Request {
                connection: Default::default(),
                method: "GET",
                path,
                authority: Some("svc"),
                port: Some(9080),
                principal,
                auth: None,
                headers: &headers[..],
            });
            (d.verdict, d.reason != Reason::NoPolicy)
        };
        // A workload no Allowlist selects: decided (and so logged), never refused.
        assert_eq!(decide("productpage", None, "/"), (Verdict::AuditDeny, true));
        let admitted = if with_allowlists {
            Verdict::Allow
        } else {
            Verdict::AuditDeny
        };
        assert_eq!(decide("reviews", Some(PRODUCTPAGE), "/reviews/1"), (admitted, true));
        assert_eq!(decide("reviews", None, "/reviews/1"), (Verdict::AuditDeny, true));
        if with_allowlists {
            assert_eq!(status(&d, "bookinfo", "reviews").status.conditions[0].status, "True");
        }
    }
}

#[test]
fn output_is_deterministic() {
    let mut s = bookinfo();
    s.namespaces.push(mk_ns("shop", Some("enabled")));
    for (ns, name) in [("shop", "b"), ("bookinfo", "z"), ("shop", "a"), ("bookinfo", "a")] {
        s.allowlists.push(mk_allowlist(
            ns,
            name,
            json!({"rules": [{"to": [{"paths": [format!("/{name}")]}]}]}),
        ));
    }
    let render = |s: &meshward_control::state::Snapshot| {
        meshward_control::manifests::to_yaml(&derive(s, &settings(), now()).wasm_plugins).unwrap()
    };
    let first = render(&s);
    let mut shuffled = s.clone();
    shuffled.allowlists.reverse();
    shuffled.namespaces.reverse();
    shuffled.pods.reverse();
    assert_eq!(render(&shuffled), first);
    assert!(first.find("bookinfo/a").unwrap() < first.find("bookinfo/reviews").unwrap());
}

#[test]
fn the_committed_crd_matches_the_types() {
    let committed = include_str!("../../istio/crd.yaml");
    assert_eq!(
        meshward_control::crd::crd_yaml().unwrap(),
        committed,
        "istio/crd.yaml is stale: run `cargo run -p meshward-control -- crd > istio/crd.yaml`"
    );
}

#[test]
fn allowlists_validate_against_the_generated_crd() {
    let schema = crd_schema(include_str!("../../istio/crd.yaml"), "v1alpha1");
    for a in bookinfo().allowlists {
        let v = serde_json::to_value(&a).unwrap();
        validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
    }
}

/// The verdict of one pluginConfig for a workload with `labels`.
fn verdict(
    cfg: &PluginConfig,
    labels: &BTreeMap<String, String>,
    principal: Option<&str>,
    method: &str,
    path: &str,
) -> Verdict {
    let engine = Engine::compile(cfg).unwrap();
    let sel = engine.select(|k| labels.get(k).cloned());
    let mut ev = Evaluator::new(Arc::new(engine), sel);
    let headers: [(&str, &str); 0] = [];
    let r = Request {
        connection: Default::default(),
        method,
        path,
        authority: Some("svc"),
        port: Some(9080),
        principal,
        auth: None,
        headers: &headers[..],
    };
    ev.evaluate(&r).verdict
}

/// The verdict of every WasmPlugin of `ns` delivered to a workload with
/// `labels` together, as the sidecar's filter chain gives it: any denial
/// wins, then an audit denial, else the request passes.
fn ns_verdict(d: &Desired, ns: &str, labels: &Value, principal: Option<&str>, method: &str, path: &str) -> Verdict {
    let labels: BTreeMap<String, String> = serde_json::from_value(labels.clone()).unwrap();
    let verdicts: Vec<Verdict> = d
        .wasm_plugins
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            p.spec
                .selector
                .as_ref()
                .is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
        })
        .map(|p| verdict(&p.spec.plugin_config, &labels, principal, method, path))
        .collect();
    if verdicts.iter().any(|v| matches!(v, Verdict::Deny | Verdict::Reject)) {
        Verdict::Deny
    } else if verdicts.contains(&Verdict::AuditDeny) {
        Verdict::AuditDeny
    } else {
        Verdict::Allow
    }
}

const PRODUCTPAGE: &str = "cluster.local/ns/bookinfo/sa/bookinfo-productpage";

/// bookinfo with its only Allowlist broken (a relative path).
fn broken_bookinfo() -> Snapshot {
    let mut s = bookinfo();
    s.allowlists[0].spec.rules[0].to.as_mut().unwrap()[0]
        .paths
        .as_mut()
        .unwrap()
        .push("relative".into());
    s
}

#[test]
fn an_invalid_only_allowlist_denies_its_workloads_instead_of_opening_them() {
    let d = derive(&broken_bookinfo(), &settings(), now());
    let cond = &status(&d, "bookinfo", "reviews").status.conditions[0];
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "InvalidPath"));
    assert!(
        cond.message
            .ends_with("; its workloads deny every request until it is fixed"),
        "{}",
        cond.message
    );
    let p = plugin(&d, "bookinfo");
    assert_eq!(
        config(p),
        json!({"policies": [{"name": "bookinfo/reviews", "selector": {"app": "reviews"}, "rules": []}]})
    );
    let reviews = json!({"app": "reviews"});
    for principal in [Some(PRODUCTPAGE), None] {
        assert_eq!(
            ns_verdict(&d, "bookinfo", &reviews, principal, "GET", "/reviews/1"),
            Verdict::Deny
        );
    }
    // Workloads it does not select are as before: no policy, the request passes.
    assert_eq!(
        ns_verdict(&d, "bookinfo", &json!({"app": "productpage"}), None, "GET", "/"),
        Verdict::Allow
    );
    // In an audit namespace, the placeholder audits.
    let mut s = broken_bookinfo();
    s.namespaces = vec![mk_ns("bookinfo", Some("audit"))];
    let d = derive(&s, &settings(), now());
    assert_eq!(config(plugin(&d, "bookinfo"))["policies"][0]["mode"], "audit");
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "GET", "/reviews/1"),
        Verdict::AuditDeny
    );
}

#[test]
fn an_invalid_allowlist_keeps_its_last_valid_version_in_force() {
    let good = derive(&bookinfo(), &settings(), now());
    let mut s = broken_bookinfo();
    s.previous = BTreeMap::from([(
        "bookinfo".to_string(),
        vec![plugin(&good, "bookinfo").spec.plugin_config.clone()],
    )]);
    let d = derive(&s, &settings(), now());
    let cond = &status(&d, "bookinfo", "reviews").status.conditions[0];
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "InvalidPath"));
    assert!(
        cond.message.ends_with("; the last valid version stays in force"),
        "{}",
        cond.message
    );
    assert_eq!(
        plugin(&d, "bookinfo").spec.plugin_config,
        plugin(&good, "bookinfo").spec.plugin_config
    );
    let reviews = json!({"app": "reviews"});
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "GET", "/reviews/1"),
        Verdict::Allow
    );
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "DELETE", "/reviews/1"),
        Verdict::Deny
    );
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, None, "GET", "/reviews/1"),
        Verdict::Deny
    );
}

/// Two Allowlists of 40 distinct methods each: valid alone, but together over
/// the engine's limit of 64 distinct methods per configuration.
fn too_many_methods() -> Snapshot {
    let mut s = bookinfo();
    for (name, prefix) in [("m", 'M'), ("n", 'N')] {
        let methods: Vec<String> = (0..40).map(|i| format!("{prefix}{i:02}")).collect();
        s.allowlists.push(mk_allowlist(
            "bookinfo",
            name,
            json!({"selector": {"matchLabels": {"app": "productpage"}}, "rules": [{"to": [{"methods": methods}]}]}),
        ));
    }
    s
}

#[test]
fn a_namespace_config_the_engine_rejects_fails_closed() {
    let s = too_many_methods();
    let d = derive(&s, &settings(), now());
    // Every Allowlist of the namespace says why.
    for name in ["m", "n", "reviews"] {
        let cond = &status(&d, "bookinfo", name).status.conditions[0];
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "NamespaceConfigRejected"),
            "{name}"
        );
        assert!(
            cond.message
                .starts_with("WasmPlugin meshward: the engine rejects its pluginConfig: ")
                && cond.message.contains("more than 64 distinct methods")
                && cond
                    .message
                    .ends_with("; its workloads deny every request until it is fixed"),
            "{}",
            cond.message
        );
    }
    // Without a previous configuration: every Allowlist admits nobody.
    assert_eq!(d.wasm_plugins.len(), 1);
    let cfg = &plugin(&d, "bookinfo").spec.plugin_config;
    assert!(Engine::compile(cfg).is_ok());
    assert_eq!(cfg.policies.len(), 3);
    assert!(cfg.policies.iter().all(|p| p.rules.is_empty()), "{cfg:#?}");
    let reviews = json!({"app": "reviews"});
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "GET", "/reviews/1"),
        Verdict::Deny
    );
    assert_eq!(
        ns_verdict(&d, "bookinfo", &json!({"app": "productpage"}), None, "M01", "/"),
        Verdict::Deny
    );
    // With one: it stays in force, unchanged.
    let good = derive(&bookinfo(), &settings(), now());
    let previous = vec![plugin(&good, "bookinfo").spec.plugin_config.clone()];
    let mut s = s;
    s.previous = BTreeMap::from([("bookinfo".to_string(), previous.clone())]);
    let d = derive(&s, &settings(), now());
    assert_eq!(d.wasm_plugins.len(), 1);
    assert_eq!(plugin(&d, "bookinfo").spec.plugin_config, previous[0]);
    let cond = &status(&d, "bookinfo", "m").status.conditions[0];
    assert_eq!(cond.reason, "NamespaceConfigRejected");
    assert!(
        cond.message
            .ends_with("; the namespace's last valid WasmPlugins stay in force"),
        "{}",
        cond.message
    );
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "GET", "/reviews/1"),
        Verdict::Allow
    );
    // A namespace beside it is unaffected.
    let mut s = too_many_methods();
    s.namespaces.push(mk_ns("shop", Some("enabled")));
    s.allowlists.push(mk_allowlist(
        "shop",
        "cart",
        json!({"rules": [{"to": [{"paths": ["/cart"]}]}]}),
    ));
    let d = derive(&s, &settings(), now());
    assert_eq!(status(&d, "shop", "cart").status.conditions[0].status, "True");
    assert_eq!(
        config(plugin(&d, "shop"))["policies"][0]["rules"][0]["to"][0]["paths"],
        json!(["/cart"])
    );
}

#[test]
fn an_allowlist_invalid_alone_in_a_rejected_namespace_says_both() {
    let mut s = too_many_methods();
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "broken",
        json!({"rules": [{"to": [{"paths": ["relative"]}]}]}),
    ));
    let d = derive(&s, &settings(), now());
    let cond = &status(&d, "bookinfo", "broken").status.conditions[0];
    assert_eq!(cond.reason, "NamespaceConfigRejected");
    assert!(
        cond.message
            .contains("; this Allowlist is also invalid: rules[0].to[0].paths[0]: \"relative\""),
        "{}",
        cond.message
    );
}

/// A namespace of six workloads `w0`..`w5` (`w0` also in team x), an
/// Allowlist per workload with ten paths, and `team-x`, which shares `w0`.
fn big() -> Snapshot {
    let mut s = snapshot();
    s.namespaces = vec![mk_ns("big", Some("enabled"))];
    for w in 0..6 {
        let app = format!("w{w}");
        let labels = if w == 0 {
            json!({"app": app, "team": "x"})
        } else {
            json!({"app": app})
        };
        s.pods.push(mk_pod("big", &format!("{app}-1"), labels, Some(&app)));
        let paths: Vec<String> = (0..10).map(|k| format!("/{app}/resource-{k}/*")).collect();
        s.allowlists.push(mk_allowlist(
            "big",
            &format!("a{w}"),
            json!({"selector": {"matchLabels": {"app": app}}, "rules": [{
                "from": [{"workloads": {"selector": {"matchLabels": {"app": format!("w{}", (w + 1) % 6)}}}}],
                "to": [{"methods": ["GET"], "paths": paths}]
            }]}),
        ));
    }
    s.allowlists.push(mk_allowlist(
        "big",
        "team-x",
        json!({"selector": {"matchLabels": {"team": "x"}}, "rules": [{"to": [{"paths": ["/team/*"]}]}]}),
    ));
    s
}

fn with_budget(budget_bytes: usize) -> meshward_control::derive::Settings {
    meshward_control::derive::Settings {
        budget_bytes,
        ..settings()
    }
}

fn plugins_of<'a>(d: &'a Desired, ns: &str) -> Vec<&'a WasmPlugin> {
    d.wasm_plugins
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect()
}

#[test]
fn a_namespace_over_its_budget_is_split_without_changing_a_decision() {
    const BUDGET: usize = 800;
    let s = big();
    let whole = derive(&s, &settings(), now());
    assert_eq!(plugins_of(&whole, "big").len(), 1);
    let whole_size = serde_json::to_vec(&plugin(&whole, "big").spec.plugin_config)
        .unwrap()
        .len();
    assert!(
        whole_size > 2 * BUDGET,
        "the test needs a namespace well over budget: {whole_size}"
    );

    let d = derive(&s, &with_budget(BUDGET), now());
    let plugins = plugins_of(&d, "big");
    assert!(plugins.len() >= 2, "{plugins:#?}");
    let names: Vec<&str> = plugins.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect();
    let mut expected: Vec<String> = (0..plugins.len())
        .map(|i| {
            if i == 0 {
                "meshward".into()
            } else {
                format!("meshward-{i}")
            }
        })
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    let schema = crd_schema(include_str!("data/istio-wasmplugin-crd.yaml"), "v1alpha1");
    let mut seen: Vec<String> = Vec::new();
    for p in &plugins {
        let cfg = &p.spec.plugin_config;
        let size = serde_json::to_vec(cfg).unwrap().len();
        assert!(size <= BUDGET, "{}: {size} bytes", names.join(","));
        Engine::compile(cfg).unwrap();
        let v = serde_json::to_value(p).unwrap();
        validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
        // The plugin's selector: labels every one of its policies requires.
        if let Some(sel) = &p.spec.selector {
            assert!(!sel.match_labels.is_empty());
            for policy in &cfg.policies {
                let own = policy.selector.as_ref().unwrap();
                assert!(sel.match_labels.iter().all(|(k, v)| own.get(k) == Some(v)), "{p:#?}");
            }
            assert!(v["spec"]["selector"]["matchLabels"].is_object());
        }
        seen.extend(cfg.policies.iter().map(|p| p.name.clone()));
    }
    seen.sort();
    let mut all: Vec<String> = (0..6).map(|w| format!("big/a{w}")).collect();
    all.push("big/team-x".into());
    assert_eq!(seen, all, "every policy exactly once");
    // Policies that share a workload stay together.
    let holder = |name: &str| {
        plugins
            .iter()
            .position(|p| p.spec.plugin_config.policies.iter().any(|q| q.name == name))
            .unwrap()
    };
    assert_eq!(holder("big/a0"), holder("big/team-x"));
    // Statuses: ready, within budget.
    for st in &d.statuses {
        let conds: Vec<(&str, &str)> = st
            .status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(conds, [("Ready", "True"), ("WithinBudget", "True")], "{st:#?}");
    }
    // Every workload gets the decisions it got from the single plugin.
    for w in 0..6 {
        let labels = if w == 0 {
            json!({"app": "w0", "team": "x"})
        } else {
            json!({"app": format!("w{w}")})
        };
        for caller in 0..6 {
            let principal = format!("cluster.local/ns/big/sa/w{caller}");
            for (method, path) in [
                ("GET", format!("/w{w}/resource-3/x")),
                ("POST", format!("/w{w}/resource-3/x")),
                ("GET", "/team/1".to_string()),
                ("GET", "/other".to_string()),
            ] {
                assert_eq!(
                    ns_verdict(&d, "big", &labels, Some(&principal), method, &path),
                    ns_verdict(&whole, "big", &labels, Some(&principal), method, &path),
                    "w{w} from w{caller}: {method} {path}"
                );
            }
        }
    }
    // Byte-identical across runs and input orders.
    let render = |s: &Snapshot| {
        meshward_control::manifests::to_yaml(&derive(s, &with_budget(BUDGET), now()).wasm_plugins).unwrap()
    };
    let first = render(&s);
    assert_eq!(render(&s), first);
    let mut shuffled = s.clone();
    shuffled.allowlists.reverse();
    shuffled.pods.reverse();
    assert_eq!(render(&shuffled), first);
}

#[test]
fn a_namespace_within_its_budget_keeps_one_plugin_without_selector() {
    let d = derive(&big(), &settings(), now());
    let plugins = plugins_of(&d, "big");
    assert_eq!(plugins.len(), 1);
    assert_eq!(plugins[0].metadata.name.as_deref(), Some("meshward"));
    assert_eq!(plugins[0].spec.selector, None);
    let v = serde_json::to_value(plugins[0]).unwrap();
    assert!(v["spec"].get("selector").is_none(), "{v}");
    // Exactly at the budget still fits.
    let size = serde_json::to_vec(&plugins[0].spec.plugin_config).unwrap().len();
    let d = derive(&big(), &with_budget(size), now());
    assert_eq!(plugins_of(&d, "big").len(), 1);
}

#[test]
fn a_group_over_the_budget_is_emitted_whole_and_says_so() {
    // A budget that holds one Allowlist, but not a0 and team-x, which share
    // w0: they go whole, alone.
    let whole = derive(&big(), &settings(), now());
    let a1 = PluginConfig {
        policies: vec![plugin(&whole, "big").spec.plugin_config.policies[1].clone()],
        ..PluginConfig::default()
    };
    assert_eq!(a1.policies[0].name, "big/a1");
    let d = derive(&big(), &with_budget(serde_json::to_vec(&a1).unwrap().len()), now());
    let plugins = plugins_of(&d, "big");
    let with_a0: Vec<&&WasmPlugin> = plugins
        .iter()
        .filter(|p| p.spec.plugin_config.policies.iter().any(|q| q.name == "big/a0"))
        .collect();
    assert_eq!(with_a0.len(), 1);
    let names: Vec<&str> = with_a0[0]
        .spec
        .plugin_config
        .policies
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["big/a0", "big/team-x"]);
    for name in ["a0", "team-x"] {
        let conds = &status(&d, "big", name).status.conditions;
        assert_eq!((conds[0].type_.as_str(), conds[0].status.as_str()), ("Ready", "True"));
        assert_eq!(
            (
                conds[1].type_.as_str(),
                conds[1].status.as_str(),
                conds[1].reason.as_str()
            ),
            ("WithinBudget", "False", "OverBudget")
        );
    }
    assert_eq!(status(&d, "big", "a1").status.conditions[1].status, "True");
    // A plugin of one Allowlist is delivered only where it applies.
    let schema = crd_schema(include_str!("data/istio-wasmplugin-crd.yaml"), "v1alpha1");
    let a1 = plugins
        .iter()
        .find(|p| p.spec.plugin_config.policies.iter().any(|q| q.name == "big/a1"))
        .unwrap();
    assert_eq!(a1.spec.plugin_config.policies.len(), 1);
    let v = serde_json::to_value(a1).unwrap();
    assert_eq!(v["spec"]["selector"], json!({"matchLabels": {"app": "w1"}}));
    validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
}

#[test]
fn a_group_over_the_hard_limit_fails_closed() {
    let mut s = big();
    // About 1.6 MB of paths in one Allowlist.
    let long = "x".repeat(1990);
    let paths: Vec<String> = (0..800).map(|i| format!("/{long}/{i}")).collect();
    s.allowlists.push(mk_allowlist(
        "big",
        "huge",
        json!({"selector": {"matchLabels": {"app": "w5"}}, "rules": [{"to": [{"paths": paths}]}]}),
    ));
    let started = std::time::Instant::now();
    let d = derive(&s, &settings(), now());
    eprintln!("derive with a 1.6 MB Allowlist: {:?}", started.elapsed());
    let cond = &status(&d, "big", "a1").status.conditions[0];
    assert_eq!(cond.reason, "NamespaceConfigRejected");
    assert!(cond.message.contains("over the limit of 1400000"), "{}", cond.message);
    assert_eq!(status(&d, "big", "huge").status.conditions[1].reason, "OverBudget");
    // Every Allowlist of the namespace now admits nobody.
    for p in plugins_of(&d, "big") {
        assert!(p.spec.plugin_config.policies.iter().all(|q| q.rules.is_empty()));
    }
    assert_eq!(
        ns_verdict(
            &d,
            "big",
            &json!({"app": "w1"}),
            Some("cluster.local/ns/big/sa/w2"),
            "GET",
            "/w1/resource-1/x"
        ),
        Verdict::Deny
    );
}

#[test]
fn a_workload_without_labels_keeps_the_policies_without_selector_together() {
    let mut s = snapshot();
    s.namespaces = vec![mk_ns("plain", Some("enabled"))];
    for name in ["a", "b"] {
        let paths: Vec<String> = (0..10).map(|k| format!("/{name}/resource-{k}/*")).collect();
        s.allowlists.push(mk_allowlist(
            "plain",
            name,
            json!({"rules": [{"to": [{"methods": ["GET"], "paths": paths}]}]}),
        ));
    }
    let one = PluginConfig {
        policies: vec![plugin(&derive(&s, &settings(), now()), "plain")
            .spec
            .plugin_config
            .policies[0]
            .clone()],
        ..PluginConfig::default()
    };
    let budget = with_budget(serde_json::to_vec(&one).unwrap().len());
    // No workload yet: two plugins, both for every workload (a future one
    // gets the intersection, stricter than one plugin).
    let d = derive(&s, &budget, now());
    assert_eq!(plugins_of(&d, "plain").len(), 2);
    assert!(plugins_of(&d, "plain").iter().all(|p| p.spec.selector.is_none()));
    // A pod without labels is a workload both apply to: kept together.
    s.pods
        .push(serde_json::from_value(json!({"metadata": {"name": "bare", "namespace": "plain"}})).unwrap());
    let d = derive(&s, &budget, now());
    assert_eq!(plugins_of(&d, "plain").len(), 1);
    assert_eq!(status(&d, "plain", "a").status.conditions[1].reason, "OverBudget");
}

#[test]
fn an_earlier_placeholder_is_no_valid_version() {
    let placeholder = derive(&broken_bookinfo(), &settings(), now());
    let mut s = broken_bookinfo();
    s.previous = BTreeMap::from([(
        "bookinfo".to_string(),
        vec![plugin(&placeholder, "bookinfo").spec.plugin_config.clone()],
    )]);
    let d = derive(&s, &settings(), now());
    let cond = &status(&d, "bookinfo", "reviews").status.conditions[0];
    assert!(
        cond.message
            .ends_with("; its workloads deny every request until it is fixed"),
        "{}",
        cond.message
    );
    assert_eq!(d.wasm_plugins, placeholder.wasm_plugins);
}

#[test]
fn an_allowlist_in_a_namespace_that_is_not_enabled_says_so() {
    let mut s = bookinfo();
    s.allowlists.push(mk_allowlist("other", "idle", json!({"rules": [{}]})));
    let d = derive(&s, &settings(), now());
    assert!(d
        .wasm_plugins
        .iter()
        .all(|p| p.metadata.namespace.as_deref() != Some("other")));
    let st = status(&d, "other", "idle");
    assert_eq!(st.status.conditions.len(), 1);
    let c = &st.status.conditions[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("Ready", "False", "NamespaceNotEnabled")
    );
    assert!(c.message.contains("meshward.io/enforcement"), "{}", c.message);
    let names: Vec<(&str, &str)> = d
        .statuses
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "statuses stay sorted");
}

#[test]
fn grpc_entries_are_carried_to_the_plugin_config_and_invalid_ones_named() {
    let mut s = bookinfo();
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "inventory",
        json!({"selector": {"matchLabels": {"app": "reviews"}}, "rules": [{
            "name": "reads",
            "from": [{"serviceAccounts": ["bookinfo/bookinfo-productpage"]}],
            "to": [{"grpc": {"service": "shop.inventory.v1.Inventory", "methods": ["GetItem", "ListItems"]},
                    "servicePorts": [{"service": "reviews", "port": "http"}]}]
        }]}),
    ));
    for (name, to, reason, message) in [
        (
            "bad-method",
            json!([{"grpc": {"service": "shop.Inventory", "methods": ["GetItem", "Get/Item"]}}]),
            "InvalidGrpc",
            r#"rules[0].to[0].grpc.methods[1]: "Get/Item": not a protobuf method name"#,
        ),
        (
            "bad-service",
            json!([{"grpc": {"service": ".shop.Inventory", "methods": ["*"]}}]),
            "InvalidGrpc",
            r#"rules[0].to[0].grpc.service: ".shop.Inventory": not a full protobuf service name"#,
        ),
        (
            "with-paths",
            json!([{"grpc": {"service": "shop.Inventory", "methods": ["*"]}, "paths": ["/x"]}]),
            "InvalidGrpc",
            "rules[0].to[0]: grpc sets the method (POST) and the paths",
        ),
    ] {
        s.allowlists
            .push(mk_allowlist("bookinfo", name, json!({"rules": [{"to": to}]})));
        let d = derive(&s, &settings(), now());
        let c = &status(&d, "bookinfo", name).status.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason), "{name}");
        assert!(c.message.starts_with(message), "{name}: {}", c.message);
        s.allowlists.pop();
    }
    let d = derive(&s, &settings(), now());
    assert_eq!(status(&d, "bookinfo", "inventory").status.conditions[0].status, "True");
    let cfg = config(plugin(&d, "bookinfo"));
    let policy = cfg["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bookinfo/inventory")
        .unwrap();
    assert_eq!(
        policy["rules"][0]["to"],
        json!([{"ports": [9080], "grpc": {"service": "shop.inventory.v1.Inventory", "methods": ["GetItem", "ListItems"]}}])
    );
    // The derived configuration admits the method as a gRPC call only.
    let labels = json!({"app": "reviews"});
    let cfg = &plugin(&d, "bookinfo").spec.plugin_config;
    let labels: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
    let judge = |content_type: &str, path: &str| {
        let engine = Engine::compile(cfg).unwrap();
        let sel = engine.select(|k| labels.get(k).cloned());
        let mut ev = Evaluator::new(Arc::new(engine), sel);
        let headers = [("content-type", content_type)];
        ev.evaluate(&Request {
            connection: Default::default(),
            method: "POST",
            path,
            authority: Some("reviews"),
            port: Some(9080),
            principal: Some(PRODUCTPAGE),
            auth: None,
            headers: &headers[..],
        })
        .verdict
    };
    const GET_ITEM: &str = "/shop.inventory.v1.Inventory/GetItem";
    assert_eq!(judge("application/grpc", GET_ITEM), Verdict::Allow);
    assert_eq!(judge("application/json", GET_ITEM), Verdict::Deny);
    assert_eq!(
        judge("application/grpc", "/shop.inventory.v1.Inventory/DeleteItem"),
        Verdict::Deny
    );
    // And the Allowlist fits the generated CRD.
    let schema = crd_schema(include_str!("../../istio/crd.yaml"), "v1alpha1");
    let a = s
        .allowlists
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("inventory"))
        .unwrap();
    let v = serde_json::to_value(a).unwrap();
    validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
}

#[test]
fn jwt_fields_are_carried_to_the_plugin_config_and_invalid_ones_named() {
    let mut s = bookinfo();
    let spec = json!({"selector": {"matchLabels": {"app": "reviews"}}, "rules": [{
        "name": "users",
        "from": [{"requestPrincipals": ["https://issuer.example/*"], "notRequestPrincipals": ["https://issuer.example/mallory"]}],
        "when": [{"key": "request.auth.claims[org][team]", "values": ["payments"]},
                 {"key": "request.auth.audiences", "notValues": ["legacy"]},
                 {"header": "x-env", "values": ["prod"]}]
    }]});
    s.allowlists.push(mk_allowlist("bookinfo", "jwt", spec.clone()));
    for (name, rule, reason, message) in [
        (
            "bad-key",
            json!({"when": [{"key": "request.auth.claim[x]", "values": ["a"]}]}),
            "InvalidHeader",
            r#"rules[0].when[0].key: unknown key "request.auth.claim[x]"; supported keys: "#,
        ),
        (
            "bad-claim-path",
            json!({"when": [{"key": "request.auth.claims[a][]", "values": ["a"]}]}),
            "InvalidHeader",
            r#"rules[0].when[0].key: "request.auth.claims[a][]": a claim is named in brackets"#,
        ),
        (
            "bad-principal",
            json!({"from": [{"requestPrincipals": ["a*b/c"]}]}),
            "InvalidSource",
            r#"rules[0].from[0].requestPrincipals[0]: "a*b/c""#,
        ),
    ] {
        s.allowlists
            .push(mk_allowlist("bookinfo", name, json!({"rules": [rule]})));
        let d = derive(&s, &settings(), now());
        let c = &status(&d, "bookinfo", name).status.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason), "{name}");
        assert!(c.message.starts_with(message), "{name}: {}", c.message);
        s.allowlists.pop();
    }
    let d = derive(&s, &settings(), now());
    assert_eq!(status(&d, "bookinfo", "jwt").status.conditions[0].status, "True");
    let cfg = config(plugin(&d, "bookinfo"));
    let policy = cfg["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bookinfo/jwt")
        .unwrap();
    // Passed through as written.
    assert_eq!(policy["rules"][0]["from"], spec["rules"][0]["from"]);
    assert_eq!(policy["rules"][0]["when"], spec["rules"][0]["when"]);
    // And the Allowlist fits the generated CRD.
    let schema = crd_schema(include_str!("../../istio/crd.yaml"), "v1alpha1");
    let a = s
        .allowlists
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some("jwt"))
        .unwrap();
    let v = serde_json::to_value(a).unwrap();
    validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
}

/// bookinfo with a deny Allowlist on reviews: `/reviews/admin*` from anyone,
/// and every caller without an identity.
fn bookinfo_with_deny() -> Snapshot {
    let mut s = bookinfo();
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "reviews-deny",
        json!({"selector": {"matchLabels": {"app": "reviews"}}, "action": "deny", "rules": [
            {"name": "admin", "to": [{"paths": ["/reviews/admin*"]}]},
            {"name": "plaintext", "from": [{"notPrincipals": ["*"]}]}
        ]}),
    ));
    s
}

#[test]
fn a_deny_allowlist_becomes_a_deny_policy_that_wins_over_allow_rules() {
    let d = derive(&bookinfo_with_deny(), &settings(), now());
    let p = plugin(&d, "bookinfo");
    let policies = &config(p)["policies"];
    assert_eq!(policies[0]["name"], "bookinfo/reviews");
    assert_eq!(policies[0].get("action"), None, "allow is the default and not written");
    assert_eq!(policies[1]["name"], "bookinfo/reviews-deny");
    assert_eq!(policies[1]["action"], "deny");
    let schema = crd_schema(include_str!("data/istio-wasmplugin-crd.yaml"), "v1alpha1");
    let v = serde_json::to_value(p).unwrap();
    validate(&schema["properties"]["spec"], &v["spec"], "spec").unwrap();
    let cond = &status(&d, "bookinfo", "reviews-deny").status.conditions[0];
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("True", "Derived"));

    let reviews = json!({"app": "reviews"});
    let v = |principal, path| ns_verdict(&d, "bookinfo", &reviews, principal, "GET", path);
    assert_eq!(v(Some(PRODUCTPAGE), "/reviews/1"), Verdict::Allow);
    assert_eq!(v(Some(PRODUCTPAGE), "/reviews/admin"), Verdict::Deny);
    assert_eq!(v(None, "/reviews/1"), Verdict::Deny);
    // A workload only the deny Allowlist selects is not made default-deny.
    let mut s = bookinfo_with_deny();
    s.allowlists[0].spec.selector.as_mut().unwrap().match_labels =
        BTreeMap::from([("app".to_string(), "productpage".to_string())]);
    let d = derive(&s, &settings(), now());
    let v = |principal, path| ns_verdict(&d, "bookinfo", &reviews, principal, "GET", path);
    assert_eq!(v(Some(PRODUCTPAGE), "/ratings"), Verdict::Allow);
    assert_eq!(v(Some(PRODUCTPAGE), "/reviews/admin"), Verdict::Deny);
    assert_eq!(v(None, "/ratings"), Verdict::Deny);
}

#[test]
fn a_deny_allowlist_split_over_the_budget_still_denies() {
    // Over a tiny budget every Allowlist sharing reviews' pods stays in one
    // WasmPlugin; whatever the packing, a deny in any WasmPlugin denies.
    let s = bookinfo_with_deny();
    for budget in [usize::MAX / 2, 64] {
        let d = derive(&s, &with_budget(budget), now());
        let reviews = json!({"app": "reviews"});
        let holding: Vec<&str> = plugins_of(&d, "bookinfo")
            .iter()
            .filter(|p| {
                p.spec
                    .plugin_config
                    .policies
                    .iter()
                    .any(|p| p.name.starts_with("bookinfo/reviews"))
            })
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(holding.len(), 1, "budget {budget}: {holding:?}");
        let v = |principal, path| ns_verdict(&d, "bookinfo", &reviews, principal, "GET", path);
        assert_eq!(v(Some(PRODUCTPAGE), "/reviews/1"), Verdict::Allow, "budget {budget}");
        assert_eq!(v(Some(PRODUCTPAGE), "/reviews/admin"), Verdict::Deny, "budget {budget}");
        assert_eq!(v(None, "/reviews/1"), Verdict::Deny, "budget {budget}");
    }
}

#[test]
fn an_invalid_deny_allowlist_denies_every_request_to_its_workloads() {
    let mut s = bookinfo_with_deny();
    s.allowlists[1].spec.rules[0].to.as_mut().unwrap()[0].paths = Some(vec!["relative".into()]);
    let d = derive(&s, &settings(), now());
    let cond = &status(&d, "bookinfo", "reviews-deny").status.conditions[0];
    assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "InvalidPath"));
    // A deny placeholder without rule would refuse nothing; its one empty
    // rule refuses everything instead.
    assert_eq!(
        config(plugin(&d, "bookinfo"))["policies"][1],
        json!({"name": "bookinfo/reviews-deny", "selector": {"app": "reviews"}, "action": "deny", "rules": [{}]})
    );
    let reviews = json!({"app": "reviews"});
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "GET", "/reviews/1"),
        Verdict::Deny
    );
    // Its last valid version, once there is one, stays in force instead.
    let good = derive(&bookinfo_with_deny(), &settings(), now());
    s.previous = BTreeMap::from([(
        "bookinfo".to_string(),
        vec![plugin(&good, "bookinfo").spec.plugin_config.clone()],
    )]);
    let d = derive(&s, &settings(), now());
    assert_eq!(
        ns_verdict(&d, "bookinfo", &reviews, Some(PRODUCTPAGE), "GET", "/reviews/1"),
        Verdict::Allow
    );
}

#[test]
fn address_negation_and_key_fields_pass_through_and_invalid_ones_are_named() {
    let mut s = bookinfo();
    s.allowlists.push(mk_allowlist(
        "bookinfo",
        "addresses",
        json!({"selector": {"matchLabels": {"app": "reviews"}}, "action": "deny", "rules": [{
            "name": "outside",
            "from": [{"ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.9.0.0/16"],
                      "remoteIpBlocks": ["2001:db8::/32"], "notRemoteIpBlocks": ["2001:db8::1"]}],
            "to": [{"notMethods": ["GET"], "notPorts": [15021]}],
            "when": [{"key": "connection.sni", "values": ["*.example.com"]},
                     {"key": "destination.port", "notValues": ["9080"]},
                     {"header": "x-v", "values": ["1"]}]
        }]}),
    ));
    for (name, rule, message) in [
        (
            "host-bits",
            json!({"from": [{"ipBlocks": ["10.0.0.1/8"]}]}),
            r#"rules[0].from[0].ipBlocks[0]: "10.0.0.1/8": bits are set beyond the prefix length"#,
        ),
        (
            "unknown-key",
            json!({"when": [{"key": "request.auth.issuer", "values": ["x"]}]}),
            r#"rules[0].when[0].key: unknown key "request.auth.issuer""#,
        ),
        (
            "bad-not-method",
            json!({"to": [{"notMethods": ["get"]}]}),
            r#"rules[0].to[0].notMethods[0]: "get""#,
        ),
    ] {
        s.allowlists
            .push(mk_allowlist("bookinfo", name, json!({"rules": [rule]})));
        let d = derive(&s, &settings(), now());
        let c = &status(&d, "bookinfo", name).status.conditions[0];
        assert_eq!(c.status, "False", "{name}");
        assert!(c.message.starts_with(message), "{name}: {}", c.message);
        s.allowlists.pop();
    }
    let d = derive(&s, &settings(), now());
    assert_eq!(status(&d, "bookinfo", "addresses").status.conditions[0].status, "True");
    let cfg = config(plugin(&d, "bookinfo"));
    let policy = cfg["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bookinfo/addresses")
        .unwrap();
    assert_eq!(
        policy["rules"][0],
        json!({"name": "outside",
            "from": [{"ipBlocks": ["10.0.0.0/8"], "notIpBlocks": ["10.9.0.0/16"],
                      "remoteIpBlocks": ["2001:db8::/32"], "notRemoteIpBlocks": ["2001:db8::1"]}],
            "to": [{"notMethods": ["GET"], "notPorts": [15021]}],
            "when": [{"key": "connection.sni", "values": ["*.example.com"]},
                     {"key": "destination.port", "notValues": ["9080"]},
                     {"header": "x-v", "values": ["1"]}]})
    );
}
