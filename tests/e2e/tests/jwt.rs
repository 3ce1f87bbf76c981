//! JWT rules in a real Envoy: `jwt_authn` configured as istiod configures it
//! for a `RequestAuthentication` (inline JWKS, payload in metadata,
//! `allow_missing`), the filter after it reading only what `jwt_authn` left
//! after verifying a token.
//!
//! What refuses what: `jwt_authn` itself answers 401 to a token it cannot
//! verify (expired, signed with another key, an unconfigured issuer), 403 to
//! one whose audience the issuer's entry does not list, and lets a
//! request without a token through with no payload; the filter then answers
//! 403 to a verified token whose claims the rules do not admit and to a
//! request without a token where the rules need one.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshward_e2e::jwt::{jwt_authn_filter, now, Issuer};
use meshward_e2e::{call, Caller, EnvoyOptions, Scenario};
use serde_json::json;

const ISS: &str = "https://issuer.example";

fn get(s: &Scenario, path: &str, token: Option<&str>) -> (u16, String) {
    let mut c = call("GET", path);
    if let Some(t) = token {
        c = c.header("authorization", &format!("Bearer {t}"));
    }
    let reply = s.envoy.send(&Caller::Anonymous, &c);
    (reply.status, reply.body)
}

/// Reviews admits alice's tokens from the issuer whose nested claim
/// `org.team` is `payments`, on `/reviews/*`, and anyone with a verified
/// token whose `groups` list holds `ops` on `/admin/*`; a deny policy refuses
/// every request without a token.
const POLICY: &str = r#"{"policies":[
  {"name":"shop/reviews","rules":[
    {"name":"alice","from":[{"requestPrincipals":["https://issuer.example/alice"]}],"to":[{"paths":["/reviews/*"]}],
     "when":[{"key":"request.auth.claims[org][team]","values":["payments"]},
             {"key":"request.auth.audiences","values":["reviews"]}]},
    {"name":"ops","to":[{"paths":["/admin/*"]}],"when":[{"key":"request.auth.claims[groups]","values":["ops"]}]},
    {"name":"health","to":[{"paths":["/health"]}]}]},
  {"name":"shop/require-jwt","action":"deny","rules":[
    {"name":"no-token","to":[{"notPaths":["/health"]}],"from":[{"notRequestPrincipals":["*"]}]}]}
]}"#;

#[test]
fn jwt_rules_admit_verified_claims_and_nothing_else() {
    let issuer = Issuer::new(ISS);
    let stranger = Issuer::new(ISS);
    let s = Scenario::start(EnvoyOptions::new(POLICY).filter_before(jwt_authn_filter(&[&issuer])));
    let alice = json!({"sub": "alice", "aud": ["reviews"], "org": {"team": "payments"}, "groups": ["dev"]});
    let good = issuer.sign(alice.clone());
    let other_team = issuer.sign(json!({"sub": "alice", "aud": "reviews", "org": {"team": "hr"}}));
    let bob = issuer.sign(json!({"sub": "bob", "aud": "reviews", "org": {"team": "payments"}}));
    let expired =
        issuer.sign(json!({"sub": "alice", "aud": "reviews", "org": {"team": "payments"}, "exp": now() - 600}));
    let wrong_key = stranger.sign(alice.clone());
    let ops = issuer.sign(json!({"sub": "carol", "groups": ["dev", "ops"]}));
    let unknown_issuer = Issuer::new("https://unknown.example").sign(alice.clone());

    for (what, path, token, want) in [
        ("valid token with the claims", "/reviews/1", Some(&good), 200),
        (
            "another value of the nested claim",
            "/reviews/1",
            Some(&other_team),
            403,
        ),
        ("another subject", "/reviews/1", Some(&bob), 403),
        ("no token: the deny rule", "/reviews/1", None, 403),
        ("no token where no token is needed", "/health", None, 200),
        ("a list claim holding the value", "/admin/x", Some(&ops), 200),
        ("a list claim without it", "/admin/x", Some(&good), 403),
        // jwt_authn refuses what it cannot verify before the filter runs.
        ("expired token", "/reviews/1", Some(&expired), 401),
        ("token signed with another key", "/reviews/1", Some(&wrong_key), 401),
        (
            "token of an issuer no provider names",
            "/reviews/1",
            Some(&unknown_issuer),
            401,
        ),
    ] {
        let (status, body) = get(&s, path, token.map(String::as_str));
        assert_eq!(status, want, "{what}: {body}");
    }
    // Only admitted requests reached the upstream.
    assert_eq!(s.upstream.paths(), ["/reviews/1", "/health", "/admin/x"]);

    // The filter's own denials name their rules; jwt_authn's 401s never
    // reached it.
    let lines = s
        .envoy
        .eventually(|e| Some(e.access_log()).filter(|l| l.len() >= 10))
        .unwrap();
    assert_eq!(
        lines,
        [
            "GET /reviews/1 200 verdict=allow policy=shop/reviews rule=alice",
            "GET /reviews/1 403 verdict=deny policy=shop/reviews rule=-",
            "GET /reviews/1 403 verdict=deny policy=shop/reviews rule=-",
            "GET /reviews/1 403 verdict=deny policy=shop/require-jwt rule=no-token",
            "GET /health 200 verdict=allow policy=shop/reviews rule=health",
            "GET /admin/x 200 verdict=allow policy=shop/reviews rule=ops",
            "GET /admin/x 403 verdict=deny policy=shop/reviews rule=-",
            "GET /reviews/1 401 verdict=- policy=- rule=-",
            "GET /reviews/1 401 verdict=- policy=- rule=-",
            "GET /reviews/1 401 verdict=- policy=- rule=-",
        ]
    );
}

#[test]
fn a_token_in_a_header_jwt_authn_does_not_read_is_not_a_request_principal() {
    // The filter never decodes a token itself: a valid token where
    // jwt_authn does not look for one verifies nothing.
    let issuer = Issuer::new(ISS);
    let only_jwt = r#"{"policies":[{"name":"p","rules":[{"from":[{"requestPrincipals":["*"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(only_jwt).filter_before(jwt_authn_filter(&[&issuer])));
    let token = issuer.sign(json!({"sub": "alice"}));
    let elsewhere = call("GET", "/").header("x-token", &format!("Bearer {token}"));
    assert_eq!(s.envoy.send(&Caller::Anonymous, &elsewhere).status, 403);
    assert_eq!(get(&s, "/", Some(&token)).0, 200);
}

#[test]
fn several_issuers_each_verify_their_own_tokens() {
    let first = Issuer::new("https://first.example");
    let second = Issuer::new("https://second.example").audiences(&["reviews"]);
    let policy = r#"{"policies":[{"name":"p","rules":[
      {"from":[{"requestPrincipals":["https://second.example/*"]}]},
      {"when":[{"key":"request.auth.principal","values":["https://first.example/alice"]},
               {"key":"request.auth.presenter","values":["web"]}]}]}]}"#;
    let s = Scenario::start(EnvoyOptions::new(policy).filter_before(jwt_authn_filter(&[&first, &second])));
    for (what, token, want) in [
        (
            "second issuer, any subject",
            second.sign(json!({"sub": "x", "aud": "reviews"})),
            200,
        ),
        // The RequestAuthentication's audiences are jwt_authn's to check.
        (
            "second issuer, another audience",
            second.sign(json!({"sub": "x", "aud": "billing"})),
            403,
        ),
        (
            "first issuer, alice from web",
            first.sign(json!({"sub": "alice", "azp": "web"})),
            200,
        ),
        (
            "first issuer, alice from another client",
            first.sign(json!({"sub": "alice", "azp": "cli"})),
            403,
        ),
        (
            "first issuer, bob",
            first.sign(json!({"sub": "bob", "azp": "web"})),
            403,
        ),
    ] {
        assert_eq!(get(&s, "/", Some(&token)).0, want, "{what}");
    }
    // That 403 is jwt_authn's, not the filter's: its body, and no verdict.
    let (_, body) = get(&s, "/", Some(&second.sign(json!({"sub": "x", "aud": "billing"}))));
    assert_eq!(body, "Audiences in Jwt are not allowed");
    let lines = s
        .envoy
        .eventually(|e| Some(e.access_log()).filter(|l| l.len() >= 6))
        .unwrap();
    assert_eq!(lines[1], "GET / 403 verdict=- policy=- rule=-", "{lines:?}");
    assert_eq!(lines[5], "GET / 403 verdict=- policy=- rule=-", "{lines:?}");
}
