//! Criterion benchmark of the derivation at cluster scale:
//! `cargo bench -p meshward-control --bench derive --profile profiling`.
// criterion_group! defines an undocumented public function; set-up failures
// should stop the benchmark.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use k8s_openapi::jiff::Timestamp;
use meshward_control::derive::derive;
use meshward_control::state::Snapshot;
use serde_json::json;

#[path = "../tests/common/mod.rs"]
mod common;

/// `namespaces` enabled namespaces, each with 100 Deployments (10 pods
/// each), 100 Services with a named target port and 100 Allowlists: each
/// Allowlist protects one workload and admits the next one through a
/// workload selector and a service port.
fn cluster(namespaces: usize) -> Snapshot {
    let mut s = common::snapshot();
    for n in 0..namespaces {
        let ns = format!("ns{n}");
        s.namespaces.push(common::mk_ns(&ns, Some("enabled")));
        for w in 0..100 {
            let app = format!("w{w}");
            s.deployments.push(common::mk_deployment(
                &ns,
                &app,
                json!({"app": app}),
                &format!("sa-{w}"),
            ));
            for p in 0..10 {
                s.pods.push(common::mk_pod(
                    &ns,
                    &format!("{app}-{p}"),
                    json!({"app": app}),
                    Some(&format!("sa-{w}")),
                ));
            }
            s.services.push(common::mk_service(
                &ns,
                &app,
                json!({"app": app}),
                json!([{"name": "http", "port": 80, "targetPort": "http"}]),
            ));
            s.allowlists.push(common::mk_allowlist(
                &ns,
                &app,
                json!({"selector": {"matchLabels": {"app": app}}, "rules": [{
                    "name": "callers",
                    "from": [{"workloads": {"selector": {"matchLabels": {"app": format!("w{}", (w + 1) % 100)}}}}],
                    "to": [{"methods": ["GET", "POST"], "paths": [format!("/{app}/*")], "servicePorts": [{"service": app, "port": "http"}]}]
                }]}),
            ));
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let snapshot = cluster(100);
    assert_eq!(
        (
            snapshot.deployments.len(),
            snapshot.pods.len(),
            snapshot.allowlists.len()
        ),
        (10_000, 100_000, 10_000)
    );
    let s = snapshot.to_state();
    let settings = common::settings();
    let now = Timestamp::UNIX_EPOCH;
    let d = derive(&s, &settings, now);
    assert_eq!(d.wasm_plugins.len(), 100);
    assert!(d
        .statuses
        .iter()
        .all(|st| st.status.conditions.iter().all(|c| c.status == "True")));
    let mut group = c.benchmark_group("derive");
    group.sample_size(10);
    group.bench_function("10k_workloads_100k_pods_10k_allowlists", |b| {
        b.iter(|| black_box(derive(black_box(&s), &settings, now)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
