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

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::canonical::principal_from_uri_san;
use crate::config::Mode;
use crate::engine::{Decision, Engine, Evaluator, Reason, Request, Verdict};
use crate::error::ConfigError;

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
    /// Every request header as received, one pair per field line.
    fn request_headers(&self) -> Vec<(String, String)>;
    /// Replaces a request header (used for `:path`).
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Answers the request locally; the upstream is never contacted.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError>;
    /// Sets filter state readable by access logs as `%FILTER_STATE(wasm.<key>:PLAIN)%`.
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Writes a log line at `level`.
    fn log(&self, level: Level, message: &str);
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
/// The policy that decided (admitted, or `-` for a default deny).
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

/// The root context's state: the active configuration, if any.
#[derive(Debug, Default)]
pub struct Plugin {
    active: Option<Rc<RefCell<Evaluator>>>,
    workload: Workload,
}

const NODE_METADATA: [&str; 3] = ["xds", "node", "metadata"];

fn utf8(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.and_then(|b| String::from_utf8(b).ok())
}

impl Plugin {
    /// Compiles `json` and resolves which policies apply to this proxy's
    /// workload (labels from node metadata). On error the previous
    /// configuration stays in force and the error is returned, for the glue
    /// to log and report to Envoy.
    pub fn configure(&mut self, host: &dyn Host, json: &[u8]) -> Result<(), ConfigError> {
        let engine = Engine::from_json(json)?;
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
                "meshward: configuration accepted for {}/{}: {} of {} policies apply ({}), mode {}",
                workload.namespace.as_deref().unwrap_or("-"),
                workload.name.as_deref().unwrap_or("-"),
                applied.len(),
                engine.policy_count(),
                applied.join(", "),
                engine.mode().as_str(),
            ),
        );
        self.active = Some(Rc::new(RefCell::new(Evaluator::new(Arc::new(engine), selection))));
        self.workload = workload;
        Ok(())
    }

    /// Whether a configuration is in force.
    pub fn is_configured(&self) -> bool {
        self.active.is_some()
    }

    /// A context for one request, sharing the active configuration.
    pub fn request(&self) -> RequestContext {
        RequestContext {
            evaluator: self.active.clone(),
        }
    }
}

/// One request's state.
#[derive(Debug)]
pub struct RequestContext {
    evaluator: Option<Rc<RefCell<Evaluator>>>,
}

/// The JSON body of a local deny or reject response: the request id and the
/// decision, no rule internals.
fn response_body(request_id: &str, decision: &str, policy: &str) -> String {
    serde_json::json!({ "requestId": request_id, "decision": decision, "policy": policy }).to_string()
}

impl RequestContext {
    /// Decides the request from its headers and acts on the verdict.
    pub fn on_request_headers(&mut self, host: &mut dyn Host) -> Action {
        let Some(evaluator) = self.evaluator.clone() else {
            // No valid configuration was ever accepted: fail closed.
            host.log(Level::Error, "meshward: no valid configuration; denying");
            return self.local_reply(host, 500, "", "unconfigured", "-");
        };
        let Ok(mut evaluator) = evaluator.try_borrow_mut() else {
            // Re-entrancy is impossible in a single-threaded VM; never allow on it.
            return self.local_reply(host, 500, "", "internal", "-");
        };
        let headers = host.request_headers();
        let pseudo = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let request_id = pseudo("x-request-id").unwrap_or("").to_string();
        let san = utf8(host.property(&["connection", "uri_san_peer_certificate"]));
        let port = host
            .property(&["destination", "port"])
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .and_then(|b| u16::try_from(u64::from_le_bytes(b)).ok());
        let request = Request {
            method: pseudo(":method").unwrap_or(""),
            path: pseudo(":path").unwrap_or(""),
            authority: pseudo(":authority"),
            port,
            principal: san.as_deref().and_then(principal_from_uri_san),
            headers: &headers[..],
        };
        let decision = evaluator.evaluate(&request);
        let engine = evaluator.engine().clone();
        let (policy, rule) = match decision.matched() {
            Some(m) => (
                engine.policy_name(m.policy).to_string(),
                engine.rule_name(m).to_string(),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        self.record(host, &decision, &policy, &rule);
        match decision.verdict {
            Verdict::Allow | Verdict::AuditDeny => {
                // In enforce mode the upstream gets exactly the path judged;
                // audit mode forwards the request untouched.
                if let (Some(path), Mode::Enforce) = (&decision.path, decision.mode) {
                    if path.is_rewritten() {
                        if let Err(e) = host.set_request_header(":path", &path.to_request_target()) {
                            host.log(Level::Error, &format!("meshward: {e}; denying"));
                            return self.local_reply(host, 500, &request_id, "internal", "-");
                        }
                    }
                }
                Action::Continue
            }
            Verdict::Deny => self.local_reply(host, engine.deny_status(), &request_id, "denied", "-"),
            Verdict::Reject => {
                let reason = match decision.reason {
                    Reason::Malformed(e) => e.to_string(),
                    _ => "malformed request".to_string(),
                };
                host.log(
                    Level::Debug,
                    &format!("meshward: rejected request {request_id}: {reason}"),
                );
                self.local_reply(host, 400, &request_id, "rejected", "-")
            }
        }
    }

    fn record(&self, host: &mut dyn Host, decision: &Decision<'_>, policy: &str, rule: &str) {
        for (key, value) in [
            (STATE_VERDICT, decision.verdict.as_str()),
            (STATE_POLICY, policy),
            (STATE_RULE, rule),
        ] {
            if let Err(e) = host.set_filter_state(key, value.as_bytes()) {
                host.log(Level::Warn, &format!("meshward: {e}"));
            }
        }
    }

    fn local_reply(&self, host: &mut dyn Host, status: u16, request_id: &str, decision: &str, policy: &str) -> Action {
        let body = response_body(request_id, decision, policy);
        if let Err(e) = host.send_response(status, &[("content-type", "application/json")], body.as_bytes()) {
            host.log(Level::Critical, &format!("meshward: {e}"));
        }
        Action::Pause
    }
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
        headers: Vec<(String, String)>,
        set_headers: Vec<(String, String)>,
        response: Option<(u16, String)>,
        state: Vec<(String, String)>,
        logs: RefCell<Vec<(Level, String)>>,
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
            self.headers = vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), authority.into()),
                ("x-request-id".into(), "req-1".into()),
            ];
            self
        }
        fn with_header(mut self, name: &str, value: &str) -> Self {
            self.headers.push((name.into(), value.into()));
            self
        }
        fn with_peer(self, san: &str) -> Self {
            self.with_property(&["connection", "uri_san_peer_certificate"], san.as_bytes())
        }
        fn with_port(self, port: u64) -> Self {
            self.with_property(&["destination", "port"], &port.to_le_bytes())
        }
        fn state(&self, key: &str) -> Option<&str> {
            self.state.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
        }
    }

    impl Host for FakeHost {
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.properties
                .iter()
                .find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
                .map(|(_, v)| v.clone())
        }
        fn request_headers(&self) -> Vec<(String, String)> {
            self.headers.clone()
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
    }

    const CONFIG: &str = r#"{"policies":[{"name":"shop/reviews","selector":{"app":"reviews"},"rules":[
        {"name":"reads","from":[{"namespaces":["shop"]}],"to":[{"methods":["GET"],"paths":["/reviews/*"],"ports":[9080]}]}]}]}"#;

    fn configured(host: &FakeHost, json: &str) -> Plugin {
        let mut plugin = Plugin::default();
        plugin.configure(host, json.as_bytes()).unwrap();
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
                br#"{"policies":[{"name":"x","rules":[{"to":[{"paths":["nope"]}]}]}]}"#,
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
        assert!(plugin.configure(&host, b"{").is_err());
        assert!(!plugin.is_configured());
        assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
        assert_eq!(host.response.as_ref().map(|r| r.0), Some(500));
    }
}
