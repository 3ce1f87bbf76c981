//! The proxy-wasm glue: implements [`Host`] with hostcalls and forwards the
//! SDK's callbacks to [`Plugin`] and [`RequestContext`]. Built for
//! `wasm32-wasip1` only; everything it calls is tested natively.
//!
//! Statuses: the SDK's `Context` methods unwrap what its `hostcalls`
//! return, so this file calls `proxy_wasm::hostcalls` and turns each `Err`
//! into a [`HostError`]. Those wrappers still panic (a trap under
//! `panic = "abort"`) on a status they do not expect — for the calls used
//! here, Envoy returns such a status only for a stream without stream info or
//! a filter-state key another filter made read-only, nothing a request can
//! cause. Request data is different: the SDK's `get_map` panics on a header
//! value that is not UTF-8, which any client can send, so the request headers
//! come from the raw hostcall (the one `unsafe` function of the crate) and
//! are read by [`HeaderMap`].

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{
    Action as ProxyAction, BufferType, ContextType, GrpcStatusCode, LogLevel, MapType, MetricType,
};

use crate::headermap::HeaderMap;
use crate::plugin::{Action, GrpcStatus, Host, HostError, Level, Plugin, RequestContext};

// Runs once per VM: the log level, a panic hook that logs at critical level
// before the VM aborts, and the root context for root id `meshward` (any root
// id gets the same root context).
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("meshward: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The proxy, through hostcalls.
struct Proxy;

fn failed(call: &'static str) -> impl Fn(proxy_wasm::types::Status) -> HostError {
    move |status| HostError {
        call,
        status: format!("{status:?}"),
    }
}

impl Host for Proxy {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn request_headers(&self) -> HeaderMap {
        let bytes = match request_header_bytes() {
            Ok(bytes) => bytes,
            Err(status) => {
                self.log(
                    Level::Warn,
                    &format!("meshward: cannot read the request headers: status {status}"),
                );
                return HeaderMap::default();
            }
        };
        HeaderMap::parse(bytes).unwrap_or_else(|e| {
            self.log(Level::Warn, &format!("meshward: {e}"));
            HeaderMap::default()
        })
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).map_err(failed("set_map_value"))
    }

    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Result<(), HostError> {
        hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body))
            .map_err(failed("send_http_response"))
    }

    fn send_grpc_response(&mut self, status: GrpcStatus, message: &str) -> Result<(), HostError> {
        let code = match status {
            GrpcStatus::InvalidArgument => GrpcStatusCode::InvalidArgument,
            GrpcStatus::PermissionDenied => GrpcStatusCode::PermissionDenied,
        };
        hostcalls::send_grpc_response(code, Some(message), Vec::new()).map_err(failed("send_grpc_response"))
    }

    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_property(vec![key], Some(value)).map_err(failed("set_property"))
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        };
        let _ = hostcalls::log(level, message);
    }

    fn now_nanos(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn define_counter(&self, name: &str) -> Result<u32, HostError> {
        hostcalls::define_metric(MetricType::Counter, name).map_err(failed("define_metric"))
    }

    fn increment_counter(&self, id: u32) -> Result<(), HostError> {
        hostcalls::increment_metric(id, 1).map_err(failed("increment_metric"))
    }

    fn vm_memory(&self) -> Option<usize> {
        // One instruction, no host call.
        Some(core::arch::wasm32::memory_size(0) * 65536)
    }
}

/// The request header map's serialized bytes, from the host directly: the
/// SDK's `get_map` panics (aborting the VM) on a header value that is not
/// UTF-8 and on any status but Ok; [`HeaderMap`] reads the bytes instead.
#[allow(unsafe_code)]
fn request_header_bytes() -> Result<Vec<u8>, u32> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize)
            -> u32;
    }
    const HTTP_REQUEST_HEADERS: u32 = 0;
    const OK: u32 = 0;
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: both out-pointers point to live locals the host writes into.
    let status = unsafe { proxy_get_header_map_pairs(HTTP_REQUEST_HEADERS, &mut data, &mut size) };
    match status {
        OK if data.is_null() => Ok(Vec::new()),
        // SAFETY: on Ok the host hands over a buffer of `size` bytes it got
        // from this module's `proxy_on_memory_allocate` (the SDK's export: a
        // boxed `[u8]` of exactly `size`, from the global allocator), the
        // contract the SDK's own `get_map` relies on; nothing else owns it.
        OK => Ok(unsafe { Vec::from_raw_parts(data, size, size) }),
        other => Err(other),
    }
}

#[derive(Default)]
struct Root {
    plugin: Plugin,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                Proxy.log(
                    Level::Error,
                    &format!("meshward: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        match self.plugin.configure(&Proxy, config) {
            Ok(()) => true,
            Err(e) => {
                let keeps = if self.plugin.is_configured() {
                    "the previous configuration stays in force"
                } else {
                    "requests are denied until a valid configuration arrives"
                };
                Proxy.log(Level::Error, &format!("meshward: configuration rejected: {e}; {keeps}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            request: self.plugin.request(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    request: RequestContext,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> ProxyAction {
        match self.request.on_request_headers(&mut Proxy) {
            Action::Continue => ProxyAction::Continue,
            Action::Pause => ProxyAction::Pause,
        }
    }

    fn on_log(&mut self) {
        self.request.on_log(&Proxy);
    }
}
