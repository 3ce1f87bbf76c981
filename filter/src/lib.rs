//! # meshward-filter
//!
//! meshward's layer-7 allowlist engine, and (built for `wasm32-wasip1`) the
//! proxy-wasm filter that runs it inside Envoy and Istio sidecars.
//!
//! The engine is plain Rust with no `proxy-wasm` import, so the filter, the
//! control service and the tests all run the same code:
//!
//! ```text
//!  pluginConfig JSON ──parse──▶ PluginConfig ──compile──▶ Engine ──select(labels)──▶ Evaluator
//!   (config)                     (wire types)  (validate,  (immutable,  (once per      (per VM: owns
//!                                               index)      Arc-shared)  config)        search cache)
//!                                                                                          │
//!  Request {method, path, authority, port, principal, auth, headers} ──evaluate────────────┘
//!        ──▶ Decision {verdict: allow | deny | audit_deny | reject, reason, canonical path}
//! ```
//!
//! * [`config`] — the `v1alpha1` plugin configuration (serde wire types).
//! * [`auth`] — the claims of the JWT Envoy's `jwt_authn` filter verified,
//!   read from the proxy's metadata.
//! * [`canonical`] — the canonical forms of paths, hosts, methods and
//!   identities: what is rewritten and what is rejected.
//! * [`Engine`] — validation and compilation; [`Evaluator`] — decisions.
//! * [`headermap`] — request headers as the proxy serializes them, read in
//!   place, without assuming they are UTF-8.
//!
//! ## Semantics (as Istio's ALLOW `AuthorizationPolicy`)
//!
//! If at least one policy applies to the workload, a request is allowed only
//! if some rule of an applicable policy matches it; if none applies, it passes.
//! A rule matches if any `from` entry, any `to` entry and every `when`
//! condition match; inside an entry every given field must match. Policies in
//! audit mode are evaluated as if enforced, but their denials become
//! [`Verdict::AuditDeny`] and the request is forwarded; when enforce and audit
//! policies both apply, only the enforce policies decide.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use meshward_filter::{Engine, Evaluator, Request, Verdict};
//!
//! let engine = Engine::from_json(br#"{"policies": [{"name": "shop/reviews", "rules": [
//!     {"from": [{"namespaces": ["shop"]}], "to": [{"methods": ["GET"], "paths": ["/reviews/*"]}]}
//! ]}]}"#).unwrap();
//! let selection = engine.select(|_label| None);
//! let mut evaluator = Evaluator::new(Arc::new(engine), selection);
//! let headers: [(&str, &str); 0] = [];
//! let request = Request {
//!     method: "GET",
//!     path: "/reviews/../reviews/1",
//!     authority: Some("reviews:9080"),
//!     port: Some(9080),
//!     principal: Some("cluster.local/ns/shop/sa/productpage"),
//!     auth: None,
//!     headers: &headers[..],
//!     connection: Default::default(),
//! };
//! let decision = evaluator.evaluate(&request);
//! assert_eq!(decision.verdict, Verdict::Allow);
//! assert_eq!(decision.path.unwrap().path(), "/reviews/1");
//! ```

pub mod address;
pub mod auth;
pub mod canonical;
pub mod config;
mod engine;
mod error;
#[cfg(all(target_arch = "wasm32", target_os = "wasi", feature = "proxy-wasm-glue"))]
mod glue;
pub mod headermap;
mod jsonpath;
mod paths;
mod pattern;
pub mod plugin;
mod postings;
mod template;
mod trie;

pub use canonical::{CanonicalPath, RequestError};
pub use config::{Action, FilterState, Mode, PluginConfig};
pub use engine::{
    is_grpc, is_grpc_content_type, ConditionKey, ConnectionInfo, Decision, Engine, EngineStats, Evaluator, Headers,
    Reason, Request, RuleRef, Selection, Verdict, DEFAULT_DENY_STATUS, MAX_PATTERNS, MAX_RULES,
};
pub use error::{ConfigError, PatternError};
pub use paths::{PathCounts, MAX_AUTOMATON_SIZE, MAX_REGEX_SIZE};
pub use pattern::{MAX_PATTERN_LEN, REGEX_PREFIX};
