//! A proxy-wasm HTTP filter that does nothing (root id `noop`): every
//! callback continues. Built for `wasm32-wasip1`; owned by the configuration
//! half of the harness.
//!
//! It measures the floor of any wasm filter: Envoy creating a context in the
//! VM for every request and calling into it for the request and response
//! headers (and bodies and trailers, when present), with no work inside.
//! The proxy-wasm glue is compiled for wasm only, so native workspace builds
//! and tests see an empty library.

#[cfg(target_arch = "wasm32")]
mod glue {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    // Runs once per VM: one root context for any root id (`noop` in the
    // bench's configuration), creating a no-op HTTP context per request.
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
            true
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Noop))
        }
    }

    struct Noop;

    impl Context for Noop {}

    impl HttpContext for Noop {
        fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
            Action::Continue
        }

        fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
            Action::Continue
        }
    }
}
