//! A VM that fails: the filter built with the `fault-injection` feature
//! panics on a request carrying `x-meshward-test-panic`, which aborts its
//! VM (`panic = "abort"`: a wasm trap), as a bug in request handling would.
//! What Envoy 1.40 does next depends on the wasm `failure_policy` istiod
//! writes from the WasmPlugin's `failStrategy`:
//!
//! * `FAIL_CLOSE` (`failure_policy: FAIL_CLOSED`; `fail_open: false` from
//!   Istio before 1.25): the panicking request and every later one get 503
//!   and never reach the upstream, until a changed configuration brings a
//!   fresh VM (or the pod restarts); the same configuration again does not.
//! * `FAIL_RELOAD`: the same 503s, until Envoy starts a fresh VM after its
//!   backoff (1 s base by default) and serves again, with the policy in force.
//!
//! In every case the panic message reaches Envoy's log at critical level,
//! through the filter's panic hook.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use meshward_e2e::{call, fault_injection_module, module, Caller, EnvoyOptions, FailurePolicy, Scenario};

const CONFIG: &str = r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["/ok/*"]}]}]}]}"#;
const TRIGGER: &str = "x-meshward-test-panic";

fn start(policy: FailurePolicy) -> Scenario {
    Scenario::start(
        EnvoyOptions::new(CONFIG)
            .ecds()
            .module(fault_injection_module())
            .failure_policy(policy),
    )
}

fn status(s: &Scenario, path: &str) -> u16 {
    s.envoy.send(&Caller::Anonymous, &call("GET", path)).status
}

/// Sends the panicking request; returns its status.
fn panic_request(s: &Scenario, path: &str) -> u16 {
    s.envoy
        .send(&Caller::Anonymous, &call("GET", path).header(TRIGGER, "1"))
        .status
}

/// The panic hook's critical line and the panic's message, in Envoy's log.
fn assert_panic_logged(s: &Scenario) {
    let log = s.envoy.log();
    let hook = log
        .lines()
        .position(|l| l.contains("[critical][wasm]") && l.contains("meshward: panic: panicked at"));
    let Some(at) = hook else {
        panic!("no critical panic line in Envoy's log:\n{log}");
    };
    let message = log.lines().skip(at).take(2).collect::<Vec<_>>().join("\n");
    assert!(
        message.contains("fault injection: the request carries x-meshward-test-panic"),
        "the panic message is not in the log: {message}"
    );
    assert!(log.contains("proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"));
}

#[test]
fn the_shipped_module_has_no_fault_trigger() {
    let shipped = std::fs::read(module()).unwrap();
    let fault = std::fs::read(fault_injection_module()).unwrap();
    let holds = |wasm: &[u8]| wasm.windows(TRIGGER.len()).any(|w| w == TRIGGER.as_bytes());
    assert!(holds(&fault), "the fault-injection build should hold the trigger");
    assert!(!holds(&shipped), "the shipped module holds the fault-injection trigger");
}

/// `FAIL_CLOSE`, as istiod writes it for current proxies and for those before
/// 1.25: nothing passes once the VM has failed, however long one waits (here
/// 3 s, three times `FAIL_RELOAD`'s first backoff).
#[test]
fn fail_closed_refuses_the_panicking_request_and_every_later_one() {
    for policy in [FailurePolicy::FailClosed, FailurePolicy::FailOpenFalse] {
        let s = start(policy);
        assert_eq!(status(&s, "/ok/before"), 200, "{policy:?}");
        assert_eq!(panic_request(&s, "/ok/panic"), 503, "{policy:?}");
        let t0 = Instant::now();
        let mut n = 0;
        while t0.elapsed() < Duration::from_secs(3) {
            assert_eq!(
                status(&s, &format!("/ok/after-{n}")),
                503,
                "{policy:?}: request {n} after the panic"
            );
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            s.upstream.paths(),
            ["/ok/before"],
            "{policy:?}: only the request before the panic reached the upstream"
        );
        assert_panic_logged(&s);
        assert_eq!(s.envoy.stat("wasm.meshward.vm_reload_success"), Some(0), "{policy:?}");
    }
}

/// After a `FAIL_CLOSE` failure, what brings the filter back without a pod
/// restart is a *changed* configuration: Envoy builds a fresh VM for it. The
/// same pluginConfig delivered again under a new version changes nothing.
#[test]
fn fail_closed_recovers_with_a_changed_configuration_only() {
    let s = start(FailurePolicy::FailClosed);
    assert_eq!(panic_request(&s, "/ok/panic"), 503);
    assert_eq!(status(&s, "/ok/after"), 503);
    s.envoy.update_config(CONFIG);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(status(&s, "/ok/same-config"), 503, "the same configuration again");
    // The same rules under another policy name: a different pluginConfig.
    s.envoy
        .update_config(&CONFIG.replace(r#""name":"p""#, r#""name":"p2""#));
    let served = s.envoy.eventually(|_| (status(&s, "/ok/again") == 200).then_some(()));
    assert!(
        served.is_some(),
        "no recovery after a changed configuration:\n{}",
        s.envoy.log()
    );
    assert_eq!(status(&s, "/elsewhere"), 403, "the policy is in force in the fresh VM");
    let seen = s.upstream.paths();
    assert!(
        !seen
            .iter()
            .any(|p| ["/ok/panic", "/ok/after", "/ok/same-config"].contains(&p.as_str())),
        "refused requests reached the upstream: {seen:?}"
    );
}

/// `FAIL_RELOAD`: 503 while the VM is down, then a fresh VM serves, with the
/// policy in force; a second panic is recovered from the same way.
#[test]
fn fail_reload_serves_again_from_a_fresh_vm() {
    let s = start(FailurePolicy::FailReload);
    assert_eq!(status(&s, "/ok/before"), 200);
    for round in 1..=2u64 {
        assert_eq!(panic_request(&s, &format!("/ok/panic-{round}")), 503);
        let t0 = Instant::now();
        let mut refused = Vec::new();
        let recovered = loop {
            let path = format!("/ok/wait-{round}-{}", refused.len());
            match status(&s, &path) {
                200 => break Some(t0.elapsed()),
                503 => refused.push(path),
                other => panic!("round {round}: {path} got {other}"),
            }
            if t0.elapsed() > Duration::from_secs(10) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let Some(after) = recovered else {
            panic!("round {round}: no fresh VM within 10 s:\n{}", s.envoy.log());
        };
        // Envoy's default backoff starts at 1 s: requests in between are refused.
        assert!(!refused.is_empty(), "round {round}: served again at once ({after:?})");
        assert_eq!(status(&s, "/elsewhere"), 403, "round {round}: the policy is in force");
        let seen = s.upstream.paths();
        assert!(
            !seen.iter().any(|p| p.contains("/ok/panic") || refused.contains(p)),
            "round {round}: refused requests reached the upstream: {seen:?}"
        );
        assert_eq!(s.envoy.stat("wasm.meshward.vm_reload_success"), Some(round));
        eprintln!(
            "round {round}: served again after {after:?}, {} requests refused meanwhile",
            refused.len()
        );
    }
    assert_panic_logged(&s);
}
