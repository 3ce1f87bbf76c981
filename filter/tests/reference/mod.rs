//! A deliberately naive evaluator of the plugin configuration, written
//! straight from the documented semantics (docs/configuration.md,
//! docs/allowlist.md), to check the engine against.
//!
//! It has no index, no automaton and no matching code in common with the
//! engine: it walks every applicable policy and every rule in configuration
//! order and compares strings, building one `regex` per template or regular
//! expression it meets. It shares only the canonicalization functions, which
//! have their own tests and fuzz target.
//!
//! Two users: the differential property test (`filter/tests/differential.rs`,
//! part of `cargo test`) and the differential fuzz target
//! (`filter/fuzz/fuzz_targets/differential.rs`, which includes this file by
//! path). It may assume the configuration compiled: it is only asked about
//! configurations the engine accepted.
// Test code: a pattern the engine accepted but `regex` does not is a bug worth
// a panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use meshward_filter::canonical::{canonicalize_authority, canonicalize_path, validate_method};
use meshward_filter::config::{Condition, Operation, Policy, Rule, Source};
use meshward_filter::{Action, Mode, PluginConfig, Verdict};

/// A request as received: every attribute raw, as the engine takes it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:path`, with the query string.
    pub path: &'a str,
    /// `:authority`; `None` when absent.
    pub authority: Option<&'a str>,
    /// The destination port.
    pub port: Option<u16>,
    /// The caller's principal (SPIFFE id without `spiffe://`); `None` = anonymous.
    pub principal: Option<&'a str>,
    /// The headers, one entry per field line.
    pub headers: &'a [(String, String)],
    /// The direct peer; `None` = unknown.
    pub direct_peer: Option<IpAddr>,
    /// The original client; `None` = unknown.
    pub remote: Option<IpAddr>,
    /// The destination address; `None` = unknown.
    pub destination: Option<IpAddr>,
    /// The TLS server name; `None` = none sent.
    pub sni: Option<&'a str>,
    /// The claims of the verified JWT as a JSON object; `None` = no token.
    pub auth: Option<&'a serde_json::Value>,
}

/// What the reference decides: the verdict, the mode it was decided in, and
/// the deciding rule as `policy/rule`: the matching enforce deny rule, else
/// the admitting allow rule (the first match in configuration order, enforce
/// policies first), or the audit deny rule that turned the verdict into
/// `audit_deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The mode of the policies that gave the verdict.
    pub mode: Mode,
    /// `policy/rule` of the deciding rule.
    pub rule: Option<String>,
}

/// Istio's string match: exact, `prefix*`, `*suffix`, `*`.
fn str_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(p) = pattern.strip_suffix('*') {
        value.starts_with(p)
    } else if let Some(s) = pattern.strip_prefix('*') {
        value.ends_with(s)
    } else {
        pattern == value
    }
}

/// A template as Envoy's `uri_template` matches it (Istio translates `{*}`
/// to `*` and `{**}` to `**`): the regular expression Envoy builds, one part
/// per `/`-separated template segment, joined by `/`. The operators match
/// RFC 3986 `pchar` (with `*`, as Envoy 1.40 does), and the characters Istio's
/// default path normalization percent-encodes first (`"<>`{}|^`).
fn template_match(template: &str, path: &str) -> bool {
    const PCHAR: &str = r#"A-Za-z0-9\-._~%!$&'()*+,;:@="<>`{}|^"#;
    let parts: Vec<String> = template[1..]
        .split('/')
        .map(|seg| match seg {
            "{*}" => format!("[{PCHAR}]+"),
            "{**}" => format!("[{PCHAR}/]*"),
            lit => regex::escape(lit),
        })
        .collect();
    regex::Regex::new(&format!("^/{}$", parts.join("/")))
        .unwrap()
        .is_match(path)
}

fn path_match(pattern: &str, path: &str) -> bool {
    if let Some(re) = pattern.strip_prefix("regex:") {
        return regex::Regex::new(&format!("^(?:{re})$")).unwrap().is_match(path);
    }
    if pattern.contains('{') {
        return template_match(pattern, path);
    }
    str_match(pattern, path)
}

fn host_match(pattern: &str, host: &str, port: Option<u16>) -> bool {
    // A port follows the last ':', unless that ':' is inside an IPv6 literal.
    let (name, want_port) = match pattern.rsplit_once(':') {
        Some((n, p)) if !p.contains(']') => (n, Some(p.parse::<u16>().unwrap())),
        _ => (pattern, None),
    };
    // "SVC." names the same host as "svc".
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    str_match(&name, host) && want_port.is_none_or(|p| Some(p) == port)
}

/// Whether `ip` is in the block written `block` (`a.b.c.d`, `a.b.c.d/n`,
/// IPv6 alike), comparing the leading bits as text of binary digits.
fn in_block(block: &str, ip: IpAddr) -> bool {
    let (addr, len) = match block.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<usize>().unwrap())),
        None => (block, None),
    };
    let addr: IpAddr = addr.parse().unwrap();
    let bits = |ip: IpAddr| -> String {
        match ip {
            IpAddr::V4(v) => v.octets().iter().map(|o| format!("{o:08b}")).collect(),
            IpAddr::V6(v) => v.octets().iter().map(|o| format!("{o:08b}")).collect(),
        }
    };
    let (a, b) = (bits(addr), bits(ip));
    let len = len.unwrap_or(a.len());
    a.len() == b.len() && a[..len] == b[..len]
}

/// Address fields: unset passes; an unknown address fails an allow rule's
/// and satisfies a deny rule's.
fn blocks_pass(pos: &Option<Vec<String>>, neg: &Option<Vec<String>>, ip: Option<IpAddr>, deny: bool) -> bool {
    if pos.is_none() && neg.as_ref().is_none_or(|l| l.is_empty()) {
        return true;
    }
    // An empty positive list holds nothing, whether the address is known or not.
    let Some(ip) = ip else {
        return deny && pos.as_ref().is_none_or(|l| !l.is_empty());
    };
    pos.as_ref().is_none_or(|l| l.iter().any(|b| in_block(b, ip))) && neg.iter().flatten().all(|b| !in_block(b, ip))
}

fn namespace(principal: &str) -> Option<&str> {
    let parts: Vec<&str> = principal.split('/').collect();
    (parts.len() == 5 && parts[1] == "ns" && parts[3] == "sa" && parts.iter().all(|p| !p.is_empty())).then(|| parts[2])
}

/// A request after canonicalization.
struct Canonical<'a> {
    method: &'a str,
    path: &'a str,
    host: Option<(String, Option<u16>)>,
    port: Option<u16>,
    principal: Option<&'a str>,
    headers: &'a [(String, String)],
    auth: Option<&'a serde_json::Value>,
    input: Input<'a>,
}

/// `deny`: the rule is a deny policy's, where a missing identity fails the
/// positive fields and passes the negative ones; in an allow policy an
/// anonymous caller matches no entry.
fn source_matches(s: &Source, r: &Canonical<'_>, deny: bool) -> bool {
    if !blocks_pass(&s.ip_blocks, &s.not_ip_blocks, r.input.direct_peer, deny)
        || !blocks_pass(&s.remote_ip_blocks, &s.not_remote_ip_blocks, r.input.remote, deny)
    {
        return false;
    }
    let set = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
    let sets_peer =
        s.principals.is_some() || s.namespaces.is_some() || set(&s.not_principals) || set(&s.not_namespaces);
    let sets_jwt = s.request_principals.is_some() || set(&s.not_request_principals);
    (!sets_peer || peer_matches(s, r, deny)) && (!sets_jwt || jwt_source_matches(s, r, deny))
}

/// A regular expression for one Istio string matcher of the RBAC generator:
/// `.+` for any value, or an exact, prefix or suffix match.
fn istio_matcher(kind: &str, text: &str) -> String {
    match kind {
        "any" => ".+".to_string(),
        "exact" => regex::escape(text),
        "prefix" => format!("{}.*", regex::escape(text)),
        _ => format!(".*{}", regex::escape(text)),
    }
}

/// Istio's `requestPrincipalGenerator`: the `iss` and `sub` matchers it
/// generates for a pattern, as regular expressions.
fn request_principal_regexes(value: &str) -> (String, String) {
    let (iss, sub, found) = match value.rfind('/') {
        Some(i) => (&value[..i], &value[i + 1..], true),
        None => (value, "", false),
    };
    let (iss_m, sub_m) = if value == "*" {
        (istio_matcher("any", ""), istio_matcher("any", ""))
    } else if value.starts_with('*') {
        if found {
            let iss_m = if iss == "*" {
                istio_matcher("any", "")
            } else {
                istio_matcher("suffix", &iss[1..])
            };
            (iss_m, istio_matcher("exact", sub))
        } else {
            (
                istio_matcher("any", ""),
                istio_matcher("suffix", value.trim_start_matches('*')),
            )
        }
    } else if value.ends_with('*') {
        if found {
            let sub_m = if sub == "*" {
                istio_matcher("any", "")
            } else {
                istio_matcher("prefix", &sub[..sub.len() - 1])
            };
            (istio_matcher("exact", iss), sub_m)
        } else {
            (
                istio_matcher("prefix", value.trim_end_matches('*')),
                istio_matcher("any", ""),
            )
        }
    } else {
        (istio_matcher("exact", iss), istio_matcher("exact", sub))
    };
    (iss_m, sub_m)
}

fn full_match(re: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?s:{re})$")).unwrap().is_match(value)
}

/// Whether the token's `iss` and `sub` (string claims) match a request
/// principal pattern.
fn request_principal_match(pattern: &str, claims: &serde_json::Value) -> bool {
    let (iss_re, sub_re) = request_principal_regexes(pattern);
    let (Some(iss), Some(sub)) = (claims["iss"].as_str(), claims["sub"].as_str()) else {
        return false;
    };
    full_match(&iss_re, iss) && full_match(&sub_re, sub)
}

/// A claim value against a pattern: a string that matches (`*` = non-empty),
/// or an array with such a string.
fn claim_match(pattern: &str, value: Option<&serde_json::Value>) -> bool {
    let string = |v: &serde_json::Value| {
        v.as_str().is_some_and(|s| {
            if pattern == "*" {
                !s.is_empty()
            } else {
                str_match(pattern, s)
            }
        })
    };
    match value {
        Some(serde_json::Value::Array(items)) => items.iter().any(string),
        Some(v) => string(v),
        None => false,
    }
}

/// The request principal fields of a `from` entry: without a token an
/// allow rule's entry fails and a deny rule's passes only the negative field.
fn jwt_source_matches(s: &Source, r: &Canonical<'_>, deny: bool) -> bool {
    let Some(claims) = r.auth else {
        return deny && s.request_principals.is_none();
    };
    s.request_principals
        .as_ref()
        .is_none_or(|l| l.iter().any(|p| request_principal_match(p, claims)))
        && s.not_request_principals
            .iter()
            .flatten()
            .all(|p| !request_principal_match(p, claims))
}

fn peer_matches(s: &Source, r: &Canonical<'_>, deny: bool) -> bool {
    let any = |l: &Option<Vec<String>>, v: &str| l.as_ref().is_none_or(|l| l.iter().any(|m| str_match(m, v)));
    let none = |l: &Option<Vec<String>>, v: &str| l.iter().flatten().all(|m| !str_match(m, v));
    let Some(p) = r.principal else {
        return deny && s.principals.is_none() && s.namespaces.is_none();
    };
    if !any(&s.principals, p) || !none(&s.not_principals, p) {
        return false;
    }
    if s.namespaces.is_some() || s.not_namespaces.as_ref().is_some_and(|l| !l.is_empty()) {
        let Some(ns) = namespace(p) else {
            return deny && s.namespaces.is_none();
        };
        return any(&s.namespaces, ns) && none(&s.not_namespaces, ns);
    }
    true
}

fn operation_matches(o: &Operation, r: &Canonical<'_>, deny: bool) -> bool {
    if let Some(g) = &o.grpc {
        // Envoy's gRPC test: one content-type, `application/grpc` exactly or
        // followed by `+`.
        let content_types: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
            .collect();
        let grpc = match content_types[..] {
            [v] => v == "application/grpc" || v.starts_with("application/grpc+"),
            _ => false,
        };
        let Some(method) = r.path.strip_prefix(&format!("/{}/", g.service)) else {
            return false;
        };
        let method_ok = if g.methods == ["*"] {
            !method.is_empty() && !method.contains('/')
        } else {
            g.methods.iter().any(|m| m == method)
        };
        if !(grpc && r.method == "POST" && method_ok) {
            return false;
        }
    }
    if let Some(ms) = &o.methods {
        if !ms.iter().any(|m| m == "*" || m == r.method) {
            return false;
        }
    }
    if o.not_methods.iter().flatten().any(|m| m == "*" || m == r.method) {
        return false;
    }
    if o.not_ports.as_ref().is_some_and(|l| !l.is_empty()) {
        match r.port {
            Some(p) if o.not_ports.iter().flatten().any(|&q| q == p) => return false,
            None if !deny => return false,
            _ => {}
        }
    }
    if let Some(ps) = &o.paths {
        if !ps.iter().any(|p| path_match(p, r.path)) {
            return false;
        }
    }
    if o.not_paths.iter().flatten().any(|p| path_match(p, r.path)) {
        return false;
    }
    if o.hosts.is_some() || o.not_hosts.as_ref().is_some_and(|l| !l.is_empty()) {
        match &r.host {
            // Without a host, a deny rule's `notHosts` passes; nothing else does.
            None => {
                if !(deny && o.hosts.is_none()) {
                    return false;
                }
            }
            Some((host, port)) => {
                if let Some(hs) = &o.hosts {
                    if !hs.iter().any(|h| host_match(h, host, *port)) {
                        return false;
                    }
                }
                if o.not_hosts.iter().flatten().any(|h| host_match(h, host, *port)) {
                    return false;
                }
            }
        }
    }
    if let Some(ports) = &o.ports {
        if !r.port.is_some_and(|p| ports.contains(&p)) {
            return false;
        }
    }
    true
}

fn condition_holds(c: &Condition, r: &Canonical<'_>, deny: bool) -> bool {
    let header = match (&c.header, c.key.as_deref()) {
        (Some(h), _) => h.clone(),
        (None, Some(k)) if k.starts_with("request.headers[") => k["request.headers[".len()..k.len() - 1].to_string(),
        (None, Some(k)) if k.starts_with("request.auth.") => return auth_condition_holds(c, k, r, deny),
        (None, Some(k)) => return key_holds(c, k, r, deny),
        (None, None) => unreachable!("compiled"),
    };
    let lines: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(&header))
        .map(|(_, v)| v.as_str())
        .collect();
    let mut items = Vec::new();
    for line in &lines {
        let parts: Vec<&str> = line
            .split(',')
            .map(|p| p.trim_matches([' ', '\t']))
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            items.push("");
        } else {
            items.extend(parts);
        }
    }
    if let Some(vals) = &c.values {
        if lines.is_empty() || !items.iter().all(|i| vals.iter().any(|v| str_match(v, i))) {
            return false;
        }
    }
    items
        .iter()
        .all(|i| c.not_values.iter().flatten().all(|v| !str_match(v, i)))
}

/// A `request.auth.*` condition: without a token it holds only in a deny
/// rule with no `values`; with one, `values` needs a matching claim and
/// `notValues` none.
fn auth_condition_holds(c: &Condition, key: &str, r: &Canonical<'_>, deny: bool) -> bool {
    let Some(claims) = r.auth else {
        return deny && c.values.is_none();
    };
    let matches = |pattern: &str| match key {
        "request.auth.principal" => request_principal_match(pattern, claims),
        "request.auth.audiences" => claim_match(pattern, claims.get("aud")),
        "request.auth.presenter" => claim_match(pattern, claims.get("azp")),
        _ => {
            let path = key
                .strip_prefix("request.auth.claims[")
                .unwrap()
                .strip_suffix(']')
                .unwrap();
            let value = path.split("][").try_fold(claims, |v, name| v.get(name));
            claim_match(pattern, value)
        }
    };
    c.values.as_ref().is_none_or(|vs| vs.iter().any(|v| matches(v)))
        && c.not_values.iter().flatten().all(|v| !matches(v))
}

/// A condition on a key other than a header: an absent string attribute
/// fails an allow rule and passes only `notValues` in a deny rule; an
/// unknown address or port fails an allow rule and satisfies a deny rule.
fn key_holds(c: &Condition, key: &str, r: &Canonical<'_>, deny: bool) -> bool {
    let strings = |v: Option<&str>| match v {
        Some(v) => {
            c.values.as_ref().is_none_or(|l| l.iter().any(|m| str_match(m, v)))
                && c.not_values.iter().flatten().all(|m| !str_match(m, v))
        }
        None => deny && c.values.is_none(),
    };
    let ip = |v: Option<IpAddr>| blocks_pass(&c.values, &c.not_values, v, deny) && (v.is_some() || deny);
    match key {
        "source.ip" => ip(r.input.direct_peer),
        "remote.ip" => ip(r.input.remote),
        "destination.ip" => ip(r.input.destination),
        "destination.port" => match r.port {
            Some(p) => {
                let p = p.to_string();
                c.values.as_ref().is_none_or(|l| l.contains(&p)) && !c.not_values.iter().flatten().any(|q| *q == p)
            }
            None => deny && c.values.as_ref().is_none_or(|l| !l.is_empty()),
        },
        "source.principal" => strings(r.principal),
        "source.namespace" => strings(r.principal.and_then(namespace)),
        "connection.sni" => strings(r.input.sni),
        other => unreachable!("unknown key {other} compiled"),
    }
}

fn rule_matches(rule: &Rule, r: &Canonical<'_>, deny: bool) -> bool {
    rule.from
        .as_ref()
        .is_none_or(|f| f.iter().any(|s| source_matches(s, r, deny)))
        && rule
            .to
            .as_ref()
            .is_none_or(|t| t.iter().any(|o| operation_matches(o, r, deny)))
        && rule.when.iter().flatten().all(|c| condition_holds(c, r, deny))
}

/// Decides `req` for a workload with `labels` under `config`, by the
/// documented semantics, one policy and one rule at a time.
pub fn decide(config: &PluginConfig, labels: &BTreeMap<String, String>, req: &Input<'_>) -> Outcome {
    let applicable: Vec<&Policy> = config
        .policies
        .iter()
        .filter(|p| p.selector.iter().flatten().all(|(k, v)| labels.get(k) == Some(v)))
        .collect();
    let mode_of = |p: &Policy| p.mode.unwrap_or(config.mode);
    if applicable.is_empty() {
        return Outcome {
            verdict: Verdict::Allow,
            mode: config.mode,
            rule: None,
        };
    }
    let enforcing = applicable.iter().any(|p| mode_of(p) == Mode::Enforce);
    let mode = if enforcing { Mode::Enforce } else { Mode::Audit };
    let canonical = validate_method(req.method).and_then(|m| {
        let path = canonicalize_path(req.path)?;
        let host = match req.authority {
            None | Some("") => None,
            Some(a) => {
                let a = canonicalize_authority(a)?;
                Some((a.host().to_string(), a.port()))
            }
        };
        Ok((m, path.path().to_string(), host))
    });
    let Ok((method, path, host)) = canonical else {
        let verdict = if enforcing { Verdict::Reject } else { Verdict::AuditDeny };
        return Outcome {
            verdict,
            mode,
            rule: None,
        };
    };
    let r = Canonical {
        method,
        path: &path,
        host,
        port: req.port,
        principal: req.principal,
        headers: req.headers,
        auth: req.auth,
        input: *req,
    };
    // The first rule matching among the applicable policies with this
    // action and mode, in configuration order.
    let first_match = |action: Action, m: Mode| -> Option<String> {
        applicable
            .iter()
            .filter(|p| p.action == action && mode_of(p) == m)
            .find_map(|p| {
                p.rules.iter().enumerate().find_map(|(i, rule)| {
                    rule_matches(rule, &r, action == Action::Deny)
                        .then(|| format!("{}/{}", p.name, rule.name.clone().unwrap_or(format!("rule-{i}"))))
                })
            })
    };
    let applies = |action: Action, m: Mode| applicable.iter().any(|p| p.action == action && mode_of(p) == m);
    let outcome = |verdict, mode, rule| Outcome { verdict, mode, rule };
    // 1. An enforce deny rule refuses.
    if let Some(rule) = first_match(Action::Deny, Mode::Enforce) {
        return outcome(Verdict::Deny, Mode::Enforce, Some(rule));
    }
    // 2. The allow policies decide as they would alone.
    let allowed = if applies(Action::Allow, Mode::Enforce) {
        match first_match(Action::Allow, Mode::Enforce) {
            Some(rule) => outcome(Verdict::Allow, Mode::Enforce, Some(rule)),
            None => outcome(Verdict::Deny, Mode::Enforce, None),
        }
    } else if applies(Action::Allow, Mode::Audit) {
        match first_match(Action::Allow, Mode::Audit) {
            Some(rule) => outcome(Verdict::Allow, Mode::Audit, Some(rule)),
            None => outcome(Verdict::AuditDeny, Mode::Audit, None),
        }
    } else {
        let deny_mode = if applies(Action::Deny, Mode::Enforce) {
            Mode::Enforce
        } else {
            Mode::Audit
        };
        outcome(Verdict::Allow, deny_mode, None)
    };
    // 3. An audit deny rule marks what would pass as audit_deny.
    match first_match(Action::Deny, Mode::Audit) {
        Some(rule) if allowed.verdict != Verdict::Deny => outcome(Verdict::AuditDeny, Mode::Audit, Some(rule)),
        _ => allowed,
    }
}
