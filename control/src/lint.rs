//! `meshward-control lint`: what is wrong or risky in a set of manifests,
//! from the same derivation as the service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use meshward_filter::config::Action;

use crate::crd::AllowlistAction;
use crate::derive::{derive, selects, Desired, Settings};
use crate::simulate::delivered;
use crate::state::{ClusterState, NamespaceState};

/// The labels of a workload without labels.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

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
pub fn lint(state: &ClusterState, settings: &Settings) -> Vec<Finding> {
    let desired: Desired = derive(state, settings, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
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
    // The pod templates of enabled namespaces: (namespace, `Kind ns/name`, labels).
    let enabled: BTreeSet<&str> = desired
        .wasm_plugins
        .iter()
        .filter_map(|p| p.metadata.namespace.as_deref())
        .collect();
    let mut workloads: Vec<(&str, String, &BTreeMap<String, String>)> = Vec::new();
    for &ns in &enabled {
        for (kind, name, w) in state.namespace(ns).into_iter().flat_map(NamespaceState::templates) {
            let labels = w.map_or(&NO_LABELS, |w| &w.labels);
            workloads.push((ns, format!("{} {ns}/{name}", kind.as_str()), labels));
        }
    }
    let sa_exists = |ns: &str, name: &str| state.namespace(ns).is_some_and(|s| s.has_service_account(name));
    for &ns in &enabled {
        let Some(namespace) = state.namespace(ns) else {
            continue;
        };
        for (name, a) in namespace.allowlists() {
            let object = format!("Allowlist {ns}/{name}");
            let own = a.spec.selector.as_ref().map(|s| &s.match_labels);
            if !workloads
                .iter()
                .any(|(wns, _, labels)| *wns == ns && own.is_none_or(|sel| selects(sel, Some(labels))))
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
                        let matched = state.namespace(wns).is_some_and(|s| {
                            s.workloads()
                                .any(|(wl, _)| selects(&w.selector.match_labels, Some(&wl.labels)))
                        });
                        if !matched {
                            findings.push(Finding {
                                object: object.clone(),
                                message: format!(
                                    "rules[{ri}].from[{si}].workloads: the selector matches no workload in {wns}, so it {} nobody",
                                    if a.spec.action == Some(AllowlistAction::Deny) { "refuses" } else { "admits" }
                                ),
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
    }
    // A workload is protected when a policy of a WasmPlugin delivered to it
    // applies (a valid Allowlist, the last valid version of an invalid one, or
    // the placeholder that admits nobody).
    for (ns, object, labels) in &workloads {
        // The actions of the policies that apply to it.
        let protected = desired
            .wasm_plugins
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(*ns) && delivered(p, labels))
            .flat_map(|p| &p.spec.plugin_config.policies)
            .filter(|p| p.selector.as_ref().is_none_or(|s| selects(s, Some(labels))))
            .map(|p| p.action)
            .collect::<Vec<_>>();
        if protected.is_empty() {
            findings.push(Finding {
                object: object.clone(),
                message: "in an enabled namespace but selected by no Allowlist: its traffic is not filtered".into(),
            });
        } else if !protected.contains(&Action::Allow) {
            findings.push(Finding {
                object: object.clone(),
                message: "selected only by deny Allowlists: every request they do not refuse passes".into(),
            });
        }
    }
    findings.sort();
    findings.dedup();
    findings
}
