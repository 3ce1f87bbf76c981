//! Learn and replay in the cluster, against the fake API server: the
//! service's `POST /v1/namespaces/{ns}/learn` and `.../replay`, and the
//! command line's `learn --namespace` and `replay --namespace` through a
//! kubeconfig. The fake holds Bookinfo (`examples/bookinfo`) with an
//! Istio-injected pod per workload, whose `istio-proxy` logs are the lines of
//! `examples/learn/logs/sample.log`: the proposal must be what the offline
//! `learn` proposes from that file, and replay must judge as the offline
//! `replay` does.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::service::*;
use common::yaml_docs;
use meshward_control::learn::logs::read_logs;
use meshward_control::learn::{Learner, Options};
use meshward_fake_apiserver::FakeApi;
use serde_json::{json, Value};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn sample_log() -> PathBuf {
    workspace().join("examples/learn/logs/sample.log")
}

/// The lines of the sample log.
fn sample_lines() -> Vec<String> {
    std::fs::read_to_string(sample_log())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// A line for `/old` on `details`, which only the lines older than an hour have.
const OLD_LINE: &str = r#"meshward.request {"method":"GET","path":"/old","principal":null,"port":9080,"workload":"details","namespace":"bookinfo","verdict":"allow"}"#;

/// Bookinfo in the fake: its manifests, one injected pod per workload with
/// the sample log's lines of that workload (lines without a workload go to
/// productpage's), two hours old lines nobody should read, a pod without a
/// sidecar and one whose sidecar waits to start.
fn seed_bookinfo(fake: &FakeApi) {
    let dir = workspace().join("examples/bookinfo");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut templates = Vec::new();
    for f in files {
        for doc in yaml_docs(&std::fs::read_to_string(f).unwrap()) {
            if doc["kind"] == "Deployment" {
                templates.push(doc.clone());
            }
            fake.put(doc);
        }
    }
    let now = SystemTime::now();
    let old = now - Duration::from_secs(7200);
    for d in &templates {
        let name = d["metadata"]["name"].as_str().unwrap();
        let pod = format!("{name}-v1-0");
        let template = &d["spec"]["template"];
        fake.put(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": "bookinfo", "labels": template["metadata"]["labels"]},
            "spec": {"serviceAccountName": template["spec"]["serviceAccountName"],
                "containers": [template["spec"]["containers"][0], {"name": "istio-proxy", "image": "istio/proxyv2"}]}}));
        let mut lines = vec![(old, OLD_LINE.to_string())];
        for line in sample_lines() {
            let workload = line
                .split_once(r#""workload":""#)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(w, _)| w);
            if workload == Some(name) {
                lines.push((now, line));
            }
        }
        if name == "productpage" {
            let unattributed = sample_lines().into_iter().filter(|l| !l.contains(r#""workload":""#));
            lines.extend(unattributed.map(|l| (now, l)));
        }
        fake.set_log_at("bookinfo", &pod, "istio-proxy", lines);
    }
    fake.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "debug", "namespace": "bookinfo", "labels": {"run": "debug"}},
        "spec": {"containers": [{"name": "shell", "image": "busybox"}]}}));
    fake.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reviews-v1-starting", "namespace": "bookinfo", "labels": {"app": "reviews", "version": "v1"}},
        "spec": {"serviceAccountName": "bookinfo-reviews",
            "containers": [{"name": "reviews", "image": "reviews"}, {"name": "istio-proxy", "image": "istio/proxyv2"}]},
        "status": {"phase": "Pending", "containerStatuses": [
            {"name": "istio-proxy", "state": {"waiting": {"reason": "PodInitializing"}}}]}}));
}

/// What the offline `learn` proposes from the sample log and Bookinfo's manifests.
fn offline_proposal() -> Value {
    let loaded = meshward_control::manifests::load(&[workspace().join("examples/bookinfo")], "cluster.local").unwrap();
    let mut learner = Learner::new(Options::default());
    read_logs(&[sample_log()], |r, at| learner.observe(r, at)).unwrap();
    serde_json::to_value(learner.finish(&loaded.snapshot.to_state()).allowlists).unwrap()
}

/// The proposal's Allowlists, as candidates.
fn proposed_candidates(only: Option<&str>) -> Vec<Value> {
    let text = std::fs::read_to_string(workspace().join("examples/learn/proposed/allowlists.yaml")).unwrap();
    yaml_docs(&text)
        .into_iter()
        .filter(|a| only.is_none_or(|n| a["metadata"]["name"] == n))
        .collect()
}

/// Waits until the service answers `call` with something else than 503.
async fn synced(base: &str, token: &str) {
    let url = format!("{base}/v1/namespaces/bookinfo/config");
    eventually("the first derivation", || async {
        let (code, _) = http("GET", &url, Some(token), None).await;
        (code == 200).then_some(())
    })
    .await;
}

fn tokens(fake: &FakeApi) {
    for user in ["operator", "reader", "nobody"] {
        fake.add_token(&format!("{user}-token"), user, &["system:authenticated"]);
    }
    fake.grant("operator", "get", "allowlists", "bookinfo", "");
    fake.grant("operator", "get", "pods/log", "bookinfo", "");
    fake.grant("reader", "get", "allowlists", "bookinfo", "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learn_proposes_from_the_sidecar_logs_what_the_offline_learn_proposes() {
    let fake = FakeApi::start().await;
    seed_bookinfo(&fake);
    tokens(&fake);
    let svc = start(&fake).await;
    synced(&svc.base, "operator-token").await;
    let url = format!("{}/v1/namespaces/bookinfo/learn", svc.base);

    let (code, reply) = http(
        "POST",
        &url,
        Some("operator-token"),
        Some(json!({"sinceSeconds": 3600})),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(
        reply["allowlists"],
        offline_proposal(),
        "the offline proposal, not /old"
    );
    assert_eq!(reply["allowlists"].as_array().unwrap().len(), 4);
    // Every injected pod read, the others reported.
    let pods: Vec<&str> = reply["logs"]["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap())
        .collect();
    assert_eq!(
        pods,
        ["details-v1-0", "productpage-v1-0", "ratings-v1-0", "reviews-v1-0"]
    );
    assert_eq!(reply["logs"]["withoutSidecar"], json!(["debug"]));
    assert_eq!(
        reply["logs"]["failed"],
        json!([{"pod": "reviews-v1-starting",
            "error": "container \"istio-proxy\" in pod \"reviews-v1-starting\" is waiting to start: PodInitializing"}])
    );
    assert_eq!(reply["lines"]["records"], 36);
    assert_eq!(reply["lines"]["bad"].as_array().unwrap().len(), 1, "{}", reply["lines"]);
    assert_eq!(reply["learned"], 35);
    assert_eq!(
        reply["anonymousRules"],
        json!(["bookinfo/productpage/anonymous-no-identity"])
    );
    // Read as `kubectl logs -c istio-proxy --since --limit-bytes` reads.
    let read = fake.log_reads().into_iter().find(|r| r.pod == "details-v1-0").unwrap();
    assert_eq!(read.query["container"], "istio-proxy");
    assert_eq!(read.query["sinceSeconds"], "3600");
    assert_eq!(read.query["limitBytes"], (1 << 20).to_string());

    // The options reach the learner; minCount drops what it must.
    let (code, reply) = http(
        "POST",
        &url,
        Some("operator-token"),
        Some(json!({"mode": "enforce", "minCount": 100})),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["allowlists"], json!([]));
    assert!(!reply["dropped"].as_array().unwrap().is_empty(), "{reply}");
    // Two hours back, the old line is learned too.
    let (_, reply) = http(
        "POST",
        &url,
        Some("operator-token"),
        Some(json!({"sinceSeconds": 10800, "mode": "enforce"})),
    )
    .await;
    let details = reply["allowlists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["metadata"]["name"] == "details")
        .unwrap();
    assert_eq!(details["spec"]["mode"], "enforce");
    assert!(details.to_string().contains("\"/old\""), "{details}");

    for (body, why) in [
        (json!({"sinceSeconds": 0}), "sinceSeconds"),
        (json!({"sinceSeconds": 86401}), "sinceSeconds"),
        (json!({"minCount": 0}), "minCount"),
        (json!({"since": 5}), "unknown field"),
    ] {
        let (code, reply) = http("POST", &url, Some("operator-token"), Some(body.clone())).await;
        assert_eq!(code, 400, "{body}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains(why), "{body}: {reply}");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_judges_posted_lines_and_sidecar_logs_with_candidates_in_place_of_live_allowlists() {
    let fake = FakeApi::start().await;
    seed_bookinfo(&fake);
    tokens(&fake);
    let svc = start(&fake).await;
    synced(&svc.base, "operator-token").await;
    let url = format!("{}/v1/namespaces/bookinfo/replay", svc.base);
    let ingress_products = |report: &Value| {
        report["denials"].as_array().unwrap().iter().any(|g| {
            g["workload"] == "bookinfo/productpage"
                && g["path"] == "/api/v1/products"
                && g["caller"].as_str().unwrap().contains("ingressgateway")
        })
    };

    // Posted lines against the live Allowlists: as the offline replay of the
    // same file against examples/bookinfo (docs/cli.md#replay).
    let mut lines = sample_lines();
    lines.push(OLD_LINE.replace("bookinfo", "elsewhere"));
    let (code, live) = http("POST", &url, Some("reader-token"), Some(json!({"lines": lines}))).await;
    assert_eq!(code, 200, "{live}");
    let r = &live["report"];
    assert_eq!(
        (
            r["replayed"].as_u64(),
            r["admitted"].as_u64(),
            r["denied"].as_u64(),
            r["stillRefused"].as_u64()
        ),
        (Some(36), Some(29), Some(6), Some(1)),
        "{r}"
    );
    assert!(ingress_products(r), "{r}");
    assert_eq!(live["enabled"], true);
    assert_eq!(
        live["lines"]["otherNamespace"], 1,
        "lines of another namespace are not replayed"
    );
    assert!(live["logs"].is_null(), "no log read for posted lines");
    assert_eq!(
        live["lines"]["bad"][0],
        "lines:40: EOF while parsing a value at line 1 column 237"
    );

    // One candidate replacing the live Allowlist of its name changes the verdict.
    let (code, one) = http(
        "POST",
        &url,
        Some("reader-token"),
        Some(json!({"lines": sample_lines(), "candidates": proposed_candidates(Some("productpage"))})),
    )
    .await;
    assert_eq!(code, 200, "{one}");
    assert!(!ingress_products(&one["report"]), "{}", one["report"]);
    assert!(one["report"]["denied"].as_u64().unwrap() < 6, "{}", one["report"]);
    assert_eq!(
        one["candidates"],
        json!([{"name": "productpage", "ready": true, "reason": "Derived", "message": "part of WasmPlugin meshward"}])
    );
    // The live Allowlist is unchanged: a candidate is not applied.
    let (_, again) = http(
        "POST",
        &url,
        Some("reader-token"),
        Some(json!({"lines": sample_lines()})),
    )
    .await;
    assert_eq!(again["report"]["denied"], 6);

    // The namespace's sidecar logs against the whole proposal: nothing breaks.
    let (code, all) = http(
        "POST",
        &url,
        Some("operator-token"),
        Some(json!({"sinceSeconds": 3600, "candidates": proposed_candidates(None)})),
    )
    .await;
    assert_eq!(code, 200, "{all}");
    assert_eq!(all["report"]["denied"], 0, "{}", all["report"]);
    assert_eq!(all["report"]["replayed"], 36);
    assert_eq!(all["logs"]["pods"].as_array().unwrap().len(), 4);
    assert_eq!(all["logs"]["failed"][0]["pod"], "reviews-v1-starting");

    // Refused bodies and candidates.
    let bad_path = json!({"metadata": {"name": "x"}, "spec": {"rules": [{"to": [{"paths": ["relative"]}]}]}});
    for (body, why) in [
        (json!({"lines": [], "sinceSeconds": 60}), "not both"),
        (
            json!({"candidates": [bad_path], "lines": []}),
            "candidate x: InvalidPath",
        ),
        (
            json!({"candidates": [{"metadata": {"name": "x", "namespace": "shop"}}], "lines": []}),
            "namespace",
        ),
        (json!({"lines": [1]}), "lines"),
    ] {
        let (code, reply) = http("POST", &url, Some("operator-token"), Some(body.clone())).await;
        assert_eq!(code, 400, "{body}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains(why), "{body}: {reply}");
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learn_and_replay_need_a_token_and_the_right_to_read_allowlists_and_the_logs_they_read() {
    let fake = FakeApi::start().await;
    seed_bookinfo(&fake);
    tokens(&fake);
    let svc = start(&fake).await;
    synced(&svc.base, "operator-token").await;
    let learn = format!("{}/v1/namespaces/bookinfo/learn", svc.base);
    let replay = format!("{}/v1/namespaces/bookinfo/replay", svc.base);
    let posted = json!({"lines": sample_lines()});
    let from_logs = json!({"sinceSeconds": 600});
    for (url, body, reader) in [
        (&learn, json!({}), 403),
        (&replay, posted, 200),
        (&replay, from_logs, 403),
    ] {
        for token in [None, Some("forged")] {
            let (code, reply) = http("POST", url, token, Some(body.clone())).await;
            assert_eq!(code, 401, "{url} {body} {token:?}: {reply}");
        }
        let (code, reply) = http("POST", url, Some("nobody-token"), Some(body.clone())).await;
        assert_eq!(code, 403, "{url} {body}: {reply}");
        // `get allowlists` alone: enough to replay posted lines, not to have
        // the sidecar logs read.
        let (code, reply) = http("POST", url, Some("reader-token"), Some(body.clone())).await;
        assert_eq!(code, reader, "{url} {body}: {reply}");
        if code == 403 {
            assert_eq!(reply["error"], "reader may not get pods/log in namespace bookinfo");
        }
        let (code, reply) = http("POST", url, Some("operator-token"), Some(body.clone())).await;
        assert_eq!(code, 200, "{url} {body}: {reply}");
    }
    // A body is read only once its caller is authorized, and never when its
    // declared length is over the limit: a client that asks
    // `Expect: 100-continue` gets its answer without being asked for the body.
    for (token, length, expected) in [
        (None, 1_000, 401),
        (Some("nobody-token"), 1_000, 403),
        (Some("operator-token"), 9 << 20, 413),
    ] {
        let (head, body) = expect_continue(&replay, token, length).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {expected} ")), "{token:?}: {head}");
        assert!(!body.contains("100 Continue"), "{token:?}: {body}");
    }
    // An authorized one is asked for it.
    let (head, _) = expect_continue(&replay, Some("operator-token"), 13).await;
    assert!(head.starts_with("HTTP/1.1 100 "), "{head}");
    // Asked as RBAC names it: get on pods/log, in the core group.
    let sar = fake
        .writes()
        .into_iter()
        .filter(|w| w.path.ends_with("subjectaccessreviews"))
        .find(|w| w.body["spec"]["resourceAttributes"]["subresource"] == "log")
        .unwrap();
    assert_eq!(
        sar.body["spec"]["resourceAttributes"],
        json!({"namespace": "bookinfo", "verb": "get", "group": "", "resource": "pods", "subresource": "log"})
    );
    // Another namespace: the rights are per namespace.
    let (code, _) = http(
        "POST",
        &format!("{}/v1/namespaces/shop/learn", svc.base),
        Some("operator-token"),
        Some(json!({})),
    )
    .await;
    assert_eq!(code, 403);
    svc.stop().await;
}

/// Sends the head of a `POST` to `url` with `Expect: 100-continue` and a
/// declared body of `length` bytes, and reads what comes back before any
/// byte of the body is sent: (the first response head, everything read).
async fn expect_continue(url: &str, token: Option<&str>, length: usize) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, path) = url.strip_prefix("http://").unwrap().split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /{path} HTTP/1.1\r\nhost: {host}\r\n{auth}content-type: application/json\r\n\
         content-length: {length}\r\nexpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // The first response head, interim or final.
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let first = text.split("\r\n").next().unwrap_or_default().to_string();
    (first, text)
}

/// Runs `meshward-control ARGS` from the repository root with a kubeconfig
/// pointing at `fake`; (exit status, stdout, stderr).
async fn laptop(fake: &FakeApi, args: &[&str]) -> (i32, String, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("incluster-{}", fake.addr.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_meshward-control"))
            .args(&args)
            .current_dir(workspace())
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_laptop_learn_and_replay_read_the_cluster_through_the_kubeconfig() {
    let fake = FakeApi::start().await;
    seed_bookinfo(&fake);

    let (code, out, err) = laptop(&fake, &["learn", "--namespace", "bookinfo", "--since", "1h"]).await;
    assert_eq!(code, 0, "{err}");
    let committed = std::fs::read_to_string(workspace().join("examples/learn/proposed/allowlists.yaml")).unwrap();
    assert_eq!(
        out, committed,
        "learn --namespace prints what learn on the files prints; stderr:\n{err}"
    );
    assert!(
        err.contains("learn: read the istio-proxy logs of 4 pods of namespace bookinfo"),
        "{err}"
    );
    assert!(err.contains("1 without istio-proxy, 1 failed"), "{err}");
    assert!(
        err.contains("learn: pod reviews-v1-starting: log not read: container \"istio-proxy\" in pod \"reviews-v1-starting\" is waiting to start: PodInitializing"),
        "{err}"
    );
    assert!(fake.log_reads().iter().all(|r| r.query["sinceSeconds"] == "3600"));
    // --logs instead of the sidecar logs: the same proposal.
    let (code, out, err) = laptop(
        &fake,
        &["learn", "-n", "bookinfo", "--logs", "examples/learn/logs/sample.log"],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, committed.as_str()), "{err}");

    // Replay: the live Allowlists break traffic (1); the proposal does not (0).
    let (code, out, err) = laptop(&fake, &["replay", "--namespace", "bookinfo"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("admitted 29, denied 6, still refused 1"), "{out}");
    let (code, out, err) = laptop(
        &fake,
        &[
            "replay",
            "--namespace",
            "bookinfo",
            "--manifests",
            "examples/learn/proposed/allowlists.yaml",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("admitted 35, denied 0, still refused 1"), "{out}");
    let (code, out, err) = laptop(
        &fake,
        &[
            "replay",
            "-n",
            "bookinfo",
            "--logs",
            "examples/learn/logs/sample.log",
            "-o",
            "json",
            "--manifests",
            "examples/learn/proposed/allowlists.yaml",
            "examples/bookinfo/10-details.yaml",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["denied"], 0);
    assert!(
        err.contains("only Allowlists are candidates; 3 other objects ignored"),
        "{err}"
    );

    // Errors and refused combinations: 2.
    let (code, _, err) = laptop(&fake, &["learn", "--namespace", "nowhere"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("namespace nowhere not found"), "{err}");
    let (code, _, err) = laptop(&fake, &["learn", "-n", "bookinfo", "--manifests", "examples/bookinfo"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = laptop(&fake, &["replay", "-n", "bookinfo", "--logs", "x.log", "--since", "2h"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = laptop(
        &fake,
        &[
            "learn",
            "--since",
            "2h",
            "--manifests",
            "examples/bookinfo",
            "--logs",
            "x.log",
        ],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    let bad = Path::new(env!("CARGO_TARGET_TMPDIR")).join("incluster-bad-candidate.yaml");
    std::fs::write(
        &bad,
        "apiVersion: meshward.io/v1alpha1\nkind: Allowlist\nmetadata: {name: details, namespace: bookinfo}\nspec:\n  rules: [{to: [{paths: [relative]}]}]\n",
    )
    .unwrap();
    let (code, _, err) = laptop(
        &fake,
        &["replay", "-n", "bookinfo", "--manifests", bad.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("candidate details: InvalidPath"), "{err}");

    // No sidecar log readable at all: 2, not an empty proposal.
    for pod in ["details-v1-0", "productpage-v1-0", "ratings-v1-0", "reviews-v1-0"] {
        fake.remove("Pod", "bookinfo", pod);
    }
    let (code, out, err) = laptop(&fake, &["learn", "-n", "bookinfo"]).await;
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("no sidecar log of namespace bookinfo could be read"),
        "{err}"
    );
}
