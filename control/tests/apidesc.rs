//! API descriptions in Allowlists (`grpc.api`): descriptor sets read from
//! labelled ConfigMaps, `["*"]` expanded, names checked, every way a
//! reference can fail reported on the Allowlist's status, the last valid
//! version kept, a ConfigMap change re-deriving only the namespaces that name
//! it; and the committed test descriptors are what their `.proto` compiles to.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use meshward_control::derive::{derive_snapshot as derive, Desired, StatusUpdate};
use meshward_control::state::wire::{object_of, ConfigMapWire};
use meshward_control::state::{Kind, Snapshot};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn data() -> PathBuf {
    root().join("control/tests/data/apidesc")
}

fn inventory() -> Vec<u8> {
    std::fs::read(data().join("inventory.binpb")).unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_second(1_795_000_000).unwrap()
}

fn grpc(service: &str, methods: &[&str], extra: Value) -> Value {
    let mut g = json!({"service": service, "methods": methods,
        "api": {"configMap": "inventory-api", "key": "inventory.binpb"}});
    if let (Some(g), Some(extra)) = (g.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                g.remove(k);
            } else {
                g.insert(k.clone(), v.clone());
            }
        }
    }
    json!({"selector": {"matchLabels": {"app": "inventory"}}, "rules": [{
        "name": "calls",
        "from": [{"principals": ["cluster.local/ns/web/sa/storefront"]}],
        "to": [{"grpc": g}]
    }]})
}

/// Namespace `shop` (enabled), workload `inventory`, the ConfigMap
/// `inventory-api` holding the test descriptors, and `spec` as Allowlist
/// `inventory`.
fn shop(spec: Value) -> Snapshot {
    let mut s = snapshot();
    s.namespaces = vec![mk_ns("shop", Some("enabled"))];
    s.pods = vec![mk_pod(
        "shop",
        "inventory-1",
        json!({"app": "inventory"}),
        Some("inventory"),
    )];
    s.config_maps = vec![mk_config_map(
        "shop",
        "inventory-api",
        true,
        &[("inventory.binpb", inventory())],
        &[("README", "the inventory API")],
    )];
    s.allowlists = vec![mk_allowlist("shop", "inventory", spec)];
    s
}

fn status(d: &Desired) -> &StatusUpdate {
    d.statuses.iter().find(|s| s.name == "inventory").unwrap()
}

fn first_to(d: &Desired) -> Value {
    let cfg = serde_json::to_value(&d.wasm_plugins[0].spec.plugin_config).unwrap();
    cfg["policies"][0]["rules"][0]["to"][0].clone()
}

#[test]
fn star_expands_to_the_services_methods_and_levels_select_among_them() {
    let d = derive(
        &shop(grpc("shop.inventory.v1.Inventory", &["*"], json!({}))),
        &settings(),
        now(),
    );
    assert_eq!(status(&d).status.conditions[0].status, "True", "{d:#?}");
    assert_eq!(
        first_to(&d),
        json!({"grpc": {"service": "shop.inventory.v1.Inventory", "methods": ["GetItem", "ListItems", "Reserve"]}})
    );
    let reads = grpc(
        "shop.inventory.v1.Inventory",
        &["*"],
        json!({"idempotencyLevel": "NO_SIDE_EFFECTS"}),
    );
    let d = derive(&shop(reads), &settings(), now());
    assert_eq!(first_to(&d)["grpc"]["methods"], json!(["GetItem", "ListItems"]));
    // Named methods are checked and kept as written.
    let d = derive(
        &shop(grpc("shop.inventory.v1.Inventory", &["Reserve", "GetItem"], json!({}))),
        &settings(),
        now(),
    );
    assert_eq!(first_to(&d)["grpc"]["methods"], json!(["Reserve", "GetItem"]));
    // Without api, "*" is passed on: any method of the service.
    let d = derive(
        &shop(grpc("shop.inventory.v1.Nowhere", &["*"], json!({"api": null}))),
        &settings(),
        now(),
    );
    assert_eq!(first_to(&d)["grpc"]["methods"], json!(["*"]));
}

#[test]
fn every_unusable_reference_is_an_error_naming_the_field() {
    let unlabelled = |s: &mut Snapshot| {
        s.config_maps[0].metadata.labels = None;
    };
    let garbage = |s: &mut Snapshot| {
        s.config_maps[0].binary_data = Some(BTreeMap::from([(
            "inventory.binpb".to_string(),
            ByteString(b"openapi: 3.0.0\n".to_vec()),
        )]));
    };
    let none = |_: &mut Snapshot| {};
    type Change = fn(&mut Snapshot);
    let cases: [(&str, Value, Change, &str, &str); 9] = [
        (
            "unknown method",
            grpc("shop.inventory.v1.Inventory", &["GetItem", "Reservee"], json!({})),
            none,
            "InvalidGrpc",
            "rules[0].to[0].grpc.methods[1]: shop.inventory.v1.Inventory has no method Reservee \
             (has: GetItem, ListItems, Reserve)",
        ),
        (
            "unknown service",
            grpc("shop.inventory.v1.Inventry", &["*"], json!({})),
            none,
            "InvalidGrpc",
            "rules[0].to[0].grpc.service: the descriptors have no service shop.inventory.v1.Inventry \
             (has: shop.inventory.v1.Admin, shop.inventory.v1.Inventory)",
        ),
        (
            "method of another level",
            grpc(
                "shop.inventory.v1.Inventory",
                &["GetItem", "Reserve"],
                json!({"idempotencyLevel": "NO_SIDE_EFFECTS"}),
            ),
            none,
            "InvalidGrpc",
            "rules[0].to[0].grpc.methods[1]: shop.inventory.v1.Inventory/Reserve is IDEMPOTENT, not NO_SIDE_EFFECTS",
        ),
        (
            "level without api",
            grpc(
                "shop.inventory.v1.Inventory",
                &["*"],
                json!({"api": null, "idempotencyLevel": "IDEMPOTENT"}),
            ),
            none,
            "InvalidGrpc",
            "rules[0].to[0].grpc.idempotencyLevel: needs api",
        ),
        (
            "no ConfigMap",
            grpc(
                "shop.inventory.v1.Inventory",
                &["*"],
                json!({"api": {"configMap": "inventory-apis", "key": "inventory.binpb"}}),
            ),
            none,
            "UnresolvedApi",
            "rules[0].to[0].grpc.api: no ConfigMap shop/inventory-apis labelled meshward.io/api-description=true",
        ),
        (
            "unlabelled ConfigMap",
            grpc("shop.inventory.v1.Inventory", &["*"], json!({})),
            unlabelled,
            "UnresolvedApi",
            "rules[0].to[0].grpc.api: no ConfigMap shop/inventory-api labelled meshward.io/api-description=true",
        ),
        (
            "no key",
            grpc(
                "shop.inventory.v1.Inventory",
                &["*"],
                json!({"api": {"configMap": "inventory-api", "key": "inventory.pb"}}),
            ),
            none,
            "UnresolvedApi",
            "rules[0].to[0].grpc.api: ConfigMap shop/inventory-api has no key inventory.pb \
             (has: README, inventory.binpb)",
        ),
        (
            "a data key",
            grpc(
                "shop.inventory.v1.Inventory",
                &["*"],
                json!({"api": {"configMap": "inventory-api", "key": "README"}}),
            ),
            none,
            "UnresolvedApi",
            "rules[0].to[0].grpc.api: ConfigMap shop/inventory-api has README in data, not binaryData",
        ),
        (
            "not a descriptor set",
            grpc("shop.inventory.v1.Inventory", &["*"], json!({})),
            garbage,
            "UnresolvedApi",
            "rules[0].to[0].grpc.api: ConfigMap shop/inventory-api key inventory.binpb is not a FileDescriptorSet: \
             failed to decode Protobuf message",
        ),
    ];
    for (what, spec, change, reason, message) in cases {
        let mut s = shop(spec);
        change(&mut s);
        let d = derive(&s, &settings(), now());
        let c = &status(&d).status.conditions[0];
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason), "{what}");
        assert!(c.message.starts_with(message), "{what}: {}", c.message);
        // Fails closed: the placeholder admits nobody.
        assert_eq!(
            serde_json::to_value(&d.wasm_plugins[0].spec.plugin_config).unwrap()["policies"][0]["rules"],
            json!([]),
            "{what}"
        );
    }
}

#[test]
fn a_descriptor_that_breaks_an_allowlist_keeps_its_last_valid_version_in_force() {
    let mut s = shop(grpc("shop.inventory.v1.Inventory", &["GetItem"], json!({})));
    let good = derive(&s, &settings(), now());
    s.previous = BTreeMap::from([(
        "shop".to_string(),
        vec![good.wasm_plugins[0].spec.plugin_config.clone()],
    )]);
    // The new descriptors no longer have GetItem.
    let mut renamed = inventory();
    // The method's name field (tag 1, length 7), not the message GetItemRequest.
    let at = renamed.windows(9).position(|w| w == b"\x0a\x07GetItem").unwrap();
    renamed[at + 2..at + 9].copy_from_slice(b"GetItam");
    s.config_maps[0].binary_data = Some(BTreeMap::from([("inventory.binpb".to_string(), ByteString(renamed))]));
    let d = derive(&s, &settings(), now());
    let c = &status(&d).status.conditions[0];
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidGrpc"));
    assert!(
        c.message
            .contains("has no method GetItem (has: GetItam, ListItems, Reserve)"),
        "{}",
        c.message
    );
    assert_eq!(
        d.wasm_plugins, good.wasm_plugins,
        "the last valid version stays in force"
    );
}

#[test]
fn a_config_map_change_re_derives_only_a_namespace_that_names_it() {
    let s = shop(grpc("shop.inventory.v1.Inventory", &["*"], json!({})));
    let mut state = s.to_state();
    let object = |cm: &ConfigMap| object_of::<ConfigMapWire>(&serde_json::to_value(cm).unwrap()).unwrap();
    // Unchanged: nothing.
    let same = object(&s.config_maps[0]).unwrap();
    assert!(state.apply(same).is_empty());
    // Changed and named by an Allowlist of shop: shop.
    let mut cm = s.config_maps[0].clone();
    cm.binary_data = Some(BTreeMap::from([(
        "inventory.binpb".to_string(),
        ByteString(Vec::new()),
    )]));
    let changes = state.apply(object(&cm).unwrap());
    assert_eq!(changes.derive.iter().collect::<Vec<_>>(), ["shop"]);
    // A labelled ConfigMap no Allowlist names: nothing to derive.
    let mut other = s.config_maps[0].clone();
    other.metadata.name = Some("unrelated".into());
    assert!(state.apply(object(&other).unwrap()).derive.is_empty());
    // An unlabelled one is not an object of the state at all.
    other.metadata.labels = None;
    assert!(object(&other).is_none());
    assert_eq!(state.counts()[&Kind::ConfigMap], 2);
    // Deleting the named one re-derives shop.
    let changes = state.delete(Kind::ConfigMap, "shop", "inventory-api");
    assert_eq!(changes.derive.iter().collect::<Vec<_>>(), ["shop"]);
}

#[test]
fn the_committed_descriptors_are_what_the_proto_compiles_to() {
    let out = std::env::temp_dir().join(format!("meshward-apidesc-{}.binpb", std::process::id()));
    let python = root().join(".venv/bin/python");
    let status = Command::new(&python)
        .current_dir(data())
        .args(["-m", "grpc_tools.protoc", "-I.", "--include_imports"])
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg("inventory.proto")
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (make setup installs grpcio-tools)", python.display()));
    assert!(status.success());
    let compiled = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(
        compiled,
        inventory(),
        "inventory.binpb differs from inventory.proto: run scripts/apidesc-testdata.sh"
    );
    // The ConfigMap of the example manifests carries the same bytes.
    let loaded = meshward_control::manifests::load(&[data().join("shop")], "cluster.local").unwrap();
    let cm = &loaded.snapshot.config_maps[0];
    assert_eq!(cm.binary_data.as_ref().unwrap()["inventory.binpb"].0, compiled);
    // And the Petstore ConfigMap the document (a block scalar ends with a newline).
    let petstore = &loaded.snapshot.config_maps[1];
    assert_eq!(petstore.metadata.name.as_deref(), Some("petstore-api"));
    assert_eq!(
        petstore.data.as_ref().unwrap()["openapi.yaml"].trim_end(),
        openapi_text("petstore.yaml").trim_end(),
        "run scripts/apidesc-testdata.sh"
    );
    // examples/api-descriptions: its own copy of the .proto (comments aside,
    // the same API) compiles to the bytes its ConfigMap carries, and its
    // Petstore ConfigMap holds the document.
    let example = root().join("examples/api-descriptions");
    let status = Command::new(&python)
        .current_dir(&example)
        .args(["-m", "grpc_tools.protoc", "-I.", "--include_imports"])
        .arg(format!("--descriptor_set_out={}", out.display()))
        .arg("inventory.proto")
        .status()
        .unwrap();
    assert!(status.success());
    let compiled = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let loaded = meshward_control::manifests::load(&[example], "cluster.local").unwrap();
    let by_name = |name: &str| {
        loaded
            .snapshot
            .config_maps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap()
    };
    assert_eq!(
        by_name("inventory-api").binary_data.as_ref().unwrap()["inventory.binpb"].0,
        compiled,
        "examples/api-descriptions: run scripts/apidesc-testdata.sh"
    );
    assert_eq!(
        by_name("petstore-api").data.as_ref().unwrap()["openapi.yaml"].trim_end(),
        openapi_text("petstore.yaml").trim_end(),
        "examples/api-descriptions: run scripts/apidesc-testdata.sh"
    );
}

#[test]
fn the_cli_renders_and_checks_with_descriptors_from_the_manifests() {
    let bin = env!("CARGO_BIN_EXE_meshward-control");
    let shop = data().join("shop");
    let out = Command::new(bin)
        .args([
            "render",
            "--url",
            "oci://registry.example.com/meshward/filter:0.1.0",
            "--manifests",
        ])
        .arg(&shop)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("service: shop.inventory.v1.Inventory\n            methods:\n            - GetItem\n            - ListItems\n"),
        "{text}"
    );
    let check = |from: &str, call: &str| {
        let out = Command::new(bin)
            .args(["check", "--manifests"])
            .arg(&shop)
            .args([
                "--from",
                from,
                "--to",
                "shop/inventory",
                "-H",
                "content-type: application/grpc",
                call,
            ])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(
        check("web/storefront", "POST /shop.inventory.v1.Inventory/ListItems").0,
        Some(0)
    );
    let (code, text) = check("web/storefront", "POST /shop.inventory.v1.Inventory/Reserve");
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(check("web/ops", "POST /shop.inventory.v1.Admin/Purge").0, Some(0));
    // OpenAPI: the Petstore's operations, by id and by tag.
    let http = |from: &str, call: &str| {
        let out = Command::new(bin)
            .args(["check", "--manifests"])
            .arg(&shop)
            .args(["--from", from, "--to", "shop/petstore", call])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(http("web/storefront", "GET /api/v3/pet/10").0, Some(0));
    assert_eq!(http("web/storefront", "POST /api/v3/store/order").0, Some(0));
    assert_eq!(http("web/storefront", "DELETE /api/v3/pet/10").0, Some(1));
    assert_eq!(http("web/ops", "DELETE /api/v3/pet/10").0, Some(0));
    // Concrete paths before templates: no DELETE on /pet/findByStatus.
    assert_eq!(http("web/ops", "GET /api/v3/pet/findByStatus").0, Some(0));
    let (code, text) = http("web/ops", "DELETE /api/v3/pet/findByStatus");
    assert_eq!(code, Some(1), "{text}");
    // Not under the document's base path.
    assert_eq!(http("web/ops", "GET /pet/10").0, Some(1));
}

// ---- OpenAPI documents: tests/data/openapi (sources and licenses in its README.md).

fn openapi_text(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/data/openapi").join(name)).unwrap()
}

fn document(name: &str) -> meshward_control::apidesc::OpenApi {
    meshward_control::apidesc::OpenApi::parse(&openapi_text(name)).unwrap()
}

fn patterns_of(doc: &meshward_control::apidesc::OpenApi, key: &str) -> Vec<String> {
    doc.operation(key).unwrap().patterns.clone()
}

fn count_tagged(doc: &meshward_control::apidesc::OpenApi, tag: &str) -> usize {
    doc.operations()
        .iter()
        .filter(|o| o.tags.iter().any(|t| t == tag))
        .count()
}

#[test]
fn petstore_operations_and_templates() {
    let doc = document("petstore.yaml");
    assert_eq!(doc.operations().len(), 19);
    assert_eq!(
        (
            count_tagged(&doc, "pet"),
            count_tagged(&doc, "store"),
            count_tagged(&doc, "user")
        ),
        (8, 4, 7)
    );
    // servers: https://petstore3.swagger.io/api/v3: only the path counts.
    assert!(doc
        .operations()
        .iter()
        .all(|o| o.patterns.len() == 1 && o.patterns[0].starts_with("/api/v3/")));
    assert_eq!(patterns_of(&doc, "getPetById"), ["/api/v3/pet/{*}"]);
    assert_eq!(patterns_of(&doc, "uploadFile"), ["/api/v3/pet/{*}/uploadImage"]);
    assert_eq!(patterns_of(&doc, "findPetsByStatus"), ["/api/v3/pet/findByStatus"]);
    assert_eq!(patterns_of(&doc, "getOrderById"), ["/api/v3/store/order/{*}"]);
    let op = doc.operation("GET /user/{username}").unwrap();
    assert_eq!(op.key, "getUserByName");
}

#[test]
fn box_a_large_api_with_operation_servers_variables_and_fragments() {
    let doc = document("box.json");
    assert_eq!(doc.operations().len(), 296);
    let tags: std::collections::BTreeSet<&String> = doc.operations().iter().flat_map(|o| o.tags.iter()).collect();
    assert_eq!(tags.len(), 73);
    // The document's server: https://api.box.com/2.0.
    assert_eq!(patterns_of(&doc, "get_files_id"), ["/2.0/files/{*}"]);
    // Operation-level servers: uploads, OAuth, downloads.
    assert_eq!(patterns_of(&doc, "post_files_content"), ["/api/2.0/files/content"]);
    assert_eq!(patterns_of(&doc, "get_authorize"), ["/api/oauth2/authorize"]);
    assert_eq!(
        patterns_of(&doc, "get_zip_downloads_id_content"),
        ["/2.0/zip_downloads/{*}/content"]
    );
    // A server variable with a default (https://{box-upload-server}/api/2.0).
    assert_eq!(
        patterns_of(&doc, "get_files_upload_sessions_id"),
        ["/api/2.0/files/upload_sessions/{*}"]
    );
    // Fragments tell apart operations of one path; requests carry none.
    assert_eq!(patterns_of(&doc, "post_oauth2_token#refresh"), ["/oauth2/token"]);
    assert_eq!(patterns_of(&doc, "put_files_id#add_shared_link"), ["/2.0/files/{*}"]);
    // A parameter inside a segment.
    assert_eq!(
        patterns_of(&doc, "get_files_id_thumbnail_id"),
        ["regex:/2\\.0/files/[^/]+/thumbnail\\.[^/]+"]
    );
}

#[test]
fn museum_a_3_1_document_with_webhooks_and_refs() {
    let doc = document("museum.yaml");
    assert_eq!(doc.operations().len(), 8);
    assert_eq!(
        patterns_of(&doc, "getTicketCode"),
        ["/_mock/docs/openapi/museum-api/tickets/{*}/qr"]
    );
    assert_eq!(
        patterns_of(&doc, "updateSpecialEvent"),
        ["/_mock/docs/openapi/museum-api/special-events/{*}"]
    );
    assert_eq!(doc.operation("updateSpecialEvent").unwrap().method, "PATCH");
    let webhook = ["publishNewEvent".to_string()];
    let e = doc
        .select(meshward_control::apidesc::openapi::Selection::Operations(&webhook))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "publishNewEvent is a webhook (a request the API sends, not one it serves)"
    );
}

/// Namespace `shop` with the ConfigMap `apis` holding the three documents
/// in `data`, and `to` as the one `to` entry of Allowlist `inventory`.
fn with_documents(to: Value) -> Snapshot {
    let mut s = shop(json!({"selector": {"matchLabels": {"app": "inventory"}}, "rules": [{
        "name": "calls",
        "from": [{"principals": ["cluster.local/ns/web/sa/storefront"]}],
        "to": [to]
    }]}));
    let (petstore, museum, box_json) = (
        openapi_text("petstore.yaml"),
        openapi_text("museum.yaml"),
        openapi_text("box.json"),
    );
    s.config_maps.push(mk_config_map(
        "shop",
        "apis",
        true,
        &[("inventory.binpb", inventory())],
        &[
            ("petstore.yaml", &petstore),
            ("museum.yaml", &museum),
            ("box.json", &box_json),
        ],
    ));
    s
}

fn openapi(key: &str, select: Value) -> Value {
    let mut o = json!({"api": {"configMap": "apis", "key": key}});
    for (k, v) in select.as_object().unwrap() {
        o[k] = v.clone();
    }
    json!({"openapi": o, "ports": [8080]})
}

fn rule_to(d: &Desired) -> Value {
    let cfg = serde_json::to_value(&d.wasm_plugins[0].spec.plugin_config).unwrap();
    cfg["policies"][0]["rules"][0]["to"].clone()
}

#[test]
fn openapi_entries_derive_to_method_and_path_entries() {
    let to = openapi(
        "petstore.yaml",
        json!({"operations": ["getPetById", "deletePet", "findPetsByStatus", "PUT /pet"]}),
    );
    let d = derive(&with_documents(to), &settings(), now());
    assert_eq!(status(&d).status.conditions[0].status, "True", "{:#?}", status(&d));
    assert_eq!(
        rule_to(&d),
        json!([
            // OpenAPI matches concrete paths first: /pet/findByStatus is not /pet/{petId}.
            {"methods": ["DELETE", "GET"], "paths": ["/api/v3/pet/{*}"],
             "notPaths": ["/api/v3/pet/findByStatus", "/api/v3/pet/findByTags"], "ports": [8080]},
            {"methods": ["GET"], "paths": ["/api/v3/pet/findByStatus"], "ports": [8080]},
            {"methods": ["PUT"], "paths": ["/api/v3/pet"], "ports": [8080]}
        ])
    );
    // By tag.
    let d = derive(
        &with_documents(openapi("museum.yaml", json!({"tags": ["Tickets"]}))),
        &settings(),
        now(),
    );
    assert_eq!(
        rule_to(&d),
        json!([
            {"methods": ["GET"], "paths": ["/_mock/docs/openapi/museum-api/tickets/{*}/qr"], "ports": [8080]},
            {"methods": ["POST"], "paths": ["/_mock/docs/openapi/museum-api/tickets"], "ports": [8080]}
        ])
    );
    // Every operation of a large document: the engine accepts every pattern,
    // and each pattern appears once.
    let d = derive(
        &with_documents(openapi("box.json", json!({"operations": ["*"]}))),
        &settings(),
        now(),
    );
    assert_eq!(status(&d).status.conditions[0].status, "True", "{:#?}", status(&d));
    let entries = rule_to(&d);
    let paths: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()))
        .collect();
    let distinct: std::collections::BTreeSet<&str> = paths.iter().copied().collect();
    assert_eq!(paths.len(), distinct.len());
    let doc = document("box.json");
    let all: std::collections::BTreeSet<&str> = doc
        .operations()
        .iter()
        .flat_map(|o| o.patterns.iter().map(String::as_str))
        .collect();
    assert_eq!(distinct, all);
}

#[test]
fn openapi_entries_that_do_not_fit_the_document_are_errors_naming_the_field() {
    let cases: [(&str, Value, &str, &str); 7] = [
        (
            "unknown operation",
            openapi("petstore.yaml", json!({"operations": ["getPetById", "getPetByID"]})),
            "InvalidOpenApi",
            "rules[0].to[0].openapi.operations[1]: no operation getPetByID, did you mean getPetById? (has: addPet, \
             createUser, createUsersWithListInput, deleteOrder, deletePet, deleteUser, findPetsByStatus, \
             findPetsByTags, getInventory, getOrderById, getPetById, getUserByName, loginUser, logoutUser, placeOrder, \
             updatePet, updatePetWithForm, updateUser, uploadFile)",
        ),
        (
            "unknown tag",
            openapi("museum.yaml", json!({"tags": ["Events", "Shop"]})),
            "InvalidOpenApi",
            "rules[0].to[0].openapi.tags[1]: no operation is tagged Shop (tags: Events, Operations, Tickets)",
        ),
        (
            "both",
            openapi("museum.yaml", json!({"tags": ["Events"], "operations": ["*"]})),
            "InvalidOpenApi",
            "rules[0].to[0].openapi: set exactly one of operations",
        ),
        (
            "paths beside",
            json!({"openapi": {"api": {"configMap": "apis", "key": "museum.yaml"}, "operations": ["*"]}, "paths": ["/x"]}),
            "InvalidOpenApi",
            "rules[0].to[0]: openapi sets the methods and paths; remove paths from this entry",
        ),
        (
            "a binaryData key",
            openapi("inventory.binpb", json!({"operations": ["*"]})),
            "UnresolvedApi",
            "rules[0].to[0].openapi.api: ConfigMap shop/apis has inventory.binpb in binaryData, not data",
        ),
        (
            "no key",
            openapi("orders.yaml", json!({"operations": ["*"]})),
            "UnresolvedApi",
            "rules[0].to[0].openapi.api: ConfigMap shop/apis has no key orders.yaml \
             (has: box.json, inventory.binpb, museum.yaml, petstore.yaml)",
        ),
        (
            "a descriptor key for grpc is fine, a document key is not",
            json!({"grpc": {"service": "x.Y", "methods": ["*"], "api": {"configMap": "apis", "key": "museum.yaml"}}}),
            "UnresolvedApi",
            "rules[0].to[0].grpc.api: ConfigMap shop/apis has museum.yaml in data, not binaryData",
        ),
    ];
    for (what, to, reason, message) in cases {
        let d = derive(&with_documents(to), &settings(), now());
        let c = &status(&d).status.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason),
            "{what}: {}",
            c.message
        );
        assert!(c.message.starts_with(message), "{what}: {}", c.message);
    }
    // A document that does not parse.
    let mut s = with_documents(openapi("petstore.yaml", json!({"operations": ["*"]})));
    s.config_maps[1]
        .data
        .as_mut()
        .unwrap()
        .insert("petstore.yaml".into(), "swagger: \"2.0\"\n".into());
    let d = derive(&s, &settings(), now());
    let c = &status(&d).status.conditions[0];
    assert_eq!(c.reason, "UnresolvedApi");
    // A large document's operations are listed up to 50.
    let big = with_documents(openapi("box.json", json!({"operations": ["get_files_idd"]})));
    let d = derive(&big, &settings(), now());
    let m = &status(&d).status.conditions[0].message;
    assert!(
        m.starts_with(
            "rules[0].to[0].openapi.operations[0]: no operation get_files_idd, did you mean get_files_id? (has: "
        ),
        "{m}"
    );
    assert!(m.contains(", ... and 246 more)"), "{m}");
    assert!(
        c.message.starts_with(
            "rules[0].to[0].openapi.api: ConfigMap shop/apis key petstore.yaml is not an OpenAPI 3 document: \
             openapi \"swagger 2.0\" is not OpenAPI 3.0 or 3.1"
        ),
        "{}",
        c.message
    );
}

#[test]
fn an_engine_error_in_an_expanded_entry_names_the_openapi_entry() {
    // A literal segment the filter's templates refuse (`[`).
    let doc = "openapi: 3.0.0\npaths:\n  /items/{id}/a[1]:\n    get: {operationId: odd}\n";
    let mut s = with_documents(json!({"methods": ["GET"], "paths": ["/ok"]}));
    s.config_maps[1]
        .data
        .as_mut()
        .unwrap()
        .insert("odd.yaml".into(), doc.into());
    s.allowlists[0].spec.rules[0].to = Some(vec![
        serde_json::from_value(json!({"methods": ["GET"], "paths": ["/ok"]})).unwrap(),
        serde_json::from_value(openapi("odd.yaml", json!({"operations": ["odd"]}))).unwrap(),
    ]);
    let d = derive(&s, &settings(), now());
    let c = &status(&d).status.conditions[0];
    assert_eq!(c.reason, "InvalidOpenApi", "{}", c.message);
    assert!(c.message.starts_with("rules[0].to[1].openapi: "), "{}", c.message);
}

#[test]
fn a_document_config_map_change_re_derives_a_namespace_whose_openapi_entry_names_it() {
    let s = with_documents(openapi("museum.yaml", json!({"operations": ["*"]})));
    let mut state = s.to_state();
    let mut cm = s.config_maps[1].clone();
    cm.data.as_mut().unwrap().remove("box.json");
    let object = object_of::<ConfigMapWire>(&serde_json::to_value(&cm).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(state.apply(object).derive.iter().collect::<Vec<_>>(), ["shop"]);
}

/// `obj` with `meshward.io/api-description: value` in its annotations.
fn annotated<T: serde::Serialize + serde::de::DeserializeOwned>(obj: T, value: &str) -> T {
    let mut v = serde_json::to_value(obj).unwrap();
    v["metadata"]["annotations"] = json!({"meshward.io/api-description": value});
    serde_json::from_value(v).unwrap()
}

#[test]
fn annotated_workloads_come_from_deployment_and_service_annotations() {
    use meshward_control::apidesc::annotated_workloads;
    let mut s = snapshot();
    s.deployments = vec![
        annotated(
            mk_deployment("shop", "inventory", json!({"app": "inventory"}), "inventory"),
            "apis/inventory.binpb, apis/petstore.yaml,nokey",
        ),
        mk_deployment("shop", "petstore", json!({"app": "petstore"}), "petstore"),
        mk_deployment("shop", "plain", json!({"app": "plain"}), "plain"),
        // Same labels, other namespace: a Service of shop does not select it.
        mk_deployment("web", "petstore", json!({"app": "petstore"}), "petstore"),
    ];
    s.services = vec![
        annotated(
            mk_service("shop", "petstore", json!({"app": "petstore"}), json!([{"port": 80}])),
            "apis/petstore.yaml",
        ),
        // Also names the inventory's description: kept once, from the Deployment.
        annotated(
            mk_service("shop", "inventory", json!({"app": "inventory"}), json!([{"port": 80}])),
            "apis/inventory.binpb",
        ),
        // Without a selector, a Service selects nothing.
        annotated(
            mk_service("shop", "headless", json!(null), json!([{"port": 80}])),
            "apis/x.yaml",
        ),
    ];
    let (described, bad) = annotated_workloads(&s.to_state());
    let got: Vec<(String, Vec<(String, String)>)> = described
        .iter()
        .map(|d| {
            (
                format!("{} {}/{}", d.kind.as_str(), d.namespace, d.name),
                d.apis.iter().map(|(a, by)| (a.to_string(), by.clone())).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "Deployment shop/inventory".to_string(),
                vec![
                    (
                        "apis/inventory.binpb".to_string(),
                        "Deployment shop/inventory".to_string()
                    ),
                    (
                        "apis/petstore.yaml".to_string(),
                        "Deployment shop/inventory".to_string()
                    ),
                ]
            ),
            (
                "Deployment shop/petstore".to_string(),
                vec![("apis/petstore.yaml".to_string(), "Service shop/petstore".to_string())]
            ),
        ]
    );
    assert_eq!(bad.len(), 1);
    assert_eq!(
        bad[0].to_string(),
        "Deployment shop/inventory: metadata.annotations[meshward.io/api-description]: \"nokey\" is not <configmap>/<key>"
    );
}

/// Namespace `shop` with `apis` (the inventory descriptors, the Petstore
/// document), Deployments `inventory` and `petstore`, and `allowlists`.
fn described_shop(petstore_annotation: Option<&str>, allowlists: Vec<(&str, Value)>) -> Snapshot {
    let mut s = with_documents(json!({"paths": ["/x"]}));
    s.pods.clear();
    let petstore = mk_deployment("shop", "petstore", json!({"app": "petstore"}), "petstore");
    s.deployments = vec![
        mk_deployment("shop", "inventory", json!({"app": "inventory"}), "inventory"),
        match petstore_annotation {
            Some(a) => annotated(petstore, a),
            None => petstore,
        },
    ];
    s.allowlists = allowlists
        .into_iter()
        .map(|(name, spec)| mk_allowlist("shop", name, spec))
        .collect();
    s
}

fn lint_lines(s: &Snapshot) -> Vec<String> {
    meshward_control::lint::lint_snapshot(s, &settings())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn lint_reports_unreachable_operations_of_described_workloads() {
    let inventory = json!({"selector": {"matchLabels": {"app": "inventory"}}, "rules": [{
        "from": [{"principals": ["cluster.local/ns/web/sa/storefront"]}],
        "to": [{"grpc": {"service": "shop.inventory.v1.Inventory", "methods": ["GetItem", "ListItems"],
                 "api": {"configMap": "apis", "key": "inventory.binpb"}}}]
    }]});
    let petstore = json!({"selector": {"matchLabels": {"app": "petstore"}}, "rules": [
        {"from": [{"principals": ["cluster.local/ns/web/sa/storefront"]}],
         "to": [{"methods": ["GET"], "paths": ["/api/v3/pet/{*}", "/api/v3/store/*", "/api/v3/user/{*}"]}]},
        // Callers that are a selector matching nothing admit nobody: no operation counts as reachable.
        {"from": [{"workloads": {"selector": {"matchLabels": {"app": "ghost"}}}}],
         "to": [{"paths": ["/api/v3/pet"]}]}
    ]});
    let s = described_shop(
        Some("apis/petstore.yaml"),
        vec![("inventory", inventory.clone()), ("petstore", petstore)],
    );
    let lines = lint_lines(&s);
    // gRPC: only the service the entry names (not Admin, which no annotation names).
    assert!(
        lines.contains(
            &"Deployment shop/inventory: apis/inventory.binpb: 1 of 3 operations unreachable, no rule admits them: \
          shop.inventory.v1.Inventory/Reserve"
                .to_string()
        ),
        "{lines:#?}"
    );
    // OpenAPI: GET on the hand-written templates reaches the GET operations,
    // and /api/v3/pet/{*} also admits GET /api/v3/pet/findByStatus, as the
    // filter would (the engine judges).
    let unreachable = lines
        .iter()
        .find(|l| l.starts_with("Deployment shop/petstore: apis/petstore.yaml: "))
        .unwrap();
    assert_eq!(
        unreachable,
        "Deployment shop/petstore: apis/petstore.yaml: 11 of 19 operations unreachable, no rule admits them: \
         addPet, createUser, createUsersWithListInput, deleteOrder, deletePet, deleteUser, placeOrder, updatePet, \
         updatePetWithForm, updateUser, uploadFile"
    );
    // A rule without `to` admits every operation: nothing is unreachable.
    let open = json!({"selector": {"matchLabels": {"app": "petstore"}}, "rules": [
        {"from": [{"principals": ["cluster.local/ns/web/sa/storefront"]}]}]});
    let s = described_shop(
        Some("apis/petstore.yaml"),
        vec![("inventory", inventory.clone()), ("petstore", open)],
    );
    assert!(!lint_lines(&s).iter().any(|l| l.starts_with("Deployment shop/petstore")));
    // Without the annotation and without an openapi entry, petstore has no description.
    let paths = json!({"selector": {"matchLabels": {"app": "petstore"}}, "rules": [
        {"to": [{"methods": ["GET"], "paths": ["/api/v3/pet/{*}"]}]}]});
    let s = described_shop(None, vec![("inventory", inventory), ("petstore", paths)]);
    assert!(!lint_lines(&s).iter().any(|l| l.contains("apis/petstore.yaml")));
}

#[test]
fn lint_reports_paths_that_match_no_documented_operation() {
    let petstore = json!({"selector": {"matchLabels": {"app": "petstore"}}, "rules": [
        {"to": [{"paths": [
            "/api/v3/store/order/10",      // a concrete path of the template /store/order/{orderId}
            "/api/v3/pet/*",               // a prefix that admits /pet/{petId}
            "/api/v3/pets",                // nothing: the document says /pet
            "/api/v3/user/{*}/avatar",     // nothing
            "regex:/api/v3/store/inv.*"    // admits /store/inventory
        ]}]},
        {"to": [{"openapi": {"api": {"configMap": "apis", "key": "petstore.yaml"}, "tags": ["user"]}}]}
    ]});
    let s = described_shop(None, vec![("petstore", petstore.clone())]);
    let found: Vec<String> = lint_lines(&s)
        .into_iter()
        .filter(|l| l.starts_with("Allowlist shop/petstore"))
        .collect();
    assert_eq!(
        found,
        [
            "Allowlist shop/petstore: rules[0].to[0].paths[2]: /api/v3/pets matches no operation of the API \
             descriptions of Deployment shop/petstore",
            "Allowlist shop/petstore: rules[0].to[0].paths[3]: /api/v3/user/{*}/avatar matches no operation of \
             the API descriptions of Deployment shop/petstore",
        ]
    );
    // An Allowlist that also selects an undescribed workload (here
    // `inventory`) may mean its paths for that one: not judged.
    let everywhere = json!({"rules": [{"to": [{"paths": ["/api/v3/pets"]}]}]});
    let s = described_shop(Some("apis/petstore.yaml"), vec![("petstore", everywhere)]);
    assert!(!lint_lines(&s).iter().any(|l| l.contains("matches no operation")));
}

#[test]
fn lint_reports_annotations_that_name_no_description() {
    let s = described_shop(Some("apis/missing.yaml,nope"), vec![]);
    let lines = lint_lines(&s);
    assert!(lines.contains(
        &"Deployment shop/petstore: metadata.annotations[meshward.io/api-description]: \"nope\" is not <configmap>/<key>"
            .to_string()
    ), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "Deployment shop/petstore: metadata.annotations[meshward.io/api-description]: apis/missing.yaml: \
         ConfigMap shop/apis has no key missing.yaml"
        )),
        "{lines:#?}"
    );
}
