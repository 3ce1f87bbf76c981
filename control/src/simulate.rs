//! Simulation: what the filter would decide for one request to one workload,
//! on the configuration derived from the cluster (or from manifests). Behind
//! `meshward-control check` and the service's `POST /v1/simulate`; the same
//! derivation as the service, then the filter's own engine.
//!
//! A denied request is explained by its **nearest rule**: every rule of the
//! policies that applied is taken apart (the caller, each field of each `to`
//! entry, each `when` condition) and each part is judged on its own by the
//! engine, as a one-part rule; the rule with the fewest failing parts is
//! reported with those parts. The engine stays the only judge of what
//! matches, so the explanation cannot disagree with the verdict.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use meshward_filter::config::{self, Operation, PluginConfig, Policy, Rule};
use meshward_filter::{is_grpc, Action, Engine, Evaluator, Headers, Mode, Reason, Request, RuleRef, Verdict};
use thiserror::Error;

use crate::derive::{derive_namespace, selects, Settings, WasmPlugin, DEFAULT_SERVICE_ACCOUNT, ENFORCEMENT_LABEL};
use crate::state::ClusterState;

/// Why a check could not run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckError {
    /// `--to` names no Deployment, StatefulSet, DaemonSet or Pod.
    #[error("--to {0}: no Deployment, StatefulSet, DaemonSet or Pod of that name")]
    UnknownWorkload(String),
    /// An argument is not of the form the flag takes.
    #[error("{flag}: {value:?}: expected {expected}")]
    BadArgument {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// The expected form.
        expected: &'static str,
    },
    /// The derived configuration does not compile (a bug: derivation validates).
    #[error("derived configuration rejected: {0}")]
    Config(String),
}

/// A simulated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `<namespace>/<serviceaccount>` of the caller; `None` = anonymous.
    pub from: Option<String>,
    /// The caller as a principal (`<trust domain>/ns/<ns>/sa/<sa>`), used
    /// instead of `from` when set.
    pub principal: Option<String>,
    /// `<namespace>/<workload>` receiving the request.
    pub to: String,
    /// `METHOD /path`.
    pub request: String,
    /// `:authority`; absent = the workload's name.
    pub host: Option<String>,
    /// Destination port; absent = the workload's first container port.
    pub port: Option<u16>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// `policy/rule` that admitted the request.
    pub rule: Option<String>,
    /// Human-readable explanation.
    pub explanation: String,
    /// For a denied request: the nearest rule and what of it failed.
    pub nearest: Option<Nearest>,
    /// Things about the check itself worth knowing (a caller that does not
    /// exist in the cluster or manifests).
    pub warnings: Vec<String>,
}

/// The rule that came closest to admitting a denied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nearest {
    /// `policy/rule`.
    pub rule: String,
    /// The parts of the rule the request does not satisfy (at least one).
    pub failed: Vec<Failed>,
}

/// One part of a rule a request does not satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// `caller`, `method`, `path`, `grpc`, `host`, `port` or `header`.
    pub part: &'static str,
    /// What the request has and what the rule asks, in words.
    pub detail: String,
}

impl fmt::Display for Outcome {
    /// The verdict line, then for a denial the nearest rule and each part of
    /// it that failed, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.verdict.as_str(), self.explanation)?;
        if let Some(n) = &self.nearest {
            write!(f, "\n  nearest rule {}:", n.rule)?;
            for p in &n.failed {
                write!(f, "\n    {}: {}", p.part, p.detail)?;
            }
        }
        Ok(())
    }
}

fn split_ns<'a>(flag: &'static str, value: &'a str, expected: &'static str) -> Result<(&'a str, &'a str), CheckError> {
    match value.split_once('/') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('/') => Ok((a, b)),
        _ => Err(CheckError::BadArgument {
            flag,
            value: value.into(),
            expected,
        }),
    }
}

/// Labels and first container port of the workload `name` in `ns`: a
/// Deployment, StatefulSet or DaemonSet of that name (in that order), else a
/// pod.
fn workload(s: &ClusterState, ns: &str, name: &str) -> Option<(BTreeMap<String, String>, Option<u16>)> {
    s.namespace(ns)?
        .workload_named(name)
        .map(|w| (w.labels.clone(), w.first_port))
}

/// Simulates `check` against the configuration derived from `state`.
pub fn check(state: &ClusterState, settings: &Settings, c: &Check) -> Result<Outcome, CheckError> {
    let (ns, _) = split_ns("--to", &c.to, "<namespace>/<workload>")?;
    let desired = derive_namespace(state, ns, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    check_against(state, &desired.wasm_plugins, c)
}

/// Simulates `check` against `plugins`, the WasmPlugins of the target's
/// namespace already derived from `state` (the service reuses its last
/// derivation).
pub fn check_against(state: &ClusterState, plugins: &[WasmPlugin], c: &Check) -> Result<Outcome, CheckError> {
    let (ns, name) = split_ns("--to", &c.to, "<namespace>/<workload>")?;
    let mut warnings = Vec::new();
    let principal = match (&c.principal, &c.from) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => None,
        (None, Some(from)) => {
            let (fns, sa) = split_ns("--from", from, "<namespace>/<serviceaccount>")?;
            // Kubernetes creates `default` in every namespace.
            let exists =
                sa == DEFAULT_SERVICE_ACCOUNT || state.namespace(fns).is_some_and(|n| n.has_service_account(sa));
            if !exists {
                warnings.push(format!(
                    "--from {from}: there is no ServiceAccount {sa} in namespace {fns}; the request is judged as if it existed"
                ));
            }
            Some(format!("{}/ns/{fns}/sa/{sa}", state.trust_domain))
        }
    };
    let (method, path) = c.request.split_once(' ').ok_or_else(|| CheckError::BadArgument {
        flag: "REQUEST",
        value: c.request.clone(),
        expected: "'METHOD /path'",
    })?;
    let (labels, first_port) = workload(state, ns, name).ok_or_else(|| CheckError::UnknownWorkload(c.to.clone()))?;
    let in_ns: Vec<&WasmPlugin> = plugins
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect();
    if in_ns.is_empty() {
        return Ok(Outcome {
            verdict: Verdict::Allow,
            rule: None,
            explanation: format!("namespace {ns} is not enabled ({ENFORCEMENT_LABEL}); meshward does not filter it"),
            nearest: None,
            warnings,
        });
    }
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let request = Request {
        connection: Default::default(),
        method,
        path,
        authority: Some(c.host.as_deref().unwrap_or(name)),
        port: c.port.or(first_port),
        principal: principal.as_deref(),
        auth: None,
        headers: &headers[..],
    };
    // Every WasmPlugin delivered to the workload judges the request; it
    // reaches the workload only if none of them denies it.
    let mut outcomes = Vec::new();
    for plugin in in_ns.into_iter().filter(|p| delivered(p, &labels)) {
        outcomes.push(evaluate(plugin, &labels, &request, ns, name)?);
    }
    let by_verdict = |v: &[Verdict]| outcomes.iter().position(|(o, _)| v.contains(&o.verdict));
    let pick = by_verdict(&[Verdict::Deny, Verdict::Reject])
        .or_else(|| by_verdict(&[Verdict::AuditDeny]))
        .or_else(|| outcomes.iter().position(|(_, applied)| *applied));
    let mut chosen = match pick {
        Some(i) if i < outcomes.len() => outcomes.swap_remove(i).0,
        _ => Outcome {
            verdict: Verdict::Allow,
            rule: None,
            explanation: format!("no Allowlist selects {ns}/{name}; the request passes"),
            nearest: None,
            warnings: Vec::new(),
        },
    };
    chosen.warnings = warnings;
    Ok(chosen)
}

/// Whether `plugin` is delivered to a workload with `labels` (its selector).
pub(crate) fn delivered(plugin: &WasmPlugin, labels: &BTreeMap<String, String>) -> bool {
    plugin
        .spec
        .selector
        .as_ref()
        .is_none_or(|s| selects(&s.match_labels, Some(labels)))
}

/// One WasmPlugin's decision, and whether any of its policies applies.
fn evaluate(
    plugin: &WasmPlugin,
    labels: &BTreeMap<String, String>,
    request: &Request<'_>,
    ns: &str,
    name: &str,
) -> Result<(Outcome, bool), CheckError> {
    let engine = Engine::compile(&plugin.spec.plugin_config).map_err(|e| CheckError::Config(e.to_string()))?;
    let selection = engine.select(|k| labels.get(k).cloned());
    let mut evaluator = Evaluator::new(Arc::new(engine), selection);
    let decision = evaluator.evaluate(request);
    let engine = evaluator.engine();
    let rule = decision
        .rule()
        .map(|m| format!("{}/{}", engine.policy_name(m.policy), engine.rule_name(m)));
    let applied: Vec<&str> = engine.selected_policies(evaluator.selection()).collect();
    let caller = request.principal.unwrap_or("an anonymous caller");
    let explanation = match (decision.reason, &rule) {
        (Reason::Denied(_), Some(rule)) => format!("{caller} denied by {rule} ({} mode)", decision.mode.as_str()),
        (_, Some(rule)) => format!("{caller} admitted by {rule} ({} mode)", decision.mode.as_str()),
        (Reason::NoPolicy, _) => format!("no Allowlist selects {ns}/{name}; the request passes"),
        (Reason::NotDenied, _) => format!("no deny rule of {} matches; the request passes", applied.join(", ")),
        (Reason::Malformed(e), _) => format!("malformed request: {e}"),
        _ => format!("no rule of {} admits {caller}", applied.join(", ")),
    };
    let denied = matches!(decision.verdict, Verdict::Deny | Verdict::AuditDeny) && rule.is_none();
    let judged = decision.path.as_ref().map(|p| p.path().to_string());
    let nearest = if denied && !matches!(decision.reason, Reason::Malformed(_)) {
        nearest(&plugin.spec.plugin_config, engine, &applied, request, judged.as_deref())
    } else {
        None
    };
    let outcome = Outcome {
        verdict: decision.verdict,
        rule,
        explanation,
        nearest,
        warnings: Vec::new(),
    };
    Ok((outcome, !applied.is_empty()))
}

/// The rule of the `applied` policies of `config` with the fewest parts
/// `request` fails (the first of those), and the parts.
/// `judged` is the canonical path the engine judged, for messages.
fn nearest(
    config: &PluginConfig,
    engine: &Engine,
    applied: &[&str],
    request: &Request<'_>,
    judged: Option<&str>,
) -> Option<Nearest> {
    let mut best: Option<Nearest> = None;
    let mut first_rule = 0u32;
    for (pi, policy) in config.policies.iter().enumerate() {
        let first = first_rule;
        first_rule += policy.rules.len() as u32;
        // Only an allow rule can admit the request.
        if !applied.contains(&policy.name.as_str()) || policy.action == Action::Deny {
            continue;
        }
        for (ri, rule) in policy.rules.iter().enumerate() {
            let failed = failed_parts(rule, request, judged);
            if failed.is_empty() || best.as_ref().is_some_and(|b| b.failed.len() <= failed.len()) {
                continue;
            }
            let at = RuleRef {
                policy: pi as u32,
                rule: first + ri as u32,
            };
            best = Some(Nearest {
                rule: format!("{}/{}", policy.name, engine.rule_name(at)),
                failed,
            });
        }
    }
    best
}

/// Whether the engine admits `request` with `rule` as its only rule.
fn admits(rule: Rule, request: &Request<'_>) -> bool {
    let config = PluginConfig {
        policies: vec![Policy {
            name: "probe".into(),
            selector: None,
            mode: Some(Mode::Enforce),
            action: Action::Allow,
            rules: vec![rule],
        }],
        ..PluginConfig::default()
    };
    let Ok(engine) = Engine::compile(&config) else {
        return false;
    };
    let selection = engine.select(|_| None);
    let mut evaluator = Evaluator::new(Arc::new(engine), selection);
    evaluator.evaluate(request).verdict == Verdict::Allow
}

/// The parts of `rule` that `request` fails, each judged alone.
fn failed_parts(rule: &Rule, request: &Request<'_>, judged: Option<&str>) -> Vec<Failed> {
    let mut failed = Vec::new();
    if let Some(sources) = &rule.from {
        let admitted = sources.iter().any(|s| {
            admits(
                Rule {
                    from: Some(vec![s.clone()]),
                    ..Rule::default()
                },
                request,
            )
        });
        if !admitted {
            let caller = request
                .principal
                .map_or("anonymous (no mTLS identity)".to_string(), str::to_string);
            failed.push(Failed {
                part: "caller",
                detail: format!("{caller} is not one of the rule's callers: {}", callers(sources)),
            });
        }
    }
    if let Some(ops) = &rule.to {
        // The `to` entry with the fewest failing fields stands for the rule.
        let per_op = ops.iter().map(|op| failed_fields(op, request, judged));
        if let Some(fields) = per_op.min_by_key(Vec::len) {
            failed.extend(fields);
        }
    }
    for c in rule.when.iter().flatten() {
        let alone = Rule {
            when: Some(vec![c.clone()]),
            ..Rule::default()
        };
        if !admits(alone, request) {
            let mut wanted = Vec::new();
            if let Some(v) = &c.values {
                wanted.push(format!("one of {}", v.join(", ")));
            }
            if let Some(v) = &c.not_values {
                wanted.push(format!("none of {}", v.join(", ")));
            }
            let (part, attribute) = match (&c.header, &c.key) {
                (Some(h), _) => ("header", h.as_str()),
                (None, Some(k)) => ("condition", k.as_str()),
                (None, None) => ("condition", "-"),
            };
            failed.push(Failed {
                part,
                detail: format!("{attribute}: the rule wants {}", wanted.join(" and ")),
            });
        }
    }
    failed
}

/// The callers of a rule's `from`, shortened for a message.
fn callers(sources: &[config::Source]) -> String {
    let mut parts = Vec::new();
    for s in sources {
        for (what, list) in [
            ("", &s.principals),
            ("not ", &s.not_principals),
            ("namespace ", &s.namespaces),
            ("not namespace ", &s.not_namespaces),
            ("token ", &s.request_principals),
            ("not token ", &s.not_request_principals),
            ("peer ", &s.ip_blocks),
            ("not peer ", &s.not_ip_blocks),
            ("client ", &s.remote_ip_blocks),
            ("not client ", &s.not_remote_ip_blocks),
        ] {
            for v in list.iter().flatten() {
                parts.push(format!("{what}{v}"));
            }
        }
    }
    match parts.len() {
        0 => "nobody".into(),
        n if n <= 3 => parts.join(", "),
        n => {
            parts.truncate(3);
            format!("{}, and {} more", parts.join(", "), n - 3)
        }
    }
}

/// The fields of one `to` entry `request` fails, each judged alone.
fn failed_fields(op: &Operation, request: &Request<'_>, judged: Option<&str>) -> Vec<Failed> {
    let probe = |o: Operation| {
        admits(
            Rule {
                to: Some(vec![o]),
                ..Rule::default()
            },
            request,
        )
    };
    let raw = request.path.split('?').next().unwrap_or(request.path);
    let path = match judged {
        Some(canonical) if canonical != raw => format!("{canonical} (the canonical form of {raw})"),
        _ => raw.to_string(),
    };
    let host = request.authority.unwrap_or("(none)");
    // (part, the field's values, an operation with only them, what the request has).
    type Only = fn(Vec<String>) -> Operation;
    let fields: [(&'static str, &Option<Vec<String>>, Only, String); 6] = [
        (
            "method",
            &op.methods,
            |v| Operation {
                methods: Some(v),
                ..Operation::default()
            },
            format!("{} is not one of", request.method),
        ),
        (
            "method",
            &op.not_methods,
            |v| Operation {
                not_methods: Some(v),
                ..Operation::default()
            },
            format!("{} is one of notMethods", request.method),
        ),
        (
            "path",
            &op.paths,
            |v| Operation {
                paths: Some(v),
                ..Operation::default()
            },
            format!("{path} matches none of"),
        ),
        (
            "path",
            &op.not_paths,
            |v| Operation {
                not_paths: Some(v),
                ..Operation::default()
            },
            format!("{path} matches one of notPaths"),
        ),
        (
            "host",
            &op.hosts,
            |v| Operation {
                hosts: Some(v),
                ..Operation::default()
            },
            format!("{host} matches none of"),
        ),
        (
            "host",
            &op.not_hosts,
            |v| Operation {
                not_hosts: Some(v),
                ..Operation::default()
            },
            format!("{host} matches one of notHosts"),
        ),
    ];
    let mut failed = Vec::new();
    for (part, values, only, has) in fields {
        if let Some(v) = values {
            if !probe(only(v.clone())) {
                failed.push(Failed {
                    part,
                    detail: format!("{has} {}", v.join(", ")),
                });
            }
        }
    }
    if let Some(g) = &op.grpc {
        let o = Operation {
            grpc: Some(g.clone()),
            ..Operation::default()
        };
        if !probe(o) {
            let call = if is_grpc(request.headers) {
                format!("{} {path}", request.method)
            } else {
                let content_type = request.headers.values("content-type").next().unwrap_or("none");
                format!("{} {path} (not gRPC: content-type {content_type})", request.method)
            };
            failed.push(Failed {
                part: "grpc",
                detail: format!("{call} is not a gRPC call to {}/{}", g.service, g.methods.join(", ")),
            });
        }
    }
    if let Some(p) = &op.ports {
        let o = Operation {
            ports: Some(p.clone()),
            ..Operation::default()
        };
        if !probe(o) {
            let port = request.port.map_or("(none)".to_string(), |p| p.to_string());
            let ports: Vec<String> = p.iter().map(u16::to_string).collect();
            failed.push(Failed {
                part: "port",
                detail: format!("{port} is not one of {}", ports.join(", ")),
            });
        }
    }
    if let Some(p) = op.not_ports.as_ref().filter(|p| !p.is_empty()) {
        let o = Operation {
            not_ports: Some(p.clone()),
            ..Operation::default()
        };
        if !probe(o) {
            let port = request.port.map_or("(none)".to_string(), |p| p.to_string());
            let ports: Vec<String> = p.iter().map(u16::to_string).collect();
            failed.push(Failed {
                part: "port",
                detail: format!("{port} is one of notPorts {}", ports.join(", ")),
            });
        }
    }
    failed
}
