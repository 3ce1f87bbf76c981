//! The plugin configurations `scripts/bench-openapi-engine.sh` counts the
//! engine's instructions on (docs/benchmarks.md, "OpenAPI entries in the
//! engine"): one Allowlist of five `openapi` entries over a 1,000-operation
//! document, and the equivalent Allowlist written by hand, one `to` entry of
//! `methods`, `paths` and `notPaths` per operation, both derived by the
//! control crate as the service derives them.
//!
//! ```sh
//! cargo run --profile profiling -p meshward-control --example openapi_engine_configs -- DIR
//! # writes DIR/openapi.json and DIR/paths.json (each a pluginConfig), and
//! # prints the requests to count: `allow METHOD:PATH`, `deny METHOD:PATH`
//! ```
//!
//! The document is the Box Platform API (`tests/data/openapi/box.json`, 296
//! operations) with its paths repeated under `/copyN` prefixes, cut at 1,000
//! operations. Before writing, every operation of the document is judged
//! with both configurations by the filter's engine: they must agree.
#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use meshward_control::apidesc::openapi::{method_paths, Selection};
use meshward_control::apidesc::OpenApi;
use meshward_control::derive::derive_namespace;
use meshward_filter::{Engine, Evaluator, Request, Verdict};
use serde_json::{json, Value};

#[path = "../tests/common/mod.rs"]
mod common;

/// The operations of the document.
const OPERATIONS: usize = 1_000;
/// The tags the five `openapi` entries select, one each.
const TAGS: [&str; 5] = ["Files", "Folders", "Users", "Groups", "Collaborations"];
/// The caller of the rule, the principal of the engine examples' requests.
const CALLER: &str = "cluster.local/ns/caller/sa/client";

/// Box's document, its paths repeated under `/copyN` (operationIds
/// suffixed), cut at [`OPERATIONS`] operations.
fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/openapi/box.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap().clone();
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let mut out = serde_json::Map::new();
    let mut count = 0;
    'copies: for copy in 0.. {
        for (p, item) in &paths {
            let mut kept = serde_json::Map::new();
            for (k, v) in item.as_object().unwrap() {
                if methods.contains(&k.as_str()) {
                    if count == OPERATIONS {
                        break;
                    }
                    count += 1;
                    let mut op = v.clone();
                    if copy > 0 {
                        if let Some(id) = op.get("operationId").and_then(Value::as_str).map(str::to_string) {
                            op["operationId"] = json!(format!("{id}_{copy}"));
                        }
                    }
                    kept.insert(k.clone(), op);
                } else {
                    kept.insert(k.clone(), v.clone());
                }
            }
            let at = if copy == 0 {
                p.clone()
            } else {
                format!("/copy{copy}{p}")
            };
            out.insert(at, Value::Object(kept));
            if count == OPERATIONS {
                break 'copies;
            }
        }
    }
    doc["paths"] = Value::Object(out);
    doc
}

/// The pluginConfig derived for namespace `shop` with the ConfigMap `api`
/// holding `text` and one Allowlist whose only rule has `to`.
fn derived(text: &str, to: Value) -> Value {
    let mut s = common::snapshot();
    s.namespaces.push(common::mk_ns("shop", Some("enabled")));
    s.pods
        .push(common::mk_pod("shop", "api-1", json!({"app": "api"}), Some("api")));
    s.config_maps
        .push(common::mk_config_map("shop", "api", true, &[], &[("api.json", text)]));
    s.allowlists.push(common::mk_allowlist(
        "shop",
        "api",
        json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
            "name": "client", "from": [{"principals": [CALLER]}], "to": to
        }]}),
    ));
    let d = derive_namespace(&s.to_state(), "shop", &common::settings(), Timestamp::UNIX_EPOCH);
    assert_eq!(d.statuses[0].status.conditions[0].status, "True", "{d:#?}");
    let mut config = serde_json::to_value(&d.wasm_plugins[0].spec.plugin_config).unwrap();
    // The policy applies to every workload it is delivered to, as
    // `configure_profile` selects policies for a workload without labels.
    let policies = config["policies"].as_array_mut().unwrap();
    assert_eq!(policies.len(), 1);
    policies[0].as_object_mut().unwrap().remove("selector");
    config
}

/// A request to the path pattern `pattern`: `{*}` and `[^/]+` become `7`.
fn concrete(pattern: &str) -> String {
    let p = pattern.strip_prefix("regex:").unwrap_or(pattern);
    p.replace("{*}", "7").replace("[^/]+", "7").replace('\\', "")
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: openapi_engine_configs DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = document();
    let text = serde_json::to_string(&doc).unwrap();
    let api = OpenApi::parse(&text).unwrap();
    assert_eq!(api.operations().len(), OPERATIONS);

    let entries: Vec<Value> = TAGS
        .iter()
        .map(|t| json!({"openapi": {"api": {"configMap": "api", "key": "api.json"}, "tags": [t]}}))
        .collect();
    let by_operations = derived(&text, Value::Array(entries));

    // By hand: one entry per selected operation, its method on its paths,
    // the concrete paths its template overlaps excluded.
    let tags: Vec<String> = TAGS.iter().map(|t| t.to_string()).collect();
    let selected = api.select(Selection::Tags(&tags)).unwrap();
    let mut by_hand = Vec::new();
    for op in &selected {
        for mp in method_paths(&api, &[op]) {
            let mut entry = json!({"methods": mp.methods, "paths": mp.paths});
            if !mp.not_paths.is_empty() {
                entry["notPaths"] = json!(mp.not_paths);
            }
            by_hand.push(entry);
        }
    }
    let by_paths = derived(&text, Value::Array(by_hand));

    // Both admit exactly the same requests among the document's operations.
    let evaluator = |config: &Value| {
        let engine = Engine::from_json(config.to_string().as_bytes()).unwrap();
        let selection = engine.select(|_| None);
        Evaluator::new(Arc::new(engine), selection)
    };
    let (mut a, mut b) = (evaluator(&by_operations), evaluator(&by_paths));
    let mut admitted = 0;
    for op in api.operations() {
        for pattern in &op.patterns {
            let path = concrete(pattern);
            let request: Request<'_> = Request {
                connection: Default::default(),
                method: &op.method,
                path: &path,
                authority: Some("api.shop.svc.cluster.local:8080"),
                port: Some(8080),
                principal: Some(CALLER),
                auth: None,
                headers: &[][..],
            };
            let (va, vb) = (a.evaluate(&request).verdict, b.evaluate(&request).verdict);
            assert_eq!(va, vb, "{} {path}", op.method);
            admitted += usize::from(va == Verdict::Allow);
        }
    }
    eprintln!(
        "{} operations, {} selected by 5 openapi entries; by hand: {} to entries; {admitted} operation requests admitted by both",
        api.operations().len(),
        selected.len(),
        by_paths["policies"][0]["rules"][0]["to"].as_array().unwrap().len()
    );
    std::fs::write(dir.join("openapi.json"), by_operations.to_string()).unwrap();
    std::fs::write(dir.join("paths.json"), by_paths.to_string()).unwrap();

    // An allowed request: the last selected operation (a template); a denied
    // one: the first operation no entry selects.
    let last = selected.iter().rev().find(|o| o.patterns[0].contains("{*}")).unwrap();
    println!("allow {}:{}", last.method, concrete(&last.patterns[0]));
    let other = api
        .operations()
        .iter()
        .find(|o| !selected.iter().any(|s| s.key == o.key))
        .unwrap();
    println!("deny {}:{}", other.method, concrete(&other.patterns[0]));
}
