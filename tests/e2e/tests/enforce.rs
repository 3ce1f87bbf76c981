//! The filter in a real Envoy: allow, deny, rewrite and reject, by every
//! request attribute, over HTTP/1.1 and HTTP/2.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshward_e2e::{call, Caller, EnvoyOptions, Scenario};

const PRODUCTPAGE: &str = "cluster.local/ns/shop/sa/productpage";
const ADMIN: &str = "cluster.local/ns/ops/sa/admin";

/// The policy most scenarios use: reads from the shop namespace, admin
/// paths for the admin service account, `/public/*` for anyone.
const POLICY: &str = r#"{"policies":[{"name":"shop/reviews","selector":{"app":"reviews"},"rules":[
  {"name":"shop-reads","from":[{"namespaces":["shop"]}],"to":[{"methods":["GET","HEAD"],"paths":["/reviews/*","/api/{*}/items/{**}","regex:/v[0-9]+/ratings"]}]},
  {"name":"admin","from":[{"principals":["cluster.local/ns/ops/sa/admin"]}],"to":[{"paths":["/admin*"]}]},
  {"name":"public","to":[{"methods":["GET"],"paths":["/public/*"],"notPaths":["/public/private/*"]}]},
  {"name":"versioned","to":[{"paths":["/versioned"]}],"when":[{"header":"x-api-version","values":["v1","v2*"]}]},
  {"name":"hosted","to":[{"paths":["/hosted"],"hosts":["reviews.shop.svc.cluster.local","*.example.com"]}]},
  {"name":"styles","to":[{"methods":["GET"],"paths":["*.css"]}]}
]}]}"#;

fn status(s: &Scenario, caller: &Caller, method: &str, path: &str) -> u16 {
    s.envoy.send(caller, &call(method, path)).status
}

#[test]
fn allows_and_denies_by_method_path_and_identity() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    let admin = s.pki.caller(ADMIN);
    let other = s.pki.caller("cluster.local/ns/other/sa/client");
    for (caller, method, path, want) in [
        (&pp, "GET", "/reviews/1", 200),
        (&pp, "HEAD", "/reviews/1", 200),
        (&pp, "DELETE", "/reviews/1", 403),
        (&pp, "GET", "/reviewsX", 403),
        (&pp, "GET", "/api/v1/items/7/8", 200),
        (&pp, "GET", "/api/v1/items", 403),
        (&pp, "GET", "/v2/ratings", 200),
        (&pp, "GET", "/v2/ratings/x", 403),
        (&other, "GET", "/reviews/1", 403),
        (&pp, "GET", "/admin/x", 403),
        (&admin, "POST", "/admin/x", 200),
        (&other, "GET", "/public/x", 200),
        (&other, "GET", "/public/private/x", 403),
        (&other, "GET", "/static/site.css", 200),
        (&other, "GET", "/static/site.css.map", 403),
        (&other, "GET", "/static/..%2fsite.css", 400),
    ] {
        assert_eq!(status(&s, caller, method, path), want, "{method} {path} as {caller:?}");
    }
    // Denied requests never reached the upstream.
    let paths = s.upstream.paths();
    assert!(
        !paths
            .iter()
            .any(|p| p == "/reviewsX" || p.starts_with("/public/private")),
        "{paths:?}"
    );
}

/// Istio's path templates in a real Envoy: `{**}` before literal segments,
/// `{**}` matching nothing (the segment after a trailing `/`), and the
/// canonical path, with repeated `/` merged, as what they match.
#[test]
fn path_templates_as_istio_writes_them() {
    let config = r#"{"policies":[{"name":"shop/store","rules":[{"to":[{"methods":["GET"],
      "paths":["/store/{**}/cart","/allow/admin/{**}","/{*}/files/{**}/raw","/docs/{**}/"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(config));
    let anon = Caller::Anonymous;
    for (path, want) in [
        // `{**}` in the middle takes one or more segments.
        ("/store/a/cart", 200),
        ("/store/a/b/c/cart", 200),
        ("/store/cart", 403),
        ("/store/a/cart/x", 403),
        ("/store/a/cart?x=1", 200),
        ("/u/files/a/b/raw", 200),
        ("/u/files/raw", 403),
        // `{**}` matching nothing: the empty segment after a trailing `/`.
        ("/allow/admin/", 200),
        ("/allow/admin", 403),
        ("/allow/admin?param=value", 403),
        ("/allow/admin/x/y.txt", 200),
        ("/docs/a/", 200),
        ("/docs/a", 403),
        // Judged after canonicalization: `/store/cart`, `/store/x/cart`.
        ("/store//cart", 403),
        ("/store/./x/cart", 200),
        ("/store/a*b/cart", 200),
    ] {
        assert_eq!(status(&s, &anon, "GET", path), want, "{path}");
    }
    // Neither operator matches `[` or `]` (sent raw: curl would glob them).
    let raw = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n");
        s.envoy.send_raw(request.as_bytes())
    };
    assert_eq!(raw("/store/a[1]/cart"), 403);
    assert_eq!(raw("/store/a(1)/cart"), 200);
    assert_eq!(s.envoy.send(&anon, &call("GET", "/allow/admin/").h2()).status, 200);
    assert_eq!(s.upstream.paths().last().map(String::as_str), Some("/allow/admin/"));
    assert!(
        !s.upstream
            .paths()
            .iter()
            .any(|p| p == "/store/cart" || p == "/store//cart"),
        "{:?}",
        s.upstream.paths()
    );
}

#[test]
fn deny_response_names_the_request_and_the_decision() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    let reply = s
        .envoy
        .send(&pp, &call("DELETE", "/reviews/1").header("x-request-id", "req-42"));
    assert_eq!(reply.status, 403);
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["requestId"], "req-42");
    assert_eq!(body["decision"], "denied");
    assert!(!reply.body.contains("shop-reads"), "no rule internals: {}", reply.body);
}

#[test]
fn anonymous_and_san_less_callers_match_no_identity_rule() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    assert_eq!(status(&s, &Caller::Anonymous, "GET", "/reviews/1"), 403);
    assert_eq!(status(&s, &Caller::Anonymous, "GET", "/public/x"), 200);
    let no_san = s.pki.caller_without_san();
    assert_eq!(status(&s, &no_san, "GET", "/reviews/1"), 403);
    assert_eq!(status(&s, &no_san, "GET", "/public/x"), 200);
    // A forged identity header changes nothing.
    let forged = call("GET", "/reviews/1").header("x-forwarded-client-cert", &format!("URI=spiffe://{PRODUCTPAGE}"));
    assert_eq!(s.envoy.send(&Caller::Anonymous, &forged).status, 403);
}

#[test]
fn upstream_receives_exactly_the_canonical_path() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    for (sent, forwarded) in [
        ("/reviews/./1", "/reviews/1"),
        ("/x/../reviews/2", "/reviews/2"),
        ("//reviews//3", "/reviews/3"),
        ("/%72eviews/4?q=%2F..", "/reviews/4?q=%2F.."),
        ("/reviews/%c3%a9", "/reviews/%C3%A9"),
    ] {
        assert_eq!(status(&s, &pp, "GET", sent), 200, "{sent}");
        assert_eq!(s.upstream.paths().last().map(String::as_str), Some(forwarded), "{sent}");
    }
}

#[test]
fn bypass_attempts_through_envoy() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    let anon = Caller::Anonymous;
    for (caller, path, want) in [
        (&anon, "/public/../admin", 403),         // dot segments (CVE-2019-9901)
        (&anon, "/public/%2e%2e/admin", 403),     // encoded dot segments
        (&anon, "/public/..%2Fadmin", 400),       // encoded slash (CVE-2021-31920)
        (&anon, "/public/..%5cadmin", 400),       // encoded backslash
        (&anon, "/public/..;/admin", 400),        // path parameters
        (&anon, "/public/%252e%252e/admin", 400), // double encoding
        (&anon, "/public/x%00", 400),             // NUL
        (&anon, "//admin", 403),                  // repeated slashes
        (&anon, "/public//private/x", 403),       // merged before notPaths
        (&anon, "/public/private/x?y", 403),      // query is not the path (CVE-2020-8595)
        (&pp, "/reviews/1", 200),
    ] {
        assert_eq!(status(&s, caller, "GET", path), want, "{path}");
    }
    // A fragment, sent raw (curl strips it): Envoy or the filter must refuse it.
    let code = s
        .envoy
        .send_raw(b"GET /public/x#/../../admin HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n");
    assert!(code == 400, "fragment: {code}");
    assert!(
        !s.upstream.paths().iter().any(|p| p.contains("admin")),
        "{:?}",
        s.upstream.paths()
    );
}

#[test]
fn methods_are_case_sensitive_and_hosts_are_not() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let anon = Caller::Anonymous;
    // Over HTTP/1.1, Envoy's codec already refuses a lower-case method (400,
    // before any filter); over HTTP/2 it reaches meshward, where `get` is not
    // `GET`.
    assert_eq!(status(&s, &anon, "get", "/public/x"), 400);
    assert_eq!(s.envoy.send(&anon, &call("get", "/public/x").h2()).status, 403);
    assert!(s.upstream.paths().is_empty(), "{:?}", s.upstream.paths());
    for (host, want) in [
        ("reviews.shop.svc.cluster.local", 200),
        ("Reviews.Shop.SVC.cluster.local:9080", 200),
        ("reviews.shop.svc.cluster.local.", 200),
        ("api.EXAMPLE.com", 200),
        ("example.com", 403),
        ("ratings.shop.svc.cluster.local", 403),
    ] {
        let reply = s.envoy.send(&anon, &call("GET", "/hosted").host(host));
        assert_eq!(reply.status, want, "{host}");
    }
}

#[test]
fn repeated_and_comma_joined_headers_are_judged_value_by_value() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let anon = Caller::Anonymous;
    for (values, want) in [
        (vec!["v1"], 200),
        (vec!["v2beta"], 200),
        (vec!["v1", "v2"], 200),
        (vec!["v1, v2"], 200),
        (vec!["v1", "admin"], 403),
        (vec!["v1,admin"], 403),
        (vec![], 403),
    ] {
        for h2 in [false, true] {
            let mut c = call("GET", "/versioned");
            for v in &values {
                c = c.header("x-api-version", v);
            }
            if h2 {
                c = c.h2();
            }
            assert_eq!(s.envoy.send(&anon, &c).status, want, "{values:?} h2={h2}");
        }
    }
}

/// HTTP/1.1 allows header bytes above 0x7f (obs-text) and Envoy forwards
/// them. The proxy-wasm SDK's header reader panicked on them, which aborted
/// the VM: that request and every later one on the worker got a 503.
#[test]
fn header_values_that_are_not_utf8_neither_crash_nor_bypass() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let raw = |path: &str, extra: &[u8]| {
        let mut r = format!("GET {path} HTTP/1.1\r\nHost: reviews\r\n").into_bytes();
        r.extend_from_slice(extra);
        r.extend_from_slice(b"Connection: close\r\n\r\n");
        s.envoy.send_raw(&r)
    };
    // A header no condition reads: the decision is the usual one.
    assert_eq!(raw("/public/x", b"X-Note: caf\xe9\r\n"), 200);
    // The header a condition reads: rejected, not taken as absent.
    assert_eq!(raw("/versioned", b"X-Api-Version: v1\xe9\r\n"), 400);
    // The VM is still alive and deciding.
    assert_eq!(raw("/public/x", b""), 200);
    assert_eq!(raw("/versioned", b"X-Api-Version: v1\r\n"), 200);
    assert_eq!(raw("/admin", b""), 403);
    assert!(!s.envoy.log().contains("panic"), "{}", s.envoy.log());
}

#[test]
fn http2_over_mtls() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    assert_eq!(s.envoy.send(&pp, &call("GET", "/reviews/./h2").h2()).status, 200);
    assert_eq!(s.upstream.paths().last().map(String::as_str), Some("/reviews/h2"));
    assert_eq!(s.envoy.send(&pp, &call("DELETE", "/reviews/h2").h2()).status, 403);
    assert_eq!(s.envoy.send(&pp, &call("GET", "/reviews/a%2Fb").h2()).status, 400);
}

#[test]
fn selectors_match_the_node_labels() {
    // The policy selects app=reviews; this proxy serves app=ratings.
    let s = Scenario::start(EnvoyOptions::new(POLICY).labels(&[("app", "ratings")]));
    assert_eq!(status(&s, &Caller::Anonymous, "DELETE", "/anything"), 200);
    assert!(s.envoy.log().contains("0 of 1 policies apply"), "{}", s.envoy.log());
}

#[test]
fn audit_mode_forwards_what_it_would_deny() {
    let audit = POLICY.replacen(r#""rules":["#, r#""mode":"audit","rules":["#, 1);
    let s = Scenario::start(EnvoyOptions::new(audit));
    assert_eq!(status(&s, &Caller::Anonymous, "DELETE", "/reviews/1"), 200);
    assert_eq!(status(&s, &Caller::Anonymous, "GET", "/x/../reviews/1"), 200);
    // Audit forwards the request untouched.
    assert_eq!(s.upstream.paths().last().map(String::as_str), Some("/x/../reviews/1"));
}

#[test]
fn access_log_prints_verdict_policy_and_rule() {
    let s = Scenario::start(EnvoyOptions::new(POLICY));
    let pp = s.pki.caller(PRODUCTPAGE);
    assert_eq!(status(&s, &pp, "GET", "/reviews/1"), 200);
    assert_eq!(status(&s, &pp, "DELETE", "/reviews/1"), 403);
    assert_eq!(status(&s, &pp, "GET", "/reviews/%2F"), 400);
    // The access log is flushed asynchronously.
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = s.envoy.access_log();
        if lines.len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        lines,
        vec![
            "GET /reviews/1 200 verdict=allow policy=shop/reviews rule=shop-reads",
            // A default deny is the decision of the applicable policy.
            "DELETE /reviews/1 403 verdict=deny policy=shop/reviews rule=-",
            "GET /reviews/%2F 400 verdict=reject policy=shop/reviews rule=-",
        ]
    );
}

#[test]
fn ports_are_the_destination_port_of_the_connection() {
    // Only the mTLS listener's port is allowed; the authority's port is not
    // what `ports` matches.
    let config = r#"{"policies":[{"name":"p","rules":[{"to":[{"ports":[{mtls_port}]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(config));
    let caller = s.pki.caller("cluster.local/ns/x/sa/y");
    assert_eq!(s.envoy.send(&caller, &call("GET", "/")).status, 200);
    assert_eq!(s.envoy.send(&Caller::Anonymous, &call("GET", "/")).status, 403);
    let spoofed = call("GET", "/").host(&format!("localhost:{}", s.envoy.mtls));
    assert_eq!(s.envoy.send(&Caller::Anonymous, &spoofed).status, 403);
}
