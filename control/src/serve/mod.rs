//! `meshward-control serve`: the in-cluster service.
//!
//! ```text
//!  API server ──watch──▶ reflectors (cluster.rs) ──notify──▶ reconciler
//!                                                            │ debounce, snapshot
//!                                                            ▼
//!                                             derive() (pure) ─▶ plan() (pure)
//!                                                            │ only changes; deletes only
//!                                                            ▼ on a complete view
//!  API server ◀── server-side apply / delete / status ── writer (this file)
//!
//!  HTTP (api.rs): /v1/namespaces/{ns}/config, /v1/simulate,
//!                 PATCH /v1/namespaces/{ns}/allowlists/{name}, /metrics, /healthz, /readyz
//! ```
//!
//! The reconciler runs when a watched object changes (after `debounce`, so a
//! burst of events costs one round) and every `resync`. It writes nothing
//! until every kind has been listed completely, and nothing while any watch
//! is failing: a WasmPlugin is never deleted or emptied because the view was
//! partial. Failed writes are retried with exponential backoff.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod metrics;
pub mod plan;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde_json::json;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::crd::Allowlist;
use crate::derive::{derive, Desired, Settings, Snapshot};
use cluster::{wasm_plugin_resource, Cluster};
use metrics::{Metrics, Outcome, Round};
use plan::{plan, Plan};

/// The field manager of every server-side apply the service makes.
pub const FIELD_MANAGER: &str = "meshward-control";

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Module URL and digest for the WasmPlugins.
    pub settings: Settings,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// How long to wait after a change for more changes before deriving.
    pub debounce: Duration,
    /// Reconcile at least this often, to repair drift.
    pub resync: Duration,
    /// Backoff after a failed round: doubles from `min` to `max`.
    pub backoff: (Duration, Duration),
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            settings: Settings {
                url: crate::derive::DEFAULT_URL.into(),
                sha256: None,
                budget_bytes: crate::derive::DEFAULT_BUDGET_BYTES,
            },
            trust_domain: "cluster.local".into(),
            debounce: Duration::from_millis(500),
            resync: Duration::from_secs(300),
            backoff: (Duration::from_millis(250), Duration::from_secs(30)),
        }
    }
}

/// Why the service stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// A watcher or the reconciler stopped (they run until shutdown).
    #[error("a background task stopped: {0}")]
    TaskEnded(String),
}

/// Why a reconcile round did not finish.
#[derive(Debug, Error)]
enum RoundError {
    #[error("derivation failed: {0}")]
    Derive(String),
    #[error("{failed} of {total} writes failed; first: {first}")]
    Writes {
        failed: usize,
        total: usize,
        first: kube::Error,
    },
}

/// The last derivation, served by the API.
#[derive(Debug)]
pub struct Derived {
    /// The snapshot it was derived from.
    pub snapshot: Snapshot,
    /// The desired objects.
    pub desired: Desired,
}

/// State shared by the reconciler and the HTTP handlers.
pub struct Shared {
    /// The Kubernetes client (the service's own credentials).
    pub client: Client,
    /// The reflectors.
    pub cluster: Cluster,
    /// Settings.
    pub config: ServeConfig,
    /// Counters.
    pub metrics: Metrics,
    /// The last derivation; `None` before the first full sync.
    pub latest: RwLock<Option<Arc<Derived>>>,
    /// Notified by the watchers on every change.
    pub changed: Arc<Notify>,
    /// Simulations allowed to run at once (each compiles a namespace's configuration).
    pub simulations: Arc<tokio::sync::Semaphore>,
}

/// The service's Kubernetes client. kube's own retry of 429/503/504 (up to
/// 15 times, backing off to minutes) is turned off: the service retries at
/// its level (the reconciler's backoff, the watchers' re-list), and an API
/// call made for an HTTP caller fails at once instead of hanging.
pub fn client(mut config: kube::Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

/// Runs the service until `shutdown` completes: watchers, the reconciler,
/// and the HTTP API on `listener`.
pub async fn run(
    client: Client,
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut tasks = JoinSet::new();
    let changed = Arc::new(Notify::new());
    let cluster = Cluster::start(&client, &mut tasks, &changed);
    let shared = Arc::new(Shared {
        client,
        cluster,
        config,
        metrics: Metrics::default(),
        latest: RwLock::new(None),
        changed,
        simulations: Arc::new(tokio::sync::Semaphore::new(2)),
    });
    tasks.spawn(reconcile_loop(shared.clone()));
    tracing::info!(addr = %listener.local_addr()?, "serving the API, /metrics, /healthz, /readyz");
    let server = axum::serve(listener, api::router(shared)).with_graceful_shutdown(shutdown);
    // The watchers and the reconciler run forever; if one ends (a panic), the
    // service must not go on answering 200 with a frozen view: it exits, and
    // Kubernetes restarts it.
    let result = tokio::select! {
        served = server => served.map_err(ServeError::Http),
        ended = tasks.join_next() => {
            let reason = match ended {
                Some(Err(e)) => e.to_string(),
                _ => "ended".to_string(),
            };
            tracing::error!(reason, "a watcher or the reconciler stopped; exiting");
            Err(ServeError::TaskEnded(reason))
        }
    };
    tasks.shutdown().await;
    result
}

async fn reconcile_loop(shared: Arc<Shared>) {
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
    .await
    .map_err(|e| RoundError::Derive(e.to_string()))?;
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

/// Carries out a plan; every write is attempted, failures are counted and
/// the first is reported (the round is retried).
async fn write(shared: &Shared, plan: Plan) -> Result<(), RoundError> {
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
