//! The offline checks behind `meshward-control check` and `lint`: the same
//! derivation as the service, then the filter's own engine.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use meshward_filter::{Engine, Evaluator, Reason, Request, Verdict};
use thiserror::Error;

use crate::derive::{derive, pod_templates, selects, Desired, Settings, Snapshot, WasmPlugin, ENFORCEMENT_LABEL};

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

/// Labels and first container port of the workload `name` in `ns`.
fn workload(s: &Snapshot, ns: &str, name: &str) -> Option<(BTreeMap<String, String>, Option<u16>)> {
    let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.namespace.as_deref() == Some(ns) && m.name.as_deref() == Some(name)
    };
    let port_of = |spec: Option<&k8s_openapi::api::core::v1::PodSpec>| {
        spec.and_then(|s| s.containers.iter().flat_map(|c| c.ports.iter().flatten()).next())
            .and_then(|p| u16::try_from(p.container_port).ok())
    };
    let templates = pod_templates(s)
        .filter(|(_, meta, _)| in_ns(meta))
        .filter_map(|(_, _, template)| template);
    let from_template = templates.into_iter().next().map(|t| {
        let labels = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        (labels, port_of(t.spec.as_ref()))
    });
    from_template.or_else(|| {
        s.pods
            .iter()
            .find(|p| in_ns(&p.metadata))
            .map(|p| (p.metadata.labels.clone().unwrap_or_default(), port_of(p.spec.as_ref())))
    })
}

/// Simulates `check` against the configuration derived from `snapshot`.
pub fn check(snapshot: &Snapshot, settings: &Settings, c: &Check) -> Result<Outcome, CheckError> {
    let desired = derive(snapshot, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    check_against(snapshot, &desired, c)
}

/// Simulates `check` against `desired`, already derived from `snapshot`
/// (the service reuses its last derivation).
pub fn check_against(snapshot: &Snapshot, desired: &Desired, c: &Check) -> Result<Outcome, CheckError> {
    let (ns, name) = split_ns("--to", &c.to, "<namespace>/<workload>")?;
    let principal = match (&c.principal, &c.from) {
        (Some(p), _) => Some(p.clone()),
        (None, None) => None,
        (None, Some(from)) => {
            let (fns, sa) = split_ns("--from", from, "<namespace>/<serviceaccount>")?;
            Some(format!("{}/ns/{fns}/sa/{sa}", snapshot.trust_domain))
        }
    };
    let (method, path) = c.request.split_once(' ').ok_or_else(|| CheckError::BadArgument {
        flag: "REQUEST",
        value: c.request.clone(),
        expected: "'METHOD /path'",
    })?;
    let (labels, first_port) = workload(snapshot, ns, name).ok_or_else(|| CheckError::UnknownWorkload(c.to.clone()))?;
    let in_ns: Vec<&WasmPlugin> = desired
        .wasm_plugins
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
fn delivered(plugin: &WasmPlugin, labels: &BTreeMap<String, String>) -> bool {
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

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `Kind namespace/name` of the object concerned.
    pub object: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// Everything `lint` reports, sorted: invalid Allowlists, Allowlists in
/// namespaces nothing enforces, selectors that match nothing, references to
/// missing service accounts, and workloads of enabled namespaces that no
/// Allowlist protects.
pub fn lint(snapshot: &Snapshot, settings: &Settings) -> Vec<Finding> {
    let desired: Desired = derive(snapshot, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let mut findings = Vec::new();
    for st in &desired.statuses {
        let object = format!("Allowlist {}/{}", st.namespace, st.name);
        for c in st.status.conditions.iter().filter(|c| c.status != "True") {
            findings.push(Finding {
                object: object.clone(),
                message: format!("{}: {}", c.reason, c.message),
            });
        }
    }
    // Workloads of enabled namespaces: labels per (namespace, kind/name).
    let enabled: Vec<&str> = desired
        .wasm_plugins
        .iter()
        .filter_map(|p| p.metadata.namespace.as_deref())
        .collect();
    let mut workloads: Vec<(String, String, BTreeMap<String, String>)> = Vec::new();
    let mut add = |kind: &str,
                   m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                   labels: Option<&BTreeMap<String, String>>| {
        if let (Some(ns), Some(name)) = (m.namespace.as_deref(), m.name.as_deref()) {
            if enabled.contains(&ns) {
                workloads.push((
                    ns.into(),
                    format!("{kind} {ns}/{name}"),
                    labels.cloned().unwrap_or_default(),
                ));
            }
        }
    };
    for (kind, meta, template) in pod_templates(snapshot) {
        add(
            kind,
            meta,
            template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.as_ref()),
        );
    }
    let sa_exists = |ns: &str, name: &str| {
        snapshot
            .service_accounts
            .iter()
            .any(|sa| sa.metadata.namespace.as_deref() == Some(ns) && sa.metadata.name.as_deref() == Some(name))
    };
    for a in &snapshot.allowlists {
        let (Some(ns), Some(name)) = (a.metadata.namespace.as_deref(), a.metadata.name.as_deref()) else {
            continue;
        };
        if !enabled.contains(&ns) {
            continue;
        }
        let object = format!("Allowlist {ns}/{name}");
        let own = a.spec.selector.as_ref().map(|s| &s.match_labels);
        if !workloads
            .iter()
            .any(|(wns, _, labels)| wns == ns && own.is_none_or(|sel| selects(sel, Some(labels))))
        {
            findings.push(Finding {
                object: object.clone(),
                message: "spec.selector matches no workload in the namespace".into(),
            });
        }
        for (ri, rule) in a.spec.rules.iter().enumerate() {
            for (si, src) in rule.from.iter().flatten().enumerate() {
                if let Some(w) = &src.workloads {
                    let wns = w.namespace.as_deref().unwrap_or(ns);
                    let matched = workloads
                        .iter()
                        .any(|(n, _, l)| n == wns && selects(&w.selector.match_labels, Some(l)))
                        || snapshot.pods.iter().any(|p| {
                            p.metadata.namespace.as_deref() == Some(wns)
                                && selects(&w.selector.match_labels, p.metadata.labels.as_ref())
                        });
                    if !matched {
                        findings.push(Finding {
                            object: object.clone(),
                            message: format!("rules[{ri}].from[{si}].workloads: the selector matches no workload in {wns}, so it admits nobody"),
                        });
                    }
                }
                for (i, sa) in src.service_accounts.iter().flatten().enumerate() {
                    if let Some((sns, sname)) = sa.split_once('/') {
                        if !sa_exists(sns, sname) {
                            findings.push(Finding {
                                object: object.clone(),
                                message: format!(
                                    "rules[{ri}].from[{si}].serviceAccounts[{i}]: ServiceAccount {sa} does not exist"
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
    // A workload is protected when a policy of a WasmPlugin delivered to it
    // applies (a valid Allowlist, the last valid version of an invalid one, or
    // the placeholder that admits nobody).
    for (ns, object, labels) in &workloads {
        let protected = desired
            .wasm_plugins
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()) && delivered(p, labels))
            .flat_map(|p| &p.spec.plugin_config.policies)
            .any(|p| p.selector.as_ref().is_none_or(|s| selects(s, Some(labels))));
        if !protected {
            findings.push(Finding {
                object: object.clone(),
                message: "in an enabled namespace but selected by no Allowlist: its traffic is not filtered".into(),
            });
        }
    }
    findings.sort();
    findings.dedup();
    findings
}
