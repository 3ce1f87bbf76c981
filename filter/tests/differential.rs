//! Differential property test: the compiled engine agrees with a reference
//! evaluator on random rule sets and random (often adversarial) requests.
//!
//! The reference (`reference/mod.rs`, shared with the differential fuzz
//! target in `filter/fuzz`) is written straight from the documented
//! semantics, with no index, no automaton and no shared matching code: it
//! walks every policy and rule in order and compares strings. It shares only
//! the canonicalization functions, which have their own tests.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg(not(target_arch = "wasm32"))]

mod common;
mod reference;

use std::collections::BTreeMap;

use meshward_filter::canonical::{canonicalize_authority, canonicalize_path, validate_method, RequestError};
use meshward_filter::config::{Condition, GrpcMethods, Operation, Policy, Rule, Source};
use meshward_filter::{Action, ConfigError, Engine, Evaluator, Mode, PluginConfig, Reason, Verdict};
use proptest::prelude::*;

use common::{decide, Req};

// ---------------------------------------------------------------- reference

use reference::Outcome as RefOutcome;

/// The reference's decision on `req` (see `reference/mod.rs`).
fn reference(config: &PluginConfig, labels: &BTreeMap<String, String>, req: &Req) -> RefOutcome {
    reference::decide(
        config,
        labels,
        &reference::Input {
            method: &req.method,
            path: &req.path,
            authority: req.authority.as_deref(),
            port: req.port,
            principal: req.principal.as_deref(),
            headers: &req.headers,
            direct_peer: req.direct_peer,
            remote: req.remote,
            destination: req.destination,
            sni: req.sni.as_deref(),
            auth: req.auth_json.as_ref(),
        },
    )
}

// ---------------------------------------------------------------- generators

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(options).prop_map(str::to_string)
}

fn list(options: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(pick(options), 0..=max)
}

/// `None`, or a list that is usually non-empty (empty lists are a case too).
fn opt_list(options: &'static [&'static str], max: usize) -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::weighted(0.5, list(options, max))
}

const PRINCIPALS: &[&str] = &[
    "td/ns/a/sa/x",
    "td/ns/b/sa/y",
    "td/ns/a/*",
    "*/sa/y",
    "*",
    "td/ns/c/sa/z",
];
const NAMESPACES: &[&str] = &["a", "b", "*", "a*", "*b"];
const METHODS: &[&str] = &["GET", "POST", "*"];
const PATHS: &[&str] = &[
    "/a",
    "/a/b",
    "/a/",
    "/a/*",
    "/a*",
    "/ab",
    "*b",
    "*/b",
    "*",
    "/{*}/b",
    "/a/{**}",
    "/{*}/{**}",
    "/{*}",
    "/{**}",
    "/a/{**}/b",
    "/{**}/b/",
    "/{*}/{**}/a",
    "/a/{**}/",
    "regex:/a/[ab]+",
    "regex:/(a|b)/.*",
    "regex:.*b",
    "regex:/x?",
    "/%3F",
    "/a%20b",
    "regex:/ab+",
    "regex:/a|/b",
    "regex:/a/b{1,2}",
    "regex:/a\\.b",
    "regex:/a/.",
    "regex:/(?i)A/B",
];
const HOSTS: &[&str] = &["svc", "svc:80", "*.ex.com", "a*", "*", "SVC.", "b.ex.com:81"];
const VALUES: &[&str] = &["1", "2", "1*", "*", "*2"];
/// Address blocks: v4 and v6, single addresses, prefixes of each length
/// class, blocks that hold the sample addresses and blocks that do not.
const BLOCKS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "0.0.0.0/0",
    "192.168.1.0/24",
    "2001:db8::1",
    "2001:db8::/32",
    "::/0",
    "10.0.0.0/31",
];
/// Addresses requests come from; `None` (unknown) is a case too.
const ADDRESSES: &[&str] = &[
    "10.0.0.1",
    "10.1.2.3",
    "192.168.1.9",
    "2001:db8::1",
    "2001:db9::1",
    "127.0.0.1",
];

/// Request principal patterns: every form of Istio's split at the last `/`.
const REQUEST_PRINCIPALS: &[&str] = &[
    "iss1/alice",
    "iss1/*",
    "iss1/al*",
    "*/alice",
    "*1/bob",
    "iss*",
    "*ice",
    "*",
    "https://a.b/c/d",
    "*.b/c/d",
    "iss1",
];
/// Condition keys reading the verified JWT, and a header key.
const AUTH_KEYS: &[&str] = &[
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[groups]",
    "request.auth.claims[org][team]",
    "request.auth.claims[n]",
    "request.headers[x-h]",
];
const CLAIM_VALUES: &[&str] = &["x", "g1", "t1", "cli", "iss1/alice", "*", "g*", "*2", "alice", "3"];
/// Verified token payloads: strings, lists, nested objects, numbers, empty
/// and missing claims.
const TOKENS: &[&str] = &[
    r#"{"iss":"iss1","sub":"alice","aud":"x","groups":["g1","g2"],"org":{"team":"t1"}}"#,
    r#"{"iss":"iss2","sub":"bob","aud":["x","y2"],"azp":"cli","org":{"team":"t2"},"groups":"g2"}"#,
    r#"{"iss":"iss1","sub":""}"#,
    r#"{"iss":"https://a.b/c","sub":"d","aud":[],"n":3}"#,
    r#"{"sub":"alice","org":"t1","groups":[1,"g1"]}"#,
    r#"{"iss":"iss1","sub":"alice","azp":"","org":{"team":["t1"]},"n":"3"}"#,
];

/// Usually absent, sometimes a short list.
fn rare_list(options: &'static [&'static str], max: usize) -> impl Strategy<Value = Option<Vec<String>>> {
    prop::option::weighted(0.2, list(options, max))
}

fn source() -> impl Strategy<Value = Source> {
    (
        opt_list(PRINCIPALS, 2),
        opt_list(PRINCIPALS, 2),
        opt_list(NAMESPACES, 2),
        opt_list(NAMESPACES, 2),
        (
            rare_list(BLOCKS, 2),
            rare_list(BLOCKS, 2),
            rare_list(BLOCKS, 2),
            rare_list(BLOCKS, 2),
        ),
        (
            prop::option::weighted(0.3, list(REQUEST_PRINCIPALS, 2)),
            prop::option::weighted(0.3, list(REQUEST_PRINCIPALS, 2)),
        ),
    )
        .prop_map(
            |(
                principals,
                not_principals,
                namespaces,
                not_namespaces,
                (ips, not_ips, remotes, not_remotes),
                (request_principals, not_request_principals),
            )| Source {
                principals,
                not_principals,
                namespaces,
                not_namespaces,
                ip_blocks: ips,
                not_ip_blocks: not_ips,
                remote_ip_blocks: remotes,
                not_remote_ip_blocks: not_remotes,
                request_principals,
                not_request_principals,
            },
        )
        .prop_filter("must set a field", |s| {
            let given = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
            s.principals.is_some()
                || s.namespaces.is_some()
                || s.ip_blocks.is_some()
                || s.remote_ip_blocks.is_some()
                || given(&s.not_principals)
                || given(&s.not_namespaces)
                || given(&s.not_ip_blocks)
                || given(&s.not_remote_ip_blocks)
                || s.request_principals.is_some()
                || given(&s.not_request_principals)
        })
}

fn operation() -> impl Strategy<Value = Operation> {
    (
        opt_list(METHODS, 2),
        opt_list(PATHS, 3),
        opt_list(PATHS, 2),
        opt_list(HOSTS, 2),
        opt_list(HOSTS, 2),
        prop::option::weighted(
            0.2,
            prop::collection::vec(prop::sample::select(&[80u16, 81][..]), 0..=2),
        ),
        prop::option::weighted(
            0.15,
            (
                pick(&["a", "x.a", "b"]),
                prop::collection::vec(pick(&["b", "a", "*", "B"]), 1..=2),
            )
                .prop_map(|(service, methods)| {
                    let methods = if methods.iter().any(|m| m == "*") {
                        vec!["*".to_string()]
                    } else {
                        methods
                    };
                    GrpcMethods { service, methods }
                }),
        ),
        rare_list(METHODS, 2),
        prop::option::weighted(
            0.15,
            prop::collection::vec(prop::sample::select(&[80u16, 81][..]), 0..=2),
        ),
    )
        .prop_map(
            |(methods, paths, not_paths, hosts, not_hosts, ports, grpc, not_methods, not_ports)| {
                // A grpc entry sets the method and the paths itself.
                let http = grpc.is_none();
                Operation {
                    methods: methods.filter(|_| http),
                    not_methods,
                    paths: paths.filter(|_| http),
                    not_paths: not_paths.filter(|_| http),
                    hosts,
                    not_hosts,
                    ports,
                    not_ports,
                    grpc,
                }
            },
        )
        .prop_filter("must set a field", |o| {
            o.methods.is_some()
                || o.paths.is_some()
                || o.hosts.is_some()
                || o.ports.is_some()
                || o.grpc.as_ref().is_some_and(|g| !g.methods.is_empty())
                || o.not_paths.as_ref().is_some_and(|l| !l.is_empty())
                || o.not_hosts.as_ref().is_some_and(|l| !l.is_empty())
                || o.not_methods.as_ref().is_some_and(|l| !l.is_empty())
                || o.not_ports.as_ref().is_some_and(|l| !l.is_empty())
        })
}

/// A header condition (as `header` or as `key: request.headers[...]`), or a
/// condition on another key with values of its kind.
fn condition() -> impl Strategy<Value = Condition> {
    let header = (
        pick(&["x-h", "X-H"]),
        any::<bool>(),
        opt_list(VALUES, 2),
        opt_list(VALUES, 2),
    )
        .prop_map(|(name, as_key, values, not_values)| Condition {
            header: (!as_key).then(|| name.clone()),
            key: as_key.then(|| format!("request.headers[{name}]")),
            values,
            not_values,
        });
    let keyed = |keys: &'static [&'static str], values: &'static [&'static str]| {
        (pick(keys), opt_list(values, 2), opt_list(values, 2)).prop_map(|(key, values, not_values)| Condition {
            header: None,
            key: Some(key),
            values,
            not_values,
        })
    };
    prop_oneof![
        3 => header,
        1 => keyed(&["source.ip", "remote.ip", "destination.ip"], BLOCKS),
        1 => keyed(&["destination.port"], &["80", "81"]),
        1 => keyed(&["source.principal"], PRINCIPALS),
        1 => keyed(&["source.namespace"], NAMESPACES),
        1 => keyed(&["connection.sni"], &["svc", "*.ex.com", "*"]),
        2 => keyed(AUTH_KEYS, CLAIM_VALUES),
    ]
    .prop_filter("must set values", |c| {
        c.values.is_some() || c.not_values.as_ref().is_some_and(|l| !l.is_empty())
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prop::option::weighted(0.5, prop::collection::vec(source(), 0..=2)),
        prop::option::weighted(0.8, prop::collection::vec(operation(), 0..=2)),
        prop::option::weighted(0.2, prop::collection::vec(condition(), 0..=1)),
    )
        .prop_map(|(from, to, when)| Rule {
            name: None,
            from,
            to,
            when,
        })
}

fn mode() -> impl Strategy<Value = Option<Mode>> {
    prop::option::weighted(0.3, prop::sample::select(&[Mode::Enforce, Mode::Audit][..]))
}

/// Mostly allow policies, a third deny policies.
fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(&[Action::Allow, Action::Allow, Action::Deny][..])
}

fn config() -> impl Strategy<Value = PluginConfig> {
    let policy = (
        prop::option::weighted(0.3, pick(&["a", "b"])),
        mode(),
        action(),
        prop::collection::vec(rule(), 0..=4),
    );
    (
        prop::sample::select(&[Mode::Enforce, Mode::Audit][..]),
        prop::collection::vec(policy, 0..=3),
    )
        .prop_map(|(mode, policies)| PluginConfig {
            mode,
            deny_status: None,
            log: None,
            policies: policies
                .into_iter()
                .enumerate()
                .map(|(i, (app, mode, action, rules))| Policy {
                    name: format!("p{i}"),
                    selector: app.map(|a| BTreeMap::from([("app".to_string(), a)])),
                    mode,
                    action,
                    rules,
                })
                .collect(),
        })
}

const SEGMENTS: &[&str] = &[
    "a", "b", "ab", "x", "", ".", "..", "%61", "%2e", "%2F", "a;b", "%25", "%3f", "a%20b", "{*}",
];

fn request() -> impl Strategy<Value = Req> {
    (
        pick(&["GET", "POST", "get", "G T"]),
        prop::collection::vec(pick(SEGMENTS), 0..=4),
        prop::option::weighted(0.2, pick(&["q=1", "/a/../b", ""])),
        prop::option::weighted(
            0.9,
            pick(&[
                "svc",
                "SVC:80",
                "svc.:81",
                "a.ex.com",
                "B.EX.COM:81",
                "ab",
                "x",
                "bad host",
                "svc:0",
            ]),
        ),
        prop::option::weighted(0.9, prop::sample::select(&[80u16, 81][..])),
        prop::option::weighted(
            0.8,
            pick(&[
                "td/ns/a/sa/x",
                "td/ns/b/sa/y",
                "td/ns/c/sa/z",
                "weird",
                "td/ns/a/sa/x/y",
            ]),
        ),
        prop::collection::vec(
            (
                pick(&["x-h", "X-H", "y", "content-type"]),
                pick(&[
                    "1",
                    "2",
                    "1,2",
                    "12",
                    "",
                    " 1 , ,2",
                    "application/grpc",
                    "application/grpc+proto",
                    "application/grpc-web",
                    "Application/grpc",
                ]),
            ),
            0..=2,
        ),
        (
            prop::option::weighted(0.8, pick(ADDRESSES)),
            prop::option::weighted(0.8, pick(ADDRESSES)),
            prop::option::weighted(0.8, pick(ADDRESSES)),
            prop::option::weighted(0.5, pick(&["svc", "a.ex.com", "other"])),
            prop::option::weighted(0.5, prop::sample::select(TOKENS)),
        ),
    )
        .prop_map(
            |(
                method,
                segments,
                query,
                authority,
                port,
                principal,
                headers,
                (peer, remote, destination, sni, token),
            )| {
                let mut path = format!("/{}", segments.join("/"));
                if let Some(q) = query {
                    path.push('?');
                    path.push_str(&q);
                }
                let ip = |a: Option<String>| a.map(|a| a.parse().unwrap());
                let r = Req {
                    method,
                    path,
                    authority,
                    port,
                    principal,
                    headers,
                    direct_peer: ip(peer),
                    remote: ip(remote),
                    destination: ip(destination),
                    sni,
                    ..common::get("/")
                };
                match token {
                    Some(t) => r.token(serde_json::from_str(t).unwrap()),
                    None => r,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_reference(
        config in config(),
        app in prop::option::of(pick(&["a", "b"])),
        requests in prop::collection::vec(request(), 1..=12),
    ) {
        let labels: BTreeMap<String, String> = app.iter().map(|a| ("app".to_string(), a.clone())).collect();
        let engine = Engine::compile(&config).map_err(|e| TestCaseError::fail(format!("rejected: {e}")))?;
        let selection = engine.select(|k| labels.get(k).cloned());
        let mut ev = Evaluator::new(std::sync::Arc::new(engine), selection);
        for r in &requests {
            let got = decide(&mut ev, r);
            let want = reference(&config, &labels, r);
            prop_assert_eq!(
                RefOutcome { verdict: got.verdict, mode: got.mode, rule: got.rule.clone() },
                want,
                "request {:?}\nconfig {}", r, config.to_json()
            );
        }
    }

    /// Canonicalization is idempotent and its output has the documented shape.
    #[test]
    fn canonical_paths_are_fixed_points(segments in prop::collection::vec(pick(SEGMENTS), 0..=6)) {
        let raw = format!("/{}", segments.join("/"));
        if let Ok(c) = canonicalize_path(&raw) {
            let again = canonicalize_path(c.path()).unwrap();
            prop_assert_eq!(again.path(), c.path());
            prop_assert!(!again.is_rewritten());
            prop_assert!(c.path().starts_with('/'));
            prop_assert!(!c.path().contains("//"));
            prop_assert!(c.path().split('/').all(|s| s != "." && s != ".."));
        }
    }
}

/// The one rule every arbitrary request is judged by: each field kind with
/// a form the reference implements separately (exact namespace, method,
/// prefix, regex and template paths, wildcard host, header condition).
const ARBITRARY_REQUEST_RULE: &str = r#"{"from":[{"namespaces":["a"]}],"to":[{"methods":["GET"],"paths":["/a/*","regex:/v[0-9]+","/t/{*}/{**}"],"hosts":["*.x"]}],"when":[{"header":"h","notValues":["z"]}]}"#;

/// The canonicalization error the engine must report for `r`: the first of
/// method, path and authority that does not canonicalize, in that order.
fn malformed(r: &Req) -> Option<RequestError> {
    let authority = match r.authority.as_deref() {
        None | Some("") => Ok(()),
        Some(a) => canonicalize_authority(a).map(|_| ()),
    };
    validate_method(&r.method)
        .and(canonicalize_path(&r.path))
        .and(authority)
        .err()
}

/// Requests built from `pattern` (stripped of `regex:`, with its wildcards
/// and template operators filled in or removed) and from a few fixed values,
/// so that a pattern is tried on values it matches as well as on others.
fn sample_requests(pattern: &str) -> Vec<Req> {
    let text = pattern.trim_start_matches("regex:");
    let mut values: Vec<String> = ["/", "/a", "/a/b", "/v1", "/x/y/z", "svc", "GET", "POST"]
        .iter()
        .map(|v| v.to_string())
        .collect();
    for v in [
        text.to_string(),
        text.replace("{**}", "x/y").replace("{*}", "x").replace('*', ""),
        text.replace("{**}", "x").replace('*', "ab/c"),
        text.replace("{**}", "").replace("{*}", "y=;*"),
        text.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '.')
            .collect(),
    ] {
        values.push(v.clone());
        if !v.starts_with('/') {
            values.push(format!("/{v}"));
        }
    }
    let mut requests = Vec::new();
    for value in &values {
        requests.push(Req {
            path: value.clone(),
            ..common::get("/")
        });
        requests.push(common::get("/a").host(value));
        requests.push(common::req(value, "/a"));
    }
    requests
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Every arbitrary request gets the verdict the reference gives, for the
    /// reason that goes with it: when no policy applies it passes; a request
    /// that does not canonicalize is rejected (audit_deny in audit mode),
    /// naming the first field that failed; any other is judged on its
    /// canonical path, which canonicalization leaves as it is, and allowed
    /// exactly when a rule matched.
    #[test]
    fn arbitrary_requests_get_a_verdict(
        // Each attribute arbitrary, or (as often) close to what the rule
        // admits, so that allowed requests are among the cases.
        method in prop_oneof![".{0,8}", "GET"],
        path in prop_oneof![
            "(/|%|\\.|;|\\?|#|\\\\|[a-z]|%2[eEfF5]|%[0-9a-fA-F]{0,2}|\\PC){0,24}",
            "/(a/[a-z0-9.%]{0,6}|v[0-9]{1,3}|t/[a-z]{1,2}/[a-z0-9/]{1,6})(\\?[a-z=]{0,4})?",
        ],
        authority in prop::option::weighted(0.9, prop_oneof![
            "([A-Za-z0-9.:\\[\\]@_-]|\\PC){0,20}",
            "[a-zA-Z]{1,3}\\.[xX](:80)?",
        ]),
        principal in prop::option::weighted(0.9, prop_oneof!["[a-z/.*]{0,24}", "td/ns/[ab]/sa/[a-z]{1,2}"]),
        headers in prop::collection::vec(prop_oneof![
            ("[a-zA-Z-]{1,6}", ".{0,12}"),
            ("[hH]", "[z, ]{0,4}"),
        ], 0..4),
        mode in prop::sample::select(&["enforce", "audit"][..]),
        applies in any::<bool>(),
    ) {
        let json = format!(
            r#"{{"mode":"{mode}","policies":[{{"name":"p","selector":{{"app":"shop"}},"rules":[{ARBITRARY_REQUEST_RULE}]}}]}}"#
        );
        let labels: BTreeMap<String, String> =
            applies.then(|| ("app".to_string(), "shop".to_string())).into_iter().collect();
        let config = PluginConfig::from_json(json.as_bytes()).unwrap();
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut ev = common::evaluator_for(&json, &pairs);
        let r = Req { method, path, authority, port: Some(80), principal, headers, ..common::get("/") };
        let got = decide(&mut ev, &r);
        let context = format!("request {r:?}, {mode}, policy applies: {applies} → {got:?}");

        let want = reference(&config, &labels, &r);
        prop_assert_eq!(
            RefOutcome { verdict: got.verdict, mode: got.mode, rule: got.rule.clone() },
            want,
            "{}", context
        );
        if !applies {
            prop_assert_eq!((got.verdict, got.reason, &got.path), (Verdict::Allow, Reason::NoPolicy, &None), "{}", context);
        } else if let Some(error) = malformed(&r) {
            let verdict = if mode == "enforce" { Verdict::Reject } else { Verdict::AuditDeny };
            prop_assert_eq!((got.verdict, got.reason, &got.path), (verdict, Reason::Malformed(error), &None), "{}", context);
        } else {
            let canonical = canonicalize_path(&r.path).unwrap();
            prop_assert_eq!(got.path.as_deref(), Some(canonical.path()), "{}", context);
            let again = canonicalize_path(canonical.path()).unwrap();
            prop_assert!(again.path() == canonical.path() && !again.is_rewritten(), "{}", context);
            if let Some(target) = &got.rewritten {
                let forwarded = canonicalize_path(target).unwrap();
                prop_assert!(forwarded.path() == canonical.path() && !forwarded.is_rewritten(), "{}", context);
            }
            match got.reason {
                Reason::Matched(_) => prop_assert!(got.verdict == Verdict::Allow && got.rule.is_some(), "{}", context),
                Reason::NoMatch => prop_assert!(got.verdict != Verdict::Allow && got.rule.is_none(), "{}", context),
                other => prop_assert!(false, "unexpected reason {:?}: {}", other, context),
            }
        }
    }

    /// An arbitrary pattern either compiles and then matches exactly what the
    /// reference matches, on requests made from the pattern itself and on
    /// others, or is rejected with an error naming the pattern: the field and
    /// index it was written at, and the pattern as written.
    #[test]
    fn arbitrary_patterns_compile_or_fail_cleanly(
        field in prop::sample::select(&["paths", "notPaths", "hosts", "notHosts", "methods"][..]),
        pattern in "(\\{\\*\\*?\\}|regex:|[*/.%;?#{}\\[\\]()+|\\\\]|[a-zA-Z0-9]|\\PC){0,16}",
    ) {
        let json = serde_json::json!({"policies": [{"name": "p", "rules": [{"to": [{ field: [&pattern] }]}]}]}).to_string();
        let at = format!("policies[0].rules[0].to[0].{field}[0]");
        match Engine::from_json(json.as_bytes()) {
            Ok(engine) => {
                let config = PluginConfig::from_json(json.as_bytes()).unwrap();
                let selection = engine.select(|_| None);
                let mut ev = Evaluator::new(std::sync::Arc::new(engine), selection);
                for r in sample_requests(&pattern) {
                    let got = decide(&mut ev, &r);
                    prop_assert_eq!(
                        RefOutcome { verdict: got.verdict, mode: got.mode, rule: got.rule.clone() },
                        reference(&config, &BTreeMap::new(), &r),
                        "{} = {:?}, request {:?}", at, pattern, r
                    );
                }
            }
            Err(ConfigError::InvalidPattern { field: named, value, .. } | ConfigError::InvalidMethod { field: named, value }) => {
                prop_assert_eq!((&named, &value), (&at, &pattern));
            }
            Err(e) => prop_assert!(false, "{} = {:?}: an error that does not name the pattern: {}", at, pattern, e),
        }
    }
}
