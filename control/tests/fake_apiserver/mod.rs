//! A fake Kubernetes API server for the service's tests: real HTTP (axum),
//! speaking what `kube::Client` and kube-runtime's watcher use — list (with
//! `resourceVersion`), watch (a stream of JSON events from a resource
//! version), get, server-side apply, JSON merge patch, the status
//! subresource, delete, TokenReview and SubjectAccessReview — with failure
//! injection (a broken kind, a full outage) and a log of every write.
//!
//! Server-side apply is modelled at the level of top-level `spec` fields: the
//! applier owns the fields of its last apply; a field it stops applying is
//! removed, fields others wrote stay; labels are merged; an applied `status`
//! replaces the stored one. A write that changes nothing does not bump the
//! resource version (as the real server). Deletes honour `preconditions`.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

/// (plural, namespace, name).
type Key = (String, String, String);

#[derive(Default)]
struct Inner {
    rv: u64,
    uid: u64,
    /// (plural, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    events: Vec<Event>,
    writes: Vec<Write>,
    outage: bool,
    broken: BTreeSet<String>,
    /// token → (user, groups).
    tokens: BTreeMap<String, (String, Vec<String>)>,
    /// (user, verb, plural, namespace, name).
    grants: BTreeSet<(String, String, String, String, String)>,
    /// Top-level spec fields each object's appliers own: (key, manager) → fields.
    owned: BTreeMap<(Key, String), BTreeSet<String>>,
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
fn plural_of(kind: &str) -> String {
    match kind {
        "Namespace" => "namespaces".into(),
        "Pod" => "pods".into(),
        "Service" => "services".into(),
        "ServiceAccount" => "serviceaccounts".into(),
        "Deployment" => "deployments".into(),
        "StatefulSet" => "statefulsets".into(),
        "DaemonSet" => "daemonsets".into(),
        "Allowlist" => "allowlists".into(),
        "WasmPlugin" => "wasmplugins".into(),
        other => panic!("the fake API server does not know kind {other}"),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn labels_match(selector: Option<&String>, object: &Value) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .unwrap_or((term, ""));
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl FakeApi {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            wake: Arc::new(watch::channel(0).0),
            addr,
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// The service's `kube::Client`, pointed at the fake.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        meshward_control::serve::client(config).unwrap()
    }

    /// Creates or replaces an object (as another client would), emitting a watch event.
    pub fn put(&self, object: Value) {
        let kind = object["kind"].as_str().unwrap().to_string();
        let ns = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let mut inner = self.inner.lock().unwrap();
        let key = (plural_of(&kind), ns, name);
        let existing = inner.objects.get(&key).cloned();
        inner.store(key, object, existing.as_ref());
        drop(inner);
        self.notify();
    }

    /// Deletes an object, emitting a watch event.
    pub fn remove(&self, kind: &str, namespace: &str, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        let key = (plural_of(kind), namespace.to_string(), name.to_string());
        inner.delete(&key);
        drop(inner);
        self.notify();
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .get(&(plural_of(kind), namespace.into(), name.into()))
            .cloned()
    }

    /// Every write received so far.
    pub fn writes(&self) -> Vec<Write> {
        self.inner.lock().unwrap().writes.clone()
    }

    /// Forgets the write log.
    pub fn clear_writes(&self) {
        self.inner.lock().unwrap().writes.clear();
    }

    /// Every request fails with 503, and open watches end.
    pub fn set_outage(&self, on: bool) {
        self.inner.lock().unwrap().outage = on;
        self.notify();
    }

    /// Lists and watches of `plural` fail with 500 (open ones end).
    pub fn set_broken(&self, plural: &str, broken: bool) {
        let mut inner = self.inner.lock().unwrap();
        if broken {
            inner.broken.insert(plural.into());
        } else {
            inner.broken.remove(plural);
        }
        drop(inner);
        self.notify();
    }

    /// A bearer token that TokenReview authenticates as `user`.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.inner
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), (user.into(), groups));
    }

    /// Lets `user` do `verb` on `plural` `namespace/name` (SubjectAccessReview).
    pub fn grant(&self, user: &str, verb: &str, plural: &str, namespace: &str, name: &str) {
        let g = (user.into(), verb.into(), plural.into(), namespace.into(), name.into());
        self.inner.lock().unwrap().grants.insert(g);
    }

    fn notify(&self) {
        self.wake.send_modify(|n| *n += 1);
    }
}

impl Inner {
    /// Stores `object` under `key`; bumps the resource version and records an
    /// event only when something changed. Returns the stored object.
    fn store(&mut self, key: (String, String, String), mut object: Value, existing: Option<&Value>) -> Value {
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
        self.events.push(Event {
            rv: self.rv,
            plural: key.0.clone(),
            namespace: key.1.clone(),
            kind,
            object: object.clone(),
        });
        self.objects.insert(key, object.clone());
        object
    }

    fn delete(&mut self, key: &(String, String, String)) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.events.push(Event {
            rv: self.rv,
            plural: key.0.clone(),
            namespace: key.1.clone(),
            kind: "DELETED",
            object: object.clone(),
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
    {
        let mut inner = fake.inner.lock().unwrap();
        if method != Method::GET {
            inner.writes.push(Write {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                content_type: content_type.clone(),
                body: body.clone(),
            });
        }
        if inner.outage {
            return status(503, "ServiceUnavailable", "the fake API server is down");
        }
    }
    if method == Method::POST && path == "/apis/authentication.k8s.io/v1/tokenreviews" {
        return token_review(&fake, body);
    }
    if method == Method::POST && path == "/apis/authorization.k8s.io/v1/subjectaccessreviews" {
        return access_review(&fake, body);
    }
    let Some(target) = parse_path(&path) else {
        return status(404, "NotFound", &format!("the fake API server does not serve {path}"));
    };
    let ns = target.namespace.clone().unwrap_or_default();
    match (method, &target.name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_stream(&fake, &target, &query)
        }
        (Method::GET, None) => list(&fake, &target, &query),
        (Method::GET, Some(name)) => {
            let key = (target.plural.clone(), ns, name.clone());
            match fake.inner.lock().unwrap().objects.get(&key) {
                Some(o) => axum::Json(o.clone()).into_response(),
                None => status(404, "NotFound", &format!("{} {name} not found", target.plural)),
            }
        }
        (Method::PATCH, Some(name)) => {
            let key = (target.plural.clone(), ns, name.clone());
            let mut inner = fake.inner.lock().unwrap();
            let existing = inner.objects.get(&key).cloned();
            let updated = if content_type.starts_with("application/apply-patch") {
                // As the real server: an apply names its object and its manager.
                if body["apiVersion"].as_str().is_none() || body["kind"].as_str().is_none() {
                    return status(400, "BadRequest", "apply: apiVersion and kind must be set");
                }
                if !query.contains_key("fieldManager") {
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
                        let fields = spec_fields(&body);
                        inner.owned.insert((key.clone(), manager(&query)), fields);
                        body.clone()
                    }
                    (Some(old), false) => {
                        let mut o = old.clone();
                        let mut labels = old["metadata"]["labels"].clone();
                        merge(&mut labels, &body["metadata"]["labels"]);
                        o["metadata"]["labels"] = labels;
                        let fields = spec_fields(&body);
                        let before = inner
                            .owned
                            .insert((key.clone(), manager(&query)), fields)
                            .unwrap_or_default();
                        if !o["spec"].is_object() {
                            o["spec"] = json!({});
                        }
                        let spec = o["spec"].as_object_mut().unwrap();
                        for dropped in before.iter().filter(|f| body["spec"].get(f.as_str()).is_none()) {
                            spec.remove(dropped);
                        }
                        for (k, v) in body["spec"].as_object().into_iter().flatten() {
                            spec.insert(k.clone(), v.clone());
                        }
                        o
                    }
                }
            } else if content_type.starts_with("application/merge-patch+json") {
                let Some(old) = &existing else {
                    return status(404, "NotFound", &format!("{} {name} not found", target.plural));
                };
                let mut o = old.clone();
                merge(&mut o, &body);
                o
            } else {
                return status(415, "UnsupportedMediaType", &content_type);
            };
            let stored = inner.store(key, updated, existing.as_ref());
            drop(inner);
            fake.notify();
            axum::Json(stored).into_response()
        }
        (Method::DELETE, Some(name)) => {
            let key = (target.plural.clone(), ns, name.clone());
            let mut inner = fake.inner.lock().unwrap();
            if let Some(current) = inner.objects.get(&key) {
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
        "deployments" => ("apps/v1", "DeploymentList"),
        "statefulsets" => ("apps/v1", "StatefulSetList"),
        "daemonsets" => ("apps/v1", "DaemonSetList"),
        "allowlists" => ("meshward.io/v1alpha1", "AllowlistList"),
        "wasmplugins" => ("extensions.istio.io/v1alpha1", "WasmPluginList"),
        _ => ("v1", "List"),
    }
}

fn list(fake: &FakeApi, target: &Target, query: &HashMap<String, String>) -> Response {
    let inner = fake.inner.lock().unwrap();
    if inner.broken.contains(&target.plural) {
        return status(
            500,
            "InternalError",
            &format!("listing {} fails (injected)", target.plural),
        );
    }
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((p, ns, _), _)| *p == target.plural && target.namespace.as_ref().is_none_or(|t| t == ns))
        .filter(|(_, o)| labels_match(query.get("labelSelector"), o))
        .map(|(_, o)| o.clone())
        .collect();
    let (api_version, kind) = list_kind(&target.plural);
    axum::Json(json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items}))
    .into_response()
}

fn watch_stream(fake: &FakeApi, target: &Target, query: &HashMap<String, String>) -> Response {
    if fake.inner.lock().unwrap().broken.contains(&target.plural) {
        return status(
            500,
            "InternalError",
            &format!("watching {} fails (injected)", target.plural),
        );
    }
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let deadline = tokio::time::Instant::now() + timeout;
    let selector = query.get("labelSelector").cloned();
    let plural = target.plural.clone();
    let namespace = target.namespace.clone();
    let fake = fake.clone();
    let stream = futures::stream::unfold(from, move |cursor| {
        let fake = fake.clone();
        let plural = plural.clone();
        let namespace = namespace.clone();
        let selector = selector.clone();
        async move {
            let mut wake = fake.wake.subscribe();
            loop {
                {
                    let inner = fake.inner.lock().unwrap();
                    if inner.outage || inner.broken.contains(&plural) {
                        return None;
                    }
                    let next = inner.events.iter().find(|e| {
                        e.rv > cursor
                            && e.plural == plural
                            && namespace.as_ref().is_none_or(|n| *n == e.namespace)
                            && labels_match(selector.as_ref(), &e.object)
                    });
                    if let Some(e) = next {
                        let line = format!("{}\n", json!({"type": e.kind, "object": e.object}));
                        let rv = e.rv;
                        return Some((Ok::<_, std::io::Error>(line), rv));
                    }
                    // Events of other kinds advance nothing; wait for a change.
                    wake.borrow_and_update();
                }
                match tokio::time::timeout_at(deadline, wake.changed()).await {
                    Ok(Ok(())) => {}
                    _ => return None,
                }
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn token_review(fake: &FakeApi, body: Value) -> Response {
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let inner = fake.inner.lock().unwrap();
    let status = match inner.tokens.get(token) {
        Some((user, groups)) => json!({"authenticated": true, "user": {"username": user, "groups": groups}}),
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
    let key = (
        s(&spec["user"]),
        s(&attrs["verb"]),
        s(&attrs["resource"]),
        s(&attrs["namespace"]),
        s(&attrs["name"]),
    );
    let allowed = s(&attrs["group"]) == "meshward.io" && fake.inner.lock().unwrap().grants.contains(&key);
    let mut reply = body;
    reply["status"] = json!({"allowed": allowed});
    axum::Json(reply).into_response()
}
