//! # meshward-bench
//!
//! Side-by-side load runs of Envoy configurations that enforce the same
//! allowlist (issue 6, BENCHMARKS.md):
//!
//! * (a) [`Variant::Router`] — only the router (no authorization);
//! * (b) [`Variant::Rbac`] — Envoy's RBAC filter with the allowlist as N
//!   policies, the form Istio generates from AuthorizationPolicies;
//! * (b2) [`Variant::RbacMatcher`] — the same rules in RBAC's `matcher` tree;
//! * (c) [`Variant::NoopWasm`] — a proxy-wasm filter that does nothing (the
//!   price of entering a wasm VM);
//! * (d) [`Variant::Meshward`] — meshward with the same allowlist;
//! * (e) [`Variant::ExtAuthz`] — ext_authz to a local trivial authorizer.
//!
//! [`rules`] generates the allowlist (a mix of exact, prefix and
//! template/regex paths with methods) and the requests; [`configs`] writes
//! the Envoy bootstraps; the `meshward-bench` binary runs them under load.

pub mod configs;
pub mod rules;
