//! Criterion benchmark of API descriptions: a 5 MB protobuf descriptor set and
//! a 5 MB OpenAPI document (JSON and YAML), each from the ConfigMap as the API
//! server sends it (JSON; a descriptor set base64-encoded in `binaryData`) to
//! the namespace's derived WasmPlugin:
//! `cargo bench -p meshward-control --bench apidesc --profile profiling`.
// criterion_group! defines an undocumented public function; set-up failures
// should stop the benchmark.
#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::jiff::Timestamp;
use meshward_control::apidesc::{GrpcApi, OpenApi};
use meshward_control::derive::derive_namespace;
use meshward_control::state::wire::{object_of, ConfigMapWire};
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet, MethodDescriptorProto,
    ServiceDescriptorProto,
};
use serde_json::json;

#[path = "../tests/common/mod.rs"]
mod common;

/// A descriptor set shaped like a large real API: 42 files, each a package
/// with one service of 20 methods and 60 messages of 25 documented-size
/// fields (messages are most of a real descriptor set's bytes).
fn descriptor_set() -> Vec<u8> {
    let mut set = FileDescriptorSet::default();
    for f in 0..42 {
        let package = format!("corp.domain{f}.v1");
        let messages = (0..60)
            .map(|m| DescriptorProto {
                name: Some(format!("Message{m}WithAReasonablyLongName")),
                field: (0..25)
                    .map(|i| FieldDescriptorProto {
                        name: Some(format!("field_number_{i}_of_message")),
                        number: Some(i + 1),
                        label: Some(Label::Optional as i32),
                        r#type: Some(if i % 3 == 0 { Type::Message } else { Type::String } as i32),
                        type_name: (i % 3 == 0)
                            .then(|| format!(".{package}.Message{}WithAReasonablyLongName", (m + 1) % 60)),
                        json_name: Some(format!("fieldNumber{i}OfMessage")),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let service = ServiceDescriptorProto {
            name: Some(format!("Service{f}")),
            method: (0..20)
                .map(|m| MethodDescriptorProto {
                    name: Some(format!("Method{m:02}")),
                    input_type: Some(format!(".{package}.Message{m}WithAReasonablyLongName")),
                    output_type: Some(format!(".{package}.Message{}WithAReasonablyLongName", m + 20)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        set.file.push(FileDescriptorProto {
            name: Some(format!("corp/domain{f}/v1/api.proto")),
            package: Some(package),
            message_type: messages,
            service: vec![service],
            syntax: Some("proto3".into()),
            ..Default::default()
        });
    }
    set.encode_to_vec()
}

/// A 5 MB OpenAPI document from a real one: the Box Platform API
/// (`tests/data/openapi/box.json`, 296 operations, 1.7 MB as published,
/// 0.7 MB compact) with its paths repeated under more prefixes
/// (operationIds suffixed) until its compact JSON reaches 5 MB. Returns it
/// and the number of copies of the paths.
fn openapi_document() -> (serde_json::Value, usize) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/openapi/box.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap().clone();
    let mut copies = 1;
    while serde_json::to_string(&doc).unwrap().len() < 5_000_000 {
        let copy = copies;
        copies += 1;
        let out = doc["paths"].as_object_mut().unwrap();
        for (p, item) in &paths {
            let mut item = item.clone();
            for op in item.as_object_mut().unwrap().values_mut() {
                if let Some(id) = op.get("operationId").and_then(|i| i.as_str()).map(str::to_string) {
                    op["operationId"] = json!(format!("{id}_{copy}"));
                }
            }
            out.insert(format!("/copy{copy}{p}"), item);
        }
    }
    (doc, copies)
}

/// The namespace `shop` with one Allowlist of five `openapi` entries on the
/// key `key` of ConfigMap `api`, each selecting one tag.
fn openapi_state(key: &str) -> meshward_control::state::ClusterState {
    let mut s = common::snapshot();
    s.namespaces.push(common::mk_ns("shop", Some("enabled")));
    s.pods
        .push(common::mk_pod("shop", "api-1", json!({"app": "api"}), Some("api")));
    let tags = ["Files", "Folders", "Users", "Groups", "Collaborations"];
    s.allowlists.push(common::mk_allowlist(
        "shop",
        "api",
        json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
            "to": tags.iter().map(|t| json!({"openapi": {"api": {"configMap": "api", "key": key}, "tags": [t]}})).collect::<Vec<_>>()
        }]}),
    ));
    s.to_state()
}

fn bench(c: &mut Criterion) {
    let bytes = descriptor_set();
    assert!(bytes.len() >= 5_000_000, "{} bytes", bytes.len());
    eprintln!("descriptor set: {} bytes", bytes.len());
    let cm = common::mk_config_map("shop", "api", true, &[("api.binpb", bytes.clone())], &[]);
    // As the API server sends it: JSON, the set base64-encoded.
    let wire = serde_json::to_vec(&cm).unwrap();
    let mut s = common::snapshot();
    s.namespaces.push(common::mk_ns("shop", Some("enabled")));
    s.pods
        .push(common::mk_pod("shop", "api-1", json!({"app": "api"}), Some("api")));
    s.allowlists.push(common::mk_allowlist(
        "shop",
        "api",
        json!({"selector": {"matchLabels": {"app": "api"}}, "rules": [{
            "to": (0..5).map(|i| json!({"grpc": {"service": format!("corp.domain{i}.v1.Service{i}"), "methods": ["*"],
                "api": {"configMap": "api", "key": "api.binpb"}}})).collect::<Vec<_>>()
        }]}),
    ));
    let state = s.to_state();
    let settings = common::settings();
    let now = Timestamp::UNIX_EPOCH;

    // Once, checked: the ConfigMap arrives, the namespace derives with every
    // method of five services.
    let mut st = state.clone();
    let object = object_of::<ConfigMapWire>(&serde_json::from_slice(&wire).unwrap())
        .unwrap()
        .unwrap();
    assert!(!st.apply(object).derive.is_empty());
    let d = derive_namespace(&st, "shop", &settings, now);
    assert_eq!(d.statuses[0].status.conditions[0].status, "True", "{d:#?}");
    let json = serde_json::to_string(&d.wasm_plugins[0].spec.plugin_config).unwrap();
    assert_eq!(json.matches("Method").count(), 100);
    eprintln!("descriptor ConfigMap: {} bytes of JSON", wire.len());

    let mut group = c.benchmark_group("apidesc");
    group.sample_size(10);
    group.bench_function("decode_5mb_descriptor_set", |b| {
        b.iter(|| black_box(GrpcApi::decode(black_box(&bytes)).unwrap()))
    });
    group.bench_function("5mb_descriptor_config_map_json_to_derived_namespace", |b| {
        b.iter(|| {
            let mut st = state.clone();
            let value: serde_json::Value = serde_json::from_slice(black_box(&wire)).unwrap();
            let object = object_of::<ConfigMapWire>(&value).unwrap().unwrap();
            st.apply(object);
            black_box(derive_namespace(&st, "shop", &settings, now))
        })
    });

    // OpenAPI, JSON and YAML.
    let (doc, copies) = openapi_document();
    let json_text = serde_json::to_string(&doc).unwrap();
    let yaml_text = meshward_control::manifests::to_yaml(&doc).unwrap();
    eprintln!(
        "OpenAPI document: {} operations, {} bytes of JSON, {} of YAML",
        copies * 296,
        json_text.len(),
        yaml_text.len()
    );
    assert!(json_text.len() >= 5_000_000 && yaml_text.len() >= 5_000_000);
    for (name, key, text) in [("json", "api.json", &json_text), ("yaml", "api.yaml", &yaml_text)] {
        assert_eq!(OpenApi::parse(text).unwrap().operations().len(), copies * 296);
        let cm = common::mk_config_map("shop", "api", true, &[], &[(key, text.as_str())]);
        let wire = serde_json::to_vec(&cm).unwrap();
        let state = openapi_state(key);
        let mut st = state.clone();
        let object = object_of::<ConfigMapWire>(&serde_json::from_slice(&wire).unwrap())
            .unwrap()
            .unwrap();
        assert!(!st.apply(object).derive.is_empty());
        let d = derive_namespace(&st, "shop", &settings, now);
        assert_eq!(d.statuses[0].status.conditions[0].status, "True", "{d:#?}");
        group.bench_function(format!("parse_5mb_openapi_{name}"), |b| {
            b.iter(|| black_box(OpenApi::parse(black_box(text)).unwrap()))
        });
        group.bench_function(
            format!("5mb_openapi_{name}_config_map_json_to_derived_namespace"),
            |b| {
                b.iter(|| {
                    let mut st = state.clone();
                    let value: serde_json::Value = serde_json::from_slice(black_box(&wire)).unwrap();
                    let object = object_of::<ConfigMapWire>(&value).unwrap().unwrap();
                    st.apply(object);
                    black_box(derive_namespace(&st, "shop", &settings, now))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
