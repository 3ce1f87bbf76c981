//! What the filter reports about itself: counters, filter state, the request
//! log line, and the VM's memory.
//!
//! Every decision is counted once, under a counter whose name carries its
//! labels ([`RequestLabels`]) in the form Istio's `extraStatTags` extract;
//! the number of such counters a VM defines is bounded by
//! [`MAX_REQUEST_SERIES`]. It leaves filter state for access logs and Istio's
//! telemetry (`STATE_*`, as much as the configuration asks for) on every
//! request some policy applies to, and, if the configuration logs it, one
//! JSON log line written when the response is known, its fields capped at
//! [`MAX_LOG_FIELD`] bytes and never carrying credentials. Configure counts
//! accepted and rejected configurations. The VM's memory is logged whenever it
//! grows while requests are served.

use std::cell::Cell;
use std::collections::HashMap;

use super::host::{warn, Host, Level};
use super::Workload;
use crate::config::{FilterState, Mode};
use crate::engine::Verdict;

/// Filter-state keys (`%FILTER_STATE(wasm.meshward.verdict:PLAIN)%`, and
/// `filter_state['wasm.meshward.verdict']` in CEL): the verdict.
pub const STATE_VERDICT: &str = "meshward.verdict";
/// The policy that decided: the admitting rule's policy; for any other
/// verdict the one applicable policy (`*` if several apply).
pub const STATE_POLICY: &str = "meshward.policy";
/// The rule that admitted the request, or `-`.
pub const STATE_RULE: &str = "meshward.rule";

/// Most distinct request counters a VM defines; further combinations of
/// verdict, policy and rule are counted under `_other`.
pub const MAX_REQUEST_SERIES: usize = 1_000;
/// Longest value of a log-line field, in bytes; longer values are cut.
pub const MAX_LOG_FIELD: usize = 256;

/// The request counter, as Prometheus names it once its tags are extracted
/// (Envoy drops the `wasmcustom.` prefix of wasm metrics and adds nothing).
pub const METRIC_REQUESTS: &str = "meshward_requests_total";
/// The counter of accepted configurations.
pub const METRIC_CONFIG_ACCEPTED: &str = "meshward_config_accepted_total";
/// The counter of rejected configurations.
pub const METRIC_CONFIG_REJECTED: &str = "meshward_config_rejected_total";

/// Tag of the request counter: the proxy's namespace (node metadata
/// `NAMESPACE`, `-` if absent).
pub const TAG_NAMESPACE: &str = "meshward_namespace";
/// Tag: the proxy's workload (node metadata `WORKLOAD_NAME`, `-` if absent).
pub const TAG_WORKLOAD: &str = "meshward_workload";
/// Tag: the mode of the decision, `enforce` or `audit`.
pub const TAG_MODE: &str = "meshward_mode";
/// Tag: the verdict, `allow`, `deny`, `audit_deny` or `reject`.
pub const TAG_VERDICT: &str = "meshward_verdict";
/// Tag: the deciding policy, as in [`STATE_POLICY`] (`-` when no policy
/// applies).
pub const TAG_POLICY: &str = "meshward_policy";
/// Tag: the admitting rule, as in [`STATE_RULE`].
pub const TAG_RULE: &str = "meshward_rule";
/// Every tag of the request counter, in the order its name carries them:
/// the list for `meshConfig.defaultConfig.extraStatTags`.
pub const REQUEST_TAGS: [&str; 6] = [TAG_NAMESPACE, TAG_WORKLOAD, TAG_MODE, TAG_VERDICT, TAG_POLICY, TAG_RULE];

/// The labels of one request counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLabels<'a> {
    /// The proxy's namespace.
    pub namespace: &'a str,
    /// The proxy's workload.
    pub workload: &'a str,
    /// `enforce` or `audit`.
    pub mode: &'a str,
    /// The verdict.
    pub verdict: &'a str,
    /// The deciding policy.
    pub policy: &'a str,
    /// The admitting rule.
    pub rule: &'a str,
}

impl RequestLabels<'_> {
    /// The counter's name, every tag written `<tag>=.=<value>;.;` before the
    /// base name, the form Istio generates tag extractors for from
    /// `extraStatTags` (regex `(<tag>=\.=(.*?);\.;)`):
    /// `meshward_namespace=.=shop;.;meshward_workload=.=reviews;.;meshward_mode=.=enforce;.;`
    /// `meshward_verdict=.=deny;.;meshward_policy=.=shop/reviews;.;meshward_rule=.=-;.;meshward_requests_total`.
    ///
    /// Values are [`tag_value`]s, so none can end a tag early or forge one.
    pub fn counter_name(&self) -> String {
        let values = [
            self.namespace,
            self.workload,
            self.mode,
            self.verdict,
            self.policy,
            self.rule,
        ];
        let mut name = String::with_capacity(160);
        for (tag, value) in REQUEST_TAGS.iter().zip(values) {
            name.push_str(tag);
            name.push_str("=.=");
            name.push_str(&tag_value(value));
            name.push_str(";.;");
        }
        name.push_str(METRIC_REQUESTS);
        name
    }
}

/// A label value as a counter name carries it: the characters policy and
/// rule names may hold (ASCII letters, digits, `.`, `_`, `-`, `/`, `:`) pass,
/// any other becomes `_`, and an empty value is `-`. Node metadata is the
/// only source that could hold others.
pub fn tag_value(value: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':');
    if value.is_empty() {
        "-".into()
    } else if value.chars().all(allowed) {
        value.into()
    } else {
        value
            .chars()
            .map(|c| if allowed(c) { c } else { '_' })
            .collect::<String>()
            .into()
    }
}

/// Counter ids defined in this VM, by name. They outlive configurations:
/// Envoy keeps a counter's value across reloads.
#[derive(Debug, Default)]
pub(super) struct Counters {
    ids: HashMap<String, u32>,
    /// Request counters defined so far.
    requests: usize,
}

impl Counters {
    fn id(&mut self, host: &dyn Host, name: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        match host.define_counter(name) {
            Ok(id) => {
                self.ids.insert(name.to_string(), id);
                Some(id)
            }
            Err(e) => {
                warn(host, &e);
                None
            }
        }
    }

    /// Defines counter `name` (at 0) if it is not yet.
    pub(super) fn define(&mut self, host: &dyn Host, name: &str) {
        let _ = self.id(host, name);
    }

    /// Adds one to counter `name`, defining it on first use.
    pub(super) fn increment(&mut self, host: &dyn Host, name: &str) {
        if let Some(id) = self.id(host, name) {
            add_one(host, id);
        }
    }

    /// The id of the request counter for one decision of `workload`,
    /// defined on first use; past [`MAX_REQUEST_SERIES`] distinct request
    /// counters, new combinations share the `_other` policy and rule.
    pub(super) fn request_series(
        &mut self,
        host: &dyn Host,
        workload: &Workload,
        (mode, verdict): (Mode, Verdict),
        policy: &str,
        rule: &str,
    ) -> Option<u32> {
        let (policy, rule) = if self.requests >= MAX_REQUEST_SERIES {
            ("_other", "_other")
        } else {
            (policy, rule)
        };
        let name = RequestLabels {
            namespace: workload.namespace.as_deref().unwrap_or("-"),
            workload: workload.name.as_deref().unwrap_or("-"),
            mode: mode.as_str(),
            verdict: verdict.as_str(),
            policy,
            rule,
        }
        .counter_name();
        let known = self.ids.contains_key(&name);
        let id = self.id(host, &name);
        if !known && id.is_some() {
            self.requests += 1;
        }
        id
    }
}

/// Adds one to counter `id`; a failure is logged, not fatal.
pub(super) fn add_one(host: &dyn Host, id: u32) {
    if let Err(e) = host.increment_counter(id) {
        warn(host, &e);
    }
}

/// Leaves the decision in filter state, as many entries as `setting` asks for.
pub(super) fn write_filter_state(
    host: &mut dyn Host,
    setting: FilterState,
    verdict: Verdict,
    policy: &str,
    rule: &str,
) {
    let state = [
        (STATE_VERDICT, verdict.as_str()),
        (STATE_POLICY, policy),
        (STATE_RULE, rule),
    ];
    let written = match setting {
        FilterState::All => state.len(),
        FilterState::Verdict => 1,
        FilterState::Off => 0,
    };
    for (key, value) in state.into_iter().take(written) {
        if let Err(e) = host.set_filter_state(key, value.as_bytes()) {
            warn(host, &e);
        }
    }
}

/// What the request log line says about one request (all but the response).
/// Fields that come from the request are [`capped`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogRecord {
    pub(super) started: u64,
    pub(super) request_id: String,
    pub(super) method: String,
    pub(super) authority: String,
    pub(super) path: String,
    pub(super) principal: Option<String>,
    /// The port the proxy received the request on, if the proxy said.
    pub(super) port: Option<u16>,
    /// Whether the request is gRPC (its `content-type`).
    pub(super) grpc: bool,
    pub(super) policy: String,
    pub(super) rule: String,
    pub(super) verdict: Verdict,
    pub(super) mode: Mode,
}

impl LogRecord {
    /// Writes the line (`meshward.request {json}`), now that the response
    /// status is known (`None`: the proxy did not say).
    pub(super) fn write(self, host: &dyn Host, workload: &Workload, status: Option<u64>) {
        let now = host.now_nanos();
        let line = serde_json::json!({
            "time": rfc3339(now),
            "requestId": self.request_id,
            "method": self.method,
            "authority": self.authority,
            "path": self.path,
            "principal": self.principal,
            "port": self.port,
            "grpc": self.grpc,
            "workload": workload.name,
            "namespace": workload.namespace,
            "policy": self.policy,
            "rule": self.rule,
            "verdict": self.verdict.as_str(),
            "mode": self.mode.as_str(),
            "status": status,
            "durationMs": now.saturating_sub(self.started) as f64 / 1e6,
        });
        host.log(Level::Info, &format!("meshward.request {line}"));
    }
}

/// Cuts a value to [`MAX_LOG_FIELD`] bytes at a character boundary.
pub(super) fn capped(value: &str) -> String {
    if value.len() <= MAX_LOG_FIELD {
        return value.to_string();
    }
    let mut end = MAX_LOG_FIELD;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default().to_string()
}

/// `2026-11-22T07:45:01.123Z` from nanoseconds since the epoch.
pub fn rfc3339(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let millis = (nanos / 1_000_000) % 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `bytes` in MiB, for log lines.
pub(super) fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

/// The VM's memory last reported (configure's accept line reports it). It can
/// grow while requests are served too, mostly with lazy DFA states, up to the
/// caches' bound: each growth is logged once, so the memory a VM really holds
/// shows in the proxy's log and not only the figure after configure. Shared by
/// a root context and its requests.
#[derive(Debug, Default)]
pub(super) struct MemoryWatch(Cell<usize>);

impl MemoryWatch {
    /// Records `bytes` (if known) as reported, without a log line.
    pub(super) fn reported(&self, bytes: Option<usize>) {
        if let Some(bytes) = bytes {
            self.0.set(self.0.get().max(bytes));
        }
    }

    /// Logs the VM's memory if it grew since last reported.
    pub(super) fn check(&self, host: &dyn Host) {
        match host.vm_memory() {
            Some(bytes) if bytes > self.0.get() => {
                self.0.set(bytes);
                host.log(
                    Level::Info,
                    &format!(
                        "meshward: VM memory grew to {:.1} MiB while serving requests",
                        mib(bytes)
                    ),
                );
            }
            _ => {}
        }
    }
}
