//! What to write in one namespace: its desired objects compared with what the
//! cluster holds. Pure, so the rules that protect a running mesh (never
//! rewrite an unchanged WasmPlugin or status, never delete on an incomplete
//! view) are tested without a cluster. The writer checks each write once more
//! against the state right before making it ([`plugin_is_current`],
//! [`status_is_current`]), so a write planned twice is made once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::crd::AllowlistStatus;
use crate::derive::{NamespaceDesired, StatusUpdate, WasmPlugin};
use crate::state::{managed_fields, NamespaceState, OwnedPlugin};

/// An owned WasmPlugin to delete, if it is still the object observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its uid when observed.
    pub uid: Option<String>,
    /// Its resource version when observed.
    pub resource_version: Option<String>,
}

/// The writes of one namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// WasmPlugins to apply (new or changed).
    pub apply: Vec<WasmPlugin>,
    /// Owned WasmPlugins to delete: their namespace is no longer enabled or
    /// no longer needs them.
    pub delete: Vec<Delete>,
    /// Allowlist statuses to write (changed ones only).
    pub statuses: Vec<StatusUpdate>,
    /// WasmPlugins that already hold the desired content.
    pub unchanged_plugins: usize,
    /// Allowlist statuses that already say what derivation found.
    pub unchanged_statuses: usize,
    /// WasmPlugins not written because another field manager applies them.
    pub conflicts: usize,
}

/// Compares a namespace's `desired` objects with the `observed` ones. Deletes
/// are planned only when `complete` (every watched kind fully synced and
/// healthy): an object missing from an incomplete view may well exist.
pub fn plan(ns: &str, desired: Option<&NamespaceDesired>, observed: Option<&NamespaceState>, complete: bool) -> Plan {
    let mut out = Plan::default();
    let plugins = desired.map_or(&[][..], |d| d.wasm_plugins.as_slice());
    for p in plugins {
        let Some(name) = p.metadata.name.as_deref() else {
            continue;
        };
        let current = observed.and_then(|o| o.plugin(name));
        if plugin_is_current(p, current) {
            out.unchanged_plugins += 1;
        } else if current.is_some_and(|c| !c.foreign_appliers.is_empty()) {
            // Another applier owns fields of it: reported on the Allowlists'
            // statuses, not taken back (that would be a fight in a loop).
            out.conflicts += 1;
        } else {
            out.apply.push(p.clone());
        }
    }
    if complete {
        let wanted = |name: &str| plugins.iter().any(|p| p.metadata.name.as_deref() == Some(name));
        for (name, owned) in observed.into_iter().flat_map(NamespaceState::plugins) {
            if !wanted(name) {
                out.delete.push(Delete {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    uid: owned.uid.clone(),
                    resource_version: owned.resource_version.clone(),
                });
            }
        }
    }
    for s in desired.map_or(&[][..], |d| d.statuses.as_slice()) {
        let Some(current) = observed.and_then(|o| o.allowlist(&s.name)) else {
            // The Allowlist is gone from the view; nothing to write to.
            continue;
        };
        if status_is_current(&s.status, current.status.as_ref()) {
            out.unchanged_statuses += 1;
        } else {
            out.statuses.push(s.clone());
        }
    }
    out
}

/// Whether the cluster's object already carries the desired spec and labels.
/// Fields other managers added (server-side apply keeps them) are not
/// compared.
pub fn plugin_is_current(desired: &WasmPlugin, current: Option<&OwnedPlugin>) -> bool {
    let Some(current) = current else {
        return false;
    };
    let labels_ok = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| current.labels.get(k) == Some(v));
    let Ok(spec) = serde_json::to_value(&desired.spec) else {
        return false;
    };
    labels_ok && *managed_fields(&spec) == *current.managed
}

/// What a WasmPlugin apply writes, as compared: its labels and the spec
/// fields meshward sets.
pub fn plugin_content(p: &WasmPlugin) -> String {
    let spec = serde_json::to_value(&p.spec).unwrap_or_default();
    format!("{:?} {}", p.metadata.labels, managed_fields(&spec))
}

/// What a status write writes, as compared: everything but timestamps.
pub fn status_content(s: &AllowlistStatus) -> String {
    let conditions: Vec<_> = s
        .conditions
        .iter()
        .map(|c| (&c.type_, &c.status, &c.reason, &c.message, c.observed_generation))
        .collect();
    format!("{:?} {:?} {conditions:?}", s.observed_generation, s.resolved)
}

/// Whether the observed status says what `desired` says, but for condition
/// timestamps.
pub fn status_is_current(desired: &AllowlistStatus, current: Option<&AllowlistStatus>) -> bool {
    let Some(current) = current else {
        return false;
    };
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
pub fn keep_transition_times(desired: &AllowlistStatus, current: Option<&AllowlistStatus>) -> AllowlistStatus {
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use meshward_filter::config::PluginConfig;

    use super::*;
    use crate::derive::Settings;
    use crate::state::{Body, ClusterState, Object, StoredAllowlist};

    fn settings() -> Settings {
        Settings {
            url: "oci://x".into(),
            budget_bytes: 1 << 20,
            ..Settings::default()
        }
    }

    fn plugin(ns: &str, index: usize) -> WasmPlugin {
        WasmPlugin::new(ns, index, &settings(), None, PluginConfig::default())
    }

    fn owned(p: &WasmPlugin) -> OwnedPlugin {
        OwnedPlugin {
            labels: p.metadata.labels.clone().unwrap_or_default(),
            managed: managed_fields(&serde_json::to_value(&p.spec).unwrap()),
            uid: Some("u1".into()),
            resource_version: Some("7".into()),
            foreign_appliers: Vec::new(),
        }
    }

    fn observed(plugins: &[(&str, OwnedPlugin)], statuses: &[(&str, Option<AllowlistStatus>)]) -> ClusterState {
        let mut s = ClusterState::new("cluster.local");
        for (name, p) in plugins {
            s.apply(Object {
                namespace: "a".into(),
                name: (*name).into(),
                body: Body::WasmPlugin(p.clone()),
            });
        }
        for (name, status) in statuses {
            s.apply(Object {
                namespace: "a".into(),
                name: (*name).into(),
                body: Body::Allowlist(StoredAllowlist {
                    status: status.clone(),
                    ..StoredAllowlist::default()
                }),
            });
        }
        s
    }

    fn desired(plugins: Vec<WasmPlugin>, statuses: Vec<StatusUpdate>) -> NamespaceDesired {
        NamespaceDesired {
            wasm_plugins: plugins,
            statuses,
            reads_plugins: false,
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
        let p = plugin("a", 0);
        let state = observed(&[("meshward", owned(&p))], &[]);
        let plan = plan("a", Some(&desired(vec![p], vec![])), state.namespace("a"), true);
        assert!(plan.apply.is_empty() && plan.delete.is_empty(), "{plan:?}");
        assert_eq!(plan.unchanged_plugins, 1);
    }

    #[test]
    fn a_changed_spec_or_a_lost_label_is_reapplied() {
        let p = plugin("a", 0);
        let mut changed = owned(&plugin("a", 0));
        let mut spec: serde_json::Value = serde_json::from_str(&changed.managed).unwrap();
        spec["url"] = "oci://y".into();
        changed.managed = spec.to_string().into();
        let d = desired(vec![p.clone()], vec![]);
        let state = observed(&[("meshward", changed)], &[]);
        assert_eq!(plan("a", Some(&d), state.namespace("a"), true).apply.len(), 1);
        let mut unlabelled = owned(&p);
        unlabelled.labels.clear();
        let state = observed(&[("meshward", unlabelled)], &[]);
        assert_eq!(plan("a", Some(&d), state.namespace("a"), true).apply.len(), 1);
        let state = observed(&[], &[]);
        assert_eq!(
            plan("a", Some(&d), state.namespace("a"), true).apply.len(),
            1,
            "missing"
        );
    }

    #[test]
    fn fields_other_managers_added_are_not_a_difference_but_a_field_we_dropped_is() {
        let p = plugin("a", 0);
        let d = desired(vec![p.clone()], vec![]);
        let mut spec = serde_json::to_value(&p.spec).unwrap();
        spec["imagePullPolicy"] = "Always".into();
        let foreign = OwnedPlugin {
            managed: managed_fields(&spec),
            ..owned(&p)
        };
        let state = observed(&[("meshward", foreign)], &[]);
        assert!(plan("a", Some(&d), state.namespace("a"), true).apply.is_empty());
        let mut spec = serde_json::to_value(&p.spec).unwrap();
        spec["selector"] = serde_json::json!({"matchLabels": {"app": "x"}});
        let stale = OwnedPlugin {
            managed: managed_fields(&spec),
            ..owned(&p)
        };
        let state = observed(&[("meshward", stale)], &[]);
        assert_eq!(
            plan("a", Some(&d), state.namespace("a"), true).apply.len(),
            1,
            "a selector meshward no longer sets is removed"
        );
    }

    #[test]
    fn owned_plugins_no_longer_wanted_are_deleted_only_on_a_complete_view() {
        let state = observed(&[("meshward", owned(&plugin("a", 0)))], &[]);
        let deletes = plan("a", None, state.namespace("a"), true).delete;
        assert_eq!(deletes.len(), 1);
        assert_eq!(
            (deletes[0].namespace.as_str(), deletes[0].name.as_str()),
            ("a", "meshward")
        );
        assert_eq!(
            deletes[0].uid.as_deref(),
            Some("u1"),
            "the delete is conditional on the observed object"
        );
        assert!(plan("a", None, state.namespace("a"), false).delete.is_empty());
        let one = desired(vec![plugin("a", 0)], vec![]);
        let state = observed(
            &[
                ("meshward", owned(&plugin("a", 0))),
                ("meshward-1", owned(&plugin("a", 1))),
            ],
            &[],
        );
        let p = plan("a", Some(&one), state.namespace("a"), true);
        assert_eq!(p.delete.len(), 1, "{p:?}");
        assert_eq!(p.delete[0].name, "meshward-1");
    }

    #[test]
    fn statuses_differing_only_in_time_are_not_rewritten_and_flips_get_a_new_time() {
        let d = desired(
            vec![],
            vec![StatusUpdate {
                namespace: "a".into(),
                name: "x".into(),
                status: status("True", 2_000),
            }],
        );
        let same = observed(&[], &[("x", Some(status("True", 1_000)))]);
        let p = plan("a", Some(&d), same.namespace("a"), true);
        assert!(p.statuses.is_empty());
        assert_eq!(p.unchanged_statuses, 1);

        let flipped = status("False", 1_000);
        assert!(!status_is_current(&status("True", 2_000), Some(&flipped)));
        let written = keep_transition_times(&status("True", 2_000), Some(&flipped));
        assert_eq!(written.conditions[0].last_transition_time.0.as_second(), 2_000);

        let mut regen = status("True", 1_000);
        regen.observed_generation = Some(1);
        let older = observed(&[], &[("x", Some(regen.clone()))]);
        let p = plan("a", Some(&d), older.namespace("a"), true);
        assert_eq!(p.statuses.len(), 1, "a new generation is written");
        let written = keep_transition_times(&p.statuses[0].status, Some(&regen));
        assert_eq!(
            written.conditions[0].last_transition_time.0.as_second(),
            1_000,
            "Ready stayed True: the transition time is kept"
        );

        let gone = observed(&[], &[]);
        assert!(
            plan("a", Some(&d), gone.namespace("a"), true).statuses.is_empty(),
            "no status for an Allowlist not in view"
        );
    }
}
