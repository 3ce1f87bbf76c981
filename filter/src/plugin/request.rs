//! The request path: one [`RequestContext`] per request, deciding it from its
//! headers in four steps.
//!
//! 1. **Read** what the configuration can use: the header map (one host call
//!    for all headers), and the caller's certificate, the destination port,
//!    the downstream and destination addresses, the TLS server name and the
//!    verified JWT's claims (the stream's metadata, where Envoy's `jwt_authn`
//!    left them) only if some rule reads them ([`Needs`]).
//! 2. **Evaluate** the request with the active configuration's
//!    [`Evaluator`].
//! 3. **Record** the decision: its counter, its filter state, and the log
//!    line written once the response is known ([`RequestContext::on_log`]).
//! 4. **Respond**: forward (with the canonical path in enforce mode), or
//!    answer locally with the deny status or 400; a gRPC request is answered
//!    in gRPC's form instead, `PERMISSION_DENIED` or `INVALID_ARGUMENT`.
//!
//! Without an active configuration the request is denied (500): the filter
//! fails closed.

use std::cell::RefCell;
use std::rc::Rc;

use std::net::IpAddr;

use super::host::{integer_property, peer_uri_san, text_property, GrpcStatus, Host, Level};
use super::lifecycle::Active;
use super::telemetry::{add_one, capped, write_filter_state, Counters, LogRecord, MemoryWatch};
use crate::address::parse_socket_address;
use crate::auth::{Claims, MetadataError};
use crate::canonical::{principal_from_uri_san, RequestError};
use crate::config::{LogConfig, RequestLog};
use crate::engine::{is_grpc, ConnectionInfo, Decision, Engine, Evaluator, Needs, Reason, Request, Verdict};
use crate::headermap::{HeaderMap, Utf8Headers};

/// What the proxy should do with the request after the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Forward the request.
    Continue,
    /// Stop: a local response was sent.
    Pause,
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

/// Step 1: what was read from the proxy about the request.
struct Received<'m> {
    /// The headers that are UTF-8, in order.
    headers: Vec<(&'m str, &'m str)>,
    /// The names of those that are not.
    invalid: Vec<&'m [u8]>,
    /// The caller's URI SAN, if the rules read the caller.
    san: Option<String>,
    /// The destination port, if the rules read it.
    port: Option<u16>,
    /// The downstream address (`source.address`) if the rules read it: the
    /// IP, and whether it is the direct peer.
    source: Option<(IpAddr, bool)>,
    /// The address the request was received on, if the rules read it.
    destination: Option<IpAddr>,
    /// The TLS server name, if the rules read it.
    sni: Option<String>,
    /// The verified JWT's claims, if the rules read them: `Ok(None)` without
    /// a token, `Err` if the proxy's metadata could not be decoded.
    auth: Result<Option<Claims>, MetadataError>,
}

impl<'m> Received<'m> {
    /// Reads the request from `map` and, as far as `needs` asks, the proxy.
    ///
    /// Only what the configuration can read is fetched: in V8 every host
    /// call costs a boundary crossing, and one that returns data a second
    /// one (the host allocates in the VM). The header map is one call for
    /// all headers, cheaper than three single reads (measured).
    fn read(host: &dyn Host, map: &'m HeaderMap, needs: Needs) -> Self {
        let Utf8Headers { valid, invalid } = map.utf8();
        let san = if needs.principal { peer_uri_san(host) } else { None };
        let port = if needs.port {
            integer_property(host, &["destination", "port"]).and_then(|p| u16::try_from(p).ok())
        } else {
            None
        };
        let address = |path: &[&str]| text_property(host, path).and_then(|a| parse_socket_address(&a));
        // Envoy's `source.address` is the downstream remote address as its
        // connection manager sets it: the connection's peer, unless the
        // listener derives the client from `x-forwarded-for` (or another
        // original-IP detection), and then that address with port 0. A TCP
        // peer never has port 0, so a nonzero port means the direct peer.
        let source = if needs.source_address {
            address(&["source", "address"]).map(|(ip, port)| (ip, port != 0))
        } else {
            None
        };
        let destination = if needs.destination_address {
            address(&["destination", "address"]).map(|(ip, _)| ip)
        } else {
            None
        };
        let sni = if needs.sni {
            text_property(host, &["connection", "requested_server_name"])
        } else {
            None
        };
        let auth = if needs.auth {
            // The stream's whole metadata, as a serialized protobuf: the one
            // form in which claim types survive (see `crate::auth`).
            host.property(&["metadata"])
                .map_or(Ok(None), |bytes| Claims::from_metadata(&bytes))
        } else {
            Ok(None)
        };
        Self {
            headers: valid,
            invalid,
            san,
            port,
            source,
            destination,
            sni,
            auth,
        }
    }

    /// The first value of header `name` (lower-case).
    fn header(&self, name: &str) -> Option<&'m str> {
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    /// The request as the engine takes it; a pseudo-header that is missing
    /// (or not UTF-8) is empty, which canonicalization rejects.
    fn request(&self) -> Request<'_> {
        Request {
            method: self.header(":method").unwrap_or(""),
            path: self.header(":path").unwrap_or(""),
            authority: self.header(":authority"),
            port: self.port,
            principal: self.san.as_deref().and_then(principal_from_uri_san),
            auth: self.auth.as_ref().ok().and_then(Option::as_ref),
            headers: &self.headers[..],
            connection: ConnectionInfo {
                direct_peer: self.source.and_then(|(ip, direct)| direct.then_some(ip)),
                remote: self.source.map(|(ip, _)| ip),
                destination: self.destination,
                sni: self.sni.as_deref(),
            },
        }
    }
}

/// What step 2 gives: the decision, and the names it is recorded under.
struct Decided<'a> {
    request: Request<'a>,
    decision: Decision<'a>,
    /// The admitting rule's policy; otherwise [`Active::decided_by`], or `-`
    /// when no policy applies.
    policy: &'a str,
    /// The admitting rule, or `-`.
    rule: &'a str,
    /// `x-request-id`, or empty.
    request_id: &'a str,
}

impl RequestContext {
    /// A context for one request under `active` (none: deny).
    pub(super) fn new(active: Option<Rc<Active>>, counters: Rc<RefCell<Counters>>, memory: Rc<MemoryWatch>) -> Self {
        Self {
            active,
            counters,
            memory,
            pending: None,
        }
    }

    /// Decides the request from its headers and acts on the verdict.
    pub fn on_request_headers(&mut self, host: &mut dyn Host) -> Action {
        let action = self.decide(host);
        self.memory.check(host);
        action
    }

    /// Read, evaluate, record, respond.
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
        let engine = evaluator.engine().clone();
        let needs = engine.needs();
        // 1. Read.
        let map = host.request_headers();
        let received = Received::read(host, &map, needs);
        #[cfg(feature = "fault-injection")]
        inject_fault(&received);
        let request = received.request();
        // 2. Evaluate.
        let decision = evaluate(&mut evaluator, &received, &request);
        drop(evaluator);
        let decided = label(&engine, &active, &received, request, decision);
        // 3. Record.
        self.record(host, &active, needs, &decided);
        // 4. Respond.
        respond(host, engine.deny_status(), &decided)
    }

    /// Step 3: counts the decision, leaves its filter state and keeps its
    /// log line, if the configuration logs it, for [`RequestContext::on_log`].
    ///
    /// A request no policy applies to leaves no filter state: whoever reads
    /// it (an access log, Istio's `meshward_verdict` label) sees it absent,
    /// which says "no meshward policy", at no cost to the request.
    fn record(&mut self, host: &mut dyn Host, active: &Active, needs: Needs, decided: &Decided<'_>) {
        self.count(host, active, decided);
        let decision = &decided.decision;
        if decision.reason != Reason::NoPolicy {
            let setting = active.log.filter_state;
            write_filter_state(host, setting, decision.verdict, decided.policy, decided.rule);
        }
        self.pending = log_record(host, &active.log, needs, decided);
    }

    /// Counts the decision under (mode, verdict, policy, rule); the counter's
    /// id is cached per configuration and rule.
    fn count(&self, host: &dyn Host, active: &Active, decided: &Decided<'_>) {
        let Decision { verdict, mode, .. } = decided.decision;
        let key = (verdict, mode, decided.decision.rule().map_or(u32::MAX, |m| m.rule));
        let cached = active.counters.borrow().get(&key).copied();
        let id = match cached {
            Some(id) => Some(id),
            None => {
                let id = self.counters.borrow_mut().request_series(
                    host,
                    &active.workload,
                    (mode, verdict),
                    decided.policy,
                    decided.rule,
                );
                if let Some(id) = id {
                    active.counters.borrow_mut().insert(key, id);
                }
                id
            }
        };
        if let Some(id) = id {
            add_one(host, id);
        }
    }

    /// Writes the request's log line, now that the response is known.
    pub fn on_log(&mut self, host: &dyn Host) {
        let (Some(record), Some(active)) = (self.pending.take(), self.active.as_ref()) else {
            return;
        };
        let status = integer_property(host, &["response", "code"]);
        record.write(host, &active.workload, status);
    }
}

/// The request header that makes a `fault-injection` build panic.
#[cfg(feature = "fault-injection")]
const FAULT_HEADER: &str = "x-meshward-test-panic";

/// Panics, as a bug in request handling would, if the request carries
/// [`FAULT_HEADER`]. Only in builds with the `fault-injection` feature, which
/// the end-to-end tests load to see what Envoy does with a VM that fails;
/// the shipped module is built without it (a test checks that it does not
/// hold the header's name).
#[cfg(feature = "fault-injection")]
#[allow(clippy::panic)]
fn inject_fault(received: &Received<'_>) {
    if received.header(FAULT_HEADER).is_some() {
        panic!("fault injection: the request carries {FAULT_HEADER}");
    }
}

/// Step 2: the engine's decision.
///
/// A header that is not UTF-8 cannot be compared with any pattern. Leaving it
/// out would make it absent, which a `notValues` condition admits, so if a
/// condition reads it the request is rejected. Other headers cannot change
/// the decision; a pseudo-header left out is missing, which canonicalization
/// rejects. Metadata holding the JWT's claims that cannot be decoded is
/// rejected the same way (it never happens with a sound proxy): reading it as
/// "no token" would pass a deny rule's `requestPrincipals`.
fn evaluate<'r>(evaluator: &mut Evaluator, received: &Received<'_>, request: &Request<'r>) -> Decision<'r> {
    if received.auth.is_err() {
        evaluator.malformed(RequestError::AuthMetadata)
    } else if received
        .invalid
        .iter()
        .any(|name| evaluator.engine().reads_header(name))
    {
        evaluator.malformed(RequestError::HeaderNotUtf8)
    } else {
        evaluator.evaluate(request)
    }
}

/// Names the policy and the rule a decision is recorded under.
fn label<'a>(
    engine: &'a Engine,
    active: &'a Active,
    received: &Received<'a>,
    request: Request<'a>,
    decision: Decision<'a>,
) -> Decided<'a> {
    let (policy, rule) = match (decision.rule(), decision.reason) {
        (Some(m), _) => (engine.policy_name(m.policy), engine.rule_name(m)),
        (None, Reason::NoPolicy) => ("-", "-"),
        (None, _) => (active.decided_by.as_str(), "-"),
    };
    Decided {
        request,
        decision,
        policy,
        rule,
        request_id: received.header("x-request-id").unwrap_or(""),
    }
}

/// Step 3, the log line: what it will say, if the configuration logs this
/// request. Its fields are capped; the caller and the destination port are
/// read for it if the rules did not need them.
fn log_record(host: &dyn Host, log: &LogConfig, needs: Needs, decided: &Decided<'_>) -> Option<LogRecord> {
    let Decided { request, decision, .. } = decided;
    let logged = match log.requests {
        RequestLog::All => decision.reason != Reason::NoPolicy,
        RequestLog::Denied => decision.verdict != Verdict::Allow,
        RequestLog::Off => false,
    };
    if !logged {
        return None;
    }
    let logged_san = if needs.principal { None } else { peer_uri_san(host) };
    let principal = request
        .principal
        .or_else(|| logged_san.as_deref().and_then(principal_from_uri_san));
    let port = request
        .port
        .or_else(|| integer_property(host, &["destination", "port"]).and_then(|p| u16::try_from(p).ok()));
    let grpc = is_grpc(request.headers);
    let path = match &decision.path {
        Some(p) if log.include_query => p.to_request_target(),
        Some(p) => p.path().to_string(),
        // Malformed: the raw path, without its query.
        None => request.path.split('?').next().unwrap_or_default().to_string(),
    };
    Some(LogRecord {
        started: host.now_nanos(),
        request_id: capped(decided.request_id),
        method: capped(request.method),
        authority: capped(request.authority.unwrap_or("")),
        path: capped(&path),
        principal: principal.map(capped),
        port,
        grpc,
        policy: decided.policy.to_string(),
        rule: decided.rule.to_string(),
        verdict: decision.verdict,
        mode: decision.mode,
    })
}

/// Step 4: acts on the verdict. In enforce mode the upstream gets exactly the
/// path judged; audit mode forwards the request untouched.
fn respond(host: &mut dyn Host, deny_status: u16, decided: &Decided<'_>) -> Action {
    let Decided {
        decision, request_id, ..
    } = decided;
    match decision.verdict {
        Verdict::Allow | Verdict::AuditDeny => {
            // Under an enforcing policy, what was judged is what the upstream
            // gets, also when an audit deny rule matched (`audit_deny`); a
            // request only audit policies judged is forwarded untouched.
            if let (Some(path), true) = (&decision.path, decision.enforced) {
                if path.is_rewritten() {
                    if let Err(e) = host.set_request_header(":path", &path.to_request_target()) {
                        host.log(Level::Error, &format!("meshward: {e}; denying"));
                        return local_reply(host, 500, request_id, "internal");
                    }
                }
            }
            Action::Continue
        }
        Verdict::Deny if is_grpc(decided.request.headers) => {
            grpc_reply(host, GrpcStatus::PermissionDenied, request_id, "denied")
        }
        Verdict::Deny => local_reply(host, deny_status, request_id, "denied"),
        Verdict::Reject => {
            if let Reason::Malformed(e) = decision.reason {
                host.log(Level::Debug, &format!("meshward: rejected request {request_id}: {e}"));
            }
            if is_grpc(decided.request.headers) {
                grpc_reply(host, GrpcStatus::InvalidArgument, request_id, "rejected")
            } else {
                local_reply(host, 400, request_id, "rejected")
            }
        }
    }
}

/// The reply's text: a short JSON object naming the request and the
/// decision (no rule internals).
fn reply_body(request_id: &str, decision: &str) -> String {
    serde_json::json!({ "requestId": request_id, "decision": decision }).to_string()
}

/// Answers locally with the reply body as JSON.
fn local_reply(host: &mut dyn Host, status: u16, request_id: &str, decision: &str) -> Action {
    let body = reply_body(request_id, decision);
    if let Err(e) = host.send_response(status, &[("content-type", "application/json")], body.as_bytes()) {
        host.log(Level::Critical, &format!("meshward: {e}"));
    }
    Action::Pause
}

/// Answers a gRPC request locally in gRPC's form: `grpc-status` `status` and
/// the reply body as `grpc-message`, so that a gRPC client sees a status it
/// understands whatever `denyStatus` is.
fn grpc_reply(host: &mut dyn Host, status: GrpcStatus, request_id: &str, decision: &str) -> Action {
    if let Err(e) = host.send_grpc_response(status, &reply_body(request_id, decision)) {
        host.log(Level::Critical, &format!("meshward: {e}"));
    }
    Action::Pause
}
