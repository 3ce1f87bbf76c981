//! The service against a fake API server over real HTTP: watchers, the
//! writer (server-side apply, deletes, statuses), the guards against writing
//! on an incomplete view, and the HTTP API with TokenReview and
//! SubjectAccessReview.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::service::*;
use common::*;
use meshward_fake_apiserver::FakeApi;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_a_namespace_writes_its_wasmplugin_and_statuses() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    seed(&fake, "quiet", None);
    let svc = start(&fake).await;

    let p = eventually("WasmPlugin shop/meshward", || async { plugin(&fake, "shop") }).await;
    assert_eq!(p["spec"]["phase"], "AUTHZ");
    assert_eq!(p["spec"]["failStrategy"], "FAIL_CLOSE");
    assert_eq!(
        p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "meshward-control"
    );
    assert_eq!(p["spec"]["pluginConfig"]["policies"][0]["name"], "shop/api");
    assert_eq!(principals(&p), vec!["cluster.local/ns/shop/sa/frontend"]);
    assert!(
        plugin(&fake, "quiet").is_none(),
        "a namespace without the label gets nothing"
    );

    // Written with server-side apply under one field manager.
    let applies: Vec<_> = mutating(&fake)
        .into_iter()
        .filter(|w| w.path.contains("wasmplugins"))
        .collect();
    assert_eq!(applies.len(), 1, "{applies:#?}");
    assert!(
        applies[0].content_type.starts_with("application/apply-patch"),
        "{applies:?}"
    );
    assert_eq!(applies[0].query["fieldManager"], "meshward-control");
    assert_eq!(applies[0].query["force"], "true");

    let c = eventually("Ready status", || async { ready(&fake, "shop", "api") }).await;
    assert_eq!(c["status"], "True");
    let a = fake.get("Allowlist", "shop", "api").unwrap();
    assert_eq!(a["status"]["observedGeneration"], 1);
    assert_eq!(a["status"]["resolved"]["principals"], 1);
    let quiet = eventually("quiet/api's status", || async { ready(&fake, "quiet", "api") }).await;
    assert_eq!(quiet["status"], "False");
    assert_eq!(quiet["reason"], "NamespaceNotEnabled", "{quiet}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_with_a_new_service_account_adds_its_principal_and_disabling_removes_the_plugin() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    // A WasmPlugin someone else wrote: never touched.
    fake.put(
        json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "theirs", "namespace": "shop"}, "spec": {"url": "oci://their/plugin"}}),
    );
    let svc = start(&fake).await;
    eventually("WasmPlugin", || async { plugin(&fake, "shop") }).await;

    put(
        &fake,
        mk_pod(
            "shop",
            "frontend-canary",
            json!({"app": "frontend"}),
            Some("frontend-canary"),
        ),
    );
    eventually("the canary's principal", || async {
        let p = plugin(&fake, "shop")?;
        (principals(&p).len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        principals(&plugin(&fake, "shop").unwrap()),
        vec![
            "cluster.local/ns/shop/sa/frontend",
            "cluster.local/ns/shop/sa/frontend-canary"
        ]
    );

    put(&fake, mk_ns("shop", None));
    eventually("WasmPlugin deleted", || async {
        plugin(&fake, "shop").is_none().then_some(())
    })
    .await;
    assert!(
        fake.get("WasmPlugin", "shop", "theirs").is_some(),
        "unowned WasmPlugins are left alone"
    );
    let deletes: Vec<_> = mutating(&fake).into_iter().filter(|w| w.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_allowlist_gets_a_condition_naming_the_field_and_other_namespaces_are_unaffected() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    seed(&fake, "blog", Some("enabled"));
    put(
        &fake,
        mk_allowlist(
            "shop",
            "broken",
            json!({"rules": [{"to": [{"paths": ["/ok", "relative"]}]}]}),
        ),
    );
    let svc = start(&fake).await;
    let c = eventually("condition on shop/broken", || async { ready(&fake, "shop", "broken") }).await;
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "InvalidPath");
    assert!(
        c["message"].as_str().unwrap().starts_with("rules[0].to[0].paths[1]"),
        "{c}"
    );

    let blog = eventually("blog's plugin", || async { plugin(&fake, "blog") }).await;
    assert_eq!(blog["spec"]["pluginConfig"]["policies"][0]["name"], "blog/api");
    let ok = eventually("blog/api Ready", || async { ready(&fake, "blog", "api") }).await;
    assert_eq!(ok["status"], "True");

    // An Event on the Allowlist says so, as `kubectl describe` shows it.
    let event = eventually("a Warning event on shop/broken", || async {
        fake.writes().into_iter().find_map(|w| {
            let regarding = &w.body["regarding"];
            (w.path == "/apis/events.k8s.io/v1/namespaces/shop/events"
                && regarding["kind"] == "Allowlist"
                && regarding["name"] == "broken"
                && w.body["reason"] == "InvalidPath")
                .then_some(w.body)
        })
    })
    .await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reportingController"], "meshward-control");
    assert!(
        event["regarding"]["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "kubectl describe finds events by uid: {event}"
    );
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .starts_with("Ready=False: rules[0].to[0].paths[1]"),
        "{event}"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_an_unchanged_cluster_writes_nothing() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    converged(&fake, "shop").await;
    svc.stop().await;
    fake.clear_writes();

    let svc = start(&fake).await;
    let body = eventually("a finished round after restart", || async {
        let text = metrics(&svc.base).await;
        (ok_rounds(&text) == 1).then_some(text)
    })
    .await;
    assert!(
        code_has(
            &body,
            "meshward_control_writes_total{kind=\"WasmPlugin\",outcome=\"unchanged\"} 1"
        ),
        "{body}"
    );
    assert!(
        code_has(
            &body,
            "meshward_control_writes_total{kind=\"AllowlistStatus\",outcome=\"unchanged\"} 1"
        ),
        "{body}"
    );
    assert_eq!(mutating(&fake).len(), 0, "{:#?}", fake.writes());
    svc.stop().await;
}

/// Waits until `ns` has its WasmPlugin and its Allowlist `api` a Ready condition.
async fn converged(fake: &FakeApi, ns: &str) {
    eventually("converged", || async { ready(fake, ns, "api").and(plugin(fake, ns)) }).await;
}

/// `meshward_control_reconciles_total{result="ok"}` in a `/metrics` text.
fn ok_rounds(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("meshward_control_reconciles_total{result=\"ok\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The number of successful rounds once it has stopped changing (the rounds
/// the service's own status writes trigger are over).
async fn settled_ok_rounds(base: &str) -> u64 {
    let mut last = ok_rounds(&metrics(base).await);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = ok_rounds(&metrics(base).await);
        if now == last {
            return now;
        }
        last = now;
    }
}

fn code_has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_before_the_first_full_sync_or_while_a_kind_fails() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    // Left from an earlier run: its namespace is no longer enabled.
    put(&fake, mk_ns("old", None));
    fake.put(
        json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "meshward", "namespace": "old",
                     "labels": {"app.kubernetes.io/managed-by": "meshward-control"}},
        "spec": {"url": "oci://x", "pluginConfig": {"policies": []}}}),
    );
    fake.set_broken("pods", true);
    let svc = start(&fake).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, body) = http("GET", &format!("{}/readyz", svc.base), None, None).await;
    assert_eq!(code, 503, "{body}");
    let waiting = body.as_str().unwrap();
    assert!(
        waiting.contains("Pod") && !waiting.contains("Namespace"),
        "only pods are missing: {body}"
    );
    assert!(
        plugin(&fake, "old").is_some(),
        "never deleted before the first full sync"
    );
    assert_eq!(
        mutating(&fake).len(),
        0,
        "no writes at all on a partial view: {:#?}",
        fake.writes()
    );

    fake.set_broken("pods", false);
    eventually("converged after pods list", || async { plugin(&fake, "shop") }).await;
    eventually("stale plugin deleted", || async {
        plugin(&fake, "old").is_none().then_some(())
    })
    .await;
    let (code, _) = http("GET", &format!("{}/readyz", svc.base), None, None).await;
    assert_eq!(code, 200);

    // A kind breaks after the first sync, then a namespace is disabled: its
    // plugin stays until the view is whole again.
    fake.set_broken("allowlists", true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    put(&fake, mk_ns("shop", None));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        plugin(&fake, "shop").is_some(),
        "not deleted while the Allowlist watch fails"
    );
    fake.set_broken("allowlists", false);
    eventually("deleted once healthy", || async {
        plugin(&fake, "shop").is_none().then_some(())
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_api_server_outage_the_service_sees_what_changed_and_converges() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    converged(&fake, "shop").await;
    fake.clear_writes();

    fake.set_outage(true);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Changes made while the service cannot see them.
    put(
        &fake,
        mk_pod("shop", "frontend-2", json!({"app": "frontend"}), Some("frontend-v2")),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(plugin(&fake, "shop").is_some());
    fake.set_outage(false);
    eventually("the new principal after the outage", || async {
        (principals(&plugin(&fake, "shop")?).len() == 2).then_some(())
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_config_simulates_and_changes_mode_only_for_authorized_callers() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    fake.add_token("alice-token", "alice", &["system:authenticated"]);
    fake.add_token("bob-token", "bob", &["system:authenticated"]);
    fake.grant("alice", "patch", "allowlists", "shop", "api");
    fake.grant("alice", "get", "allowlists", "shop", "");
    fake.grant("alice", "get", "allowlists", "quiet", "");
    let svc = start(&fake).await;
    eventually("converged", || async { plugin(&fake, "shop") }).await;
    let base = &svc.base;
    let alice = Some("alice-token");

    let (code, cfg) = http("GET", &format!("{base}/v1/namespaces/shop/config"), alice, None).await;
    assert_eq!(code, 200, "{cfg}");
    assert_eq!(cfg["wasmPlugins"][0]["name"], "meshward");
    assert_eq!(
        cfg["wasmPlugins"][0]["spec"]["pluginConfig"]["policies"][0]["name"],
        "shop/api"
    );
    let (code, _) = http("GET", &format!("{base}/v1/namespaces/quiet/config"), alice, None).await;
    assert_eq!(code, 404);

    let sim = |from: &str, method: &str, path: &str| json!({"from": from, "to": "shop/api-1", "method": method, "path": path, "port": 8080});
    let (code, d) = http(
        "POST",
        &format!("{base}/v1/simulate"),
        alice,
        Some(sim("shop/frontend", "GET", "/items/7")),
    )
    .await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["rule"], "shop/api/frontend-reads");
    let (_, d) = http(
        "POST",
        &format!("{base}/v1/simulate"),
        alice,
        Some(sim("shop/frontend", "DELETE", "/items/7")),
    )
    .await;
    assert_eq!(d["verdict"], "deny");
    let (_, d) = http(
        "POST",
        &format!("{base}/v1/simulate"),
        alice,
        Some(sim("shop/frontend", "GET", "/items/../admin")),
    )
    .await;
    assert_eq!(d["verdict"], "deny", "canonicalized like the filter: /admin");
    let (code, d) = http(
        "POST",
        &format!("{base}/v1/simulate"),
        alice,
        Some(json!({"to": "shop/api-1", "method": "GET", "path": "/", "oops": 1})),
    )
    .await;
    assert_eq!(code, 400, "unknown fields are refused: {d}");

    let url = format!("{base}/v1/namespaces/shop/allowlists/api");
    let (code, d) = http("PATCH", &url, None, Some(json!({"mode": "audit"}))).await;
    assert_eq!(code, 401, "{d}");
    let (code, _) = http("PATCH", &url, Some("forged"), Some(json!({"mode": "audit"}))).await;
    assert_eq!(code, 401);
    let (code, d) = http("PATCH", &url, Some("bob-token"), Some(json!({"mode": "audit"}))).await;
    assert_eq!(code, 403, "{d}");
    assert!(
        fake.get("Allowlist", "shop", "api").unwrap()["spec"]["mode"].is_null(),
        "refused calls change nothing"
    );
    let (code, d) = http("PATCH", &url, Some("alice-token"), Some(json!({"mode": "sideways"}))).await;
    assert_eq!(code, 400, "{d}");

    let (code, d) = http("PATCH", &url, Some("alice-token"), Some(json!({"mode": "audit"}))).await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["changedBy"], "alice");
    assert_eq!(fake.get("Allowlist", "shop", "api").unwrap()["spec"]["mode"], "audit");
    let sar = fake
        .writes()
        .into_iter()
        .rfind(|w| w.path.ends_with("subjectaccessreviews"))
        .unwrap();
    assert_eq!(sar.body["spec"]["resourceAttributes"]["verb"], "patch");
    assert_eq!(sar.body["spec"]["resourceAttributes"]["resource"], "allowlists");
    assert_eq!(sar.body["spec"]["resourceAttributes"]["name"], "api");
    // The reconciler picks the change up and the sidecars get audit mode.
    eventually("audit mode in the WasmPlugin", || async {
        let p = plugin(&fake, "shop")?;
        (p["spec"]["pluginConfig"]["policies"][0]["mode"] == "audit").then_some(())
    })
    .await;

    let (code, m) = http("GET", &format!("{base}/metrics"), None, None).await;
    assert_eq!(code, 200);
    let m = m.as_str().unwrap();
    assert!(m.contains("meshward_control_round_duration_seconds_count "), "{m}");
    assert!(code_has(m, "meshward_control_objects{kind=\"Allowlist\"} 1"), "{m}");
    assert!(code_has(m, "meshward_control_ready 1"), "{m}");
    let (code, _) = http("GET", &format!("{base}/healthz"), None, None).await;
    assert_eq!(code, 200);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlist_that_turns_invalid_keeps_its_last_valid_version_in_force() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    let before = eventually("WasmPlugin", || async { plugin(&fake, "shop") }).await;
    eventually("Ready", || async {
        ready(&fake, "shop", "api").filter(|c| c["status"] == "True")
    })
    .await;

    put(
        &fake,
        mk_allowlist(
            "shop",
            "api",
            json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{"to": [{"paths": ["no-slash"]}]}]}),
        ),
    );
    let c = eventually("Ready=False", || async {
        ready(&fake, "shop", "api").filter(|c| c["status"] == "False")
    })
    .await;
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("paths[0]") && message.contains("last valid version stays in force"),
        "{c}"
    );
    let after = plugin(&fake, "shop").unwrap();
    assert_eq!(
        after["spec"]["pluginConfig"], before["spec"]["pluginConfig"],
        "the sidecars keep enforcing the version that was valid"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_descriptor_config_map_re_derives_and_unlabelled_ones_are_not_held() {
    let descriptors = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/apidesc/inventory.binpb"
    ))
    .unwrap();
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    put(
        &fake,
        mk_config_map(
            "shop",
            "inventory-api",
            true,
            &[("inventory.binpb", descriptors.clone())],
            &[],
        ),
    );
    // What every namespace has: never listed by the service.
    put(
        &fake,
        mk_config_map(
            "shop",
            "kube-root-ca.crt",
            false,
            &[],
            &[("ca.crt", "-----BEGIN CERTIFICATE-----")],
        ),
    );
    put(
        &fake,
        mk_allowlist(
            "shop",
            "api",
            json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
                "from": [{"workloads": {"selector": {"matchLabels": {"app": "frontend"}}}}],
                "to": [{"grpc": {"service": "shop.inventory.v1.Inventory", "methods": ["*"],
                                 "api": {"configMap": "inventory-api", "key": "inventory.binpb"}}}]
            }]}),
        ),
    );
    let svc = start(&fake).await;
    let methods = |p: &Value| p["spec"]["pluginConfig"]["policies"][0]["rules"][0]["to"][0]["grpc"]["methods"].clone();
    eventually("methods from the descriptors", || async {
        plugin(&fake, "shop").filter(|p| methods(p) == json!(["GetItem", "ListItems", "Reserve"]))
    })
    .await;

    // New descriptors: GetItem renamed. The WasmPlugin follows.
    let mut renamed = descriptors.clone();
    let at = renamed.windows(9).position(|w| w == b"\x0a\x07GetItem").unwrap();
    renamed[at + 2..at + 9].copy_from_slice(b"GetItam");
    put(
        &fake,
        mk_config_map("shop", "inventory-api", true, &[("inventory.binpb", renamed)], &[]),
    );
    eventually("methods from the new descriptors", || async {
        plugin(&fake, "shop").filter(|p| methods(p) == json!(["GetItam", "ListItems", "Reserve"]))
    })
    .await;

    // Only labelled ConfigMaps are listed, so only one is held.
    let selectors = fake.list_selectors("configmaps");
    assert!(!selectors.is_empty());
    assert!(
        selectors
            .iter()
            .all(|s| s.as_deref() == Some("meshward.io/api-description=true")),
        "{selectors:?}"
    );
    let m = metrics(&svc.base).await;
    assert!(code_has(&m, "meshward_control_objects{kind=\"ConfigMap\"} 1"), "{m}");

    // Descriptors gone: the Allowlist says why, its last valid version stays.
    fake.remove("ConfigMap", "shop", "inventory-api");
    let c = eventually("Ready=False", || async {
        ready(&fake, "shop", "api").filter(|c| c["status"] == "False")
    })
    .await;
    assert_eq!(c["reason"], "UnresolvedApi", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .starts_with("rules[0].to[0].grpc.api: no ConfigMap shop/inventory-api"),
        "{c}"
    );
    assert_eq!(
        methods(&plugin(&fake, "shop").unwrap()),
        json!(["GetItam", "ListItems", "Reserve"])
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_other_managers_add_do_not_cause_rewrites() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    let mut p = eventually("WasmPlugin", || async { plugin(&fake, "shop") }).await;
    eventually("Ready", || async { ready(&fake, "shop", "api") }).await;
    let before = settled_ok_rounds(&svc.base).await;
    // Someone adds a field with kubectl; server-side apply keeps it.
    p["spec"]["imagePullPolicy"] = json!("Always");
    fake.put(p);
    fake.clear_writes();
    // Unrelated changes trigger rounds.
    put(&fake, mk_sa("shop", "unrelated"));
    eventually("a round after the edit", || async {
        (ok_rounds(&metrics(&svc.base).await) > before).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        mutating(&fake).iter().all(|w| !w.path.contains("wasmplugins")),
        "{:#?}",
        fake.writes()
    );
    assert_eq!(plugin(&fake, "shop").unwrap()["spec"]["imagePullPolicy"], "Always");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowlist_the_types_cannot_read_is_reported_and_blocks_nothing_else() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    seed(&fake, "blog", Some("enabled"));
    // A value the CRD schema of an older version let through.
    fake.put(json!({"apiVersion": "meshward.io/v1alpha1", "kind": "Allowlist",
        "metadata": {"name": "odd", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "frontend"}},
                 "rules": [{"to": [{"servicePorts": [{"service": "api", "port": 70000}]}]}]}}));
    let svc = start(&fake).await;
    let c = eventually("condition on shop/odd", || async { ready(&fake, "shop", "odd") }).await;
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "InvalidSpec");
    assert!(c["message"].as_str().unwrap().starts_with("spec: "), "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("rules[0].to[0].servicePorts[0].port"),
        "the message names the field: {c}"
    );
    // The others are derived, and the unreadable one fails closed for its selector.
    let blog = eventually("blog's plugin", || async { plugin(&fake, "blog") }).await;
    assert_eq!(blog["spec"]["pluginConfig"]["policies"][0]["name"], "blog/api");
    let shop = plugin(&fake, "shop").unwrap();
    let policies = shop["spec"]["pluginConfig"]["policies"].as_array().unwrap().clone();
    let odd = policies
        .iter()
        .find(|p| p["name"] == "shop/odd")
        .expect("a stand-in for shop/odd");
    assert_eq!(odd["selector"], json!({"app": "frontend"}));
    assert_eq!(odd["rules"], json!([]), "admits nobody: {odd}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_changes_refuse_names_that_are_not_kubernetes_names_and_report_review_failures() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    fake.add_token("alice-token", "alice", &[]);
    fake.grant("alice", "patch", "allowlists", "shop", "api");
    let svc = start(&fake).await;
    eventually("converged", || async { plugin(&fake, "shop") }).await;
    let url = format!(
        "{}/v1/namespaces/shop/allowlists/x%2F..%2F..%2Fother%2Fallowlists%2Fapi",
        svc.base
    );
    let (code, d) = http("PATCH", &url, Some("alice-token"), Some(json!({"mode": "audit"}))).await;
    assert_eq!(code, 400, "{d}");

    fake.set_outage(true);
    let url = format!("{}/v1/namespaces/shop/allowlists/api", svc.base);
    let (code, d) = http("PATCH", &url, Some("alice-token"), Some(json!({"mode": "audit"}))).await;
    assert_eq!(code, 502, "{d}");
    assert!(
        !d["error"].as_str().unwrap().contains("fake"),
        "API server details stay in the log: {d}"
    );
    fake.set_outage(false);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1_call_needs_a_token_for_the_audience_and_the_right_to_read_the_namespace() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    seed(&fake, "bank", Some("enabled"));
    fake.add_token("reader-token", "reader", &["system:authenticated"]);
    fake.add_token("nobody-token", "nobody", &["system:authenticated"]);
    fake.add_token_for(
        "other-audience",
        "reader",
        &["system:authenticated"],
        &["https://kubernetes.default.svc"],
    );
    fake.grant("reader", "get", "allowlists", "shop", "");
    let svc = start(&fake).await;
    eventually("converged", || async {
        plugin(&fake, "bank").and(plugin(&fake, "shop"))
    })
    .await;
    let base = &svc.base;
    let simulate = |ns: &str| json!({"from": format!("{ns}/frontend"), "to": format!("{ns}/api-1"), "method": "GET", "path": "/items/1"});
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("{base}/v1/namespaces/shop/config"), None),
        ("POST", format!("{base}/v1/simulate"), Some(simulate("shop"))),
        (
            "PATCH",
            format!("{base}/v1/namespaces/shop/allowlists/api"),
            Some(json!({"mode": "audit"})),
        ),
    ];
    for (method, url, body) in &calls {
        for token in [None, Some("forged"), Some("other-audience")] {
            let (code, d) = http(method, url, token, body.clone()).await;
            assert_eq!(code, 401, "{method} {url} with {token:?}: {d}");
        }
        let (code, d) = http(method, url, Some("nobody-token"), body.clone()).await;
        assert_eq!(code, 403, "{method} {url} without the right: {d}");
    }
    // The reader may read shop (200) but not bank, nor change anything.
    let (code, d) = http("GET", &calls[0].1, Some("reader-token"), None).await;
    assert_eq!(code, 200, "{d}");
    let (code, d) = http("POST", &calls[1].1, Some("reader-token"), calls[1].2.clone()).await;
    assert_eq!(code, 200, "{d}");
    let (code, _) = http("PATCH", &calls[2].1, Some("reader-token"), calls[2].2.clone()).await;
    assert_eq!(code, 403, "reading is not patching");
    let (code, _) = http(
        "GET",
        &format!("{base}/v1/namespaces/bank/config"),
        Some("reader-token"),
        None,
    )
    .await;
    assert_eq!(code, 403, "another namespace");
    let (code, _) = http("POST", &calls[1].1, Some("reader-token"), Some(simulate("bank"))).await;
    assert_eq!(code, 403, "simulating a request to bank reveals bank's policy");
    let (code, _) = http(
        "GET",
        &format!("{base}/v1/namespaces/bank/config"),
        Some("nobody-token"),
        None,
    )
    .await;
    assert_eq!(
        code, 403,
        "403, not 404: nothing is said about a namespace before the check"
    );
    // The probes and /metrics stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (code, _) = http("GET", &format!("{base}{path}"), None, None).await;
        assert_eq!(code, 200, "{path}");
    }
    // A burst of calls costs one review of each kind: the answers are cached.
    let reviews = |fake: &FakeApi| {
        let w = fake.writes();
        (
            w.iter().filter(|w| w.path.ends_with("/tokenreviews")).count(),
            w.iter().filter(|w| w.path.ends_with("/subjectaccessreviews")).count(),
        )
    };
    fake.add_token("burst-token", "burst", &["system:authenticated"]);
    fake.grant("burst", "get", "allowlists", "shop", "");
    let before = reviews(&fake);
    for _ in 0..20 {
        let (code, _) = http("GET", &calls[0].1, Some("burst-token"), None).await;
        assert_eq!(code, 200);
    }
    let after = reviews(&fake);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "one TokenReview and one SubjectAccessReview"
    );
    let review = fake
        .writes()
        .into_iter()
        .rfind(|w| w.path.ends_with("/tokenreviews"))
        .unwrap();
    assert_eq!(review.body["spec"]["audiences"], json!(["meshward-control"]));
    svc.stop().await;
}
