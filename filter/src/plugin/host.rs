//! The seam between the filter and the proxy: the [`Host`] trait.
//!
//! Everything the filter asks of Envoy goes through [`Host`]: properties,
//! the request headers, local replies, filter state, logs, the clock, counters
//! and the VM's memory. The proxy-wasm glue implements it with hostcalls and
//! maps each failed status to a [`HostError`] naming the call; the unit tests
//! implement it with a fake. The helpers here read properties in the forms
//! the proxy encodes them.

use crate::headermap::HeaderMap;

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

/// The gRPC statuses the filter answers gRPC requests with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcStatus {
    /// `3`: the request is malformed or ambiguous (rejected).
    InvalidArgument,
    /// `7`: no rule admits the request (denied).
    PermissionDenied,
}

impl GrpcStatus {
    /// The status code.
    pub fn code(self) -> u32 {
        match self {
            Self::InvalidArgument => 3,
            Self::PermissionDenied => 7,
        }
    }
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
    /// Answers a gRPC request locally with a trailers-only gRPC response:
    /// HTTP 200, `grpc-status` `status` and `grpc-message` `message`
    /// (percent-encoded by the proxy); the upstream is never contacted.
    fn send_grpc_response(&mut self, status: GrpcStatus, message: &str) -> Result<(), HostError>;
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

/// A property as text; `None` if absent or not UTF-8.
pub(super) fn text_property(host: &dyn Host, path: &[&str]) -> Option<String> {
    host.property(path).and_then(|b| String::from_utf8(b).ok())
}

/// A property holding an integer, as the proxy encodes them (eight bytes,
/// little-endian); `None` if absent or of another size.
pub(super) fn integer_property(host: &dyn Host, path: &[&str]) -> Option<u64> {
    host.property(path)
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes)
}

/// The caller's URI SAN from its mTLS certificate, if any.
pub(super) fn peer_uri_san(host: &dyn Host) -> Option<String> {
    text_property(host, &["connection", "uri_san_peer_certificate"])
}

/// Logs a failed host call that the filter works around, at warning level.
pub(super) fn warn(host: &dyn Host, error: &HostError) {
    host.log(Level::Warn, &format!("meshward: {error}"));
}
