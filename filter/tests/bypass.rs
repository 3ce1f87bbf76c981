//! One test per known authorization-bypass class. Each sends the attack
//! against a policy that admits `/public/*` to anyone and `/admin*` only to the
//! admin service account, and states what the engine judges and forwards.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use meshward_filter::{Reason, RequestError, Verdict};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use Verdict::{Allow, Deny, Reject};

const ADMIN: &str = "cluster.local/ns/ops/sa/admin";
const USER: &str = "cluster.local/ns/web/sa/frontend";

fn policy() -> meshward_filter::Evaluator {
    evaluator(&one_policy(
        r#"[
        {"name":"public","to":[{"methods":["GET"],"paths":["/public/*"],"notPaths":["/public/private/*"]}]},
        {"name":"admin","from":[{"principals":["cluster.local/ns/ops/sa/admin"]}],"to":[{"paths":["/admin*"]}]}
    ]"#,
    ))
}

fn rejected(path: &str) -> RequestError {
    match decide(&mut policy(), &get(path).from(USER)).reason {
        Reason::Malformed(e) => e,
        other => panic!("{path}: expected a rejection, got {other:?}"),
    }
}

/// CVE-2019-9901: `..` segments judged before normalization.
#[test]
fn dot_dot_segments_are_resolved_before_judging() {
    let o = decide(&mut policy(), &get("/public/../admin").from(USER));
    assert_eq!((o.verdict, o.path.as_deref()), (Deny, Some("/admin")));
    let o = decide(&mut policy(), &get("/public/../public/x").from(USER));
    // Allowed, and the upstream gets the path that was judged.
    assert_eq!((o.verdict, o.rewritten.as_deref()), (Allow, Some("/public/x")));
    assert_eq!(verdict(&mut policy(), &get("/public/./private/x").from(USER)), Deny);
    assert_eq!(verdict(&mut policy(), &get("/public/../../../admin").from(USER)), Deny);
}

/// Dot segments hidden in percent-encoding (`%2e`), decoded exactly once.
#[test]
fn encoded_dot_segments_are_decoded_once() {
    for p in ["/public/%2e%2e/admin", "/public/.%2E/admin", "/public/%2E./admin"] {
        let o = decide(&mut policy(), &get(p).from(USER));
        assert_eq!((o.verdict, o.path.as_deref()), (Deny, Some("/admin")), "{p}");
    }
    // Unreserved escapes are decoded: "/%61dmin" is "/admin".
    let o = decide(&mut policy(), &get("/%61dmin").from(ADMIN));
    assert_eq!((o.verdict, o.rewritten.as_deref()), (Allow, Some("/admin")));
}

/// CVE-2021-31920 / CVE-2021-29492: encoded slashes and backslashes.
#[test]
fn encoded_slashes_are_rejected() {
    assert_eq!(rejected("/public/..%2Fadmin"), RequestError::EncodedSlash);
    assert_eq!(rejected("/public/..%2fadmin"), RequestError::EncodedSlash);
    assert_eq!(rejected("/public/..%5Cadmin"), RequestError::EncodedSlash);
    assert_eq!(verdict(&mut policy(), &get("/public/a%2Fb").from(USER)), Reject);
}

/// Backslashes, which some upstreams treat as `/`.
#[test]
fn raw_backslashes_are_rejected() {
    assert_eq!(rejected("/public\\..\\admin"), RequestError::Backslash);
}

/// Repeated slashes are merged, so `//admin` is `/admin`.
#[test]
fn repeated_slashes_are_merged() {
    let o = decide(&mut policy(), &get("//admin").from(USER));
    assert_eq!((o.verdict, o.path.as_deref()), (Deny, Some("/admin")));
    let o = decide(&mut policy(), &get("/public//private/x").from(USER));
    assert_eq!((o.verdict, o.path.as_deref()), (Deny, Some("/public/private/x")));
    let o = decide(&mut policy(), &get("///public///x").from(USER));
    assert_eq!((o.verdict, o.rewritten.as_deref()), (Allow, Some("/public/x")));
}

/// CVE-2021-39156: fragments in the request target.
#[test]
fn fragments_are_rejected() {
    assert_eq!(rejected("/public/x#/../../admin"), RequestError::Fragment);
    assert_eq!(rejected("/admin#"), RequestError::Fragment);
}

/// CVE-2020-8595: a query string or fragment must not defeat an exact or
/// negative path match.
#[test]
fn query_strings_are_not_part_of_the_path() {
    let o = decide(&mut policy(), &get("/public/private/x?a=b").from(USER));
    assert_eq!((o.verdict, o.path.as_deref()), (Deny, Some("/public/private/x")));
    let o = decide(&mut policy(), &get("/admin?/public/x").from(USER));
    assert_eq!(o.verdict, Deny);
    // The query is forwarded unchanged when the path is rewritten.
    let o = decide(&mut policy(), &get("/public/./x?q=%2F..%2F").from(USER));
    assert_eq!(o.rewritten.as_deref(), Some("/public/x?q=%2F..%2F"));
}

/// `;` path parameters (Tomcat/Spring `..;/`): rejected.
#[test]
fn path_parameters_are_rejected() {
    assert_eq!(rejected("/public/..;/admin"), RequestError::PathParameter);
    assert_eq!(rejected("/admin;jsessionid=1"), RequestError::PathParameter);
    // Encoded, `;` is an ordinary character and creates no parameter.
    let o = decide(&mut policy(), &get("/public/a%3bb").from(USER));
    assert_eq!((o.verdict, o.path.as_deref()), (Allow, Some("/public/a%3Bb")));
}

/// NUL and control characters, raw or encoded.
#[test]
fn nul_and_control_characters_are_rejected() {
    assert_eq!(rejected("/public/x%00/../../admin"), RequestError::ControlCharacter);
    assert_eq!(rejected("/public/x\0"), RequestError::ControlCharacter);
    assert_eq!(rejected("/public/x%0d%0a"), RequestError::ControlCharacter);
    assert_eq!(rejected("/public/x\t"), RequestError::ControlCharacter);
    assert_eq!(rejected("/public/x?\x7f"), RequestError::ControlCharacter);
}

/// Double encoding: `%252e` must not become `.` at a double-decoding upstream.
#[test]
fn double_encoding_is_rejected() {
    assert_eq!(rejected("/public/%252e%252e/admin"), RequestError::DoubleEncoding);
    assert_eq!(rejected("/public/%25%32%65"), RequestError::DoubleEncoding);
}

/// Raw non-ASCII bytes and malformed escapes.
#[test]
fn non_ascii_and_malformed_escapes_are_rejected() {
    assert_eq!(rejected("/public/caf\u{e9}"), RequestError::NonAscii);
    assert_eq!(rejected("/public/%"), RequestError::BadPercentEncoding);
    assert_eq!(rejected("/public/%g0"), RequestError::BadPercentEncoding);
    // Escape case is normalized, so rules see one spelling.
    let o = decide(&mut policy(), &get("/public/caf%c3%a9").from(USER));
    assert_eq!((o.verdict, o.path.as_deref()), (Allow, Some("/public/caf%C3%A9")));
}

/// Method case: `get` is not `GET` (no upper-casing that an upstream might not do).
#[test]
fn method_case_is_significant() {
    assert_eq!(verdict(&mut policy(), &req("get", "/public/x").from(USER)), Deny);
    assert_eq!(verdict(&mut policy(), &req("GET", "/public/x").from(USER)), Allow);
}

/// CVE-2021-39155: host case, trailing dot and port must not defeat host rules.
#[test]
fn host_case_trailing_dot_and_port() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"hosts":["*"],"notHosts":["admin.example.com"]}]},{"name":"internal","to":[{"hosts":["api.internal:8443"]}]}]"#,
    ));
    for host in [
        "ADMIN.example.com",
        "admin.example.com.",
        "Admin.Example.Com.:443",
        "admin.example.com:8080",
    ] {
        assert_eq!(verdict(&mut ev, &get("/").host(host)), Deny, "{host}");
    }
    assert_eq!(verdict(&mut ev, &get("/").host("API.Internal.:8443")), Allow);
    for host in [
        "admin.example.com..",
        "admin.example.com:+80",
        "admin.example.com:",
        "user@admin.example.com",
    ] {
        assert_eq!(verdict(&mut ev, &get("/").host(host)), Reject, "{host}");
    }
}

/// An IPv6 literal has one spelling: `[0::1]`, `[0:0::0001]` and `[::1]` are
/// the same address, so a `notHosts` entry naming one refuses them all, and a
/// bracketed run of hex digits and dots that is no address is rejected.
/// (Found by the `canonical` fuzz target, which accepted any such run.)
#[test]
fn ipv6_literals_have_one_spelling() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"hosts":["*"],"notHosts":["[::1]"]}]}]"#));
    for host in ["[::1]", "[0::1]", "[0:0:0:0:0:0:0:1]:80", "[0000::0001]"] {
        assert_eq!(verdict(&mut ev, &get("/").host(host)), Deny, "{host}");
    }
    assert_eq!(verdict(&mut ev, &get("/").host("[::2]")), Allow);
    for host in ["[a...a:]", "[1:2:3:4:5:6:7:8:9]", "[::1%25eth0]", "[]"] {
        assert_eq!(verdict(&mut ev, &get("/").host(host)), Reject, "{host}");
    }
    // A host pattern is refused unless a request's canonical host can equal it.
    assert!(meshward_filter::Engine::from_json(one_policy(r#"[{"to":[{"hosts":["[0::1]"]}]}]"#).as_bytes()).is_err());
}

/// CVE-2021-32777 / CVE-2026-26308: repeated and comma-joined header values
/// are each judged; a second value cannot ride along with an allowed one.
#[test]
fn repeated_and_joined_header_values() {
    let mut ev = evaluator(&one_policy(r#"[{"when":[{"header":"x-tenant","values":["acme"]}]}]"#));
    assert_eq!(verdict(&mut ev, &get("/").header("x-tenant", "acme")), Allow);
    assert_eq!(
        verdict(&mut ev, &get("/").header("x-tenant", "acme").header("x-tenant", "evil")),
        Deny
    );
    assert_eq!(
        verdict(&mut ev, &get("/").header("x-tenant", "evil").header("x-tenant", "acme")),
        Deny
    );
    assert_eq!(verdict(&mut ev, &get("/").header("x-tenant", "acme,evil")), Deny);
    assert_eq!(
        verdict(&mut ev, &get("/").header("X-Tenant", "acme").header("x-tenant", "evil")),
        Deny
    );
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"header":"x-tenant","notValues":["evil"]}]}]"#,
    ));
    assert_eq!(
        verdict(&mut ev, &get("/").header("x-tenant", "acme").header("x-tenant", "evil")),
        Deny
    );
    assert_eq!(verdict(&mut ev, &get("/").header("x-tenant", "acme, evil")), Deny);
}

/// Identity strings are matched as strings: regex metacharacters in a
/// principal are literal.
#[test]
fn identity_patterns_are_never_regexes() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"principals":["cluster.local/ns/a.b/sa/c"]}]}]"#,
    ));
    assert_eq!(verdict(&mut ev, &get("/").from("cluster.local/ns/a.b/sa/c")), Allow);
    assert_eq!(verdict(&mut ev, &get("/").from("cluster.local/ns/aXb/sa/c")), Deny);
    assert_eq!(verdict(&mut ev, &get("/").from("cluster.local/ns/a.b/sa/c/")), Deny);
}

/// Missing identity: plaintext callers match no identity rule.
#[test]
fn anonymous_callers_match_no_identity_rule() {
    assert_eq!(verdict(&mut policy(), &get("/admin")), Deny);
    assert_eq!(verdict(&mut policy(), &get("/public/x")), Allow);
}

/// Absolute-form and asterisk-form targets are not origin-form paths.
#[test]
fn non_origin_form_targets_are_rejected() {
    assert_eq!(rejected("http://evil/admin"), RequestError::NotOriginForm);
    assert_eq!(rejected("*"), RequestError::NotOriginForm);
    assert_eq!(rejected(""), RequestError::MissingPath);
}
