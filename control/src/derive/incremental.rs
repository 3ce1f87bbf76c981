//! Derivation kept current by re-deriving only what changes affect.
//!
//! [`Derivations`] holds the last result of every namespace. Given the
//! [`Changes`] the state reported since the last update, it derives again the
//! namespaces in `changes.derive`, plus those in `changes.plan` whose last
//! result fell back on the WasmPlugins in force (they read what changed). The
//! result always equals a full [`derive`](super::derive) of the same state;
//! a property test holds it to that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use super::{derive_namespace, Desired, NamespaceDesired, Settings};
use crate::state::{Changes, ClusterState};

/// The last derivation of every namespace.
#[derive(Debug, Clone, Default)]
pub struct Derivations {
    by_namespace: BTreeMap<String, Arc<NamespaceDesired>>,
}

impl Derivations {
    /// Derives every namespace of `state`.
    pub fn full(state: &ClusterState, settings: &Settings, now: Timestamp) -> Self {
        let mut out = Self::default();
        let all: BTreeSet<String> = state.namespaces().map(|(ns, _)| ns.to_string()).collect();
        for ns in &all {
            out.set(ns, derive_namespace(state, ns, settings, now));
        }
        out
    }

    /// The namespaces `changes` require deriving again.
    pub fn affected(&self, changes: &Changes) -> BTreeSet<String> {
        let mut out = changes.derive.clone();
        for ns in &changes.plan {
            if self.by_namespace.get(ns).is_some_and(|d| d.reads_plugins) {
                out.insert(ns.clone());
            }
        }
        out
    }

    /// Derives again the namespaces `changes` affect; returns them.
    pub fn update(
        &mut self,
        state: &ClusterState,
        changes: &Changes,
        settings: &Settings,
        now: Timestamp,
    ) -> BTreeSet<String> {
        let affected = self.affected(changes);
        for ns in &affected {
            self.set(ns, derive_namespace(state, ns, settings, now));
        }
        affected
    }

    /// Stores the result for `ns` (dropping it when there is nothing to hold).
    pub fn set(&mut self, ns: &str, desired: NamespaceDesired) {
        if desired == NamespaceDesired::default() {
            self.by_namespace.remove(ns);
        } else {
            self.by_namespace.insert(ns.to_string(), Arc::new(desired));
        }
    }

    /// The last result for `ns`.
    pub fn get(&self, ns: &str) -> Option<&Arc<NamespaceDesired>> {
        self.by_namespace.get(ns)
    }

    /// Every namespace with a result, sorted.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &Arc<NamespaceDesired>)> + '_ {
        self.by_namespace.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// All of it, as one [`Desired`].
    pub fn to_desired(&self) -> Desired {
        let mut out = Desired::default();
        for d in self.by_namespace.values() {
            out.wasm_plugins.extend(d.wasm_plugins.iter().cloned());
            out.statuses.extend(d.statuses.iter().cloned());
        }
        out
    }

    /// The number of WasmPlugins.
    pub fn wasm_plugins(&self) -> usize {
        self.by_namespace.values().map(|d| d.wasm_plugins.len()).sum()
    }
}
