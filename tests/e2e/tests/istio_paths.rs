//! The conformance cases of `filter/tests/data/istio_path_templates.json`
//! against Envoy's own matcher, configured as Istio configures it: each
//! template becomes an RBAC `uri_template` permission (`{*}` as `*`, `{**}`
//! as `**`, Istio's translation) behind Istio's default path normalization
//! (`normalize_path`, no slash merging). What Envoy does is what the cases
//! say Istio does; `filter/tests/istio_paths.rs` holds meshward to the same
//! cases.
//!
//! One Envoy serves every template: template `i` guards the virtual host
//! `t{i}` with a per-route RBAC policy, and a request is allowed (200) or
//! denied (403).
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshward_e2e::{envoy_binary, free_port, workspace, Scratch};
use serde_json::{json, Value};

fn cases() -> Value {
    let path = workspace().join("filter/tests/data/istio_path_templates.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Istio's translation of a template to Envoy's syntax.
fn envoy_template(template: &str) -> String {
    template.replace("{**}", "**").replace("{*}", "*")
}

/// The listener's HTTP connection manager: Istio's default normalization,
/// an RBAC filter whose per-route policy each virtual host sets, a direct
/// reply.
fn bootstrap(templates: &[String], port: u16, admin: u16) -> Value {
    let vhosts: Vec<Value> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let permission = json!({"uri_template": {"name": "uri-template", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": envoy_template(t)}}});
            json!({"name": format!("t{i}"), "domains": [format!("t{i}")],
                "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                "typed_per_filter_config": {"envoy.filters.http.rbac": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
                    "rbac": {"rules": {"action": "ALLOW", "policies": {"template": {
                        "permissions": [permission], "principals": [{"any": true}]}}}}}}})
        })
        .collect();
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "oracle", "normalize_path": true, "merge_slashes": false,
        "route_config": {"virtual_hosts": vhosts},
        "http_filters": [
            {"name": "envoy.filters.http.rbac", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "ALLOW", "policies": {}}}},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]});
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{"name": "oracle",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm}]}]}]}})
}

/// Envoy with the RBAC oracle; stopped (its log printed if the test fails)
/// on drop.
struct Oracle {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Oracle {
    fn start(scratch: &Scratch, templates: &[String]) -> Self {
        let (port, admin) = (free_port(), free_port());
        let config = scratch.path().join("oracle.json");
        std::fs::write(&config, bootstrap(templates, port, admin).to_string()).unwrap();
        let log = scratch.path().join("oracle.log");
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--disable-hot-restart", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut oracle = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = oracle.child.try_wait() {
                panic!("Envoy exited ({status}): {}", oracle.log());
            }
            assert!(Instant::now() < deadline, "Envoy did not listen: {}", oracle.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        oracle
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The status of `GET path` on virtual host `host`, the path sent as is.
    fn status(&self, host: &str, path: &str) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        // The status line is all that is needed: no waiting for the close.
        let mut reply = Vec::new();
        let mut buf = [0u8; 512];
        while !reply.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).unwrap() {
                0 => break,
                n => reply.extend_from_slice(&buf[..n]),
            }
        }
        let reply = String::from_utf8_lossy(&reply);
        reply
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status for {path}: {reply:?}"))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- Envoy (oracle) log -----\n{}\n-----", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every matching case: Envoy allows exactly what the case says Istio
/// allows. The templates Istio accepts in the validity cases are in the same
/// configuration, so Envoy accepting it checks that they compile.
#[test]
fn envoy_matches_as_the_cases_say_istio_does() {
    let data = cases();
    let mut templates: Vec<String> = Vec::new();
    let mut index = BTreeMap::new();
    let matching = data["match"].as_array().unwrap();
    let valid = data["valid"].as_array().unwrap();
    let accepted = valid
        .iter()
        .filter(|c| c["istio"] == true && c["pattern"].as_str().unwrap().contains('{'))
        .map(|c| &c["pattern"]);
    for t in matching.iter().map(|c| &c["template"]).chain(accepted) {
        let t = t.as_str().unwrap().to_string();
        index.entry(t.clone()).or_insert_with(|| {
            templates.push(t);
            templates.len() - 1
        });
    }
    let scratch = Scratch::new();
    let oracle = Oracle::start(&scratch, &templates);
    let mut wrong = Vec::new();
    for case in matching {
        let template = case["template"].as_str().unwrap();
        let path = case["path"].as_str().unwrap();
        let want = if case["istio"] == true { 200 } else { 403 };
        let got = oracle.status(&format!("t{}", index[template]), path);
        if got != want {
            wrong.push(format!(
                "{template} {path}: Envoy {got}, the case says {want} ({})",
                case["source"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        matching.len(),
        wrong.join("\n")
    );
}
