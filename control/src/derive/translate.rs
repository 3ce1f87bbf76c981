//! An Allowlist translated into a policy of the filter's plugin
//! configuration.
//!
//! Two steps, as the linkerd policy-controller converts its resources:
//! first each `from` entry is checked on its own ([`CallerRef`], a
//! `TryFrom` conversion that needs nothing of the cluster), then the
//! references are resolved against the cluster (workload selectors to the
//! principals of their pods' service accounts, Service ports to container
//! ports). Last, the filter's own engine judges the policy: what it accepts
//! here, the sidecars accept.

use std::collections::BTreeSet;
use std::fmt;

use meshward_filter::config::{self, PluginConfig, Policy};
use meshward_filter::{ConfigError, Engine, Mode};

use super::workloads::{selected, service_port};
use crate::apidesc::openapi::{method_paths, Selection};
use crate::apidesc::{self, Idempotency};
use crate::crd::{
    AllowlistAction, AllowlistMode, AllowlistOperation, AllowlistSource, AllowlistSpec, GrpcMethods, IdempotencyLevel,
    OpenApiOperations, Resolved, WorkloadSelector,
};
use crate::state::{ClusterState, StoredAllowlist};

/// Why an Allowlist could not be derived as written: the `reason` of its
/// `Ready=False` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InvalidReason {
    /// The spec does not fit the Allowlist types (a value the CRD schema let through).
    InvalidSpec,
    /// A `from` entry names callers more than one way, or a source pattern is invalid.
    InvalidSource,
    /// A `serviceAccounts` entry is not `namespace/name`.
    InvalidServiceAccount,
    /// A `servicePorts` entry names a Service or port that does not exist.
    UnresolvedServicePort,
    /// A path pattern is invalid.
    InvalidPath,
    /// A host pattern is invalid.
    InvalidHost,
    /// A method is invalid.
    InvalidMethod,
    /// A `when` condition (its header, key or values) is invalid.
    InvalidHeader,
    /// A rule name is invalid or repeated.
    InvalidName,
    /// A port is invalid.
    InvalidPort,
    /// A `grpc` entry is invalid (a service or method name, an empty list,
    /// or `methods`, `paths` or `notPaths` beside it).
    InvalidGrpc,
    /// A `grpc.api` or `openapi.api` reference cannot be used: no such
    /// labelled ConfigMap or key, a key of the wrong kind, or one that does
    /// not decode as a `FileDescriptorSet` or parse as an OpenAPI document.
    UnresolvedApi,
    /// An `openapi` entry is invalid: an unknown operation or tag, both or
    /// neither of `operations` and `tags`, or `methods`, `paths`, `notPaths`
    /// or `grpc` beside it.
    InvalidOpenApi,
    /// Anything else the engine refuses (an empty entry, a size limit).
    Invalid,
}

impl InvalidReason {
    /// The reason as written in the status condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::InvalidSource => "InvalidSource",
            Self::InvalidServiceAccount => "InvalidServiceAccount",
            Self::UnresolvedServicePort => "UnresolvedServicePort",
            Self::InvalidPath => "InvalidPath",
            Self::InvalidHost => "InvalidHost",
            Self::InvalidMethod => "InvalidMethod",
            Self::InvalidHeader => "InvalidHeader",
            Self::InvalidName => "InvalidName",
            Self::InvalidPort => "InvalidPort",
            Self::InvalidGrpc => "InvalidGrpc",
            Self::UnresolvedApi => "UnresolvedApi",
            Self::InvalidOpenApi => "InvalidOpenApi",
            Self::Invalid => "Invalid",
        }
    }

    /// The reason for an error of the engine, from the field it names.
    fn of(e: &ConfigError) -> Self {
        if e.field().contains(".openapi") {
            return Self::InvalidOpenApi;
        }
        let conflicting_to = matches!(e, ConfigError::ConflictingFields { .. }) && e.field().contains(".to[");
        if matches!(e, ConfigError::InvalidGrpcName { .. }) || conflicting_to || e.field().contains(".grpc") {
            return Self::InvalidGrpc;
        }
        let field = e.field();
        let last = field.rsplit('.').next().unwrap_or_default();
        match last.split('[').next().unwrap_or_default() {
            "paths" | "notPaths" => Self::InvalidPath,
            "hosts" | "notHosts" => Self::InvalidHost,
            "methods" => Self::InvalidMethod,
            "principals"
            | "notPrincipals"
            | "namespaces"
            | "notNamespaces"
            | "requestPrincipals"
            | "notRequestPrincipals" => Self::InvalidSource,
            "header" | "key" | "values" | "notValues" => Self::InvalidHeader,
            "name" => Self::InvalidName,
            "ports" => Self::InvalidPort,
            _ => Self::Invalid,
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an Allowlist could not be derived as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The condition's reason.
    pub reason: InvalidReason,
    /// The offending field and what is wrong with it, relative to the spec
    /// (`rules[0].to[0].paths[1]: ...`), plus what stands in.
    pub message: String,
}

impl Invalid {
    fn new(reason: InvalidReason, message: String) -> Self {
        Self { reason, message }
    }

    /// An error of the engine on a one-policy configuration, with the field
    /// path made relative to the Allowlist's spec (`origins` maps each
    /// rule's `to` entries of the configuration to the Allowlist's).
    fn from_engine(e: &ConfigError, origins: &[Vec<Origin>]) -> Self {
        let field = e.field();
        let field = field.strip_prefix("policies[0].").unwrap_or(field);
        let field = remap(field, origins);
        let reason = if field.contains(".openapi") {
            InvalidReason::InvalidOpenApi
        } else {
            InvalidReason::of(e)
        };
        Self::new(reason, format!("{field}: {}", e.detail()))
    }
}

/// Which `to` entry of the Allowlist a `to` entry of the configuration
/// comes from.
#[derive(Debug, Clone, Copy)]
struct Origin {
    /// Its index in the Allowlist's rule.
    index: usize,
    /// It is one of the entries an `openapi` entry expands to.
    openapi: bool,
}

/// `rules[r].to[k]...` of the configuration as a field of the Allowlist:
/// `rules[r].to[K]...`, or `rules[r].to[K].openapi` for an expanded entry.
fn remap(field: &str, origins: &[Vec<Origin>]) -> String {
    let parse = || -> Option<(usize, usize, &str)> {
        let rest = field.strip_prefix("rules[")?;
        let (r, rest) = rest.split_once(']')?;
        let rest = rest.strip_prefix(".to[")?;
        let (k, rest) = rest.split_once(']')?;
        Some((r.parse().ok()?, k.parse().ok()?, rest))
    };
    let Some((r, k, rest)) = parse() else {
        return field.to_string();
    };
    match origins.get(r).and_then(|o| o.get(k)) {
        Some(Origin { index, openapi: true }) => format!("rules[{r}].to[{index}].openapi"),
        Some(Origin { index, openapi: false }) => format!("rules[{r}].to[{index}]{rest}"),
        None => field.to_string(),
    }
}

/// How a `from` entry names its callers, checked on its own.
#[derive(Debug, Clone, Copy)]
pub(super) enum CallerRef<'a> {
    /// Workloads selected by labels.
    Workloads(&'a WorkloadSelector),
    /// Service accounts as `namespace/name`.
    ServiceAccounts(&'a [String]),
    /// Principals, passed through.
    Principals(&'a [String]),
    /// Not named: only the other fields (namespaces, negations) narrow.
    Unnamed,
}

impl<'a> TryFrom<&'a AllowlistSource> for CallerRef<'a> {
    type Error = &'static str;

    fn try_from(src: &'a AllowlistSource) -> Result<Self, Self::Error> {
        match (&src.workloads, &src.service_accounts, &src.principals) {
            (None, None, None)
                if src.namespaces.is_none()
                    && src.not_principals.is_none()
                    && src.not_namespaces.is_none()
                    && src.ip_blocks.is_none()
                    && src.not_ip_blocks.is_none()
                    && src.remote_ip_blocks.is_none()
                    && src.not_remote_ip_blocks.is_none()
                    && src.request_principals.is_none()
                    && src.not_request_principals.is_none() =>
            {
                Err(
                    "an entry must name its callers: set workloads, serviceAccounts, principals, namespaces, \
                     requestPrincipals, ipBlocks, remoteIpBlocks or a negation (omit `from` to admit any caller)",
                )
            }
            (None, None, None) => Ok(Self::Unnamed),
            (Some(w), None, None) => Ok(Self::Workloads(w)),
            (None, Some(sas), None) => Ok(Self::ServiceAccounts(sas)),
            (None, None, Some(p)) => Ok(Self::Principals(p)),
            _ => Err("set only one of workloads, serviceAccounts, principals per entry"),
        }
    }
}

/// The plugin configuration's action for an Allowlist's.
pub(super) fn policy_action(spec: &AllowlistSpec) -> config::Action {
    match spec.action {
        None | Some(AllowlistAction::Allow) => config::Action::Allow,
        Some(AllowlistAction::Deny) => config::Action::Deny,
    }
}

/// The mode of an Allowlist's policy: audit in an audit namespace, else its own.
pub(super) fn policy_mode(spec: &AllowlistSpec, audit: bool) -> Option<Mode> {
    if audit {
        Some(Mode::Audit)
    } else {
        spec.mode.map(|m| match m {
            AllowlistMode::Enforce => Mode::Enforce,
            AllowlistMode::Audit => Mode::Audit,
        })
    }
}

/// Translates the Allowlists of one namespace.
pub(super) struct Translator<'s> {
    /// The Allowlists' namespace.
    pub(super) ns: &'s str,
    /// The namespace is labelled audit.
    pub(super) audit: bool,
    /// Workloads and Services, and the trust domain.
    pub(super) state: &'s ClusterState,
}

impl Translator<'_> {
    /// The policy standing for `a`, and what its references resolved to.
    pub(super) fn policy(&self, a: &StoredAllowlist, name: &str) -> (Result<Policy, Invalid>, Resolved) {
        let mut resolved = Resolved::default();
        let result = self.translate(a, name, &mut resolved);
        (result, resolved)
    }

    fn translate(&self, a: &StoredAllowlist, name: &str, resolved: &mut Resolved) -> Result<Policy, Invalid> {
        let ns = self.ns;
        if let Some(e) = &a.unreadable {
            return Err(Invalid::new(InvalidReason::InvalidSpec, format!("spec: {e}")));
        }
        let mut principals_seen = BTreeSet::new();
        let mut rules = Vec::with_capacity(a.spec.rules.len());
        let mut origins = Vec::with_capacity(a.spec.rules.len());
        for (ri, rule) in a.spec.rules.iter().enumerate() {
            let from = match &rule.from {
                None => None,
                Some(sources) => {
                    let mut out = Vec::with_capacity(sources.len());
                    for (si, src) in sources.iter().enumerate() {
                        let source = self.source(src, &format!("rules[{ri}].from[{si}]"), resolved)?;
                        principals_seen.extend(source.principals.iter().flatten().cloned());
                        out.push(source);
                    }
                    Some(out)
                }
            };
            let mut origin = Vec::new();
            let to = match &rule.to {
                None => None,
                Some(ops) => {
                    let mut out = Vec::with_capacity(ops.len());
                    for (oi, op) in ops.iter().enumerate() {
                        let field = format!("rules[{ri}].to[{oi}]");
                        match &op.openapi {
                            None => {
                                out.push(self.operation(op, &field)?);
                                origin.push(Origin {
                                    index: oi,
                                    openapi: false,
                                });
                            }
                            Some(o) => {
                                let expanded = self.openapi(op, o, &field)?;
                                origin.extend(std::iter::repeat_n(
                                    Origin {
                                        index: oi,
                                        openapi: true,
                                    },
                                    expanded.len(),
                                ));
                                out.extend(expanded);
                            }
                        }
                    }
                    Some(out)
                }
            };
            origins.push(origin);
            rules.push(config::Rule {
                name: rule.name.clone(),
                from,
                to,
                when: rule.when.as_ref().map(|w| {
                    w.iter()
                        .map(|c| config::Condition {
                            header: c.header.clone(),
                            key: c.key.clone(),
                            values: c.values.clone(),
                            not_values: c.not_values.clone(),
                        })
                        .collect()
                }),
            });
        }
        resolved.principals = principals_seen.len() as u32;
        let policy = Policy {
            name: format!("{ns}/{name}"),
            selector: a.spec.selector.as_ref().map(|s| s.match_labels.clone()),
            mode: policy_mode(&a.spec, self.audit),
            action: policy_action(&a.spec),
            rules,
        };
        // The filter's engine is the judge of validity: what it accepts here,
        // the sidecars accept.
        let single = PluginConfig {
            policies: vec![policy.clone()],
            ..PluginConfig::default()
        };
        match Engine::compile(&single) {
            Ok(_) => Ok(policy),
            Err(e) => Err(Invalid::from_engine(&e, &origins)),
        }
    }

    fn source(&self, src: &AllowlistSource, field: &str, resolved: &mut Resolved) -> Result<config::Source, Invalid> {
        let caller = CallerRef::try_from(src)
            .map_err(|what| Invalid::new(InvalidReason::InvalidSource, format!("{field}: {what}")))?;
        let principal = |ns: &str, sa: &str| format!("{}/ns/{ns}/sa/{sa}", self.state.trust_domain);
        let principals = match caller {
            CallerRef::Workloads(w) => {
                let ns = w.namespace.as_deref().unwrap_or(self.ns);
                let mut set = BTreeSet::new();
                for (wl, count) in selected(self.state, ns, &w.selector.match_labels) {
                    resolved.workloads = resolved.workloads.saturating_add(count);
                    set.insert(principal(ns, &wl.service_account));
                }
                // A selector that matches nothing yields an empty list: nobody.
                Some(set.into_iter().collect())
            }
            CallerRef::ServiceAccounts(sas) => {
                let mut out = Vec::with_capacity(sas.len());
                for (i, sa) in sas.iter().enumerate() {
                    match sa.split_once('/') {
                        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                            out.push(principal(ns, name))
                        }
                        _ => {
                            return Err(Invalid::new(
                                InvalidReason::InvalidServiceAccount,
                                format!("{field}.serviceAccounts[{i}]: {sa:?} is not namespace/name"),
                            ))
                        }
                    }
                }
                Some(out)
            }
            CallerRef::Principals(p) => Some(p.to_vec()),
            CallerRef::Unnamed => None,
        };
        Ok(config::Source {
            principals,
            not_principals: src.not_principals.clone(),
            namespaces: src.namespaces.clone(),
            not_namespaces: src.not_namespaces.clone(),
            ip_blocks: src.ip_blocks.clone(),
            not_ip_blocks: src.not_ip_blocks.clone(),
            remote_ip_blocks: src.remote_ip_blocks.clone(),
            not_remote_ip_blocks: src.not_remote_ip_blocks.clone(),
            request_principals: src.request_principals.clone(),
            not_request_principals: src.not_request_principals.clone(),
        })
    }

    fn operation(&self, op: &AllowlistOperation, field: &str) -> Result<config::Operation, Invalid> {
        let mut ports: Option<Vec<u16>> = op.ports.clone();
        if let Some(refs) = &op.service_ports {
            let list = ports.get_or_insert_with(Vec::new);
            for (pi, r) in refs.iter().enumerate() {
                match service_port(self.state, self.ns, &r.service, &r.port) {
                    Some(found) => list.extend(found),
                    None => {
                        let message = format!(
                            "{field}.servicePorts[{pi}]: no port {} on Service {}/{}",
                            r.port, self.ns, r.service
                        );
                        return Err(Invalid::new(InvalidReason::UnresolvedServicePort, message));
                    }
                }
            }
            list.sort_unstable();
            list.dedup();
        }
        let grpc = match &op.grpc {
            Some(g) => Some(self.grpc(g, &format!("{field}.grpc"))?),
            None => None,
        };
        Ok(config::Operation {
            methods: op.methods.clone(),
            not_methods: op.not_methods.clone(),
            paths: op.paths.clone(),
            not_paths: op.not_paths.clone(),
            hosts: op.hosts.clone(),
            not_hosts: op.not_hosts.clone(),
            ports,
            not_ports: op.not_ports.clone(),
            grpc,
        })
    }

    /// The `to` entries of the configuration an `openapi` entry stands for:
    /// one per set of methods, with the path patterns of the operations that
    /// have exactly those methods, and the entry's hosts and ports.
    fn openapi(
        &self,
        op: &AllowlistOperation,
        o: &OpenApiOperations,
        field: &str,
    ) -> Result<Vec<config::Operation>, Invalid> {
        let invalid = |m: String| Invalid::new(InvalidReason::InvalidOpenApi, m);
        let beside: Vec<&str> = [
            ("methods", op.methods.is_some()),
            ("paths", op.paths.is_some()),
            ("notPaths", op.not_paths.is_some()),
            ("grpc", op.grpc.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if !beside.is_empty() {
            return Err(invalid(format!(
                "{field}: openapi sets the methods and paths; remove {} from this entry (hosts and ports combine)",
                beside.join(", ")
            )));
        }
        let selection = match (&o.operations, &o.tags) {
            (Some(ops), None) => Selection::Operations(ops),
            (None, Some(tags)) => Selection::Tags(tags),
            _ => {
                return Err(invalid(format!(
                "{field}.openapi: set exactly one of operations (operationIds, \"METHOD /path\" or [\"*\"]) and tags"
            )))
            }
        };
        let (Selection::Operations(list) | Selection::Tags(list)) = selection;
        if list.is_empty() {
            return Err(invalid(format!("{field}.openapi: an empty list admits nothing")));
        }
        let namespace = self.state.namespace(self.ns);
        let doc = apidesc::document(
            |name| namespace.and_then(|n| n.config_map(name)),
            self.ns,
            &o.api.config_map,
            &o.api.key,
        )
        .map_err(|e| Invalid::new(InvalidReason::UnresolvedApi, format!("{field}.openapi.api: {e}")))?;
        let selected = doc
            .select(selection)
            .map_err(|e| invalid(format!("{field}.openapi.{}: {e}", e.field())))?;
        let base = self.operation(op, field)?;
        Ok(method_paths(doc, &selected)
            .into_iter()
            .map(|e| config::Operation {
                methods: Some(e.methods),
                paths: Some(e.paths),
                not_paths: (!e.not_paths.is_empty()).then_some(e.not_paths),
                ..base.clone()
            })
            .collect())
    }

    /// A `grpc` entry, its methods checked against (and `["*"]` expanded
    /// from) its descriptors when it names them.
    fn grpc(&self, g: &GrpcMethods, field: &str) -> Result<config::GrpcMethods, Invalid> {
        let Some(api) = &g.api else {
            if g.idempotency_level.is_some() {
                return Err(Invalid::new(
                    InvalidReason::InvalidGrpc,
                    format!("{field}.idempotencyLevel: needs api (the descriptors that say which methods are of that level)"),
                ));
            }
            return Ok(config::GrpcMethods {
                service: g.service.clone(),
                methods: g.methods.clone(),
            });
        };
        let namespace = self.state.namespace(self.ns);
        let descriptors = apidesc::descriptors(
            |name| namespace.and_then(|n| n.config_map(name)),
            self.ns,
            &api.config_map,
            &api.key,
        )
        .map_err(|e| Invalid::new(InvalidReason::UnresolvedApi, format!("{field}.api: {e}")))?;
        let wanted = g.idempotency_level.map(|l| match l {
            IdempotencyLevel::NoSideEffects => Idempotency::NoSideEffects,
            IdempotencyLevel::Idempotent => Idempotency::Idempotent,
        });
        let methods = descriptors
            .select(&g.service, &g.methods, wanted)
            .map_err(|e| Invalid::new(InvalidReason::InvalidGrpc, format!("{field}.{}: {e}", e.field())))?;
        Ok(config::GrpcMethods {
            service: g.service.clone(),
            methods,
        })
    }
}
