//! What the filter leaves for operators, in the forms a mesh team reads it:
//!
//! * its counters as labelled Prometheus series, with the stats configuration
//!   istio-agent generates from the documented `extraStatTags` and with the
//!   documented bootstrap form (the same series either way);
//! * every CEL expression and access-log format shipped under `istio/`
//!   (the `meshward_verdict` label of `istio/telemetry.yaml`, the access-log
//!   provider and filter of `istio/examples/telemetry.yaml`), evaluated by
//!   Envoy for an allowed, a denied, an audit-denied, a rejected and an
//!   unprotected request;
//! * the JSON request log line.
//!
//! Istio's `istio.stats` filter, which evaluates the Telemetry expression in
//! a sidecar, is not part of this Envoy build; the expression runs here in
//! Envoy's `%CEL()%` access-log formatter, whose attribute vocabulary
//! (`filter_state`) and printing of the result are the same.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;

use meshward_e2e::istio::mesh_config_snippet;
use meshward_e2e::{call, workspace, AccessLog, Caller, EnvoyOptions, Scenario};
use serde_json::Value;

const POLICY: &str = r#"{"log":{"requests":"all"},"policies":[{"name":"shop/reviews","rules":[
  {"name":"reads","from":[{"namespaces":["shop"]}],"to":[{"methods":["GET"],"paths":["/reviews/*"]}]}]}]}"#;

/// [`POLICY`] in audit mode.
fn audit() -> String {
    POLICY.replacen(r#""rules":["#, r#""mode":"audit","rules":["#, 1)
}

/// A policy for other workloads: requests to `reviews` are unprotected.
fn unprotected() -> String {
    POLICY.replacen(r#""rules":["#, r#""selector":{"app":"ratings"},"rules":["#, 1)
}

/// One request of a scenario: who sends what, the status it must get, and
/// the `meshward_verdict` label it must get on Istio's metrics.
struct Case {
    id: &'static str,
    caller: &'static str,
    method: &'static str,
    path: &'static str,
    status: u16,
    label: &'static str,
}

/// The five kinds of request, each under the configuration that gives it.
fn cases() -> Vec<(String, Vec<Case>)> {
    let case = |id, caller, method, path, status, label| Case {
        id,
        caller,
        method,
        path,
        status,
        label,
    };
    vec![
        (
            POLICY.to_string(),
            vec![
                case("allowed", "productpage", "GET", "/reviews/1", 200, "allow"),
                case("denied", "productpage", "DELETE", "/reviews/1", 403, "deny"),
                case("rejected", "anonymous", "GET", "/reviews/%2F", 400, "reject"),
            ],
        ),
        (
            audit(),
            vec![case(
                "audit-denied",
                "productpage",
                "DELETE",
                "/reviews/1",
                200,
                "audit_deny",
            )],
        ),
        (
            unprotected(),
            vec![case("unprotected", "productpage", "DELETE", "/reviews/1", 200, "none")],
        ),
    ]
}

/// Sends `case` (with its id as `x-request-id`) and checks its status.
fn send(s: &Scenario, case: &Case) {
    let caller = match case.caller {
        "anonymous" => Caller::Anonymous,
        name => s.pki.caller(&format!("cluster.local/ns/shop/sa/{name}")),
    };
    let reply = s
        .envoy
        .send(&caller, &call(case.method, case.path).header("x-request-id", case.id));
    assert_eq!(reply.status, case.status, "{}", case.id);
}

/// The `meshward_` lines of Envoy's Prometheus output, once `n` requests
/// have been counted.
fn meshward_series(s: &Scenario, n: u64) -> BTreeSet<String> {
    s.envoy
        .eventually(|e| {
            let prom = e.admin_get("/stats/prometheus")?;
            let lines: BTreeSet<String> = prom
                .lines()
                .filter(|l| l.starts_with("meshward_"))
                .map(str::to_string)
                .collect();
            let counted: u64 = lines
                .iter()
                .filter(|l| l.starts_with("meshward_requests_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            (counted >= n).then_some(lines)
        })
        .unwrap_or_else(|| panic!("{n} requests not counted"))
}

/// The request series of one decision of `reviews` in `shop`, as Prometheus
/// shows it.
fn series(mode: &str, verdict: &str, policy: &str, rule: &str, value: u64) -> String {
    format!(
        "meshward_requests_total{{meshward_namespace=\"shop\",meshward_workload=\"reviews\",meshward_mode=\"{mode}\",\
         meshward_verdict=\"{verdict}\",meshward_policy=\"{policy}\",meshward_rule=\"{rule}\"}} {value}"
    )
}

/// The labelled series of each kind of request, with the tag extractors
/// `stats` gives Envoy. The accepted configurations vary with the worker
/// count; none is rejected, and that counter shows 0.
fn series_under(stats: fn(EnvoyOptions) -> EnvoyOptions) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (config, cases) in cases() {
        let s = Scenario::start(stats(EnvoyOptions::new(config)));
        for case in &cases {
            send(&s, case);
        }
        let lines = meshward_series(&s, cases.len() as u64);
        assert!(
            lines.iter().any(|l| l.starts_with("meshward_config_accepted_total{} ")),
            "{lines:#?}"
        );
        assert!(lines.contains("meshward_config_rejected_total{} 0"), "{lines:#?}");
        all.extend(lines.into_iter().filter(|l| !l.starts_with("meshward_config_")));
    }
    all
}

/// What both stats configurations must give for [`cases`].
fn expected_series() -> BTreeSet<String> {
    [
        series("enforce", "allow", "shop/reviews", "reads", 1),
        series("enforce", "deny", "shop/reviews", "-", 1),
        series("enforce", "reject", "shop/reviews", "-", 1),
        series("audit", "audit_deny", "shop/reviews", "-", 1),
        // No policy applies: counted as allowed, under no policy.
        series("enforce", "allow", "-", "-", 1),
    ]
    .into_iter()
    .collect()
}

/// The stats configuration a sidecar gets from the documented
/// `meshConfig.defaultConfig.extraStatTags`, rendered from Istio's own
/// bootstrap template (including its stats matcher, which must keep the
/// filter's `wasmcustom.` counters), labels every counter.
#[test]
fn istio_generated_stats_config_labels_the_counters() {
    assert_eq!(series_under(EnvoyOptions::istio_stats), expected_series());
}

/// The bootstrap form (`stats_config` in docs/observability.md, the
/// README and `istio/examples/stats-tags.yaml`) gives the same series.
#[test]
fn the_bootstrap_form_gives_the_same_series() {
    assert_eq!(series_under(EnvoyOptions::stats_tags), expected_series());
}

/// Without tag extractors the counters still appear, under one flat name
/// per combination.
#[test]
fn without_tag_extractors_the_names_are_flat() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    send(&s, &cases()[0].1[1]);
    let flat = "meshward_namespace___shop___meshward_workload___reviews___meshward_mode___enforce___\
                meshward_verdict___deny___meshward_policy___shop_reviews___meshward_rule_______meshward_requests_total{} 1";
    let found = s.envoy.eventually(|e| {
        let prom = e.admin_get("/stats/prometheus")?;
        prom.lines().any(|l| l == flat).then_some(())
    });
    assert!(
        found.is_some(),
        "{flat} missing: {:?}",
        s.envoy.admin_get("/stats/prometheus")
    );
}

/// Every document of a shipped manifest.
fn documents(path: &str) -> (String, Vec<Value>) {
    let text = std::fs::read_to_string(workspace().join(path)).unwrap();
    let docs = serde_saphyr::from_multiple(&text).unwrap();
    (text, docs)
}

/// Every tag-override expression of the shipped Telemetry (`istio/`).
fn tag_override_expressions() -> BTreeSet<String> {
    let (_, docs) = documents("istio/telemetry.yaml");
    let mut out = BTreeSet::new();
    for doc in docs.iter().filter(|d| d["kind"] == "Telemetry") {
        for metrics in doc["spec"]["metrics"].as_array().unwrap() {
            for o in metrics["overrides"].as_array().unwrap() {
                for (tag, over) in o["tagOverrides"].as_object().unwrap() {
                    assert_eq!(tag, "meshward_verdict");
                    out.insert(over["value"].as_str().unwrap().to_string());
                }
            }
        }
    }
    assert!(!out.is_empty());
    out
}

/// Every expression and format shipped for Istio, run in Envoy as istiod
/// configures them, for each kind of request:
///
/// * the `meshward_verdict` expression, printed by `%CEL()%`, gives the
///   request's label (`none` without filter state);
/// * the access-log provider's format (Istio's default fields plus the
///   verdict, policy and rule) writes them (`-` without filter state);
/// * the access-log filter expression logs exactly the denials and the
///   audit denials.
#[test]
fn every_shipped_expression_prints_the_expected_label() {
    let labels = tag_override_expressions();
    let (text, docs) = documents("istio/examples/telemetry.yaml");
    let provider = mesh_config_snippet(&text)["meshConfig"]["extensionProviders"][0]["envoyFileAccessLog"].clone();
    let provider_format = provider["logFormat"]["text"].as_str().unwrap().to_string();
    let filters: Vec<String> = docs
        .iter()
        .flat_map(|d| d["spec"]["accessLogging"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["filter"]["expression"].as_str().map(str::to_string))
        .collect();
    assert_eq!(filters.len(), 1, "one filter expression is shipped");
    // One `%CEL()%` field per distinct expression, after the request id.
    let cel_format = std::iter::once("%REQ(X-REQUEST-ID)%".to_string())
        .chain(labels.iter().map(|e| format!("%CEL({e})%")))
        .collect::<Vec<_>>()
        .join(" ")
        + "\n";

    let mut denials_seen = Vec::new();
    for (config, cases) in cases() {
        let opts = EnvoyOptions::new(config)
            .access_log(AccessLog {
                file: "cel.log".into(),
                format: cel_format.clone(),
                filter: None,
            })
            .access_log(AccessLog {
                file: "provider.log".into(),
                format: provider_format.clone(),
                filter: None,
            })
            .access_log(AccessLog {
                file: "denials.log".into(),
                format: "%REQ(X-REQUEST-ID)%\n".into(),
                filter: Some(filters[0].clone()),
            });
        let s = Scenario::start(opts);
        for case in &cases {
            send(&s, case);
        }
        let line = |file: &str, id: &str| {
            s.envoy
                .eventually(|e| {
                    e.access_log_named(file)
                        .into_iter()
                        .find(|l| l.contains(&format!("\"{id}\"")) || l.starts_with(&format!("{id} ")))
                })
                .unwrap_or_else(|| panic!("{file}: no line for {id}: {:?}", s.envoy.access_log_named(file)))
        };
        for case in &cases {
            // Every expression gives the label.
            let cel = line("cel.log", case.id);
            let values: Vec<&str> = cel.split(' ').skip(1).collect();
            assert_eq!(values, vec![case.label; labels.len()], "{}: {cel}", case.id);
            // Istio's default fields, then verdict, policy and rule.
            let logged = line("provider.log", case.id);
            assert!(logged.starts_with('['), "{logged}");
            assert!(
                logged.contains(&format!("\"{} {} HTTP/", case.method, case.path)),
                "{logged}"
            );
            assert!(logged.contains(&format!("\" {} ", case.status)), "{logged}");
            let (verdict, policy, rule) = match case.label {
                "none" => ("-", "-", "-"),
                "allow" => ("allow", "shop/reviews", "reads"),
                verdict => (verdict, "shop/reviews", "-"),
            };
            assert!(
                logged.ends_with(&format!(" verdict={verdict} policy={policy} rule={rule}")),
                "{logged}"
            );
        }
        // The filtered log has the denials; every request is in the other
        // logs already, written in the same pass, so any other would be too.
        let denials = cases.iter().filter(|c| c.label.ends_with("deny")).count();
        let logged = s
            .envoy
            .eventually(|e| Some(e.access_log_named("denials.log")).filter(|l| l.len() >= denials))
            .unwrap();
        denials_seen.extend(logged);
    }
    assert_eq!(denials_seen, ["denied", "audit-denied"]);
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
