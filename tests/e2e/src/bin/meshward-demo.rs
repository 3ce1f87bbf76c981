//! `make demo`: meshward end to end on this machine, in under a minute.
//!
//! 1. renders the WasmPlugins of `examples/bookinfo` with
//!    `meshward-control render` (the derivation the in-cluster service runs);
//! 2. starts a real Envoy configured like the inbound sidecar of Bookinfo's
//!    `reviews` workload (mTLS listener on the Service's target port 9080,
//!    node metadata with the workload's labels, the WasmPlugin's
//!    `pluginConfig` delivered through a file-based ECDS source) and an
//!    upstream;
//! 3. sends real requests as different callers (client certificates with
//!    SPIFFE ids), in enforce mode and again after the namespace is switched
//!    to audit (re-rendered, re-delivered through ECDS);
//! 4. prints what happened, the verdict counters and two request-log lines.
//!
//! Exits 1 if any status or verdict differs from the expected one.

// A demo driver: a failed set-up step stops it loudly (the harness panics).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use meshward_e2e::{call, control_binary, workspace, Call, Caller, EnvoyOptions, Scenario, Scratch};
use serde_json::Value;

/// The port Bookinfo's `reviews` Service sends to (`targetPort: http` → 9080);
/// the rendered policy names it, so the sidecar's inbound listener uses it.
const REVIEWS_PORT: u16 = 9080;

/// One request of the demo and what must happen to it.
struct Row {
    caller: &'static str,
    call: Call,
    /// Expected (status, verdict).
    enforce: (u16, &'static str),
    audit: (u16, &'static str),
}

fn rows() -> Vec<Row> {
    let row = |caller, call, enforce, audit| Row {
        caller,
        call,
        enforce,
        audit,
    };
    vec![
        row("productpage", call("GET", "/reviews/0"), (200, "allow"), (200, "allow")),
        row(
            "productpage",
            call("GET", "/ratings/0"),
            (403, "deny"),
            (200, "audit_deny"),
        ),
        row(
            "productpage",
            call("DELETE", "/reviews/0"),
            (403, "deny"),
            (200, "audit_deny"),
        ),
        row("ratings", call("GET", "/reviews/0"), (403, "deny"), (200, "audit_deny")),
        row(
            "anonymous",
            call("GET", "/reviews/0"),
            (403, "deny"),
            (200, "audit_deny"),
        ),
        row(
            "productpage",
            call("GET", "/reviews/0/../../admin"),
            (403, "deny"),
            (200, "audit_deny"),
        ),
        row(
            "productpage",
            call("GET", "/reviews/..%2Fadmin"),
            (400, "reject"),
            (200, "audit_deny"),
        ),
    ]
}

/// `meshward-control render --manifests <dir>` → the `pluginConfig` of the
/// WasmPlugin in `bookinfo`, as JSON text.
fn render(manifests: &Path) -> String {
    let out = Command::new(control_binary())
        .args(["render", "--manifests"])
        .arg(manifests)
        .args(["--url", "file:///meshward_filter.wasm", "-o", "json"])
        .output()
        .expect("run meshward-control");
    assert!(
        out.status.success(),
        "meshward-control render failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `-o json` prints a `List`, as `kubectl get -o json` does.
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let plugin = list["items"]
        .as_array()
        .expect("a List")
        .iter()
        .find(|doc| doc["kind"] == "WasmPlugin" && doc["metadata"]["namespace"] == "bookinfo")
        .expect("a WasmPlugin for bookinfo")
        .clone();
    assert_eq!(plugin["spec"]["phase"], "AUTHZ");
    assert_eq!(plugin["spec"]["failStrategy"], "FAIL_CLOSE");
    plugin["spec"]["pluginConfig"].to_string()
}

/// A copy of `examples/bookinfo` with the namespace label set to `audit`.
fn audit_manifests(scratch: &Scratch) -> PathBuf {
    let dir = scratch.path().join("bookinfo-audit");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(workspace().join("examples/bookinfo")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replace("meshward.io/enforcement: enabled", "meshward.io/enforcement: audit");
            std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    dir
}

/// The `n`-th access-log line (1-based), once Envoy has written it.
fn access_line(s: &Scenario, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = s.envoy.access_log();
        if let Some(line) = lines.get(n - 1) {
            return line.clone();
        }
        assert!(Instant::now() < deadline, "no access-log line {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("-")
}

fn main() -> ExitCode {
    let t0 = Instant::now();
    let bookinfo = workspace().join("examples/bookinfo");
    println!("meshward demo: Bookinfo's `reviews` sidecar in a real Envoy\n");
    println!("$ meshward-control render --manifests examples/bookinfo");
    let enforce_config = render(&bookinfo);

    let opts = EnvoyOptions {
        namespace: "bookinfo".into(),
        workload: "reviews".into(),
        ..EnvoyOptions::new(enforce_config)
            .labels(&[("app", "reviews"), ("version", "v1")])
            .ecds()
            .istio_stats()
            .mtls_port(REVIEWS_PORT)
    };
    if std::net::TcpListener::bind(("127.0.0.1", REVIEWS_PORT)).is_err() {
        eprintln!("meshward demo: port {REVIEWS_PORT} is in use; the demo's sidecar listens there (the reviews Service's target port)");
        return ExitCode::FAILURE;
    }
    let s = Scenario::start(opts);
    println!(
        "  Envoy {} listening: mTLS :{REVIEWS_PORT} (client certificates required), plaintext :{}; pluginConfig via ECDS\n",
        envoy_version(),
        s.envoy.plain
    );
    let callers = [
        (
            "productpage",
            s.pki.caller("cluster.local/ns/bookinfo/sa/bookinfo-productpage"),
        ),
        ("ratings", s.pki.caller("cluster.local/ns/bookinfo/sa/bookinfo-ratings")),
        ("anonymous", Caller::Anonymous),
    ];
    let caller = |name: &str| &callers.iter().find(|(n, _)| *n == name).unwrap().1;

    let mut failures = 0;
    let mut sent = 0;
    let header = format!(
        "{:<7} {:<12} {:<30} {:<17} {:<17} {:<34} {}",
        "mode", "caller", "request", "expected", "got", "policy/rule", ""
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len() + 4));
    for (mode, config) in [
        ("enforce", None),
        ("audit", Some(render(&audit_manifests(&Scratch::new())))),
    ] {
        if let Some(config) = config {
            // In enforce mode only the allowed requests may reach the upstream.
            let allowed = rows().iter().filter(|r| r.enforce.0 == 200).count();
            let reached = s.upstream.seen().len();
            if reached != allowed {
                println!("MISMATCH: the upstream received {reached} requests in enforce mode, expected {allowed}");
                failures += 1;
            }
            s.envoy.update_config(&config);
            // Wait until the new configuration serves: the first audit row
            // must come back with the audit verdict.
            sent += wait_for_audit(&s, caller("ratings"));
        }
        for r in rows() {
            let (want_status, want_verdict) = if mode == "enforce" { r.enforce } else { r.audit };
            let reply = s.envoy.send(caller(r.caller), &r.call);
            sent += 1;
            let line = access_line(&s, sent);
            let verdict = field(&line, "verdict");
            let rule = format!("{}/{}", field(&line, "policy"), field(&line, "rule"));
            let ok = reply.status == want_status && verdict == want_verdict;
            failures += usize::from(!ok);
            println!(
                "{:<7} {:<12} {:<30} {:<17} {:<17} {:<34} {}",
                mode,
                r.caller,
                format!("{} {}", r.call.method, r.call.path),
                format!("{want_status} {want_verdict}"),
                format!("{} {verdict}", reply.status),
                rule,
                if ok { "ok" } else { "MISMATCH" }
            );
        }
    }

    println!("\nVerdict counters (Envoy /stats/prometheus, labelled through the documented extraStatTags):");
    let prom = s.envoy.admin_get("/stats/prometheus").unwrap_or_default();
    for line in prom.lines().filter(|l| l.starts_with("meshward_requests_total{")) {
        println!("  {line}");
    }
    println!("\nRequest log (the first two lines the filter wrote):");
    let log = s.envoy.log();
    for line in log
        .lines()
        .filter_map(|l| l.split_once("meshward.request "))
        .map(|(_, j)| j)
        .take(2)
    {
        println!("  {line}");
    }
    println!(
        "\nThe upstream received {} requests: the allowed one in enforce mode, all of them in audit mode.",
        s.upstream.seen().len()
    );
    drop(s);
    let rows_total = rows().len() * 2;
    if failures == 0 {
        println!(
            "\nmeshward demo: all {rows_total} verdicts as expected ({:.1} s)",
            t0.elapsed().as_secs_f64()
        );
        ExitCode::SUCCESS
    } else {
        println!("\nmeshward demo: {failures} of {rows_total} verdicts differ from the expected ones");
        ExitCode::FAILURE
    }
}

/// Sends a request the audit configuration admits and the enforce one denies
/// until it passes (ECDS applies asynchronously); returns how many were sent
/// (each one is an access-log line: under load the change can take several
/// tries).
fn wait_for_audit(s: &Scenario, caller: &Caller) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    loop {
        sent += 1;
        if s.envoy.send(caller, &call("GET", "/reviews/0")).status == 200 {
            return sent;
        }
        assert!(Instant::now() < deadline, "the audit configuration was not applied");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn envoy_version() -> String {
    let out = Command::new(meshward_e2e::envoy_binary()).arg("--version").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.split_whitespace()
        .find_map(|w| w.split('/').nth(1).filter(|v| v.starts_with('1')).map(str::to_string))
        .unwrap_or_else(|| "(unknown version)".into())
}
