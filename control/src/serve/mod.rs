//! `meshward-control serve`: the in-cluster service.
//!
//! ```text
//!  API server ──watch (slim types, paginated lists)──▶ watchers (watch.rs)
//!                                                       │ apply / delete / replace
//!                                                       ▼
//!                                   ClusterState (indexed, slim) ──▶ Changes {derive, plan}
//!                                                       │ debounce: a burst is one round
//!                                                       ▼
//!  reconciler (reconcile.rs): derive the affected namespaces (pure) ─▶ plan (pure, plan.rs)
//!                                                       │ only changes; deletes only
//!                                                       ▼ on a complete view
//!  API server ◀── server-side apply / delete / status ── writer (write.rs): queue, workers,
//!                                                        WasmPlugins before statuses
//!  HTTP (api.rs): /v1/namespaces/{ns}/config, /v1/simulate,
//!                 PATCH /v1/namespaces/{ns}/allowlists/{name}, /metrics, /healthz, /readyz
//!                 (traffic.rs) POST /v1/namespaces/{ns}/learn, .../replay: sidecar logs
//!                 read through pods/log, on the live state
//! ```
//!
//! The reconciler runs when a watched object changes and every `resync`
//! (a full derivation, to repair drift). A round derives only the namespaces
//! the changes since the last round can affect. It writes nothing until every
//! kind has been listed completely, and deletes nothing while any watch is
//! failing: a WasmPlugin is never deleted or emptied because the view was
//! partial.

pub mod api;
pub mod auth;
pub mod events;
pub mod lease;
pub mod metrics;
pub mod plan;
mod reconcile;
pub mod traffic;
pub mod watch;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kube::Client;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::derive::{Derivations, Settings, DEFAULT_TRUST_DOMAIN};
use crate::state::{Changes, ClusterState};
use auth::Authorizer;
use lease::{Leadership, LeaseConfig};
use metrics::Metrics;
use watch::Health;
use write::Writer;

/// The field manager of every server-side apply the service makes.
pub const FIELD_MANAGER: &str = "meshward-control";

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Module URL and digest for the WasmPlugins.
    pub settings: Settings,
    /// The mesh's trust domain.
    pub trust_domain: String,
    /// How long to collect changes after the first one before a round.
    pub debounce: Duration,
    /// Derive everything at least this often, to repair drift.
    pub resync: Duration,
    /// Writes made at once.
    pub write_concurrency: usize,
    /// After a failed write, wait this long before planning its namespace
    /// again: doubles from `min` with each consecutive failure, up to `max`.
    pub backoff: (Duration, Duration),
    /// The audience API callers' tokens must be valid for.
    pub token_audience: String,
    /// Leader election: only the Lease's holder writes. `None`: this
    /// replica writes without election (one replica only).
    pub lease: Option<LeaseConfig>,
}

/// The default of [`ServeConfig::token_audience`]: the service's own name.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "meshward-control";

/// The default of [`ServeConfig::debounce`].
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);
/// The default of [`ServeConfig::write_concurrency`].
pub const DEFAULT_WRITE_CONCURRENCY: usize = 16;

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            debounce: DEFAULT_DEBOUNCE,
            resync: Duration::from_secs(300),
            write_concurrency: DEFAULT_WRITE_CONCURRENCY,
            backoff: (Duration::from_millis(250), Duration::from_secs(30)),
            token_audience: DEFAULT_TOKEN_AUDIENCE.into(),
            lease: None,
        }
    }
}

/// Why the service stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// A watcher, the reconciler or a writer stopped (they run until shutdown).
    #[error("a background task stopped: {0}")]
    TaskEnded(String),
}

/// Changes waiting for the next round.
#[derive(Debug, Default)]
struct Pending {
    changes: Changes,
    /// Plan every namespace (after a re-list: postponed deletes are due).
    plan_all: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.plan_all
    }
}

/// State shared by the watchers, the reconciler, the writers and the HTTP
/// handlers.
pub struct Shared {
    /// The Kubernetes client (the service's own credentials).
    pub client: Client,
    /// Settings.
    pub config: ServeConfig,
    /// Counters.
    pub metrics: Metrics,
    /// The cluster, as the watchers see it.
    state: RwLock<ClusterState>,
    /// Per-kind health of the watchers.
    pub health: Health,
    /// The last derivation of every namespace.
    derived: RwLock<Derivations>,
    /// Set once the first full derivation is done.
    derived_once: AtomicBool,
    pending: Mutex<Pending>,
    /// Notified when changes are pending.
    changed: Notify,
    writer: Writer,
    /// Simulations allowed to run at once (each compiles a namespace's configuration).
    pub simulations: Arc<tokio::sync::Semaphore>,
    /// Learn and replay calls allowed to run at once (each reads sidecar
    /// logs and judges or learns from every line).
    pub analyses: Arc<tokio::sync::Semaphore>,
    /// Authenticates and authorizes API calls.
    pub authorizer: Authorizer,
    /// Whether this replica may write.
    pub leadership: Leadership,
    /// Writes were planned or queued while this replica did not lead.
    unwritten: AtomicBool,
    /// Publishes Events on Allowlists.
    events: kube::runtime::events::Recorder,
}

impl Shared {
    fn new(client: Client, config: ServeConfig) -> Self {
        let state = ClusterState::new(config.trust_domain.clone());
        let authorizer = Authorizer::new(client.clone(), config.token_audience.clone());
        let leadership = match config.lease {
            Some(_) => Leadership::elected(),
            None => Leadership::alone(),
        };
        Self {
            authorizer,
            leadership,
            unwritten: AtomicBool::new(false),
            events: kube::runtime::events::Recorder::new(
                client.clone(),
                kube::runtime::events::Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: config.lease.as_ref().map(|l| l.identity.clone()),
                },
            ),
            client,
            config,
            metrics: Metrics::default(),
            state: RwLock::new(state),
            health: Health::new(),
            derived: RwLock::new(Derivations::default()),
            derived_once: AtomicBool::new(false),
            pending: Mutex::new(Pending::default()),
            changed: Notify::new(),
            writer: Writer::default(),
            simulations: Arc::new(tokio::sync::Semaphore::new(2)),
            analyses: Arc::new(tokio::sync::Semaphore::new(traffic::MAX_IN_FLIGHT)),
        }
    }

    /// Runs `f` on the state, for reading.
    pub fn read_state<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        let guard = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&guard)
    }

    /// Runs `f` on the state, for changing it.
    fn with_state<T>(&self, f: impl FnOnce(&mut ClusterState) -> T) -> T {
        let mut guard = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = f(&mut guard);
        self.metrics.objects(guard.counts());
        out
    }

    /// The last derivation of namespace `ns`; `None` before the first full
    /// derivation (and for a namespace with nothing derived).
    pub fn derived(&self, ns: &str) -> Option<Arc<crate::derive::NamespaceDesired>> {
        let guard = self.derived.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.get(ns).cloned()
    }

    /// Whether the API can answer: every kind listed once and the first full
    /// derivation done.
    pub fn serving(&self) -> bool {
        self.health.synced() && self.derived_once.load(Ordering::Acquire)
    }

    /// Whether the service is in sync with the cluster now; if not, why.
    /// During an API server outage it goes on answering from its last
    /// complete view ([`serving`](Self::serving)) but is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.health.synced() {
            return Err(format!(
                "waiting for the first list of: {}",
                self.health.incomplete().join(", ")
            ));
        }
        if !self.derived_once.load(Ordering::Acquire) {
            return Err("listed; deriving for the first time".into());
        }
        if !self.health.complete() {
            return Err(format!(
                "lists or watches failing for: {}; the API answers from the last complete view",
                self.health.incomplete().join(", ")
            ));
        }
        Ok(())
    }

    /// Records changes for the next round.
    fn note(&self, changes: Changes, plan_all: bool) {
        if changes.is_empty() && !plan_all {
            return;
        }
        if let Ok(mut p) = self.pending.lock() {
            p.changes.merge(changes);
            p.plan_all |= plan_all;
        }
        self.changed.notify_one();
    }

    /// Plans namespace `ns` again at the next round (a write there failed).
    fn replan(&self, ns: String) {
        let mut changes = Changes::default();
        changes.plan.insert(ns);
        self.note(changes, false);
    }

    /// Takes the pending changes.
    fn take_pending(&self) -> Pending {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// The service's Kubernetes client. kube's own retry of 429/503/504 (up to
/// 15 times, backing off to minutes) is turned off: the service retries at
/// its level (the writer's backoff, the watchers' re-list), and an API call
/// made for an HTTP caller fails at once instead of hanging.
pub fn client(mut config: kube::Config) -> Result<Client, kube::Error> {
    config.default_retry = false;
    Client::try_from(config)
}

/// Runs the service until `shutdown` completes: watchers, the reconciler,
/// the writers, and the HTTP API on `listener`.
pub async fn run(
    client: Client,
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut tasks = JoinSet::new();
    let workers = config.write_concurrency;
    let shared = Arc::new(Shared::new(client.clone(), config));
    let api = api::router(shared.clone());
    watch::start(&client, &shared, &mut tasks);
    write::start(&shared, workers, &mut tasks);
    if let Some(lease) = shared.config.lease.clone() {
        let (client, elected) = (client.clone(), shared.clone());
        tasks.spawn(async move {
            lease::run(client, lease, &elected.leadership, |leader, changed| {
                elected.metrics.set_leader(leader);
                // Writes are not made without the lease: once leading (again),
                // plan everything, so none of them is lost.
                if leader && (changed || elected.unwritten.swap(false, Ordering::AcqRel)) {
                    elected.note(Changes::default(), true);
                }
            })
            .await;
        });
    } else {
        shared.metrics.set_leader(true);
    }
    tasks.spawn(reconcile::reconcile_loop(shared.clone()));
    tracing::info!(addr = %listener.local_addr()?, "serving the API, /metrics, /healthz, /readyz");
    let server = axum::serve(listener, api).with_graceful_shutdown(shutdown);
    // The background tasks run forever; if one ends (a panic), the service
    // must not go on answering 200 with a frozen view: it exits, and
    // Kubernetes restarts it.
    let result = tokio::select! {
        served = server => served.map_err(ServeError::Http),
        ended = tasks.join_next() => {
            let reason = match ended {
                Some(Err(e)) => e.to_string(),
                _ => "ended".to_string(),
            };
            tracing::error!(reason, "a background task stopped; exiting");
            Err(ServeError::TaskEnded(reason))
        }
    };
    tasks.shutdown().await;
    if let Some(lease) = &shared.config.lease {
        if shared.leadership.is_leader() {
            lease::release(client, lease).await;
        }
    }
    result
}
