//! What the filter leaves for operators: counters (in `/stats`, and as
//! labelled Prometheus series with the documented `stats_tags`), the JSON
//! request log line, and the filter state printed by access logs (tested in
//! `enforce.rs`).
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshward_e2e::{call, Caller, EnvoyOptions, Scenario};

const POLICY: &str = r#"{"log":{"requests":"all"},"policies":[{"name":"shop/reviews","rules":[
  {"name":"reads","from":[{"namespaces":["shop"]}],"to":[{"methods":["GET"],"paths":["/reviews/*"]}]}]}]}"#;

#[test]
fn counters_per_verdict_policy_and_rule() {
    let s = Scenario::start(EnvoyOptions::new(POLICY).stats_tags());
    let pp = s.pki.caller("cluster.local/ns/shop/sa/productpage");
    for (caller, method, path, want) in [
        (&pp, "GET", "/reviews/1", 200),
        (&pp, "GET", "/reviews/2", 200),
        (&pp, "DELETE", "/reviews/1", 403),
        (&Caller::Anonymous, "GET", "/reviews/%2F", 400),
    ] {
        assert_eq!(
            s.envoy.send(caller, &call(method, path)).status,
            want,
            "{method} {path}"
        );
    }
    // /stats keeps the full name; the tags are extracted for Prometheus.
    let stats = s.envoy.admin_get("/stats?filter=meshward").unwrap();
    // Every VM that loads the configuration counts it (one per worker plus
    // the main thread's), so the exact figure depends on the worker count.
    assert!(
        s.envoy
            .stat("wasmcustom.meshward.config.accepted")
            .is_some_and(|n| n >= 1),
        "{stats}"
    );
    assert!(!stats.contains("wasmcustom.meshward.config.rejected"), "{stats}");
    let prom = s.envoy.admin_get("/stats/prometheus").unwrap();
    let series = |labels: &str| {
        prom.lines()
            .find(|l| l.starts_with("meshward_requests{") && labels.split(',').all(|kv| l.contains(kv)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(
        series(r#"verdict="allow",policy="shop/reviews",rule="reads""#),
        Some(2),
        "{prom}"
    );
    assert_eq!(
        series(r#"verdict="deny",policy="shop/reviews",rule="-""#),
        Some(1),
        "{prom}"
    );
    assert_eq!(
        series(r#"verdict="reject",policy="shop/reviews",rule="-""#),
        Some(1),
        "{prom}"
    );
}

#[test]
fn one_json_log_line_per_request_with_the_response_status() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller("cluster.local/ns/shop/sa/productpage");
    let reply = s.envoy.send(
        &pp,
        &call("GET", "/reviews/./1?token=s3cr3t-qu3ry")
            .header("x-request-id", "req-7")
            .header("authorization", "Bearer s3cr3t-t0k3n")
            .h2(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        s.envoy
            .send(
                &Caller::Anonymous,
                &call("GET", "/reviews/1").header("x-request-id", "req-8")
            )
            .status,
        403
    );
    let logs = s
        .envoy
        .eventually(|e| Some(e.request_log()).filter(|l| l.len() >= 2))
        .unwrap();
    let by_id = |id: &str| logs.iter().find(|l| l["requestId"] == id).unwrap().clone();
    let allowed = by_id("req-7");
    assert_eq!(allowed["verdict"], "allow");
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["path"], "/reviews/1");
    assert_eq!(allowed["principal"], "cluster.local/ns/shop/sa/productpage");
    assert_eq!(allowed["workload"], "reviews");
    assert_eq!(allowed["namespace"], "shop");
    assert_eq!(allowed["rule"], "reads");
    assert!(allowed["durationMs"].as_f64().unwrap() >= 0.0);
    let denied = by_id("req-8");
    assert_eq!(
        (denied["verdict"].as_str(), denied["status"].as_u64()),
        (Some("deny"), Some(403))
    );
    assert!(denied["principal"].is_null());
    let log = s.envoy.log();
    assert!(
        !log.contains("s3cr3t-t0k3n") && !log.contains("s3cr3t-qu3ry"),
        "credentials and queries are not logged"
    );
}
