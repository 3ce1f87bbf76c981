//! Policy selection: which policies of a configuration apply to one workload.
//!
//! A policy applies when every label of its selector has the workload's value
//! (a policy without selector applies to every workload). The proxy resolves
//! this once per configuration, from its node metadata, and hands the
//! [`Selection`] to its [`Evaluator`](super::Evaluator): requests never look
//! at labels.

use super::Engine;
use crate::config::{Action, Mode};

/// The policies that apply to one workload, resolved from its labels by
/// [`Engine::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    applies: Vec<bool>,
    /// Applicable policies by action (allow, deny) and mode (enforce, audit).
    counts: [[usize; 2]; 2],
}

impl Selection {
    /// Number of applicable policies in enforce mode, allow and deny.
    pub fn enforce_count(&self) -> usize {
        self.count(Action::Allow, Mode::Enforce) + self.count(Action::Deny, Mode::Enforce)
    }

    /// Number of applicable policies in audit mode, allow and deny.
    pub fn audit_count(&self) -> usize {
        self.count(Action::Allow, Mode::Audit) + self.count(Action::Deny, Mode::Audit)
    }

    /// Number of applicable policies with this action and mode.
    pub fn count(&self, action: Action, mode: Mode) -> usize {
        self.counts
            .get(action as usize)
            .and_then(|m| m.get(mode as usize))
            .copied()
            .unwrap_or(0)
    }

    /// Whether policy `policy` (its index in the configuration) applies.
    pub fn applies(&self, policy: u32) -> bool {
        self.applies.get(policy as usize).copied().unwrap_or(false)
    }
}

impl Engine {
    /// Which policies apply to a workload with the given labels. `label(key)`
    /// returns the workload's value for a label key. Call once per
    /// configuration, not per request.
    pub fn select(&self, mut label: impl FnMut(&str) -> Option<String>) -> Selection {
        let applies: Vec<bool> = self
            .policies
            .iter()
            .map(|p| p.selector.iter().all(|(k, v)| label(k).as_deref() == Some(&**v)))
            .collect();
        let mut counts = [[0; 2]; 2];
        for (p, _) in self.policies.iter().zip(&applies).filter(|(_, &a)| a) {
            if let Some(n) = counts
                .get_mut(p.action as usize)
                .and_then(|m| m.get_mut(p.mode as usize))
            {
                *n += 1;
            }
        }
        Selection { applies, counts }
    }

    /// Policy names that apply in a selection.
    pub fn selected_policies<'a>(&'a self, selection: &'a Selection) -> impl Iterator<Item = &'a str> + 'a {
        self.policies
            .iter()
            .zip(&selection.applies)
            .filter(|(_, &a)| a)
            .map(|(p, _)| &*p.name)
    }
}
