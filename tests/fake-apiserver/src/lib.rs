//! # meshward-fake-apiserver
//!
//! A fake Kubernetes API server for meshward's tests and benchmarks: real
//! HTTP (axum), speaking what `kube::Client` and kube-runtime's watcher use,
//! and behaving as a real API server does where clients break:
//!
//! * **list** with `labelSelector`, paginated with `limit` and `continue`
//!   (`metadata.continue`, `remainingItemCount`); a list with
//!   `resourceVersion=0` is served whole whatever the `limit`, as a real API
//!   server serves it from its watch cache;
//! * **watch** (`?watch=1`): a stream of JSON events from a resource version;
//! * **get**, **server-side apply** (`application/apply-patch+yaml`), **JSON
//!   merge patch**, the **status** subresource, **delete** with
//!   `preconditions`, **TokenReview** and **SubjectAccessReview** (of
//!   resources and subresources such as `pods/log`);
//! * a pod container's **log** (`pods/{name}/log` with `container`,
//!   `sinceSeconds`, `limitBytes`, `timestamps`), from lines tests set
//!   ([`FakeApi::set_log`]), refused as a real API server refuses it (a
//!   missing pod, a container the pod does not have, one waiting to start);
//! * failure injection (a broken kind, a full outage) and a log of every
//!   write with the time it arrived.
//!
//! Objects are held as serialized JSON, so a cluster of 100,000 Pods of about
//! 11 KB each ([`cluster`] generates them as an Istio-injected cluster returns
//! them) costs about a gigabyte here, not several.
//!
//! It also fails as real servers do where clients break: compaction (a
//! watch from a compacted resource version gets `410 Gone`), a restart with
//! fresh resource versions (`504 Too large resource version` for a watch
//! from before), watches closed by the server every so often, bookmarks,
//! `429` with `Retry-After` (API Priority and Fairness), `409` on a stale
//! `resourceVersion` and on server-side apply conflicts, slow responses, a
//! broken kind, a full outage, and a client cut off by a partition.
//!
//! Server-side apply is modelled at the level of top-level `spec` fields:
//! each field manager owns the fields of its last apply (operation `Apply`)
//! or the fields its merge patches changed (operation `Update`, taken from
//! whoever owned them); applying a field another manager owns with another
//! value is a `409` conflict unless `force=true`, which takes it over; a
//! field an applier stops applying is removed unless someone else owns it;
//! labels are merged; an applied `status` replaces the stored one;
//! `metadata.managedFields` shows the owners. A write that changes nothing
//! does not bump the resource version, as on a real server.
//!
//! What it does not model: lists consistent at one resource version across
//! pages (later pages show later state), continue tokens that expire, field
//! selectors, admission and CRD schema validation, server-side apply below
//! top-level `spec` fields, and `Retry-After` on anything but the injected
//! `429`.
//!
//! [`scale`] runs `meshward-control serve` against a generated cluster and
//! measures it.

// The generated Pod is one large `json!` literal.
#![recursion_limit = "512"]
// `value["field"]` on serde_json values yields `null` for a missing field; it
// cannot panic, and a fake API server reads objects that way throughout.
#![allow(clippy::indexing_slicing)]

pub mod cluster;
pub mod scale;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;

/// A write the fake received.
#[derive(Debug, Clone)]
pub struct Write {
    /// PATCH, DELETE, POST, PUT.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The query string.
    pub query: HashMap<String, String>,
    /// Content-Type.
    pub content_type: String,
    /// The body, as JSON (null if empty).
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
    /// The client that sent it: its [`CLIENT_HEADER`], if any.
    pub client: Option<String>,
    /// The client was partitioned away: the write never reached the server.
    pub partitioned: bool,
}

/// The header that names a client to the fake (tests set it per replica
/// through `kube::Config::headers`), for counting writes per client and
/// partitioning one away.
pub const CLIENT_HEADER: &str = "x-meshward-test-client";

/// (plural, namespace, name).
type Key = (String, String, String);

/// An object as stored: its JSON, and its labels for label selectors.
#[derive(Debug, Clone)]
struct Stored {
    json: Bytes,
    labels: BTreeMap<String, String>,
}

impl Stored {
    fn new(object: &Value) -> Self {
        Self {
            json: Bytes::from(object.to_string()),
            labels: labels_of(object),
        }
    }

    fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Stored,
}

/// What one field manager owns of an object.
#[derive(Debug, Clone, Default)]
struct Owner {
    /// `Apply` or `Update`.
    operation: &'static str,
    /// Top-level `spec` fields.
    fields: BTreeSet<String>,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Stored>,
    /// Sorted by `rv`.
    events: Vec<Event>,
    writes: Vec<Write>,
    outage: bool,
    broken: BTreeSet<String>,
    /// token → (user, groups, audiences).
    tokens: BTreeMap<String, (String, Vec<String>, Vec<String>)>,
    /// (user, verb, plural, namespace, name).
    grants: BTreeSet<(String, String, String, String, String)>,
    /// Top-level spec fields each object's field managers own.
    owned: BTreeMap<(Key, String), Owner>,
    /// Delay before each response.
    latency: Duration,
    /// Clients cut off: their requests hang, then fail.
    partitioned: BTreeSet<String>,
    /// Events up to this resource version are compacted: a watch from an
    /// older one gets `410 Gone`.
    compacted: u64,
    /// Bumped by a restart: open watches end.
    epoch: u64,
    /// Watches end after this long, whatever `timeoutSeconds` asked.
    watch_lifetime: Option<Duration>,
    /// How often a watch that asked for bookmarks gets one.
    bookmarks: Option<Duration>,
    /// The next this many requests (but watches) answer 429 with `Retry-After`.
    throttled: usize,
    /// (namespace, pod, container) → its log lines, with when each was written.
    logs: BTreeMap<(String, String, String), Vec<(SystemTime, String)>>,
    /// Every log read: (namespace, pod, query).
    log_reads: Vec<LogRead>,
    /// Every list: (plural, its `labelSelector`).
    lists: Vec<(String, Option<String>)>,
}

/// A read of a pod container's log the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The query string (`container`, `sinceSeconds`, `limitBytes`, ...).
    pub query: BTreeMap<String, String>,
}

/// The fake API server. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    wake: Arc<watch::Sender<u64>>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The resource plural of an object's kind.
pub fn plural_of(kind: &str) -> &'static str {
    match kind {
        "Namespace" => "namespaces",
        "Pod" => "pods",
        "Service" => "services",
        "ServiceAccount" => "serviceaccounts",
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        "Allowlist" => "allowlists",
        "WasmPlugin" => "wasmplugins",
        "ConfigMap" => "configmaps",
        "Lease" => "leases",
        "Event" => "events",
        _ => "unknown",
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn labels_match(selector: Option<&String>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .unwrap_or((term, ""));
        labels.get(k).map(String::as_str) == Some(v)
    })
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// In [`FakeApi::grant`], every namespace or every name.
pub const ANY: &str = "*";

impl FakeApi {
    /// Starts the fake on a free loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound (a test set-up failure).
    #[allow(clippy::expect_used)]
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let fake = Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            wake: Arc::new(watch::channel(0).0),
            addr,
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        fake
    }

    /// A `kube::Config` pointed at the fake.
    ///
    /// # Panics
    /// Never: the URL is well-formed.
    #[allow(clippy::expect_used)]
    pub fn config(&self) -> kube::Config {
        kube::Config::new(format!("http://{}", self.addr).parse().expect("a valid URL"))
    }

    /// A kubeconfig file's text that points a client at the fake.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            addr = self.addr
        )
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates or replaces an object (as another client would), emitting a watch event.
    /// Replacing an object without a `status` keeps the stored one, as an
    /// update of the main resource does on a real server (the status
    /// subresource is written apart).
    pub fn put(&self, mut object: Value) {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut inner = self.lock();
        let key = (plural_of(&kind).to_string(), ns, name);
        let existing = inner.objects.get(&key).map(Stored::value);
        if let Some(status) = existing.as_ref().map(|old| &old["status"]) {
            if object["status"].is_null() && !status.is_null() {
                object["status"] = status.clone();
            }
        }
        inner.store(key, object, existing.as_ref());
        drop(inner);
        self.notify();
    }

    /// Loads objects as if they had existed before anyone watched: no watch
    /// events, one resource version each. For seeding large clusters.
    pub fn load(&self, objects: impl IntoIterator<Item = Value>) {
        let mut inner = self.lock();
        for mut object in objects {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            let ns = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
            inner.rv += 1;
            inner.uid += 1;
            let meta = &mut object["metadata"];
            meta["uid"] = json!(format!("uid-{}", inner.uid));
            meta["resourceVersion"] = json!(inner.rv.to_string());
            if meta["generation"].is_null() {
                meta["generation"] = json!(1);
            }
            inner
                .objects
                .insert((plural_of(&kind).to_string(), ns, name), Stored::new(&object));
        }
    }

    /// Deletes an object, emitting a watch event.
    pub fn remove(&self, kind: &str, namespace: &str, name: &str) {
        let mut inner = self.lock();
        let key = (plural_of(kind).to_string(), namespace.to_string(), name.to_string());
        inner.delete(&key);
        drop(inner);
        self.notify();
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.lock();
        inner
            .objects
            .get(&(plural_of(kind).to_string(), namespace.into(), name.into()))
            .map(Stored::value)
    }

    /// The number of stored objects of `kind`.
    pub fn count(&self, kind: &str) -> usize {
        let plural = plural_of(kind);
        self.lock().objects.keys().filter(|(p, _, _)| p == plural).count()
    }

    /// Every write received so far.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// The writes received after the first `from`.
    pub fn writes_since(&self, from: usize) -> Vec<Write> {
        self.lock()
            .writes
            .get(from..)
            .map(<[Write]>::to_vec)
            .unwrap_or_default()
    }

    /// The number of writes received so far.
    pub fn write_count(&self) -> usize {
        self.lock().writes.len()
    }

    /// Forgets the write log.
    pub fn clear_writes(&self) {
        self.lock().writes.clear();
    }

    /// Every request fails with 503, and open watches end.
    pub fn set_outage(&self, on: bool) {
        self.lock().outage = on;
        self.notify();
    }

    /// Lists and watches of `plural` fail with 500 (open ones end).
    pub fn set_broken(&self, plural: &str, broken: bool) {
        let mut inner = self.lock();
        if broken {
            inner.broken.insert(plural.into());
        } else {
            inner.broken.remove(plural);
        }
        drop(inner);
        self.notify();
    }

    /// Cuts client `id` off (or reconnects it): while cut off, its requests
    /// are recorded with `partitioned` set, hang, and fail once it is
    /// reconnected or after 30 s; its open watches end.
    pub fn set_partitioned(&self, id: &str, on: bool) {
        let mut inner = self.lock();
        if on {
            inner.partitioned.insert(id.into());
        } else {
            inner.partitioned.remove(id);
        }
        drop(inner);
        self.notify();
    }

    /// A `kube::Config` pointed at the fake whose requests carry
    /// [`CLIENT_HEADER`]` = id`.
    pub fn config_for(&self, id: &str) -> kube::Config {
        let mut config = self.config();
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(CLIENT_HEADER.as_bytes()),
            axum::http::HeaderValue::from_str(id),
        ) {
            config.headers.push((name, value));
        }
        config
    }

    /// Compacts the event history, as etcd does: a watch from a resource
    /// version older than now gets `410 Gone` (the client must list again).
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted = inner.rv;
        inner.events.clear();
    }

    /// An API server restarted on an etcd restored from a snapshot: every
    /// object gets a fresh, lower resource version, the history is gone, open
    /// watches end, and a watch from a version the server has not reached
    /// gets `504 Too large resource version`.
    pub fn restart_with_fresh_versions(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.events.clear();
        let mut rv = 0;
        for stored in inner.objects.values_mut() {
            rv += 1;
            let mut value = stored.value();
            value["metadata"]["resourceVersion"] = json!(rv.to_string());
            *stored = Stored::new(&value);
        }
        inner.rv = rv;
        inner.compacted = rv;
        drop(inner);
        self.notify();
    }

    /// Watches end after `lifetime` (a real server closes them every few
    /// minutes; clients resume from their last resource version).
    pub fn set_watch_lifetime(&self, lifetime: Option<Duration>) {
        self.lock().watch_lifetime = lifetime;
    }

    /// Watches that ask for bookmarks get one every `every`.
    pub fn set_bookmarks(&self, every: Option<Duration>) {
        self.lock().bookmarks = every;
    }

    /// The next `n` requests (watches aside) are answered `429 Too Many
    /// Requests` with `Retry-After: 1`, as API Priority and Fairness does.
    pub fn throttle(&self, n: usize) {
        self.lock().throttled = n;
    }

    /// Every response is delayed by `latency` (a loaded API server).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// A bearer token that TokenReview authenticates as `user`, issued for
    /// the audience `meshward-control` (what `kubectl create token --audience`
    /// gives).
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.add_token_for(token, user, groups, &["meshward-control"]);
    }

    /// A bearer token issued for `audiences`.
    pub fn add_token_for(&self, token: &str, user: &str, groups: &[&str], audiences: &[&str]) {
        let strings = |l: &[&str]| l.iter().map(|g| g.to_string()).collect();
        self.lock()
            .tokens
            .insert(token.into(), (user.into(), strings(groups), strings(audiences)));
    }

    /// Lets `user` do `verb` on `plural` `namespace/name` (SubjectAccessReview).
    /// [`ANY`] as the namespace or the name grants it on every one, as a
    /// ClusterRole (or a Role without `resourceNames`) does.
    pub fn grant(&self, user: &str, verb: &str, plural: &str, namespace: &str, name: &str) {
        let g = (user.into(), verb.into(), plural.into(), namespace.into(), name.into());
        self.lock().grants.insert(g);
    }

    /// Sets the log of container `container` of pod `namespace/pod` to
    /// `lines`, written now (every `sinceSeconds` includes them).
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, lines: &[&str]) {
        let now = SystemTime::now();
        let lines = lines.iter().map(|l| (now, l.to_string())).collect();
        self.set_log_at(namespace, pod, container, lines);
    }

    /// Sets the log of a container to `lines`, each with when it was written
    /// (for `sinceSeconds`).
    pub fn set_log_at(&self, namespace: &str, pod: &str, container: &str, lines: Vec<(SystemTime, String)>) {
        let key = (namespace.to_string(), pod.to_string(), container.to_string());
        self.lock().logs.insert(key, lines);
    }

    /// The `labelSelector` of every list of `plural` received, in order
    /// (`None`: the list selected no label).
    pub fn list_selectors(&self, plural: &str) -> Vec<Option<String>> {
        self.lock()
            .lists
            .iter()
            .filter(|(p, _)| p == plural)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Every read of a pod's log so far, in order.
    pub fn log_reads(&self) -> Vec<LogRead> {
        self.lock().log_reads.clone()
    }

    fn notify(&self) {
        self.wake.send_modify(|n| *n += 1);
    }
}

impl Inner {
    /// Stores `object` under `key`; bumps the resource version and records an
    /// event only when something changed. Returns the stored object.
    fn store(&mut self, key: Key, mut object: Value, existing: Option<&Value>) -> Value {
        if let Some(old) = existing {
            let meta = &old["metadata"];
            for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                if !meta[field].is_null() {
                    object["metadata"][field] = meta[field].clone();
                }
            }
            if &object == old {
                return object;
            }
            if object["spec"] != old["spec"] {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                object["metadata"]["generation"] = json!(g + 1);
            }
        } else {
            self.uid += 1;
            object["metadata"]["uid"] = json!(format!("uid-{}", self.uid));
            object["metadata"]["creationTimestamp"] = json!("2026-11-22T00:00:00Z");
            object["metadata"]["generation"] = json!(1);
        }
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let kind = if existing.is_some() { "MODIFIED" } else { "ADDED" };
        let stored = Stored::new(&object);
        self.events.push(Event {
            rv: self.rv,
            plural: key.0.clone(),
            namespace: key.1.clone(),
            kind,
            object: stored.clone(),
        });
        self.objects.insert(key, stored);
        object
    }

    fn delete(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?.value();
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.events.push(Event {
            rv: self.rv,
            plural: key.0.clone(),
            namespace: key.1.clone(),
            kind: "DELETED",
            object: Stored::new(&object),
        });
        Some(object)
    }
}

/// A parsed request path: `/api/v1/...` or `/apis/<group>/<version>/...`.
struct Target {
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match *segs.first()? {
        "api" => segs.get(2..)?,
        "apis" => segs.get(3..)?,
        _ => return None,
    };
    let t = |plural: &str, ns: Option<&str>, name: Option<&str>, status: bool| Target {
        plural: plural.into(),
        namespace: ns.map(Into::into),
        name: name.map(Into::into),
        status,
    };
    Some(match rest {
        [plural] => t(plural, None, None, false),
        ["namespaces", name] => t("namespaces", None, Some(name), false),
        ["namespaces", ns, plural] => t(plural, Some(ns), None, false),
        ["namespaces", ns, plural, name] => t(plural, Some(ns), Some(name), false),
        ["namespaces", ns, plural, name, "status"] => t(plural, Some(ns), Some(name), true),
        _ => return None,
    })
}

async fn handle(
    State(fake): State<FakeApi>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    // Throttled requests are refused before anything: not recorded.
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watching {
        let mut inner = fake.lock();
        if inner.throttled > 0 {
            inner.throttled -= 1;
            drop(inner);
            let mut response = status(429, "TooManyRequests", "the fake API server throttles (injected)");
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return response;
        }
    }
    let client = headers
        .get(CLIENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (latency, partitioned) = {
        let mut inner = fake.lock();
        let partitioned = client.as_ref().is_some_and(|c| inner.partitioned.contains(c));
        if method != Method::GET {
            inner.writes.push(Write {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                content_type: content_type.clone(),
                body: body.clone(),
                at: Instant::now(),
                client: client.clone(),
                partitioned,
            });
        }
        if inner.outage {
            return status(503, "ServiceUnavailable", "the fake API server is down");
        }
        (inner.latency, partitioned)
    };
    if partitioned {
        // The request never arrives: the client waits, then gives up.
        let mut wake = fake.wake.subscribe();
        let id = client.clone().unwrap_or_default();
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            while fake.lock().partitioned.contains(&id) {
                if wake.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        return status(503, "ServiceUnavailable", "partitioned");
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if method == Method::POST && path == "/apis/authentication.k8s.io/v1/tokenreviews" {
        return token_review(&fake, body);
    }
    if method == Method::POST && path == "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
        return access_review(&fake, body);
    }
    if let Some((ns, pod)) = log_path(&path) {
        if method != Method::GET {
            return status(405, "MethodNotAllowed", &format!("{method} {path}"));
        }
        return pod_log(&fake, ns, pod, &query);
    }
    let Some(target) = parse_path(&path) else {
        return status(404, "NotFound", &format!("the fake API server does not serve {path}"));
    };
    let ns = target.namespace.clone().unwrap_or_default();
    match (method, &target.name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_stream(&fake, &target, &query, client)
        }
        (Method::GET, None) => list(&fake, &target, &query),
        (Method::GET, Some(name)) => {
            let key = (target.plural.clone(), ns, name.clone());
            match fake.lock().objects.get(&key) {
                Some(o) => json_response(o.json.clone()),
                None => status(404, "NotFound", &format!("{} {name} not found", target.plural)),
            }
        }
        (Method::PATCH, Some(name)) => patch(&fake, &target, name, &ns, &query, &content_type, &body),
        (Method::POST, None) => create(&fake, &target, &ns, body),
        (Method::PUT, Some(name)) => replace(&fake, &target, name, &ns, body),
        (Method::DELETE, Some(name)) => {
            let key = (target.plural.clone(), ns, name.clone());
            let mut inner = fake.lock();
            if let Some(current) = inner.objects.get(&key).map(Stored::value) {
                let pre = &body["preconditions"];
                for (field, want) in [("uid", &pre["uid"]), ("resourceVersion", &pre["resourceVersion"])] {
                    if !want.is_null() && &current["metadata"][field] != want {
                        return status(409, "Conflict", &format!("precondition failed: {field}"));
                    }
                }
            }
            let deleted = inner.delete(&key);
            drop(inner);
            fake.notify();
            match deleted {
                Some(o) => axum::Json(o).into_response(),
                None => status(404, "NotFound", &format!("{} {name} not found", target.plural)),
            }
        }
        (m, _) => status(405, "MethodNotAllowed", &format!("{m} {path}")),
    }
}

fn json_response(json: Bytes) -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(json))
        .unwrap_or_else(|_| status(500, "InternalError", "response"))
}

fn patch(
    fake: &FakeApi,
    target: &Target,
    name: &str,
    ns: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &Value,
) -> Response {
    let key = (target.plural.clone(), ns.to_string(), name.to_string());
    let mut inner = fake.lock();
    let existing = inner.objects.get(&key).map(Stored::value);
    let manager = manager(query);
    let updated = if content_type.starts_with("application/apply-patch") {
        // As the real server: an apply names its object and its manager.
        if body["apiVersion"].as_str().is_none() || body["kind"].as_str().is_none() {
            return status(400, "BadRequest", "apply: apiVersion and kind must be set");
        }
        if manager.is_empty() {
            return status(400, "BadRequest", "apply: fieldManager is required");
        }
        match (&existing, target.status) {
            (None, true) => return status(404, "NotFound", &format!("{} {name} not found", target.plural)),
            (Some(old), true) => {
                let mut o = old.clone();
                o["status"] = body["status"].clone();
                o
            }
            (None, false) => {
                let fields = spec_fields(body);
                inner.owned.insert(
                    (key.clone(), manager.clone()),
                    Owner {
                        operation: "Apply",
                        fields,
                    },
                );
                body.clone()
            }
            (Some(old), false) => {
                let force = query.get("force").is_some_and(|f| f == "true");
                let fields = spec_fields(body);
                // Fields another manager owns, applied with another value.
                let conflicts: Vec<(String, String)> = inner
                    .owned
                    .iter()
                    .filter(|((k, m), _)| *k == key && *m != manager)
                    .flat_map(|((_, m), o)| o.fields.iter().map(move |f| (m.clone(), f.clone())))
                    .filter(|(_, f)| fields.contains(f) && old["spec"][f.as_str()] != body["spec"][f.as_str()])
                    .collect();
                if !conflicts.is_empty() && !force {
                    let list: Vec<String> = conflicts
                        .iter()
                        .map(|(m, f)| format!("conflict with \"{m}\": .spec.{f}"))
                        .collect();
                    return status(
                        409,
                        "Conflict",
                        &format!("Apply failed with {} conflicts: {}", conflicts.len(), list.join(", ")),
                    );
                }
                for (m, f) in &conflicts {
                    if let Some(o) = inner.owned.get_mut(&(key.clone(), m.clone())) {
                        o.fields.remove(f);
                    }
                }
                let mut o = old.clone();
                if body["metadata"]["labels"].is_object() {
                    let mut labels = old["metadata"]["labels"].clone();
                    merge(&mut labels, &body["metadata"]["labels"]);
                    o["metadata"]["labels"] = labels;
                }
                let before = inner
                    .owned
                    .insert(
                        (key.clone(), manager.clone()),
                        Owner {
                            operation: "Apply",
                            fields: fields.clone(),
                        },
                    )
                    .unwrap_or_default()
                    .fields;
                let owned_by_others: BTreeSet<String> = inner
                    .owned
                    .iter()
                    .filter(|((k, m), _)| *k == key && *m != manager)
                    .flat_map(|(_, o)| o.fields.iter().cloned())
                    .collect();
                if !o["spec"].is_object() {
                    o["spec"] = json!({});
                }
                if let Some(spec) = o["spec"].as_object_mut() {
                    for dropped in before
                        .iter()
                        .filter(|f| body["spec"].get(f.as_str()).is_none() && !owned_by_others.contains(*f))
                    {
                        spec.remove(dropped);
                    }
                    for (k, v) in body["spec"].as_object().into_iter().flatten() {
                        spec.insert(k.clone(), v.clone());
                    }
                }
                o
            }
        }
    } else if content_type.starts_with("application/merge-patch+json") {
        let Some(old) = &existing else {
            return status(404, "NotFound", &format!("{} {name} not found", target.plural));
        };
        let mut o = old.clone();
        merge(&mut o, body);
        // An update takes the fields it changes from whoever owned them.
        let changed: BTreeSet<String> = spec_fields(body);
        if !changed.is_empty() && !target.status {
            let updater = if manager.is_empty() {
                "kubectl-edit".to_string()
            } else {
                manager.clone()
            };
            for ((k, _), owner) in inner.owned.iter_mut() {
                if *k == key {
                    owner.fields.retain(|f| !changed.contains(f));
                }
            }
            let entry = inner.owned.entry((key.clone(), updater)).or_default();
            entry.operation = "Update";
            entry.fields.extend(changed);
        }
        o
    } else {
        return status(415, "UnsupportedMediaType", content_type);
    };
    let mut updated = updated;
    if !target.status {
        updated["metadata"]["managedFields"] = managed_fields(&inner.owned, &key);
    }
    let stored = inner.store(key, updated, existing.as_ref());
    drop(inner);
    fake.notify();
    axum::Json(stored).into_response()
}

/// POST: creates an object; 409 if it exists.
fn create(fake: &FakeApi, target: &Target, ns: &str, body: Value) -> Response {
    let Some(name) = body["metadata"]["name"].as_str().map(String::from) else {
        return status(422, "Invalid", "metadata.name: Required value");
    };
    let key = (target.plural.clone(), ns.to_string(), name.clone());
    let mut inner = fake.lock();
    if inner.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", target.plural),
        );
    }
    let stored = inner.store(key, body, None);
    drop(inner);
    fake.notify();
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

/// PUT: replaces an object, conditional on `metadata.resourceVersion` when
/// given (409 when stale, as the real server: optimistic concurrency).
fn replace(fake: &FakeApi, target: &Target, name: &str, ns: &str, body: Value) -> Response {
    let key = (target.plural.clone(), ns.to_string(), name.to_string());
    let mut inner = fake.lock();
    let Some(existing) = inner.objects.get(&key).map(Stored::value) else {
        return status(404, "NotFound", &format!("{} \"{name}\" not found", target.plural));
    };
    let sent = &body["metadata"]["resourceVersion"];
    if !sent.is_null() && *sent != existing["metadata"]["resourceVersion"] {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                target.plural
            ),
        );
    }
    let stored = inner.store(key, body, Some(&existing));
    drop(inner);
    fake.notify();
    axum::Json(stored).into_response()
}

/// `metadata.managedFields` as the API server writes it, at the level of
/// top-level `spec` fields.
fn managed_fields(owned: &BTreeMap<(Key, String), Owner>, key: &Key) -> Value {
    let entries: Vec<Value> = owned
        .iter()
        .filter(|((k, _), o)| k == key && !o.fields.is_empty())
        .map(|((_, m), o)| {
            let spec: serde_json::Map<String, Value> = o.fields.iter().map(|f| (format!("f:{f}"), json!({}))).collect();
            json!({"manager": m, "operation": o.operation, "apiVersion": "v1", "fieldsType": "FieldsV1",
                "time": "2026-11-22T00:00:00Z", "fieldsV1": {"f:spec": spec}})
        })
        .collect();
    Value::Array(entries)
}

/// The top-level spec fields of an applied object.
fn spec_fields(body: &Value) -> BTreeSet<String> {
    body["spec"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// The field manager of a request.
fn manager(query: &HashMap<String, String>) -> String {
    query.get("fieldManager").cloned().unwrap_or_default()
}

fn list_kind(plural: &str) -> (&'static str, &'static str) {
    match plural {
        "namespaces" => ("v1", "NamespaceList"),
        "pods" => ("v1", "PodList"),
        "services" => ("v1", "ServiceList"),
        "serviceaccounts" => ("v1", "ServiceAccountList"),
        "configmaps" => ("v1", "ConfigMapList"),
        "deployments" => ("apps/v1", "DeploymentList"),
        "statefulsets" => ("apps/v1", "StatefulSetList"),
        "daemonsets" => ("apps/v1", "DaemonSetList"),
        "allowlists" => ("meshward.io/v1alpha1", "AllowlistList"),
        "wasmplugins" => ("extensions.istio.io/v1alpha1", "WasmPluginList"),
        "leases" => ("coordination.k8s.io/v1", "LeaseList"),
        _ => ("v1", "List"),
    }
}

/// A continue token: the key after which the next page starts, hex-encoded.
fn continue_token(ns: &str, name: &str) -> String {
    format!("{ns}/{name}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn parse_continue(token: &str) -> Option<(String, String)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (ns, name) = text.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}

fn list(fake: &FakeApi, target: &Target, query: &HashMap<String, String>) -> Response {
    let mut inner = fake.lock();
    if inner.broken.contains(&target.plural) {
        return status(
            500,
            "InternalError",
            &format!("listing {} fails (injected)", target.plural),
        );
    }
    // `resourceVersion=0` is served from the watch cache: whole, `limit` ignored.
    let from_cache = query.get("resourceVersion").is_some_and(|v| v == "0");
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0 && !from_cache);
    let start = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match parse_continue(token) {
            Some(after) => Some(after),
            None => return status(400, "BadRequest", "invalid continue token"),
        },
        None => None,
    };
    let plural = &target.plural;
    // A page starts right after the last key of the previous one.
    let lower = match start {
        Some((ns, name)) => Bound::Excluded((plural.clone(), ns, name)),
        None => Bound::Included((plural.clone(), String::new(), String::new())),
    };
    let selector = query.get("labelSelector");
    inner.lists.push((plural.clone(), selector.cloned()));
    let mut items: Vec<&Bytes> = Vec::new();
    let mut last: Option<&Key> = None;
    let mut more = false;
    for (key, o) in inner.objects.range((lower, Bound::Unbounded)) {
        if &key.0 != plural {
            break;
        }
        if target.namespace.as_ref().is_some_and(|t| *t != key.1) || !labels_match(selector, &o.labels) {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            break;
        }
        items.push(&o.json);
        last = Some(key);
    }
    let (api_version, kind) = list_kind(plural);
    let mut metadata = json!({"resourceVersion": inner.rv.to_string()});
    if more {
        if let Some((_, ns, name)) = last {
            metadata["continue"] = json!(continue_token(ns, name));
        }
    }
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 256);
    out.extend_from_slice(
        format!("{{\"apiVersion\":\"{api_version}\",\"kind\":\"{kind}\",\"metadata\":{metadata},\"items\":[")
            .as_bytes(),
    );
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    drop(inner);
    json_response(Bytes::from(out))
}

fn watch_stream(fake: &FakeApi, target: &Target, query: &HashMap<String, String>, client: Option<String>) -> Response {
    if fake.lock().broken.contains(&target.plural) {
        return status(
            500,
            "InternalError",
            &format!("watching {} fails (injected)", target.plural),
        );
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let (compacted, current, epoch, lifetime, bookmark_every) = {
        let inner = fake.lock();
        (
            inner.compacted,
            inner.rv,
            inner.epoch,
            inner.watch_lifetime,
            inner.bookmarks,
        )
    };
    if from > current {
        return status(
            504,
            "Timeout",
            &format!("Too large resource version: {from}, current: {current}"),
        );
    }
    let (api_version, list) = list_kind(&target.plural);
    let kind = list.trim_end_matches("List").to_string();
    if from < compacted {
        // As the real server: the watch opens, and its only event says 410.
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Expired", "code": 410,
            "message": format!("too old resource version: {from} ({compacted})")}});
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(format!("{gone}\n")))
            .unwrap_or_else(|_| status(500, "InternalError", "watch"));
    }
    let asked = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let timeout = lifetime.map_or(asked, |l| l.min(asked));
    let deadline = tokio::time::Instant::now() + timeout;
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true")
        .then_some(bookmark_every)
        .flatten();
    let selector = query.get("labelSelector").cloned();
    let plural = target.plural.clone();
    let namespace = target.namespace.clone();
    let fake = fake.clone();
    let client = client.unwrap_or_default();
    let start = tokio::time::Instant::now();
    let stream = futures::stream::unfold((from, start), move |(cursor, last_bookmark)| {
        let fake = fake.clone();
        let plural = plural.clone();
        let namespace = namespace.clone();
        let selector = selector.clone();
        let client = client.clone();
        let (api_version, kind) = (api_version, kind.clone());
        async move {
            let mut cursor = cursor;
            let mut wake = fake.wake.subscribe();
            loop {
                {
                    let inner = fake.lock();
                    if inner.outage
                        || inner.broken.contains(&plural)
                        || inner.partitioned.contains(&client)
                        || inner.epoch != epoch
                    {
                        return None;
                    }
                    let start = inner.events.partition_point(|e| e.rv <= cursor);
                    let next = inner.events.get(start..).into_iter().flatten().find(|e| {
                        e.plural == plural
                            && namespace.as_ref().is_none_or(|n| *n == e.namespace)
                            && labels_match(selector.as_ref(), &e.object.labels)
                    });
                    if let Some(e) = next {
                        let mut line = Vec::with_capacity(e.object.json.len() + 32);
                        line.extend_from_slice(format!("{{\"type\":\"{}\",\"object\":", e.kind).as_bytes());
                        line.extend_from_slice(&e.object.json);
                        line.extend_from_slice(b"}\n");
                        return Some((Ok::<_, std::io::Error>(Bytes::from(line)), (e.rv, last_bookmark)));
                    }
                    // Nothing of this kind past the cursor: skip what was scanned.
                    cursor = inner.events.last().map_or(cursor, |e| e.rv.max(cursor));
                    if let Some(every) = bookmarks {
                        if last_bookmark.elapsed() >= every {
                            let rv = inner.rv.max(cursor);
                            let bookmark = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                                "metadata": {"resourceVersion": rv.to_string()}}});
                            let line = Bytes::from(format!("{bookmark}\n"));
                            return Some((Ok(line), (rv, tokio::time::Instant::now())));
                        }
                    }
                    wake.borrow_and_update();
                }
                let wait_until = match bookmarks {
                    Some(every) => deadline.min(last_bookmark + every),
                    None => deadline,
                };
                match tokio::time::timeout_at(wait_until, wake.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) if tokio::time::Instant::now() >= deadline => return None,
                    Err(_) => {}
                }
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status(500, "InternalError", "watch"))
}

/// A TokenReview as the API server answers it: a token is authenticated only
/// for the audiences it was issued for; with `spec.audiences` the answer's
/// `status.audiences` is the intersection (the API server's own audiences
/// when the review names none).
fn token_review(fake: &FakeApi, body: Value) -> Response {
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let asked: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_else(|| vec!["https://kubernetes.default.svc.cluster.local".into()]);
    let inner = fake.lock();
    let status = match inner.tokens.get(token) {
        Some((user, groups, audiences)) => {
            let common: Vec<&String> = asked.iter().filter(|a| audiences.contains(a)).collect();
            if common.is_empty() {
                json!({"authenticated": false, "error": "token audiences are invalid for the target audiences"})
            } else {
                json!({"authenticated": true, "user": {"username": user, "groups": groups}, "audiences": common})
            }
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    let mut reply = body;
    reply["status"] = status;
    axum::Json(reply).into_response()
}

fn access_review(fake: &FakeApi, body: Value) -> Response {
    let spec = &body["spec"];
    let attrs = &spec["resourceAttributes"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    // A subresource is granted as `resource/subresource`, as RBAC names it.
    let resource = match s(&attrs["subresource"]) {
        sub if sub.is_empty() => s(&attrs["resource"]),
        sub => format!("{}/{sub}", s(&attrs["resource"])),
    };
    let key = (
        s(&spec["user"]),
        s(&attrs["verb"]),
        resource,
        s(&attrs["namespace"]),
        s(&attrs["name"]),
    );
    let (user, verb, plural, namespace, name) = key;
    let inner = fake.lock();
    let granted = |ns: &str, n: &str| {
        let g = (
            user.clone(),
            verb.clone(),
            plural.clone(),
            ns.to_string(),
            n.to_string(),
        );
        inner.grants.contains(&g)
    };
    let allowed = s(&attrs["group"]) == group_of(&plural)
        && (granted(&namespace, &name) || granted(&namespace, ANY) || granted(ANY, &name) || granted(ANY, ANY));
    drop(inner);
    let mut reply = body;
    reply["status"] = json!({"allowed": allowed});
    axum::Json(reply).into_response()
}

/// The API group of a resource the fake grants access to (`""` is the core
/// group).
fn group_of(plural: &str) -> &'static str {
    match plural.split('/').next().unwrap_or_default() {
        "allowlists" => "meshward.io",
        "wasmplugins" => "extensions.istio.io",
        "deployments" | "statefulsets" | "daemonsets" => "apps",
        _ => "",
    }
}

/// `(namespace, pod)` of `/api/v1/namespaces/{ns}/pods/{name}/log`.
fn log_path(path: &str) -> Option<(&str, &str)> {
    match path.trim_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["api", "v1", "namespaces", ns, "pods", pod, "log"] => Some((ns, pod)),
        _ => None,
    }
}

/// The names of a pod's containers, regular then init (native sidecars are
/// init containers), and the reason of each that is waiting to start.
fn containers_of(pod: &Value) -> (Vec<String>, BTreeMap<String, String>) {
    let names = ["containers", "initContainers"]
        .iter()
        .flat_map(|field| pod["spec"][field].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let waiting = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|field| pod["status"][field].as_array().cloned().unwrap_or_default())
        .filter_map(|c| {
            let reason = c["state"]["waiting"].as_object()?;
            let reason = reason
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating");
            Some((c["name"].as_str()?.to_string(), reason.to_string()))
        })
        .collect();
    (names, waiting)
}

/// `GET .../pods/{name}/log`, as the API server answers it: `text/plain`;
/// 404 for a missing pod, 400 with a Status when the container is not the
/// pod's (or is not named and the pod has several) or waits to start; lines
/// older than `sinceSeconds` left out, each prefixed with its RFC 3339 time
/// with `timestamps=true`, the body cut at `limitBytes`.
fn pod_log(fake: &FakeApi, ns: &str, name: &str, query: &HashMap<String, String>) -> Response {
    let mut inner = fake.lock();
    inner.log_reads.push(LogRead {
        namespace: ns.into(),
        pod: name.into(),
        query: query.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    });
    let key = ("pods".to_string(), ns.to_string(), name.to_string());
    let Some(pod) = inner.objects.get(&key).map(Stored::value) else {
        return status(404, "NotFound", &format!("pods \"{name}\" not found"));
    };
    let (containers, waiting) = containers_of(&pod);
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) => c.clone(),
        None => match containers.as_slice() {
            [only] => only.clone(),
            _ => {
                return status(
                    400,
                    "BadRequest",
                    &format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        containers.join(" ")
                    ),
                )
            }
        },
    };
    if !containers.contains(&container) {
        return status(
            400,
            "BadRequest",
            &format!("container {container} is not valid for pod {name}"),
        );
    }
    if let Some(reason) = waiting.get(&container) {
        return status(
            400,
            "BadRequest",
            &format!("container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"),
        );
    }
    let number = |k: &str| query.get(k).and_then(|v| v.parse::<u64>().ok());
    let since = number("sinceSeconds").map(|s| SystemTime::now() - Duration::from_secs(s));
    let timestamps = query.get("timestamps").is_some_and(|t| t == "true" || t == "1");
    let mut body = String::new();
    let lines = inner.logs.get(&(ns.to_string(), name.to_string(), container)).cloned();
    drop(inner);
    for (at, line) in lines.unwrap_or_default() {
        if since.is_some_and(|s| at < s) {
            continue;
        }
        if timestamps {
            let at = k8s_openapi::jiff::Timestamp::try_from(at).unwrap_or_default();
            body.push_str(&format!("{at:.9} "));
        }
        body.push_str(&line);
        body.push('\n');
    }
    let mut bytes = body.into_bytes();
    if let Some(limit) = number("limitBytes") {
        bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| status(500, "InternalError", "response"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        for (ns, name) in [("a", "b"), ("", "x"), ("ns-1", "pod.with.dots")] {
            assert_eq!(
                parse_continue(&continue_token(ns, name)),
                Some((ns.into(), name.into()))
            );
        }
        assert_eq!(parse_continue("zz"), None);
    }
}
