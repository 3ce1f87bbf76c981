//! The filter's behaviour, independent of proxy-wasm.
//!
//! Everything the Envoy filter decides lives here and talks to the proxy only
//! through the [`Host`] trait, so it is tested natively with a fake host. The
//! proxy-wasm glue (built for wasm only) implements [`Host`] with hostcalls
//! and forwards the SDK's callbacks to [`Plugin`] and [`RequestContext`].
//!
//! ```text
//!   on_configure ──▶ Plugin::configure(host, json) ── ok ──▶ Active(Evaluator)
//!                                                   └ err ─▶ log error, keep the previous
//!                                                            configuration (none: fail closed)
//!   on_http_request_headers ──▶ RequestContext::on_request_headers(host)
//!        read :method :path :authority, peer URI SAN, destination port
//!        ──▶ Evaluator::evaluate ──▶ allow (rewrite :path if needed) | deny 403 | reject 400
//!        ──▶ counter meshward_requests_total{meshward_verdict, ...}
//!        ──▶ filter state meshward.verdict / .policy / .rule (if a policy applies)
//! ```
//!
//! The parts: `host` is the seam (the [`Host`] trait and its errors);
//! `lifecycle` the configuration's (parse, compile, select, swap; the last
//! good configuration stays); `request` the request path (read, evaluate,
//! record, respond); `telemetry` what the filter reports (counters, filter
//! state, the request log line, the VM's memory).

mod host;
mod lifecycle;
mod request;
mod telemetry;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use host::{GrpcStatus, Host, HostError, Level};
pub use lifecycle::{Plugin, Workload};
pub use request::{Action, RequestContext};
pub use telemetry::{
    rfc3339, tag_value, RequestLabels, MAX_LOG_FIELD, MAX_REQUEST_SERIES, METRIC_CONFIG_ACCEPTED,
    METRIC_CONFIG_REJECTED, METRIC_REQUESTS, REQUEST_TAGS, STATE_POLICY, STATE_RULE, STATE_VERDICT, TAG_MODE,
    TAG_NAMESPACE, TAG_POLICY, TAG_RULE, TAG_VERDICT, TAG_WORKLOAD,
};
