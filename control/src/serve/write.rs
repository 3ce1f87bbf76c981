//! The writer: a queue of writes and a few workers that make them with
//! server-side apply under one field manager.
//!
//! * **Priority.** WasmPlugin applies and deletes go before Allowlist
//!   statuses: a policy change is applied while thousands of statuses (a
//!   first sync) are still waiting.
//! * **Coalescing.** One queued write per object: a newer plan for the same
//!   object replaces the queued one, and no object is written by two workers
//!   at once.
//! * **Checked again.** Right before a write, the worker compares it with the
//!   state once more and skips it if the cluster already holds it, or if this
//!   service wrote exactly that and the watch has not shown the object since
//!   (its resource version is still the one seen before that write): a
//!   status is written once, not once per round while the watch catches up.
//!   Replies are not put into the state: the watch delivers events in order,
//!   and an older event arriving after a newer reply would turn the state
//!   back.
//! * **Retried by planning again.** A failed write is not replayed: after a
//!   backoff its namespace is planned again from what is desired then.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::metrics::Outcome;
use super::plan::{
    keep_transition_times, plugin_content, plugin_is_current, status_content, status_is_current, Delete, Plan,
};
use super::{events, Shared, FIELD_MANAGER};
use crate::derive::{StatusUpdate, WasmPlugin};
use crate::state::wire::{AllowlistWire, WasmPluginWire};

/// What is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Class {
    /// A WasmPlugin: enforcement; goes first.
    Plugin,
    /// An Allowlist status: reporting.
    Status,
}

/// One object's queued write.
type Key = (Class, String, String);

#[derive(Debug)]
enum Op {
    Apply(Box<WasmPlugin>),
    Delete(Delete),
    Status(StatusUpdate),
}

/// What this service last wrote to an object, and the resource version the
/// object had when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    content: String,
    before: Option<String>,
}

#[derive(Debug, Default)]
struct Queue {
    plugins: VecDeque<Key>,
    statuses: VecDeque<Key>,
    ops: HashMap<Key, Op>,
    in_flight: HashSet<Key>,
    /// Consecutive failures per object, for the retry backoff.
    failures: HashMap<Key, u32>,
    /// The last successful write per object.
    written: HashMap<Key, Written>,
}

impl Queue {
    fn push(&mut self, key: Key, op: Op) {
        if self.ops.insert(key.clone(), op).is_none() {
            match key.0 {
                Class::Plugin => self.plugins.push_back(key),
                Class::Status => self.statuses.push_back(key),
            }
        }
    }

    /// The next write whose object is not being written, plugins first.
    fn pop(&mut self) -> Option<(Key, Op)> {
        for list in [&mut self.plugins, &mut self.statuses] {
            if let Some(at) = list.iter().position(|k| !self.in_flight.contains(k)) {
                let key = list.remove(at)?;
                let op = self.ops.remove(&key)?;
                self.in_flight.insert(key.clone());
                return Some((key, op));
            }
        }
        None
    }

    fn depth(&self) -> usize {
        self.ops.len()
    }
}

/// The write queue, shared by the reconciler (which fills it) and the workers.
#[derive(Debug, Default)]
pub(super) struct Writer {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Writer {
    /// Queues the writes of a plan.
    pub(super) fn enqueue(&self, plan: Plan) {
        let Ok(mut q) = self.queue.lock() else {
            return;
        };
        for p in plan.apply {
            let (Some(ns), Some(name)) = (p.metadata.namespace.clone(), p.metadata.name.clone()) else {
                continue;
            };
            q.push((Class::Plugin, ns, name), Op::Apply(Box::new(p)));
        }
        for d in plan.delete {
            q.push((Class::Plugin, d.namespace.clone(), d.name.clone()), Op::Delete(d));
        }
        for s in plan.statuses {
            q.push((Class::Status, s.namespace.clone(), s.name.clone()), Op::Status(s));
        }
        drop(q);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Whether this service already wrote `content` to `key` and the watch
    /// has not shown the object since (it still has resource version `now`).
    fn in_flight(&self, key: &Key, content: &str, now: Option<&String>) -> bool {
        self.queue.lock().is_ok_and(|q| {
            q.written
                .get(key)
                .is_some_and(|w| w.content == content && w.before.as_ref() == now)
        })
    }

    /// Records a successful write of `content` to `key`, made when the object
    /// had resource version `before`.
    fn wrote(&self, key: Key, content: String, before: Option<String>) {
        if let Ok(mut q) = self.queue.lock() {
            q.written.insert(key, Written { content, before });
        }
    }

    /// Writes queued or being made.
    pub(super) fn depth(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.depth() + q.in_flight.len())
    }

    async fn next(&self) -> (Key, Op) {
        loop {
            let notified = self.wake.notified();
            if let Some(next) = self.queue.lock().ok().and_then(|mut q| q.pop()) {
                return next;
            }
            notified.await;
        }
    }

    /// Marks `key` written; returns the backoff before planning it again
    /// when it failed.
    fn done(&self, key: &Key, failed: bool, backoff: (Duration, Duration)) -> Option<Duration> {
        let mut q = self.queue.lock().ok()?;
        q.in_flight.remove(key);
        let retry = if failed {
            let n = q.failures.entry(key.clone()).or_default();
            *n = n.saturating_add(1);
            let (min, max) = backoff;
            Some(
                min.saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
                    .min(max),
            )
        } else {
            q.failures.remove(key);
            None
        };
        drop(q);
        // A write for this object may have been queued while this one ran.
        self.wake.notify_one();
        retry
    }
}

/// Starts `workers` writers on `tasks`.
pub(super) fn start(shared: &Arc<Shared>, workers: usize, tasks: &mut JoinSet<()>) {
    for _ in 0..workers.max(1) {
        let shared = shared.clone();
        tasks.spawn(async move {
            loop {
                let (key, op) = shared.writer.next().await;
                let ok = write(&shared, op).await;
                if let Some(backoff) = shared.writer.done(&key, !ok, shared.config.backoff) {
                    let shared = shared.clone();
                    let ns = key.1.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(backoff).await;
                        shared.replan(ns);
                    });
                }
            }
        });
    }
}

/// Makes one write; `false` if it failed. Only the leader writes, and no
/// write outlives its leadership: one still pending when the leadership would
/// lapse is abandoned (and planned again by whoever leads then).
async fn write(shared: &Shared, op: Op) -> bool {
    let Some(remaining) = shared.leadership.remaining() else {
        // Planned again once this replica leads.
        tracing::debug!("not the leader; write not made");
        shared.unwritten.store(true, std::sync::atomic::Ordering::Release);
        return true;
    };
    let made = async {
        match op {
            Op::Apply(p) => apply(shared, &p).await,
            Op::Delete(d) => delete(shared, &d).await,
            Op::Status(s) => status(shared, &s).await,
        }
    };
    match tokio::time::timeout(remaining, made).await {
        Ok(ok) => ok,
        Err(_) => {
            tracing::warn!("leadership lapsed during a write; abandoned");
            false
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply(shared: &Shared, p: &WasmPlugin) -> bool {
    let m = &shared.metrics;
    let (Some(ns), Some(name)) = (p.metadata.namespace.as_deref(), p.metadata.name.as_deref()) else {
        return true;
    };
    let (current, before) = shared.read_state(|s| {
        let observed = s.namespace(ns).and_then(|n| n.plugin(name));
        (
            plugin_is_current(p, observed),
            observed.and_then(|o| o.resource_version.clone()),
        )
    });
    let key = (Class::Plugin, ns.to_string(), name.to_string());
    let content = plugin_content(p);
    if current || shared.writer.in_flight(&key, &content, before.as_ref()) {
        m.write("WasmPlugin", Outcome::Unchanged);
        return true;
    }
    let api: Api<WasmPluginWire> = Api::namespaced(shared.client.clone(), ns);
    match api.patch(name, &apply_params(), &Patch::Apply(p)).await {
        Ok(_) => {
            tracing::info!(namespace = ns, name, "WasmPlugin applied");
            m.write("WasmPlugin", Outcome::Applied);
            shared.writer.wrote(key, content, before);
            true
        }
        Err(e) => {
            tracing::warn!(namespace = ns, name, error = %e, "WasmPlugin apply failed");
            m.write("WasmPlugin", Outcome::Error);
            false
        }
    }
}

async fn delete(shared: &Shared, d: &Delete) -> bool {
    let m = &shared.metrics;
    let (ns, name) = (d.namespace.as_str(), d.name.as_str());
    // Checked again right before acting: a watch may have failed meanwhile
    // (the namespace is planned again once the view is whole), or the object
    // changed (it is planned again from its watch event).
    if !shared.health.complete() {
        tracing::info!(namespace = ns, name, "view incomplete; delete postponed");
        return true;
    }
    let still = shared.read_state(|s| {
        s.namespace(ns)
            .and_then(|n| n.plugin(name))
            .is_some_and(|p| p.uid == d.uid && p.resource_version == d.resource_version)
    });
    if !still {
        return true;
    }
    let api: Api<WasmPluginWire> = Api::namespaced(shared.client.clone(), ns);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: d.uid.clone(),
            resource_version: d.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {
            tracing::info!(namespace = ns, name, "WasmPlugin deleted (no longer derived)");
            m.write("WasmPlugin", Outcome::Deleted);
            true
        }
        // Gone already, or changed since it was observed (its own watch event
        // plans it again): nothing to do now.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
            m.write("WasmPlugin", Outcome::Deleted);
            true
        }
        Err(e) => {
            tracing::warn!(namespace = ns, name, error = %e, "WasmPlugin delete failed");
            m.write("WasmPlugin", Outcome::Error);
            false
        }
    }
}

async fn status(shared: &Shared, s: &StatusUpdate) -> bool {
    let m = &shared.metrics;
    let (ns, name) = (s.namespace.as_str(), s.name.as_str());
    let Some((current, before, uid, generation)) = shared.read_state(|st| {
        st.namespace(ns).and_then(|n| n.allowlist(name)).map(|a| {
            (
                a.status.clone(),
                a.resource_version.clone(),
                a.uid.clone(),
                a.generation,
            )
        })
    }) else {
        // Deleted since: nothing to report on.
        return true;
    };
    let key = (Class::Status, ns.to_string(), name.to_string());
    let content = status_content(&s.status);
    // Planned for an older generation: the spec changed since, and the round
    // that change started plans the status of the new one.
    let superseded = matches!((s.status.observed_generation, generation), (Some(planned), Some(now)) if planned < now);
    if superseded
        || status_is_current(&s.status, current.as_ref())
        || shared.writer.in_flight(&key, &content, before.as_ref())
    {
        m.write("AllowlistStatus", Outcome::Unchanged);
        return true;
    }
    let status = keep_transition_times(&s.status, current.as_ref());
    let api: Api<AllowlistWire> = Api::namespaced(shared.client.clone(), ns);
    let body = json!({"apiVersion": "meshward.io/v1alpha1", "kind": "Allowlist", "status": status});
    match api.patch_status(name, &apply_params(), &Patch::Apply(&body)).await {
        Ok(_) => {
            m.write("AllowlistStatus", Outcome::Applied);
            shared.writer.wrote(key, content, before);
            events::status_changed(shared, ns, name, uid, current.as_ref(), &status).await;
            true
        }
        // Deleted since the plan: nothing to report on.
        Err(kube::Error::Api(e)) if e.code == 404 => true,
        Err(e) => {
            tracing::warn!(namespace = ns, name, error = %e, "status write failed");
            m.write("AllowlistStatus", Outcome::Error);
            false
        }
    }
}
