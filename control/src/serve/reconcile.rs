//! The reconciler: after changes (collected for `debounce`) or every resync
//! period, one round of derive → plan → queue writes.
//!
//! A round derives the namespaces the pending changes affect (all of them
//! for the first round and each resync), on every core, reading the state
//! one namespace at a time so the watchers are never held up for long. It
//! plans those namespaces and the ones whose observed objects changed, and
//! hands the writes to the writer without waiting for them: a change that
//! arrives while thousands of writes are queued is derived and applied ahead
//! of them (WasmPlugins go first).
//!
//! A burst of events costs one round per `debounce` at most: events mark
//! namespaces, and a round takes every mark made since the last one.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use thiserror::Error;

use super::metrics::Round;
use super::plan::plan;
use super::{Pending, Shared};
use crate::derive::{derive_namespace, NamespaceDesired, Settings};

/// Why a reconcile round did not finish.
#[derive(Debug, Error)]
pub(super) enum RoundError {
    /// The derivation task panicked or was cancelled: a bug, not a verdict on
    /// the cluster's objects (those become Allowlist statuses).
    #[error("the derivation task did not complete: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A derivation thread panicked.
    #[error("a derivation thread panicked")]
    Panicked,
}

/// Runs rounds until the task is dropped.
pub(super) async fn reconcile_loop(shared: Arc<Shared>) {
    let mut last_full: Option<Instant> = None;
    loop {
        let resync_in = last_full.map_or(shared.config.resync, |t| {
            shared.config.resync.saturating_sub(t.elapsed())
        });
        tokio::select! {
            () = shared.changed.notified() => {}
            () = tokio::time::sleep(resync_in) => {}
        }
        // Collect what else changes in the next moments into the same round;
        // the notifications of those changes are then spent.
        tokio::time::sleep(shared.config.debounce).await;
        let _ = shared.changed.notified().now_or_never();
        if !shared.health.complete() {
            // Nothing is derived or written on a partial view; the pending
            // changes wait, and the watchers notify again once they have
            // listed and recovered.
            tracing::info!(waiting_for = ?shared.health.incomplete(), "view incomplete; not writing");
            shared.metrics.round(Round::Skipped);
            shared.metrics.set_ready(shared.ready());
            continue;
        }
        let full = last_full.is_none_or(|t| t.elapsed() >= shared.config.resync);
        let pending = shared.take_pending();
        if !full && pending.is_empty() {
            continue;
        }
        let started = Instant::now();
        match round(&shared, pending, full).await {
            Ok(derived) => {
                shared.metrics.round(Round::Ok);
                shared.metrics.round_done(started.elapsed(), derived);
                if full {
                    last_full = Some(started);
                    shared.derived_once.store(true, Ordering::Release);
                }
            }
            Err(e) => {
                // Everything is derived again at the next round.
                shared.metrics.round(Round::Error);
                tracing::error!(error = %e, "reconcile round failed");
                last_full = None;
                shared.changed.notify_one();
            }
        }
        shared.metrics.set_ready(shared.ready());
    }
}

/// One round; returns the number of namespaces derived.
async fn round(shared: &Arc<Shared>, pending: Pending, full: bool) -> Result<usize, RoundError> {
    let Pending { changes, plan_all } = pending;
    let to_derive: BTreeSet<String> = if full {
        let mut all: BTreeSet<String> = shared.read_state(|s| s.namespaces().map(|(ns, _)| ns.to_string()).collect());
        if let Ok(d) = shared.derived.read() {
            all.extend(d.namespaces().map(|(ns, _)| ns.to_string()));
        }
        all
    } else {
        shared.derived.read().map(|d| d.affected(&changes)).unwrap_or_default()
    };
    let settings = shared.config.settings.clone();
    let now = Timestamp::now();
    let worker = shared.clone();
    let namespaces: Vec<String> = to_derive.iter().cloned().collect();
    let results =
        tokio::task::spawn_blocking(move || derive_in_parallel(&worker, &namespaces, &settings, now)).await??;
    let derived = results.len();
    if let Ok(mut d) = shared.derived.write() {
        for (ns, desired) in results {
            d.set(&ns, desired);
        }
        shared.metrics.wasm_plugins(d.wasm_plugins());
    }
    let mut to_plan = to_derive;
    to_plan.extend(changes.plan);
    if plan_all || full {
        to_plan.extend(shared.read_state(|s| s.namespaces().map(|(ns, _)| ns.to_string()).collect::<Vec<_>>()));
    }
    if !shared.leadership.is_leader() {
        // A follower derives (it serves the API) but writes nothing; the
        // leader it may become plans everything then.
        shared.unwritten.store(true, Ordering::Release);
        return Ok(derived);
    }
    let complete = shared.health.complete();
    let (mut apply, mut delete, mut statuses) = (0, 0, 0);
    for ns in &to_plan {
        let desired = shared.derived(ns);
        let p = shared.read_state(|s| plan(ns, desired.as_deref(), s.namespace(ns), complete));
        shared
            .metrics
            .writes_n("WasmPlugin", super::metrics::Outcome::Unchanged, p.unchanged_plugins);
        shared.metrics.writes_n(
            "AllowlistStatus",
            super::metrics::Outcome::Unchanged,
            p.unchanged_statuses,
        );
        apply += p.apply.len();
        delete += p.delete.len();
        statuses += p.statuses.len();
        shared.writer.enqueue(p);
    }
    tracing::debug!(derived, planned = to_plan.len(), apply, delete, statuses, "round");
    Ok(derived)
}

/// Derives `namespaces` on every core, each reading the state for one
/// namespace at a time.
fn derive_in_parallel(
    shared: &Shared,
    namespaces: &[String],
    settings: &Settings,
    now: Timestamp,
) -> Result<Vec<(String, NamespaceDesired)>, RoundError> {
    if namespaces.is_empty() {
        return Ok(Vec::new());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let size = namespaces.len().div_ceil(threads.min(namespaces.len()));
    std::thread::scope(|scope| {
        let handles: Vec<_> = namespaces
            .chunks(size.max(1))
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|ns| {
                            (
                                ns.clone(),
                                shared.read_state(|s| derive_namespace(s, ns, settings, now)),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(namespaces.len());
        for h in handles {
            out.extend(h.join().map_err(|_| RoundError::Panicked)?);
        }
        Ok(out)
    })
}
