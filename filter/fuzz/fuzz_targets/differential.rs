//! The engine against the naive reference evaluator
//! (`filter/tests/reference/mod.rs`, the one the differential property test
//! uses): random policies, built with `arbitrary` from pools of meaningful
//! values and from small alphabets of the characters that matter, and
//! random requests, with or without a verified token's claims. Every
//! request must get the same verdict, in the same mode, naming the same
//! admitting rule.
//!
//! A configuration the engine refuses is skipped, after checking that the
//! error names a field; everything it accepts, the reference judges.
#![no_main]

use meshward_filter::auth::Claims;
use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use meshward_filter::config::{Condition, Operation, Policy, Rule, Source};
use meshward_filter::{Action, Engine, Evaluator, Mode, PluginConfig, Request};

#[allow(dead_code)]
#[path = "../../tests/reference/mod.rs"]
mod reference;

/// A string: one of a field's meaningful values, or a short word over the
/// field's alphabet.
#[derive(Debug)]
enum Word {
    Pool(usize),
    Chars(Vec<usize>),
}

impl<'a> Arbitrary<'a> for Word {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        // Three in four from the pool.
        if u.ratio(3, 4)? {
            Ok(Word::Pool(u.arbitrary()?))
        } else {
            let len = u.int_in_range(0..=8)?;
            (0..len)
                .map(|_| u.arbitrary())
                .collect::<arbitrary::Result<_>>()
                .map(Word::Chars)
        }
    }
}

impl Word {
    fn make(&self, pool: &[&str], alphabet: &[&str]) -> String {
        match self {
            Word::Pool(i) => pool[i % pool.len()].to_string(),
            Word::Chars(cs) => cs.iter().map(|c| alphabet[c % alphabet.len()]).collect(),
        }
    }
}

const PRINCIPALS: &[&str] = &[
    "td/ns/a/sa/x",
    "td/ns/b/sa/y",
    "td/ns/a/*",
    "*/sa/y",
    "*",
    "td/ns/c/sa/z",
    "td*",
];
const PRINCIPAL_CHARS: &[&str] = &["td", "/", "ns", "sa", "a", "b", "*", "/ns/", "/sa/"];
const NAMESPACES: &[&str] = &["a", "b", "*", "a*", "*b", "c"];
const NAMESPACE_CHARS: &[&str] = &["a", "b", "*", "-"];
const METHODS: &[&str] = &["GET", "POST", "*", "HEAD"];
const METHOD_CHARS: &[&str] = &["G", "E", "T", "P", "*", "-"];
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
    "/",
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
    "/a~b",
    "/a.b",
    "regex:/[^/]*",
    "/%C3%A9",
    "regex:/a/%3F",
];
const PATH_CHARS: &[&str] = &["/", "a", "b", "*", "{*}", "{**}", ".", "%20", "%3F", "~", "-", "_", "x"];
const HOSTS: &[&str] = &[
    "svc",
    "svc:80",
    "*.ex.com",
    "a*",
    "*",
    "SVC.",
    "b.ex.com:81",
    "[::1]",
    "[::1]:80",
    "*:80",
];
const HOST_CHARS: &[&str] = &["svc", ".", "ex", "com", "*", ":80", "a", "-"];
const HEADERS: &[&str] = &["x-h", "X-H", "y"];
const VALUES: &[&str] = &["1", "2", "1*", "*", "*2", "a b"];
const VALUE_CHARS: &[&str] = &["1", "2", "*", " ", "a"];
const SEGMENTS: &[&str] = &[
    "a", "b", "ab", "x", "", ".", "..", "%61", "%2e", "%2E%2e", "%2F", "a;b", "%25", "%3f", "a%20b", "{*}", "A", "%7E",
    "a~b", "a.b", "%c3%a9", "%",
];
const SEGMENT_CHARS: &[&str] = &[
    "a", "b", ".", "%", "2", "e", "F", "/", "?", "#", ";", "\\", "~", "*", "[", " ",
];
const AUTHORITIES: &[&str] = &[
    "svc",
    "SVC:80",
    "svc.:81",
    "a.ex.com",
    "B.EX.COM:81",
    "ab",
    "x",
    "bad host",
    "svc:0",
    "[::1]:80",
    "",
    "ex.com",
];
const AUTHORITY_CHARS: &[&str] = &["svc", ".", "ex", "com", ":", "80", "A", "[", "]", "@", "%"];
const CALLERS: &[&str] = &[
    "td/ns/a/sa/x",
    "td/ns/b/sa/y",
    "td/ns/c/sa/z",
    "weird",
    "td/ns/a/sa/x/y",
    "td/ns//sa/x",
];
const HEADER_VALUES: &[&str] = &["1", "2", "1,2", "12", "", " 1 , ,2", "a b", "2,", "1\t,\t2"];
/// Address blocks, valid and not (host bits set, bad prefix lengths).
const BLOCKS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "0.0.0.0/0",
    "2001:db8::/32",
    "::1",
    "::/0",
    "10.0.0.1/8",
    "10.0.0.0/33",
];
const BLOCK_CHARS: &[&str] = &["1", "0", ".", ":", "/", "8", "f"];
/// Addresses of requests.
const ADDRESSES: &[&str] = &["10.0.0.1", "10.1.2.3", "11.0.0.1", "2001:db8::1", "::1", "127.0.0.1"];
/// Condition keys: the header form, every other key, and unknown ones.
const KEYS: &[&str] = &[
    "request.headers[x-h]",
    "source.ip",
    "remote.ip",
    "destination.ip",
    "destination.port",
    "source.principal",
    "source.namespace",
    "connection.sni",
    "request.auth.claims[iss]",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[groups]",
    "request.auth.claims[org][team]",
    "request.auth.claims[n]",
];
const KEY_VALUES: &[&str] = &[
    "10.0.0.0/8",
    "::1",
    "80",
    "81",
    "0",
    "td/ns/a/*",
    "a",
    "svc",
    "*",
    "1",
    "x",
    "g1",
    "t1",
    "cli",
    "iss1/alice",
    "g*",
    "*2",
    "alice",
    "3",
    "a,b",
];
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
const REQUEST_PRINCIPAL_CHARS: &[&str] = &["iss1", "/", "alice", "*", "https:", "a.b", "c", "d", ""];
/// Verified token payloads: strings, lists, nested objects, numbers, empty
/// and missing claims.
const TOKENS: &[&str] = &[
    r#"{"iss":"iss1","sub":"alice","aud":"x","groups":["g1","g2"],"org":{"team":"t1"}}"#,
    r#"{"iss":"iss2","sub":"bob","aud":["x","y2"],"azp":"cli","org":{"team":"t2"},"groups":"g2"}"#,
    r#"{"iss":"iss1","sub":""}"#,
    r#"{"iss":"https://a.b/c","sub":"d","aud":[],"n":3}"#,
    r#"{"sub":"alice","org":"t1","groups":[1,"g1","a,b"]}"#,
    r#"{"iss":"iss1","sub":"alice","azp":"","org":{"team":["t1"]},"n":"3"}"#,
];

fn words(ws: &Option<Vec<Word>>, pool: &[&str], alphabet: &[&str], max: usize) -> Option<Vec<String>> {
    ws.as_ref()
        .map(|ws| ws.iter().take(max).map(|w| w.make(pool, alphabet)).collect())
}

#[derive(Debug, Arbitrary)]
struct FuzzSource {
    principals: Option<Vec<Word>>,
    not_principals: Option<Vec<Word>>,
    namespaces: Option<Vec<Word>>,
    not_namespaces: Option<Vec<Word>>,
    ip_blocks: Option<Vec<Word>>,
    not_ip_blocks: Option<Vec<Word>>,
    remote_ip_blocks: Option<Vec<Word>>,
    not_remote_ip_blocks: Option<Vec<Word>>,
    request_principals: Option<Vec<Word>>,
    not_request_principals: Option<Vec<Word>>,
}

#[derive(Debug, Arbitrary)]
struct FuzzOperation {
    methods: Option<Vec<Word>>,
    paths: Option<Vec<Word>>,
    not_paths: Option<Vec<Word>>,
    hosts: Option<Vec<Word>>,
    not_hosts: Option<Vec<Word>>,
    ports: Option<Vec<bool>>,
    not_methods: Option<Vec<Word>>,
    not_ports: Option<Vec<bool>>,
}

#[derive(Debug, Arbitrary)]
struct FuzzCondition {
    header: Word,
    /// A `key` (from [`KEYS`]) instead of `header`.
    key: Option<Word>,
    values: Option<Vec<Word>>,
    not_values: Option<Vec<Word>>,
}

#[derive(Debug, Arbitrary)]
struct FuzzRule {
    named: bool,
    from: Option<Vec<FuzzSource>>,
    to: Option<Vec<FuzzOperation>>,
    when: Option<Vec<FuzzCondition>>,
}

#[derive(Debug, Arbitrary)]
struct FuzzPolicy {
    /// `app: a` or `app: b`.
    selector: Option<bool>,
    /// Audit (true) or enforce.
    audit: Option<bool>,
    /// A deny policy (true) or an allow policy.
    deny: bool,
    rules: Vec<FuzzRule>,
}

#[derive(Debug, Arbitrary)]
struct FuzzRequest {
    method: Word,
    segments: Vec<Word>,
    query: Option<bool>,
    authority: Option<Word>,
    port: Option<bool>,
    principal: Option<Word>,
    headers: Vec<(Word, Word)>,
    direct_peer: Option<Word>,
    remote: Option<Word>,
    destination: Option<Word>,
    sni: Option<Word>,
    /// A verified token: one of [`TOKENS`].
    token: Option<usize>,
}

#[derive(Debug, Arbitrary)]
struct FuzzInput {
    audit: bool,
    policies: Vec<FuzzPolicy>,
    /// The workload's `app` label: none, `a` or `b`.
    app: Option<bool>,
    requests: Vec<FuzzRequest>,
}

fn port(b: bool) -> u16 {
    if b {
        80
    } else {
        81
    }
}

fn mode(audit: bool) -> Mode {
    if audit {
        Mode::Audit
    } else {
        Mode::Enforce
    }
}

fn config(input: &FuzzInput) -> PluginConfig {
    let policies = input
        .policies
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, p)| Policy {
            name: format!("p{i}"),
            selector: p
                .selector
                .map(|b| BTreeMap::from([("app".to_string(), if b { "a" } else { "b" }.to_string())])),
            mode: p.audit.map(mode),
            action: if p.deny { Action::Deny } else { Action::Allow },
            rules: p
                .rules
                .iter()
                .take(6)
                .enumerate()
                .map(|(j, r)| Rule {
                    name: r.named.then(|| format!("r{j}")),
                    from: r.from.as_ref().map(|f| {
                        f.iter()
                            .take(3)
                            .map(|s| Source {
                                principals: words(&s.principals, PRINCIPALS, PRINCIPAL_CHARS, 3),
                                not_principals: words(&s.not_principals, PRINCIPALS, PRINCIPAL_CHARS, 3),
                                namespaces: words(&s.namespaces, NAMESPACES, NAMESPACE_CHARS, 3),
                                not_namespaces: words(&s.not_namespaces, NAMESPACES, NAMESPACE_CHARS, 3),
                                ip_blocks: words(&s.ip_blocks, BLOCKS, BLOCK_CHARS, 3),
                                not_ip_blocks: words(&s.not_ip_blocks, BLOCKS, BLOCK_CHARS, 3),
                                remote_ip_blocks: words(&s.remote_ip_blocks, BLOCKS, BLOCK_CHARS, 3),
                                not_remote_ip_blocks: words(&s.not_remote_ip_blocks, BLOCKS, BLOCK_CHARS, 3),
                                request_principals: words(
                                    &s.request_principals,
                                    REQUEST_PRINCIPALS,
                                    REQUEST_PRINCIPAL_CHARS,
                                    3,
                                ),
                                not_request_principals: words(
                                    &s.not_request_principals,
                                    REQUEST_PRINCIPALS,
                                    REQUEST_PRINCIPAL_CHARS,
                                    3,
                                ),
                            })
                            .collect()
                    }),
                    to: r.to.as_ref().map(|t| {
                        t.iter()
                            .take(3)
                            .map(|o| Operation {
                                methods: words(&o.methods, METHODS, METHOD_CHARS, 3),
                                paths: words(&o.paths, PATHS, PATH_CHARS, 4),
                                not_paths: words(&o.not_paths, PATHS, PATH_CHARS, 3),
                                hosts: words(&o.hosts, HOSTS, HOST_CHARS, 3),
                                not_hosts: words(&o.not_hosts, HOSTS, HOST_CHARS, 3),
                                ports: o.ports.as_ref().map(|ps| ps.iter().take(3).map(|&b| port(b)).collect()),
                                not_methods: words(&o.not_methods, METHODS, METHOD_CHARS, 3),
                                not_ports: o
                                    .not_ports
                                    .as_ref()
                                    .map(|ps| ps.iter().take(3).map(|&b| port(b)).collect()),
                                grpc: None,
                            })
                            .collect()
                    }),
                    when: r.when.as_ref().map(|w| {
                        w.iter()
                            .take(2)
                            .map(|c| match &c.key {
                                None => Condition {
                                    header: Some(c.header.make(HEADERS, &["x", "-", "h"])),
                                    key: None,
                                    values: words(&c.values, VALUES, VALUE_CHARS, 3),
                                    not_values: words(&c.not_values, VALUES, VALUE_CHARS, 3),
                                },
                                Some(k) => Condition {
                                    header: None,
                                    key: Some(k.make(KEYS, &["a", ".", "[", "]"])),
                                    values: words(&c.values, KEY_VALUES, VALUE_CHARS, 3),
                                    not_values: words(&c.not_values, KEY_VALUES, VALUE_CHARS, 3),
                                },
                            })
                            .collect()
                    }),
                })
                .collect(),
        })
        .collect();
    PluginConfig {
        mode: mode(input.audit),
        deny_status: None,
        log: None,
        policies,
    }
}

struct Req {
    method: String,
    path: String,
    authority: Option<String>,
    port: Option<u16>,
    principal: Option<String>,
    headers: Vec<(String, String)>,
    direct_peer: Option<std::net::IpAddr>,
    remote: Option<std::net::IpAddr>,
    destination: Option<std::net::IpAddr>,
    sni: Option<String>,
    /// The verified token's claims, as the engine and the reference take them.
    auth: Option<(Claims, serde_json::Value)>,
}

fn request(r: &FuzzRequest) -> Req {
    let segments: Vec<String> = r
        .segments
        .iter()
        .take(6)
        .map(|s| s.make(SEGMENTS, SEGMENT_CHARS))
        .collect();
    let mut path = format!("/{}", segments.join("/"));
    if let Some(q) = r.query {
        path.push_str(if q { "?q=/../admin" } else { "?" });
    }
    Req {
        method: r.method.make(&["GET", "POST", "get", "HEAD", "G T"], METHOD_CHARS),
        path,
        authority: r.authority.as_ref().map(|a| a.make(AUTHORITIES, AUTHORITY_CHARS)),
        port: r.port.map(port),
        principal: r.principal.as_ref().map(|p| p.make(CALLERS, PRINCIPAL_CHARS)),
        headers: r
            .headers
            .iter()
            .take(3)
            .map(|(k, v)| (k.make(HEADERS, &["x", "-", "h"]), v.make(HEADER_VALUES, VALUE_CHARS)))
            .collect(),
        direct_peer: address(&r.direct_peer),
        remote: address(&r.remote),
        destination: address(&r.destination),
        sni: r.sni.as_ref().map(|s| s.make(&["svc", "a.ex.com"], HOST_CHARS)),
        auth: r.token.map(|i| {
            let json: serde_json::Value = serde_json::from_str(TOKENS[i % TOKENS.len()]).unwrap();
            (Claims::from_json(&json).unwrap(), json)
        }),
    }
}

/// An address from the pool (`None` stays unknown).
fn address(w: &Option<Word>) -> Option<std::net::IpAddr> {
    w.as_ref().and_then(|w| w.make(ADDRESSES, &["x"]).parse().ok())
}

fuzz_target!(|input: FuzzInput| {
    let config = config(&input);
    let engine = match Engine::compile(&config) {
        Ok(engine) => engine,
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("policies["), "an error without a field: {message}");
            return;
        }
    };
    let labels: BTreeMap<String, String> = input
        .app
        .map(|b| ("app".to_string(), if b { "a" } else { "b" }.to_string()))
        .into_iter()
        .collect();
    let selection = engine.select(|k| labels.get(k).cloned());
    let engine = Arc::new(engine);
    let mut evaluator = Evaluator::new(Arc::clone(&engine), selection);
    for r in input.requests.iter().take(8).map(request) {
        let decision = evaluator.evaluate(&Request {
            auth: r.auth.as_ref().map(|(c, _)| c),
            connection: meshward_filter::ConnectionInfo {
                direct_peer: r.direct_peer,
                remote: r.remote,
                destination: r.destination,
                sni: r.sni.as_deref(),
            },
            method: &r.method,
            path: &r.path,
            authority: r.authority.as_deref(),
            port: r.port,
            principal: r.principal.as_deref(),
            headers: &r.headers[..],
        });
        let got = reference::Outcome {
            verdict: decision.verdict,
            mode: decision.mode,
            rule: decision
                .rule()
                .map(|m| format!("{}/{}", engine.policy_name(m.policy), engine.rule_name(m))),
        };
        let want = reference::decide(
            &config,
            &labels,
            &reference::Input {
                method: &r.method,
                path: &r.path,
                authority: r.authority.as_deref(),
                port: r.port,
                principal: r.principal.as_deref(),
                headers: &r.headers,
                direct_peer: r.direct_peer,
                remote: r.remote,
                destination: r.destination,
                sni: r.sni.as_deref(),
                auth: r.auth.as_ref().map(|(_, j)| j),
            },
        );
        assert_eq!(
            got,
            want,
            "method {:?} path {:?} authority {:?} port {:?} principal {:?} token {:?} headers {:?}\nconfig {}",
            r.method,
            r.path,
            r.authority,
            r.port,
            r.principal,
            r.auth.as_ref().map(|(_, j)| j),
            r.headers,
            config.to_json()
        );
    }
});
