//! The allowlist semantics, one behaviour per test. Runs natively and, under
//! wasm-bindgen-test, compiled to wasm.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use meshward_filter::{Mode, Reason, Verdict};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use Verdict::{Allow, AuditDeny, Deny, Reject};

const PP: &str = "cluster.local/ns/bookinfo/sa/productpage";
const OTHER: &str = "cluster.local/ns/other/sa/client";

#[test]
fn no_policy_applies_so_everything_passes() {
    let mut ev = evaluator(r#"{"policies":[]}"#);
    assert_eq!(decide(&mut ev, &get("/anything")).reason, Reason::NoPolicy);
    // Even malformed paths pass untouched: meshward is transparent here.
    assert_eq!(verdict(&mut ev, &get("/a%2Fb")), Allow);

    let json = r#"{"policies":[{"name":"p","selector":{"app":"reviews"},"rules":[]}]}"#;
    let mut other = evaluator_for(json, &[("app", "ratings")]);
    assert_eq!(decide(&mut other, &get("/")).reason, Reason::NoPolicy);
    let mut reviews = evaluator_for(json, &[("app", "reviews"), ("version", "v1")]);
    assert_eq!(verdict(&mut reviews, &get("/")), Deny);
}

#[test]
fn selectors_need_every_label() {
    let json = r#"{"policies":[{"name":"p","selector":{"app":"reviews","version":"v2"},"rules":[]}]}"#;
    assert_eq!(
        verdict(&mut evaluator_for(json, &[("app", "reviews")]), &get("/")),
        Allow
    );
    assert_eq!(
        verdict(
            &mut evaluator_for(json, &[("app", "reviews"), ("version", "v2")]),
            &get("/")
        ),
        Deny
    );
    let empty = r#"{"policies":[{"name":"p","selector":{},"rules":[]}]}"#;
    assert_eq!(verdict(&mut evaluator(empty), &get("/")), Deny);
}

#[test]
fn a_policy_without_rules_denies_and_an_empty_rule_allows() {
    assert_eq!(verdict(&mut evaluator(&one_policy("[]")), &get("/")), Deny);
    let o = decide(&mut evaluator(&one_policy("[{}]")), &get("/x"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Allow, Some("p/rule-0")));
}

#[test]
fn default_deny_when_no_rule_matches() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"paths":["/health"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[(get("/health"), Allow), (get("/healthz"), Deny), (get("/"), Deny)],
    );
    let o = decide(&mut ev, &get("/healthz"));
    assert_eq!((o.reason, o.mode), (Reason::NoMatch, Mode::Enforce));
}

#[test]
fn principals_exact_prefix_suffix_and_present() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"principals":["cluster.local/ns/bookinfo/sa/productpage","spiffe.td/*","*/sa/admin"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").from(PP), Allow),
            (get("/").from("spiffe.td/ns/x/sa/y"), Allow),
            (get("/").from("cluster.local/ns/x/sa/admin"), Allow),
            (get("/").from(OTHER), Deny),
            (get("/"), Deny),
        ],
    );
    let mut any = evaluator(&one_policy(r#"[{"from":[{"principals":["*"]}]}]"#));
    assert_verdicts(&mut any, &[(get("/").from(OTHER), Allow), (get("/"), Deny)]);
}

#[test]
fn namespaces_come_from_well_formed_principals_only() {
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"namespaces":["bookinfo"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").from(PP), Allow),
            (get("/").from(OTHER), Deny),
            (get("/").from("cluster.local/ns/bookinfo"), Deny),
            (get("/").from("cluster.local/ns/bookinfo/sa/x/extra"), Deny),
            (get("/").from("bookinfo"), Deny),
            (get("/"), Deny),
        ],
    );
}

#[test]
fn negative_identity_fields_never_admit_anonymous_callers() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"notPrincipals":["cluster.local/ns/other/*"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").from(PP), Allow),
            (get("/").from(OTHER), Deny),
            (get("/"), Deny),
        ],
    );
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"notNamespaces":["other"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").from(PP), Allow),
            (get("/").from(OTHER), Deny),
            (get("/"), Deny),
            // A principal without a namespace cannot prove it is not in "other".
            (get("/").from("odd-identity"), Deny),
        ],
    );
}

#[test]
fn fields_inside_an_entry_and_entries_of_a_list() {
    // Inside one entry: AND. Across entries: OR.
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"namespaces":["bookinfo"],"notPrincipals":["*/sa/productpage"]},{"principals":["cluster.local/ns/other/sa/client"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").from("cluster.local/ns/bookinfo/sa/reviews"), Allow),
            (get("/").from(PP), Deny),
            (get("/").from(OTHER), Allow),
        ],
    );
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"methods":["GET"],"paths":["/a"]},{"methods":["POST"],"paths":["/b"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/a"), Allow),
            (req("POST", "/b"), Allow),
            (get("/b"), Deny),
            (req("POST", "/a"), Deny),
        ],
    );
}

#[test]
fn from_to_and_when_are_anded() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"principals":["cluster.local/ns/bookinfo/sa/productpage"]}],"to":[{"paths":["/r"]}],"when":[{"header":"x-v","values":["1"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/r").from(PP).header("x-v", "1"), Allow),
            (get("/r").from(OTHER).header("x-v", "1"), Deny),
            (get("/x").from(PP).header("x-v", "1"), Deny),
            (get("/r").from(PP), Deny),
        ],
    );
}

#[test]
fn methods_are_case_sensitive_and_star_means_any() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"methods":["GET","HEAD"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Allow),
            (req("HEAD", "/"), Allow),
            (req("get", "/"), Deny),
            (req("POST", "/"), Deny),
        ],
    );
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"methods":["*"],"paths":["/x"]}]}]"#));
    assert_verdicts(&mut ev, &[(req("PURGE", "/x"), Allow), (req("PURGE", "/y"), Deny)]);
    // A method that is not a token is malformed.
    assert_eq!(verdict(&mut ev, &req("GE T", "/x")), Reject);
}

#[test]
fn path_forms() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"paths":["/health","/reviews/*","*.css","/api/{*}/items/{**}","regex:/v[0-9]+/users/[a-z]+"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/health"), Allow),
            (get("/health/"), Deny),
            (get("/reviews/"), Allow),
            (get("/reviews/1/2"), Allow),
            (get("/reviews"), Deny),
            (get("/static/site.css"), Allow),
            (get("/site.css.map"), Deny),
            (get("/api/v1/items/7"), Allow),
            (get("/api/v1/items/7/8/9"), Allow),
            (get("/api/v1/items/"), Allow), // {**} matches nothing
            (get("/api/v1/items"), Deny),
            (get("/api/v1/x/items/7"), Deny),
            (get("/api//items/7"), Deny), // canonical "/api/items/7": no segment for {*}
            (get("/v2/users/bob"), Allow),
            (get("/v2/users/bob/x"), Deny), // regexes match the whole path
            (get("/x/v2/users/bob"), Deny),
            (get("/v2/users/Bob"), Deny),
        ],
    );
    // The query string is never part of the judged path.
    assert_eq!(verdict(&mut ev, &get("/health?x=/reviews/")), Allow);
    assert_eq!(verdict(&mut ev, &get("/admin?/health")), Deny);
}

/// `/{**}` on its own (any path, `/` included) once matched nothing, as its
/// template hung at the root of an otherwise empty template index: as a
/// positive pattern it denied what it should admit, and as a negative one
/// it excluded nothing, so this rule admitted GET on every path.
#[test]
fn a_lone_root_rest_template_matches_every_path() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"methods":["GET"],"notPaths":["/{**}"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Deny),
            (get("/admin"), Deny),
            (get("/a/b/"), Deny),
            (get("/a["), Allow),
        ],
    );
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"paths":["/{**}"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Allow),
            (get("/admin"), Allow),
            (get("/a/b/"), Allow),
            (get("/a]"), Deny),
        ],
    );
}

/// `{**}` before literal segments, as Istio writes it: it takes one or more
/// segments, and neither `[` nor `]`.
#[test]
fn rest_before_literal_segments() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"paths":["/store/{**}/cart","/docs/{**}/","/{*}/files/{**}/raw"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/store/cart"), Deny),
            (get("/store//cart"), Deny), // canonical "/store/cart"
            (get("/store/a/cart"), Allow),
            (get("/store/a/b/cart"), Allow),
            (get("/store/a/b/cart?x=1"), Allow),
            (get("/store/a/b/cart/"), Deny),
            (get("/store/a*b/cart"), Allow),
            (get("/store/a[b]/cart"), Deny),
            (get("/docs/"), Deny),
            (get("/docs/a"), Deny),
            (get("/docs/a/"), Allow),
            (get("/docs/a/b/"), Allow),
            (get("/u/files/x/raw"), Allow),
            (get("/u/files/raw"), Deny),
            (get("/u/v/files/x/raw"), Deny),
        ],
    );
}

#[test]
fn prefix_patterns_are_plain_string_prefixes_as_in_istio() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"paths":["/api*"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/api"), Allow),
            (get("/api/x"), Allow),
            (get("/apix"), Allow),
            (get("/ap"), Deny),
        ],
    );
}

#[test]
fn not_paths_exclude() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"paths":["/reviews/*"],"notPaths":["/reviews/internal/*","regex:.*/secret"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/reviews/1"), Allow),
            (get("/reviews/internal/x"), Deny),
            (get("/reviews/a/secret"), Deny),
            (get("/reviews/./internal/x"), Deny),
        ],
    );
    // notPaths alone: everything but.
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"notPaths":["/admin*"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[(get("/x"), Allow), (get("/admin/x"), Deny), (get("//admin"), Deny)],
    );
}

#[test]
fn hosts_are_case_insensitive_and_ports_optional() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"hosts":["reviews","ratings.bookinfo.svc.cluster.local:9080","*.example.com"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").host("reviews"), Allow),
            (get("/").host("REVIEWS:1234"), Allow),
            (get("/").host("reviews."), Allow),
            (get("/").host("Ratings.Bookinfo.svc.cluster.local:9080"), Allow),
            (get("/").host("ratings.bookinfo.svc.cluster.local"), Deny),
            (get("/").host("ratings.bookinfo.svc.cluster.local:9081"), Deny),
            (get("/").host("a.example.com"), Allow),
            (get("/").host("a.b.EXAMPLE.com:443"), Allow),
            (get("/").host("example.com"), Deny),
            (get("/").host("reviewsx"), Deny),
            (get("/").no_host(), Deny),
        ],
    );
    assert_eq!(verdict(&mut ev, &get("/").host("a@reviews")), Reject);
    assert_eq!(verdict(&mut ev, &get("/").host("reviews:0")), Reject);
}

#[test]
fn not_hosts_require_a_host() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"notHosts":["admin.example.com"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").host("www.example.com"), Allow),
            (get("/").host("Admin.Example.com"), Deny),
            (get("/").host("admin.example.com.:8443"), Deny),
            (get("/").no_host(), Deny),
        ],
    );
}

#[test]
fn ports_are_destination_ports() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"ports":[9080,9443]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").port(9080), Allow),
            (get("/").port(9443), Allow),
            (get("/").port(8080), Deny),
            // The authority's port is not the destination port.
            (get("/").port(8080).host("svc:9080"), Deny),
        ],
    );
}

#[test]
fn header_values_every_value_must_match() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"header":"X-Api-Version","values":["v1","v2*"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").header("x-api-version", "v1"), Allow),
            (get("/").header("X-API-VERSION", "v2beta"), Allow),
            (
                get("/").header("x-api-version", "v1").header("x-api-version", "v2"),
                Allow,
            ),
            (get("/").header("x-api-version", "v1, v2"), Allow),
            // A smuggled second value cannot ride along, on its own line or comma-joined.
            (
                get("/").header("x-api-version", "v1").header("x-api-version", "admin"),
                Deny,
            ),
            (get("/").header("x-api-version", "v1,admin"), Deny),
            (get("/").header("x-api-version", "v2,admin"), Deny),
            (get("/").header("x-api-version", ""), Deny),
            (get("/"), Deny),
        ],
    );
}

#[test]
fn header_not_values_no_value_may_match() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"header":"x-role","notValues":["admin*"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").header("x-role", "user"), Allow),
            (get("/"), Allow),
            (get("/").header("x-role", "user").header("x-role", "admin"), Deny),
            (get("/").header("x-role", "user, administrator"), Deny),
        ],
    );
    // Present-with-any-value and a negative together.
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"header":"x-role","values":["*"],"notValues":["root"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").header("x-role", ""), Allow),
            (get("/").header("x-role", "a"), Allow),
            (get("/").header("x-role", "a,root"), Deny),
            (get("/"), Deny),
        ],
    );
}

#[test]
fn empty_positive_lists_match_nothing() {
    // A resolved selector that found no workload must not become "anyone".
    for rules in [
        r#"[{"from":[{"principals":[]}]}]"#,
        r#"[{"from":[{"namespaces":[]}]}]"#,
        r#"[{"from":[]}]"#,
        r#"[{"to":[]}]"#,
        r#"[{"to":[{"paths":[]}]}]"#,
        r#"[{"to":[{"methods":[]}]}]"#,
        r#"[{"to":[{"hosts":[]}]}]"#,
        r#"[{"to":[{"ports":[]}]}]"#,
        r#"[{"when":[{"header":"x","values":[]}]}]"#,
    ] {
        let mut ev = evaluator(&one_policy(rules));
        assert_eq!(verdict(&mut ev, &get("/").from(PP).header("x", "1")), Deny, "{rules}");
    }
    // Empty negative lists exclude nothing.
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"paths":["/a"],"notPaths":[]}]}]"#));
    assert_eq!(verdict(&mut ev, &get("/a")), Allow);
}

#[test]
fn the_first_matching_rule_is_reported() {
    let mut ev = evaluator(
        r#"{"policies":[
        {"name":"ns/a","rules":[{"name":"wide","to":[{"paths":["/x*"]}]},{"to":[{"paths":["/xy"]}]}]},
        {"name":"ns/b","rules":[{"name":"exact","to":[{"paths":["/xy"]}]}]}]}"#,
    );
    assert_eq!(decide(&mut ev, &get("/xy")).rule.as_deref(), Some("ns/a/wide"));
    assert_eq!(decide(&mut ev, &get("/x")).rule.as_deref(), Some("ns/a/wide"));
}

#[test]
fn audit_mode_never_denies() {
    let mut ev = evaluator(r#"{"mode":"audit","policies":[{"name":"p","rules":[{"to":[{"paths":["/ok"]}]}]}]}"#);
    let o = decide(&mut ev, &get("/ok"));
    assert_eq!((o.verdict, o.mode), (Allow, Mode::Audit));
    let o = decide(&mut ev, &get("/no"));
    assert_eq!((o.verdict, o.mode, o.reason), (AuditDeny, Mode::Audit, Reason::NoMatch));
    // Malformed requests are reported, not rejected, in audit mode.
    let o = decide(&mut ev, &get("/a%2Fb"));
    assert_eq!(o.verdict, AuditDeny);
    assert!(matches!(o.reason, Reason::Malformed(_)));
}

#[test]
fn per_policy_mode_overrides_the_top_level() {
    let json = r#"{"mode":"audit","policies":[{"name":"p","mode":"enforce","rules":[{"to":[{"paths":["/ok"]}]}]}]}"#;
    assert_eq!(verdict(&mut evaluator(json), &get("/no")), Deny);
    let json = r#"{"policies":[{"name":"p","mode":"audit","rules":[{"to":[{"paths":["/ok"]}]}]}]}"#;
    assert_eq!(verdict(&mut evaluator(json), &get("/no")), AuditDeny);
}

#[test]
fn with_enforce_and_audit_policies_only_enforce_decides() {
    let json = r#"{"policies":[
        {"name":"live","rules":[{"to":[{"paths":["/live"]}]}]},
        {"name":"trial","mode":"audit","rules":[{"to":[{"paths":["/trial","/live"]}]}]}]}"#;
    let mut ev = evaluator(json);
    let o = decide(&mut ev, &get("/live"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Allow, Some("live/rule-0")));
    // Admitted only by the audit policy: the enforce policy still denies.
    assert_eq!(verdict(&mut ev, &get("/trial")), Deny);
    assert_eq!(verdict(&mut ev, &get("/none")), Deny);
    // Only the audit policy applies to this workload: it decides, in audit mode.
    let json = r#"{"policies":[
        {"name":"live","selector":{"app":"a"},"rules":[]},
        {"name":"trial","mode":"audit","rules":[{"to":[{"paths":["/trial"]}]}]}]}"#;
    let mut ev = evaluator_for(json, &[("app", "b")]);
    let o = decide(&mut ev, &get("/trial"));
    assert_eq!(
        (o.verdict, o.mode, o.rule.as_deref()),
        (Allow, Mode::Audit, Some("trial/rule-0"))
    );
    assert_eq!(verdict(&mut ev, &get("/other")), AuditDeny);
}

#[test]
fn deny_status_defaults_to_403() {
    assert_eq!(evaluator(r#"{"policies":[]}"#).engine().deny_status(), 403);
    assert_eq!(
        evaluator(r#"{"denyStatus":401,"policies":[]}"#).engine().deny_status(),
        401
    );
}

#[test]
fn identity_indexed_rules_still_check_every_field() {
    // Many identity-only rules are filed under the identity index; each must
    // still be verified in full.
    let mut rules = Vec::new();
    for i in 0..200 {
        rules.push(format!(
            r#"{{"from":[{{"principals":["cluster.local/ns/n{i}/sa/s"]}}],"to":[{{"methods":["GET"],"paths":["/api/*"]}}]}}"#
        ));
    }
    let mut ev = evaluator(&one_policy(&format!("[{}]", rules.join(","))));
    assert_verdicts(
        &mut ev,
        &[
            (get("/api/x").from("cluster.local/ns/n7/sa/s"), Allow),
            (req("POST", "/api/x").from("cluster.local/ns/n7/sa/s"), Deny),
            (get("/other").from("cluster.local/ns/n7/sa/s"), Deny),
            (get("/api/x").from("cluster.local/ns/n7/sa/t"), Deny),
            (get("/api/x"), Deny),
        ],
    );
}

#[test]
fn ten_thousand_rules() {
    let n = 10_000;
    let mut ev = evaluator(&generated_rules(n));
    for i in [0, 1, 2, 3, 4_998, 4_999, n - 2, n - 1] {
        let o = decide(&mut ev, &get(&generated_path(i)));
        assert_eq!(
            (o.verdict, o.rule),
            (Allow, Some(format!("generated/r{i}"))),
            "rule {i}"
        );
    }
    assert_eq!(verdict(&mut ev, &req("POST", &generated_path(n - 2))), Deny);
    assert_eq!(verdict(&mut ev, &req("POST", &generated_path(n - 1))), Allow);
    assert_eq!(verdict(&mut ev, &get(&format!("/svc{n}/items"))), Deny);
    assert_eq!(verdict(&mut ev, &get("/svc3/v2x/report")), Deny);
    let stats = ev.engine().stats();
    assert_eq!((stats.rules, stats.unindexed_clauses), (n, 0));
    assert_eq!(
        stats.paths.exact + stats.paths.prefix + stats.paths.template + stats.paths.regex,
        n
    );
}

/// The benchmark's rule mix with `{**}` in the middle of its templates
/// admits each template rule's path, and only that rule's.
#[test]
fn generated_mix_with_rest_in_middle() {
    let mut ev = evaluator(&common::generated_rules_rest_in_middle(40));
    for i in [2, 6, 38] {
        let path = common::generated_template_path(i, true);
        let got = decide(&mut ev, &get(&path));
        assert_eq!(got.rule.as_deref(), Some(format!("generated/r{i}").as_str()), "{path}");
        assert_eq!(verdict(&mut ev, &get(&common::generated_template_path(i, false))), Deny);
    }
    assert_eq!(verdict(&mut ev, &get("/svc2/users/42/orders")), Deny);
}

/// A gRPC call: `POST path` with `content-type`.
fn grpc_call(path: &str, content_type: &str) -> Req {
    req("POST", path).header("content-type", content_type)
}

#[test]
fn grpc_entries_admit_their_methods_as_grpc_calls_only() {
    let mut ev = evaluator(&one_policy(
        r#"[{"name":"reads","to":[{"grpc":{"service":"shop.inventory.v1.Inventory","methods":["GetItem","ListItems"]}}]}]"#,
    ));
    const GET_ITEM: &str = "/shop.inventory.v1.Inventory/GetItem";
    let o = decide(&mut ev, &grpc_call(GET_ITEM, "application/grpc"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Allow, Some("p/reads")));
    assert_verdicts(
        &mut ev,
        &[
            (
                grpc_call("/shop.inventory.v1.Inventory/ListItems", "application/grpc+proto"),
                Allow,
            ),
            (grpc_call(GET_ITEM, "application/grpc+json"), Allow),
            // Another method, another service, a longer path.
            (
                grpc_call("/shop.inventory.v1.Inventory/DeleteItem", "application/grpc"),
                Deny,
            ),
            (
                grpc_call("/shop.inventory.v2.Inventory/GetItem", "application/grpc"),
                Deny,
            ),
            (
                grpc_call("/shop.inventory.v1.Inventory/GetItem/x", "application/grpc"),
                Deny,
            ),
            // Method names are case-sensitive, as gRPC's paths are.
            (
                grpc_call("/shop.inventory.v1.Inventory/getitem", "application/grpc"),
                Deny,
            ),
            // Not gRPC as Envoy judges it: another content type, gRPC-Web,
            // another case, parameters, none, two.
            (grpc_call(GET_ITEM, "application/json"), Deny),
            (grpc_call(GET_ITEM, "application/grpc-web"), Deny),
            (grpc_call(GET_ITEM, "application/grpc-web+proto"), Deny),
            (grpc_call(GET_ITEM, "Application/gRPC"), Deny),
            (grpc_call(GET_ITEM, "application/grpc; charset=utf-8"), Deny),
            (req("POST", GET_ITEM), Deny),
            (
                grpc_call(GET_ITEM, "application/grpc").header("content-type", "application/grpc"),
                Deny,
            ),
            // gRPC content type but not POST.
            (req("GET", GET_ITEM).header("content-type", "application/grpc"), Deny),
        ],
    );
}

#[test]
fn grpc_star_admits_every_method_of_the_service() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"grpc":{"service":"Greeter","methods":["*"]}}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (grpc_call("/Greeter/SayHello", "application/grpc"), Allow),
            (grpc_call("/Greeter/Anything_2", "application/grpc"), Allow),
            (grpc_call("/Greeter/a/b", "application/grpc"), Deny),
            (grpc_call("/Greeter2/SayHello", "application/grpc"), Deny),
            (grpc_call("/pkg.Greeter/SayHello", "application/grpc"), Deny),
            (grpc_call("/Greeter/SayHello", "text/plain"), Deny),
        ],
    );
}

#[test]
fn grpc_entries_combine_with_hosts_ports_callers_and_other_entries() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"principals":["cluster.local/ns/bookinfo/sa/productpage"]}],
             "to":[{"grpc":{"service":"a.S","methods":["M"]},"hosts":["svc"],"ports":[8080]},
                   {"methods":["POST"],"paths":["/a.S/Json"]}]}]"#,
    ));
    let call = |path: &str| grpc_call(path, "application/grpc").from(PP);
    assert_verdicts(
        &mut ev,
        &[
            (call("/a.S/M"), Allow),
            (call("/a.S/M").port(9090), Deny),
            (call("/a.S/M").host("other"), Deny),
            (grpc_call("/a.S/M", "application/grpc").from(OTHER), Deny),
            // The plain HTTP entry admits its path whatever the content type.
            (call("/a.S/Json"), Allow),
            (req("POST", "/a.S/Json").from(PP), Allow),
            // And the gRPC entry does not admit a plain POST to its path.
            (
                req("POST", "/a.S/M")
                    .from(PP)
                    .header("content-type", "application/json"),
                Deny,
            ),
        ],
    );
}

#[test]
fn a_grpc_method_also_named_as_a_path_is_one_pattern() {
    // The same path from a grpc entry and a paths entry: each entry keeps
    // its own conditions.
    for rules in [
        r#"[{"name":"http","to":[{"paths":["/a.S/M"],"methods":["PUT"]}]},{"name":"grpc","to":[{"grpc":{"service":"a.S","methods":["M"]}}]}]"#,
        r#"[{"name":"grpc","to":[{"grpc":{"service":"a.S","methods":["M"]}}]},{"name":"http","to":[{"paths":["/a.S/M"],"methods":["PUT"]}]}]"#,
    ] {
        let mut ev = evaluator(&one_policy(rules));
        assert_eq!(
            decide(&mut ev, &grpc_call("/a.S/M", "application/grpc"))
                .rule
                .as_deref(),
            Some("p/grpc")
        );
        assert_eq!(decide(&mut ev, &req("PUT", "/a.S/M")).rule.as_deref(), Some("p/http"));
        assert_eq!(verdict(&mut ev, &req("POST", "/a.S/M")), Deny);
    }
}

#[test]
fn audit_grpc_denials_are_audit_denials() {
    let json =
        r#"{"mode":"audit","policies":[{"name":"p","rules":[{"to":[{"grpc":{"service":"a.S","methods":["M"]}}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(
        &mut ev,
        &[
            (grpc_call("/a.S/M", "application/grpc"), Allow),
            (grpc_call("/a.S/N", "application/grpc"), AuditDeny),
        ],
    );
}

// ---------------------------------------------------------------- deny policies

/// An allow policy admitting every GET, and a deny policy refusing `/admin/*`.
const ALLOW_ALL_DENY_ADMIN: &str = r#"{"policies":[
    {"name":"allow","rules":[{"name":"gets","to":[{"methods":["GET"]}]}]},
    {"name":"deny","action":"deny","rules":[{"name":"admin","to":[{"paths":["/admin/*"]}]}]}]}"#;

#[test]
fn a_deny_rule_wins_over_an_allow_rule() {
    let mut ev = evaluator(ALLOW_ALL_DENY_ADMIN);
    let o = decide(&mut ev, &get("/admin/users"));
    assert_eq!(
        (o.verdict, o.mode, o.rule.as_deref()),
        (Deny, Mode::Enforce, Some("deny/admin"))
    );
    assert!(matches!(o.reason, Reason::Denied(_)));
    let o = decide(&mut ev, &get("/orders"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Allow, Some("allow/gets")));
    // What no allow rule admits stays denied, by the allow policy.
    let o = decide(&mut ev, &req("POST", "/orders"));
    assert_eq!((o.verdict, o.reason), (Deny, Reason::NoMatch));
}

#[test]
fn deny_policies_alone_do_not_make_a_workload_default_deny() {
    let json = r#"{"policies":[{"name":"d","action":"deny","rules":[{"to":[{"paths":["/admin/*"]}]}]}]}"#;
    let mut ev = evaluator(json);
    let o = decide(&mut ev, &get("/orders"));
    assert_eq!(
        (o.verdict, o.mode, o.reason, o.rule),
        (Allow, Mode::Enforce, Reason::NotDenied, None)
    );
    let o = decide(&mut ev, &get("/admin/x"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Deny, Some("d/rule-0")));
    // A deny policy without rules refuses nothing.
    let empty = r#"{"policies":[{"name":"d","action":"deny","rules":[]}]}"#;
    assert_eq!(verdict(&mut evaluator(empty), &get("/")), Allow);
    // A malformed request cannot be judged against the deny rules: rejected.
    assert_eq!(verdict(&mut ev, &get("/a%2Fb")), Reject);
}

#[test]
fn an_audit_deny_rule_marks_what_the_enforce_allow_rules_admit() {
    let json = r#"{"policies":[
        {"name":"allow","rules":[{"name":"gets","to":[{"methods":["GET"]}]}]},
        {"name":"deny","action":"deny","mode":"audit","rules":[{"name":"admin","to":[{"paths":["/admin/*"]}]}]}]}"#;
    let mut ev = evaluator(json);
    // Admitted by the enforce allow rule, matched by the audit deny rule:
    // forwarded, recorded as audit_deny naming the deny rule.
    let o = decide(&mut ev, &get("/admin/users"));
    assert_eq!(
        (o.verdict, o.mode, o.rule.as_deref()),
        (AuditDeny, Mode::Audit, Some("deny/admin"))
    );
    // Refused by the enforce allow policy: the enforcing decision stands.
    let o = decide(&mut ev, &req("POST", "/admin/users"));
    assert_eq!((o.verdict, o.mode, o.reason), (Deny, Mode::Enforce, Reason::NoMatch));
    assert_eq!(verdict(&mut ev, &get("/orders")), Allow);
    // An enforce deny rule wins over an audit one.
    let both = r#"{"policies":[
        {"name":"audit","action":"deny","mode":"audit","rules":[{"to":[{"paths":["/admin/*"]}]}]},
        {"name":"enforce","action":"deny","rules":[{"to":[{"paths":["/admin/*"]}]}]}]}"#;
    let o = decide(&mut evaluator(both), &get("/admin/x"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Deny, Some("enforce/rule-0")));
}

#[test]
fn not_principals_any_in_a_deny_rule_refuses_anonymous_callers() {
    let json = r#"{"policies":[{"name":"d","action":"deny","rules":[{"name":"plaintext","from":[{"notPrincipals":["*"]}]}]}]}"#;
    let mut ev = evaluator(json);
    let o = decide(&mut ev, &get("/"));
    assert_eq!((o.verdict, o.rule.as_deref()), (Deny, Some("d/plaintext")));
    assert_eq!(verdict(&mut ev, &get("/").from(PP)), Allow);
    // notNamespaces too: a caller without a namespace is not in "bookinfo".
    let json = r#"{"policies":[{"name":"d","action":"deny","rules":[{"from":[{"notNamespaces":["bookinfo"]}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Deny),
            (get("/").from("odd-identity"), Deny),
            (get("/").from(OTHER), Deny),
            (get("/").from(PP), Allow),
        ],
    );
    // Positive fields still need an identity.
    let json = r#"{"policies":[{"name":"d","action":"deny","rules":[{"from":[{"principals":["*"]}]},{"from":[{"namespaces":["*"]}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(&mut ev, &[(get("/"), Allow), (get("/").from(PP), Deny)]);
}

#[test]
fn allow_rules_stay_strict_for_anonymous_callers_beside_deny_rules() {
    let json = r#"{"policies":[
        {"name":"a","rules":[{"from":[{"notPrincipals":["cluster.local/ns/other/*"]}]}]},
        {"name":"d","action":"deny","rules":[{"from":[{"notPrincipals":["*"]}],"to":[{"paths":["/deny-anonymous"]}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Deny),
            (get("/").from(PP), Allow),
            (get("/").from(OTHER), Deny),
            (get("/deny-anonymous").from(PP), Allow),
        ],
    );
    assert_eq!(decide(&mut ev, &get("/")).reason, Reason::NoMatch);
    assert_eq!(
        decide(&mut ev, &get("/deny-anonymous")).rule.as_deref(),
        Some("d/rule-0")
    );
}

#[test]
fn a_deny_rules_not_hosts_matches_a_request_without_authority() {
    let json = r#"{"policies":[{"name":"d","action":"deny","rules":[{"to":[{"notHosts":["svc"]}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(
        &mut ev,
        &[
            (get("/").no_host(), Deny),
            (get("/"), Allow),
            (get("/").host("other"), Deny),
        ],
    );
}

fn deny_policy(rules: &str) -> String {
    format!(r#"{{"policies":[{{"name":"d","action":"deny","rules":{rules}}}]}}"#)
}

#[test]
fn not_methods_exclude_the_methods_they_name() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"notMethods":["DELETE","PUT"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Allow),
            (req("POST", "/"), Allow),
            (req("DELETE", "/"), Deny),
            (req("PUT", "/"), Deny),
        ],
    );
}

#[test]
fn not_methods_star_excludes_every_method() {
    let mut ev = evaluator(&one_policy(
        r#"[{"to":[{"notMethods":["*"]}]},{"to":[{"paths":["/open"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[(get("/"), Deny), (req("BREW", "/"), Deny), (get("/open"), Allow)],
    );
}

#[test]
fn not_methods_combine_with_methods() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"methods":["*"],"notMethods":["TRACE"]}]}]"#));
    assert_verdicts(&mut ev, &[(req("TRACE", "/"), Deny), (req("PATCH", "/"), Allow)]);
}

#[test]
fn not_ports_exclude_the_destination_ports_they_name() {
    let mut ev = evaluator(&one_policy(r#"[{"to":[{"notPorts":[9090]}]}]"#));
    assert_verdicts(&mut ev, &[(get("/").port(8080), Allow), (get("/").port(9090), Deny)]);
}

#[test]
fn a_deny_rules_not_ports_refuses_every_other_port() {
    let mut ev = evaluator(&deny_policy(r#"[{"to":[{"notPorts":[8080]}]}]"#));
    assert_verdicts(&mut ev, &[(get("/").port(8080), Allow), (get("/").port(15000), Deny)]);
}

#[test]
fn ip_blocks_match_ipv4_addresses_and_cidrs() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"ipBlocks":["10.1.0.0/16","192.168.7.7"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("10.1.200.3"), Allow),
            (get("/").peer("192.168.7.7"), Allow),
            (get("/").peer("192.168.7.8"), Deny),
            (get("/").peer("10.2.0.1"), Deny),
        ],
    );
}

#[test]
fn ip_blocks_match_ipv6_addresses_and_cidrs_only() {
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"ipBlocks":["2001:db8::/32","::1"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("2001:db8:1::9"), Allow),
            (get("/").peer("::1"), Allow),
            (get("/").peer("2001:db9::1"), Deny),
            (get("/").peer("127.0.0.1"), Deny),
        ],
    );
    // An IPv4 block never holds an IPv6 address, even 0.0.0.0/0.
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"ipBlocks":["0.0.0.0/0"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[(get("/").peer("10.0.0.1"), Allow), (get("/").peer("::1"), Deny)],
    );
}

#[test]
fn ip_blocks_judge_the_direct_peer_not_the_forwarded_client() {
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"ipBlocks":["10.0.0.0/8"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("10.0.0.1").remote("192.0.2.1"), Allow),
            (get("/").peer("192.0.2.1").remote("10.0.0.1"), Deny),
        ],
    );
}

#[test]
fn remote_ip_blocks_judge_the_forwarded_client() {
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"remoteIpBlocks":["203.0.113.0/24"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("10.0.0.1").remote("203.0.113.5"), Allow),
            (get("/").peer("203.0.113.5").remote("10.0.0.1"), Deny),
        ],
    );
}

#[test]
fn not_ip_blocks_exclude_peers() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"ipBlocks":["10.0.0.0/8"],"notIpBlocks":["10.9.0.0/16"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[(get("/").peer("10.1.0.1"), Allow), (get("/").peer("10.9.0.1"), Deny)],
    );
}

#[test]
fn an_allow_rule_on_an_unknown_peer_admits_nothing() {
    // The proxy replaced the peer with an address from x-forwarded-for: the
    // rule cannot be judged and does not admit, positive or negative.
    for from in [r#"{"ipBlocks":["0.0.0.0/0"]}"#, r#"{"notIpBlocks":["10.0.0.0/8"]}"#] {
        let mut ev = evaluator(&one_policy(&format!(r#"[{{"from":[{from}]}}]"#)));
        assert_verdicts(&mut ev, &[(get("/").remote("192.0.2.1").peer_unknown(), Deny)]);
    }
}

#[test]
fn a_deny_rule_on_an_unknown_peer_refuses() {
    for from in [r#"{"ipBlocks":["10.0.0.0/8"]}"#, r#"{"notIpBlocks":["10.0.0.0/8"]}"#] {
        let mut ev = evaluator(&deny_policy(&format!(r#"[{{"from":[{from}]}}]"#)));
        assert_verdicts(&mut ev, &[(get("/").remote("10.0.0.1").peer_unknown(), Deny)]);
    }
}

#[test]
fn a_deny_rule_on_ip_blocks_refuses_only_the_blocks() {
    let mut ev = evaluator(&deny_policy(r#"[{"from":[{"ipBlocks":["198.51.100.0/24"]}]}]"#));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("198.51.100.7"), Deny),
            (get("/").peer("198.51.101.7"), Allow),
        ],
    );
}

#[test]
fn address_fields_do_not_need_an_identity() {
    // An entry that names only addresses admits a plaintext caller.
    let mut ev = evaluator(&one_policy(r#"[{"from":[{"ipBlocks":["10.0.0.0/8"]}]}]"#));
    assert_verdicts(&mut ev, &[(get("/").peer("10.0.0.1"), Allow)]);
    // Beside an identity field, both must hold.
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"ipBlocks":["10.0.0.0/8"],"namespaces":["bookinfo"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("10.0.0.1"), Deny),
            (get("/").peer("10.0.0.1").from(PP), Allow),
            (get("/").peer("11.0.0.1").from(PP), Deny),
        ],
    );
}

#[test]
fn when_key_request_headers_is_the_header_form() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"key":"request.headers[X-Version]","values":["v1"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").header("x-version", "v1"), Allow),
            (get("/").header("x-version", "v2"), Deny),
            (get("/"), Deny),
        ],
    );
}

#[test]
fn when_source_ip_and_remote_ip_take_blocks() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"key":"source.ip","values":["10.0.0.0/8"]},{"key":"remote.ip","notValues":["203.0.113.0/24"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").peer("10.0.0.1"), Allow),
            (get("/").peer("10.0.0.1").remote("203.0.113.9"), Deny),
            (get("/").peer("11.0.0.1"), Deny),
        ],
    );
}

#[test]
fn when_destination_ip_and_port() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"key":"destination.ip","values":["10.0.0.2","fd00::/8"]},{"key":"destination.port","values":["8080"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").destination("10.0.0.2").port(8080), Allow),
            (get("/").destination("fd00::5").port(8080), Allow),
            (get("/").destination("10.0.0.2").port(9090), Deny),
            (get("/").destination("10.0.0.3").port(8080), Deny),
            (get("/").port(8080), Deny),
        ],
    );
}

#[test]
fn when_source_principal_and_namespace_match_like_from() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"key":"source.principal","values":["cluster.local/ns/bookinfo/*"]},{"key":"source.namespace","notValues":["other"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").from(PP), Allow),
            (get("/").from(OTHER), Deny),
            (get("/"), Deny),
        ],
    );
}

#[test]
fn when_identity_keys_on_an_anonymous_caller_in_a_deny_rule() {
    // As in Istio: notValues pass, values fail.
    let mut ev = evaluator(&deny_policy(
        r#"[{"when":[{"key":"source.principal","notValues":["*"]}]}]"#,
    ));
    assert_verdicts(&mut ev, &[(get("/"), Deny), (get("/").from(PP), Allow)]);
    let mut ev = evaluator(&deny_policy(
        r#"[{"when":[{"key":"source.namespace","values":["*"]}]}]"#,
    ));
    assert_verdicts(&mut ev, &[(get("/"), Allow), (get("/").from(PP), Deny)]);
}

#[test]
fn when_connection_sni() {
    let mut ev = evaluator(&one_policy(
        r#"[{"when":[{"key":"connection.sni","values":["*.example.com"]}]}]"#,
    ));
    assert_verdicts(
        &mut ev,
        &[
            (get("/").sni("api.example.com"), Allow),
            (get("/").sni("example.org"), Deny),
            (get("/"), Deny),
        ],
    );
}

/// The benchmark's mixed rule set decides as its documentation says.
#[test]
fn the_mixed_benchmark_set_admits_its_caller_and_refuses_the_blocked_one() {
    let json = generated_rules_mixed(100);
    let mut ev = evaluator(&json);
    let allowed = get(&generated_path(99)).peer("10.1.2.3");
    assert_eq!(decide(&mut ev, &allowed).rule.as_deref(), Some("generated/r99"));
    assert_verdicts(
        &mut ev,
        &[
            (get(&generated_path(99)).peer("198.51.100.1"), Deny),
            (get(&generated_path(98)).peer("10.1.2.3"), Allow),
            (get(&generated_path(95)).peer("10.1.2.3"), Deny),
            (get("/svc100/v2/report").peer("10.1.2.3"), Deny),
        ],
    );
}

// ------------------------------------------------------------ JWT (request authentication)

const ISS: &str = "https://issuer.example";

fn alice() -> serde_json::Value {
    serde_json::json!({"iss": ISS, "sub": "alice", "aud": ["shop", "admin-ui"], "azp": "web",
        "groups": ["dev", "ops"], "org": {"team": "payments", "level": 3}, "email": "alice@example.com"})
}

#[test]
fn request_principals_match_the_verified_tokens_iss_and_sub() {
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"requestPrincipals":["https://issuer.example/alice","https://issuer.example/svc-*"]}]}]"#,
    ));
    let token = |sub: &str| serde_json::json!({"iss": ISS, "sub": sub});
    assert_verdicts(
        &mut ev,
        &[
            (get("/").token(alice()), Allow),
            (get("/").token(token("svc-batch")), Allow),
            (get("/").token(token("bob")), Deny),
            (
                get("/").token(serde_json::json!({"iss": "https://other", "sub": "alice"})),
                Deny,
            ),
            // No verified token: no request principal.
            (get("/"), Deny),
            // An mTLS identity is not a request principal.
            (get("/").from(PP), Deny),
        ],
    );
}

#[test]
fn request_principals_split_at_the_last_slash_as_istio() {
    // "*" needs both claims; "*/alice" any issuer; a suffix pattern with '/'
    // matches the issuer's end and the exact subject.
    let mut any = evaluator(&one_policy(r#"[{"from":[{"requestPrincipals":["*"]}]}]"#));
    assert_verdicts(
        &mut any,
        &[
            (get("/").token(alice()), Allow),
            (get("/").token(serde_json::json!({"iss": ISS})), Deny),
            (get("/").token(serde_json::json!({"iss": ISS, "sub": ""})), Deny),
            (get("/").token(serde_json::json!({"iss": ISS, "sub": 7})), Deny),
        ],
    );
    let mut suffix = evaluator(&one_policy(r#"[{"from":[{"requestPrincipals":["*.example/alice"]}]}]"#));
    assert_verdicts(
        &mut suffix,
        &[
            (get("/").token(alice()), Allow),
            (
                get("/").token(serde_json::json!({"iss": "https://issuer.example/x", "sub": "alice"})),
                Deny,
            ),
        ],
    );
}

#[test]
fn not_request_principals_any_in_a_deny_rule_refuses_requests_without_a_token() {
    let json = r#"{"policies":[
      {"name":"open","rules":[{}]},
      {"name":"require-jwt","action":"deny","rules":[{"name":"no-token","from":[{"notRequestPrincipals":["*"]}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(
        &mut ev,
        &[
            (get("/"), Deny),
            // An mTLS identity is not a token.
            (get("/").from(PP), Deny),
            (get("/").token(alice()), Allow),
            // A verified token without `sub` is not a request principal.
            (get("/").token(serde_json::json!({"iss": ISS})), Deny),
        ],
    );
    assert_eq!(decide(&mut ev, &get("/")).rule.as_deref(), Some("require-jwt/no-token"));
}

#[test]
fn allow_rules_stay_strict_for_requests_without_a_token() {
    // Negative JWT fields in an allow rule do not admit a request without a
    // token (stricter than Istio, as for mTLS identities).
    let mut ev = evaluator(&one_policy(
        r#"[{"from":[{"notRequestPrincipals":["https://issuer.example/mallory"]}]}]"#,
    ));
    assert_verdicts(&mut ev, &[(get("/"), Deny), (get("/").token(alice()), Allow)]);
    let mut cond = evaluator(&one_policy(
        r#"[{"when":[{"key":"request.auth.claims[groups]","notValues":["banned"]}]}]"#,
    ));
    assert_verdicts(&mut cond, &[(get("/"), Deny), (get("/").token(alice()), Allow)]);
}

#[test]
fn a_from_entry_with_only_jwt_fields_ignores_the_mtls_identity_and_both_kinds_combine() {
    let mut only_jwt = evaluator(&one_policy(r#"[{"from":[{"requestPrincipals":["*"]}]}]"#));
    // A plaintext request with a token passes: the entry names no mTLS field.
    assert_verdicts(
        &mut only_jwt,
        &[(get("/").token(alice()), Allow), (get("/").from(PP), Deny)],
    );
    let mut both = evaluator(&one_policy(
        r#"[{"from":[{"namespaces":["bookinfo"],"requestPrincipals":["https://issuer.example/alice"]}]}]"#,
    ));
    assert_verdicts(
        &mut both,
        &[
            (get("/").from(PP).token(alice()), Allow),
            (get("/").token(alice()), Deny),
            (get("/").from(OTHER).token(alice()), Deny),
            (get("/").from(PP), Deny),
        ],
    );
}

#[test]
fn when_request_auth_keys_read_the_verified_claims() {
    for (key, yes, no) in [
        (
            "request.auth.principal",
            "https://issuer.example/alice",
            "https://issuer.example/bob",
        ),
        ("request.auth.audiences", "admin-ui", "billing"),
        ("request.auth.presenter", "web", "cli"),
        ("request.auth.claims[email]", "*@example.com", "*@other.com"),
        // A list claim matches if any element does.
        ("request.auth.claims[groups]", "ops", "finance"),
        // Nested claims, as Istio writes them.
        ("request.auth.claims[org][team]", "pay*", "hr"),
    ] {
        let rule = |values: &str| one_policy(&format!(r#"[{{"when":[{{"key":"{key}","values":["{values}"]}}]}}]"#));
        assert_eq!(
            verdict(&mut evaluator(&rule(yes)), &get("/").token(alice())),
            Allow,
            "{key} = {yes}"
        );
        assert_eq!(
            verdict(&mut evaluator(&rule(no)), &get("/").token(alice())),
            Deny,
            "{key} = {no}"
        );
        assert_eq!(
            verdict(&mut evaluator(&rule(yes)), &get("/")),
            Deny,
            "{key} without a token"
        );
    }
}

#[test]
fn claims_match_only_strings_and_lists_of_strings() {
    // A number, an object or a missing claim matches no value, not even "*";
    // a missing claim passes notValues once a token is verified.
    for key in [
        "request.auth.claims[org][level]",
        "request.auth.claims[org]",
        "request.auth.claims[nope]",
    ] {
        let any = one_policy(&format!(r#"[{{"when":[{{"key":"{key}","values":["*"]}}]}}]"#));
        assert_eq!(verdict(&mut evaluator(&any), &get("/").token(alice())), Deny, "{key}");
    }
    let not = one_policy(r#"[{"when":[{"key":"request.auth.claims[nope]","notValues":["x"]}]}]"#);
    assert_eq!(verdict(&mut evaluator(&not), &get("/").token(alice())), Allow);
}

#[test]
fn request_headers_key_is_the_header_form() {
    let by_key = one_policy(r#"[{"when":[{"key":"request.headers[X-Env]","values":["prod"]}]}]"#);
    let by_header = one_policy(r#"[{"when":[{"header":"x-env","values":["prod"]}]}]"#);
    for json in [by_key, by_header] {
        let mut ev = evaluator(&json);
        assert_verdicts(
            &mut ev,
            &[
                (get("/").header("x-env", "prod"), Allow),
                (get("/").header("x-env", "dev"), Deny),
                (get("/"), Deny),
            ],
        );
        assert!(ev.engine().reads_header(b"X-ENV"));
        assert!(!ev.engine().needs().auth);
    }
}

#[test]
fn a_deny_rules_auth_condition_follows_istio_without_a_token() {
    let json = r#"{"policies":[
      {"name":"open","rules":[{}]},
      {"name":"d","action":"deny","rules":[
        {"name":"not-admin","to":[{"paths":["/admin"]}],"when":[{"key":"request.auth.claims[groups]","notValues":["ops"]}]},
        {"name":"banned","when":[{"key":"request.auth.claims[groups]","values":["banned"]}]}]}]}"#;
    let mut ev = evaluator(json);
    assert_verdicts(
        &mut ev,
        &[
            // notValues passes without a token: the deny rule refuses.
            (get("/admin"), Deny),
            (get("/admin").token(alice()), Allow),
            (
                get("/admin").token(serde_json::json!({"iss": ISS, "sub": "bob", "groups": ["dev"]})),
                Deny,
            ),
            // values fails without a token: not refused by "banned".
            (get("/"), Allow),
            (
                get("/").token(serde_json::json!({"iss": ISS, "sub": "x", "groups": "banned"})),
                Deny,
            ),
        ],
    );
}

#[test]
fn the_engine_says_when_it_reads_the_token() {
    let needs = |rules: &str| evaluator(&one_policy(rules)).engine().needs();
    assert!(!needs(r#"[{"from":[{"principals":["*"]}]}]"#).auth);
    assert!(needs(r#"[{"from":[{"principals":["*"]}]}]"#).principal);
    let jwt_only = needs(r#"[{"from":[{"requestPrincipals":["*"]}]}]"#);
    assert!(jwt_only.auth && !jwt_only.principal);
    assert!(needs(r#"[{"from":[{"notRequestPrincipals":["*"]}]}]"#).auth);
    let claim = needs(r#"[{"when":[{"key":"request.auth.claims[a][b]","values":["x"]}]}]"#);
    assert!(claim.auth && !claim.headers);
}
