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
//!        ──▶ filter state meshward.verdict / .policy / .rule
//! ```

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::canonical::{principal_from_uri_san, RequestError};
use crate::config::{FilterState, LogConfig, Mode, PluginConfig, RequestLog};
use crate::engine::{Decision, Engine, Evaluator, Reason, Request, Verdict};
use crate::error::ConfigError;
use crate::headermap::{HeaderMap, Utf8Headers};

/// Log levels the host understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Verbose detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something is wrong but the filter keeps working.
    Warn,
    /// An operation failed.
    Error,
    /// The filter cannot work.
    Critical,
}

/// A host call failed; the message names the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host call {call} failed: {status}")]
pub struct HostError {
    /// The host call.
    pub call: &'static str,
    /// The status the host returned.
    pub status: String,
}

/// What the filter needs from the proxy. Implemented with proxy-wasm
/// hostcalls in the wasm build and by a fake in tests.
pub trait Host {
    /// A property (`["xds","node","metadata","NAMESPACE"]`, ...); `None` if
    /// absent or empty.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Every request header as received, one entry per field line, in the
    /// proxy's serialized form (empty if it cannot be read).
    fn request_headers(&self) -> HeaderMap;
    /// Replaces a request header (used for `:path`).
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Answers the request locally; the upstream is never contacted.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError>;
    /// Sets filter state readable by access logs as `%FILTER_STATE(wasm.<key>:PLAIN)%`.
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Writes a log line at `level`.
    fn log(&self, level: Level, message: &str);
    /// Wall-clock time in nanoseconds since the Unix epoch (0 if unknown).
    fn now_nanos(&self) -> u64;
    /// Defines (or finds) a counter; ids are valid for the VM's lifetime.
    fn define_counter(&self, name: &str) -> Result<u32, HostError>;
    /// Adds one to a counter.
    fn increment_counter(&self, id: u32) -> Result<(), HostError>;
    /// The VM's linear memory in bytes, if known. It grows to the peak of
    /// what was ever allocated and never shrinks: it is the memory the VM
    /// holds.
    fn vm_memory(&self) -> Option<usize>;
}

/// `bytes` in MiB, for log lines.
fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

/// The VM's memory last reported (configure's accept line reports it). It can
/// grow while requests are served too, mostly with lazy DFA states, up to the
/// caches' bound: each growth is logged once, so the memory a VM really holds
/// shows in the proxy's log and not only the figure after configure. Shared by
/// a root context and its requests.
#[derive(Debug, Default)]
struct MemoryWatch(Cell<usize>);

impl MemoryWatch {
    /// Records `bytes` (if known) as reported, without a log line.
    fn reported(&self, bytes: Option<usize>) {
        if let Some(bytes) = bytes {
            self.0.set(self.0.get().max(bytes));
        }
    }

    /// Logs the VM's memory if it grew since last reported.
    fn check(&self, host: &dyn Host) {
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

/// What the proxy should do with the request after the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward the request.
    Continue,
    /// Stop: a local response was sent.
    Pause,
}

/// Filter-state keys (`%FILTER_STATE(wasm.meshward.verdict:PLAIN)%`).
pub const STATE_VERDICT: &str = "meshward.verdict";
/// The policy that decided: the admitting rule's policy; for any other
/// verdict the one applicable policy (`*` if several apply, `-` if none).
pub const STATE_POLICY: &str = "meshward.policy";
/// The rule that admitted the request, or `-`.
pub const STATE_RULE: &str = "meshward.rule";

/// The workload this proxy serves, from Istio's node metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    /// `NAMESPACE`.
    pub namespace: Option<String>,
    /// `WORKLOAD_NAME`.
    pub name: Option<String>,
}

/// Most distinct request counters a VM defines; further combinations of
/// verdict, policy and rule are counted under `_other`.
pub const MAX_REQUEST_SERIES: usize = 1_000;
/// Longest value of a log-line field, in bytes; longer values are cut.
pub const MAX_LOG_FIELD: usize = 256;

/// The counter of accepted configurations.
pub const METRIC_CONFIG_ACCEPTED: &str = "meshward.config.accepted";
/// The counter of rejected configurations.
pub const METRIC_CONFIG_REJECTED: &str = "meshward.config.rejected";

/// The name of a request counter, built for Envoy `stats_tags` extraction:
/// `meshward.requests.verdict=<verdict>.policy=.=<policy>;.;.rule=.=<rule>;.;`.
/// Policy and rule names may contain dots, so they are delimited the way
/// Istio delimits its own tag values.
pub fn request_counter_name(verdict: &str, policy: &str, rule: &str) -> String {
    format!("meshward.requests.verdict={verdict}.policy=.={policy};.;.rule=.={rule};.;")
}

/// Counter ids defined in this VM, by name. They outlive configurations:
/// Envoy keeps a counter's value across reloads.
#[derive(Debug, Default)]
struct Counters {
    ids: HashMap<String, u32>,
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
                host.log(Level::Warn, &format!("meshward: {e}"));
                None
            }
        }
    }

    fn increment(&mut self, host: &dyn Host, name: &str) {
        if let Some(id) = self.id(host, name) {
            if let Err(e) = host.increment_counter(id) {
                host.log(Level::Warn, &format!("meshward: {e}"));
            }
        }
    }
}

/// A configuration in force, shared by the request contexts.
#[derive(Debug)]
struct Active {
    evaluator: RefCell<Evaluator>,
    /// (verdict, rule index or `u32::MAX`) → counter id, filled on first use.
    counters: RefCell<FxHashMap<(Verdict, u32), u32>>,
    /// The `policy` label of decisions no single rule made: the applicable
    /// enforce (or, with none, audit) policy if there is exactly one, `*` if
    /// several, `-` if none.
    decided_by: String,
    workload: Workload,
    log: LogConfig,
}

/// The root context's state: the active configuration, if any.
#[derive(Debug, Default)]
pub struct Plugin {
    active: Option<Rc<Active>>,
    counters: Rc<RefCell<Counters>>,
    memory: Rc<MemoryWatch>,
}

const NODE_METADATA: [&str; 3] = ["xds", "node", "metadata"];

fn utf8(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.and_then(|b| String::from_utf8(b).ok())
}

impl Plugin {
    /// Compiles `json` and resolves which policies apply to this proxy's
    /// workload (labels from node metadata). On error the previous
    /// configuration stays in force and the error is returned, for the glue
    /// to log and report to Envoy. Either way a config counter is incremented.
    pub fn configure(&mut self, host: &dyn Host, json: Vec<u8>) -> Result<(), ConfigError> {
        let result = self.compile(host, json);
        let metric = if result.is_ok() {
            METRIC_CONFIG_ACCEPTED
        } else {
            METRIC_CONFIG_REJECTED
        };
        self.counters.borrow_mut().increment(host, metric);
        self.memory.reported(host.vm_memory());
        result
    }

    fn compile(&mut self, host: &dyn Host, json: Vec<u8>) -> Result<(), ConfigError> {
        let started = host.now_nanos();
        let size = json.len();
        let config = PluginConfig::from_json(&json)?;
        // The text is not needed past parsing, and the VM's memory never
        // shrinks below its peak: at 10,000 rules it is 0.7 MB of that peak.
        drop(json);
        let engine = Engine::from_config(config)?;
        let selection = engine
            .select(|key| utf8(host.property(&[NODE_METADATA[0], NODE_METADATA[1], NODE_METADATA[2], "LABELS", key])));
        let workload = Workload {
            namespace: utf8(host.property(&["xds", "node", "metadata", "NAMESPACE"])),
            name: utf8(host.property(&["xds", "node", "metadata", "WORKLOAD_NAME"])),
        };
        let applied: Vec<&str> = engine.selected_policies(&selection).collect();
        host.log(
            Level::Info,
            &format!(
                "meshward: configuration accepted for {}/{}: {} of {} policies apply ({}), mode {}, {} bytes compiled in {:.1} ms{}",
                workload.namespace.as_deref().unwrap_or("-"),
                workload.name.as_deref().unwrap_or("-"),
                applied.len(),
                engine.policy_count(),
                applied.join(", "),
                engine.mode().as_str(),
                size,
                host.now_nanos().saturating_sub(started) as f64 / 1e6,
                host.vm_memory().map_or(String::new(), |b| format!(", VM memory {:.1} MiB", mib(b))),
            ),
        );
        let deciding: Vec<&str> = (0..engine.policy_count() as u32)
            .filter(|&i| selection.applies(i))
            .filter(|&i| selection.enforce_count() == 0 || engine.policy_mode(i) == Mode::Enforce)
            .map(|i| engine.policy_name(i))
            .collect();
        let decided_by = match deciding.as_slice() {
            [] => "-".to_string(),
            [one] => one.to_string(),
            _ => "*".to_string(),
        };
        let log = engine.log_config();
        self.active = Some(Rc::new(Active {
            evaluator: RefCell::new(Evaluator::new(Arc::new(engine), selection)),
            counters: RefCell::new(FxHashMap::default()),
            decided_by,
            workload,
            log,
        }));
        Ok(())
    }

    /// Whether a configuration is in force.
    pub fn is_configured(&self) -> bool {
        self.active.is_some()
    }

    /// A context for one request, sharing the active configuration.
    pub fn request(&self) -> RequestContext {
        RequestContext {
            active: self.active.clone(),
            counters: self.counters.clone(),
            memory: self.memory.clone(),
            pending: None,
        }
    }
}

/// One request's state.
#[derive(Debug)]
pub struct RequestContext {
    active: Option<Rc<Active>>,
    counters: Rc<RefCell<Counters>>,
    memory: Rc<MemoryWatch>,
    /// The log line to write when the response is known.
    pending: Option<LogRecord>,
}

/// What the request log line says about one request (all but the response).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogRecord {
    started: u64,
    request_id: String,
    method: String,
    authority: String,
    path: String,
    principal: Option<String>,
    policy: String,
    rule: String,
    verdict: Verdict,
    mode: Mode,
}

/// Cuts a value to [`MAX_LOG_FIELD`] bytes at a character boundary.
fn capped(value: &str) -> String {
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

impl RequestContext {
    /// Decides the request from its headers and acts on the verdict.
    pub fn on_request_headers(&mut self, host: &mut dyn Host) -> Action {
        let action = self.decide(host);
        self.memory.check(host);
        action
    }

    fn decide(&mut self, host: &mut dyn Host) -> Action {
        let Some(active) = self.active.clone() else {
            // No valid configuration was ever accepted: fail closed.
            host.log(Level::Error, "meshward: no valid configuration; denying");
            return local_reply(host, 500, "", "unconfigured");
        };
        let Ok(mut evaluator) = active.evaluator.try_borrow_mut() else {
            // Re-entrancy is impossible in a single-threaded VM; never allow on it.
            return local_reply(host, 500, "", "internal");
        };
        // Only what the configuration can read is fetched: in V8 every host
        // call costs a boundary crossing, and one that returns data a second
        // one (the host allocates in the VM). The header map is one call for
        // all headers, cheaper than three single reads (measured).
        let needs = evaluator.engine().needs();
        let map = host.request_headers();
        let Utf8Headers {
            valid: headers,
            invalid,
        } = map.utf8();
        let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let san = if needs.principal {
            utf8(host.property(&["connection", "uri_san_peer_certificate"]))
        } else {
            None
        };
        let port = if needs.port {
            host.property(&["destination", "port"])
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .and_then(|b| u16::try_from(u64::from_le_bytes(b)).ok())
        } else {
            None
        };
        let request = Request {
            method: header(":method").unwrap_or(""),
            path: header(":path").unwrap_or(""),
            authority: header(":authority"),
            port,
            principal: san.as_deref().and_then(principal_from_uri_san),
            headers: &headers[..],
        };
        // A header that is not UTF-8 cannot be compared with any pattern.
        // Leaving it out would make it absent, which a `notValues` condition
        // admits, so if a condition reads it the request is rejected. Other
        // headers cannot change the decision; a pseudo-header left out is
        // missing, which canonicalization rejects.
        let decision = if invalid.iter().any(|name| evaluator.engine().reads_header(name)) {
            evaluator.malformed(RequestError::HeaderNotUtf8)
        } else {
            evaluator.evaluate(&request)
        };
        let engine = evaluator.engine().clone();
        drop(evaluator);
        let (policy, rule) = match (decision.matched(), decision.reason) {
            (Some(m), _) => (engine.policy_name(m.policy), engine.rule_name(m)),
            (None, Reason::NoPolicy) => ("-", "-"),
            (None, _) => (active.decided_by.as_str(), "-"),
        };
        self.count(host, &active, &decision, policy, rule);
        let state = [
            (STATE_VERDICT, decision.verdict.as_str()),
            (STATE_POLICY, policy),
            (STATE_RULE, rule),
        ];
        let written = match active.log.filter_state {
            FilterState::All => state.len(),
            FilterState::Verdict => 1,
            FilterState::Off => 0,
        };
        for (key, value) in state.into_iter().take(written) {
            if let Err(e) = host.set_filter_state(key, value.as_bytes()) {
                host.log(Level::Warn, &format!("meshward: {e}"));
            }
        }
        let logged = match active.log.requests {
            RequestLog::All => decision.reason != Reason::NoPolicy,
            RequestLog::Denied => decision.verdict != Verdict::Allow,
            RequestLog::Off => false,
        };
        // The caller, for the log line, if the rules did not need it.
        let request_id = header("x-request-id").unwrap_or("");
        let logged_san = if logged && !needs.principal {
            utf8(host.property(&["connection", "uri_san_peer_certificate"]))
        } else {
            None
        };
        let principal = request
            .principal
            .or_else(|| logged_san.as_deref().and_then(principal_from_uri_san));
        if logged {
            let path = match &decision.path {
                Some(p) if active.log.include_query => p.to_request_target(),
                Some(p) => p.path().to_string(),
                // Malformed: the raw path, without its query.
                None => request.path.split('?').next().unwrap_or_default().to_string(),
            };
            self.pending = Some(LogRecord {
                started: host.now_nanos(),
                request_id: capped(request_id),
                method: capped(request.method),
                authority: capped(request.authority.unwrap_or("")),
                path: capped(&path),
                principal: principal.map(capped),
                policy: policy.to_string(),
                rule: rule.to_string(),
                verdict: decision.verdict,
                mode: decision.mode,
            });
        }
        match decision.verdict {
            Verdict::Allow | Verdict::AuditDeny => {
                // In enforce mode the upstream gets exactly the path judged;
                // audit mode forwards the request untouched.
                if let (Some(path), Mode::Enforce) = (&decision.path, decision.mode) {
                    if path.is_rewritten() {
                        if let Err(e) = host.set_request_header(":path", &path.to_request_target()) {
                            host.log(Level::Error, &format!("meshward: {e}; denying"));
                            return local_reply(host, 500, request_id, "internal");
                        }
                    }
                }
                Action::Continue
            }
            Verdict::Deny => local_reply(host, engine.deny_status(), request_id, "denied"),
            Verdict::Reject => {
                if let Reason::Malformed(e) = decision.reason {
                    host.log(Level::Debug, &format!("meshward: rejected request {request_id}: {e}"));
                }
                local_reply(host, 400, request_id, "rejected")
            }
        }
    }

    /// Counts the decision under (verdict, policy, rule); the counter is
    /// defined on first use, and past [`MAX_REQUEST_SERIES`] distinct counters
    /// new combinations are counted under `_other`.
    fn count(&self, host: &dyn Host, active: &Active, decision: &Decision<'_>, policy: &str, rule: &str) {
        let key = (decision.verdict, decision.matched().map_or(u32::MAX, |m| m.rule));
        let cached = active.counters.borrow().get(&key).copied();
        let id = match cached {
            Some(id) => Some(id),
            None => {
                let mut counters = self.counters.borrow_mut();
                let (policy, rule) = if counters.requests >= MAX_REQUEST_SERIES {
                    ("_other", "_other")
                } else {
                    (policy, rule)
                };
                let name = request_counter_name(decision.verdict.as_str(), policy, rule);
                let known = counters.ids.contains_key(&name);
                let id = counters.id(host, &name);
                if !known && id.is_some() {
                    counters.requests += 1;
                }
                if let Some(id) = id {
                    active.counters.borrow_mut().insert(key, id);
                }
                id
            }
        };
        if let Some(id) = id {
            if let Err(e) = host.increment_counter(id) {
                host.log(Level::Warn, &format!("meshward: {e}"));
            }
        }
    }

    /// Writes the request's log line, now that the response is known.
    pub fn on_log(&mut self, host: &dyn Host) {
        let (Some(record), Some(active)) = (self.pending.take(), self.active.as_ref()) else {
            return;
        };
        let status = host
            .property(&["response", "code"])
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_le_bytes);
        let now = host.now_nanos();
        let line = serde_json::json!({
            "time": rfc3339(now),
            "requestId": record.request_id,
            "method": record.method,
            "authority": record.authority,
            "path": record.path,
            "principal": record.principal,
            "workload": active.workload.name,
            "namespace": active.workload.namespace,
            "policy": record.policy,
            "rule": record.rule,
            "verdict": record.verdict.as_str(),
            "mode": record.mode.as_str(),
            "status": status,
            "durationMs": now.saturating_sub(record.started) as f64 / 1e6,
        });
        host.log(Level::Info, &format!("meshward.request {line}"));
    }
}

/// Answers locally with a short JSON body naming the request and the
/// decision (no rule internals).
fn local_reply(host: &mut dyn Host, status: u16, request_id: &str, decision: &str) -> Action {
    let body = serde_json::json!({ "requestId": request_id, "decision": decision }).to_string();
    if let Err(e) = host.send_response(status, &[("content-type", "application/json")], body.as_bytes()) {
        host.log(Level::Critical, &format!("meshward: {e}"));
    }
    Action::Pause
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A fake proxy: properties and headers in, effects recorded.
    #[derive(Debug, Default)]
    struct FakeHost {
        properties: Vec<(Vec<String>, Vec<u8>)>,
        /// Request headers as bytes (values need not be UTF-8).
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        set_headers: Vec<(String, String)>,
        response: Option<(u16, String)>,
        state: Vec<(String, String)>,
        logs: RefCell<Vec<(Level, String)>>,
        counters: RefCell<Vec<(String, u64)>>,
        now: u64,
        /// Header and property reads, in order.
        calls: RefCell<Vec<String>>,
        memory: Option<usize>,
    }

    impl FakeHost {
        fn new() -> Self {
            Self::default()
        }
        fn with_property(mut self, path: &[&str], value: &[u8]) -> Self {
            self.properties
                .push((path.iter().map(|s| s.to_string()).collect(), value.to_vec()));
            self
        }
        fn with_label(self, key: &str, value: &str) -> Self {
            self.with_property(&["xds", "node", "metadata", "LABELS", key], value.as_bytes())
        }
        fn with_request(mut self, method: &str, path: &str, authority: &str) -> Self {
            self.headers.clear();
            self.with_header(":method", method)
                .with_header(":path", path)
                .with_header(":authority", authority)
                .with_header("x-request-id", "req-1")
        }
        fn with_header(self, name: &str, value: &str) -> Self {
            self.with_raw_header(name, value.as_bytes())
        }
        fn with_raw_header(mut self, name: &str, value: &[u8]) -> Self {
            self.headers.push((name.as_bytes().to_vec(), value.to_vec()));
            self
        }
        fn with_peer(self, san: &str) -> Self {
            self.with_property(&["connection", "uri_san_peer_certificate"], san.as_bytes())
        }
        fn with_port(self, port: u64) -> Self {
            self.with_property(&["destination", "port"], &port.to_le_bytes())
        }
        fn counter(&self, name: &str) -> u64 {
            self.counters
                .borrow()
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| *v)
        }
        fn request_logs(&self) -> Vec<serde_json::Value> {
            self.logs
                .borrow()
                .iter()
                .filter_map(|(_, l)| l.strip_prefix("meshward.request "))
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
        fn state(&self, key: &str) -> Option<&str> {
            self.state.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        }
    }

    impl Host for FakeHost {
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.calls.borrow_mut().push(format!("property {}", path.join(".")));
            self.properties
                .iter()
                .find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
                .map(|(_, v)| v.clone())
        }
        fn request_headers(&self) -> HeaderMap {
            self.calls.borrow_mut().push("get_map".into());
            HeaderMap::parse(HeaderMap::serialize(&self.headers)).unwrap()
        }
        fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
            self.set_headers.push((name.into(), value.into()));
            Ok(())
        }
        fn send_response(&mut self, status: u16, _headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
            self.response = Some((status, String::from_utf8_lossy(body).into_owned()));
            Ok(())
        }
        fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
            self.state
                .push((key.into(), String::from_utf8_lossy(value).into_owned()));
            Ok(())
        }
        fn log(&self, level: Level, message: &str) {
            self.logs.borrow_mut().push((level, message.into()));
        }
        fn now_nanos(&self) -> u64 {
            self.now
        }
        fn define_counter(&self, name: &str) -> Result<u32, HostError> {
            let mut c = self.counters.borrow_mut();
            Ok(match c.iter().position(|(n, _)| n == name) {
                Some(i) => i as u32,
                None => {
                    c.push((name.to_string(), 0));
                    (c.len() - 1) as u32
                }
            })
        }
        fn vm_memory(&self) -> Option<usize> {
            self.memory
        }
        fn increment_counter(&self, id: u32) -> Result<(), HostError> {
            match self.counters.borrow_mut().get_mut(id as usize) {
                Some(c) => {
                    c.1 += 1;
                    Ok(())
                }
                None => Err(HostError {
                    call: "increment_metric",
                    status: "NotFound".into(),
                }),
            }
        }
    }

    const CONFIG: &str = r#"{"policies":[{"name":"shop/reviews","selector":{"app":"reviews"},"rules":[
        {"name":"reads","from":[{"namespaces":["shop"]}],"to":[{"methods":["GET"],"paths":["/reviews/*"],"ports":[9080]}]}]}]}"#;

    fn configured(host: &FakeHost, json: &str) -> Plugin {
        let mut plugin = Plugin::default();
        plugin.configure(host, json.as_bytes().to_vec()).unwrap();
        plugin
    }

    fn reviews_host() -> FakeHost {
        FakeHost::new()
            .with_label("app", "reviews")
            .with_peer("spiffe://cluster.local/ns/shop/sa/productpage")
            .with_port(9080)
    }

    #[test]
    fn allowed_request_continues_and_records_the_rule() {
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews:9080");
        let plugin = configured(&host, CONFIG);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
        assert_eq!(host.response, None);
        assert!(host.set_headers.is_empty(), "canonical path is not rewritten");
        assert_eq!(
            (
                host.state(STATE_VERDICT),
                host.state(STATE_POLICY),
                host.state(STATE_RULE)
            ),
            (Some("allow"), Some("shop/reviews"), Some("reads"))
        );
    }

    /// A header value that is not UTF-8 (obs-text, which HTTP/1.1 allows and
    /// Envoy forwards) used to abort the VM inside the SDK's header reader.
    #[test]
    fn header_values_that_are_not_utf8() {
        let with_condition = |mode: &str| {
            format!(
                r#"{{"mode":"{mode}","policies":[{{"name":"p","rules":[{{"to":[{{"paths":["/a"]}}],
                "when":[{{"header":"x-tier","notValues":["internal*"]}}]}}]}}]}}"#
            )
        };
        let no_condition = r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["/a"]}]}]}]}"#;
        for (config, name, value, action, verdict) in [
            // A condition reads it: rejected (as absent it would pass notValues).
            (
                with_condition("enforce"),
                "x-tier",
                &b"internal\xe9"[..],
                Action::Pause,
                "reject",
            ),
            // Case-insensitively the same header; in audit mode recorded, forwarded.
            (
                with_condition("audit"),
                "X-Tier",
                b"caf\xe9",
                Action::Continue,
                "audit_deny",
            ),
            // A header no condition reads cannot change the decision.
            (
                with_condition("enforce"),
                "x-other",
                b"caf\xe9",
                Action::Continue,
                "allow",
            ),
            (
                no_condition.to_string(),
                "x-tier",
                b"caf\xe9",
                Action::Continue,
                "allow",
            ),
        ] {
            let mut host = FakeHost::new()
                .with_request("GET", "/a", "svc")
                .with_raw_header(name, value);
            let plugin = configured(&host, &config);
            assert_eq!(
                plugin.request().on_request_headers(&mut host),
                action,
                "{name} {config}"
            );
            assert_eq!(host.state(STATE_VERDICT), Some(verdict), "{name} {config}");
            let status = host.response.as_ref().map(|r| r.0);
            assert_eq!(status, (action == Action::Pause).then_some(400), "{name} {config}");
        }
    }

    #[test]
    fn filter_state_entries_follow_the_configuration() {
        for (setting, want) in [
            ("all", vec![STATE_VERDICT, STATE_POLICY, STATE_RULE]),
            ("verdict", vec![STATE_VERDICT]),
            ("off", vec![]),
        ] {
            let json = CONFIG.replacen(
                r#"{"policies""#,
                &format!(r#"{{"log":{{"filterState":"{setting}"}},"policies""#),
                1,
            );
            for (method, verdict) in [("GET", "allow"), ("DELETE", "deny")] {
                let mut host = reviews_host().with_request(method, "/reviews/1", "reviews:9080");
                let plugin = configured(&host, &json);
                plugin.request().on_request_headers(&mut host);
                let keys: Vec<&str> = host.state.iter().map(|(k, _)| k.as_str()).collect();
                assert_eq!(keys, want, "{setting} {method}");
                if !want.is_empty() {
                    assert_eq!(host.state(STATE_VERDICT), Some(verdict));
                }
            }
        }
        let bad = CONFIG.replacen(r#"{"policies""#, r#"{"log":{"filterState":"some"},"policies""#, 1);
        let err = Plugin::default()
            .configure(&reviews_host(), bad.into_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("log.filterState"), "{err}");
    }

    #[test]
    fn memory_growth_while_serving_is_logged_once_per_step() {
        let grew = |host: &FakeHost| {
            host.logs
                .borrow()
                .iter()
                .filter(|(_, l)| l.contains("VM memory grew"))
                .map(|(_, l)| l.clone())
                .collect::<Vec<_>>()
        };
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews:9080");
        host.memory = Some(5 << 20);
        let plugin = configured(&host, CONFIG);
        assert!(host.logs.borrow().iter().any(|(_, l)| l.contains("VM memory 5.0 MiB")));
        plugin.request().on_request_headers(&mut host);
        assert_eq!(grew(&host), [] as [String; 0], "no growth since configure");
        host.memory = Some(6 << 20);
        plugin.request().on_request_headers(&mut host);
        plugin.request().on_request_headers(&mut host);
        assert_eq!(
            grew(&host),
            ["meshward: VM memory grew to 6.0 MiB while serving requests"]
        );
        // A denied request is watched too.
        host = host.with_request("DELETE", "/reviews/1", "reviews:9080");
        host.memory = Some(7 << 20);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
        assert_eq!(grew(&host).len(), 2);
    }

    #[test]
    fn denied_request_gets_the_deny_status_and_a_json_body() {
        let mut host = reviews_host().with_request("DELETE", "/reviews/1", "reviews:9080");
        let plugin = configured(&host, CONFIG);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
        let (status, body) = host.response.clone().unwrap();
        assert_eq!(status, 403);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["requestId"], "req-1");
        assert_eq!(body["decision"], "denied");
        assert_eq!(host.state(STATE_VERDICT), Some("deny"));
    }

    #[test]
    fn identity_comes_from_the_peer_certificate_only() {
        // A header claiming an identity changes nothing; no SAN = anonymous.
        let mut host = FakeHost::new()
            .with_label("app", "reviews")
            .with_port(9080)
            .with_request("GET", "/reviews/1", "reviews")
            .with_header(
                "x-forwarded-client-cert",
                "URI=spiffe://cluster.local/ns/shop/sa/productpage",
            );
        let plugin = configured(&host, CONFIG);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
        host.properties.retain(|(p, _)| p[0] != "connection");
        host = host.with_peer("https://cluster.local/ns/shop/sa/productpage");
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    }

    #[test]
    fn destination_port_comes_from_the_connection() {
        let mut host = FakeHost::new()
            .with_label("app", "reviews")
            .with_peer("spiffe://cluster.local/ns/shop/sa/productpage")
            .with_port(9081)
            .with_request("GET", "/reviews/1", "reviews:9080");
        let plugin = configured(&host, CONFIG);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    }

    #[test]
    fn rewritten_path_is_forwarded_and_malformed_is_rejected() {
        let mut host = reviews_host().with_request("GET", "/x/../reviews//1?q=1", "reviews");
        let plugin = configured(&host, CONFIG);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
        assert_eq!(
            host.set_headers,
            vec![(":path".to_string(), "/reviews/1?q=1".to_string())]
        );
        let mut host = reviews_host().with_request("GET", "/reviews/..%2Fadmin", "reviews");
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
        assert_eq!(host.response.as_ref().map(|r| r.0), Some(400));
        assert_eq!(host.state(STATE_VERDICT), Some("reject"));
    }

    #[test]
    fn selectors_use_the_node_labels() {
        let mut host = FakeHost::new()
            .with_label("app", "ratings")
            .with_request("DELETE", "/anything", "ratings");
        let plugin = configured(&host, CONFIG);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
        assert_eq!(host.state(STATE_VERDICT), Some("allow"));
    }

    #[test]
    fn audit_mode_forwards_untouched() {
        let json = CONFIG.replacen("\"rules\"", "\"mode\":\"audit\",\"rules\"", 1);
        let mut host = reviews_host().with_request("DELETE", "/x/../reviews/1", "reviews");
        let plugin = configured(&host, &json);
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
        assert!(host.set_headers.is_empty());
        assert_eq!(host.state(STATE_VERDICT), Some("audit_deny"));
    }

    #[test]
    fn bad_configuration_keeps_the_previous_one() {
        let host = reviews_host();
        let mut plugin = configured(&host, CONFIG);
        let err = plugin
            .configure(
                &host,
                br#"{"policies":[{"name":"x","rules":[{"to":[{"paths":["nope"]}]}]}]}"#.to_vec(),
            )
            .unwrap_err();
        assert!(
            err.to_string().starts_with("policies[0].rules[0].to[0].paths[0]"),
            "{err}"
        );
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
        let mut host = reviews_host().with_request("GET", "/other", "reviews");
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    }

    #[test]
    fn unconfigured_fails_closed() {
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
        let mut plugin = Plugin::default();
        assert!(plugin.configure(&host, b"{".to_vec()).is_err());
        assert!(!plugin.is_configured());
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
        assert_eq!(host.response.as_ref().map(|r| r.0), Some(500));
    }

    #[test]
    fn counters_by_verdict_policy_and_rule() {
        let host = reviews_host();
        let plugin = configured(&host, CONFIG);
        assert_eq!(host.counter(METRIC_CONFIG_ACCEPTED), 1);
        for (method, path) in [
            ("GET", "/reviews/1"),
            ("GET", "/reviews/2"),
            ("DELETE", "/reviews/1"),
            ("GET", "/a%2Fb"),
        ] {
            let mut h = reviews_host().with_request(method, path, "reviews");
            h.counters = RefCell::new(host.counters.borrow().clone());
            plugin.request().on_request_headers(&mut h);
            *host.counters.borrow_mut() = h.counters.borrow().clone();
        }
        assert_eq!(host.counter(&request_counter_name("allow", "shop/reviews", "reads")), 2);
        assert_eq!(host.counter(&request_counter_name("deny", "shop/reviews", "-")), 1);
        assert_eq!(host.counter(&request_counter_name("reject", "shop/reviews", "-")), 1);
        let mut plugin = plugin;
        assert!(plugin.configure(&host, b"{}".to_vec()).is_err());
        assert_eq!(host.counter(METRIC_CONFIG_REJECTED), 1);
    }

    #[test]
    fn request_series_are_bounded() {
        let rules: Vec<String> = (0..MAX_REQUEST_SERIES + 50)
            .map(|i| format!(r#"{{"name":"r{i}","to":[{{"paths":["/p{i}"]}}]}}"#))
            .collect();
        let json = format!(r#"{{"policies":[{{"name":"p","rules":[{}]}}]}}"#, rules.join(","));
        let mut host = FakeHost::new();
        let plugin = configured(&host, &json);
        for i in 0..MAX_REQUEST_SERIES + 50 {
            host.headers = vec![
                (b":method".to_vec(), b"GET".to_vec()),
                (b":path".to_vec(), format!("/p{i}").into_bytes()),
            ];
            plugin.request().on_request_headers(&mut host);
        }
        let requests = host
            .counters
            .borrow()
            .iter()
            .filter(|(n, _)| n.starts_with("meshward.requests"))
            .count();
        assert_eq!(requests, MAX_REQUEST_SERIES + 1);
        assert_eq!(host.counter(&request_counter_name("allow", "_other", "_other")), 50);
    }

    #[test]
    fn log_line_for_denied_requests_by_default() {
        let mut host = reviews_host().with_request("DELETE", "/reviews/./1?token=secret", "reviews:9080");
        host.now = 1_795_000_000_000_000_000;
        let plugin = configured(&host, CONFIG);
        let mut request = plugin.request();
        request.on_request_headers(&mut host);
        host.now += 1_500_000;
        host = host.with_property(&["response", "code"], &403u64.to_le_bytes());
        request.on_log(&host);
        let logs = host.request_logs();
        assert_eq!(logs.len(), 1);
        let l = &logs[0];
        assert_eq!(l["verdict"], "deny");
        assert_eq!(l["mode"], "enforce");
        assert_eq!(l["status"], 403);
        assert_eq!(l["path"], "/reviews/1", "canonical, no query");
        assert_eq!(l["principal"], "cluster.local/ns/shop/sa/productpage");
        assert_eq!(l["requestId"], "req-1");
        assert_eq!(l["policy"], "shop/reviews");
        assert_eq!(l["durationMs"], 1.5);
        // Written when the response is known; independently: python3 -c
        // "datetime.datetime.fromtimestamp(1795000000.0015, timezone.utc)".
        assert_eq!(l["time"], "2026-11-18T11:06:40.001Z");
        // Allowed requests are not logged by default.
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
        let mut request = plugin.request();
        request.on_request_headers(&mut host);
        request.on_log(&host);
        assert!(host.request_logs().is_empty());
    }

    #[test]
    fn log_all_with_query_and_capped_fields() {
        let json = CONFIG.replacen('{', r#"{"log":{"requests":"all","includeQuery":true},"#, 1);
        let long = format!("/reviews/{}", "a".repeat(1000));
        let mut host = reviews_host()
            .with_request("GET", &format!("{long}?q=1"), "reviews")
            .with_header("authorization", "Bearer secret-token")
            .with_header("cookie", "session=secret");
        let plugin = configured(&host, &json);
        let mut request = plugin.request();
        request.on_request_headers(&mut host);
        request.on_log(&host);
        let logs = host.request_logs();
        assert_eq!(logs[0]["verdict"], "allow");
        assert_eq!(logs[0]["path"].as_str().unwrap().len(), MAX_LOG_FIELD);
        let all = host
            .logs
            .borrow()
            .iter()
            .map(|(_, l)| l.clone())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!all.contains("secret"), "credentials never logged: {all}");
        let json = CONFIG.replacen('{', r#"{"log":{"requests":"off"},"#, 1);
        let mut host = reviews_host().with_request("DELETE", "/x", "reviews");
        let plugin = configured(&host, &json);
        let mut request = plugin.request();
        request.on_request_headers(&mut host);
        request.on_log(&host);
        assert!(host.request_logs().is_empty());
    }

    /// Rules on method and path only: the request path reads the header
    /// map and no property; the log line of a denial still names the caller.
    #[test]
    fn only_what_the_configuration_reads_is_fetched() {
        const PATHS_ONLY: &str = r#"{"policies":[{"name":"shop/reviews","rules":[
            {"name":"reads","to":[{"methods":["GET"],"paths":["/reviews/*"]}]}]}]}"#;
        let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
        let plugin = configured(&host, PATHS_ONLY);
        host.calls.borrow_mut().clear();
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
        assert_eq!(*host.calls.borrow(), ["get_map"]);

        let mut host = reviews_host().with_request("DELETE", "/reviews/1", "reviews");
        host.calls.borrow_mut().clear();
        let mut request = plugin.request();
        assert_eq!(request.on_request_headers(&mut host), Action::Pause);
        assert_eq!(
            *host.calls.borrow(),
            ["get_map", "property connection.uri_san_peer_certificate"],
            "the caller is read for the log line only"
        );
        let (_, body) = host.response.clone().unwrap();
        assert!(body.contains("req-1"), "{body}");
        host = host.with_property(&["response", "code"], &403u64.to_le_bytes());
        request.on_log(&host);
        let logs = host.request_logs();
        assert_eq!(
            logs[0]["principal"], "cluster.local/ns/shop/sa/productpage",
            "logged caller"
        );
        assert_eq!(logs[0]["requestId"], "req-1");
    }

    /// With identity, ports and header conditions in the rules, everything
    /// is read, and repeated headers are still judged line by line.
    #[test]
    fn identity_ports_and_headers_are_read_when_rules_use_them() {
        const ALL: &str = r#"{"policies":[{"name":"p","rules":[{"name":"r",
            "from":[{"namespaces":["shop"]}],"to":[{"ports":[9080]}],
            "when":[{"header":"x-v","notValues":["bad"]}]}]}]}"#;
        let mut host = reviews_host()
            .with_request("GET", "/", "reviews")
            .with_header("x-v", "good")
            .with_header("x-v", "bad");
        let plugin = configured(&host, ALL);
        host.calls.borrow_mut().clear();
        assert_eq!(
            plugin.request().on_request_headers(&mut host),
            Action::Pause,
            "the second line is judged"
        );
        let calls = host.calls.borrow().clone();
        for want in [
            "get_map",
            "property connection.uri_san_peer_certificate",
            "property destination.port",
        ] {
            assert!(calls.contains(&want.to_string()), "{want} in {calls:?}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(4_102_444_799_000_000_000), "2099-12-31T23:59:59.000Z");
    }
}
