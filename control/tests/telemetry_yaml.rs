//! The telemetry shipped for Istio users, checked offline against what the
//! filter emits.
//!
//! * `istio/telemetry.yaml` validates against Istio's Telemetry CRD schema
//!   (vendored in `tests/data/`), adds exactly one bounded label, the
//!   filter's `meshward_verdict`, to the server side of `istio_requests_total`
//!   and `istio_request_duration_milliseconds`, and reads the filter-state key
//!   the filter writes.
//! * The access-log provider of `istio/examples/telemetry.yaml` is Istio's
//!   default format plus the three filter-state fields the filter writes.
//! * The `extraStatTags` and `stats_tags` the docs show are the filter's
//!   labels, with the regexes Istio generates for them.
//! * Every query of the Grafana dashboard (`istio/grafana/meshward.json`) and
//!   every alert expression (`istio/examples/prometheusrule.yaml`) parses as
//!   PromQL (`promql-parser`, which follows Prometheus 3.8's grammar), and
//!   reads only metrics the filter or the control service emits or Istio's
//!   standard metrics, with labels those metrics carry; the dashboard covers
//!   the verdicts by namespace, workload, policy, rule and mode, audit
//!   denials, rejections and Istio's metrics by `meshward_verdict`.
//!
//! What the expressions evaluate to is tested in a real Envoy
//! (`tests/e2e/tests/telemetry.rs`); the queries are not run in a Prometheus.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{crd_schema, validate};
use meshward_control::serve::metrics::{Gauges, Metrics};
use meshward_e2e::istio::{mesh_config_snippet, yaml_block};
use meshward_filter::plugin::{
    METRIC_CONFIG_ACCEPTED, METRIC_CONFIG_REJECTED, METRIC_REQUESTS, REQUEST_TAGS, STATE_POLICY, STATE_RULE,
    STATE_VERDICT, TAG_MODE, TAG_NAMESPACE, TAG_POLICY, TAG_RULE, TAG_VERDICT, TAG_WORKLOAD,
};
use promql_parser::label::MatchOp;
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::Value;

const TELEMETRY_CRD: &str = include_str!("data/istio-telemetry-crd.yaml");

/// Istio's default access-log text format: `EnvoyTextLogFormat` in istio/istio
/// pilot/pkg/model/telemetry_logging.go at 86c9f01fd735 (Apache-2.0).
const ISTIO_DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% \
    %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \
    \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \
    \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% \
    %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% \
    %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/// Istio's standard labels (istio/proxy istio_stats.cc, `all_tags_`).
const ISTIO_LABELS: &[&str] = &[
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
];

/// Istio's standard metrics by their Telemetry name, as Prometheus shows
/// them (istio_stats.cc `all_metrics_`; histograms get `_bucket`, `_sum`,
/// `_count`).
const ISTIO_METRICS: &[(&str, &str, bool)] = &[
    ("REQUEST_COUNT", "istio_requests_total", false),
    ("REQUEST_DURATION", "istio_request_duration_milliseconds", true),
    ("REQUEST_SIZE", "istio_request_bytes", true),
    ("RESPONSE_SIZE", "istio_response_bytes", true),
    ("GRPC_REQUEST_MESSAGES", "istio_request_messages_total", false),
    ("GRPC_RESPONSE_MESSAGES", "istio_response_messages_total", false),
    ("TCP_OPENED_CONNECTIONS", "istio_tcp_connections_opened_total", false),
    ("TCP_CLOSED_CONNECTIONS", "istio_tcp_connections_closed_total", false),
    ("TCP_SENT_BYTES", "istio_tcp_sent_bytes_total", false),
    ("TCP_RECEIVED_BYTES", "istio_tcp_received_bytes_total", false),
];

/// Labels every scraped series gets: Prometheus's own, and the target
/// labels Istio's sample scrape configuration (and a PodMonitor) adds.
const SCRAPE_LABELS: &[&str] = &["job", "instance", "namespace", "pod"];

/// The values of the `meshward_verdict` label: the filter's verdicts, and
/// the Telemetry expression's `none` and Istio's `unknown`.
const VERDICT_VALUES: &[&str] = &["allow", "deny", "audit_deny", "reject", "none", "unknown"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_documents(path: &str) -> Vec<Value> {
    common::yaml_docs(&read(path))
}

/// The `meshward_verdict` expression of the Telemetry, for the filter's
/// verdict key.
fn verdict_expression() -> String {
    let key = format!("wasm.{STATE_VERDICT}");
    format!("'{key}' in filter_state ? filter_state['{key}'] : 'none'")
}

/// The Telemetry kinds of standard metrics each label is added to, from the
/// shipped `istio/telemetry.yaml`: label → metric names (`REQUEST_COUNT`).
fn telemetry_labels() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for doc in yaml_documents("istio/telemetry.yaml") {
        for metrics in doc["spec"]["metrics"].as_array().into_iter().flatten() {
            for o in metrics["overrides"].as_array().into_iter().flatten() {
                for tag in o["tagOverrides"].as_object().into_iter().flatten().map(|(t, _)| t) {
                    let metric = o["match"]["metric"].as_str().unwrap_or("ALL_METRICS");
                    out.entry(tag.clone()).or_default().insert(metric.to_string());
                }
            }
        }
    }
    out
}

#[test]
fn the_verdict_telemetry_adds_one_bounded_label_to_the_server_side() {
    let schema = crd_schema(TELEMETRY_CRD, "v1");
    let docs = yaml_documents("istio/telemetry.yaml");
    assert_eq!(docs.len(), 1);
    let t = &docs[0];
    assert_eq!(
        (t["apiVersion"].as_str(), t["kind"].as_str()),
        (Some("telemetry.istio.io/v1"), Some("Telemetry"))
    );
    validate(&schema["properties"]["spec"], &t["spec"], "spec").unwrap();
    assert_eq!(
        t["metadata"]["namespace"], "istio-system",
        "the root namespace: the whole mesh"
    );
    assert!(t["spec"].get("selector").is_none() && t["spec"].get("targetRefs").is_none());

    let mut matched = BTreeSet::new();
    for metrics in t["spec"]["metrics"].as_array().unwrap() {
        for o in metrics["overrides"].as_array().unwrap() {
            assert_eq!(o["match"]["mode"], "SERVER", "the filter runs on the inbound side");
            matched.insert(o["match"]["metric"].as_str().unwrap().to_string());
            let tags = o["tagOverrides"].as_object().unwrap();
            // Policy and rule names would multiply the standard series.
            assert_eq!(tags.keys().collect::<Vec<_>>(), [TAG_VERDICT], "{o}");
            let over = &tags[TAG_VERDICT];
            // The CRD's CEL rules (not evaluated by `validate`): UPSERT needs
            // a value.
            assert_eq!(over["operation"], "UPSERT");
            assert_eq!(over["value"].as_str(), Some(verdict_expression().as_str()));
        }
    }
    assert_eq!(
        matched,
        BTreeSet::from(["REQUEST_COUNT".to_string(), "REQUEST_DURATION".to_string()])
    );
    // The check can fail: a misspelled metric is refused by the schema.
    let mut bad = t["spec"].clone();
    bad["metrics"][0]["overrides"][0]["match"]["metric"] = "REQUESTS_COUNT".into();
    assert!(validate(&schema["properties"]["spec"], &bad, "spec").is_err());
}

#[test]
fn the_access_log_is_istios_default_format_plus_the_filter_state() {
    let snippet: Value = serde_json::to_value(mesh_config_snippet(&read("istio/examples/telemetry.yaml"))).unwrap();
    let providers = snippet["meshConfig"]["extensionProviders"].as_array().unwrap();
    assert_eq!(providers.len(), 1);
    let format = providers[0]["envoyFileAccessLog"]["logFormat"]["text"]
        .as_str()
        .unwrap();
    let fields = [
        ("verdict", STATE_VERDICT),
        ("policy", STATE_POLICY),
        ("rule", STATE_RULE),
    ]
    .map(|(name, key)| format!(" {name}=%FILTER_STATE(wasm.{key}:PLAIN)%"))
    .concat();
    assert_eq!(
        format,
        format!("{}{fields}\n", ISTIO_DEFAULT_FORMAT.trim_end_matches('\n'))
    );

    let filters: Vec<String> = yaml_documents("istio/examples/telemetry.yaml")
        .iter()
        .flat_map(|d| d["spec"]["accessLogging"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["filter"]["expression"].as_str().map(str::to_string))
        .collect();
    let key = format!("filter_state['wasm.{STATE_VERDICT}']");
    assert_eq!(
        filters,
        [format!(
            "'wasm.{STATE_VERDICT}' in filter_state && {key} in [b'deny', b'audit_deny']"
        )]
    );
}

#[test]
fn the_documented_tags_are_the_filters_with_istios_regexes() {
    let tags: Vec<String> = REQUEST_TAGS.iter().map(|t| t.to_string()).collect();
    for file in ["docs/observability.md", "README.md"] {
        let mesh = yaml_block(file, "meshConfig:");
        let listed: Vec<String> =
            serde_json::from_value(mesh["meshConfig"]["defaultConfig"]["extraStatTags"].clone()).unwrap();
        assert_eq!(listed, tags, "{file}: extraStatTags");
        // The bootstrap form: what istio-agent generates from that list
        // (tools/packaging/common/envoy_bootstrap.json).
        let bootstrap = yaml_block(file, "stats_config:");
        let documented: Vec<BTreeMap<String, String>> =
            serde_json::from_value(bootstrap["stats_config"]["stats_tags"].clone()).unwrap();
        let generated: Vec<BTreeMap<String, String>> = REQUEST_TAGS
            .iter()
            .map(|t| {
                BTreeMap::from([
                    ("tag_name".to_string(), t.to_string()),
                    ("regex".to_string(), format!(r"({t}=\.=(.*?);\.;)")),
                ])
            })
            .collect();
        assert_eq!(documented, generated, "{file}: stats_tags");
    }
}

/// What a metric may be read with: its labels.
struct Family {
    labels: BTreeSet<String>,
    /// Whether its labels are known (the control service's counters with
    /// labels only after events are checked by name).
    checked: bool,
}

/// Every metric a query may read: the filter's, Istio's standard metrics
/// (with the labels the shipped Telemetry adds), the control service's.
fn known_metrics() -> BTreeMap<String, Family> {
    let set =
        |labels: &[&str]| -> BTreeSet<String> { labels.iter().chain(SCRAPE_LABELS).map(|l| l.to_string()).collect() };
    let mut out = BTreeMap::new();
    out.insert(
        METRIC_REQUESTS.to_string(),
        Family {
            labels: set(&REQUEST_TAGS),
            checked: true,
        },
    );
    for m in [METRIC_CONFIG_ACCEPTED, METRIC_CONFIG_REJECTED] {
        out.insert(
            m.to_string(),
            Family {
                labels: set(&[]),
                checked: true,
            },
        );
    }
    let added = telemetry_labels();
    for (kind, name, histogram) in ISTIO_METRICS {
        let mut labels = set(ISTIO_LABELS);
        for (tag, kinds) in &added {
            if kinds.contains(*kind) || kinds.contains("ALL_METRICS") {
                labels.insert(tag.clone());
            }
        }
        if *histogram {
            for (suffix, le) in [("_bucket", true), ("_sum", false), ("_count", false)] {
                let mut labels = labels.clone();
                if le {
                    labels.insert("le".into());
                }
                out.insert(format!("{name}{suffix}"), Family { labels, checked: true });
            }
        } else {
            out.insert(name.to_string(), Family { labels, checked: true });
        }
    }
    // The control service's /metrics, as it renders them at start.
    let text = Metrics::default().render(Gauges::default());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let names: Vec<String> = if kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect()
            } else {
                vec![name.to_string()]
            };
            for n in names {
                let le: &[&str] = if n.ends_with("_bucket") { &["le"] } else { &[] };
                out.insert(
                    n,
                    Family {
                        labels: set(le),
                        checked: false,
                    },
                );
            }
        } else if let Some((name, labels)) = line.split_once('{') {
            let family = out
                .get_mut(name)
                .unwrap_or_else(|| panic!("{name} rendered before its TYPE"));
            family.checked = true;
            for pair in labels.split_once('}').unwrap().0.split(',') {
                family.labels.insert(pair.split_once('=').unwrap().0.to_string());
            }
        }
    }
    out
}

/// What one query reads.
#[derive(Debug, Default)]
struct Reads {
    metrics: BTreeSet<String>,
    /// Labels aggregations group by.
    grouped: BTreeSet<String>,
    /// `label="value"` matchers, by metric.
    equals: BTreeSet<(String, String, String)>,
}

fn selector_name(vs: &VectorSelector) -> Option<String> {
    vs.name.clone().or_else(|| {
        vs.matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.clone())
    })
}

/// The selectors under `expr`.
fn selectors(expr: &Expr) -> Vec<&VectorSelector> {
    let children: Vec<&Expr> = match expr {
        Expr::Aggregate(a) => [Some(&*a.expr), a.param.as_deref()].into_iter().flatten().collect(),
        Expr::Unary(u) => vec![&*u.expr],
        Expr::Binary(b) => vec![&*b.lhs, &*b.rhs],
        Expr::Paren(p) => vec![&*p.expr],
        Expr::Subquery(s) => vec![&*s.expr],
        Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
        Expr::VectorSelector(vs) => return vec![vs],
        Expr::MatrixSelector(ms) => return vec![&ms.vs],
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => vec![],
    };
    children.into_iter().flat_map(selectors).collect()
}

/// The labels a grouping or matching clause under `expr` may name: those
/// of the metrics it reads.
fn available(expr: &Expr, known: &BTreeMap<String, Family>) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for vs in selectors(expr) {
        let family = known.get(&selector_name(vs)?)?;
        if !family.checked {
            return None;
        }
        out.extend(family.labels.iter().cloned());
    }
    Some(out)
}

fn check_expr(expr: &Expr, known: &BTreeMap<String, Family>, reads: &mut Reads) -> Result<(), String> {
    let check_labels = |labels: &[String], under: &Expr, what: &str| -> Result<(), String> {
        if let Some(avail) = available(under, known) {
            if let Some(l) = labels.iter().find(|l| !avail.contains(*l)) {
                return Err(format!("{what} ({l}): no metric read there has the label {l}"));
            }
        }
        Ok(())
    };
    match expr {
        Expr::Aggregate(a) => {
            if let Some(m) = &a.modifier {
                let labels = &m.labels().labels;
                check_labels(labels, &a.expr, "by/without")?;
                if let LabelModifier::Include(l) = m {
                    reads.grouped.extend(l.labels.iter().cloned());
                }
            }
            check_expr(&a.expr, known, reads)?;
            if let Some(p) = &a.param {
                check_expr(p, known, reads)?;
            }
        }
        Expr::Binary(b) => {
            if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                check_labels(&m.labels().labels, &b.lhs, "on/ignoring")?;
                check_labels(&m.labels().labels, &b.rhs, "on/ignoring")?;
            }
            check_expr(&b.lhs, known, reads)?;
            check_expr(&b.rhs, known, reads)?;
        }
        Expr::Unary(u) => check_expr(&u.expr, known, reads)?,
        Expr::Paren(p) => check_expr(&p.expr, known, reads)?,
        Expr::Subquery(s) => check_expr(&s.expr, known, reads)?,
        Expr::Call(c) => {
            for a in &c.args.args {
                check_expr(a, known, reads)?;
            }
        }
        Expr::VectorSelector(vs) => check_selector(vs, known, reads)?,
        Expr::MatrixSelector(ms) => check_selector(&ms.vs, known, reads)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => return Err("extension expression".into()),
    }
    Ok(())
}

fn check_selector(vs: &VectorSelector, known: &BTreeMap<String, Family>, reads: &mut Reads) -> Result<(), String> {
    let name = selector_name(vs).ok_or("a selector without a metric name")?;
    let family = known.get(&name).ok_or(format!(
        "{name}: not a metric the filter, the control service or Istio emits"
    ))?;
    for m in vs.matchers.matchers.iter().filter(|m| m.name != "__name__") {
        if family.checked && !family.labels.contains(&m.name) {
            return Err(format!("{name}: no label {}", m.name));
        }
        if matches!(m.op, MatchOp::Equal) {
            let allowed: Option<&[&str]> = match m.name.as_str() {
                TAG_VERDICT => Some(VERDICT_VALUES),
                TAG_MODE => Some(&["enforce", "audit"]),
                _ => None,
            };
            if allowed.is_some_and(|a| !a.contains(&m.value.as_str())) {
                return Err(format!("{name}: {}=\"{}\" is never emitted", m.name, m.value));
            }
            reads.equals.insert((name.clone(), m.name.clone(), m.value.clone()));
        }
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(format!("{name}: `or` matchers"));
    }
    reads.metrics.insert(name);
    Ok(())
}

/// Parses `query` and checks what it reads.
fn check_query(query: &str, known: &BTreeMap<String, Family>) -> Result<Reads, String> {
    let expr = parser::parse(query).map_err(|e| format!("does not parse: {e}"))?;
    let mut reads = Reads::default();
    check_expr(&expr, known, &mut reads)?;
    Ok(reads)
}

/// Grafana's variables as Grafana fills them in before sending a query:
/// its interval and range variables get durations, the dashboard's own
/// (regex matchers with "All" = `.*`) the regex `.*`. An undeclared variable
/// is an error.
fn substitute(query: &str, declared: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = query;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or("unclosed ${")?;
                (&braced[..end], end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        let value = match name {
            "__rate_interval" | "__interval" => "5m",
            "__range" => "1h",
            n if declared.contains(n) => ".*",
            n => return Err(format!("undeclared variable ${n}")),
        };
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every query of a dashboard: panel targets (rows included) and template
/// variable queries (`label_values(selector, label)`: the selector is a
/// query, the label must be one of its metric's).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((
                        format!("panel {:?}", p["title"].as_str().unwrap_or("")),
                        expr.to_string(),
                    ));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or_default();
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

/// Checks every query of `dashboard`; the reads of each.
fn check_dashboard(dashboard: &Value, known: &BTreeMap<String, Family>) -> Result<Vec<Reads>, String> {
    let declared: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let mut all = Vec::new();
    for (at, query) in dashboard_queries(dashboard) {
        let fail = |e: String| format!("{at}: {query}: {e}");
        let query = substitute(&query, &declared).map_err(fail)?;
        let reads = match query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')) {
            Some(args) => {
                let (selector, label) = args
                    .rsplit_once(',')
                    .ok_or_else(|| fail("label_values(selector, label)".into()))?;
                let reads = check_query(selector.trim(), known).map_err(fail)?;
                let label = label.trim();
                for m in &reads.metrics {
                    if !known[m].labels.contains(label) {
                        return Err(fail(format!("{m} has no label {label}")));
                    }
                }
                reads
            }
            None => check_query(&query, known).map_err(fail)?,
        };
        if reads.metrics.is_empty() {
            return Err(fail("reads no metric".into()));
        }
        all.push(reads);
    }
    Ok(all)
}

#[test]
fn the_dashboard_queries_parse_and_read_what_is_emitted() {
    let known = known_metrics();
    let dashboard: Value = serde_json::from_str(&read("istio/grafana/meshward.json")).unwrap();
    let reads = check_dashboard(&dashboard, &known).unwrap_or_else(|e| panic!("{e}"));
    assert!(reads.len() >= 15, "{} queries", reads.len());

    // What the dashboard is for: verdicts by namespace, workload, policy,
    // rule and mode; audit denials and rejections; Istio's request metric
    // by the verdict label.
    let grouped_requests: BTreeSet<&String> = reads
        .iter()
        .filter(|r| r.metrics.contains(METRIC_REQUESTS))
        .flat_map(|r| &r.grouped)
        .collect();
    for label in [TAG_NAMESPACE, TAG_WORKLOAD, TAG_POLICY, TAG_RULE, TAG_MODE, TAG_VERDICT] {
        assert!(grouped_requests.contains(&label.to_string()), "no panel by {label}");
    }
    for verdict in ["audit_deny", "reject", "deny"] {
        let key = (
            METRIC_REQUESTS.to_string(),
            TAG_VERDICT.to_string(),
            verdict.to_string(),
        );
        assert!(reads.iter().any(|r| r.equals.contains(&key)), "no {verdict} panel");
    }
    assert!(
        reads
            .iter()
            .any(|r| r.metrics.contains("istio_requests_total") && r.grouped.contains(TAG_VERDICT)),
        "no panel of istio_requests_total by {TAG_VERDICT}"
    );
    assert!(reads.iter().any(|r| r.metrics.contains(METRIC_CONFIG_REJECTED)));
}

#[test]
fn the_alert_rules_parse_and_read_what_is_emitted() {
    let known = known_metrics();
    let mut checked = 0;
    for doc in yaml_documents("istio/examples/prometheusrule.yaml") {
        for group in doc["spec"]["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                let expr = rule["expr"].as_str().unwrap();
                check_query(expr, &known).unwrap_or_else(|e| panic!("{}: {expr}: {e}", rule["alert"]));
                checked += 1;
            }
        }
    }
    assert!(checked >= 5);
}

/// The checks can fail: each of these mistakes is caught.
#[test]
fn the_query_checks_refuse_what_they_should() {
    let known = known_metrics();
    let declared = BTreeSet::from(["namespace".to_string()]);
    for (query, want) in [
        ("sum(rate(meshward_requests[5m]))", "not a metric"),
        (
            "sum by (meshward_verdit) (rate(meshward_requests_total[5m]))",
            "meshward_verdit",
        ),
        (
            r#"rate(meshward_requests_total{meshward_verdict="audit-deny"}[5m])"#,
            "never emitted",
        ),
        (
            r#"rate(meshward_requests_total{verdict="deny"}[5m])"#,
            "no label verdict",
        ),
        // The verdict label is on the metrics the Telemetry names only.
        (
            r#"rate(istio_request_bytes_count{meshward_verdict="deny"}[5m])"#,
            "no label meshward_verdict",
        ),
        ("sum(rate(meshward_requests_total[5m])", "does not parse"),
        (
            r#"rate(meshward_config_rejected_total{meshward_policy="p"}[5m])"#,
            "no label meshward_policy",
        ),
    ] {
        let e = check_query(query, &known)
            .err()
            .unwrap_or_else(|| panic!("accepted {query}"));
        assert!(e.contains(want), "{query}: {e}");
    }
    assert!(check_query("meshward_control_ready == 0", &known).is_ok());
    assert_eq!(
        substitute(r#"rate(x{a=~"$namespace"}[$__rate_interval])"#, &declared).unwrap(),
        r#"rate(x{a=~".*"}[5m])"#
    );
    assert!(substitute("rate(x[$window])", &declared).is_err());
    // A variable used as a duration does not parse once filled in.
    let dashboard = serde_json::json!({"templating": {"list": [{"name": "w", "type": "custom"}]},
        "panels": [{"title": "p", "targets": [{"expr": "rate(meshward_requests_total[$w])"}]}]});
    assert!(check_dashboard(&dashboard, &known).is_err());
}
