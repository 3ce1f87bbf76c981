//! Envoy bootstraps for every variant.
//!
//! Owned by the configuration half of the harness. Interface (keep it):
//! every bootstrap is JSON text with one plaintext HTTP listener on
//! `ports.listener`, an admin on `ports.admin`, a cluster `upstream` to
//! `127.0.0.1:ports.upstream`, and the variant's HTTP filter delivered
//! through a file-based ECDS source (`<dir>/filter.json`, watched directory
//! `<dir>`) so a configuration change is an atomic rename of that file, for
//! every variant that has a filter; then the router.

use std::path::{Path, PathBuf};

/// What enforces the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// (a) Only the router.
    Router,
    /// (b) RBAC, N policies as Istio generates them.
    Rbac,
    /// (b2) RBAC's matcher tree.
    RbacMatcher,
    /// (c) A no-op proxy-wasm filter.
    NoopWasm,
    /// (d) meshward.
    Meshward,
    /// (e) ext_authz to a trivial authorizer on `ports.authz`.
    ExtAuthz,
}

/// Ports of one run.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The listener under load.
    pub listener: u16,
    /// Envoy's admin.
    pub admin: u16,
    /// The upstream (answers 200).
    pub upstream: u16,
    /// The ext_authz authorizer (answers 200), for [`Variant::ExtAuthz`].
    pub authz: u16,
}

/// Files the bootstraps refer to.
#[derive(Debug, Clone)]
pub struct Files {
    /// The directory of the ECDS file `filter.json`.
    pub dir: PathBuf,
    /// meshward's module (`meshward_filter.wasm`).
    pub meshward_wasm: PathBuf,
    /// The no-op module.
    pub noop_wasm: PathBuf,
}

/// The bootstrap of `variant` enforcing `rules`; writes `files.dir/filter.json`
/// (the ECDS resource) for variants with a filter.
pub fn bootstrap(variant: Variant, rules: &[crate::rules::Rule], ports: &Ports, files: &Files) -> String {
    let _ = (variant, rules, ports, files);
    String::new()
}

/// Replaces the ECDS resource of `variant` in `dir` with one enforcing
/// `rules` (write to a temporary file, then rename).
pub fn update_filter(variant: Variant, rules: &[crate::rules::Rule], files: &Files) {
    let _ = (variant, rules, files);
}

/// A bootstrap for a second Envoy that answers every request with 200 on
/// `port` (the upstream, and the trivial ext_authz authorizer).
pub fn responder_bootstrap(port: u16, admin: u16) -> String {
    let _ = (port, admin);
    String::new()
}

/// The directory a path lives in (helper for callers).
pub fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}
