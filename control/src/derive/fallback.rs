//! What stays in force when something cannot be derived: fail closed.
//!
//! The filter passes requests to a workload no policy applies to, so leaving
//! a broken policy out would silently open its workloads. Instead:
//!
//! * an invalid Allowlist is replaced by its last valid version (found in the
//!   WasmPlugins in force), else by a placeholder with its selector and mode
//!   and no rule, which admits nobody ([`stand_in`]);
//! * a namespace whose configuration the engine rejects as a whole (too
//!   large, over the engine's limits) keeps its last valid WasmPlugins, else
//!   gets placeholders for every policy ([`namespace_configs`]).

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use meshward_filter::config::{Action, PluginConfig, Policy, Rule};
use meshward_filter::{Engine, Mode};

use super::pack::pack;
use super::plugin::PluginName;
use super::translate::{policy_action, policy_mode, Invalid};
use super::HARD_LIMIT_BYTES;
use crate::crd::AllowlistSpec;
use crate::state::NamespaceState;

/// The configuration in force in a namespace: the `pluginConfig`s of the
/// WasmPlugins meshward owns there, in the order of their names (`meshward`,
/// `meshward-1`, ...). Read only when something must fall back on it, and
/// remembered as read: a change to those WasmPlugins can then change the
/// derivation.
pub(super) struct Previous<'s> {
    namespace: Option<&'s NamespaceState>,
    configs: OnceCell<Vec<PluginConfig>>,
}

impl<'s> Previous<'s> {
    pub(super) fn new(namespace: Option<&'s NamespaceState>) -> Self {
        Self {
            namespace,
            configs: OnceCell::new(),
        }
    }

    /// The configurations in force.
    pub(super) fn get(&self) -> &[PluginConfig] {
        self.configs.get_or_init(|| {
            let mut found: Vec<(usize, PluginConfig)> = Vec::new();
            for (name, plugin) in self.namespace.into_iter().flat_map(NamespaceState::plugins) {
                let Some(index) = PluginName::parse(name) else {
                    continue;
                };
                let config = serde_json::from_str::<serde_json::Value>(&plugin.managed)
                    .ok()
                    .and_then(|mut spec| spec.get_mut("pluginConfig").map(serde_json::Value::take));
                match config.map(serde_json::from_value::<PluginConfig>) {
                    Some(Ok(config)) => found.push((index, config)),
                    Some(Err(e)) => {
                        tracing::warn!(name, error = %e, "owned WasmPlugin has an unreadable pluginConfig")
                    }
                    None => {}
                }
            }
            found.sort_by_key(|(i, _)| *i);
            found.into_iter().map(|(_, c)| c).collect()
        })
    }

    /// Whether derivation read them.
    pub(super) fn was_read(&self) -> bool {
        self.configs.get().is_some()
    }
}

/// What stands in for an invalid Allowlist: its last valid version if one is
/// in force (`previous`), else a placeholder with its selector, mode and
/// action that admits nobody (see [`admitting_nobody`]).
pub(super) fn stand_in(
    spec: &AllowlistSpec,
    ns: &str,
    name: &str,
    audit: bool,
    previous: &[PluginConfig],
    mut invalid: Invalid,
) -> (Policy, Option<Invalid>) {
    let policy_name = format!("{ns}/{name}");
    let last = previous
        .iter()
        .flat_map(|c| c.policies.iter().map(move |p| (c.mode, p)))
        // A placeholder is no valid version to keep: it admits nobody like
        // the one made here.
        .find(|(_, p)| p.name == policy_name && !is_placeholder(p));
    let policy = match last {
        Some((top_mode, p)) => {
            invalid.message.push_str("; the last valid version stays in force");
            let mut p = p.clone();
            // The mode it had under its old configuration, unless the
            // namespace is now in audit.
            if audit {
                p.mode = Some(Mode::Audit);
            } else if p.mode.is_none() && !top_mode.is_enforce() {
                p.mode = Some(top_mode);
            }
            p
        }
        None => {
            invalid
                .message
                .push_str("; its workloads deny every request until it is fixed");
            admitting_nobody(Policy {
                name: policy_name,
                selector: spec.selector.as_ref().map(|s| s.match_labels.clone()),
                mode: policy_mode(spec, audit),
                action: policy_action(spec),
                rules: Vec::new(),
            })
        }
    };
    (policy, Some(invalid))
}

/// A placeholder for `p`: same name, selector, mode and action, admitting
/// nobody (see [`admitting_nobody`]).
fn placeholder(p: &Policy) -> Policy {
    admitting_nobody(p.clone())
}

/// `p` with its rules replaced so that it is at least as strict as any
/// version of it: an allow policy without rule, which admits nobody (its
/// workloads deny what no other Allowlist admits), or a deny policy with one
/// rule that matches every request (its workloads deny every request). A
/// deny policy without rule would refuse nothing, opening what it refused.
pub(super) fn admitting_nobody(mut p: Policy) -> Policy {
    p.rules = match p.action {
        Action::Allow => Vec::new(),
        Action::Deny => vec![Rule::default()],
    };
    p
}

/// Whether `p` is a placeholder [`admitting_nobody`] made (or as strict as one).
fn is_placeholder(p: &Policy) -> bool {
    match p.action {
        Action::Allow => p.rules.is_empty(),
        Action::Deny => p.rules.iter().any(|r| *r == Rule::default()),
    }
}

/// A namespace's WasmPlugin configurations and where each Allowlist went.
pub(super) struct NamespaceConfigs {
    /// The pluginConfigs, WasmPlugin `i` named [`PluginName`]`(i)`.
    pub(super) configs: Vec<PluginConfig>,
    /// Per policy: the WasmPlugin holding it (`None` when rejected).
    pub(super) placement: Vec<Option<usize>>,
    /// Per policy: the size of its group when over the budget.
    pub(super) oversize: Vec<Option<usize>>,
    /// Why the derived configuration was rejected, and what is in force instead.
    pub(super) rejected: Option<String>,
}

/// Packs a namespace's policies into WasmPlugins within `budget` and checks
/// every one with the engine. If one is rejected (too large to emit, or over
/// the engine's limits together), the namespace's `previous` configurations
/// stay in force; without any, every Allowlist becomes a placeholder that
/// admits nobody.
pub(super) fn namespace_configs(
    policies: &[&Policy],
    workloads: &BTreeSet<&BTreeMap<String, String>>,
    previous: &Previous<'_>,
    audit: bool,
    budget: usize,
) -> NamespaceConfigs {
    let packing = pack(policies, workloads, budget);
    let mut placement = vec![None; policies.len()];
    let mut configs = Vec::with_capacity(packing.bins.len());
    for (bi, bin) in packing.bins.iter().enumerate() {
        for &i in bin {
            if let Some(slot) = placement.get_mut(i) {
                *slot = Some(bi);
            }
        }
        configs.push(PluginConfig {
            policies: bin
                .iter()
                .filter_map(|&i| policies.get(i).map(|p| (*p).clone()))
                .collect(),
            ..PluginConfig::default()
        });
    }
    let Err(problem) = check_configs(&configs) else {
        return NamespaceConfigs {
            configs,
            placement,
            oversize: packing.oversize,
            rejected: None,
        };
    };
    // Fail closed: what is in force stays, else nobody is admitted.
    let previous = previous.get();
    let usable = !previous.is_empty() && check_configs(previous).is_ok();
    let (configs, instead) = if usable {
        (
            previous.to_vec(),
            "the namespace's last valid WasmPlugins stay in force",
        )
    } else {
        (
            fail_closed(policies, workloads, audit, budget),
            "its workloads deny every request until it is fixed",
        )
    };
    NamespaceConfigs {
        configs,
        placement: vec![None; policies.len()],
        oversize: packing.oversize,
        rejected: Some(format!("{problem}; {instead}")),
    }
}

/// Placeholders for every policy (same name, selector and mode, no rule),
/// packed like the policies. If even they are rejected (a name the engine
/// refuses), one policy without selector and without rule: the whole
/// namespace denies every request.
fn fail_closed(
    policies: &[&Policy],
    workloads: &BTreeSet<&BTreeMap<String, String>>,
    audit: bool,
    budget: usize,
) -> Vec<PluginConfig> {
    let placeholders: Vec<Policy> = policies.iter().map(|p| placeholder(p)).collect();
    let refs: Vec<&Policy> = placeholders.iter().collect();
    let configs: Vec<PluginConfig> = pack(&refs, workloads, budget)
        .bins
        .iter()
        .map(|bin| PluginConfig {
            policies: bin.iter().filter_map(|&i| placeholders.get(i).cloned()).collect(),
            ..PluginConfig::default()
        })
        .collect();
    if check_configs(&configs).is_ok() {
        return configs;
    }
    vec![PluginConfig {
        policies: vec![Policy {
            name: "meshward:fail-closed".into(),
            selector: None,
            mode: audit.then_some(Mode::Audit),
            action: Action::Allow,
            rules: Vec::new(),
        }],
        ..PluginConfig::default()
    }]
}

/// Checks that every configuration can be emitted and that the engine
/// accepts it; the error names the WasmPlugin.
fn check_configs(configs: &[PluginConfig]) -> Result<(), String> {
    for (i, config) in configs.iter().enumerate() {
        let name = PluginName(i);
        let size = serde_json::to_vec(config).map_or(usize::MAX, |v| v.len());
        if size > HARD_LIMIT_BYTES {
            return Err(format!(
                "WasmPlugin {name}: its pluginConfig would be {size} bytes, over the limit of {HARD_LIMIT_BYTES}"
            ));
        }
        Engine::compile(config).map_err(|e| format!("WasmPlugin {name}: the engine rejects its pluginConfig: {e}"))?;
    }
    Ok(())
}
