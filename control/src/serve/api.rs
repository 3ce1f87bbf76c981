//! The HTTP API (axum): read the derived configuration, simulate a request
//! with the filter's own engine, switch an Allowlist between audit and
//! enforce; plus `/metrics`, `/healthz` and `/readyz`.
//!
//! Every `/v1` call needs a Kubernetes bearer token for the service's
//! audience and the access the Kubernetes API would ask for the same
//! information ([`auth`](super::auth)): `get` on the namespace's Allowlists
//! to read its configuration or simulate a request to it, `patch` on the
//! Allowlist to change its mode. Without a token: 401; without the right:
//! 403, before anything about the namespace is revealed. The probes and
//! `/metrics` (counts and durations, no policy content) stay open; a
//! NetworkPolicy decides who reaches the port.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::crd::{Allowlist, AllowlistMode};
use crate::derive::NamespaceDesired;
use crate::serve::auth::{Access, AuthError};
use crate::serve::metrics::Gauges;
use crate::serve::Shared;
use crate::simulate::{check_against, Check};

/// The field manager of API-initiated Allowlist changes.
pub const API_FIELD_MANAGER: &str = "meshward-api";

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/namespaces/{ns}/config", get(config))
        .route("/v1/simulate", post(simulate))
        .route("/v1/namespaces/{ns}/allowlists/{name}", patch(set_mode))
        .with_state(shared)
}

/// An error reply: `{"error": "..."}` with a status code.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match &e {
            AuthError::MissingToken | AuthError::Unauthenticated { .. } => {
                Self(StatusCode::UNAUTHORIZED, e.to_string())
            }
            AuthError::Forbidden { .. } => Self(StatusCode::FORBIDDEN, e.to_string()),
            AuthError::Review(inner) => {
                // The details stay in the service's log.
                tracing::warn!(error = %inner, "TokenReview/SubjectAccessReview failed");
                Self(
                    StatusCode::BAD_GATEWAY,
                    "the authorization check could not be made".into(),
                )
            }
        }
    }
}

/// An RFC 1123 label (namespace names): lower-case alphanumerics and `-`,
/// starting and ending alphanumeric, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// An RFC 1123 subdomain (object names): labels joined by `.`, at most 253
/// characters.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The `Authorization` header, if it is text.
fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// 503 until the first full derivation: the API answers from it.
fn ensure_ready(shared: &Shared) -> Result<(), ApiError> {
    if shared.ready() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "not synced with the cluster yet".into(),
        ))
    }
}

/// The last derivation of namespace `ns`; 404 when it is not enabled.
fn derived_plugins(shared: &Shared, ns: &str) -> Result<Arc<NamespaceDesired>, ApiError> {
    ensure_ready(shared)?;
    match shared.derived(ns) {
        Some(d) if !d.wasm_plugins.is_empty() => Ok(d),
        _ => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("namespace {ns} is not enabled (label it meshward.io/enforcement=enabled or audit)"),
        )),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let ready = shared.ready();
    shared.metrics.set_ready(ready);
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else if shared.health.synced() {
        (StatusCode::SERVICE_UNAVAILABLE, "listed; deriving for the first time").into_response()
    } else {
        let waiting = shared.health.incomplete().join(", ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for the first list of: {waiting}"),
        )
            .into_response()
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.set_ready(shared.ready());
    let gauges = Gauges {
        write_queue: shared.writer.depth(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        shared.metrics.render(gauges),
    )
        .into_response()
}

/// `GET /v1/namespaces/{ns}/config`: the namespace's WasmPlugins as last
/// derived, with their plugin configurations.
async fn config(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    if !is_dns_label(&ns) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{ns:?} is not a namespace name"),
        ));
    }
    shared.authorizer.authorize(&user, Access::read(&ns)).await?;
    let derived = derived_plugins(&shared, &ns)?;
    let plugins: Vec<Value> = derived
        .wasm_plugins
        .iter()
        .map(|p| json!({"name": p.metadata.name, "spec": p.spec}))
        .collect();
    Ok(Json(json!({"namespace": ns, "wasmPlugins": plugins})))
}

/// The body of `POST /v1/simulate`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateRequest {
    /// The caller, `<namespace>/<serviceaccount>`.
    #[serde(default)]
    pub from: Option<String>,
    /// The caller as a principal (`<trust domain>/ns/<ns>/sa/<sa>`), instead of `from`.
    #[serde(default)]
    pub principal: Option<String>,
    /// The workload receiving the request, `<namespace>/<workload>`.
    pub to: String,
    /// The method.
    pub method: String,
    /// The path, as sent (it is canonicalized like the filter does).
    pub path: String,
    /// `:authority`; absent = the workload's name.
    #[serde(default)]
    pub host: Option<String>,
    /// Destination port; absent = the workload's first container port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Headers, `[name, value]` pairs (repeat a name for repeated headers).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// The reply of `POST /v1/simulate`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimulateResponse {
    /// `allow`, `deny`, `audit_deny` or `reject`.
    pub verdict: String,
    /// `policy/rule` that admitted the request.
    pub rule: Option<String>,
    /// Why.
    pub explanation: String,
}

/// `POST /v1/simulate`: the engine's decision for a request, on the last
/// derivation (the same code the filter runs).
async fn simulate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<SimulateRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<SimulateResponse>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    let Json(req) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    if req.from.is_some() && req.principal.is_some() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give from or principal, not both".into(),
        ));
    }
    let target_ns = match req.to.split_once('/') {
        Some((ns, _)) if is_dns_label(ns) => ns.to_string(),
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("to: {:?}: expected <namespace>/<workload>", req.to),
            ))
        }
    };
    // Simulating a request to a namespace reveals what its Allowlists admit:
    // the same right as reading them.
    shared.authorizer.authorize(&user, Access::read(&target_ns)).await?;
    ensure_ready(&shared)?;
    let plugins = shared
        .derived(&target_ns)
        .map(|d| d.wasm_plugins.clone())
        .unwrap_or_default();
    // Simulation compiles the namespace's configuration: bounded, and off the
    // runtime threads that serve the watchers and the reconciler.
    let Ok(permit) = shared.simulations.clone().try_acquire_owned() else {
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many simulations in flight; retry".into(),
        ));
    };
    let c = Check {
        from: req.from,
        principal: req.principal,
        to: req.to,
        request: format!("{} {}", req.method, req.path),
        host: req.host,
        port: req.port,
        headers: req.headers,
    };
    let worker = shared.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        worker.read_state(|state| check_against(state, &plugins, &c))
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("simulation failed: {e}")))?
    .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(SimulateResponse {
        verdict: outcome.verdict.as_str().to_string(),
        rule: outcome.rule,
        explanation: outcome.explanation,
    }))
}

/// The body of `PATCH /v1/namespaces/{ns}/allowlists/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    /// `audit` or `enforce`.
    pub mode: AllowlistMode,
}

/// `PATCH /v1/namespaces/{ns}/allowlists/{name}` with `{"mode": "audit"|"enforce"}`.
async fn set_mode(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<ModeChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    // The names go into the API server's URL unescaped: only valid
    // Kubernetes names, so the object checked is the object patched.
    if !is_dns_label(&ns) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{ns:?} is not a namespace name"),
        ));
    }
    if !is_dns_subdomain(&name) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{name:?} is not an object name"),
        ));
    }
    let user = shared.authorizer.authorize(&user, Access::patch(&ns, &name)).await?;
    let Json(change) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let api: Api<Allowlist> = Api::namespaced(shared.client.clone(), &ns);
    let patch = json!({"spec": {"mode": change.mode}});
    let params = PatchParams {
        field_manager: Some(API_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&name, &params, &Patch::Merge(&patch)).await {
        Ok(a) => {
            tracing::info!(user, namespace = %ns, name = %name, mode = ?change.mode, "Allowlist mode changed");
            Ok(Json(
                json!({"namespace": ns, "name": name, "mode": a.spec.mode, "changedBy": user}),
            ))
        }
        Err(kube::Error::Api(e)) if e.code == 404 => {
            Err(ApiError(StatusCode::NOT_FOUND, format!("no Allowlist {ns}/{name}")))
        }
        Err(e) => Err(ApiError(
            StatusCode::BAD_GATEWAY,
            format!("patching Allowlist {ns}/{name}: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_names_reach_the_api_server_url() {
        for ok in ["shop", "a", "a-1", "x9"] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a/b", "..", "a.b", "a%2Fb", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(is_dns_subdomain("api.v1-x"));
        for bad in ["x/../../victim", "a..b", ".a", "a.", "a_b"] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
