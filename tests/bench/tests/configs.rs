//! Every variant's bootstrap in a real Envoy (the project's `.venv`, or
//! `MESHWARD_ENVOY`): `--mode validate` at several allowlist sizes, the
//! filter configuration included, then real requests through it: the
//! allowed request passes, the denied one gets 403, and after an ECDS update
//! that drops the last rule the formerly allowed request is denied.
//!
//! Needs both wasm modules: `make build-wasm` builds them.

// A test: a failed set-up step must stop it loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use meshward_bench::configs::{bootstrap, responder_bootstrap, update_filter, Files, Ports, Variant};
use meshward_bench::rules::{allowed_request, denied_request, rules, rules_with, Mix};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("MESHWARD_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/envoy"));
    assert!(path.exists(), "{} is missing: run `make setup` first", path.display());
    path
}

fn module(file: &str) -> PathBuf {
    let path = workspace().join("target/wasm32-wasip1/release").join(file);
    assert!(
        path.exists(),
        "{} is missing: run `make build-wasm` first",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A fresh directory, removed on drop unless the test is failing.
struct Scratch(PathBuf);

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

impl Scratch {
    fn new(name: &str) -> Self {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("meshward-bench-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running Envoy, stopped on drop (its log printed if the test fails).
struct Envoy {
    child: Child,
    admin: u16,
    log: PathBuf,
}

impl Envoy {
    fn start(dir: &Path, name: &str, bootstrap: &str, admin: u16) -> Self {
        let config = dir.join(format!("{name}.json"));
        std::fs::write(&config, bootstrap).expect("write bootstrap");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "--disable-hot-restart", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start envoy");
        let mut envoy = Self { child, admin, log };
        envoy.wait_ready();
        envoy
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Envoy exited ({status}) before becoming ready; log:\n{}", self.log());
            }
            let out = Command::new("curl")
                .args(["-s", "--max-time", "2"])
                .arg(format!("http://127.0.0.1:{}/ready", self.admin))
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "LIVE") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Envoy did not become ready in 60 s; log:\n{}", self.log());
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- Envoy log ({}) -----\n{}\n-----", self.log.display(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -X method http://127.0.0.1:port/path`'s status (0 if none).
fn status(port: u16, (method, path): &(String, String)) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "--path-as-is",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
        ])
        .arg(method)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Polls until `port` answers `request` with `want`; returns the last status.
fn eventually(port: u16, request: &(String, String), want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status(port, request);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn validate(config: &Path) {
    let out = Command::new(envoy_binary())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "-c",
        ])
        .arg(config)
        .output()
        .expect("run envoy --mode validate");
    assert!(
        out.status.success(),
        "{} does not validate:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bootstrap with the ECDS filter replaced by the content of
/// `filter.json`, so that `--mode validate` checks the filter configuration
/// too (it does not read ECDS files).
fn inlined(bootstrap: &str, dir: &Path) -> String {
    let mut bootstrap: serde_json::Value = serde_json::from_str(bootstrap).expect("bootstrap is JSON");
    let ecds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("filter.json")).expect("read filter.json"))
            .expect("filter.json is JSON");
    let resource = &ecds["resources"][0];
    let filters = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"][0];
    assert_eq!(
        filters["name"], resource["name"],
        "the ECDS resource is named after the filter"
    );
    *filters = serde_json::json!({"name": resource["name"], "typed_config": resource["typed_config"]});
    bootstrap.to_string()
}

/// Validates `variant` at every size, then runs it at the first sizes of
/// `functional`: allowed → `allowed_status`, denied → `denied_status`, and
/// (`update_denies`) allowed → 403 after dropping the last rule.
fn check(variant: Variant, sizes: &[usize], functional: &[usize], statuses: (u16, u16), update_denies: bool) {
    let scratch = Scratch::new(&format!("{variant:?}"));
    let (meshward_wasm, noop_wasm) = (module("meshward_filter.wasm"), module("meshward_noop_filter.wasm"));
    let upstream = (free_port(), free_port());
    let authz = (free_port(), free_port());
    let _upstream = Envoy::start(
        &scratch.0,
        "upstream",
        &responder_bootstrap(upstream.0, upstream.1),
        upstream.1,
    );
    let _authz = (variant == Variant::ExtAuthz)
        .then(|| Envoy::start(&scratch.0, "authz", &responder_bootstrap(authz.0, authz.1), authz.1));
    for &n in sizes {
        let dir = scratch.0.join(format!("n{n}"));
        std::fs::create_dir_all(&dir).expect("create run dir");
        let files = Files {
            dir: dir.clone(),
            meshward_wasm: meshward_wasm.clone(),
            noop_wasm: noop_wasm.clone(),
        };
        let ports = Ports {
            listener: free_port(),
            admin: free_port(),
            upstream: upstream.0,
            authz: authz.0,
        };
        let rules = rules(n);
        let config = bootstrap(variant, &rules, &ports, &files);
        let path = dir.join("envoy.json");
        std::fs::write(&path, &config).expect("write bootstrap");
        validate(&path);
        assert_eq!(dir.join("filter.json").exists(), variant != Variant::Router);
        if variant != Variant::Router {
            let inline = dir.join("inline.json");
            std::fs::write(&inline, inlined(&config, &dir)).expect("write inlined bootstrap");
            validate(&inline);
        }
        if !functional.contains(&n) {
            continue;
        }
        let envoy = Envoy::start(&dir, "envoy", &config, ports.admin);
        let (allowed, denied) = (allowed_request(&rules), denied_request());
        // The listener may still be warming when admin says LIVE: wait for
        // the first answer.
        assert_eq!(
            eventually(ports.listener, &allowed, statuses.0),
            statuses.0,
            "{variant:?} n={n} {allowed:?}"
        );
        assert_eq!(
            status(ports.listener, &denied),
            statuses.1,
            "{variant:?} n={n} {denied:?}"
        );
        // One rule of each form (0 exact, 4 prefix, 7 template; the last is
        // a regex) admits its request, not with another method.
        for k in [0, 4, 7] {
            let request = allowed_request(&rules[..=k]);
            assert_eq!(
                status(ports.listener, &request),
                statuses.0,
                "{variant:?} n={n} {request:?}"
            );
        }
        let other = ["GET", "POST", "PUT", "DELETE", "PATCH"]
            .into_iter()
            .find(|m| !rules[n - 1].methods.iter().any(|r| r == m))
            .expect("a method the last rule does not allow");
        let wrong_method = (other.to_string(), allowed.1.clone());
        assert_eq!(
            status(ports.listener, &wrong_method),
            statuses.1,
            "{variant:?} n={n} {wrong_method:?}"
        );
        if update_denies {
            update_filter(variant, &rules[..n - 1], &files);
            assert_eq!(
                eventually(ports.listener, &allowed, 403),
                403,
                "{variant:?} n={n} after the update"
            );
            assert_eq!(status(ports.listener, &denied), 403);
            // And back.
            update_filter(variant, &rules, &files);
            assert_eq!(
                eventually(ports.listener, &allowed, 200),
                200,
                "{variant:?} n={n} after the second update"
            );
        }
        drop(envoy);
    }
}

#[test]
fn router() {
    // No filter: everything passes.
    check(Variant::Router, &[10, 1000], &[10, 1000], (200, 200), false);
}

#[test]
fn rbac() {
    check(
        Variant::Rbac,
        &[10, 1000, 10_000],
        &[10, 1000, 10_000],
        (200, 403),
        true,
    );
}

#[test]
fn rbac_matcher() {
    check(Variant::RbacMatcher, &[10, 1000], &[10, 1000], (200, 403), true);
}

#[test]
fn noop_wasm() {
    // The no-op filter admits everything.
    check(Variant::NoopWasm, &[10, 1000], &[10, 1000], (200, 200), false);
}

#[test]
fn meshward() {
    check(
        Variant::Meshward,
        &[10, 1000, 10_000],
        &[10, 1000, 10_000],
        (200, 403),
        true,
    );
}

#[test]
fn ext_authz() {
    // The trivial authorizer answers 200 to every check, so both requests
    // pass: this measures the round trip, not a decision.
    check(Variant::ExtAuthz, &[10, 1000], &[10, 1000], (200, 200), false);
}

/// Issue 6's map-only comparison: `rules_with(1000, Mix::MapsOnly)` (exact
/// and prefix only, so the matcher tree has no regex list) validates, filter
/// inlined too, and in a real Envoy the allowed request (the last rule, a
/// prefix) passes, an exact rule's request passes, the denied one gets 403.
#[test]
fn maps_only() {
    let scratch = Scratch::new("maps-only");
    let upstream = (free_port(), free_port());
    let _upstream = Envoy::start(
        &scratch.0,
        "upstream",
        &responder_bootstrap(upstream.0, upstream.1),
        upstream.1,
    );
    let n = 1000;
    let rules = rules_with(n, Mix::MapsOnly);
    let (allowed, denied) = (allowed_request(&rules), denied_request());
    let exact = allowed_request(&rules[..1]);
    for variant in [Variant::RbacMatcher, Variant::Meshward] {
        let dir = scratch.0.join(format!("{variant:?}"));
        std::fs::create_dir_all(&dir).expect("create run dir");
        let files = Files {
            dir: dir.clone(),
            meshward_wasm: module("meshward_filter.wasm"),
            noop_wasm: module("meshward_noop_filter.wasm"),
        };
        let ports = Ports {
            listener: free_port(),
            admin: free_port(),
            upstream: upstream.0,
            authz: free_port(),
        };
        let config = bootstrap(variant, &rules, &ports, &files);
        if variant == Variant::RbacMatcher {
            assert!(!config.contains("safe_regex"), "no regex in the map-only tree");
            let filter = std::fs::read_to_string(dir.join("filter.json")).expect("read filter.json");
            assert!(
                !filter.contains("safe_regex") && !filter.contains("matcher_list"),
                "{variant:?}"
            );
        }
        let path = dir.join("envoy.json");
        std::fs::write(&path, &config).expect("write bootstrap");
        validate(&path);
        let inline = dir.join("inline.json");
        std::fs::write(&inline, inlined(&config, &dir)).expect("write inlined bootstrap");
        validate(&inline);
        let _envoy = Envoy::start(&dir, "envoy", &config, ports.admin);
        assert_eq!(
            eventually(ports.listener, &allowed, 200),
            200,
            "{variant:?} {allowed:?}"
        );
        assert_eq!(status(ports.listener, &exact), 200, "{variant:?} {exact:?}");
        assert_eq!(status(ports.listener, &denied), 403, "{variant:?} {denied:?}");
    }
}
