//! The status derivation writes on each Allowlist: a `Ready` condition (is it
//! part of its namespace's configuration, and if not why not and what stands
//! in) and a `WithinBudget` condition (does it fit a WasmPlugin's size budget
//! together with the Allowlists sharing its workloads).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::translate::Invalid;
use super::{ENFORCEMENT_LABEL, HARD_LIMIT_BYTES};
use crate::crd::{AllowlistStatus, Resolved};

/// `Ready=True`: part of a WasmPlugin.
pub const REASON_DERIVED: &str = "Derived";
/// `Ready=False`: the namespace's configuration as a whole was rejected.
pub const REASON_NAMESPACE_CONFIG_REJECTED: &str = "NamespaceConfigRejected";
/// `Ready=False`: another field manager applies fields of the WasmPlugin
/// holding the Allowlist, which meshward does not take back.
pub const REASON_FIELD_MANAGER_CONFLICT: &str = "FieldManagerConflict";
/// `Ready=False`: the namespace is not labelled for meshward.
pub const REASON_NAMESPACE_NOT_ENABLED: &str = "NamespaceNotEnabled";
/// `WithinBudget=True`.
pub const REASON_WITHIN_BUDGET: &str = "WithinBudget";
/// `WithinBudget=False`.
pub const REASON_OVER_BUDGET: &str = "OverBudget";

/// One Kubernetes condition, stamped `now` (the writer keeps an existing
/// condition's time when its status did not change).
fn condition(type_: &str, ok: bool, reason: &str, message: String, generation: Option<i64>, now: &Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// What derivation found for one Allowlist of an enabled namespace.
pub(super) struct Outcome<'a> {
    /// The Allowlist's generation.
    pub(super) generation: Option<i64>,
    /// What its references resolved to.
    pub(super) resolved: Resolved,
    /// Why it could not be derived as written, when so.
    pub(super) invalid: Option<&'a Invalid>,
    /// Why its namespace's configuration was rejected, when so.
    pub(super) rejected: Option<&'a str>,
    /// Who else applies the WasmPlugin holding it, when anyone.
    pub(super) conflict: Option<&'a str>,
    /// The WasmPlugin holding its policy.
    pub(super) plugin: Option<String>,
    /// The size of its group, when over the budget.
    pub(super) oversize: Option<usize>,
    /// The budget.
    pub(super) budget: usize,
}

/// The status of an Allowlist of an enabled namespace.
pub(super) fn enabled(o: &Outcome<'_>, now: &Time) -> AllowlistStatus {
    let generation = o.generation;
    let ready = match (o.rejected, o.invalid) {
        (None, _) if o.conflict.is_some() => condition(
            "Ready",
            false,
            REASON_FIELD_MANAGER_CONFLICT,
            o.conflict.unwrap_or_default().to_string(),
            generation,
            now,
        ),
        (Some(rejected), invalid) => {
            let mut message = rejected.to_string();
            if let Some(invalid) = invalid {
                message.push_str(&format!("; this Allowlist is also invalid: {}", invalid.message));
            }
            condition(
                "Ready",
                false,
                REASON_NAMESPACE_CONFIG_REJECTED,
                message,
                generation,
                now,
            )
        }
        (None, Some(invalid)) => condition(
            "Ready",
            false,
            invalid.reason.as_str(),
            invalid.message.clone(),
            generation,
            now,
        ),
        (None, None) => condition(
            "Ready",
            true,
            REASON_DERIVED,
            format!(
                "part of WasmPlugin {}",
                o.plugin.as_deref().unwrap_or(super::PLUGIN_NAME)
            ),
            generation,
            now,
        ),
    };
    let budget = o.budget;
    let within = match o.oversize {
        Some(size) => condition(
            "WithinBudget",
            false,
            REASON_OVER_BUDGET,
            format!(
                "with the Allowlists that share its workloads it serializes to {size} bytes, over the budget \
                 of {budget} bytes, and cannot be split; emitted whole up to {HARD_LIMIT_BYTES} bytes"
            ),
            generation,
            now,
        ),
        None => condition(
            "WithinBudget",
            true,
            REASON_WITHIN_BUDGET,
            format!("within the budget of {budget} bytes"),
            generation,
            now,
        ),
    };
    AllowlistStatus {
        observed_generation: generation,
        conditions: vec![ready, within],
        resolved: Some(o.resolved),
    }
}

/// The status of an Allowlist in a namespace nothing enforces (a status left
/// from when the namespace was enabled must not keep saying Ready).
pub(super) fn not_enabled(ns: &str, generation: Option<i64>, now: &Time) -> AllowlistStatus {
    let message = format!(
        "namespace {ns} is not labelled {ENFORCEMENT_LABEL}=enabled, audit or learn; nothing enforces this Allowlist"
    );
    AllowlistStatus {
        observed_generation: generation,
        conditions: vec![condition(
            "Ready",
            false,
            REASON_NAMESPACE_NOT_ENABLED,
            message,
            generation,
            now,
        )],
        resolved: None,
    }
}
