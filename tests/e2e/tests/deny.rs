//! Deny policies in a real Envoy: a deny rule wins over an allow rule that
//! admits the request, `notPrincipals: ["*"]` refuses plaintext callers on
//! the plaintext listener while mTLS callers pass, and an audit deny rule
//! forwards what it matches, recorded as `audit_deny` naming its rule.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshward_e2e::{call, Caller, EnvoyOptions, Scenario};

const PRODUCTPAGE: &str = "cluster.local/ns/shop/sa/productpage";

/// Reviews admits every GET; one deny policy refuses `/reviews/admin/*` and
/// every caller without an identity, an audit one `/reviews/beta/*`.
const POLICY: &str = r#"{"policies":[
  {"name":"shop/reviews","selector":{"app":"reviews"},"rules":[{"name":"reads","to":[{"methods":["GET"]}]}]},
  {"name":"shop/reviews-deny","selector":{"app":"reviews"},"action":"deny","rules":[
    {"name":"admin","to":[{"paths":["/reviews/admin/*"]}]},
    {"name":"plaintext","from":[{"notPrincipals":["*"]}]}]},
  {"name":"shop/reviews-trial","selector":{"app":"reviews"},"action":"deny","mode":"audit","rules":[
    {"name":"beta","to":[{"paths":["/reviews/beta/*"]}]}]}
]}"#;

fn status(s: &Scenario, caller: &Caller, method: &str, path: &str) -> u16 {
    s.envoy.send(caller, &call(method, path)).status
}

#[test]
fn deny_rules_win_refuse_plaintext_and_audit_in_envoy() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    let no_san = s.pki.caller_without_san();
    for (caller, method, path, want) in [
        // The allow rule admits; the deny rule wins.
        (&pp, "GET", "/reviews/1", 200),
        (&pp, "GET", "/reviews/admin/users", 403),
        // Not admitted by the allow policy: denied by it.
        (&pp, "DELETE", "/reviews/1", 403),
        // Plaintext and SAN-less callers have no identity: notPrincipals ["*"] refuses them.
        (&Caller::Anonymous, "GET", "/reviews/1", 403),
        (&no_san, "GET", "/reviews/1", 403),
        // The audit deny rule forwards what the allow rule admits.
        (&pp, "GET", "/reviews/beta/x", 200),
    ] {
        assert_eq!(status(&s, caller, method, path), want, "{method} {path} as {caller:?}");
    }
    let paths = s.upstream.paths();
    assert!(!paths.iter().any(|p| p.starts_with("/reviews/admin")), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/reviews/beta/x"), "{paths:?}");

    // The access log names the deny policy and rule as it names an allow rule.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = s.envoy.access_log();
        if lines.len() >= 6 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        lines,
        vec![
            "GET /reviews/1 200 verdict=allow policy=shop/reviews rule=reads",
            "GET /reviews/admin/users 403 verdict=deny policy=shop/reviews-deny rule=admin",
            // A default deny is the allow policy's decision.
            "DELETE /reviews/1 403 verdict=deny policy=shop/reviews rule=-",
            "GET /reviews/1 403 verdict=deny policy=shop/reviews-deny rule=plaintext",
            "GET /reviews/1 403 verdict=deny policy=shop/reviews-deny rule=plaintext",
            "GET /reviews/beta/x 200 verdict=audit_deny policy=shop/reviews-trial rule=beta",
        ]
    );
}

#[test]
fn a_workload_with_only_deny_policies_stays_open_to_mtls_callers() {
    let only_deny = r#"{"policies":[{"name":"shop/no-plaintext","action":"deny","rules":[
      {"from":[{"notPrincipals":["*"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(only_deny));
    let pp = s.pki.caller(PRODUCTPAGE);
    assert_eq!(status(&s, &pp, "DELETE", "/anything"), 200);
    assert_eq!(status(&s, &Caller::Anonymous, "GET", "/anything"), 403);
}
