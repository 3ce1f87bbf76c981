//! Envoy bootstraps for every variant.
//!
//! Owned by the configuration half of the harness. Interface (keep it):
//! every bootstrap is JSON text with one plaintext HTTP listener on
//! `ports.listener`, an admin on `ports.admin`, a cluster `upstream` to
//! `127.0.0.1:ports.upstream`, and the variant's HTTP filter delivered
//! through a file-based ECDS source (`<dir>/filter.json`, watched directory
//! `<dir>`) so a configuration change is an atomic rename of that file, for
//! every variant that has a filter; then the router.
//!
//! How each variant enforces [`rules`](crate::rules::rules):
//!
//! * [`Variant::Rbac`]: the form istiod generates from one ALLOW
//!   AuthorizationPolicy with one rule per allowlist entry: one RBAC policy
//!   per rule, named `ns[bench]-policy[allowlist]-rule[NNNNNN]` (zero-padded
//!   so that Envoy, which evaluates policies in name order, evaluates them in
//!   rule order), whose permission is `and_rules` of [`or_rules` of `:method`
//!   exact header matches, `or_rules` of one `url_path` matcher], principals
//!   `and_ids [any]`. Exact paths become `exact`, prefixes `prefix`,
//!   templates and regexes `safe_regex` (a `{*}` is `[^/]+`).
//! * [`Variant::RbacMatcher`]: RBAC's `matcher` tree, method first: an
//!   `exact_match_map` on `:method` leads, per method, to an
//!   `exact_match_map` on `:path` of the exact paths allowed with that
//!   method; its `on_no_match` is a `prefix_match_map` of the prefixes; its
//!   `on_no_match` a sequential `matcher_list` of the templates and regexes;
//!   its `on_no_match`, and that of the method map, DENY. Every leaf is an
//!   action, so the tree never depends on how a failed nested matcher falls
//!   back. `:path` carries the query string: exact and regex entries do not
//!   match a request with a query (the bench sends none).
//! * [`Variant::NoopWasm`]: the no-op module, root id `noop`.
//! * [`Variant::Meshward`]: one policy with the rules (methods and paths
//!   only, any caller), mode enforce, request log off.
//! * [`Variant::ExtAuthz`]: `http_service` to cluster `authz`
//!   (`127.0.0.1:ports.authz`), timeout 1 s, failing closed. The rules are
//!   the authorizer's business; the trivial one allows everything.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::rules::{PathPattern, Rule};

/// What enforces the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// (a) Only the router.
    Router,
    /// (b) RBAC, N policies as Istio generates them.
    Rbac,
    /// (b2) RBAC's matcher tree.
    RbacMatcher,
    /// (c) A no-op proxy-wasm filter.
    NoopWasm,
    /// (d) meshward.
    Meshward,
    /// (e) ext_authz to a trivial authorizer on `ports.authz`.
    ExtAuthz,
}

/// Ports of one run.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The listener under load.
    pub listener: u16,
    /// Envoy's admin.
    pub admin: u16,
    /// The upstream (answers 200).
    pub upstream: u16,
    /// The ext_authz authorizer (answers 200), for [`Variant::ExtAuthz`].
    pub authz: u16,
}

/// Files the bootstraps refer to.
#[derive(Debug, Clone)]
pub struct Files {
    /// The directory of the ECDS file `filter.json`.
    pub dir: PathBuf,
    /// meshward's module (`meshward_filter.wasm`).
    pub meshward_wasm: PathBuf,
    /// The no-op module.
    pub noop_wasm: PathBuf,
}

/// The bootstrap of `variant` enforcing `rules`; writes `files.dir/filter.json`
/// (the ECDS resource) for variants with a filter.
///
/// A failure to write `filter.json` is reported on stderr (Envoy then fails
/// to start, naming the missing file).
pub fn bootstrap(variant: Variant, rules: &[Rule], ports: &Ports, files: &Files) -> String {
    let mut http_filters = Vec::new();
    if let Some(filter) = filter(variant, rules, ports, files) {
        write_ecds(&files.dir, &filter);
        http_filters.push(json!({
            "name": filter.name,
            "config_discovery": {
                "config_source": {"path_config_source": {
                    "path": path_str(&files.dir.join(ECDS_FILE)),
                    "watched_directory": {"path": path_str(&files.dir)}}},
                "type_urls": [filter.type_url]}
        }));
    }
    http_filters.push(router());
    let mut clusters = vec![cluster("upstream", ports.upstream)];
    if variant == Variant::ExtAuthz {
        clusters.push(cluster("authz", ports.authz));
    }
    json!({
        "node": {"id": "sidecar~127.0.0.1~bench.bench~bench.svc.cluster.local", "cluster": "bench.bench",
                 "metadata": {"NAMESPACE": "bench", "WORKLOAD_NAME": "bench", "LABELS": {"app": "bench"}}},
        "admin": {"address": address(ports.admin)},
        "static_resources": {
            "listeners": [listener("bench", ports.listener, json!({
                "virtual_hosts": [{"name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]
            }), http_filters)],
            "clusters": clusters,
        }
    })
    .to_string()
}

/// Replaces the ECDS resource of `variant` in `dir` with one enforcing
/// `rules` (write to a temporary file, then rename).
///
/// Does nothing for [`Variant::Router`] (no filter). The port of the
/// ext_authz cluster is not part of the filter, so it is not needed here.
pub fn update_filter(variant: Variant, rules: &[Rule], files: &Files) {
    let ports = Ports {
        listener: 0,
        admin: 0,
        upstream: 0,
        authz: 0,
    };
    if let Some(filter) = filter(variant, rules, &ports, files) {
        // The configuration the Envoy started with stays next to it, for
        // `--keep` users (scripts/envoy-instructions.sh starts from it).
        let initial = files.dir.join(INITIAL_ECDS_FILE);
        if !initial.exists() {
            if let Err(e) = std::fs::copy(files.dir.join(ECDS_FILE), &initial) {
                eprintln!("meshward-bench: cannot keep {}: {e}", initial.display());
            }
        }
        write_ecds(&files.dir, &filter);
    }
}

/// A bootstrap for a second Envoy that answers every request with 200 on
/// `port` (the upstream, and the trivial ext_authz authorizer).
pub fn responder_bootstrap(port: u16, admin: u16) -> String {
    json!({
        "admin": {"address": address(admin)},
        "static_resources": {
            "listeners": [listener("responder", port, json!({
                "virtual_hosts": [{"name": "all", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]
            }), vec![router()])],
        }
    })
    .to_string()
}

/// The directory a path lives in (helper for callers).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

/// The ECDS file in [`Files::dir`].
const ECDS_FILE: &str = "filter.json";
/// A copy of the first `filter.json`, made before [`update_filter`] replaces it.
const INITIAL_ECDS_FILE: &str = "filter-initial.json";

/// One HTTP filter's configuration, as ECDS delivers it.
struct Filter {
    /// The filter's name (the ECDS resource name).
    name: &'static str,
    /// The type of `config`.
    type_url: &'static str,
    /// The typed config, `@type` included.
    config: Value,
}

fn filter(variant: Variant, rules: &[Rule], ports: &Ports, files: &Files) -> Option<Filter> {
    const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
    const WASM: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
    const EXT_AUTHZ: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
    let (name, type_url, mut config) = match variant {
        Variant::Router => return None,
        Variant::Rbac => ("rbac", RBAC, json!({"rules": rbac_policies(rules)})),
        Variant::RbacMatcher => ("rbac", RBAC, json!({"matcher": rbac_matcher(rules)})),
        Variant::NoopWasm => ("noop", WASM, wasm("noop", &files.noop_wasm, None)),
        Variant::Meshward => (
            "meshward",
            WASM,
            wasm("meshward", &files.meshward_wasm, Some(meshward_config(rules))),
        ),
        Variant::ExtAuthz => (
            "ext_authz",
            EXT_AUTHZ,
            json!({
                "http_service": {"server_uri": {
                    "uri": format!("http://127.0.0.1:{}", ports.authz), "cluster": "authz", "timeout": "1s"}},
                "failure_mode_allow": false,
            }),
        ),
    };
    if let Some(object) = config.as_object_mut() {
        object.insert("@type".into(), type_url.into());
    }
    Some(Filter { name, type_url, config })
}

/// The proxy-wasm filter config for `module` with root id and VM id `name`.
fn wasm(name: &str, module: &Path, configuration: Option<String>) -> Value {
    let mut config = json!({
        "name": name, "root_id": name, "fail_open": false,
        "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": path_str(module)}}}
    });
    if let (Some(configuration), Some(object)) = (configuration, config.as_object_mut()) {
        object.insert(
            "configuration".into(),
            json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration}),
        );
    }
    json!({ "config": config })
}

/// meshward's plugin configuration (v1alpha1): one policy for any caller.
pub(crate) fn meshward_config(rules: &[Rule]) -> String {
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let path = match &rule.path {
                PathPattern::Exact(p) | PathPattern::Template(p) => p.clone(),
                PathPattern::Prefix(p) => format!("{p}*"),
                PathPattern::Regex(r) => format!("regex:{r}"),
            };
            json!({"to": [{"methods": rule.methods, "paths": [path]}]})
        })
        .collect();
    json!({
        "mode": "enforce",
        // No log line and only the verdict in filter state: like the native
        // filters, no per-request output beyond the decision itself.
        "log": {"requests": "off", "filterState": "verdict"},
        "policies": [{"name": "bench/allowlist", "rules": rules}],
    })
    .to_string()
}

/// The RBAC name of rule `i` (zero-padded: Envoy evaluates policies in name
/// order).
fn policy_name(i: usize) -> String {
    format!("ns[bench]-policy[allowlist]-rule[{i:06}]")
}

/// `envoy.config.rbac.v3.RBAC` as Istio generates it: one policy per rule.
pub(crate) fn rbac_policies(rules: &[Rule]) -> Value {
    let policies: serde_json::Map<String, Value> = rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let methods: Vec<Value> = rule
                .methods
                .iter()
                .map(|m| json!({"header": {"name": ":method", "string_match": {"exact": m}}}))
                .collect();
            let path = match &rule.path {
                PathPattern::Exact(p) => json!({"exact": p}),
                PathPattern::Prefix(p) => json!({"prefix": p}),
                PathPattern::Template(_) | PathPattern::Regex(_) => {
                    json!({"safe_regex": {"regex": path_regex(&rule.path)}})
                }
            };
            let policy = json!({
                "permissions": [{"and_rules": {"rules": [
                    {"or_rules": {"rules": methods}},
                    {"or_rules": {"rules": [{"url_path": {"path": path}}]}},
                ]}}],
                "principals": [{"and_ids": {"ids": [{"any": true}]}}],
            });
            (policy_name(i), policy)
        })
        .collect();
    json!({"action": "ALLOW", "policies": policies})
}

/// The RE2 expression for a template or regex path (whole-path match).
pub(crate) fn path_regex(path: &PathPattern) -> String {
    match path {
        PathPattern::Template(t) => t.split("{*}").map(regex_escape).collect::<Vec<_>>().join("[^/]+"),
        PathPattern::Regex(r) => r.clone(),
        PathPattern::Exact(p) => regex_escape(p),
        PathPattern::Prefix(p) => format!("{}.*", regex_escape(p)),
    }
}

fn regex_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An `on_match` that ends in an RBAC action.
fn rbac_action(name: &str, action: &str) -> Value {
    json!({"action": {"name": "envoy.filters.rbac.action", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.rbac.v3.Action", "name": name, "action": action}}})
}

fn header_input(header: &str) -> Value {
    json!({"name": "envoy.matching.inputs.request_headers", "typed_config": {
        "@type": "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput", "header_name": header}})
}

/// The entries of one method's subtree, in rule order.
#[derive(Default)]
struct MethodRules {
    exact: serde_json::Map<String, Value>,
    prefix: serde_json::Map<String, Value>,
    regex: Vec<Value>,
}

/// The `matcher` of `envoy.extensions.filters.http.rbac.v3.RBAC` (see the
/// module docs): method map → exact path map → prefix path map → regex list
/// → DENY. An entry already taken by an earlier rule keeps that rule's name.
pub(crate) fn rbac_matcher(rules: &[Rule]) -> Value {
    let deny = || rbac_action("deny", "DENY");
    let mut by_method: std::collections::BTreeMap<&str, MethodRules> = std::collections::BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let allow = rbac_action(&policy_name(i), "ALLOW");
        for method in &rule.methods {
            let entry = by_method.entry(method.as_str()).or_default();
            match &rule.path {
                PathPattern::Exact(p) => {
                    entry.exact.entry(p.clone()).or_insert_with(|| allow.clone());
                }
                PathPattern::Prefix(p) => {
                    entry.prefix.entry(p.clone()).or_insert_with(|| allow.clone());
                }
                PathPattern::Template(_) | PathPattern::Regex(_) => {
                    let predicate = json!({"single_predicate": {"input": header_input(":path"),
                        "value_match": {"safe_regex": {"google_re2": {}, "regex": path_regex(&rule.path)}}}});
                    entry
                        .regex
                        .push(json!({"predicate": predicate, "on_match": allow.clone()}));
                }
            }
        }
    }
    let mut methods = serde_json::Map::new();
    for (method, entries) in by_method {
        // Built inside out: each level's `on_no_match` is the next level.
        let mut next = deny();
        if !entries.regex.is_empty() {
            next = json!({"matcher": {"matcher_list": {"matchers": entries.regex}, "on_no_match": next}});
        }
        if !entries.prefix.is_empty() {
            next = json!({"matcher": {"matcher_tree": {"input": header_input(":path"),
                "prefix_match_map": {"map": entries.prefix}}, "on_no_match": next}});
        }
        if !entries.exact.is_empty() {
            next = json!({"matcher": {"matcher_tree": {"input": header_input(":path"),
                "exact_match_map": {"map": entries.exact}}, "on_no_match": next}});
        }
        methods.insert(method.to_string(), next);
    }
    if methods.is_empty() {
        // No rule: deny everything.
        return json!({"on_no_match": deny()});
    }
    json!({"matcher_tree": {"input": header_input(":method"), "exact_match_map": {"map": methods}},
           "on_no_match": deny()})
}

fn router() -> Value {
    json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
}

fn address(port: u16) -> Value {
    json!({"socket_address": {"address": "127.0.0.1", "port_value": port}})
}

fn listener(name: &str, port: u16, route_config: Value, http_filters: Vec<Value>) -> Value {
    json!({"name": name, "address": address(port), "filter_chains": [{"filters": [{
        "name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name, "codec_type": "HTTP1",
            "route_config": route_config, "http_filters": http_filters}}]}]})
}

/// A cluster to `127.0.0.1:port`, with circuit breakers out of the way of a
/// load run.
fn cluster(name: &str, port: u16) -> Value {
    json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
        "circuit_breakers": {"thresholds": [{"max_connections": 100_000, "max_pending_requests": 100_000,
            "max_requests": 100_000, "max_retries": 100_000}]},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": address(port)}}]}]}})
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

static VERSION: AtomicU64 = AtomicU64::new(0);

/// Writes the discovery response holding `filter` to `dir/filter.json`
/// through a temporary file and a rename, so Envoy never reads half a file.
fn write_ecds(dir: &Path, filter: &Filter) {
    let response = json!({
        "version_info": format!("{}-{}", std::process::id(), VERSION.fetch_add(1, Ordering::Relaxed)),
        "resources": [{"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
                       "name": filter.name, "typed_config": filter.config}],
    });
    let tmp = dir.join(format!("{ECDS_FILE}.tmp"));
    let result = std::fs::write(&tmp, response.to_string()).and_then(|()| std::fs::rename(&tmp, dir.join(ECDS_FILE)));
    if let Err(e) = result {
        eprintln!("meshward-bench: cannot write {}: {e}", dir.join(ECDS_FILE).display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{allowed_request, rules};

    #[test]
    fn template_regexes_match_one_segment() {
        let re = path_regex(&PathPattern::Template("/a.b/{*}/c".into()));
        assert_eq!(re, r"/a\.b/[^/]+/c");
        let re = regex::Regex::new(&format!("^(?:{re})$")).unwrap();
        assert!(re.is_match("/a.b/x/c"));
        assert!(!re.is_match("/a.b//c"));
        assert!(!re.is_match("/a.b/x/y/c"));
        assert!(!re.is_match("/aXb/x/c"));
    }

    #[test]
    fn the_allowed_path_matches_the_last_rules_rbac_regex() {
        for n in [8, 10] {
            let rules = rules(n);
            let (_, path) = allowed_request(&rules);
            let re = path_regex(&rules[n - 1].path);
            assert!(
                regex::Regex::new(&format!("^(?:{re})$")).unwrap().is_match(&path),
                "{re} vs {path}"
            );
        }
    }

    #[test]
    fn rbac_has_one_policy_per_rule_in_rule_order() {
        let rbac = rbac_policies(&rules(1000));
        let names: Vec<&String> = rbac["policies"].as_object().unwrap().keys().collect();
        assert_eq!(names.len(), 1000);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[999], "ns[bench]-policy[allowlist]-rule[000999]");
    }

    #[test]
    fn the_matcher_tree_has_every_rule_under_each_of_its_methods() {
        let rules = rules(100);
        let tree = rbac_matcher(&rules);
        let methods = tree["matcher_tree"]["exact_match_map"]["map"].as_object().unwrap();
        let entries: usize = rules.iter().map(|r| r.methods.len()).sum();
        let mut counted = 0;
        for subtree in methods.values() {
            let mut level = subtree;
            while let Some(m) = level.get("matcher") {
                let tree = &m["matcher_tree"];
                counted += tree["exact_match_map"]["map"].as_object().map_or(0, |m| m.len());
                counted += tree["prefix_match_map"]["map"].as_object().map_or(0, |m| m.len());
                counted += m["matcher_list"]["matchers"].as_array().map_or(0, Vec::len);
                level = &m["on_no_match"];
            }
            assert_eq!(level["action"]["typed_config"]["action"], "DENY");
        }
        assert_eq!(counted, entries);
    }

    #[test]
    fn meshward_config_lists_every_rule() {
        let config: Value = serde_json::from_str(&meshward_config(&rules(10))).unwrap();
        let rules = config["policies"][0]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 10);
        assert_eq!(rules[0]["to"][0]["paths"][0], "/svc0/api/v1/items");
        assert_eq!(rules[4]["to"][0]["paths"][0], "/svc4/static/*");
        assert_eq!(rules[7]["to"][0]["paths"][0], "/svc7/users/{*}/profile");
        assert_eq!(rules[9]["to"][0]["paths"][0], "regex:/svc9/v[0-9]+/orders/[a-z0-9]+");
        assert_eq!(config["log"]["requests"], "off");
        assert_eq!(config["log"]["filterState"], "verdict");
    }
}
