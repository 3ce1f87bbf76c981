//! The HTTP API against its OpenAPI document: `meshward-control serve`, as
//! its own process on loopback against the fake API server, fuzzed by
//! schemathesis (from the project's `.venv`, `scripts/setup.sh`) with the
//! document it serves. No answer is a 5xx, every answer is documented (status,
//! content type, schema), and every `/v1` operation refuses callers without a
//! valid token (schemathesis' `ignored_auth`, and each operation asserted
//! here without a token, with a forged one and with one lacking the RBAC
//! right).
//!
//! The fuzzer's token may `get` and `patch` Allowlists and `get` `pods/log`
//! everywhere, so its
//! requests reach the handlers; the document's examples name the seeded
//! namespace `shop`, its workload `api-1` and Allowlist `api`, and a hook
//! (`data/api_fuzz_hooks.py`) points every fuzzed simulation at that
//! workload and makes every fuzzed replay line a request log line of it, so
//! that the engine judges the fuzzed requests. An injected pod of the
//! namespace has a sidecar log, which learn and replay read.
//! `MESHWARD_FUZZ_EXAMPLES` sets schemathesis' `--max-examples` per
//! operation and phase (default 200); its JUnit report and the service's log
//! are kept in `target/tmp/api_fuzz/`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::service::{http, seed, start};

use meshward_fake_apiserver::{FakeApi, ANY};
use serde_json::{json, Value};

/// `meshward-control serve`, killed when dropped.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn schemathesis() -> PathBuf {
    let path = workspace().join(".venv/bin/schemathesis");
    assert!(
        path.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh) first",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `serve` against `fake` and waits until it is ready.
async fn serve(fake: &FakeApi, work: &Path) -> (Serve, String) {
    std::fs::create_dir_all(work).unwrap();
    let kubeconfig = work.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).unwrap();
    let log = work.join("serve.log");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_meshward-control"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--url", "file:///meshward.wasm", "--no-leader-election"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let serve = Serve { child, log };
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            drop(s);
            if http("GET", &format!("{base}/readyz"), None, None).await.0 == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "serve is not ready:\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (serve, base)
}

/// A request for every `/v1` operation, with the seeded names.
fn v1_calls(base: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("{base}/v1/namespaces/shop/config"), None),
        (
            "POST",
            format!("{base}/v1/simulate"),
            Some(json!({"from": "shop/frontend", "to": "shop/api-1", "method": "GET", "path": "/items/1"})),
        ),
        (
            "PATCH",
            format!("{base}/v1/namespaces/shop/allowlists/api"),
            Some(json!({"mode": "audit"})),
        ),
        (
            "POST",
            format!("{base}/v1/namespaces/shop/learn"),
            Some(json!({"sinceSeconds": 600})),
        ),
        (
            "POST",
            format!("{base}/v1/namespaces/shop/replay"),
            Some(json!({"lines": [SIDECAR_LINE]})),
        ),
        (
            "POST",
            format!("{base}/v1/namespaces/shop/replay"),
            Some(json!({"sinceSeconds": 600, "candidates": [{"metadata": {"name": "api"}, "spec": {"rules": []}}]})),
        ),
    ]
}

/// A request line of the seeded workload, in its sidecar's log.
const SIDECAR_LINE: &str = r#"meshward.request {"method":"GET","path":"/items/1","principal":"cluster.local/ns/shop/sa/frontend","port":9080,"workload":"api-1","namespace":"shop","verdict":"allow"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_no_undocumented_answer_and_no_unguarded_operation() {
    let schemathesis = schemathesis();
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    seed(&fake, "quiet", None);
    fake.add_token("fuzz-token", "fuzzer", &["system:authenticated"]);
    fake.grant("fuzzer", "get", "allowlists", ANY, ANY);
    fake.grant("fuzzer", "patch", "allowlists", ANY, ANY);
    fake.grant("fuzzer", "get", "pods/log", ANY, ANY);
    fake.add_token("nobody-token", "nobody", &["system:authenticated"]);
    // An injected pod, so that learn and replay read a sidecar log.
    fake.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-2", "namespace": "shop", "labels": {"app": "api"}},
        "spec": {"serviceAccountName": "api",
            "containers": [{"name": "app", "image": "app"}, {"name": "istio-proxy", "image": "proxyv2"}]}}));
    fake.set_log("shop", "api-2", "istio-proxy", &["starting", SIDECAR_LINE]);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("api_fuzz");
    let _ = std::fs::remove_dir_all(&work);
    let (serve, base) = serve(&fake, &work).await;

    // The document served is the one committed.
    let (code, served) = http("GET", &format!("{base}/openapi.json"), None, None).await;
    assert_eq!(code, 200);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("docs/openapi.json")).unwrap()).unwrap();
    assert!(served == committed, "GET /openapi.json differs from docs/openapi.json");

    // Every /v1 operation: 401 without a valid token, 403 without the
    // right, each with the documented error body; the fuzzer's token works.
    for (method, url, body) in v1_calls(&base) {
        for token in [None, Some("forged"), Some("")] {
            let (code, reply) = http(method, &url, token, body.clone()).await;
            assert_eq!(code, 401, "{method} {url} with {token:?}: {reply}");
            assert!(reply["error"].is_string(), "{method} {url}: {reply}");
        }
        let (code, reply) = http(method, &url, Some("nobody-token"), body.clone()).await;
        assert_eq!(code, 403, "{method} {url} without the right: {reply}");
        assert!(reply["error"].is_string(), "{method} {url}: {reply}");
        let (code, reply) = http(method, &url, Some("fuzz-token"), body.clone()).await;
        assert_eq!(code, 200, "{method} {url} as the fuzzer: {reply}");
    }

    // The hooks point every simulation at the seeded workload (see the file).
    std::fs::write(work.join("api_fuzz_hooks.py"), include_str!("data/api_fuzz_hooks.py")).unwrap();
    let examples = std::env::var("MESHWARD_FUZZ_EXAMPLES").unwrap_or_else(|_| "200".into());
    let report = work.join("junit.xml");
    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let (base, work, examples, report) = (base.clone(), work.clone(), examples.clone(), report.clone());
        move || {
            Command::new(schemathesis)
                .arg("run")
                .arg(format!("{base}/openapi.json"))
                .args(["--url", &base])
                .args(["--header", "Authorization: Bearer fuzz-token"])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,\
                     response_headers_conformance,response_schema_conformance,ignored_auth",
                ])
                .args(["--phases", "examples,coverage,fuzzing"])
                .args(["--max-examples", &examples])
                .args(["--seed", "1", "--workers", "1", "--request-timeout", "10"])
                .args(["--report", "junit", "--report-junit-path"])
                .arg(&report)
                .args(["--no-color"])
                .current_dir(&work)
                .env("SCHEMATHESIS_HOOKS", "api_fuzz_hooks")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "schemathesis ({examples} examples) took {:.1?}:\n{stdout}{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found failures (above); the service's log:\n{}",
        serve.log()
    );
    // It tested every operation but the document itself.
    let junit = std::fs::read_to_string(&report).unwrap();
    for op in [
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /v1/namespaces/{ns}/config",
        "POST /v1/simulate",
        "PATCH /v1/namespaces/{ns}/allowlists/{name}",
        "POST /v1/namespaces/{ns}/learn",
        "POST /v1/namespaces/{ns}/replay",
    ] {
        assert!(
            junit.contains(&format!("<testcase name=\"{op}\"")),
            "schemathesis did not test {op}:\n{junit}"
        );
    }
    drop(serve);
}

/// A path that is not UTF-8 once percent-decoded is refused like any other
/// bad name: after authentication (401 first), as a JSON error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_paths_are_refused_as_json_after_authentication() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    fake.add_token("alice-token", "alice", &["system:authenticated"]);
    fake.grant("alice", "get", "allowlists", ANY, ANY);
    fake.grant("alice", "patch", "allowlists", ANY, ANY);
    let svc = start(&fake).await;
    for (method, path, body) in [
        ("GET", "/v1/namespaces/%FF/config", None),
        (
            "PATCH",
            "/v1/namespaces/shop/allowlists/%C0%AF",
            Some(json!({"mode": "audit"})),
        ),
        (
            "PATCH",
            "/v1/namespaces/%FE/allowlists/api",
            Some(json!({"mode": "audit"})),
        ),
    ] {
        let url = format!("{}{path}", svc.base);
        let (code, reply) = http(method, &url, None, body.clone()).await;
        assert_eq!(code, 401, "{method} {path} without a token: {reply}");
        assert!(reply["error"].is_string(), "{method} {path}: {reply}");
        let (code, reply) = http(method, &url, Some("alice-token"), body).await;
        assert_eq!(code, 400, "{method} {path}: {reply}");
        assert!(reply["error"].is_string(), "{method} {path}: {reply}");
    }
    svc.stop().await;
}

/// A method that is not an HTTP token is refused naming the method. (With a
/// space, the engine read it back as another request: `GET /admin` and path
/// `/items/1` as `GET` of `/admin /items/1`, a `reject` blaming the path.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_method_must_be_an_http_token() {
    let fake = FakeApi::start().await;
    seed(&fake, "shop", Some("enabled"));
    fake.add_token("alice-token", "alice", &["system:authenticated"]);
    fake.grant("alice", "get", "allowlists", "shop", "");
    let svc = start(&fake).await;
    let url = format!("{}/v1/simulate", svc.base);
    let ask = |method: &str| json!({"from": "shop/frontend", "to": "shop/api-1", "method": method, "path": "/items/1"});
    let ready = common::service::eventually("the first derivation", || async {
        let (code, reply) = http("POST", &url, Some("alice-token"), Some(ask("GET"))).await;
        (code == 200).then_some(reply)
    })
    .await;
    assert_eq!(ready["verdict"], "allow", "{ready}");
    for method in ["GET /admin", "", "GET\t"] {
        let (code, reply) = http("POST", &url, Some("alice-token"), Some(ask(method))).await;
        assert_eq!(code, 400, "{method:?}: {reply}");
        assert!(reply["error"].as_str().unwrap().starts_with("method:"), "{reply}");
    }
    svc.stop().await;
}
