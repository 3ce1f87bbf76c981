//! Packing a namespace's policies into WasmPlugins of bounded size.
//!
//! A Kubernetes object must fit etcd's request limit, so a namespace whose
//! configuration exceeds the size budget is split into several WasmPlugins.
//! The split must not loosen anything: the filter admits a request if any
//! applicable policy of *one* configuration admits it, while two WasmPlugins
//! on one workload must *both* admit it. So the policies that apply to a
//! common workload stay together (union-find over the workloads' label
//! sets), and groups are packed first-fit decreasing.

use std::collections::{BTreeMap, BTreeSet};

use meshward_filter::config::Policy;

use super::workloads::selects;

/// Policies packed into WasmPlugins.
pub(super) struct Packing {
    /// Per WasmPlugin, the indices of its policies, ascending.
    pub(super) bins: Vec<Vec<usize>>,
    /// Per policy: the size of its group when the group alone exceeds the budget.
    pub(super) oversize: Vec<Option<usize>>,
}

/// The size of `{"policies":[]}`, the JSON of a configuration without policy.
const EMPTY_CONFIG_BYTES: usize = 15;

/// The representative of `i`'s set in a union-find forest, halving paths.
fn root(parent: &mut [usize], mut i: usize) -> usize {
    while let Some(&p) = parent.get(i) {
        if p == i {
            break;
        }
        let grand = parent.get(p).copied().unwrap_or(p);
        if let Some(slot) = parent.get_mut(i) {
            *slot = grand;
        }
        i = grand;
    }
    i
}

/// Packs `policies` into as few pluginConfigs of at most `budget` bytes as
/// first-fit decreasing finds, keeping together the policies that apply to a
/// common workload (`workloads`: the label sets of the namespace's pods and pod
/// templates). A workload that appears later and is selected by policies of
/// two WasmPlugins gets that intersection: stricter, never looser. Everything
/// in one configuration when it fits.
pub(super) fn pack(policies: &[&Policy], workloads: &BTreeSet<&BTreeMap<String, String>>, budget: usize) -> Packing {
    let sizes: Vec<usize> = policies
        .iter()
        .map(|p| serde_json::to_vec(p).map_or(usize::MAX / 4, |v| v.len()))
        .collect();
    // The exact size of `{"policies":[...]}` holding `n` policies of `bytes` in all.
    let config_size = |bytes: usize, n: usize| {
        EMPTY_CONFIG_BYTES
            .saturating_add(bytes)
            .saturating_add(n.saturating_sub(1))
    };
    let total = config_size(sizes.iter().fold(0usize, |a, s| a.saturating_add(*s)), sizes.len());
    let mut oversize = vec![None; policies.len()];
    if total <= budget || policies.is_empty() {
        return Packing {
            bins: vec![(0..policies.len()).collect()],
            oversize,
        };
    }
    // Union-find over the policies applying to each workload.
    let mut parent: Vec<usize> = (0..policies.len()).collect();
    for labels in workloads {
        let mut first = None;
        for (i, p) in policies.iter().enumerate() {
            if p.selector.as_ref().is_none_or(|s| selects(s, Some(labels))) {
                match first {
                    None => first = Some(i),
                    Some(f) => {
                        let (a, b) = (root(&mut parent, f), root(&mut parent, i));
                        if let Some(slot) = parent.get_mut(a.max(b)) {
                            *slot = a.min(b);
                        }
                    }
                }
            }
        }
    }
    // Per group: its policies' bytes and indices.
    let mut groups: BTreeMap<usize, (usize, Vec<usize>)> = BTreeMap::new();
    for (i, size) in sizes.iter().enumerate() {
        let r = root(&mut parent, i);
        let g = groups.entry(r).or_default();
        g.0 = g.0.saturating_add(*size);
        g.1.push(i);
    }
    let mut groups: Vec<(usize, Vec<usize>)> = groups.into_values().collect();
    // Decreasing size; equal sizes by their first policy's index (name).
    groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    // Per bin: its policies' bytes, whether it is closed, its policies.
    let mut bins: Vec<(usize, bool, Vec<usize>)> = Vec::new();
    for (bytes, members) in groups {
        let alone = config_size(bytes, members.len());
        if alone > budget {
            // Cannot be split: emitted whole, alone.
            for &i in &members {
                if let Some(slot) = oversize.get_mut(i) {
                    *slot = Some(alone);
                }
            }
            bins.push((bytes, true, members));
            continue;
        }
        let fits = |(used, closed, list): &&mut (usize, bool, Vec<usize>)| {
            !*closed && config_size(used.saturating_add(bytes), list.len() + members.len()) <= budget
        };
        match bins.iter_mut().find(fits) {
            Some((used, _, list)) => {
                *used = used.saturating_add(bytes);
                list.extend(members);
            }
            None => bins.push((bytes, false, members)),
        }
    }
    Packing {
        bins: bins
            .into_iter()
            .map(|(_, _, mut list)| {
                list.sort_unstable();
                list
            })
            .collect(),
        oversize,
    }
}

/// The labels (same key and value) common to the selectors of all
/// `policies`; `None` when that is none, so the plugin reaches every workload.
pub(super) fn common_labels(policies: &[Policy]) -> Option<BTreeMap<String, String>> {
    let mut iter = policies.iter();
    let mut common = iter.next()?.selector.clone().unwrap_or_default();
    for p in iter {
        let selector = p.selector.as_ref();
        common.retain(|k, v| selector.and_then(|s| s.get(k)) == Some(v));
    }
    (!common.is_empty()).then_some(common)
}
