//! The writer: carries out a plan with server-side apply under one field
//! manager, conditional deletes, and status writes; counts every outcome.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::Api;
use serde_json::json;

use super::cluster::wasm_plugin_resource;
use super::metrics::Outcome;
use super::plan::Plan;
use super::reconcile::RoundError;
use super::{Shared, FIELD_MANAGER};
use crate::crd::Allowlist;

/// Carries out a plan; every write is attempted, failures are counted and
/// the first is reported (the round is retried).
pub(super) async fn write(shared: &Shared, plan: Plan) -> Result<(), RoundError> {
    let client = &shared.client;
    let m = &shared.metrics;
    let ar = wasm_plugin_resource();
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    let total = plan.apply.len() + plan.delete.len() + plan.statuses.len();
    let mut errors = Vec::new();
    m.writes_n("WasmPlugin", Outcome::Unchanged, plan.unchanged_plugins);
    m.writes_n("AllowlistStatus", Outcome::Unchanged, plan.unchanged_statuses);
    for p in &plan.apply {
        let (Some(ns), Some(name)) = (p.metadata.namespace.as_deref(), p.metadata.name.as_deref()) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        match api.patch(name, &apply, &Patch::Apply(p)).await {
            Ok(_) => {
                tracing::info!(namespace = ns, name, "WasmPlugin applied");
                m.write("WasmPlugin", Outcome::Applied);
            }
            Err(e) => {
                tracing::warn!(namespace = ns, name, error = %e, "WasmPlugin apply failed");
                m.write("WasmPlugin", Outcome::Error);
                errors.push(e);
            }
        }
    }
    for d in &plan.delete {
        let (ns, name) = (&d.namespace, &d.name);
        // Checked again right before acting: a watch may have failed meanwhile.
        if !shared.cluster.complete() {
            tracing::info!(namespace = %ns, name = %name, "view became incomplete; delete postponed");
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        // Only the object observed: if it changed since, the round is retried.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: d.uid.clone(),
                resource_version: d.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                tracing::info!(namespace = %ns, name = %name, "WasmPlugin deleted (no longer derived)");
                m.write("WasmPlugin", Outcome::Deleted);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => m.write("WasmPlugin", Outcome::Deleted),
            Err(e) => {
                tracing::warn!(namespace = %ns, name = %name, error = %e, "WasmPlugin delete failed");
                m.write("WasmPlugin", Outcome::Error);
                errors.push(e);
            }
        }
    }
    for s in &plan.statuses {
        let api: Api<Allowlist> = Api::namespaced(client.clone(), &s.namespace);
        let body = json!({"apiVersion": "meshward.io/v1alpha1", "kind": "Allowlist", "status": s.status});
        match api.patch_status(&s.name, &apply, &Patch::Apply(&body)).await {
            Ok(_) => m.write("AllowlistStatus", Outcome::Applied),
            // Deleted since the snapshot: nothing to report on.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(namespace = %s.namespace, name = %s.name, error = %e, "status write failed");
                m.write("AllowlistStatus", Outcome::Error);
                errors.push(e);
            }
        }
    }
    let failed = errors.len();
    match errors.into_iter().next() {
        None => Ok(()),
        Some(first) => Err(RoundError::Writes { failed, total, first }),
    }
}
