//! Observed calls matched to the operations of the API descriptions their
//! workload carries ([`described_workloads`]).
//!
//! Each usable description of a workload becomes one policy of the filter's
//! own engine, with one rule per operation: for an OpenAPI operation, its
//! method on its path patterns, with the document's concrete paths its
//! templates overlap as `notPaths` (the entry `openapi: {operations: [it]}`
//! derives to); for a gRPC method, a `grpc` entry of that one method. A call
//! belongs to the operation of the first rule that admits it, so a call is
//! matched exactly as the enforced Allowlist will judge it, by the same
//! engine. gRPC operations admit only calls logged with `grpc: true` (the
//! request is judged with `content-type: application/grpc`).
//!
//! ```text
//! described_workloads(state, ns) ─▶ per workload: [Matcher (one per description)]
//! Matcher: Engine (rule i = operation i) ─▶ Evaluator::evaluate(call) ─▶ Some(i) | None
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use meshward_filter::config::{self, Policy, Rule};
use meshward_filter::{Action, Mode, PluginConfig};
use meshward_filter::{Engine, Evaluator, Reason};

use crate::apidesc::openapi::method_paths;
use crate::apidesc::{described_workloads, Api};
use crate::crd::ApiRef;
use crate::state::ClusterState;

/// One operation of a description.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// A method of a gRPC service.
    Grpc {
        /// The service's full name.
        service: String,
        /// The method's name.
        method: String,
    },
    /// An operation of an OpenAPI document.
    OpenApi {
        /// How `operations` names it: its operationId, else `METHOD /path`.
        key: String,
        /// Its method.
        method: String,
        /// Its path as the document writes it.
        path: String,
    },
}

impl Op {
    /// The method and path shown for it in summaries: `POST /svc/Method`,
    /// `GET /pet/{petId}`.
    pub fn call(&self) -> (String, String) {
        match self {
            Self::Grpc { service, method } => ("POST".into(), format!("/{service}/{method}")),
            Self::OpenApi { method, path, .. } => (method.clone(), path.clone()),
        }
    }
}

/// The operations of one description, and the engine that tells which one
/// a call is.
#[derive(Debug)]
pub struct Matcher {
    /// The ConfigMap and key of the description.
    pub api: ApiRef,
    /// Whether it is a descriptor set (else an OpenAPI document).
    pub grpc: bool,
    /// The operations; rule `i` of the engine is operation `i`.
    pub ops: Vec<Op>,
    evaluator: Evaluator,
}

impl Clone for Matcher {
    /// The same operations and compiled engine, with search state of its own.
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            grpc: self.grpc,
            ops: self.ops.clone(),
            evaluator: Evaluator::new(self.evaluator.engine().clone(), self.evaluator.selection().clone()),
        }
    }
}

impl Matcher {
    /// The index of the operation `call` is, if any.
    pub fn operation(&mut self, method: &str, path: &str, grpc: bool) -> Option<usize> {
        let request = crate::apidesc::operation_request(method, path, grpc);
        match self.evaluator.evaluate(&request).reason {
            Reason::Matched(r) => Some(r.rule as usize),
            _ => None,
        }
    }
}

/// The API descriptions of the workloads, ready to match calls.
#[derive(Debug, Clone, Default)]
pub struct Apis {
    /// (namespace, workload) → one matcher per usable description.
    pub(super) workloads: BTreeMap<(String, String), Vec<Matcher>>,
    /// Descriptions that cannot be used, as `namespace/workload: source:
    /// why`, sorted.
    pub warnings: Vec<String>,
}

impl Apis {
    /// The descriptions of the workloads of `namespaces` (every namespace of
    /// `state` when `None`).
    pub fn of(state: &ClusterState, namespaces: Option<&str>) -> Self {
        let mut apis = Self::default();
        let all: Vec<String> = match namespaces {
            Some(ns) => vec![ns.to_string()],
            None => state.namespaces().map(|(n, _)| n.to_string()).collect(),
        };
        for ns in all {
            for w in described_workloads(state, &ns) {
                let mut matchers = Vec::new();
                for d in w.apis {
                    let at = || format!("{ns}/{}: {} {}", w.name, d.source, crate::apidesc::API_ANNOTATION);
                    let api = match d.api {
                        Ok(api) => api,
                        Err(e) => {
                            apis.warnings.push(format!("{}: {e}", at()));
                            continue;
                        }
                    };
                    let api_ref = ApiRef {
                        config_map: d.config_map.clone(),
                        key: d.key.clone(),
                    };
                    match matcher(api, api_ref) {
                        Ok(m) => matchers.push(m),
                        Err(e) => apis
                            .warnings
                            .push(format!("{}: {}/{}: not judged: {e}", at(), d.config_map, d.key)),
                    }
                }
                if !matchers.is_empty() {
                    apis.workloads.insert((ns.clone(), w.name), matchers);
                }
            }
        }
        apis.warnings.sort();
        apis
    }

    /// Whether workload `name` of `ns` has a usable description.
    pub fn describes(&self, ns: &str, name: &str) -> bool {
        self.workloads.contains_key(&(ns.to_string(), name.to_string()))
    }
}

/// The matcher of one description.
fn matcher(api: Api<'_>, api_ref: ApiRef) -> Result<Matcher, String> {
    let mut ops = Vec::new();
    let mut rules = Vec::new();
    match api {
        Api::Grpc(g) => {
            for service in g.services() {
                for m in g.methods(service).unwrap_or_default() {
                    ops.push(Op::Grpc {
                        service: service.to_string(),
                        method: m.name.clone(),
                    });
                    rules.push(vec![config::Operation {
                        grpc: Some(config::GrpcMethods {
                            service: service.to_string(),
                            methods: vec![m.name.clone()],
                        }),
                        ..config::Operation::default()
                    }]);
                }
            }
        }
        Api::OpenApi(doc) => {
            for op in doc.operations() {
                ops.push(Op::OpenApi {
                    key: op.key.clone(),
                    method: op.method.clone(),
                    path: op.path.clone(),
                });
                let to = method_paths(doc, &[op])
                    .into_iter()
                    .map(|mp| config::Operation {
                        methods: Some(mp.methods),
                        paths: Some(mp.paths),
                        not_paths: (!mp.not_paths.is_empty()).then_some(mp.not_paths),
                        ..config::Operation::default()
                    })
                    .collect();
                rules.push(to);
            }
        }
    }
    let config = PluginConfig {
        policies: vec![Policy {
            name: "operations".into(),
            selector: None,
            mode: Some(Mode::Enforce),
            action: Action::Allow,
            rules: rules
                .into_iter()
                .map(|to| Rule {
                    to: Some(to),
                    ..Rule::default()
                })
                .collect(),
        }],
        ..PluginConfig::default()
    };
    let engine = Engine::compile(&config).map_err(|e| e.to_string())?;
    let selection = engine.select(|_| None);
    Ok(Matcher {
        api: api_ref,
        grpc: matches!(api, Api::Grpc(_)),
        ops,
        evaluator: Evaluator::new(Arc::new(engine), selection),
    })
}
