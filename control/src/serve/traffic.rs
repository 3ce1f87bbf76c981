//! `POST /v1/namespaces/{ns}/learn` and `POST /v1/namespaces/{ns}/replay`:
//! [`learn`](crate::learn) and [`replay`](crate::replay) in the cluster, on
//! the service's live state and a namespace's sidecar logs read through the
//! Kubernetes API ([`podlogs`]).
//!
//! The service reads the logs on the caller's behalf, so the caller must be
//! allowed to read them: both operations ask a SubjectAccessReview for `get`
//! on `allowlists.meshward.io` in the namespace (what the other read
//! operations ask), and, when logs are read, for `get` on `pods/log` there
//! (what `kubectl logs` needs). Only request lines of the namespace are used.
//!
//! The work is bounded ([`SERVE_LIMITS`], [`MAX_SINCE_SECONDS`],
//! [`MAX_BODY_BYTES`], [`MAX_LINES`], [`MAX_IN_FLIGHT`]): the service runs
//! with a memory limit, and these calls are the only ones whose cost a caller
//! chooses.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::api::{authorization, ensure_ready, json_body, namespace_name, path_error, ApiError};
use super::auth::Access;
use super::Shared;
use crate::crd::{Allowlist, AllowlistMode};
use crate::incluster::podlogs::{self, Limits, SidecarLogs};
use crate::incluster::{self, Observed};
use crate::learn::described::Apis;
use crate::learn::logs::LogStats;
use crate::learn::Options;
use crate::replay::Report;

/// The largest `sinceSeconds`: a day.
pub const MAX_SINCE_SECONDS: u64 = 86_400;
/// `sinceSeconds` when the body does not say.
pub const DEFAULT_SINCE_SECONDS: u64 = 3_600;
/// The largest request body (replay's posted lines and candidates).
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// The most lines a replay may post.
pub const MAX_LINES: usize = 100_000;
/// The most candidates a replay may post.
pub const MAX_CANDIDATES: usize = 1_000;
/// Learn and replay calls served at once; more get 429.
pub const MAX_IN_FLIGHT: usize = 1;
/// How much of a namespace's sidecar logs a call reads: 1 MiB of each pod's
/// log (`limitBytes`), at most 32 pods (the first by name), 4 at once, all
/// within 30 s; at most 32 MiB of logs held per call.
pub const SERVE_LIMITS: Limits = Limits {
    since_seconds: DEFAULT_SINCE_SECONDS,
    limit_bytes: 1 << 20,
    max_pods: 32,
    concurrency: 4,
    timeout: Duration::from_secs(30),
};

/// The body of `POST /v1/namespaces/{ns}/learn`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LearnRequest {
    /// Read the sidecar log lines written this many seconds ago or later
    /// (`sinceSeconds` of `pods/log`); absent = 3600.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400, example = 3600)]
    pub since_seconds: Option<u64>,
    /// `spec.mode` of the proposed Allowlists; absent = `audit`.
    #[serde(default)]
    pub mode: Option<AllowlistMode>,
    /// Drop every (caller, method, path template) seen fewer times; absent = 1.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub min_count: Option<u64>,
    /// Learn from requests an enforcing policy denied too (`deny`, never
    /// `reject`); absent = false.
    #[serde(default)]
    pub include_denied: Option<bool>,
}

/// The body of `POST /v1/namespaces/{ns}/replay`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRequest {
    /// Allowlists (as `kubectl get -o json` prints them; `apiVersion`, `kind`
    /// and `metadata.namespace` may be left out) that replace the live
    /// Allowlists of the same name in the namespace, or are added to them.
    #[serde(default)]
    #[schema(value_type = Vec<Object>, max_items = 1000)]
    pub candidates: Vec<Value>,
    /// Request log lines to replay (`meshward.request {json}` lines, with or
    /// without Envoy's and Istio's prefixes; other lines are counted and
    /// skipped). Absent: the namespace's sidecar logs are read.
    #[serde(default)]
    #[schema(max_items = 100000)]
    pub lines: Option<Vec<String>>,
    /// Without `lines`: read the sidecar log lines written this many seconds
    /// ago or later; absent = 3600.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86400, example = 3600)]
    pub since_seconds: Option<u64>,
}

/// One pod's sidecar log, as read.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRead {
    /// The pod.
    pub pod: String,
    /// Bytes read.
    pub bytes: u64,
    /// The log reached the per-pod limit (`limitBytes`): later lines were not read.
    pub truncated: bool,
}

/// A pod whose sidecar log could not be read.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PodFailed {
    /// The pod.
    pub pod: String,
    /// Why, as the API server said.
    pub error: String,
}

/// What was read of the namespace's sidecar logs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogsRead {
    /// Pods whose `istio-proxy` log was read, by name.
    pub pods: Vec<PodRead>,
    /// Pods without an `istio-proxy` container: not read.
    pub without_sidecar: Vec<String>,
    /// Pods whose log could not be read.
    pub failed: Vec<PodFailed>,
    /// Pods over the limit of pods read per call: not read.
    pub not_read: Vec<String>,
}

impl From<&SidecarLogs> for LogsRead {
    fn from(l: &SidecarLogs) -> Self {
        Self {
            pods: l
                .pods
                .iter()
                .map(|p| PodRead {
                    pod: p.pod.clone(),
                    bytes: p.bytes,
                    truncated: p.truncated,
                })
                .collect(),
            without_sidecar: l.without_sidecar.clone(),
            failed: l
                .failed
                .iter()
                .map(|f| PodFailed {
                    pod: f.pod.clone(),
                    error: f.error.clone(),
                })
                .collect(),
            not_read: l.not_read.clone(),
        }
    }
}

/// The lines read.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinesRead {
    /// Lines read.
    pub lines: u64,
    /// Request log lines among them.
    pub records: u64,
    /// Lines without the `meshward.request` marker.
    pub skipped: u64,
    /// Lines with the marker that could not be read, as `pod/NAME:LINE: message`
    /// (`lines:N` for posted lines).
    pub bad: Vec<String>,
    /// Request lines of another namespace: not used.
    pub other_namespace: u64,
}

impl LinesRead {
    fn new(stats: &LogStats, other_namespace: u64) -> Self {
        Self {
            lines: stats.lines,
            records: stats.records,
            skipped: stats.skipped,
            bad: stats
                .bad
                .iter()
                .map(|b| format!("{}: {}", stats.place(&b.at), b.message))
                .collect(),
            other_namespace,
        }
    }
}

/// Request lines not learned from, by why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotLearnedCounts {
    /// `deny` or `reject` lines (traffic that did not reach the workload).
    pub refused: u64,
    /// Lines without `workload` or `namespace`.
    pub unattributed: u64,
    /// Lines whose path is not absolute.
    pub not_a_path: u64,
}

/// A (caller, method, path template) `minCount` dropped, or that is no
/// operation of its workload's API descriptions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DroppedTraffic {
    /// `namespace/workload`.
    pub workload: String,
    /// The caller's principal, or `anonymous`.
    pub caller: String,
    /// The method.
    pub method: String,
    /// The path template.
    pub path: String,
    /// How often it was seen.
    pub count: u64,
}

/// Lines of a workload the cluster does not have.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkloadLines {
    /// `namespace/workload`.
    pub workload: String,
    /// Its request lines.
    pub lines: u64,
}

/// The reply of `POST /v1/namespaces/{ns}/learn`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LearnResponse {
    /// The namespace.
    pub namespace: String,
    /// The proposed Allowlists (`meshward.io/v1alpha1`), one per workload
    /// that received traffic, sorted by name: what `meshward-control learn`
    /// proposes from the same lines.
    #[schema(value_type = Vec<Object>)]
    pub allowlists: Vec<Allowlist>,
    /// What was read of the sidecar logs.
    pub logs: LogsRead,
    /// The lines read.
    pub lines: LinesRead,
    /// Request lines learned from.
    pub learned: u64,
    /// Request lines not learned from, by why.
    pub not_learned: NotLearnedCounts,
    /// What `minCount` dropped.
    pub dropped: Vec<DroppedTraffic>,
    /// Calls to workloads with API descriptions (the annotation
    /// `meshward.io/api-description`) that are no operation of them: the
    /// proposal admits them by path. Sorted.
    pub undocumented: Vec<DroppedTraffic>,
    /// API descriptions named by an annotation that cannot be used
    /// (`namespace/workload: source annotation: why`); their workloads are
    /// learned by path.
    pub api_warnings: Vec<String>,
    /// Workloads of the lines the cluster does not have: no Allowlist
    /// proposed for them.
    pub unknown_workloads: Vec<WorkloadLines>,
    /// The rules of anonymous callers (no peer certificate), as
    /// `namespace/allowlist/rule`: review them.
    pub anonymous_rules: Vec<String>,
}

/// A candidate's Ready condition, as its status would say it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CandidateReady {
    /// Its name.
    pub name: String,
    /// Part of the namespace's configuration.
    pub ready: bool,
    /// The condition's reason (`Derived`, `NamespaceNotEnabled`, ...).
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

/// The reply of `POST /v1/namespaces/{ns}/replay`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayResponse {
    /// The namespace.
    pub namespace: String,
    /// The namespace is enabled (labelled `meshward.io/enforcement`); when it
    /// is not, no policy applies and every request is admitted.
    pub enabled: bool,
    /// The candidates, with their Ready condition.
    pub candidates: Vec<CandidateReady>,
    /// What was read of the sidecar logs; absent when lines were posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogsRead>,
    /// The lines read.
    pub lines: LinesRead,
    /// The report of `meshward-control replay -o json`: `replayed`,
    /// `admitted`, `denied` (requests that reached the workload when recorded
    /// and would now be denied), `stillRefused`, `denials`, `refused`,
    /// `newlyDenied`, `newlyAllowed` (groups of workload, caller, method,
    /// path template, verdict, count), `rules` (hits per rule) and more
    /// (docs/cli.md#replay).
    #[schema(value_type = Object)]
    pub report: Report,
}

/// `sinceSeconds`, checked.
fn since(value: Option<u64>) -> Result<u64, ApiError> {
    match value.unwrap_or(DEFAULT_SINCE_SECONDS) {
        s @ 1..=MAX_SINCE_SECONDS => Ok(s),
        s => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("sinceSeconds: {s} is not between 1 and {MAX_SINCE_SECONDS}"),
        )),
    }
}

/// A slot among the [`MAX_IN_FLIGHT`] calls, or 429.
fn slot(shared: &Shared) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    shared.analyses.clone().try_acquire_owned().map_err(|_| {
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "a learn or replay call is already running; retry".into(),
        )
    })
}

/// The namespace's sidecar logs, read with the service's credentials.
async fn sidecar_logs(shared: &Shared, ns: &str, since_seconds: u64) -> Result<SidecarLogs, ApiError> {
    let limits = Limits {
        since_seconds,
        ..SERVE_LIMITS
    };
    podlogs::fetch(&shared.client, ns, &limits).await.map_err(|e| {
        tracing::warn!(namespace = ns, error = %e, "listing pods for their logs failed");
        ApiError(
            StatusCode::BAD_GATEWAY,
            format!("the pods of namespace {ns} could not be listed"),
        )
    })
}

fn internal(e: tokio::task::JoinError) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("the call failed: {e}"))
}

/// `POST /v1/namespaces/{ns}/learn`: Allowlists proposed from the namespace's
/// sidecar logs.
#[utoipa::path(
    post,
    path = "/v1/namespaces/{ns}/learn",
    tag = "v1",
    security(("kubernetesToken" = [])),
    params(("ns" = String, Path, description = "The namespace.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63, example = "shop")),
    request_body(content = LearnRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The proposal, from the `istio-proxy` logs of the namespace's pods of the last \
            `sinceSeconds` (1 MiB of each, at most 32 pods) and the live cluster state; pods whose log could not be \
            read are listed in `logs.failed`. Needs `get` on Allowlists and on `pods/log` in the namespace.", body = LearnResponse),
        (status = 400, description = "The namespace is not a Kubernetes name, or the body is not a valid request \
            (not JSON, an unknown field, `sinceSeconds` not in 1..86400, `minCount` 0).", body = ErrorBody),
        (status = 401, description = "No bearer token, or one not authenticated for the service's audience.", body = ErrorBody),
        (status = 403, description = "The caller may not `get` Allowlists or `pods/log` in the namespace.", body = ErrorBody),
        (status = 413, description = "The body is over 8 MiB.", body = ErrorBody),
        (status = 429, description = "A learn or replay call is already running; retry.", body = ErrorBody),
        (status = 500, description = "The call failed (a defect; the service's log has it).", body = ErrorBody),
        (status = 502, description = "The TokenReview or SubjectAccessReview could not be made, or the namespace's pods could not be listed.", body = ErrorBody),
        (status = 503, description = "Not synced with the cluster yet.", body = ErrorBody),
    )
)]
pub(super) async fn learn(
    State(shared): State<Arc<Shared>>,
    ns: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<LearnResponse>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    let Path(ns) = ns.map_err(path_error)?;
    namespace_name(&ns)?;
    shared.authorizer.authorize(&user, Access::read(&ns)).await?;
    shared.authorizer.authorize(&user, Access::read_logs(&ns)).await?;
    let req: LearnRequest = json_body(&headers, body, MAX_BODY_BYTES).await?;
    let since_seconds = since(req.since_seconds)?;
    let min_count = match req.min_count.unwrap_or(1) {
        0 => return Err(ApiError(StatusCode::BAD_REQUEST, "minCount: must be at least 1".into())),
        n => n,
    };
    let options = Options {
        mode: req.mode.unwrap_or(AllowlistMode::Audit),
        min_count,
        include_denied: req.include_denied.unwrap_or(false),
        ..Options::default()
    };
    ensure_ready(&shared)?;
    let permit = slot(&shared)?;
    let logs = sidecar_logs(&shared, &ns, since_seconds).await?;
    let worker = shared.clone();
    let namespace = ns.clone();
    let (learned, logs) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // The API descriptions of the namespace's workloads (shared, parsed
        // ConfigMaps), taken before the lines are read.
        let apis = worker.read_state(|state| Apis::of(state, Some(&namespace)));
        let observed: Observed = match incluster::observe(&namespace, options, apis, |each| {
            Ok::<_, std::convert::Infallible>(logs.read(each))
        }) {
            Ok(o) => o,
            Err(never) => match never {},
        };
        // The state is read (locked) only for the proposal itself.
        let learned = worker.read_state(|state| observed.finish(state));
        (learned, LogsRead::from(&logs))
    })
    .await
    .map_err(internal)?;
    let p = learned.proposal;
    tracing::info!(namespace = %ns, proposed = p.allowlists.len(), lines = learned.stats.lines, "learned");
    Ok(Json(LearnResponse {
        namespace: ns,
        allowlists: p.allowlists,
        logs,
        lines: LinesRead::new(&learned.stats, learned.other_namespace),
        learned: learned.learned,
        not_learned: NotLearnedCounts {
            refused: learned.not_learned.refused,
            unattributed: learned.not_learned.unattributed,
            not_a_path: learned.not_learned.not_a_path,
        },
        dropped: p
            .dropped
            .into_iter()
            .map(|d| DroppedTraffic {
                workload: d.workload,
                caller: d.caller,
                method: d.method,
                path: d.path,
                count: d.count,
            })
            .collect(),
        undocumented: p
            .undocumented
            .into_iter()
            .map(|d| DroppedTraffic {
                workload: d.workload,
                caller: d.caller,
                method: d.method,
                path: d.path,
                count: d.count,
            })
            .collect(),
        api_warnings: p.api_warnings,
        unknown_workloads: p
            .unknown_workloads
            .into_iter()
            .map(|(workload, lines)| WorkloadLines { workload, lines })
            .collect(),
        anonymous_rules: p.anonymous_rules,
    }))
}

/// `POST /v1/namespaces/{ns}/replay`: posted lines, or the namespace's
/// sidecar logs, judged by the policies derived from the live state with the
/// candidates in place of the Allowlists of their names.
#[utoipa::path(
    post,
    path = "/v1/namespaces/{ns}/replay",
    tag = "v1",
    security(("kubernetesToken" = [])),
    params(("ns" = String, Path, description = "The namespace.", pattern = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length = 63, example = "shop")),
    request_body(content = ReplayRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The replay report. Only request lines of the namespace are judged. Needs `get` \
            on Allowlists in the namespace and, when no `lines` are posted (the sidecar logs are read: 1 MiB of each \
            pod's, at most 32 pods), `get` on `pods/log` there too.", body = ReplayResponse),
        (status = 400, description = "The namespace is not a Kubernetes name, or the body is not a valid request \
            (not JSON, an unknown field, both `lines` and `sinceSeconds`, `sinceSeconds` not in 1..86400, over \
            100000 lines or 1000 candidates), or a candidate is refused (not an Allowlist of the namespace, a \
            name given twice, a rule the engine refuses: it would not be enforced as written).", body = ErrorBody),
        (status = 401, description = "No bearer token, or one not authenticated for the service's audience.", body = ErrorBody),
        (status = 403, description = "The caller may not `get` Allowlists (or, to read logs, `pods/log`) in the namespace.", body = ErrorBody),
        (status = 413, description = "The body is over 8 MiB.", body = ErrorBody),
        (status = 429, description = "A learn or replay call is already running; retry.", body = ErrorBody),
        (status = 500, description = "The call failed (a defect; the service's log has it).", body = ErrorBody),
        (status = 502, description = "The TokenReview or SubjectAccessReview could not be made, or the namespace's pods could not be listed.", body = ErrorBody),
        (status = 503, description = "Not synced with the cluster yet.", body = ErrorBody),
    )
)]
pub(super) async fn replay(
    State(shared): State<Arc<Shared>>,
    ns: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReplayResponse>, ApiError> {
    let user = shared.authorizer.authenticate(authorization(&headers)).await?;
    let Path(ns) = ns.map_err(path_error)?;
    namespace_name(&ns)?;
    shared.authorizer.authorize(&user, Access::read(&ns)).await?;
    let req: ReplayRequest = json_body(&headers, body, MAX_BODY_BYTES).await?;
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    if req.lines.is_some() && req.since_seconds.is_some() {
        return Err(bad("give lines or sinceSeconds, not both".into()));
    }
    if req.lines.as_ref().is_some_and(|l| l.len() > MAX_LINES) {
        return Err(bad(format!("lines: more than {MAX_LINES}")));
    }
    if req.candidates.len() > MAX_CANDIDATES {
        return Err(bad(format!("candidates: more than {MAX_CANDIDATES}")));
    }
    let since_seconds = since(req.since_seconds)?;
    if req.lines.is_none() {
        shared.authorizer.authorize(&user, Access::read_logs(&ns)).await?;
    }
    ensure_ready(&shared)?;
    let permit = slot(&shared)?;
    let logs = match req.lines {
        Some(_) => None,
        None => Some(sidecar_logs(&shared, &ns, since_seconds).await?),
    };
    let worker = shared.clone();
    let namespace = ns.clone();
    let (lines, candidates) = (req.lines, req.candidates);
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let settings = worker.config.settings.clone();
        // A copy of what deriving the namespace reads (the watchers go on
        // changing the live state), with the candidates in it.
        let refs = incluster::candidate_references(&candidates);
        let mut state = worker.read_state(|s| s.excerpt(&namespace, refs.iter().map(String::as_str)));
        let enabled = state.namespace(&namespace).and_then(|n| n.enforcement()).is_some();
        let statuses = incluster::apply_candidates(&mut state, &namespace, &candidates, &settings)?;
        let read = |each: &mut dyn FnMut(_, _)| {
            Ok::<_, std::convert::Infallible>(match (&lines, &logs) {
                (Some(lines), _) => incluster::read_lines(lines, each),
                (None, Some(logs)) => logs.read(each),
                (None, None) => LogStats::default(),
            })
        };
        let replayed = match incluster::replay(&state, &namespace, settings, read) {
            Ok(r) => r,
            Err(never) => match never {},
        };
        Ok::<_, incluster::CandidateError>((enabled, statuses, replayed, logs.as_ref().map(LogsRead::from)))
    })
    .await
    .map_err(internal)?;
    let (enabled, statuses, replayed, logs) = outcome.map_err(|e| bad(e.to_string()))?;
    tracing::info!(namespace = %ns, replayed = replayed.report.replayed, denied = replayed.report.denied, "replayed");
    Ok(Json(ReplayResponse {
        namespace: ns,
        enabled,
        candidates: statuses
            .into_iter()
            .map(|s| CandidateReady {
                name: s.name,
                ready: s.ready,
                reason: s.reason,
                message: s.message,
            })
            .collect(),
        logs,
        lines: LinesRead::new(&replayed.stats, replayed.other_namespace),
        report: replayed.report,
    }))
}

use super::api::ErrorBody;
