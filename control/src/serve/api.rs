//! The HTTP API (axum): read the derived configuration, simulate a request
//! with the filter's own engine, switch an Allowlist between audit and
//! enforce, learn Allowlists from a namespace's sidecar logs and replay
//! candidates against them ([`traffic`]); plus `/metrics`, `/healthz`,
//! `/readyz` and `/openapi.json`.
//!
//! Every `/v1` call needs a Kubernetes bearer token for the service's
//! audience and the access the Kubernetes API would ask for the same
//! information ([`auth`](super::auth)): `get` on the namespace's Allowlists
//! to read its configuration or simulate a request to it, `patch` on the
//! Allowlist to change its mode, and `get` on `pods/log` too to have its
//! sidecar logs read. Without a token: 401; without the right:
//! 403, before anything about the namespace is revealed. The probes,
//! `/metrics` (counts and durations, no policy content) and `/openapi.json`
//! (the document compiled into the binary, the same as `docs/openapi.json`)
//! stay open; a NetworkPolicy decides who reaches the port.
//!
//! The OpenAPI document ([`ApiDoc`]) is generated from the handlers'
//! `#[utoipa::path]` annotations and the types below; the router takes each
//! route's path and methods from the same annotations, so the document names
//! exactly the routes the service serves.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::openapi::path::HttpMethod;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::crd::{Allowlist, AllowlistMode};
use crate::derive::{NamespaceDesired, WasmPluginSpec};
use crate::serve::auth::{Access, AuthError};
use crate::serve::metrics::Gauges;
use crate::serve::traffic;
use crate::serve::Shared;
use crate::simulate::{check_against, Check};

/// The field manager of API-initiated Allowlist changes.
pub const API_FIELD_MANAGER: &str = "meshward-api";

/// The name of the bearer-token security scheme in the document (the
/// operations' `security` attributes spell it out: they take only literals).
const BEARER: &str = "kubernetesToken";

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    let r = Router::new();
    let r = documented::<__path_healthz, _, _>(r, healthz);
    let r = documented::<__path_readyz, _, _>(r, readyz);
    let r = documented::<__path_metrics, _, _>(r, metrics);
    let r = documented::<__path_openapi_json, _, _>(r, openapi_json);
    let r = documented::<__path_config, _, _>(r, config);
    let r = documented::<__path_simulate, _, _>(r, simulate);
    let r = documented::<__path_set_mode, _, _>(r, set_mode);
    let r = documented::<traffic::__path_learn, _, _>(r, traffic::learn);
    let r = documented::<traffic::__path_replay, _, _>(r, traffic::replay);
    r.with_state(shared)
}

/// `handler` at the path and methods of its `#[utoipa::path]` annotation `P`.
fn documented<P, H, T>(router: Router<Arc<Shared>>, handler: H) -> Router<Arc<Shared>>
where
    P: utoipa::Path,
    H: axum::handler::Handler<T, Arc<Shared>>,
    T: 'static,
{
    router.route(&P::path(), on(methods::<P>(), handler))
}

/// The methods a documented operation is served at.
fn methods<P: utoipa::Path>() -> MethodFilter {
    let filter = |m: &HttpMethod| match m {
        HttpMethod::Get => MethodFilter::GET,
        HttpMethod::Post => MethodFilter::POST,
        HttpMethod::Put => MethodFilter::PUT,
        HttpMethod::Delete => MethodFilter::DELETE,
        HttpMethod::Options => MethodFilter::OPTIONS,
        HttpMethod::Head => MethodFilter::HEAD,
        HttpMethod::Patch => MethodFilter::PATCH,
        HttpMethod::Trace => MethodFilter::TRACE,
    };
    P::methods()
        .iter()
        .map(filter)
        .reduce(MethodFilter::or)
        .unwrap_or(MethodFilter::GET)
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "meshward-control",
        description = "The control service's HTTP API: the derived configuration of a namespace, \
            simulated requests, Allowlist modes, Allowlists learned from a namespace's sidecar logs and \
            candidates replayed against them; probes and metrics. Every /v1 operation needs a \
            Kubernetes bearer token issued for the service's audience (`kubectl create token NAME \
            --audience meshward-control`) and the RBAC right the Kubernetes API would ask for the \
            same access to Allowlists (meshward.io) and, to read sidecar logs, to `pods/log`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(healthz, readyz, metrics, openapi_json, config, simulate, set_mode, traffic::learn, traffic::replay),
    modifiers(&BearerToken),
    tags(
        (name = "operations", description = "Probes, metrics and this document: open, no policy content."),
        (name = "v1", description = "Policy information and changes: a bearer token and RBAC on Allowlists.")
    )
)]
pub struct ApiDoc;

/// Adds the bearer-token security scheme the `/v1` operations name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "A Kubernetes token for the service's audience (`--token-audience`, default \
             `meshward-control`), checked with a TokenReview; each operation's access is checked \
             with a SubjectAccessReview."
                .into(),
        );
        components.add_security_scheme(BEARER, SecurityScheme::Http(http));
    }
}

/// The document as served at `/openapi.json` and committed as
/// `docs/openapi.json`: pretty-printed, with a final newline.
pub fn openapi_json_text() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    // `from` and `principal` exclude each other. utoipa's schema model has no
    // `not`; the keyword is added to the generated schema here.
    if let Some(schema) = doc.pointer_mut("/components/schemas/SimulateRequest") {
        schema["not"] = json!({
            "required": ["from", "principal"],
            "properties": {"from": {"type": "string"}, "principal": {"type": "string"}}
        });
    }
    // Likewise, replay takes `lines` or `sinceSeconds`, not both.
    if let Some(schema) = doc.pointer_mut("/components/schemas/ReplayRequest") {
        schema["not"] = json!({
            "required": ["lines", "sinceSeconds"],
            "properties": {"lines": {"type": "array"}, "sinceSeconds": {"type": "integer"}}
        });
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The body of every error reply.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

/// An error reply: [`ErrorBody`] with a status code.
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
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

/// An HTTP token (RFC 9110 `tchar`s), the syntax of a method.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// The `Authorization` header, if it is text.
pub(super) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// A path that axum could not decode (not UTF-8 once percent-decoded): 400,
/// as JSON like every other error, and only after authentication.
pub(super) fn path_error(e: PathRejection) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.body_text())
}

/// The largest body of a simulation or a mode change.
pub(super) const MAX_SMALL_BODY_BYTES: usize = 64 << 10;

/// The JSON body of a request, read only once its caller is authorized, so
/// that a stranger cannot make the service read and parse megabytes: 413
/// over `limit` bytes, 400 when it is not JSON of type `T` (or not sent as
/// `application/json`).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
    if !json {
        return Err(bad("Expected request with `Content-Type: application/json`".into()));
    }
    let too_large = || ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is over {limit} bytes"));
    // A declared length over the limit is refused before anything is read
    // (a client that sent `Expect: 100-continue` never sends the body).
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad(format!("the body could not be read: {e}")))?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    // As axum's `Json` words it, with the path of the offending field.
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
        .map_err(|e| bad(format!("Failed to deserialize the JSON body into the target type: {e}")))
}

/// A namespace name from the URL, refused unless it is a Kubernetes name.
pub(super) fn namespace_name(ns: &str) -> Result<(), ApiError> {
    if is_dns_label(ns) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{ns:?} is not a namespace name"),
        ))
    }
}

/// 503 until the first full derivation: the API answers from it.
pub(super) fn ensure_ready(shared: &Shared) -> Result<(), ApiError> {
    if shared.serving() {
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
            format!("namespace {ns} is not enabled (label it meshward.io/enforcement=enabled, audit or learn)"),
        )),
    }
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers.", body = String, content_type = "text/plain", example = "ok"))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: ready once the cluster has been listed and derived.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Synced with the cluster: the API answers from a full derivation.",
            body = String, content_type = "text/plain", example = "ready"),
        (status = 503, description = "Not ready; the body says why.", body = String, content_type = "text/plain"),
    )
)]
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let readiness = shared.readiness();
    shared.metrics.set_ready(readiness.is_ok());
    match readiness {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// `GET /metrics`: the service's counters, gauges and histograms.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4 \
        (counts and durations, no policy content; docs/service.md#metrics lists the series).",
        body = String, content_type = "text/plain"))
)]
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.set_ready(shared.readiness().is_ok());
    let gauges = Gauges {
        write_queue: shared.writer.depth(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        shared.metrics.render(gauges),
    )
        .into_response()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document of this API (docs/openapi.json).",
        body = Object, content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json_text()).into_response()
}

/// A WasmPlugin as last derived.
#[derive(Debug, Serialize, ToSchema)]
pub struct DerivedPlugin {
    /// The WasmPlugin's name.
    pub name: String,
    /// Its spec (`extensions.istio.io/v1alpha1` WasmPlugin), with the
    /// filter's configuration under `pluginConfig`.
    #[schema(value_type = Object)]
    pub spec: WasmPluginSpec,
}

/// The reply of `GET /v1/namespaces/{ns}/config`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceConfig {
    /// The namespace.
    pub namespace: String,
    /// Its WasmPlugins, sorted by name.
    pub wasm_plugins: Vec<DerivedPlugin>,
}

/// `GET /v1/namespaces/{ns}/config`: the namespace's WasmPlugins as last
/// derived, with their plugin configurations.
#[utoipa::path(
    get,
    path = "/v1/namespaces/{ns}/config",
    tag = "v1",
    security(("kubernetesToken" = [])),
    params(("ns" = String, Path, description = "The namespace.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63, example = "shop")),
    responses(
        (status = 200, description = "The namespace's WasmPlugins. Needs `get` on Allowlists in the namespace.", body = NamespaceConfig),
        (status = 400, description = "The namespace is not a Kubernetes name.", body = ErrorBody),
        (status = 401, description = "No bearer token, or one not authenticated for the service's audience.", body = ErrorBody),
        (status = 403, description = "The caller may not `get` Allowlists in the namespace.", body = ErrorBody),
        (status = 404, description = "The namespace is not enabled (no `meshward.io/enforcement` label).", body = ErrorBody),
        (status = 502, description = "The TokenReview or SubjectAccessReview could not be made.", body = ErrorBody),
        (status = 503, description = "Not synced with the cluster yet.", body = ErrorBody),
    )
)]
async fn config(
    State(shared): State<Arc<Shared>>,
    ns: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<NamespaceConfig>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    let Path(ns) = ns.map_err(path_error)?;
    namespace_name(&ns)?;
    shared.authorizer.authorize(&user, Access::read(&ns)).await?;
    let derived = derived_plugins(&shared, &ns)?;
    let wasm_plugins = derived
        .wasm_plugins
        .iter()
        .map(|p| DerivedPlugin {
            name: p.metadata.name.clone().unwrap_or_default(),
            spec: p.spec.clone(),
        })
        .collect();
    Ok(Json(NamespaceConfig {
        namespace: ns,
        wasm_plugins,
    }))
}

/// The body of `POST /v1/simulate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateRequest {
    /// The caller, `<namespace>/<serviceaccount>`. Give this or
    /// `principal`, not both; neither = a caller without mTLS.
    #[serde(default)]
    #[schema(example = "shop/frontend")]
    pub from: Option<String>,
    /// The caller as a principal (`<trust domain>/ns/<ns>/sa/<sa>`), instead of `from`.
    #[serde(default)]
    pub principal: Option<String>,
    /// The workload receiving the request, `<namespace>/<workload>`.
    #[schema(example = "shop/api-1")]
    pub to: String,
    /// The method: an HTTP token (RFC 9110), such as `GET`.
    #[schema(example = "GET", pattern = "^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")]
    pub method: String,
    /// The path, as sent (it is canonicalized like the filter does).
    #[schema(example = "/items/1")]
    pub path: String,
    /// `:authority`; absent = the workload's name.
    #[serde(default)]
    pub host: Option<String>,
    /// Destination port; absent = the workload's first container port.
    #[serde(default)]
    #[schema(maximum = 65535)]
    pub port: Option<u16>,
    /// Headers, `[name, value]` pairs (repeat a name for repeated headers).
    #[serde(default)]
    #[schema(schema_with = header_pairs)]
    pub headers: Vec<(String, String)>,
}

/// `[[name, value], ...]`.
fn header_pairs() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{Array, ArrayItems, Object, Type};
    let pair = Array::builder()
        .prefix_items([Object::with_type(Type::String), Object::with_type(Type::String)])
        .items(ArrayItems::False)
        .min_items(Some(2))
        .max_items(Some(2));
    Array::builder()
        .items(pair)
        .description(Some(
            "Headers, `[name, value]` pairs (repeat a name for repeated headers).",
        ))
        .build()
}

/// A verdict, as the filter gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimulatedVerdict {
    /// Admitted.
    Allow,
    /// Refused with the deny status; never forwarded.
    Deny,
    /// Would be refused, but only audit policies apply: forwarded, logged
    /// and counted.
    AuditDeny,
    /// Malformed or ambiguous request: answered with 400.
    Reject,
}

impl From<meshward_filter::Verdict> for SimulatedVerdict {
    fn from(v: meshward_filter::Verdict) -> Self {
        use meshward_filter::Verdict;
        match v {
            Verdict::Allow => Self::Allow,
            Verdict::Deny => Self::Deny,
            Verdict::AuditDeny => Self::AuditDeny,
            Verdict::Reject => Self::Reject,
        }
    }
}

/// The reply of `POST /v1/simulate`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SimulateResponse {
    /// The verdict.
    pub verdict: SimulatedVerdict,
    /// `policy/rule` that admitted the request; absent when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why.
    pub explanation: String,
}

/// `POST /v1/simulate`: the engine's decision for a request, on the last
/// derivation (the same code the filter runs).
#[utoipa::path(
    post,
    path = "/v1/simulate",
    tag = "v1",
    security(("kubernetesToken" = [])),
    request_body(content = SimulateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The verdict. Needs `get` on Allowlists in the target's namespace.", body = SimulateResponse),
        (status = 400, description = "The body is not a valid request (not JSON, unknown field, `from` and `principal` both, \
            `method` not an HTTP token, `to` not `<namespace>/<workload>`, an unknown workload, a malformed value).", body = ErrorBody),
        (status = 401, description = "No bearer token, or one not authenticated for the service's audience.", body = ErrorBody),
        (status = 403, description = "The caller may not `get` Allowlists in the target's namespace.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
        (status = 429, description = "Too many simulations in flight; retry.", body = ErrorBody),
        (status = 500, description = "The simulation failed (a defect: the engine panicked; the service's log has it).", body = ErrorBody),
        (status = 502, description = "The TokenReview or SubjectAccessReview could not be made.", body = ErrorBody),
        (status = 503, description = "Not synced with the cluster yet.", body = ErrorBody),
    )
)]
async fn simulate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SimulateResponse>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    let req: SimulateRequest = json_body(&headers, body, MAX_SMALL_BODY_BYTES).await?;
    if req.from.is_some() && req.principal.is_some() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "give from or principal, not both".into(),
        ));
    }
    // The engine reads `METHOD path` back at the first space: a method
    // with a space in it would be judged as another request.
    if !is_token(&req.method) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("method: {:?} is not an HTTP method", req.method),
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
        verdict: outcome.verdict.into(),
        rule: outcome.rule,
        explanation: outcome.explanation,
    }))
}

/// The body of `PATCH /v1/namespaces/{ns}/allowlists/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeChange {
    /// `audit` or `enforce`.
    pub mode: AllowlistMode,
}

/// The reply of `PATCH /v1/namespaces/{ns}/allowlists/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeChanged {
    /// The Allowlist's namespace.
    pub namespace: String,
    /// The Allowlist's name.
    pub name: String,
    /// Its mode, as the API server stored it.
    pub mode: AllowlistMode,
    /// The user who changed it (the token's user).
    pub changed_by: String,
}

/// `PATCH /v1/namespaces/{ns}/allowlists/{name}` with `{"mode": "audit"|"enforce"}`.
#[utoipa::path(
    patch,
    path = "/v1/namespaces/{ns}/allowlists/{name}",
    tag = "v1",
    security(("kubernetesToken" = [])),
    params(
        ("ns" = String, Path, description = "The Allowlist's namespace.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63, example = "shop"),
        ("name" = String, Path, description = "The Allowlist's name.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$", max_length = 253, example = "api"),
    ),
    request_body(content = ModeChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The mode was changed (a merge patch of `spec.mode` under the field manager \
            `meshward-api`). Needs `patch` on the Allowlist.", body = ModeChanged),
        (status = 400, description = "A name is not a Kubernetes name, or the body is not `{\"mode\": \"audit\"|\"enforce\"}`.", body = ErrorBody),
        (status = 401, description = "No bearer token, or one not authenticated for the service's audience.", body = ErrorBody),
        (status = 403, description = "The caller may not `patch` the Allowlist.", body = ErrorBody),
        (status = 404, description = "There is no such Allowlist.", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
        (status = 502, description = "The reviews or the patch could not be made (the API server failed or refused).", body = ErrorBody),
    )
)]
async fn set_mode(
    State(shared): State<Arc<Shared>>,
    names: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ModeChanged>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    let Path((ns, name)) = names.map_err(path_error)?;
    // The names go into the API server's URL unescaped: only valid
    // Kubernetes names, so the object checked is the object patched.
    namespace_name(&ns)?;
    if !is_dns_subdomain(&name) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{name:?} is not an object name"),
        ));
    }
    let user = shared.authorizer.authorize(&user, Access::patch(&ns, &name)).await?;
    let change: ModeChange = json_body(&headers, body, MAX_SMALL_BODY_BYTES).await?;
    let api: Api<Allowlist> = Api::namespaced(shared.client.clone(), &ns);
    let patch = json!({"spec": {"mode": change.mode}});
    let params = PatchParams {
        field_manager: Some(API_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&name, &params, &Patch::Merge(&patch)).await {
        Ok(a) => {
            tracing::info!(user, namespace = %ns, name = %name, mode = ?change.mode, "Allowlist mode changed");
            Ok(Json(ModeChanged {
                namespace: ns,
                name,
                mode: a.spec.mode.unwrap_or(change.mode),
                changed_by: user,
            }))
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
    fn methods_are_http_tokens() {
        for ok in ["GET", "PATCH", "M-SEARCH", "x!#$%&'*+-.^_`|~9"] {
            assert!(is_token(ok), "{ok}");
        }
        for bad in ["", "GET /admin", "GET\t", "G\u{e9}T", "(GET)", "a/b"] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

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
