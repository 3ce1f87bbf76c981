//! The service on its worst days, against the fake API server failing as
//! real ones do: a 30-second outage, a restart with fresh resource versions,
//! watches closed and compacted under it, throttling, WasmPlugins edited or
//! deleted by hand, and another field manager applying its WasmPlugin.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::service::*;
use common::*;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Api;
use meshward_fake_apiserver::{FakeApi, Write};
use serde_json::{json, Value};

/// The Allowlist `shop/api` admitting GET on `path`.
fn change(fake: &FakeApi, path: &str) {
    put(fake, api_allowlist(path));
}

fn applied_path(fake: &FakeApi) -> Option<String> {
    let p = plugin(fake, "shop")?;
    p["spec"]["pluginConfig"]["policies"][0]["rules"][0]["to"][0]["paths"][0]
        .as_str()
        .map(String::from)
}

async fn applied(fake: &FakeApi, path: &str, within: Duration) {
    eventually_within(&format!("{path} applied"), within, || async {
        (applied_path(fake).as_deref() == Some(path)).then_some(())
    })
    .await;
}

/// The sum of the samples whose line starts with `line_prefix`.
fn metric(text: &str, line_prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

async fn readyz(base: &str) -> (u16, String) {
    let (code, body) = http("GET", &format!("{base}/readyz"), None, None).await;
    (code, body.as_str().unwrap_or_default().to_string())
}

/// Status writes per Allowlist generation (`observedGeneration`).
fn status_writes(fake: &FakeApi) -> BTreeMap<(String, i64), usize> {
    let mut out = BTreeMap::new();
    for w in fake.writes() {
        if let Some(name) = w.path.strip_suffix("/status").and_then(|p| p.rsplit('/').next()) {
            let generation = w.body["status"]["observedGeneration"].as_i64().unwrap_or(-1);
            *out.entry((name.to_string(), generation)).or_default() += 1;
        }
    }
    out
}

fn wasm_plugins(fake: &FakeApi) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("extensions.istio.io", "v1alpha1", "WasmPlugin"),
        "wasmplugins",
    );
    let client = kube::Client::try_from(fake.config()).unwrap();
    Api::namespaced_with(client, "shop", &ar)
}

/// The service's own applies of `shop/meshward`.
fn our_applies(fake: &FakeApi) -> Vec<Write> {
    fake.writes()
        .into_iter()
        .filter(|w| {
            w.path.ends_with("/wasmplugins/meshward")
                && w.query.get("fieldManager").map(String::as_str) == Some("meshward-control")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_30_second_outage_the_api_answers_readyz_says_why_and_the_service_converges_after() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    fake.add_token("alice-token", "alice", &[]);
    fake.grant("alice", "get", "allowlists", "shop", "");
    let svc = start(&fake).await;
    applied(&fake, "/items/*", Duration::from_secs(20)).await;
    let config_url = format!("{}/v1/namespaces/shop/config", svc.base);
    let (code, _) = http("GET", &config_url, Some("alice-token"), None).await;
    assert_eq!(code, 200);

    let down = Instant::now();
    fake.set_outage(true);
    let why = eventually("readyz says not ready", || async {
        let (code, body) = readyz(&svc.base).await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(why.contains("failing"), "{why}");
    // The API goes on answering from the last complete view, for callers
    // authorized shortly before.
    let (code, cfg) = http("GET", &config_url, Some("alice-token"), None).await;
    assert_eq!(code, 200, "{cfg}");
    assert_eq!(
        cfg["wasmPlugins"][0]["spec"]["pluginConfig"]["policies"][0]["rules"][0]["to"][0]["paths"][0],
        "/items/*"
    );
    let text = metrics(&svc.base).await;
    assert!(metric(&text, "meshward_control_watch_errors_total{") > 0, "{text}");
    assert!(text.lines().any(|l| l == "meshward_control_ready 0"), "{text}");
    // What changes meanwhile is seen once the server is back.
    change(&fake, "/during-outage/*");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    assert_eq!(
        applied_path(&fake).as_deref(),
        Some("/items/*"),
        "nothing written while down"
    );
    fake.set_outage(false);
    // Re-lists back off to 30 s at most while failing: converged within that.
    applied(&fake, "/during-outage/*", Duration::from_secs(45)).await;
    eventually("ready again", || async {
        (readyz(&svc.base).await.0 == 200).then_some(())
    })
    .await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restarted_with_fresh_resource_versions_is_listed_again_without_a_write() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    applied(&fake, "/items/*", Duration::from_secs(20)).await;
    eventually("status written", || async { ready(&fake, "shop", "api") }).await;
    let errors_before = metric(&metrics(&svc.base).await, "meshward_control_watch_errors_total{");
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.clear_writes();

    fake.restart_with_fresh_versions();
    eventually("every kind listed again", || async {
        let text = metrics(&svc.base).await;
        let errors = metric(&text, "meshward_control_watch_errors_total{");
        (errors >= errors_before + 9 && readyz(&svc.base).await.0 == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes: Vec<Write> = fake
        .writes()
        .into_iter()
        .filter(|w| !w.path.contains("review"))
        .collect();
    assert!(
        writes.is_empty(),
        "an unchanged cluster is not written again: {writes:#?}"
    );
    // And the next change is applied, once.
    change(&fake, "/after-restart/*");
    applied(&fake, "/after-restart/*", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(our_applies(&fake).len(), 1);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_closed_compacted_and_throttled_under_the_service_lose_no_change_and_repeat_no_write() {
    let fake = FakeApi::start().await;
    fake.set_watch_lifetime(Some(Duration::from_millis(400)));
    fake.set_bookmarks(Some(Duration::from_millis(150)));
    fake.set_latency(Duration::from_millis(5));
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    applied(&fake, "/items/*", Duration::from_secs(20)).await;
    for i in 0..8 {
        if i == 4 {
            // Without bookmarks, a watch resumed from before a compaction
            // gets 410 Gone and the service lists again.
            fake.set_bookmarks(None);
        }
        match i % 4 {
            1 => fake.compact(),
            2 => fake.throttle(3),
            3 => {
                fake.compact();
                fake.throttle(2);
            }
            _ => {}
        }
        let path = format!("/change-{i}/*");
        change(&fake, &path);
        applied(&fake, &path, Duration::from_secs(40)).await;
    }
    eventually("the last status", || async {
        let c = ready(&fake, "shop", "api")?;
        (c["observedGeneration"] == 9).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let repeated: Vec<_> = status_writes(&fake).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        repeated.is_empty(),
        "a status written twice for one generation: {repeated:?}"
    );
    let applies = our_applies(&fake).len();
    assert!(
        applies <= 9 + 3,
        "one apply per change, and a few retried after a 429: {applies}"
    );
    let text = metrics(&svc.base).await;
    assert!(
        metric(&text, "meshward_control_watch_errors_total{") > 0,
        "410s were seen: {text}"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasmplugin_edited_or_deleted_by_hand_is_restored() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    applied(&fake, "/items/*", Duration::from_secs(20)).await;

    // `kubectl edit`: an update by another field manager.
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    wasm_plugins(&fake)
        .patch(
            "meshward",
            &edit,
            &Patch::Merge(json!({"spec": {"pluginConfig": {"policies": []}}})),
        )
        .await
        .unwrap();
    applied(&fake, "/items/*", Duration::from_secs(10)).await;
    let restored = plugin(&fake, "shop").unwrap();
    let managers: Vec<&str> = restored["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:pluginConfig"].is_object())
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["meshward-control"], "taken back from the edit");

    fake.remove("WasmPlugin", "shop", "meshward");
    applied(&fake, "/items/*", Duration::from_secs(10)).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_applier_of_the_wasmplugin_is_reported_not_fought_and_let_go_when_it_leaves() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    let svc = start(&fake).await;
    applied(&fake, "/items/*", Duration::from_secs(20)).await;
    let before = our_applies(&fake).len();

    // A GitOps tool applies the same object, taking pluginConfig by force.
    let theirs = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "meshward", "namespace": "shop"},
        "spec": {"pluginConfig": {"policies": [{"name": "gitops/legacy", "rules": [{}]}]}}});
    let argocd = PatchParams::apply("argocd").force();
    wasm_plugins(&fake)
        .patch("meshward", &argocd, &Patch::Apply(&theirs))
        .await
        .unwrap();
    let c = eventually("the conflict on the Allowlist's status", || async {
        let c = ready(&fake, "shop", "api")?;
        (c["reason"] == "FieldManagerConflict").then_some(c)
    })
    .await;
    assert_eq!(c["status"], "False");
    assert!(
        c["message"].as_str().unwrap().contains("argocd (spec.pluginConfig)"),
        "{c}"
    );
    // Not fought: their content stays, meshward does not apply again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    change(&fake, "/while-contested/*");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        our_applies(&fake).len(),
        before,
        "no apply while another applier owns the fields"
    );
    assert_eq!(
        plugin(&fake, "shop").unwrap()["spec"]["pluginConfig"]["policies"][0]["name"],
        "gitops/legacy"
    );
    let text = metrics(&svc.base).await;
    assert!(
        metric(
            &text,
            "meshward_control_writes_total{kind=\"WasmPlugin\",outcome=\"conflict\"}"
        ) > 0,
        "{text}"
    );

    // The tool stops managing the fields (an apply without them): meshward
    // writes its configuration again and the status clears.
    let released = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
        "metadata": {"name": "meshward", "namespace": "shop"}});
    wasm_plugins(&fake)
        .patch("meshward", &argocd, &Patch::Apply(&released))
        .await
        .unwrap();
    applied(&fake, "/while-contested/*", Duration::from_secs(10)).await;
    eventually("Ready again", || async {
        let c: Value = ready(&fake, "shop", "api")?;
        (c["status"] == "True").then_some(())
    })
    .await;
    svc.stop().await;
}
