//! A proxy-wasm HTTP filter that does nothing (root id `noop`): every
//! callback continues. Built for `wasm32-wasip1`; owned by the configuration
//! half of the harness.
