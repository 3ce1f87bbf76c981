//! # meshward-control
//!
//! meshward's control service: it turns Kubernetes state (Allowlist resources,
//! namespaces, pods and pod templates, service accounts, services) into the
//! filter's plugin configuration, one Istio `WasmPlugin` per enabled
//! namespace (several when its configuration exceeds the size budget).
//!
//! * [`apidesc`] — API descriptions (protobuf descriptor sets, OpenAPI documents) that `to` entries name.
//! * [`cli`] — the command line: clap types and the command handlers.
//! * [`crd`] — the `Allowlist` custom resource, and the CRD generated from it.
//! * [`derive`](mod@derive) — the pure derivation: snapshot in, desired objects out.
//! * [`import`] — Istio AuthorizationPolicies converted into Allowlists (`import`).
//! * [`manifests`] — loading a snapshot from YAML files (offline CLI).
//! * [`simulate`] — what the filter would decide for a request (`check`, `POST /v1/simulate`).
//! * [`learn`] — Allowlists proposed from request log lines (`learn`).
//! * [`replay`] — logged requests judged by candidate policies (`replay`).
//! * [`incluster`] — learn and replay for one namespace on the cluster's state and its sidecars' logs.
//! * [`lint`] — what is wrong or risky in a set of manifests.
//! * [`oci`] — the filter module as an OCI image (layout tar) that Istio's agent pulls.
//! * [`serve`] — the in-cluster service: reflectors, the writer, the HTTP API.
//!
//! Policies are validated by the filter's own engine
//! ([`meshward_filter::Engine`]), so what the control service accepts, the
//! sidecars accept.

pub mod apidesc;
pub mod cli;
pub mod crd;
pub mod derive;
pub mod import;
pub mod incluster;
pub mod learn;
pub mod lint;
pub mod manifests;
pub mod oci;
pub mod replay;
pub mod serve;
pub mod simulate;
pub mod state;
