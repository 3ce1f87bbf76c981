//! `meshward-control import` keeps the meaning of Istio's policies, shown in
//! real Envoys: the AuthorizationPolicies of `tests/e2e/data/authz/` are
//!
//! * translated into Envoy RBAC filters as istiod translates them
//!   (`meshward_e2e::rbac`), in one Envoy, and
//! * imported with the CLI, rendered with `meshward-control render` and
//!   enforced by the filter, in another,
//!
//! for each of five workloads (ALLOW and DENY policies with selectors; an
//! ALLOW policy with `rules: [{}]`; one without rules; request principals,
//! JWT claims, address blocks, negated methods and ports and every `when`
//! key), both with Istio's path normalization and Envoy's `jwt_authn` as
//! istiod configures it for a `RequestAuthentication` before the RBAC or
//! Wasm filter. The same corpus of requests (callers with SPIFFE
//! identities over mTLS, a certificate without one, plaintext; methods,
//! paths with templates, hosts with and without ports, headers, HTTP/2;
//! for the fourth and fifth workloads, the same policies over IPv4 and IPv6
//! listeners, tokens with various claims and none, a server name, and
//! `x-forwarded-for` naming another client) goes through both.
//! Every verdict agrees, except the requests listed in
//! [`DIFFERENCES`], each a documented place where meshward deliberately
//! differs ([`WHY`]): stricter (meshward refuses what Istio admits, never
//! the reverse), or a path meshward canonicalizes and forwards in its
//! canonical form, which Istio admits. A listed difference that no longer
//! shows fails the test too.
//!
//! New fields are new data: a policy in `data/authz`, requests below, and
//! the translator's arm in `tests/e2e/src/rbac.rs`.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use meshward_e2e::jwt::{jwt_authn_filter, Issuer};
use meshward_e2e::{call, control_binary, free_port, rbac, workspace, Call, Caller, EnvoyOptions, Scenario, Scratch};
use serde_json::{json, Value};

/// A workload's labels.
type Labels = &'static [(&'static str, &'static str)];

/// The workloads of namespace `shop` the policies are enforced on, and
/// whether each gets [`operations`] from [`CALLERS`] or [`jwt_operations`]
/// from [`JWT_CALLERS`] (over IPv6: from [`JWT6_CALLERS`]).
const WORKLOADS: [(&str, Labels, Corpus); 5] = [
    ("reviews", &[("app", "reviews"), ("version", "v1")], Corpus::Classic),
    ("ratings", &[("app", "ratings")], Corpus::Classic),
    ("productpage", &[("app", "productpage")], Corpus::Classic),
    ("catalog", &[("app", "catalog")], Corpus::Jwt),
    ("catalog-v6", &[("app", "catalog")], Corpus::JwtV6),
];

/// Which requests a workload gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Corpus {
    /// Identities, methods, paths, hosts, headers.
    Classic,
    /// Tokens, addresses, server names.
    Jwt,
    /// The same, with both Envoys listening on `::1`.
    JwtV6,
}

/// The issuer the `RequestAuthentication` of namespace `shop` trusts.
const ISSUER: &str = "https://idp.example.com";

/// Who sends: a SPIFFE principal over mTLS, a certificate without a URI
/// SAN, or plaintext.
#[derive(Clone, Copy)]
enum Who {
    Principal(&'static str),
    NoSan,
    Anonymous,
}

const CALLERS: [(&str, Who); 9] = [
    ("frontend", Who::Principal("cluster.local/ns/shop/sa/frontend")),
    ("batch", Who::Principal("cluster.local/ns/shop/sa/batch-nightly")),
    ("checkout", Who::Principal("cluster.local/ns/shop/sa/checkout")),
    (
        "prometheus",
        Who::Principal("cluster.local/ns/monitoring/sa/prometheus"),
    ),
    ("untrusted", Who::Principal("cluster.local/ns/monitoring/sa/untrusted")),
    ("legacy", Who::Principal("cluster.local/ns/legacy/sa/old")),
    ("partner", Who::Principal("cluster.local/ns/partner/sa/app")),
    ("no-san", Who::NoSan),
    ("anonymous", Who::Anonymous),
];

/// Who sends to the fourth workload (IPv4).
const JWT_CALLERS: [(&str, Who); 3] = [
    ("frontend", Who::Principal("cluster.local/ns/shop/sa/frontend")),
    (
        "prometheus",
        Who::Principal("cluster.local/ns/monitoring/sa/prometheus"),
    ),
    ("anonymous", Who::Anonymous),
];

/// Who sends to the IPv6 listeners (fewer, with fewer tokens: the rules are
/// the same).
const JWT6_CALLERS: [(&str, Who); 2] = [
    ("frontend", Who::Principal("cluster.local/ns/shop/sa/frontend")),
    ("anonymous", Who::Anonymous),
];

/// The requests to the fourth and fifth workloads: each path with each token
/// (`<path>.<token>`), and with the token of an editor and none, from
/// behind a proxy that names the original client in `x-forwarded-for`
/// (`<path>.<token>.<client>`).
fn jwt_operations(issuer: &Issuer) -> Vec<(String, Call)> {
    let paths = [
        ("items-get", call("GET", "/items/1")),
        ("items-delete", call("DELETE", "/items/1")),
        ("local", call("GET", "/local")),
        ("local6", call("GET", "/local6")),
        ("partner", call("GET", "/partner")),
        ("keys", call("GET", "/keys")),
        ("keys-sni", call("GET", "/keys").sni("catalog.shop.svc")),
        ("aud", call("GET", "/aud")),
        ("ip", call("GET", "/ip")),
        ("who", call("GET", "/who")),
        ("open", call("GET", "/open")),
        ("peer", call("GET", "/peer")),
        ("manage", call("GET", "/manage/x")),
        ("mtls-only", call("GET", "/mtls-only")),
    ];
    let tokens = [
        ("none", None),
        (
            "editor",
            Some(
                json!({"sub": "alice", "groups": ["editors"], "aud": "catalog", "azp": "web",
                        "realm": {"role": "owner"}}),
            ),
        ),
        (
            "banned",
            Some(json!({"sub": "banned", "groups": "editors", "aud": ["catalog"], "realm": {"role": "owner-2"}})),
        ),
        (
            "viewer",
            Some(
                json!({"sub": "bob", "groups": ["viewers"], "aud": ["other", "catalog"], "azp": "evil-app",
                        "realm": {"role": "owner"}, "scope": "read write"}),
            ),
        ),
        (
            "odd",
            Some(json!({"sub": "carol", "groups": 7, "realm": "flat", "scope": "read forbidden"})),
        ),
    ];
    let clients = [("xff-client", "203.0.113.9"), ("xff-refused", "198.51.100.7")];
    let with_token = |c: &Call, claims: &Option<Value>| match claims {
        Some(claims) => c
            .clone()
            .header("authorization", &format!("Bearer {}", issuer.sign(claims.clone()))),
        None => c.clone(),
    };
    let mut out = Vec::new();
    for (path, c) in &paths {
        for (token, claims) in &tokens {
            out.push((format!("{path}.{token}"), with_token(c, claims)));
        }
        for (token, claims) in &tokens[..2] {
            for (client, address) in clients {
                out.push((
                    format!("{path}.{token}.{client}"),
                    with_token(c, claims).header("x-forwarded-for", address),
                ));
            }
        }
    }
    // The one address remoteIpBlocks' network excludes.
    out.push((
        "partner.none.xff-excluded".into(),
        call("GET", "/partner").header("x-forwarded-for", "203.0.113.66"),
    ));
    out
}

/// The requests each caller sends: a name, then method, path, authority
/// (`None` = curl's), headers.
fn operations() -> Vec<(String, Call)> {
    let c = call;
    let ops = vec![
        ("get-review", c("GET", "/reviews/1")),
        ("get-review-h2", c("GET", "/reviews/1").h2()),
        ("get-review-query", c("GET", "/reviews/1?page=2")),
        ("get-comments", c("GET", "/reviews/1/comments/a/b")),
        ("get-comments-empty", c("GET", "/reviews/1/comments/")),
        ("get-reviews-slash", c("GET", "/reviews/")),
        ("get-deeper", c("GET", "/reviews/1/2")),
        ("get-static", c("GET", "/static/app.js")),
        ("get-css", c("GET", "/themes/site.css")),
        ("get-metrics", c("GET", "/metrics")),
        ("get-health", c("GET", "/health")),
        ("post-health", c("POST", "/health")),
        ("get-partners", c("GET", "/partners/list")),
        (
            "post-review-v1",
            c("POST", "/reviews")
                .host("reviews.shop:9080")
                .header("x-api-version", "v1"),
        ),
        (
            "post-review-v2-fqdn-upper",
            c("POST", "/reviews")
                .host("REVIEWS.Shop.svc.cluster.local:9080")
                .header("x-api-version", "v2beta")
                .h2(),
        ),
        (
            "post-review-v3",
            c("POST", "/reviews")
                .host("reviews.shop:9080")
                .header("x-api-version", "v3"),
        ),
        (
            "post-review-no-version",
            c("POST", "/reviews").host("reviews.shop:9080"),
        ),
        (
            "post-review-api-host",
            c("POST", "/reviews")
                .host("api.example.com")
                .header("x-api-version", "v1"),
        ),
        (
            "post-review-portless",
            c("POST", "/reviews").host("reviews.shop").header("x-api-version", "v1"),
        ),
        ("delete-alice", c("DELETE", "/reviews/1").header("x-user", "alice")),
        ("delete-guest", c("DELETE", "/reviews/1").header("x-user", "guest")),
        ("delete-anon", c("DELETE", "/reviews/1").header("x-user", "anonymous-7")),
        ("delete-no-user", c("DELETE", "/reviews/1")),
        (
            "delete-alice-and-guest",
            c("DELETE", "/reviews/1")
                .header("x-user", "alice")
                .header("x-user", "guest"),
        ),
        // One field line with two comma-separated values.
        (
            "delete-alice-comma-guest",
            c("DELETE", "/reviews/1").header("x-user", "alice,guest"),
        ),
        (
            "delete-private",
            c("DELETE", "/reviews/private/1").header("x-user", "alice"),
        ),
        (
            "get-internal-host",
            c("GET", "/reviews/1")
                .host("internal.example.com")
                .header("x-user", "alice"),
        ),
        ("get-admin", c("GET", "/admin/users")),
        ("get-internal-secret", c("GET", "/internal/a/b/secret")),
        ("debug-on", c("GET", "/reviews/1").header("x-debug", "on")),
        ("debug-off", c("GET", "/reviews/1").header("x-debug", "off")),
        ("blocked-host", c("GET", "/reviews/1").host("blocked.example.com")),
        (
            "blocked-host-port",
            c("GET", "/reviews/1").host("blocked.example.com:8080"),
        ),
        ("put-review", c("PUT", "/reviews/1")),
        ("double-slash", c("GET", "/reviews//1")),
        ("dot-segment", c("GET", "/static/../admin/x")),
    ];
    ops.into_iter().map(|(n, c)| (n.to_string(), c)).collect()
}

/// How meshward differs from Istio on a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    /// meshward refuses what Istio admits.
    Stricter,
    /// meshward admits the request with its path canonicalized, and the
    /// upstream receives the canonical path, which Istio admits.
    Canonical,
}

/// Deliberate differences: what meshward does instead of what Istio does,
/// and why.
const WHY: [(&str, Direction, &str); 7] = [
    (
        "anonymous-negative-identity",
        Direction::Stricter,
        "in an allow rule a caller without an identity matches no `from` entry that sets identity \
         fields, negative ones included; Istio's notPrincipals/notNamespaces admit it \
         (docs/configuration.md#semantics)",
    ),
    (
        "san-less-certificate",
        Direction::Stricter,
        "a certificate without a SPIFFE URI SAN is no identity to meshward (the caller is anonymous: \
         refused by notPrincipals [\"*\"] in a DENY rule, matching no identity field of an ALLOW rule); \
         Envoy's principal_name falls back to the certificate's subject, which Istio's `*` and \
         negations then judge",
    ),
    (
        "host-any-port",
        Direction::Stricter,
        "meshward's `blocked.example.com` in a DENY rule names the host on every port; Istio matches \
         only the portless authority, so its DENY misses `blocked.example.com:8080` (in an ALLOW rule \
         `import` refuses such a host, which would admit more)",
    ),
    (
        "header-values-one-by-one",
        Direction::Stricter,
        "every comma-separated value of a header is judged on its own, so `x-user: alice,guest` carries \
         `guest`, which notValues refuses; Istio matches the field as one string, which `guest` does not \
         match (docs/security.md#repeated-headers)",
    ),
    (
        "tokenless-negative",
        Direction::Stricter,
        "in an allow rule a request without a verified JWT matches no `from` entry that sets request \
         principal fields, negative ones included; Istio's notRequestPrincipals admits it \
         (docs/configuration.md#request-authentication-jwt; `import` warns)",
    ),
    (
        "direct-peer-unknown",
        Direction::Stricter,
        "when the listener takes the client from `x-forwarded-for` (use_remote_address false, as a \
         sidecar's inbound), meshward does not know the direct peer: ipBlocks and source.ip of an allow \
         rule do not admit, ipBlocks of a deny rule refuses; Istio's RBAC reads the connection's peer \
         (docs/configuration.md#addresses; `import` warns)",
    ),
    (
        "repeated-slash",
        Direction::Canonical,
        "meshward merges repeated slashes before judging and forwards the merged path: `/reviews//1` \
         is judged, and reaches the upstream, as `/reviews/1` (docs/configuration.md#differences-from-istio)",
    ),
];

/// `(workload, caller, operations, difference)`: the requests on which
/// meshward deliberately differs from Istio.
const DIFFERENCES: &[(&str, &str, &[&str], &str)] = &[
    ("reviews", "frontend", &["blocked-host-port"], "host-any-port"),
    ("reviews", "batch", &["blocked-host-port"], "host-any-port"),
    ("reviews", "frontend", &["double-slash"], "repeated-slash"),
    ("reviews", "batch", &["double-slash"], "repeated-slash"),
    ("reviews", "anonymous", &["get-partners"], "anonymous-negative-identity"),
    (
        "reviews",
        "checkout",
        &["delete-alice-comma-guest"],
        "header-values-one-by-one",
    ),
    // Refused by deny-anonymous-writes' notPrincipals ["*"]; not admitted
    // by the notNamespaces of reviews' partner rule.
    (
        "reviews",
        "no-san",
        &["post-health", "get-partners"],
        "san-less-certificate",
    ),
    (
        "ratings",
        "no-san",
        &[
            "post-health",
            "post-review-v1",
            "post-review-v2-fqdn-upper",
            "post-review-v3",
            "post-review-no-version",
            "post-review-api-host",
            "post-review-portless",
            "delete-alice",
            "delete-guest",
            "delete-anon",
            "delete-no-user",
            "delete-alice-and-guest",
            "delete-alice-comma-guest",
            "delete-private",
            "put-review",
        ],
        "san-less-certificate",
    ),
    (
        "catalog",
        "frontend",
        &["open.none", "open.none.xff-client"],
        "tokenless-negative",
    ),
    (
        "catalog",
        "prometheus",
        &["open.none", "open.none.xff-client"],
        "tokenless-negative",
    ),
    (
        "catalog",
        "anonymous",
        &["open.none", "open.none.xff-client"],
        "tokenless-negative",
    ),
    (
        "catalog",
        "frontend",
        &[
            "local.none.xff-client",
            "local.editor.xff-client",
            "ip.none.xff-client",
            "ip.editor.xff-client",
            "peer.none.xff-client",
            "peer.editor.xff-client",
        ],
        "direct-peer-unknown",
    ),
    (
        "catalog",
        "prometheus",
        &[
            "local.none.xff-client",
            "local.editor.xff-client",
            "ip.none.xff-client",
            "ip.editor.xff-client",
            "peer.none.xff-client",
            "peer.editor.xff-client",
        ],
        "direct-peer-unknown",
    ),
    (
        "catalog",
        "anonymous",
        &[
            "local.none.xff-client",
            "local.editor.xff-client",
            "ip.none.xff-client",
            "ip.editor.xff-client",
            "peer.none.xff-client",
            "peer.editor.xff-client",
        ],
        "direct-peer-unknown",
    ),
    (
        "catalog-v6",
        "frontend",
        &["open.none", "open.none.xff-client"],
        "tokenless-negative",
    ),
    (
        "catalog-v6",
        "anonymous",
        &["open.none", "open.none.xff-client"],
        "tokenless-negative",
    ),
    // Over IPv6 the IPv4 blocks of /local and /ip hold no peer, in both.
    (
        "catalog-v6",
        "frontend",
        &[
            "local6.none.xff-client",
            "local6.editor.xff-client",
            "peer.none.xff-client",
            "peer.editor.xff-client",
        ],
        "direct-peer-unknown",
    ),
    (
        "catalog-v6",
        "anonymous",
        &[
            "local6.none.xff-client",
            "local6.editor.xff-client",
            "peer.none.xff-client",
            "peer.editor.xff-client",
        ],
        "direct-peer-unknown",
    ),
];

/// Runs the CLI in `dir`; panics with its output unless it exits 0.
fn control(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(control_binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run meshward-control");
    assert!(
        out.status.success(),
        "meshward-control {args:?}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The policy files with the workload's mTLS port filled in, written under
/// `dir/authz`; and their documents.
fn policies(dir: &Path, port: u16) -> Vec<Value> {
    let data = workspace().join("tests/e2e/data/authz");
    let out = dir.join("authz");
    std::fs::create_dir_all(&out).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)
            .unwrap()
            .replace("{mtls_port}", &port.to_string());
        std::fs::write(out.join(f.file_name().unwrap()), &text).unwrap();
        docs.extend(
            serde_saphyr::from_multiple::<Value>(&text)
                .unwrap()
                .into_iter()
                .filter(|d| !d.is_null()),
        );
    }
    docs
}

/// The pluginConfig meshward enforces: the policies imported with the CLI
/// and rendered for namespace `shop`, enabled.
fn imported_config(dir: &Path) -> String {
    let allowlists = control(dir, &["import", "authz"]);
    std::fs::write(dir.join("allowlists.yaml"), allowlists).unwrap();
    std::fs::write(
        dir.join("namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {meshward.io/enforcement: enabled}\n",
    )
    .unwrap();
    let rendered = control(
        dir,
        &[
            "render",
            "--url",
            "file:///meshward_filter.wasm",
            "-o",
            "json",
            "--manifests",
            "namespace.yaml",
            "allowlists.yaml",
        ],
    );
    let list: Value = serde_json::from_slice(&rendered).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list:#}");
    items[0]["spec"]["pluginConfig"].to_string()
}

fn caller(s: &Scenario, who: Who) -> Caller {
    match who {
        Who::Principal(p) => s.pki.caller(p),
        Who::NoSan => s.pki.caller_without_san(),
        Who::Anonymous => Caller::Anonymous,
    }
}

/// Admitted (200) or refused (403; meshward's 400 for a malformed request).
fn admitted(status: u16, what: &str) -> bool {
    assert!(matches!(status, 200 | 400 | 403), "{what}: unexpected status {status}");
    status == 200
}

#[test]
fn imported_policies_decide_as_istio_rbac_in_envoy() {
    let known: BTreeMap<&str, Direction> = WHY.iter().map(|(d, dir, _)| (*d, *dir)).collect();
    let mut listed: BTreeMap<(&str, &str, &str), &str> = BTreeMap::new();
    for (w, c, ops, d) in DIFFERENCES {
        assert!(known.contains_key(d), "{d} is not in WHY");
        for op in *ops {
            listed.insert((*w, *c, *op), *d);
        }
    }
    let issuer = Issuer::new(ISSUER);
    let (classic, jwt) = (operations(), jwt_operations(&issuer));
    // Over IPv6 the addresses are the point: no token, or the editor's.
    let jwt6: Vec<(String, Call)> = jwt
        .iter()
        .filter(|(op, _)| op.contains(".none") || op.contains(".editor"))
        .cloned()
        .collect();
    let (mut wrong, mut requests, mut differ) = (Vec::new(), 0, 0);
    let mut sent = std::collections::BTreeSet::new();
    // Per rule of the fourth and fifth workloads (its path): (admitted by Istio, refused by Istio).
    let mut outcomes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (workload, labels, corpus) in WORKLOADS {
        let (callers, ops): (&[(&str, Who)], _) = match corpus {
            Corpus::Classic => (&CALLERS, &classic),
            Corpus::Jwt => (&JWT_CALLERS, &jwt),
            Corpus::JwtV6 => (&JWT6_CALLERS, &jwt6),
        };
        let (mesh_port, istio_port) = (free_port(), free_port());
        let pre = Scratch::new();
        let _ = policies(pre.path(), mesh_port);
        let config = imported_config(pre.path());
        let docs = policies(pre.path(), istio_port);
        let with = |opts: EnvoyOptions, port: u16| {
            let mut opts = opts
                .labels(labels)
                .mtls_port(port)
                .normalize_path()
                .filter_before(jwt_authn_filter(&[&issuer]));
            if corpus == Corpus::JwtV6 {
                opts = opts.listen_on("::1");
            }
            opts.workload = workload.into();
            opts
        };
        let mesh = Scenario::start(with(EnvoyOptions::new(config), mesh_port));
        let filters = rbac::http_filters(&docs, "shop", labels, "istio-system");
        let istio = Scenario::start(with(EnvoyOptions::new("{}").http_filters(filters), istio_port));
        for &(name, who) in callers {
            let (mesh_caller, istio_caller) = (caller(&mesh, who), caller(&istio, who));
            for (op, req) in ops {
                let op = op.as_str();
                let what = format!("{workload} {name} {op} ({} {})", req.method, req.path);
                let m = admitted(mesh.envoy.send(&mesh_caller, req).status, &what);
                let i = admitted(istio.envoy.send(&istio_caller, req).status, &what);
                requests += 1;
                sent.insert((workload, name, op));
                if corpus != Corpus::Classic {
                    // `items-get` and `items-delete` test one rule.
                    let path = op.split(['.', '-']).next().unwrap_or(op).to_string();
                    let o = outcomes.entry(path).or_default();
                    if i {
                        o.0 += 1
                    } else {
                        o.1 += 1
                    }
                }
                let verdicts = |m: bool, i: bool| {
                    let word = |a: bool| if a { "admits" } else { "refuses" };
                    format!("meshward {}, Istio {}", word(m), word(i))
                };
                match listed.get(&(workload, name, op)).map(|d| (d, known[d])) {
                    None if m == i => {}
                    None => wrong.push(format!("{what}: {}", verdicts(m, i))),
                    Some((_, Direction::Stricter)) if !m && i => differ += 1,
                    Some((_, Direction::Canonical))
                        if m && !i
                            && mesh
                                .upstream
                                .paths()
                                .last()
                                .is_some_and(|p| *p != req.path && !p.contains("//")) =>
                    {
                        differ += 1
                    }
                    Some((d, _)) => wrong.push(format!(
                        "{what}: listed as {d}, but {} (upstream last saw {:?})",
                        verdicts(m, i),
                        mesh.upstream.paths().last()
                    )),
                }
            }
        }
    }
    assert!(requests >= 200, "{requests} requests");
    // Each rule of their policies decides something: its
    // paths are admitted for some requests and refused for others.
    let one_sided: Vec<_> = outcomes.iter().filter(|(_, (a, r))| *a == 0 || *r == 0).collect();
    assert!(one_sided.is_empty(), "(admitted, refused) by Istio: {one_sided:?}");
    assert!(
        wrong.is_empty(),
        "{} of {requests} requests:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let unsent: Vec<_> = listed.keys().filter(|k| !sent.contains(*k)).collect();
    assert!(unsent.is_empty(), "listed but never sent: {unsent:?}");
    assert_eq!(differ, listed.len(), "every listed difference shows");
    eprintln!("{requests} requests, {differ} decided differently as listed");
}
