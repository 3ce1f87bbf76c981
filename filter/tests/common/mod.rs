//! Helpers shared by the engine's integration tests (native and wasm).
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;

use std::net::IpAddr;

use meshward_filter::auth::Claims;
use meshward_filter::{ConnectionInfo, Decision, Engine, Evaluator, Mode, Reason, Request, Verdict};

/// Headers of the typical request used by benchmarks and allocation tests.
pub const TYPICAL_HEADERS: [(&str, &str); 3] = [
    ("user-agent", "bench/1.0"),
    ("accept", "*/*"),
    ("x-request-id", "7d1d3c4e-2f4e-4d7a-9d8b-3a1c2b3d4e5f"),
];

/// A typical in-mesh request: `GET path` from an mTLS caller, with an
/// authority carrying a port and [`TYPICAL_HEADERS`].
pub fn typical_request(path: &str) -> Request<'_> {
    Request {
        connection: Default::default(),
        method: "GET",
        path,
        authority: Some("svc.ns.svc.cluster.local:8080"),
        port: Some(8080),
        principal: Some("cluster.local/ns/caller/sa/client"),
        auth: None,
        headers: &TYPICAL_HEADERS[..],
    }
}

/// Compiles `json` and selects policies for a workload with `labels`.
pub fn evaluator_for(json: &str, labels: &[(&str, &str)]) -> Evaluator {
    let engine = Engine::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("config rejected: {e}\n{json}"));
    let selection = engine.select(|k| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| v.to_string()));
    Evaluator::new(Arc::new(engine), selection)
}

/// Compiles `json` for a workload without labels.
pub fn evaluator(json: &str) -> Evaluator {
    evaluator_for(json, &[])
}

/// A request under construction; defaults: GET / on host "svc", port 8080, anonymous.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub authority: Option<String>,
    pub port: Option<u16>,
    pub principal: Option<String>,
    /// The claims of a verified JWT; `None` = no token.
    pub auth: Option<Claims>,
    /// The same claims as JSON, for the reference evaluator.
    pub auth_json: Option<serde_json::Value>,
    pub headers: Vec<(String, String)>,
    /// The direct peer, the original client, the destination address (all
    /// unknown by default) and the TLS server name (none by default).
    pub direct_peer: Option<IpAddr>,
    pub remote: Option<IpAddr>,
    pub destination: Option<IpAddr>,
    pub sni: Option<String>,
}

pub fn req(method: &str, path: &str) -> Req {
    Req {
        method: method.into(),
        path: path.into(),
        authority: Some("svc".into()),
        port: Some(8080),
        principal: None,
        auth: None,
        auth_json: None,
        headers: Vec::new(),
        direct_peer: None,
        remote: None,
        destination: None,
        sni: None,
    }
}

pub fn get(path: &str) -> Req {
    req("GET", path)
}

impl Req {
    pub fn from(mut self, principal: &str) -> Self {
        self.principal = Some(principal.into());
        self
    }
    pub fn host(mut self, authority: &str) -> Self {
        self.authority = Some(authority.into());
        self
    }
    pub fn no_host(mut self) -> Self {
        self.authority = None;
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// A caller connecting directly from `ip` (direct peer and original client).
    pub fn peer(mut self, ip: &str) -> Self {
        let ip = ip.parse().unwrap();
        self.direct_peer = Some(ip);
        self.remote = Some(ip);
        self
    }
    /// The original client as the proxy derived it from `x-forwarded-for`.
    pub fn remote(mut self, ip: &str) -> Self {
        self.remote = Some(ip.parse().unwrap());
        self
    }
    /// The direct peer is unknown (the proxy replaced it with an address from
    /// `x-forwarded-for`).
    pub fn peer_unknown(mut self) -> Self {
        self.direct_peer = None;
        self
    }
    pub fn destination(mut self, ip: &str) -> Self {
        self.destination = Some(ip.parse().unwrap());
        self
    }
    pub fn sni(mut self, name: &str) -> Self {
        self.sni = Some(name.into());
        self
    }
    /// A verified JWT with these claims (a JSON object).
    pub fn token(mut self, claims: serde_json::Value) -> Self {
        self.auth = Some(Claims::from_json(&claims).expect("claims are a JSON object"));
        self.auth_json = Some(claims);
        self
    }
}

/// What a test usually asserts about a decision, detached from lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub mode: Mode,
    /// "policy/rule" of the admitting rule.
    pub rule: Option<String>,
    pub reason: Reason,
    /// The canonical path judged.
    pub path: Option<String>,
    /// The target to forward, when canonicalization rewrote it.
    pub rewritten: Option<String>,
}

pub fn decide(ev: &mut Evaluator, r: &Req) -> Outcome {
    let request = Request {
        method: &r.method,
        path: &r.path,
        authority: r.authority.as_deref(),
        port: r.port,
        principal: r.principal.as_deref(),
        auth: r.auth.as_ref(),
        headers: &r.headers[..],
        connection: ConnectionInfo {
            direct_peer: r.direct_peer,
            remote: r.remote,
            destination: r.destination,
            sni: r.sni.as_deref(),
        },
    };
    let d: Decision<'_> = ev.evaluate(&request);
    let engine = ev.engine();
    Outcome {
        verdict: d.verdict,
        mode: d.mode,
        rule: d
            .rule()
            .map(|m| format!("{}/{}", engine.policy_name(m.policy), engine.rule_name(m))),
        reason: d.reason,
        path: d.path.as_ref().map(|p| p.path().to_string()),
        rewritten: d
            .path
            .as_ref()
            .filter(|p| p.is_rewritten())
            .map(|p| p.to_request_target()),
    }
}

pub fn verdict(ev: &mut Evaluator, r: &Req) -> Verdict {
    decide(ev, r).verdict
}

/// Asserts the verdict of each request, naming the request on failure.
#[track_caller]
pub fn assert_verdicts(ev: &mut Evaluator, cases: &[(Req, Verdict)]) {
    for (r, want) in cases {
        let got = decide(ev, r);
        assert_eq!(got.verdict, *want, "request {r:?} → {got:?}");
    }
}

/// One policy named "p" with the given rules (JSON array text).
pub fn one_policy(rules: &str) -> String {
    format!(r#"{{"policies":[{{"name":"p","rules":{rules}}}]}}"#)
}

/// A generated rule set of `n` rules in the benchmark's mix: exact, prefix,
/// template and regex paths with methods. Rule `i` admits `GET /svc{i}/...`.
pub fn generated_rules(n: usize) -> String {
    let mut rules = Vec::with_capacity(n);
    for i in 0..n {
        let path = match i % 4 {
            0 => format!("/svc{i}/items"),
            1 => format!("/svc{i}/static/*"),
            2 => format!("/svc{i}/users/{{*}}/orders/{{**}}"),
            _ => format!("regex:/svc{i}/v[0-9]+/report"),
        };
        let methods = if i % 2 == 0 { r#"["GET"]"# } else { r#"["GET","POST"]"# };
        rules.push(format!(
            r#"{{"name":"r{i}","to":[{{"methods":{methods},"paths":["{path}"]}}]}}"#
        ));
    }
    format!(
        r#"{{"policies":[{{"name":"generated","rules":[{}]}}]}}"#,
        rules.join(",")
    )
}

/// [`generated_rules`] with deny rules and address blocks mixed in, for
/// the benchmark of a set that reads the connection: rule `i` with
/// `i % 5 == 0` goes to a deny policy, on its path, for callers from
/// `198.51.100.0/24`; of the others, `i % 3 == 0` admits callers from
/// `10.0.0.0/8` or `192.168.{i % 256}.0/24` (`ipBlocks`), `i % 3 == 1`
/// clients outside `203.0.113.0/24` (`notRemoteIpBlocks`) and every seventh a
/// `source.ip` condition. One more deny rule, without `to`, is checked on
/// every request. [`generated_path`]`(n - 1)` from [`MIXED_PEER`] is
/// allowed for `n` a multiple of 10.
pub fn generated_rules_mixed(n: usize) -> String {
    let mut allow = Vec::with_capacity(n);
    let mut deny =
        vec![r#"{"name":"blocked","from":[{"ipBlocks":["198.51.100.0/24","2001:db8:bad::/48"]}]}"#.to_string()];
    for i in 0..n {
        let path = match i % 4 {
            0 => format!("/svc{i}/items"),
            1 => format!("/svc{i}/static/*"),
            2 => format!("/svc{i}/users/{{*}}/orders/{{**}}"),
            _ => format!("regex:/svc{i}/v[0-9]+/report"),
        };
        let methods = if i % 2 == 0 { r#"["GET"]"# } else { r#"["GET","POST"]"# };
        let to = format!(r#""to":[{{"methods":{methods},"paths":["{path}"]}}]"#);
        if i % 5 == 0 {
            deny.push(format!(
                r#"{{"name":"d{i}","from":[{{"ipBlocks":["198.51.100.0/24"]}}],{to}}}"#
            ));
            continue;
        }
        let from = match i % 3 {
            0 => format!(r#""from":[{{"ipBlocks":["10.0.0.0/8","192.168.{}.0/24"]}}],"#, i % 256),
            1 => r#""from":[{"notRemoteIpBlocks":["203.0.113.0/24"]}],"#.to_string(),
            _ => String::new(),
        };
        let when = if i % 7 == 0 {
            r#","when":[{"key":"source.ip","values":["10.0.0.0/8"]}]"#
        } else {
            ""
        };
        allow.push(format!(r#"{{"name":"r{i}",{from}{to}{when}}}"#));
    }
    format!(
        r#"{{"policies":[{{"name":"generated","rules":[{}]}},{{"name":"denied","action":"deny","rules":[{}]}}]}}"#,
        allow.join(","),
        deny.join(",")
    )
}

/// The caller of requests to [`generated_rules_mixed`]: a direct peer in
/// `10.0.0.0/8`, which is also the client.
pub const MIXED_PEER: ConnectionInfo<'static> = ConnectionInfo {
    direct_peer: Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3))),
    remote: Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3))),
    destination: Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2))),
    sni: None,
};

/// [`generated_rules`] with `{**}` in the middle of its templates:
/// `/svc{i}/users/{*}/{**}/orders` where the mix has
/// `/svc{i}/users/{*}/orders/{**}`.
pub fn generated_rules_rest_in_middle(n: usize) -> String {
    generated_rules(n).replace("/orders/{**}", "/{**}/orders")
}

/// A request path that template rule `i` (`i % 4 == 2`) admits: of
/// [`generated_rules`] if `rest_in_middle` is false, of
/// [`generated_rules_rest_in_middle`] if it is true.
pub fn generated_template_path(i: usize, rest_in_middle: bool) -> String {
    if rest_in_middle {
        format!("/svc{i}/users/42/7/lines/orders")
    } else {
        format!("/svc{i}/users/42/orders/7/lines")
    }
}

/// `n` request paths, each different, spread over services `0..services`:
/// `/svc{k}/v{d}/orders/x{i}`, the shape of the side-by-side benchmark's
/// regex rules (`scripts/vm-memory.py` sends the same ones).
pub fn distinct_paths(services: usize, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("/svc{}/v{}/orders/x{i}", (i * 7919) % services.max(1), i % 7))
        .collect()
}

/// A request path that rule `i` of [`generated_rules`] admits.
pub fn generated_path(i: usize) -> String {
    match i % 4 {
        0 => format!("/svc{i}/items"),
        1 => format!("/svc{i}/static/app.js"),
        2 => format!("/svc{i}/users/42/orders/7/lines"),
        _ => format!("/svc{i}/v2/report"),
    }
}
