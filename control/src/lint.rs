//! `meshward-control lint`: what is wrong or risky in a set of manifests,
//! from the same derivation as the service.

use std::collections::BTreeMap;
use std::fmt;

use crate::derive::{derive, pod_templates, selects, Desired, Settings, Snapshot};
use crate::simulate::delivered;

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
