//! Learn and replay for one namespace, on the cluster's own state and its
//! sidecars' logs: what `serve` answers at `POST /v1/namespaces/{ns}/learn`
//! and `.../replay`, and what `learn --namespace` and `replay --namespace`
//! do from a laptop through the kubeconfig.
//!
//! ```text
//!  lines: a namespace's sidecar logs (podlogs, pods/log) or lines given
//!    │ only lines of the namespace (others counted, not used)
//!    ▼
//!  learn:  Learner::observe (no state held) ─▶ finish(live state) ─▶ proposal
//!  replay: live state + candidates (same name replaces) ─▶ Replayer ─▶ report
//! ```
//!
//! The state is the service's (`serve`) or one listed like it ([`cluster`]);
//! learning and replay are the offline commands' own ([`crate::learn`],
//! [`crate::replay`]), so a namespace's logs give the same proposal and the
//! same report in the cluster as on files.

pub mod cluster;
pub mod podlogs;

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use thiserror::Error;

use crate::derive::{derive_namespace, Settings};
use crate::learn::described::Apis;
use crate::learn::logs::{read_text, At, LogStats, Record};
use crate::learn::{Learner, NotLearned, Options, Proposal};
use crate::replay::{Replayer, Report};
use crate::state::wire::{object_of, AllowlistWire};
use crate::state::{Body, ClusterState};

/// The name lines given in a request or read from files are placed under
/// when they come from memory (`lines:N`).
pub const LINES: &str = "lines";

/// Reads `lines` (one log line each) as one input named [`LINES`].
pub fn read_lines(lines: &[String], each: &mut dyn FnMut(Record, At)) -> LogStats {
    let mut stats = LogStats::default();
    read_text(LINES, &lines.join("\n"), &mut stats, each);
    stats
}

/// Request records of namespace `ns` only: a record of another namespace is
/// counted in `other` and dropped (the caller was authorized for `ns`).
fn of_namespace<'a>(
    ns: &'a str,
    other: &'a mut u64,
    mut each: impl FnMut(Record, At) + 'a,
) -> impl FnMut(Record, At) + 'a {
    move |record, at| {
        if record.namespace.as_deref().is_some_and(|n| n != ns) {
            *other += 1;
        } else {
            each(record, at);
        }
    }
}

/// Lines read for learning, before the state is needed.
#[derive(Debug, Clone)]
pub struct Observed {
    learner: Learner,
    /// What was read.
    pub stats: LogStats,
    /// Request lines of other namespaces, not learned from.
    pub other_namespace: u64,
}

/// What learning from a namespace's traffic gave.
#[derive(Debug, Clone)]
pub struct Learned {
    /// The proposal.
    pub proposal: Proposal,
    /// What was read.
    pub stats: LogStats,
    /// Lines learned from.
    pub learned: u64,
    /// Lines not learned from, by why.
    pub not_learned: NotLearned,
    /// Request lines of other namespaces, not learned from.
    pub other_namespace: u64,
}

/// Reads the lines `read` hands over, learning from those of namespace `ns`;
/// the workloads `apis` describes are learned in terms of their operations
/// ([`Apis::of`] the same state, taken before reading).
pub fn observe<E>(
    ns: &str,
    options: Options,
    apis: Apis,
    read: impl FnOnce(&mut dyn FnMut(Record, At)) -> Result<LogStats, E>,
) -> Result<Observed, E> {
    let mut learner = Learner::with_apis(options, apis);
    let mut other = 0;
    let stats = {
        let mut each = of_namespace(ns, &mut other, |r, at| learner.observe(r, at));
        read(&mut each)?
    };
    Ok(Observed {
        learner,
        stats,
        other_namespace: other,
    })
}

impl Observed {
    /// The proposal, for the workloads of `state`.
    pub fn finish(self, state: &ClusterState) -> Learned {
        let (learned, not_learned) = (self.learner.learned, self.learner.not_learned.clone());
        Learned {
            proposal: self.learner.finish(state),
            stats: self.stats,
            learned,
            not_learned,
            other_namespace: self.other_namespace,
        }
    }
}

/// Why candidate Allowlists were refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CandidateError {
    /// Not an Allowlist of this namespace.
    #[error("candidates[{index}]: {message}")]
    NotAnAllowlist {
        /// Its index in the list.
        index: usize,
        /// Why.
        message: String,
    },
    /// Two candidates with one name.
    #[error("candidates[{index}]: a second candidate named {name}")]
    Duplicate {
        /// The index of the second.
        index: usize,
        /// The name.
        name: String,
    },
    /// A candidate derivation refuses (it would not be enforced as written).
    #[error("candidate {name}: {reason}: {message}")]
    Invalid {
        /// Its name.
        name: String,
        /// The reason its status would give (`InvalidPath`, ...).
        reason: String,
        /// The message its status would give.
        message: String,
    },
}

/// A candidate's Ready condition, as its status would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateStatus {
    /// Its name.
    pub name: String,
    /// Whether it is part of the namespace's configuration.
    pub ready: bool,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// The namespaces the `candidates`' `from[].workloads` select workloads in,
/// as written (what [`ClusterState::excerpt`] must copy besides their own).
pub fn candidate_references(candidates: &[Value]) -> BTreeSet<String> {
    let list = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    candidates
        .iter()
        .flat_map(|c| list(c.pointer("/spec/rules")))
        .flat_map(|r| list(r.get("from")))
        .filter_map(|f| Some(f.pointer("/workloads/namespace")?.as_str()?.to_string()))
        .collect()
}

/// Puts the `candidates` (Allowlists as JSON or YAML objects; without a
/// namespace they are in `ns`) into `state` in place of the Allowlists of the
/// same name, and checks them with a derivation of `ns`: each candidate's
/// status, or why one is refused (not an Allowlist of `ns`, a name given
/// twice, a spec the types cannot read, a rule the engine refuses).
pub fn apply_candidates(
    state: &mut ClusterState,
    ns: &str,
    candidates: &[Value],
    settings: &Settings,
) -> Result<Vec<CandidateStatus>, CandidateError> {
    let mut names: Vec<String> = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let refuse = |message: String| CandidateError::NotAnAllowlist { index, message };
        let mut candidate = candidate.clone();
        let Some(object) = candidate.as_object_mut() else {
            return Err(refuse("not an object".into()));
        };
        if let Some(kind) = object.get("kind").filter(|k| *k != "Allowlist") {
            return Err(refuse(format!("kind {kind}, not Allowlist")));
        }
        if let Some(v) = object.get("apiVersion").filter(|v| *v != "meshward.io/v1alpha1") {
            return Err(refuse(format!("apiVersion {v}, not meshward.io/v1alpha1")));
        }
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return Err(refuse("metadata is not an object".into()));
        };
        match meta.get("namespace") {
            None | Some(Value::Null) => {
                meta.insert("namespace".into(), ns.into());
            }
            Some(n) if n == ns => {}
            Some(other) => return Err(refuse(format!("namespace {other}, not {ns}"))),
        }
        let object = object_of::<AllowlistWire>(&candidate).map_err(|e| refuse(e.to_string()))?;
        let Some(object) = object else {
            return Err(refuse("metadata.name is missing".into()));
        };
        if !is_object_name(&object.name) {
            return Err(refuse(format!("metadata.name {:?} is not an object name", object.name)));
        }
        if names.contains(&object.name) {
            return Err(CandidateError::Duplicate {
                index,
                name: object.name,
            });
        }
        if let Body::Allowlist(a) = &object.body {
            if let Some(why) = &a.unreadable {
                return Err(CandidateError::Invalid {
                    name: object.name,
                    reason: "InvalidSpec".into(),
                    message: why.clone(),
                });
            }
        }
        names.push(object.name.clone());
        state.apply(object);
    }
    let derived = derive_namespace(state, ns, settings, Timestamp::now());
    let mut statuses = Vec::new();
    for name in names {
        let ready = derived
            .statuses
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.status.conditions.iter().find(|c| c.type_ == "Ready"));
        let status = match ready {
            Some(c) => CandidateStatus {
                name,
                ready: c.status == "True",
                reason: c.reason.clone(),
                message: c.message.clone(),
            },
            None => CandidateStatus {
                name,
                ready: false,
                reason: "NotDerived".into(),
                message: "derivation gave it no status".into(),
            },
        };
        if refused(&status.reason) {
            return Err(CandidateError::Invalid {
                name: status.name,
                reason: status.reason,
                message: status.message,
            });
        }
        statuses.push(status);
    }
    Ok(statuses)
}

/// An RFC 1123 subdomain, as Kubernetes requires of an Allowlist's name.
fn is_object_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether a Ready reason says the Allowlist is not enforced as written
/// (derivation would keep its last valid version instead).
fn refused(reason: &str) -> bool {
    reason.starts_with("Invalid") || reason == "UnresolvedServicePort" || reason == "NamespaceConfigRejected"
}

/// What replaying a namespace's traffic gave.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The report, as `replay` gives it.
    pub report: Report,
    /// What was read.
    pub stats: LogStats,
    /// Request lines of other namespaces, not replayed.
    pub other_namespace: u64,
}

/// Replays the lines `read` hands over that are of namespace `ns`, against
/// the policies derived from `state`.
pub fn replay<E>(
    state: &ClusterState,
    ns: &str,
    settings: Settings,
    read: impl FnOnce(&mut dyn FnMut(Record, At)) -> Result<LogStats, E>,
) -> Result<Replayed, E> {
    let mut replayer = Replayer::new(state, settings);
    let mut other = 0;
    let stats = {
        let mut each = of_namespace(ns, &mut other, |r, at| replayer.replay(r, at));
        read(&mut each)?
    };
    Ok(Replayed {
        report: replayer.finish(&stats),
        stats,
        other_namespace: other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> ClusterState {
        state_with("")
    }

    /// The namespace `shop` of [`state`], and the objects of `more`.
    fn state_with(more: &str) -> ClusterState {
        let text = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {meshward.io/enforcement: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: api-1, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}
---
apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{name: r, to: [{methods: [GET], paths: ["/a"]}]}]
"#;
        let sources = [
            crate::manifests::Source {
                name: "m.yaml".into(),
                text: text.into(),
            },
            crate::manifests::Source {
                name: "more.yaml".into(),
                text: more.into(),
            },
        ];
        crate::manifests::load_sources(&sources, "cluster.local")
            .unwrap()
            .snapshot
            .to_state()
    }

    fn line(ns: &str, path: &str) -> String {
        format!(
            r#"meshward.request {{"method":"GET","path":"{path}","workload":"api-1","namespace":"{ns}","verdict":"allow","port":8080}}"#
        )
    }

    fn replayed(state: &ClusterState, lines: &[String]) -> Replayed {
        let settings = Settings::default();
        replay(state, "shop", settings, |each| Ok::<_, ()>(read_lines(lines, each))).unwrap()
    }

    /// The state the service holds keeps the annotation and the labelled
    /// ConfigMap, so learning from it proposes operations, as offline.
    #[test]
    fn a_described_workload_is_learned_in_operations() {
        let state = state_with(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
  namespace: shop
  annotations: {meshward.io/api-description: apis/orders.yaml}
spec:
  selector: {matchLabels: {app: orders}}
  template: {metadata: {labels: {app: orders}}, spec: {containers: [{name: c}]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: apis, namespace: shop, labels: {meshward.io/api-description: "true"}}
data:
  orders.yaml: "openapi: 3.0.0\npaths: {'/orders/{id}': {get: {operationId: getOrder}}}\n"
"#,
        );
        let lines: Vec<String> = ["/orders/7", "/orders/7/lines"]
            .iter()
            .map(|p| line("shop", p).replace("api-1", "orders"))
            .collect();
        let apis = Apis::of(&state, Some("shop"));
        assert!(apis.describes("shop", "orders") && apis.warnings.is_empty(), "{apis:?}");
        let observed = observe("shop", Options::default(), apis, |each| {
            Ok::<_, ()>(read_lines(&lines, each))
        })
        .unwrap();
        let learned = observed.finish(&state);
        let to = serde_json::to_value(&learned.proposal.allowlists[0].spec.rules[0].to).unwrap();
        assert_eq!(
            to,
            json!([
                {"openapi": {"api": {"configMap": "apis", "key": "orders.yaml"}, "operations": ["getOrder"]},
                 "ports": [8080]},
                {"methods": ["GET"], "paths": ["/orders/{*}/lines"], "ports": [8080]}
            ])
        );
        assert_eq!(learned.proposal.undocumented.len(), 1);
    }

    #[test]
    fn a_candidate_replaces_the_live_allowlist_of_its_name_and_other_namespaces_are_not_replayed() {
        let lines = [line("shop", "/b"), line("blog", "/b")];
        let live = state();
        let r = replayed(&live, &lines);
        assert_eq!((r.report.replayed, r.report.denied, r.other_namespace), (1, 1, 1));
        let mut candidate = live.clone();
        let wider = json!({"metadata": {"name": "api"}, "spec": {"selector": {"matchLabels": {"app": "api"}},
            "rules": [{"name": "r", "to": [{"methods": ["GET"], "paths": ["/a", "/b"]}]}]}});
        let statuses = apply_candidates(&mut candidate, "shop", &[wider], &Settings::default()).unwrap();
        assert!(statuses[0].ready, "{statuses:?}");
        let r = replayed(&candidate, &lines);
        assert_eq!((r.report.replayed, r.report.denied), (1, 0));
        assert_eq!(r.stats.place(&At { file: 0, line: 1 }).to_string(), "lines:1");
    }

    #[test]
    fn an_excerpt_derives_its_namespace_as_the_whole_cluster_does() {
        let text = r#"
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {meshward.io/enforcement: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: blog, labels: {meshward.io/enforcement: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: front-1, namespace: web, labels: {app: front}}
spec: {serviceAccountName: front, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: admin-1, namespace: blog, labels: {app: admin}}
spec: {serviceAccountName: admin, containers: [{name: c}]}
"#;
        let mut state = state_with(text);
        let settings = Settings::default();
        let from = |ns: &str, app: &str| {
            json!({"metadata": {"name": "api"}, "spec": {"selector": {"matchLabels": {"app": "api"}},
                "rules": [{"name": "r", "from": [{"workloads": {"namespace": ns, "selector": {"matchLabels": {"app": app}}}}],
                           "to": [{"methods": ["GET"], "paths": ["/a"]}]}]}})
        };
        // The live Allowlist selects callers in `web`; the candidate in `blog`.
        apply_candidates(&mut state, "shop", &[from("web", "front")], &settings).unwrap();
        let candidate = [from("blog", "admin")];
        let refs = candidate_references(&candidate);
        assert_eq!(refs, BTreeSet::from(["blog".to_string()]));
        let live = state.excerpt("shop", []);
        assert_eq!(
            live.namespaces().map(|(n, _)| n).collect::<Vec<_>>(),
            ["shop", "web"],
            "its own and the one its Allowlist selects in, not blog"
        );
        let mut whole = state.clone();
        let mut part = state.excerpt("shop", refs.iter().map(String::as_str));
        apply_candidates(&mut whole, "shop", &candidate, &settings).unwrap();
        apply_candidates(&mut part, "shop", &candidate, &settings).unwrap();
        let at = Timestamp::UNIX_EPOCH;
        let (w, p) = (
            derive_namespace(&whole, "shop", &settings, at),
            derive_namespace(&part, "shop", &settings, at),
        );
        assert_eq!(
            serde_json::to_value(&w.wasm_plugins).unwrap(),
            serde_json::to_value(&p.wasm_plugins).unwrap()
        );
        let principals = serde_json::to_string(&p.wasm_plugins).unwrap();
        assert!(principals.contains("cluster.local/ns/blog/sa/admin"), "{principals}");
    }

    #[test]
    fn candidates_that_would_not_be_enforced_as_written_are_refused() {
        let settings = Settings::default();
        let spec = |path: &str| json!({"rules": [{"to": [{"paths": [path]}]}]});
        let cases = [
            (json!({"kind": "Pod", "metadata": {"name": "x"}}), "kind"),
            (
                json!({"metadata": {"name": "x", "namespace": "blog"}, "spec": spec("/a")}),
                "namespace",
            ),
            (json!({"metadata": {}, "spec": spec("/a")}), "metadata.name"),
            (
                json!({"metadata": {"name": "../X"}, "spec": spec("/a")}),
                "not an object name",
            ),
            (
                json!({"metadata": {"name": "x"}, "spec": spec("relative")}),
                "InvalidPath",
            ),
            (json!({"metadata": {"name": "x"}, "spec": {"rules": 7}}), "InvalidSpec"),
            (json!([1]), "not an object"),
        ];
        for (candidate, expected) in cases {
            let e = apply_candidates(&mut state(), "shop", std::slice::from_ref(&candidate), &settings).unwrap_err();
            assert!(e.to_string().contains(expected), "{candidate}: {e}");
        }
        let twice = json!({"metadata": {"name": "x"}, "spec": spec("/a")});
        let e = apply_candidates(&mut state(), "shop", &[twice.clone(), twice], &settings).unwrap_err();
        assert!(matches!(e, CandidateError::Duplicate { index: 1, .. }), "{e}");
    }
}
