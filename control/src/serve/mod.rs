//! `meshward-control serve`: the in-cluster service.
//!
//! ```text
//!  API server ──watch──▶ reflectors (cluster.rs) ──notify──▶ reconciler (reconcile.rs)
//!                                                            │ debounce, snapshot
//!                                                            ▼
//!                                             derive() (pure) ─▶ plan() (pure, plan.rs)
//!                                                            │ only changes; deletes only
//!                                                            ▼ on a complete view
//!  API server ◀── server-side apply / delete / status ── writer (write.rs)
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
mod reconcile;
mod write;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::Client;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::derive::{Desired, Settings, Snapshot, DEFAULT_BUDGET_BYTES, DEFAULT_TRUST_DOMAIN, DEFAULT_URL};
use cluster::Cluster;
use metrics::Metrics;

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
                url: DEFAULT_URL.into(),
                sha256: None,
                budget_bytes: DEFAULT_BUDGET_BYTES,
            },
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
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
    tasks.spawn(reconcile::reconcile_loop(shared.clone()));
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
