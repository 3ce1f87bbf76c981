//! The watchers: one kube-runtime watcher per kind, reading the slim wire
//! types of [`crate::state::wire`] and feeding the shared
//! [`ClusterState`](crate::state::ClusterState); per-kind health so the
//! reconciler knows when its view is complete.
//!
//! Lists are paginated (500 objects a page) and consistent (kube's
//! `MostRecent` semantic, no `resourceVersion=0`): an API server serves a
//! `resourceVersion=0` list from its cache in one response whatever the
//! `limit`, which for 100,000 pods is close to a gigabyte of JSON held at once.
//! A re-list (after a watch was lost) is collected apart and replaces the
//! kind's objects when it completes, so the state never shows half a list.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::task::JoinSet;

use super::Shared;
use crate::apidesc::API_LABEL;
use crate::derive::MANAGED_BY;
use crate::state::wire::{
    AllowlistWire, ConfigMapWire, DaemonSet, Deployment, NamespaceWire, PodWire, ServiceAccountWire, ServiceWire,
    StatefulSet, WasmPluginWire, Watched,
};
use crate::state::{Interner, Kind, Object};

/// The health of one watched kind.
#[derive(Debug)]
pub struct KindHealth {
    /// The kind.
    pub kind: Kind,
    /// A full list has completed at least once.
    synced: AtomicBool,
    /// The last list or watch call failed (the watcher re-lists with backoff).
    failing: AtomicBool,
    /// A re-list is under way (the state keeps the previous complete list
    /// until it finishes).
    listing: AtomicBool,
}

impl KindHealth {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            synced: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            listing: AtomicBool::new(false),
        }
    }

    fn complete(&self) -> bool {
        self.synced.load(Ordering::Acquire)
            && !self.failing.load(Ordering::Acquire)
            && !self.listing.load(Ordering::Acquire)
    }
}

/// The health of every watched kind.
#[derive(Debug)]
pub struct Health(Vec<Arc<KindHealth>>);

impl Health {
    /// One entry per kind the service watches.
    pub fn new() -> Self {
        Self(Kind::ALL.iter().map(|k| Arc::new(KindHealth::new(*k))).collect())
    }

    fn of(&self, kind: Kind) -> Arc<KindHealth> {
        self.0
            .iter()
            .find(|h| h.kind == kind)
            .cloned()
            .unwrap_or_else(|| Arc::new(KindHealth::new(kind)))
    }

    /// Every kind has completed its first full list.
    pub fn synced(&self) -> bool {
        self.0.iter().all(|h| h.synced.load(Ordering::Acquire))
    }

    /// Every kind is synced, healthy and not re-listing: the view is
    /// complete and deletes are safe.
    pub fn complete(&self) -> bool {
        self.0.iter().all(|h| h.complete())
    }

    /// The kinds whose view is incomplete, for logs and `/readyz`.
    pub fn incomplete(&self) -> Vec<&'static str> {
        self.0
            .iter()
            .filter(|h| !h.complete())
            .map(|h| h.kind.as_str())
            .collect()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts one watcher per kind on `tasks`.
pub fn start(client: &Client, shared: &Arc<Shared>, tasks: &mut JoinSet<()>) {
    let all = watcher::Config::default();
    spawn::<NamespaceWire>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<PodWire>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<Deployment>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<StatefulSet>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<DaemonSet>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<ServiceAccountWire>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<ServiceWire>(tasks, Api::all(client.clone()), all.clone(), shared);
    spawn::<AllowlistWire>(tasks, Api::all(client.clone()), all, shared);
    let owned = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    spawn::<WasmPluginWire>(tasks, Api::all(client.clone()), owned, shared);
    // Only the ConfigMaps that hold API descriptions: every namespace has
    // some (`kube-root-ca.crt`, application configuration) that derivation
    // never reads.
    let described = watcher::Config::default().labels(&format!("{}={}", API_LABEL.0, API_LABEL.1));
    spawn::<ConfigMapWire>(tasks, Api::all(client.clone()), described, shared);
}

/// Backoff between a failed list or watch and the next full re-list.
const RELIST_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// Runs a watcher for `K` on `tasks`, applying its events to the state.
///
/// Any error ends the watcher and starts a new one, after a backoff: a fresh
/// list is the only way to know the view is whole again (a resumed watch
/// that sees no events says nothing).
fn spawn<K: Watched>(tasks: &mut JoinSet<()>, api: Api<K>, config: watcher::Config, shared: &Arc<Shared>) {
    let shared = shared.clone();
    let health = shared.health.of(K::KIND);
    tasks.spawn(async move {
        let (min, max) = RELIST_BACKOFF;
        let mut backoff = min;
        loop {
            let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()));
            let mut relist: Option<(Vec<Object>, Interner)> = None;
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        shared.metrics.watch_error(K::KIND);
                        if !health.failing.swap(true, Ordering::AcqRel) {
                            tracing::warn!(kind = K::KIND.as_str(), error = %e, "list or watch failed; re-listing with backoff");
                        }
                        break;
                    }
                };
                match event {
                    watcher::Event::Init => {
                        health.listing.store(true, Ordering::Release);
                        relist = Some((Vec::new(), Interner::default()));
                    }
                    watcher::Event::InitApply(o) => {
                        if let (Some((list, interner)), Some(object)) = (relist.as_mut(), o.into_object()) {
                            list.push(interner.intern(object));
                        }
                    }
                    watcher::Event::InitDone => {
                        let objects = relist.take().map(|(list, _)| list).unwrap_or_default();
                        let changes = shared.with_state(|s| s.replace(K::KIND, objects));
                        let first = !health.synced.swap(true, Ordering::AcqRel);
                        health.listing.store(false, Ordering::Release);
                        let recovered = health.failing.swap(false, Ordering::AcqRel);
                        if recovered {
                            tracing::info!(kind = K::KIND.as_str(), "re-listed; view complete again");
                        }
                        if first {
                            tracing::info!(kind = K::KIND.as_str(), "initial list complete");
                        }
                        backoff = min;
                        // After a list, plan everything again: deletes postponed
                        // while the view was incomplete are due now, and changes
                        // left pending by rounds skipped meanwhile are taken.
                        shared.note(changes, true);
                    }
                    watcher::Event::Apply(o) => {
                        if let Some(object) = o.into_object() {
                            let changes = shared.with_state(|s| s.apply(object));
                            shared.note(changes, false);
                        }
                    }
                    watcher::Event::Delete(o) => {
                        if let Some(object) = o.into_object() {
                            let (ns, name) = (object.namespace, object.name);
                            let changes = shared.with_state(|s| s.delete(K::KIND, &ns, &name));
                            shared.note(changes, false);
                        }
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max);
        }
    });
}
