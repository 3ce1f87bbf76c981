//! What to write: the desired objects compared with what the cluster holds.
//! Pure, so the rules that protect a running mesh (never rewrite an unchanged
//! WasmPlugin, never delete on an incomplete view) are tested without a
//! cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::Value;

use crate::crd::AllowlistStatus;
use crate::derive::{Desired, StatusUpdate, WasmPlugin};

/// A WasmPlugin meshward owns (labelled [`MANAGED_BY`](crate::derive::MANAGED_BY)), as the cluster holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedPlugin {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its `spec`, as JSON.
    pub spec: Value,
    /// Its uid (a delete is conditional on it).
    pub uid: Option<String>,
    /// Its resource version (a delete is conditional on it).
    pub resource_version: Option<String>,
}

/// The `spec` fields meshward sets. Only these are compared: a field another
/// field manager added (server-side apply keeps it) is not a difference.
const MANAGED_SPEC_FIELDS: [&str; 8] = [
    "url",
    "sha256",
    "pluginName",
    "phase",
    "match",
    "failStrategy",
    "selector",
    "pluginConfig",
];

/// The part of the cluster the writer compares with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// WasmPlugins meshward owns.
    pub plugins: Vec<OwnedPlugin>,
    /// The current status of every Allowlist, by (namespace, name).
    pub statuses: BTreeMap<(String, String), Option<AllowlistStatus>>,
}

/// The writes of one reconcile round.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// WasmPlugins to apply (new or changed).
    pub apply: Vec<WasmPlugin>,
    /// Owned WasmPlugins to delete: their namespace is no longer enabled or
    /// no longer needs them. Deleted only if still the object observed.
    pub delete: Vec<OwnedPlugin>,
    /// Allowlist statuses to write (changed ones only).
    pub statuses: Vec<StatusUpdate>,
    /// WasmPlugins that already hold the desired content.
    pub unchanged_plugins: usize,
    /// Allowlist statuses that already say what derivation found.
    pub unchanged_statuses: usize,
}

/// Compares `desired` with `observed`. Deletes are planned only when
/// `complete` (every watched kind fully synced and healthy): an object missing
/// from an incomplete view may well exist.
pub fn plan(desired: &Desired, observed: &Observed, complete: bool) -> Plan {
    let mut out = Plan::default();
    let owned: BTreeMap<(&str, &str), &OwnedPlugin> = observed
        .plugins
        .iter()
        .map(|p| ((p.namespace.as_str(), p.name.as_str()), p))
        .collect();
    let mut wanted = BTreeSet::new();
    for p in &desired.wasm_plugins {
        let (Some(ns), Some(name)) = (p.metadata.namespace.as_deref(), p.metadata.name.as_deref()) else {
            continue;
        };
        wanted.insert((ns, name));
        match owned.get(&(ns, name)) {
            Some(current) if same_plugin(p, current) => out.unchanged_plugins += 1,
            _ => out.apply.push(p.clone()),
        }
    }
    if complete {
        out.delete = owned
            .iter()
            .filter(|(k, _)| !wanted.contains(*k))
            .map(|(_, p)| (*p).clone())
            .collect();
    }
    for s in &desired.statuses {
        let current = observed.statuses.get(&(s.namespace.clone(), s.name.clone()));
        let Some(current) = current else {
            // The Allowlist is gone from the view; nothing to write to.
            continue;
        };
        match current {
            Some(current) if same_status(&s.status, current) => out.unchanged_statuses += 1,
            _ => out.statuses.push(StatusUpdate {
                status: keep_transition_times(&s.status, current.as_ref()),
                ..s.clone()
            }),
        }
    }
    out
}

/// Whether the cluster's object already carries the desired spec and labels.
fn same_plugin(desired: &WasmPlugin, current: &OwnedPlugin) -> bool {
    let labels_ok = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| current.labels.get(k) == Some(v));
    let Ok(spec) = serde_json::to_value(&desired.spec) else {
        return false;
    };
    labels_ok && MANAGED_SPEC_FIELDS.iter().all(|f| spec.get(f) == current.spec.get(f))
}

/// Statuses equal but for condition timestamps.
fn same_status(desired: &AllowlistStatus, current: &AllowlistStatus) -> bool {
    let strip = |c: &[Condition]| -> Vec<(String, String, String, String, Option<i64>)> {
        c.iter()
            .map(|c| {
                let c = c.clone();
                (c.type_, c.status, c.reason, c.message, c.observed_generation)
            })
            .collect()
    };
    desired.observed_generation == current.observed_generation
        && desired.resolved == current.resolved
        && strip(&desired.conditions) == strip(&current.conditions)
}

/// A condition whose status did not change keeps its `lastTransitionTime`
/// (the Kubernetes convention: the time the status last flipped).
fn keep_transition_times(desired: &AllowlistStatus, current: Option<&AllowlistStatus>) -> AllowlistStatus {
    let mut out = desired.clone();
    for c in &mut out.conditions {
        let before = current
            .into_iter()
            .flat_map(|s| s.conditions.iter())
            .find(|old| old.type_ == c.type_ && old.status == c.status);
        if let Some(before) = before {
            c.last_transition_time = before.last_transition_time.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{TrafficSelector, WasmPluginSpec, MANAGED_BY};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;
    use meshward_filter::config::PluginConfig;

    fn plugin(ns: &str, name: &str) -> WasmPlugin {
        WasmPlugin {
            api_version: "extensions.istio.io/v1alpha1",
            kind: "WasmPlugin",
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([(MANAGED_BY.0.into(), MANAGED_BY.1.into())])),
                ..ObjectMeta::default()
            },
            spec: WasmPluginSpec {
                url: "oci://x".into(),
                sha256: None,
                plugin_name: "meshward",
                phase: "AUTHZ",
                match_: vec![TrafficSelector { mode: "SERVER" }],
                fail_strategy: "FAIL_CLOSE",
                selector: None,
                plugin_config: PluginConfig::default(),
            },
        }
    }

    fn owned(p: &WasmPlugin) -> OwnedPlugin {
        OwnedPlugin {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            spec: serde_json::to_value(&p.spec).unwrap(),
            uid: Some("u1".into()),
            resource_version: Some("7".into()),
        }
    }

    fn status(ready: &str, at: i64) -> AllowlistStatus {
        AllowlistStatus {
            observed_generation: Some(2),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: "Derived".into(),
                message: "m".into(),
                observed_generation: Some(2),
                last_transition_time: Time(Timestamp::from_second(at).unwrap()),
            }],
            resolved: None,
        }
    }

    #[test]
    fn unchanged_plugins_are_not_rewritten() {
        let p = plugin("a", "meshward");
        let desired = Desired {
            wasm_plugins: vec![p.clone()],
            statuses: vec![],
        };
        let observed = Observed {
            plugins: vec![owned(&p)],
            ..Observed::default()
        };
        let plan = plan(&desired, &observed, true);
        assert!(plan.apply.is_empty() && plan.delete.is_empty(), "{plan:?}");
        assert_eq!(plan.unchanged_plugins, 1);
    }

    #[test]
    fn a_changed_spec_or_a_lost_label_is_reapplied() {
        let p = plugin("a", "meshward");
        let mut changed = owned(&p);
        changed.spec["url"] = "oci://y".into();
        let desired = Desired {
            wasm_plugins: vec![p.clone()],
            statuses: vec![],
        };
        let plan1 = plan(
            &desired,
            &Observed {
                plugins: vec![changed],
                ..Observed::default()
            },
            true,
        );
        assert_eq!(plan1.apply.len(), 1);
        let mut unlabelled = owned(&p);
        unlabelled.labels.clear();
        let plan2 = plan(
            &desired,
            &Observed {
                plugins: vec![unlabelled],
                ..Observed::default()
            },
            true,
        );
        assert_eq!(plan2.apply.len(), 1);
    }

    #[test]
    fn fields_other_managers_added_are_not_a_difference_but_a_field_we_dropped_is() {
        let p = plugin("a", "meshward");
        let desired = Desired {
            wasm_plugins: vec![p.clone()],
            statuses: vec![],
        };
        let mut foreign = owned(&p);
        foreign.spec["imagePullPolicy"] = "Always".into();
        let plan1 = plan(
            &desired,
            &Observed {
                plugins: vec![foreign],
                ..Observed::default()
            },
            true,
        );
        assert!(plan1.apply.is_empty(), "{plan1:?}");
        let mut stale = owned(&p);
        stale.spec["selector"] = serde_json::json!({"matchLabels": {"app": "x"}});
        let plan2 = plan(
            &desired,
            &Observed {
                plugins: vec![stale],
                ..Observed::default()
            },
            true,
        );
        assert_eq!(plan2.apply.len(), 1, "a selector meshward no longer sets is removed");
    }

    #[test]
    fn owned_plugins_no_longer_wanted_are_deleted_only_on_a_complete_view() {
        let stale = owned(&plugin("disabled", "meshward"));
        let observed = Observed {
            plugins: vec![stale],
            ..Observed::default()
        };
        let desired = Desired::default();
        let deletes = plan(&desired, &observed, true).delete;
        assert_eq!(deletes.len(), 1);
        assert_eq!(
            (deletes[0].namespace.as_str(), deletes[0].name.as_str()),
            ("disabled", "meshward")
        );
        assert_eq!(
            deletes[0].uid.as_deref(),
            Some("u1"),
            "the delete is conditional on the observed object"
        );
        assert!(plan(&desired, &observed, false).delete.is_empty());
    }

    #[test]
    fn statuses_differing_only_in_time_are_not_rewritten_and_flips_get_a_new_time() {
        let key = ("ns".to_string(), "a".to_string());
        let desired = Desired {
            wasm_plugins: vec![],
            statuses: vec![StatusUpdate {
                namespace: "ns".into(),
                name: "a".into(),
                status: status("True", 2_000),
            }],
        };
        let same = Observed {
            statuses: BTreeMap::from([(key.clone(), Some(status("True", 1_000)))]),
            ..Observed::default()
        };
        let p = plan(&desired, &same, true);
        assert!(p.statuses.is_empty());
        assert_eq!(p.unchanged_statuses, 1);

        let flipped = Observed {
            statuses: BTreeMap::from([(key.clone(), Some(status("False", 1_000)))]),
            ..Observed::default()
        };
        let p = plan(&desired, &flipped, true);
        assert_eq!(p.statuses.len(), 1);
        assert_eq!(
            p.statuses[0].status.conditions[0].last_transition_time.0.as_second(),
            2_000
        );

        let mut regen = status("True", 1_000);
        regen.observed_generation = Some(1);
        let older = Observed {
            statuses: BTreeMap::from([(key.clone(), Some(regen))]),
            ..Observed::default()
        };
        let p = plan(&desired, &older, true);
        assert_eq!(p.statuses.len(), 1, "a new generation is written");
        assert_eq!(
            p.statuses[0].status.conditions[0].last_transition_time.0.as_second(),
            1_000,
            "Ready stayed True: the transition time is kept"
        );

        let gone = Observed::default();
        assert!(
            plan(&desired, &gone, true).statuses.is_empty(),
            "no status for an Allowlist not in view"
        );
    }
}
