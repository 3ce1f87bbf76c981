//! Simulation: what the filter would decide for one request to one workload,
//! on the configuration derived from the cluster (or from manifests). Behind
//! `meshward-control check` and the service's `POST /v1/simulate`; the same
//! derivation as the service, then the filter's own engine.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use meshward_filter::{Engine, Evaluator, Reason, Request, Verdict};
use thiserror::Error;

use crate::derive::{derive_namespace, selects, Settings, WasmPlugin, ENFORCEMENT_LABEL};
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
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.verdict.as_str(), self.explanation)
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
    let namespace = s.namespace(ns)?;
    let template = namespace
        .templates()
        .filter(|(_, n, _)| *n == name)
        .find_map(|(_, _, w)| w);
    template
        .or_else(|| namespace.pod(name))
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
    let principal = match (&c.principal, &c.from) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => None,
        (None, Some(from)) => {
            let (fns, sa) = split_ns("--from", from, "<namespace>/<serviceaccount>")?;
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
        });
    }
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let request = Request {
        method,
        path,
        authority: Some(c.host.as_deref().unwrap_or(name)),
        port: c.port.or(first_port),
        principal: principal.as_deref(),
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
    let chosen = match pick {
        Some(i) if i < outcomes.len() => outcomes.swap_remove(i).0,
        _ => Outcome {
            verdict: Verdict::Allow,
            rule: None,
            explanation: format!("no Allowlist selects {ns}/{name}; the request passes"),
        },
    };
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
        .matched()
        .map(|m| format!("{}/{}", engine.policy_name(m.policy), engine.rule_name(m)));
    let applied: Vec<&str> = engine.selected_policies(evaluator.selection()).collect();
    let caller = request.principal.unwrap_or("an anonymous caller");
    let explanation = match (decision.reason, &rule) {
        (_, Some(rule)) => format!("{caller} admitted by {rule} ({} mode)", decision.mode.as_str()),
        (Reason::NoPolicy, _) => format!("no Allowlist selects {ns}/{name}; the request passes"),
        (Reason::Malformed(e), _) => format!("malformed request: {e}"),
        _ => format!("no rule of {} admits {caller}", applied.join(", ")),
    };
    let outcome = Outcome {
        verdict: decision.verdict,
        rule,
        explanation,
    };
    Ok((outcome, !applied.is_empty()))
}
