//! Incremental derivation equals full derivation: random sequences of
//! changes to a small cluster (namespaces enabled and disabled, pods and
//! templates coming and going, Services, Allowlists that select workloads
//! across namespaces or turn invalid, WasmPlugins in force edited) are
//! applied to the state; after each, the namespaces the state reports as
//! affected are derived again, and the result must equal deriving every
//! namespace from scratch.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use meshward_control::crd::AllowlistSpec;
use meshward_control::derive::{derive, Derivations, Enforcement, Settings, MANAGED_BY};
use meshward_control::state::{
    managed_fields, Body, ClusterState, Kind, NamespaceEntry, Object, OwnedPlugin, Service, ServicePort,
    StoredAllowlist, TargetPort, TemplateKind, Workload,
};
use proptest::prelude::*;
use serde_json::json;

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const APPS: [&str; 3] = ["x", "y", "z"];

#[derive(Debug, Clone)]
enum Op {
    Namespace(usize, Option<bool>),
    DeleteNamespace(usize),
    Pod(usize, usize, usize, usize),
    DeletePod(usize, usize),
    Template(usize, usize, usize, usize),
    DeleteTemplate(usize, usize),
    Service(usize, usize, bool),
    DeleteService(usize),
    Allowlist(usize, usize, usize, usize, usize),
    DeleteAllowlist(usize, usize),
    Plugin(usize, usize),
    DeletePlugin(usize),
    ServiceAccount(usize, usize),
}

fn workload(app: usize, sa: usize) -> Arc<Workload> {
    Arc::new(Workload {
        labels: BTreeMap::from([("app".to_string(), APPS[app].to_string())]),
        service_account: format!("sa{sa}"),
        named_ports: vec![("http".into(), 8080 + sa as u16)],
        first_port: Some(8080 + sa as u16),
    })
}

/// An Allowlist spec: protects `app`, admits callers of `caller` in
/// namespace `from_ns` through a workload selector, reaches a Service port;
/// `shape` picks among valid, cross-namespace, invalid and unreadable forms.
fn allowlist(app: usize, caller: usize, from_ns: usize, shape: usize, own: &str) -> StoredAllowlist {
    let from = match shape {
        0 => json!([{"workloads": {"selector": {"matchLabels": {"app": APPS[caller]}}}}]),
        1 => {
            json!([{"workloads": {"namespace": NAMESPACES[from_ns], "selector": {"matchLabels": {"app": APPS[caller]}}}}])
        }
        _ => json!([{"serviceAccounts": [format!("{}/sa{caller}", NAMESPACES[from_ns])]}]),
    };
    let path = if shape == 3 { "relative" } else { "/api/*" };
    let mut to = json!([{"methods": ["GET"], "paths": [path]}]);
    if shape == 4 {
        to[0]["servicePorts"] = json!([{"service": "svc", "port": "http"}]);
    }
    let spec =
        json!({"selector": {"matchLabels": {"app": APPS[app]}}, "rules": [{"name": "r", "from": from, "to": to}]});
    let spec: AllowlistSpec = serde_json::from_value(spec).unwrap();
    StoredAllowlist {
        generation: Some(1 + shape as i64),
        spec,
        unreadable: (shape == 5).then(|| format!("spec.rules[0]: unreadable in {own}")),
        status: None,
        resource_version: None,
        uid: None,
    }
}

fn apply(state: &mut ClusterState, op: &Op) -> meshward_control::state::Changes {
    let obj = |ns: usize, name: String, body: Body| Object {
        namespace: NAMESPACES[ns].into(),
        name,
        body,
    };
    match *op {
        Op::Namespace(ns, e) => state.apply(Object {
            namespace: NAMESPACES[ns].into(),
            name: NAMESPACES[ns].into(),
            body: Body::Namespace(NamespaceEntry {
                enforcement: e.map(|audit| {
                    if audit {
                        Enforcement::Audit
                    } else {
                        Enforcement::Enabled
                    }
                }),
            }),
        }),
        Op::DeleteNamespace(ns) => state.delete(Kind::Namespace, NAMESPACES[ns], NAMESPACES[ns]),
        Op::Pod(ns, i, app, sa) => state.apply(obj(ns, format!("p{i}"), Body::Pod(workload(app, sa)))),
        Op::DeletePod(ns, i) => state.delete(Kind::Pod, NAMESPACES[ns], &format!("p{i}")),
        Op::Template(ns, i, app, sa) => state.apply(obj(
            ns,
            format!("d{i}"),
            Body::Template(TemplateKind::Deployment, Some(workload(app, sa)), None),
        )),
        Op::DeleteTemplate(ns, i) => state.delete(Kind::Deployment, NAMESPACES[ns], &format!("d{i}")),
        Op::Service(ns, app, named) => state.apply(obj(
            ns,
            "svc".into(),
            Body::Service(Service {
                selector: BTreeMap::from([("app".to_string(), APPS[app].to_string())]),
                ports: vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target: if named {
                        TargetPort::Name("http".into())
                    } else {
                        TargetPort::Number(9090)
                    },
                }],
                api_descriptions: None,
            }),
        )),
        Op::DeleteService(ns) => state.delete(Kind::Service, NAMESPACES[ns], "svc"),
        Op::Allowlist(ns, i, app, caller, shape) => {
            let a = allowlist(app, caller, (ns + i + 1) % 3, shape, NAMESPACES[ns]);
            state.apply(obj(ns, format!("l{i}"), Body::Allowlist(a)))
        }
        Op::DeleteAllowlist(ns, i) => state.delete(Kind::Allowlist, NAMESPACES[ns], &format!("l{i}")),
        Op::Plugin(ns, variant) => {
            // A configuration in force: the last valid versions derivation
            // falls back on (or junk it must survive).
            let config = match variant {
                0 => json!({"policies": [{"name": format!("{}/l0", NAMESPACES[ns]), "rules": [{"name": "old"}]}]}),
                1 => json!({"policies": [{"name": format!("{}/l1", NAMESPACES[ns]), "rules": [{"name": "older"}]}]}),
                _ => json!("not a configuration"),
            };
            state.apply(obj(
                ns,
                "meshward".into(),
                Body::WasmPlugin(OwnedPlugin {
                    labels: BTreeMap::from([(MANAGED_BY.0.into(), MANAGED_BY.1.into())]),
                    managed: managed_fields(&json!({"pluginConfig": config})),
                    uid: Some(format!("u{variant}")),
                    resource_version: Some(variant.to_string()),
                    foreign_appliers: if variant == 2 {
                        vec!["argocd (spec.pluginConfig)".into()]
                    } else {
                        Vec::new()
                    },
                }),
            ))
        }
        Op::DeletePlugin(ns) => state.delete(Kind::WasmPlugin, NAMESPACES[ns], "meshward"),
        Op::ServiceAccount(ns, sa) => state.apply(obj(ns, format!("sa{sa}"), Body::ServiceAccount)),
    }
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0..3usize;
    prop_oneof![
        (ns.clone(), prop::option::of(any::<bool>())).prop_map(|(n, e)| Op::Namespace(n, e)),
        ns.clone().prop_map(Op::DeleteNamespace),
        (ns.clone(), 0..4usize, 0..3usize, 0..2usize).prop_map(|(n, i, a, s)| Op::Pod(n, i, a, s)),
        (ns.clone(), 0..4usize).prop_map(|(n, i)| Op::DeletePod(n, i)),
        (ns.clone(), 0..2usize, 0..3usize, 0..2usize).prop_map(|(n, i, a, s)| Op::Template(n, i, a, s)),
        (ns.clone(), 0..2usize).prop_map(|(n, i)| Op::DeleteTemplate(n, i)),
        (ns.clone(), 0..3usize, any::<bool>()).prop_map(|(n, a, named)| Op::Service(n, a, named)),
        ns.clone().prop_map(Op::DeleteService),
        (ns.clone(), 0..2usize, 0..3usize, 0..3usize, 0..6usize)
            .prop_map(|(n, i, a, c, s)| Op::Allowlist(n, i, a, c, s)),
        (ns.clone(), 0..2usize).prop_map(|(n, i)| Op::DeleteAllowlist(n, i)),
        (ns.clone(), 0..3usize).prop_map(|(n, v)| Op::Plugin(n, v)),
        ns.clone().prop_map(Op::DeletePlugin),
        (ns, 0..2usize).prop_map(|(n, s)| Op::ServiceAccount(n, s)),
    ]
}

fn settings() -> Settings {
    Settings {
        url: "oci://registry.example/meshward:1".into(),
        budget_bytes: 512 * 1024,
        ..Settings::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_derivation_equals_full_derivation(ops in prop::collection::vec(op(), 1..40)) {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let settings = settings();
        let mut state = ClusterState::new("cluster.local");
        let mut incremental = Derivations::default();
        for (i, op) in ops.iter().enumerate() {
            let changes = apply(&mut state, op);
            incremental.update(&state, &changes, &settings, now);
            let full = derive(&state, &settings, now);
            prop_assert_eq!(
                incremental.to_desired(),
                full,
                "after op {} of {:?}",
                i,
                &ops[..=i]
            );
        }
    }
}

#[test]
fn a_pod_in_another_namespace_re_derives_the_namespaces_that_select_it() {
    let mut state = ClusterState::new("cluster.local");
    apply(&mut state, &Op::Namespace(0, Some(false)));
    apply(&mut state, &Op::Namespace(1, Some(false)));
    // a/l0 admits app y of namespace b (shape 1: a cross-namespace selector).
    let changes = apply(&mut state, &Op::Allowlist(0, 0, 0, 1, 1));
    assert_eq!(changes.derive.iter().collect::<Vec<_>>(), ["a"]);
    let changes = apply(&mut state, &Op::Pod(1, 0, 1, 0));
    assert_eq!(
        changes.derive.iter().collect::<Vec<_>>(),
        ["a", "b"],
        "b's pod is selected by a's Allowlist"
    );
    // The same pod again (a status update) changes nothing derivation reads.
    assert!(apply(&mut state, &Op::Pod(1, 0, 1, 0)).is_empty());
    // A service account is never read by derivation.
    assert!(apply(&mut state, &Op::ServiceAccount(1, 0)).derive.is_empty());
    // Once the Allowlist no longer refers to b, b's pods affect b only.
    apply(&mut state, &Op::DeleteAllowlist(0, 0));
    let changes = apply(&mut state, &Op::Pod(1, 1, 1, 0));
    assert_eq!(changes.derive.iter().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn pods_of_one_replica_set_share_one_workload_entry() {
    let mut state = ClusterState::new("cluster.local");
    for i in 0..4 {
        apply(&mut state, &Op::Pod(0, i, 0, 0));
    }
    let ns = state.namespace("a").unwrap();
    let workloads: Vec<_> = ns.workloads().collect();
    assert_eq!(workloads.len(), 1);
    assert_eq!(workloads[0].1, 4, "four pods counted on one entry");
    assert_eq!(state.counts()[&Kind::Pod], 4);
    apply(&mut state, &Op::DeletePod(0, 0));
    assert_eq!(state.namespace("a").unwrap().workloads().next().unwrap().1, 3);
}
