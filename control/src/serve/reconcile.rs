//! The reconciler: after a change (debounced) or every resync period, one
//! round of snapshot → derive → plan → write.

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use thiserror::Error;

use super::metrics::Round;
use super::plan::plan;
use super::write::write;
use super::{Derived, Shared};
use crate::derive::derive;

/// Why a reconcile round did not finish.
#[derive(Debug, Error)]
pub(super) enum RoundError {
    /// The derivation task panicked or was cancelled: a bug, not a verdict on
    /// the cluster's objects (those become Allowlist statuses).
    #[error("the derivation task did not complete: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Some writes failed; they are retried with the round.
    #[error("{failed} of {total} writes failed; first: {first}")]
    Writes {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// The first failure.
        first: kube::Error,
    },
}

/// Runs rounds until the task is dropped.
pub(super) async fn reconcile_loop(shared: Arc<Shared>) {
    let (min, max) = shared.config.backoff;
    let mut backoff = min;
    loop {
        tokio::select! {
            () = shared.changed.notified() => {}
            () = tokio::time::sleep(shared.config.resync) => {}
        }
        // Debounce: let a burst of events settle, then take one round for all of it.
        tokio::time::sleep(shared.config.debounce).await;
        let _ = shared.changed.notified().now_or_never();
        shared.metrics.set_ready(shared.cluster.synced());
        if !shared.cluster.complete() {
            // Nothing is written on a partial view; the watchers notify again
            // once they have listed and recovered.
            tracing::info!(waiting_for = ?shared.cluster.incomplete(), "view incomplete; not writing");
            shared.metrics.round(Round::Skipped);
            continue;
        }
        match reconcile(&shared).await {
            Ok(()) => {
                shared.metrics.round(Round::Ok);
                backoff = min;
            }
            Err(e) => {
                shared.metrics.round(Round::Error);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "reconcile failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
                shared.changed.notify_one();
            }
        }
    }
}

/// One round: snapshot, derive, plan, write.
async fn reconcile(shared: &Shared) -> Result<(), RoundError> {
    // Snapshot and derivation are CPU work over the whole cluster: off the
    // runtime threads that serve the watchers and the API.
    let cluster = shared.cluster.clone();
    let (trust_domain, settings) = (shared.config.trust_domain.clone(), shared.config.settings.clone());
    let (snapshot, desired, took) = tokio::task::spawn_blocking(move || {
        let snapshot = cluster.snapshot(&trust_domain);
        let started = Instant::now();
        let desired = derive(&snapshot, &settings, Timestamp::now());
        (snapshot, desired, started.elapsed())
    })
    .await?;
    shared.metrics.derived(took, desired.wasm_plugins.len());
    let observed = shared.cluster.observed();
    let plan = plan(&desired, &observed, shared.cluster.complete());
    if let Ok(mut latest) = shared.latest.write() {
        *latest = Some(Arc::new(Derived { snapshot, desired }));
    }
    tracing::debug!(
        apply = plan.apply.len(),
        delete = plan.delete.len(),
        statuses = plan.statuses.len(),
        unchanged = plan.unchanged_plugins + plan.unchanged_statuses,
        "planned"
    );
    write(shared, plan).await
}
