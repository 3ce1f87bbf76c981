//! One `AuthorizationPolicy` converted into one `Allowlist`, field by field.
//!
//! Each Istio field is handled in exactly one place: [`Converter::source`],
//! [`Converter::operation`] and [`Converter::condition`] hold one line per
//! field, either mapping it (`out.principals = self.strings(...)`) or
//! reporting it ([`Converter::unsupported`]) when the Allowlist cannot say it.
//! Every report names the field's path in the AuthorizationPolicy
//! (`spec.rules[0].when[1].key`).
//!
//! The conversion keeps Istio's meaning or refuses: where meshward would
//! admit more than Istio (a host without a port in an ALLOW rule), the field
//! is reported, never approximated. Where meshward is stricter by design
//! (anonymous callers in ALLOW rules, canonical paths, header values one by
//! one) the field converts; `docs/cli.md` lists those differences. The
//! fields where that strictness changes verdicts for a whole class of
//! requests (negative identity or JWT fields of ALLOW rules, which then
//! refuse callers without an identity or a token; the direct peer, unknown
//! to meshward behind `x-forwarded-for`) also get a [`Conversion::warnings`]
//! entry naming them.

use std::collections::BTreeMap;

use meshward_filter::address::Cidr;
use meshward_filter::PatternError;

use super::istio::{self, Action, AuthorizationPolicy};
use crate::crd::{
    Allowlist, AllowlistAction, AllowlistMode, AllowlistOperation, AllowlistRule, AllowlistSource, AllowlistSpec,
    HeaderCondition, Selector,
};

/// The annotation naming the AuthorizationPolicy an Allowlist was imported
/// from, `<namespace>/<name>`.
pub const IMPORTED_FROM: &str = "meshward.io/imported-from";

/// Istio's annotation for a policy in dry run (evaluated, never enforced).
pub const DRY_RUN: &str = "istio.io/dry-run";

/// The `when` keys an Allowlist expresses, as Istio writes them.
pub const SUPPORTED_KEYS: [&str; 12] = [
    "request.headers[<name>]",
    "source.ip",
    "remote.ip",
    "destination.ip",
    "destination.port",
    "source.namespace",
    "source.principal",
    "connection.sni",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[<name>]",
];

/// Keys whose values are addresses or CIDRs.
const ADDRESS_KEYS: [&str; 3] = ["source.ip", "remote.ip", "destination.ip"];

/// Keys read from the peer identity or the verified JWT: a request without
/// one fails them in an ALLOW rule, `notValues` included.
const IDENTITY_KEYS: [&str; 5] = [
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
];

/// Why one field could not be expressed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unexpressible {
    /// The field's path in the AuthorizationPolicy (`spec.rules[0].to[0].operation.ports[1]`).
    pub field: String,
    /// Why, and what to write instead when there is a way.
    pub reason: String,
}

/// What the conversion needs besides the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Istio's root namespace: its policies apply to the whole mesh.
    pub root_namespace: String,
}

/// Istio's default root namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

impl Default for Options {
    fn default() -> Self {
        Self {
            root_namespace: DEFAULT_ROOT_NAMESPACE.into(),
        }
    }
}

/// The namespace of `p` (`default` when absent, as kubectl places it).
pub fn namespace_of(p: &AuthorizationPolicy) -> &str {
    p.metadata.namespace.as_deref().unwrap_or("default")
}

/// The result of converting one policy.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The Allowlist with the same meaning, or every field that cannot be
    /// expressed.
    pub allowlist: Result<Allowlist, Vec<Unexpressible>>,
    /// Converted fields where meshward's deliberate strictness refuses a
    /// class of requests Istio would admit (or refuse nothing of): callers
    /// without an identity or a token in an ALLOW rule's negative fields,
    /// requests whose direct peer meshward does not know. They convert;
    /// this names them so nobody is surprised.
    pub warnings: Vec<Unexpressible>,
}

/// Converts `p`: the Allowlist with the same meaning, or every field that
/// cannot be expressed (then no Allowlist: half a policy means something
/// else, and for an ALLOW policy leaving it out entirely means less).
pub fn convert(p: &AuthorizationPolicy, options: &Options) -> Result<Allowlist, Vec<Unexpressible>> {
    conversion(p, options).allowlist
}

/// Converts `p` as [`convert`] does, with the warnings.
pub fn conversion(p: &AuthorizationPolicy, options: &Options) -> Conversion {
    let mut c = Converter {
        problems: Vec::new(),
        warnings: Vec::new(),
        action: Action::Allow,
    };
    let allowlist = c.policy(p, options);
    Conversion {
        allowlist: if c.problems.is_empty() {
            Ok(allowlist)
        } else {
            Err(c.problems)
        },
        warnings: c.warnings,
    }
}

/// Whether an operation field admits (`hosts` of ALLOW, `notHosts` of
/// DENY) or refuses when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polarity {
    /// A match lets requests through.
    Admits,
    /// A match keeps requests out.
    Refuses,
}

/// The state of one conversion: the problems and warnings found so far
/// and the action.
struct Converter {
    problems: Vec<Unexpressible>,
    warnings: Vec<Unexpressible>,
    action: Action,
}

/// Why a negative identity field of an ALLOW rule is named.
const ANONYMOUS: &str = "in an ALLOW rule meshward admits no caller without a peer identity (plaintext) \
                         here, where Istio's negative field admits it; add `principals: [\"*\"]` to say so \
                         in both";
/// Why a negative JWT field of an ALLOW rule is named.
const TOKENLESS: &str = "in an ALLOW rule meshward admits no request without a verified JWT here, where \
                         Istio's negative field admits it; add `requestPrincipals: [\"*\"]` to say so in both";
/// Why a field reading the direct peer of an ALLOW rule is named.
const DIRECT_PEER_ALLOW: &str = "meshward does not know the direct peer of a request whose client Envoy took \
                                 from `x-forwarded-for` (a sidecar's inbound listener does, for any request \
                                 carrying it): such a request never matches this, where Istio reads the \
                                 connection's peer; `remoteIpBlocks` / `remote.ip` judge the client";
/// Why a field reading the direct peer of a DENY rule is named.
const DIRECT_PEER_DENY: &str = "meshward does not know the direct peer of a request whose client Envoy took \
                                from `x-forwarded-for` (a sidecar's inbound listener does, for any request \
                                carrying it): this refuses such a request, where Istio reads the \
                                connection's peer; `remoteIpBlocks` / `remote.ip` judge the client";

impl Converter {
    fn report(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Unexpressible {
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn warn(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(Unexpressible {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Warns about `name` if it is set (see [`Conversion::warnings`]).
    fn warn_if_set(&mut self, value: &Option<Vec<String>>, at: &str, name: &str, reason: &str) {
        if value.as_ref().is_some_and(|v| !v.is_empty()) {
            self.warn(format!("{at}.{name}"), reason);
        }
    }

    /// Why a field reading the direct peer is named, for this action.
    fn direct_peer(&self) -> &'static str {
        match self.action {
            Action::Deny => DIRECT_PEER_DENY,
            _ => DIRECT_PEER_ALLOW,
        }
    }

    /// Address blocks: a CIDR with bits set beyond its prefix becomes the
    /// network Istio matches (`10.0.0.1/8` → `10.0.0.0/8`); anything else
    /// as written, for the engine to judge.
    fn blocks(&self, value: &Option<Vec<String>>) -> Option<Vec<String>> {
        Some(self.strings(value)?.iter().map(|b| network(b)).collect())
    }

    /// Reports a field the Allowlist has no equivalent for, if it is set.
    fn unsupported<T>(&mut self, value: &Option<Vec<T>>, at: &str, name: &str, reason: &str) {
        if value.as_ref().is_some_and(|v| !v.is_empty()) {
            self.report(format!("{at}.{name}"), reason);
        }
    }

    /// A list of strings, passed through; an empty list is absent, as in
    /// Istio (protobuf does not tell them apart).
    fn strings(&self, value: &Option<Vec<String>>) -> Option<Vec<String>> {
        value.as_ref().filter(|v| !v.is_empty()).cloned()
    }

    fn policy(&mut self, p: &AuthorizationPolicy, options: &Options) -> Allowlist {
        let name = p.metadata.name.clone().unwrap_or_default();
        let ns = namespace_of(p).to_string();
        if ns == options.root_namespace {
            self.report(
                "metadata.namespace",
                format!(
                    "a policy in Istio's root namespace ({ns}) applies to the whole mesh; an Allowlist applies \
                     to its own namespace: import a copy into each namespace (or give --root-namespace if the \
                     mesh's root namespace is another)"
                ),
            );
        }
        let spec = &p.spec;
        if spec.target_ref.is_some() {
            self.report(
                "spec.targetRef",
                "a policy attached to a Gateway, waypoint or Service has no Allowlist equivalent (an Allowlist \
                 protects sidecars, selected by labels)",
            );
        }
        self.unsupported(
            &spec.target_refs,
            "spec",
            "targetRefs",
            "a policy attached to Gateways, waypoints or Services has no Allowlist equivalent (an Allowlist \
             protects sidecars, selected by labels)",
        );
        self.action = spec.action.unwrap_or(Action::Allow);
        let action = match self.action {
            Action::Allow => AllowlistAction::Allow,
            Action::Deny => AllowlistAction::Deny,
            Action::Audit => {
                self.report(
                    "spec.action",
                    "AUDIT only marks requests for a telemetry plugin; an Allowlist decides them (its \
                     closest form, `mode: audit`, logs what it would deny, not what it matches)",
                );
                AllowlistAction::Allow
            }
            Action::Custom => {
                self.report(
                    "spec.action",
                    "CUSTOM delegates to an external authorizer; meshward decides every request itself",
                );
                AllowlistAction::Allow
            }
        };
        if spec.provider.is_some() && self.action != Action::Custom {
            self.report("spec.provider", "Istio refuses a provider without action CUSTOM");
        }
        let mode = match p.metadata.annotations.as_ref().and_then(|a| a.get(DRY_RUN)) {
            None => None,
            Some(v) => match parse_go_bool(v) {
                Some(true) => Some(AllowlistMode::Audit),
                Some(false) => None,
                None => {
                    self.report(
                        format!("metadata.annotations[{DRY_RUN}]"),
                        format!("{v:?} is not a boolean: Istio ignores it and enforces; write \"true\" or \"false\""),
                    );
                    None
                }
            },
        };
        let selector = spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .filter(|l| !l.is_empty())
            .map(|match_labels| Selector { match_labels });
        let rules = spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, r)| self.rule(r, &format!("spec.rules[{i}]")))
            .collect();
        let mut allowlist = Allowlist::new(
            &name,
            AllowlistSpec {
                selector,
                mode,
                action: (action == AllowlistAction::Deny).then_some(action),
                rules,
            },
        );
        allowlist.metadata.namespace = Some(ns.clone());
        allowlist.metadata.annotations = Some(BTreeMap::from([(IMPORTED_FROM.to_string(), format!("{ns}/{name}"))]));
        allowlist
    }

    fn rule(&mut self, r: &istio::Rule, at: &str) -> AllowlistRule {
        let mut out = AllowlistRule::default();
        if let Some(from) = &r.from {
            if from.is_empty() {
                self.report(
                    format!("{at}.from"),
                    "Istio refuses an empty `from` (omit it for any caller)",
                );
            }
            let sources: Vec<Option<AllowlistSource>> = from
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let at = format!("{at}.from[{j}]");
                    match &f.source {
                        Some(s) => self.source(s, &format!("{at}.source")),
                        None => {
                            self.report(format!("{at}.source"), "Istio refuses a `from` entry without `source`");
                            None
                        }
                    }
                })
                .collect();
            // An entry that matches any caller makes the whole list match any.
            out.from = sources.into_iter().collect();
        }
        if let Some(to) = &r.to {
            if to.is_empty() {
                self.report(
                    format!("{at}.to"),
                    "Istio refuses an empty `to` (omit it for any operation)",
                );
            }
            let operations: Vec<Option<AllowlistOperation>> = to
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let at = format!("{at}.to[{j}]");
                    match &t.operation {
                        Some(o) => self.operation(o, &format!("{at}.operation")),
                        None => {
                            self.report(
                                format!("{at}.operation"),
                                "Istio refuses a `to` entry without `operation`",
                            );
                            None
                        }
                    }
                })
                .collect();
            out.to = operations.into_iter().collect();
        }
        let when: Vec<HeaderCondition> = r
            .when
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(j, w)| self.condition(w, &format!("{at}.when[{j}]")))
            .collect();
        out.when = (!when.is_empty()).then_some(when);
        out
    }

    /// A source, or `None` when it sets nothing (it then matches any caller;
    /// Istio's validation refuses it, reported).
    fn source(&mut self, s: &istio::Source, at: &str) -> Option<AllowlistSource> {
        let out = AllowlistSource {
            principals: self.strings(&s.principals),
            not_principals: self.strings(&s.not_principals),
            namespaces: self.strings(&s.namespaces),
            not_namespaces: self.strings(&s.not_namespaces),
            request_principals: self.strings(&s.request_principals),
            not_request_principals: self.strings(&s.not_request_principals),
            ip_blocks: self.blocks(&s.ip_blocks),
            not_ip_blocks: self.blocks(&s.not_ip_blocks),
            remote_ip_blocks: self.blocks(&s.remote_ip_blocks),
            not_remote_ip_blocks: self.blocks(&s.not_remote_ip_blocks),
            ..AllowlistSource::default()
        };
        if self.action == Action::Allow {
            // A positive field of the same kind already asks for the
            // identity (or the token) in both systems: no difference then.
            if out.principals.is_none() && out.namespaces.is_none() {
                self.warn_if_set(&s.not_principals, at, "notPrincipals", ANONYMOUS);
                self.warn_if_set(&s.not_namespaces, at, "notNamespaces", ANONYMOUS);
            }
            if out.request_principals.is_none() {
                self.warn_if_set(&s.not_request_principals, at, "notRequestPrincipals", TOKENLESS);
            }
        }
        let direct_peer = self.direct_peer();
        self.warn_if_set(&s.ip_blocks, at, "ipBlocks", direct_peer);
        self.warn_if_set(&s.not_ip_blocks, at, "notIpBlocks", direct_peer);
        const SA: &str = "Istio matches service accounts in every trust domain; write `principals` \
                          (`<trust-domain>/ns/<namespace>/sa/<name>`) for the trust domains you mean";
        self.unsupported(&s.service_accounts, at, "serviceAccounts", SA);
        self.unsupported(&s.not_service_accounts, at, "notServiceAccounts", SA);
        const TD: &str = "meshward has no trust-domain field; write `principals` with the trust domain \
                          (`<trust-domain>/*`)";
        self.unsupported(&s.trust_domains, at, "trustDomains", TD);
        self.unsupported(&s.not_trust_domains, at, "notTrustDomains", TD);
        if out == AllowlistSource::default() && !has_any_source_field(s) {
            self.report(at, "Istio refuses an empty `source`");
        }
        (out != AllowlistSource::default()).then_some(out)
    }

    /// An operation, or `None` when it sets nothing.
    fn operation(&mut self, o: &istio::Operation, at: &str) -> Option<AllowlistOperation> {
        let (hosts_polarity, not_hosts_polarity) = match self.action {
            Action::Deny => (Polarity::Refuses, Polarity::Admits),
            _ => (Polarity::Admits, Polarity::Refuses),
        };
        let out = AllowlistOperation {
            hosts: self.hosts(&o.hosts, &format!("{at}.hosts"), hosts_polarity),
            not_hosts: self.hosts(&o.not_hosts, &format!("{at}.notHosts"), not_hosts_polarity),
            ports: self.ports(&o.ports, &format!("{at}.ports")),
            not_ports: self.ports(&o.not_ports, &format!("{at}.notPorts")),
            methods: self.strings(&o.methods),
            not_methods: self.strings(&o.not_methods),
            paths: self.paths(&o.paths, &format!("{at}.paths")),
            not_paths: self.paths(&o.not_paths, &format!("{at}.notPaths")),
            ..AllowlistOperation::default()
        };
        let set = [
            &o.hosts,
            &o.not_hosts,
            &o.ports,
            &o.not_ports,
            &o.methods,
            &o.not_methods,
            &o.paths,
            &o.not_paths,
        ]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
        if !set {
            self.report(at, "Istio refuses an empty `operation`");
        }
        (out != AllowlistOperation::default()).then_some(out)
    }

    /// Hosts: Istio matches the whole `:authority`, so `reviews` does not
    /// match `reviews:9080`; meshward's `reviews` matches every port. Where
    /// that would admit more (hosts of ALLOW, notHosts of DENY), a name
    /// without a port is reported.
    fn hosts(&mut self, value: &Option<Vec<String>>, at: &str, polarity: Polarity) -> Option<Vec<String>> {
        let hosts = self.strings(value)?;
        if polarity == Polarity::Admits {
            for (k, h) in hosts.iter().enumerate() {
                if names_no_port(h) {
                    self.report(
                        format!("{at}[{k}]"),
                        format!(
                            "Istio matches {h:?} only when the authority has no port; meshward's {h:?} matches every \
                             port, so it would admit more: write each authority with its port (\"{}:<port>\")",
                            h.trim_end_matches('.')
                        ),
                    );
                }
            }
        }
        Some(hosts)
    }

    /// Ports: Istio writes them as strings.
    fn ports(&mut self, value: &Option<Vec<String>>, at: &str) -> Option<Vec<u16>> {
        let ports = self.strings(value)?;
        let mut out = Vec::new();
        for (k, p) in ports.iter().enumerate() {
            match p.parse::<u16>() {
                Ok(n) if n > 0 && !p.starts_with('+') => out.push(n),
                _ => self.report(format!("{at}[{k}]"), format!("{p:?} is not a port (1-65535)")),
            }
        }
        Some(out)
    }

    /// Paths, templates included, unchanged; `regex:` means a regular
    /// expression to meshward but a literal to Istio.
    fn paths(&mut self, value: &Option<Vec<String>>, at: &str) -> Option<Vec<String>> {
        let paths = self.strings(value)?;
        for (k, p) in paths.iter().enumerate() {
            if p.starts_with("regex:") {
                self.report(
                    format!("{at}[{k}]"),
                    "Istio takes this as a literal path, which meshward reads as a regular expression",
                );
            }
        }
        Some(paths)
    }

    /// A `when` condition: `request.headers[<name>]` becomes `header: <name>`,
    /// the other keys meshward knows stay `key`, address values as
    /// [`Converter::blocks`] writes them.
    fn condition(&mut self, w: &istio::Condition, at: &str) -> Option<HeaderCondition> {
        let values = self.strings(&w.values);
        let not_values = self.strings(&w.not_values);
        if values.is_none() && not_values.is_none() {
            self.report(at, "Istio refuses a condition without `values` or `notValues`");
            return None;
        }
        let key = w.key.as_str();
        if let Some(header) = key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')) {
            return Some(HeaderCondition {
                header: Some(header.to_string()),
                values,
                not_values,
                ..HeaderCondition::default()
            });
        }
        let claims = key.starts_with("request.auth.claims[");
        if claims || SUPPORTED_KEYS.contains(&key) {
            let address = ADDRESS_KEYS.contains(&key);
            if key == "source.ip" {
                self.warn(format!("{at}.key"), self.direct_peer());
            }
            let identity = claims || IDENTITY_KEYS.contains(&key);
            if identity && values.is_none() && self.action == Action::Allow {
                let reason = if key.starts_with("request.auth.") {
                    TOKENLESS
                } else {
                    ANONYMOUS
                };
                self.warn(format!("{at}.notValues"), reason);
            }
            return Some(HeaderCondition {
                key: Some(key.to_string()),
                values: if address { self.blocks(&w.values) } else { values },
                not_values: if address {
                    self.blocks(&w.not_values)
                } else {
                    not_values
                },
                ..HeaderCondition::default()
            });
        }
        let reason = if key.is_empty() {
            "Istio refuses a condition without a key".to_string()
        } else {
            format!(
                "{key:?} has no meshward equivalent; supported keys: {}",
                SUPPORTED_KEYS.join(", ")
            )
        };
        self.report(format!("{at}.key"), reason);
        None
    }
}

/// The block `b` as meshward accepts it: the network of a CIDR with bits
/// set beyond its prefix, which is what Istio matches; otherwise unchanged.
fn network(b: &str) -> String {
    match Cidr::parse(b) {
        Err(PatternError::HostBitsSet { network }) => network,
        _ => b.to_string(),
    }
}

/// Whether a source sets any field (empty lists count as unset).
fn has_any_source_field(s: &istio::Source) -> bool {
    [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.service_accounts,
        &s.not_service_accounts,
        &s.trust_domains,
        &s.not_trust_domains,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
    ]
    .iter()
    .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
}

/// Whether host pattern `h` names a host (exactly or by suffix) without a
/// port: Istio then matches only portless authorities, meshward every port.
/// `*` and prefixes (`reviews*`) match ports in both.
fn names_no_port(h: &str) -> bool {
    if h == "*" || h.ends_with('*') {
        return false;
    }
    let port = match h.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map(|(_, p)| p.strip_prefix(':').is_some()),
        None => Some(h.contains(':')),
    };
    port == Some(false)
}

/// Go's `strconv.ParseBool`, which Istio reads the dry-run annotation with.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_without_ports() {
        for h in ["reviews", "*.example.com", "Reviews.", "[::1]"] {
            assert!(names_no_port(h), "{h}");
        }
        for h in ["*", "reviews*", "reviews:9080", "*.example.com:443", "[::1]:80"] {
            assert!(!names_no_port(h), "{h}");
        }
    }

    fn policy(yaml: &str) -> AuthorizationPolicy {
        let v: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        crate::manifests::strict(&v).unwrap()
    }

    fn fields(r: Result<Allowlist, Vec<Unexpressible>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|u| u.field).collect()
    }

    const HEAD: &str =
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\n";

    #[test]
    fn hosts_without_ports_are_refused_only_where_they_would_admit_more() {
        let p = |action: &str, field: &str| {
            policy(&format!(
                "{HEAD}spec:\n  action: {action}\n  rules: [{{to: [{{operation: {{{field}: [reviews, \"reviews:9080\"]}}}}]}}]\n"
            ))
        };
        let o = Options::default();
        assert_eq!(
            fields(convert(&p("ALLOW", "hosts"), &o)),
            ["spec.rules[0].to[0].operation.hosts[0]"]
        );
        assert_eq!(
            fields(convert(&p("DENY", "notHosts"), &o)),
            ["spec.rules[0].to[0].operation.notHosts[0]"]
        );
        // Stricter than Istio: converted.
        assert!(convert(&p("DENY", "hosts"), &o).is_ok());
        assert!(convert(&p("ALLOW", "notHosts"), &o).is_ok());
    }

    #[test]
    fn empty_lists_are_absent_and_empty_entries_are_reported() {
        let o = Options::default();
        let a = convert(
            &policy(&format!(
                "{HEAD}spec:\n  rules:\n  - from: [{{source: {{principals: [a]}}}}, {{source: {{notPrincipals: [b], namespaces: []}}}}]\n    to: [{{operation: {{methods: [GET], paths: []}}}}]\n"
            )),
            &o,
        )
        .unwrap();
        let rule = &a.spec.rules[0];
        let from = rule.from.as_ref().unwrap();
        assert_eq!(from[1].namespaces, None, "[] is unset, as in Istio");
        assert_eq!(rule.to.as_ref().unwrap()[0].paths, None);
        // An empty source is refused by Istio, reported rather than read as "anyone".
        let r = convert(
            &policy(&format!(
                "{HEAD}spec:\n  rules: [{{from: [{{source: {{principals: []}}}}]}}]\n"
            )),
            &o,
        );
        assert_eq!(fields(r), ["spec.rules[0].from[0].source"]);
        let r = convert(&policy(&format!("{HEAD}spec:\n  rules: [{{from: []}}]\n")), &o);
        assert_eq!(fields(r), ["spec.rules[0].from"]);
    }

    #[test]
    fn dry_run_ports_and_regex_paths() {
        let o = Options::default();
        let dry = |v: &str| {
            policy(&format!(
                "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: shop, annotations: {{istio.io/dry-run: \"{v}\"}}}}\nspec: {{}}\n"
            ))
        };
        assert_eq!(convert(&dry("True"), &o).unwrap().spec.mode, Some(AllowlistMode::Audit));
        assert_eq!(convert(&dry("0"), &o).unwrap().spec.mode, None);
        assert_eq!(
            fields(convert(&dry("yes"), &o)),
            ["metadata.annotations[istio.io/dry-run]"]
        );
        let r = convert(
            &policy(&format!(
                "{HEAD}spec:\n  rules: [{{to: [{{operation: {{ports: [\"80\", \"0\", \"65536\", \"+1\"], paths: [\"regex:/a\"]}}}}]}}]\n"
            )),
            &o,
        );
        assert_eq!(
            fields(r),
            [
                "spec.rules[0].to[0].operation.ports[1]",
                "spec.rules[0].to[0].operation.ports[2]",
                "spec.rules[0].to[0].operation.ports[3]",
                "spec.rules[0].to[0].operation.paths[0]",
            ]
        );
    }

    #[test]
    fn blocks_with_host_bits_become_their_network() {
        assert_eq!(network("10.0.0.1/8"), "10.0.0.0/8");
        assert_eq!(network("2001:db8::1/32"), "2001:db8::/32");
        // Already a network, a single address, or refused by meshward for
        // another reason: as written.
        for b in ["10.0.0.0/8", "10.1.2.3", "::1", "10.0.0.0/33", "fe80::1%eth0", ""] {
            assert_eq!(network(b), b);
        }
    }

    #[test]
    fn warnings_name_negative_identity_fields_of_allow_rules_and_the_direct_peer() {
        let o = Options::default();
        let warned = |action: &str, rule: &str| {
            let c = conversion(
                &policy(&format!("{HEAD}spec:\n  action: {action}\n  rules: [{rule}]\n")),
                &o,
            );
            assert!(c.allowlist.is_ok());
            c.warnings.into_iter().map(|w| w.field).collect::<Vec<_>>()
        };
        let negative = "{from: [{source: {notPrincipals: [a], notRequestPrincipals: [b]}}], \
                        when: [{key: source.principal, notValues: [c]}, {key: \"request.auth.claims[g]\", notValues: [d]}]}";
        assert_eq!(
            warned("ALLOW", negative),
            [
                "spec.rules[0].from[0].source.notPrincipals",
                "spec.rules[0].from[0].source.notRequestPrincipals",
                "spec.rules[0].when[0].notValues",
                "spec.rules[0].when[1].notValues",
            ]
        );
        // Deny rules fail closed on a missing identity or token, as Istio's.
        assert!(warned("DENY", negative).is_empty());
        // A positive field of the same kind asks for the identity in both.
        let both = "{from: [{source: {principals: [\"*\"], notPrincipals: [a], requestPrincipals: [\"*\"], \
                    notRequestPrincipals: [b]}}], when: [{key: source.principal, values: [\"*\"], notValues: [c]}]}";
        assert!(warned("ALLOW", both).is_empty());
        // The direct peer, in either action; the original client never.
        let peer = "{from: [{source: {notIpBlocks: [10.0.0.0/8], remoteIpBlocks: [10.0.0.0/8]}}], \
                    when: [{key: source.ip, values: [10.0.0.1]}, {key: remote.ip, values: [10.0.0.1]}]}";
        let want = ["spec.rules[0].from[0].source.notIpBlocks", "spec.rules[0].when[0].key"];
        assert_eq!(warned("ALLOW", peer), want);
        assert_eq!(warned("DENY", peer), want);
    }

    #[test]
    fn go_booleans() {
        assert_eq!(parse_go_bool("True"), Some(true));
        assert_eq!(parse_go_bool("0"), Some(false));
        assert_eq!(parse_go_bool("yes"), None);
    }
}
