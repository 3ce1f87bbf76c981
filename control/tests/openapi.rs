//! The HTTP API's OpenAPI document: `docs/openapi.json` is what the handlers
//! and their types generate (`UPDATE_OPENAPI=1` rewrites it), it describes
//! every operation's security and answers, and its name patterns are the
//! names the handlers accept.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;

use meshward_control::serve::api::openapi_json_text;
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&openapi_json_text()).unwrap()
}

#[test]
fn docs_openapi_json_is_what_the_handlers_generate() {
    let generated = openapi_json_text();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json differs from the document the handlers generate (first at line {}); \
             regenerate it: UPDATE_OPENAPI=1 cargo test -p meshward-control --test openapi",
            line + 1
        );
    }
}

/// The operations: (path, method, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.clone(), op.clone()));
        }
    }
    ops
}

#[test]
fn the_document_lists_every_route_with_its_security() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    let mut routes: Vec<String> = operations(&doc)
        .iter()
        .map(|(p, m, _)| format!("{} {p}", m.to_uppercase()))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "GET /healthz",
            "GET /metrics",
            "GET /openapi.json",
            "GET /readyz",
            "GET /v1/namespaces/{ns}/config",
            "PATCH /v1/namespaces/{ns}/allowlists/{name}",
            "POST /v1/namespaces/{ns}/learn",
            "POST /v1/namespaces/{ns}/replay",
            "POST /v1/simulate",
        ]
    );
    let scheme = &doc["components"]["securitySchemes"]["kubernetesToken"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (path, method, op) in operations(&doc) {
        let secured = op["security"] == serde_json::json!([{"kubernetesToken": []}]);
        assert_eq!(secured, path.starts_with("/v1/"), "{method} {path}: {}", op["security"]);
        let responses = op["responses"].as_object().unwrap();
        if secured {
            // Every refusal the authorizer makes, as JSON error bodies.
            for code in ["400", "401", "403", "502"] {
                let body = &responses
                    .get(code)
                    .unwrap_or_else(|| panic!("{method} {path} lacks {code}"))["content"]["application/json"]["schema"]
                    ["$ref"];
                assert_eq!(body, "#/components/schemas/ErrorBody", "{method} {path} {code}");
            }
        }
        for (code, response) in responses {
            assert!(
                response["content"].as_object().is_some_and(|c| !c.is_empty()),
                "{method} {path} {code}: every answer has a body"
            );
        }
    }
    assert_eq!(
        doc["components"]["schemas"]["ErrorBody"]["required"],
        serde_json::json!(["error"])
    );
}

#[test]
fn a_simulated_caller_is_from_or_principal_never_both() {
    // The handler answers 400 to both (schemathesis' positive_data_acceptance
    // found the document allowing it).
    let doc = document();
    let not = &doc["components"]["schemas"]["SimulateRequest"]["not"];
    assert_eq!(not["required"], serde_json::json!(["from", "principal"]), "{not}");
    // A null is an absent value to the handler: only two strings exclude each other.
    assert_eq!(not["properties"]["from"]["type"], "string", "{not}");
    assert_eq!(not["properties"]["principal"]["type"], "string", "{not}");
}

#[test]
fn replay_takes_lines_or_since_seconds_never_both() {
    // The handler answers 400 to both.
    let doc = document();
    let not = &doc["components"]["schemas"]["ReplayRequest"]["not"];
    assert_eq!(not["required"], serde_json::json!(["lines", "sinceSeconds"]), "{not}");
    assert_eq!(not["properties"]["lines"]["type"], "array", "{not}");
    assert_eq!(not["properties"]["sinceSeconds"]["type"], "integer", "{not}");
}

#[test]
fn name_patterns_in_the_document_accept_exactly_the_names_the_handlers_accept() {
    let doc = document();
    let params = &doc["paths"]["/v1/namespaces/{ns}/allowlists/{name}"]["patch"]["parameters"];
    let pattern = |name: &str| {
        let p = params.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        let schema = &p["schema"];
        (
            regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap(),
            schema["maxLength"].as_u64().unwrap() as usize,
        )
    };
    let (label, label_max) = pattern("ns");
    let (subdomain, subdomain_max) = pattern("name");
    let documented = |(re, max): &(regex::Regex, usize), s: &str| re.is_match(s) && s.len() <= *max;
    let long_label = "a".repeat(63);
    let too_long_label = "a".repeat(64);
    let long_name = [long_label.as_str(); 4].join(".");
    for (name, is_label, is_subdomain) in [
        ("shop", true, true),
        ("a", true, true),
        ("a-1", true, true),
        ("api.v1-x", false, true),
        ("", false, false),
        ("-a", false, false),
        ("a-", false, false),
        ("A", false, false),
        ("a_b", false, false),
        ("a..b", false, false),
        (".a", false, false),
        ("a.", false, false),
        ("x/../victim", false, false),
        (long_label.as_str(), true, true),
        (too_long_label.as_str(), false, false),
        (long_name.as_str(), false, false),
        (&long_name[..253], false, true),
    ] {
        assert_eq!(documented(&(label.clone(), label_max), name), is_label, "ns {name:?}");
        assert_eq!(
            documented(&(subdomain.clone(), subdomain_max), name),
            is_subdomain,
            "name {name:?}"
        );
    }
}
