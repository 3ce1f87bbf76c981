//! A fake proxy for the unit tests: properties and headers in, effects
//! recorded.
//!
//! Built with `with_*` methods (`FakeHost::new().with_label(..)
//! .with_request(..)`); the tests then read what the filter did from its
//! fields: the local response, the headers set, the filter state, the logs,
//! the counters and the properties and header maps it read.

use std::cell::RefCell;

use super::{GrpcStatus, Host, HostError, Level};
use crate::headermap::HeaderMap;

/// A fake proxy: properties and headers in, effects recorded.
#[derive(Debug, Default)]
pub(super) struct FakeHost {
    properties: Vec<(Vec<String>, Vec<u8>)>,
    /// Request headers as bytes (values need not be UTF-8).
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// What the filter did: headers set, its local response, filter state
    /// written, log lines, counters (name, value).
    pub(super) set_headers: Vec<(String, String)>,
    pub(super) response: Option<(u16, String)>,
    /// A gRPC local response: status code and message.
    pub(super) grpc_response: Option<(u32, String)>,
    pub(super) state: Vec<(String, String)>,
    pub(super) logs: RefCell<Vec<(Level, String)>>,
    pub(super) counters: RefCell<Vec<(String, u64)>>,
    /// Header map and property reads, in order.
    pub(super) calls: RefCell<Vec<String>>,
    now: u64,
    memory: Option<usize>,
}

impl FakeHost {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Sets property `path`, replacing an earlier value.
    pub(super) fn with_property(mut self, path: &[&str], value: &[u8]) -> Self {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.properties.retain(|(p, _)| *p != path);
        self.properties.push((path, value.to_vec()));
        self
    }

    /// A workload label, in Istio's node metadata.
    pub(super) fn with_label(self, key: &str, value: &str) -> Self {
        self.with_property(&["xds", "node", "metadata", "LABELS", key], value.as_bytes())
    }

    /// The proxy's workload and namespace, in Istio's node metadata.
    pub(super) fn with_workload(self, namespace: &str, name: &str) -> Self {
        self.with_property(&["xds", "node", "metadata", "NAMESPACE"], namespace.as_bytes())
            .with_property(&["xds", "node", "metadata", "WORKLOAD_NAME"], name.as_bytes())
    }

    /// Replaces the request headers with a request (and `x-request-id: req-1`).
    pub(super) fn with_request(mut self, method: &str, path: &str, authority: &str) -> Self {
        self.headers.clear();
        self.with_header(":method", method)
            .with_header(":path", path)
            .with_header(":authority", authority)
            .with_header("x-request-id", "req-1")
    }

    pub(super) fn with_header(self, name: &str, value: &str) -> Self {
        self.with_raw_header(name, value.as_bytes())
    }

    /// A header whose value need not be UTF-8.
    pub(super) fn with_raw_header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.as_bytes().to_vec(), value.to_vec()));
        self
    }

    /// The caller's certificate URI SAN.
    pub(super) fn with_peer(self, san: &str) -> Self {
        self.with_property(&["connection", "uri_san_peer_certificate"], san.as_bytes())
    }

    /// The stream's metadata as Envoy's `jwt_authn` leaves it after
    /// verifying a token with payload `claims`.
    pub(super) fn with_jwt(self, claims: serde_json::Value) -> Self {
        self.with_property(&["metadata"], &crate::auth::encode_metadata(&claims))
    }

    pub(super) fn with_port(self, port: u64) -> Self {
        self.with_property(&["destination", "port"], &port.to_le_bytes())
    }

    /// The response status the proxy reports after the request.
    pub(super) fn with_response_code(self, status: u64) -> Self {
        self.with_property(&["response", "code"], &status.to_le_bytes())
    }

    /// The clock, in nanoseconds since the epoch.
    pub(super) fn at(mut self, nanos: u64) -> Self {
        self.now = nanos;
        self
    }

    /// The VM's memory in bytes.
    pub(super) fn with_memory(mut self, bytes: usize) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// The value of counter `name` (0 if never defined).
    pub(super) fn counter(&self, name: &str) -> u64 {
        self.counters
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// The request log lines written, parsed.
    pub(super) fn request_logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .borrow()
            .iter()
            .filter_map(|(_, l)| l.strip_prefix("meshward.request "))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every log line containing `text`.
    pub(super) fn logs_containing(&self, text: &str) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .filter(|(_, l)| l.contains(text))
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// The last value written to filter-state `key`.
    pub(super) fn state(&self, key: &str) -> Option<&str> {
        self.state.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The status of the local response, if one was sent.
    pub(super) fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.0)
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
    fn send_grpc_response(&mut self, status: GrpcStatus, message: &str) -> Result<(), HostError> {
        self.grpc_response = Some((status.code(), message.into()));
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
