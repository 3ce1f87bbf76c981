//! The plugin's unit tests: configurations and requests through a
//! [`FakeHost`], asserting on what the filter did (its response, filter
//! state, counters, log lines, and what it read).

use super::fake::FakeHost;
use super::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const CONFIG: &str = r#"{"policies":[{"name":"shop/reviews","selector":{"app":"reviews"},"rules":[
    {"name":"reads","from":[{"namespaces":["shop"]}],"to":[{"methods":["GET"],"paths":["/reviews/*"],"ports":[9080]}]}]}]}"#;

fn configured(host: &FakeHost, json: &str) -> Plugin {
    let mut plugin = Plugin::default();
    plugin.configure(host, json.as_bytes().to_vec()).unwrap();
    plugin
}

/// One request through `plugin`, its log line written at once (the fake
/// reports no response status unless given one).
fn serve_and_log(plugin: &Plugin, host: &mut FakeHost) {
    let mut request = plugin.request();
    request.on_request_headers(host);
    request.on_log(host);
}

fn reviews_host() -> FakeHost {
    FakeHost::new()
        .with_workload("shop", "reviews")
        .with_label("app", "reviews")
        .with_peer("spiffe://cluster.local/ns/shop/sa/productpage")
        .with_port(9080)
}

#[test]
fn allowed_request_continues_and_records_the_rule() {
    let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews:9080");
    let plugin = configured(&host, CONFIG);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(host.response, None);
    assert!(host.set_headers.is_empty(), "canonical path is not rewritten");
    assert_eq!(
        (
            host.state(STATE_VERDICT),
            host.state(STATE_POLICY),
            host.state(STATE_RULE)
        ),
        (Some("allow"), Some("shop/reviews"), Some("reads"))
    );
}

/// A header value that is not UTF-8 (obs-text, which HTTP/1.1 allows and
/// Envoy forwards) used to abort the VM inside the SDK's header reader.
#[test]
fn header_values_that_are_not_utf8() {
    let with_condition = |mode: &str| {
        format!(
            r#"{{"mode":"{mode}","policies":[{{"name":"p","rules":[{{"to":[{{"paths":["/a"]}}],
            "when":[{{"header":"x-tier","notValues":["internal*"]}}]}}]}}]}}"#
        )
    };
    let no_condition = r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["/a"]}]}]}]}"#;
    for (config, name, value, action, verdict) in [
        // A condition reads it: rejected (as absent it would pass notValues).
        (
            with_condition("enforce"),
            "x-tier",
            &b"internal\xe9"[..],
            Action::Pause,
            "reject",
        ),
        // Case-insensitively the same header; in audit mode recorded, forwarded.
        (
            with_condition("audit"),
            "X-Tier",
            b"caf\xe9",
            Action::Continue,
            "audit_deny",
        ),
        // A header no condition reads cannot change the decision.
        (
            with_condition("enforce"),
            "x-other",
            b"caf\xe9",
            Action::Continue,
            "allow",
        ),
        (
            no_condition.to_string(),
            "x-tier",
            b"caf\xe9",
            Action::Continue,
            "allow",
        ),
    ] {
        let mut host = FakeHost::new()
            .with_request("GET", "/a", "svc")
            .with_raw_header(name, value);
        let plugin = configured(&host, &config);
        assert_eq!(
            plugin.request().on_request_headers(&mut host),
            action,
            "{name} {config}"
        );
        assert_eq!(host.state(STATE_VERDICT), Some(verdict), "{name} {config}");
        assert_eq!(
            host.status(),
            (action == Action::Pause).then_some(400),
            "{name} {config}"
        );
    }
}

#[test]
fn filter_state_entries_follow_the_configuration() {
    for (setting, want) in [
        ("all", vec![STATE_VERDICT, STATE_POLICY, STATE_RULE]),
        ("verdict", vec![STATE_VERDICT]),
        ("off", vec![]),
    ] {
        let json = CONFIG.replacen(
            r#"{"policies""#,
            &format!(r#"{{"log":{{"filterState":"{setting}"}},"policies""#),
            1,
        );
        for (method, verdict) in [("GET", "allow"), ("DELETE", "deny")] {
            let mut host = reviews_host().with_request(method, "/reviews/1", "reviews:9080");
            let plugin = configured(&host, &json);
            plugin.request().on_request_headers(&mut host);
            let keys: Vec<&str> = host.state.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, want, "{setting} {method}");
            if !want.is_empty() {
                assert_eq!(host.state(STATE_VERDICT), Some(verdict));
            }
        }
    }
    let bad = CONFIG.replacen(r#"{"policies""#, r#"{"log":{"filterState":"some"},"policies""#, 1);
    let err = Plugin::default()
        .configure(&reviews_host(), bad.into_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("log.filterState"), "{err}");
}

#[test]
fn memory_growth_while_serving_is_logged_once_per_step() {
    let grew = |host: &FakeHost| host.logs_containing("VM memory grew");
    let mut host = reviews_host()
        .with_request("GET", "/reviews/1", "reviews:9080")
        .with_memory(5 << 20);
    let plugin = configured(&host, CONFIG);
    assert_eq!(host.logs_containing("VM memory 5.0 MiB").len(), 1);
    plugin.request().on_request_headers(&mut host);
    assert_eq!(grew(&host), [] as [String; 0], "no growth since configure");
    host = host.with_memory(6 << 20);
    plugin.request().on_request_headers(&mut host);
    plugin.request().on_request_headers(&mut host);
    assert_eq!(
        grew(&host),
        ["meshward: VM memory grew to 6.0 MiB while serving requests"]
    );
    // A denied request is watched too.
    host = host
        .with_request("DELETE", "/reviews/1", "reviews:9080")
        .with_memory(7 << 20);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    assert_eq!(grew(&host).len(), 2);
}

#[test]
fn denied_request_gets_the_deny_status_and_a_json_body() {
    let mut host = reviews_host().with_request("DELETE", "/reviews/1", "reviews:9080");
    let plugin = configured(&host, CONFIG);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    let (status, body) = host.response.clone().unwrap();
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["requestId"], "req-1");
    assert_eq!(body["decision"], "denied");
    assert_eq!(host.state(STATE_VERDICT), Some("deny"));
}

#[test]
fn grpc_requests_are_answered_in_grpcs_form() {
    const GRPC: &str = r#"{"denyStatus":404,"policies":[{"name":"shop/inventory","rules":[
        {"name":"reads","to":[{"grpc":{"service":"shop.Inventory","methods":["GetItem"]}}]}]}]}"#;
    let grpc = |path: &str, content_type: &str| {
        reviews_host()
            .with_request("POST", path, "inventory")
            .with_header("content-type", content_type)
    };
    let plugin = configured(&reviews_host(), GRPC);

    let mut host = grpc("/shop.Inventory/GetItem", "application/grpc");
    serve_and_log(&plugin, &mut host);
    assert_eq!((host.response.clone(), host.grpc_response.clone()), (None, None));

    // Denied: PERMISSION_DENIED whatever denyStatus, the reply body as message.
    let mut host = grpc("/shop.Inventory/DeleteItem", "application/grpc+proto");
    serve_and_log(&plugin, &mut host);
    assert_eq!(host.response, None);
    let (status, message) = host.grpc_response.clone().unwrap();
    assert_eq!(status, 7);
    let message: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(message, serde_json::json!({"requestId": "req-1", "decision": "denied"}));
    let l = &host.request_logs()[0];
    assert_eq!(
        (l["grpc"].as_bool(), l["path"].as_str()),
        (Some(true), Some("/shop.Inventory/DeleteItem"))
    );

    // Malformed: INVALID_ARGUMENT.
    let mut host = grpc("/shop.Inventory/..%2FGetItem", "application/grpc");
    serve_and_log(&plugin, &mut host);
    let (status, message) = host.grpc_response.clone().unwrap();
    assert_eq!(status, 3);
    assert!(message.contains(r#""decision":"rejected""#), "{message}");

    // Not gRPC as Envoy judges it: an HTTP reply, denyStatus and JSON.
    for content_type in ["application/json", "application/grpc-web"] {
        let mut host = grpc("/shop.Inventory/GetItem", content_type);
        serve_and_log(&plugin, &mut host);
        assert_eq!((host.status(), host.grpc_response.clone()), (Some(404), None));
        assert_eq!(host.request_logs()[0]["grpc"], false);
    }
}

#[test]
fn identity_comes_from_the_peer_certificate_only() {
    // A header claiming an identity changes nothing; no SAN = anonymous.
    let mut host = FakeHost::new()
        .with_label("app", "reviews")
        .with_port(9080)
        .with_request("GET", "/reviews/1", "reviews")
        .with_header(
            "x-forwarded-client-cert",
            "URI=spiffe://cluster.local/ns/shop/sa/productpage",
        );
    let plugin = configured(&host, CONFIG);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    // Not a SPIFFE id: anonymous.
    let mut host = reviews_host()
        .with_request("GET", "/reviews/1", "reviews")
        .with_peer("https://cluster.local/ns/shop/sa/productpage");
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
}

#[test]
fn destination_port_comes_from_the_connection() {
    let mut host = FakeHost::new()
        .with_label("app", "reviews")
        .with_peer("spiffe://cluster.local/ns/shop/sa/productpage")
        .with_port(9081)
        .with_request("GET", "/reviews/1", "reviews:9080");
    let plugin = configured(&host, CONFIG);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
}

#[test]
fn rewritten_path_is_forwarded_and_malformed_is_rejected() {
    let mut host = reviews_host().with_request("GET", "/x/../reviews//1?q=1", "reviews");
    let plugin = configured(&host, CONFIG);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(
        host.set_headers,
        vec![(":path".to_string(), "/reviews/1?q=1".to_string())]
    );
    let mut host = reviews_host().with_request("GET", "/reviews/..%2Fadmin", "reviews");
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    assert_eq!(host.status(), Some(400));
    assert_eq!(host.state(STATE_VERDICT), Some("reject"));
}

/// A workload no policy selects: forwarded, counted, and no filter state
/// (readers of it see "no meshward policy").
#[test]
fn selectors_use_the_node_labels() {
    let mut host = FakeHost::new()
        .with_workload("shop", "ratings")
        .with_label("app", "ratings")
        .with_request("DELETE", "/anything", "ratings");
    let plugin = configured(&host, CONFIG);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(host.state, Vec::<(String, String)>::new());
    let labels = RequestLabels {
        namespace: "shop",
        workload: "ratings",
        mode: "enforce",
        verdict: "allow",
        policy: "-",
        rule: "-",
    };
    assert_eq!(host.counter(&labels.counter_name()), 1);
}

/// An enforcing allow rule admitted the canonical path and an audit deny
/// rule matched it too: the verdict is `audit_deny`, and the upstream gets
/// the path the enforcing rule judged, not the raw one.
#[test]
fn an_audit_deny_under_an_enforcing_allow_forwards_the_judged_path() {
    let json = r#"{"policies":[
        {"name":"shop/reviews","rules":[{"to":[{"paths":["/reviews/*"]}]}]},
        {"name":"shop/watch","action":"deny","mode":"audit","rules":[{"to":[{"paths":["/reviews/1"]}]}]}]}"#;
    let mut host = reviews_host().with_request("GET", "/reviews//1", "reviews");
    let plugin = configured(&host, json);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(host.state(STATE_VERDICT), Some("audit_deny"));
    assert_eq!(host.set_headers, vec![(":path".to_string(), "/reviews/1".to_string())]);
}

#[test]
fn audit_mode_forwards_untouched() {
    let json = CONFIG.replacen("\"rules\"", "\"mode\":\"audit\",\"rules\"", 1);
    let mut host = reviews_host().with_request("DELETE", "/x/../reviews/1", "reviews");
    let plugin = configured(&host, &json);
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert!(host.set_headers.is_empty());
    assert_eq!(host.state(STATE_VERDICT), Some("audit_deny"));
}

#[test]
fn bad_configuration_keeps_the_previous_one() {
    let host = reviews_host();
    let mut plugin = configured(&host, CONFIG);
    let err = plugin
        .configure(
            &host,
            br#"{"policies":[{"name":"x","rules":[{"to":[{"paths":["nope"]}]}]}]}"#.to_vec(),
        )
        .unwrap_err();
    assert!(
        err.to_string().starts_with("policies[0].rules[0].to[0].paths[0]"),
        "{err}"
    );
    let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    let mut host = reviews_host().with_request("GET", "/other", "reviews");
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
}

#[test]
fn unconfigured_fails_closed() {
    let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
    let mut plugin = Plugin::default();
    assert!(plugin.configure(&host, b"{".to_vec()).is_err());
    assert!(!plugin.is_configured());
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Pause);
    assert_eq!(host.status(), Some(500));
}

#[test]
fn counters_by_verdict_policy_and_rule() {
    let mut host = reviews_host();
    let plugin = configured(&host, CONFIG);
    assert_eq!(host.counter(METRIC_CONFIG_ACCEPTED), 1);
    assert!(
        host.counters
            .borrow()
            .contains(&(METRIC_CONFIG_REJECTED.to_string(), 0)),
        "defined at 0 before the first rejection"
    );
    for (method, path) in [
        ("GET", "/reviews/1"),
        ("GET", "/reviews/2"),
        ("DELETE", "/reviews/1"),
        ("GET", "/a%2Fb"),
    ] {
        host = host.with_request(method, path, "reviews");
        plugin.request().on_request_headers(&mut host);
    }
    assert_eq!(host.counter(&reviews_series("allow", "reads")), 2);
    assert_eq!(host.counter(&reviews_series("deny", "-")), 1);
    assert_eq!(host.counter(&reviews_series("reject", "-")), 1);
    // Written out once, as Istio's extraStatTags regexes read it.
    assert_eq!(
        reviews_series("deny", "-"),
        "meshward_namespace=.=shop;.;meshward_workload=.=reviews;.;meshward_mode=.=enforce;.;\
         meshward_verdict=.=deny;.;meshward_policy=.=shop/reviews;.;meshward_rule=.=-;.;meshward_requests_total"
    );
    let mut plugin = plugin;
    assert!(plugin.configure(&host, b"{}".to_vec()).is_err());
    assert_eq!(host.counter(METRIC_CONFIG_REJECTED), 1);

    // Audit mode is a label of its own.
    let audit = CONFIG.replacen("\"rules\"", "\"mode\":\"audit\",\"rules\"", 1);
    let mut host = reviews_host().with_request("DELETE", "/reviews/1", "reviews");
    let plugin = configured(&host, &audit);
    plugin.request().on_request_headers(&mut host);
    let labels = RequestLabels {
        mode: "audit",
        verdict: "audit_deny",
        ..labels("deny", "-")
    };
    assert_eq!(host.counter(&labels.counter_name()), 1);
}

/// The labels of a decision of `shop/reviews` for the workload of
/// [`reviews_host`] in enforce mode.
fn labels<'a>(verdict: &'a str, rule: &'a str) -> RequestLabels<'a> {
    RequestLabels {
        namespace: "shop",
        workload: "reviews",
        mode: "enforce",
        verdict,
        policy: "shop/reviews",
        rule,
    }
}

fn reviews_series(verdict: &str, rule: &str) -> String {
    labels(verdict, rule).counter_name()
}

/// Label values cannot end a tag early or forge another: node metadata is
/// the one source not validated like policy and rule names.
#[test]
fn tag_values_keep_the_name_parseable() {
    assert_eq!(tag_value("shop/reviews-v1.a:b_c"), "shop/reviews-v1.a:b_c");
    assert_eq!(tag_value(""), "-");
    assert_eq!(
        tag_value("x;.;meshward_verdict=.=allow"),
        "x_._meshward_verdict_._allow"
    );
    let mut host = FakeHost::new()
        .with_workload("shop", "evil;.;meshward_verdict=.=allow")
        .with_request("GET", "/nope", "svc");
    let plugin = configured(
        &host,
        r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["/a"]}]}]}]}"#,
    );
    plugin.request().on_request_headers(&mut host);
    let names: Vec<String> = host.counters.borrow().iter().map(|(n, _)| n.clone()).collect();
    let request = names.iter().find(|n| n.ends_with(METRIC_REQUESTS)).unwrap();
    assert_eq!(request.matches("meshward_verdict=.=").count(), 1, "{request}");
    assert_eq!(request.matches(";.;").count(), REQUEST_TAGS.len(), "{request}");
}

#[test]
fn request_series_are_bounded() {
    let rules: Vec<String> = (0..MAX_REQUEST_SERIES + 50)
        .map(|i| format!(r#"{{"name":"r{i}","to":[{{"paths":["/p{i}"]}}]}}"#))
        .collect();
    let json = format!(r#"{{"policies":[{{"name":"p","rules":[{}]}}]}}"#, rules.join(","));
    let mut host = FakeHost::new();
    let plugin = configured(&host, &json);
    for i in 0..MAX_REQUEST_SERIES + 50 {
        host = host.with_request("GET", &format!("/p{i}"), "svc");
        plugin.request().on_request_headers(&mut host);
    }
    let requests = host
        .counters
        .borrow()
        .iter()
        .filter(|(n, _)| n.ends_with(METRIC_REQUESTS))
        .count();
    assert_eq!(requests, MAX_REQUEST_SERIES + 1);
    let other = RequestLabels {
        namespace: "-",
        workload: "-",
        mode: "enforce",
        verdict: "allow",
        policy: "_other",
        rule: "_other",
    };
    assert_eq!(host.counter(&other.counter_name()), 50);
}

#[test]
fn log_line_for_denied_requests_by_default() {
    const START: u64 = 1_795_000_000_000_000_000;
    let mut host = reviews_host()
        .with_request("DELETE", "/reviews/./1?token=secret", "reviews:9080")
        .at(START);
    let plugin = configured(&host, CONFIG);
    let mut request = plugin.request();
    request.on_request_headers(&mut host);
    host = host.at(START + 1_500_000).with_response_code(403);
    request.on_log(&host);
    let logs = host.request_logs();
    assert_eq!(logs.len(), 1);
    let l = &logs[0];
    assert_eq!(l["verdict"], "deny");
    assert_eq!(l["mode"], "enforce");
    assert_eq!(l["status"], 403);
    assert_eq!(l["path"], "/reviews/1", "canonical, no query");
    assert_eq!(l["principal"], "cluster.local/ns/shop/sa/productpage");
    assert_eq!(l["requestId"], "req-1");
    assert_eq!(l["policy"], "shop/reviews");
    assert_eq!(l["durationMs"], 1.5);
    assert_eq!(l["port"], 9080, "read for the log line");
    assert_eq!(l["grpc"], false);
    assert_eq!(
        (l["workload"].as_str(), l["namespace"].as_str()),
        (Some("reviews"), Some("shop"))
    );
    // Written when the response is known; independently: python3 -c
    // "datetime.datetime.fromtimestamp(1795000000.0015, timezone.utc)".
    assert_eq!(l["time"], "2026-11-18T11:06:40.001Z");
    // Allowed requests are not logged by default.
    let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
    serve_and_log(&plugin, &mut host);
    assert!(host.request_logs().is_empty());
}

#[test]
fn log_all_with_query_and_capped_fields() {
    let json = CONFIG.replacen('{', r#"{"log":{"requests":"all","includeQuery":true},"#, 1);
    let long = format!("/reviews/{}", "a".repeat(1000));
    let mut host = reviews_host()
        .with_request("GET", &format!("{long}?q=1"), "reviews")
        .with_header("authorization", "Bearer secret-token")
        .with_header("cookie", "session=secret");
    let plugin = configured(&host, &json);
    serve_and_log(&plugin, &mut host);
    let logs = host.request_logs();
    assert_eq!(logs[0]["verdict"], "allow");
    assert_eq!(logs[0]["path"].as_str().unwrap().len(), MAX_LOG_FIELD);
    let all = host
        .logs
        .borrow()
        .iter()
        .map(|(_, l)| l.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all.contains("secret"), "credentials never logged: {all}");
    let json = CONFIG.replacen('{', r#"{"log":{"requests":"off"},"#, 1);
    let mut host = reviews_host().with_request("DELETE", "/x", "reviews");
    let plugin = configured(&host, &json);
    serve_and_log(&plugin, &mut host);
    assert!(host.request_logs().is_empty());
}

/// Rules on method and path only: the request path reads the header
/// map and no property; the log line of a denial still names the caller.
#[test]
fn only_what_the_configuration_reads_is_fetched() {
    const PATHS_ONLY: &str = r#"{"policies":[{"name":"shop/reviews","rules":[
        {"name":"reads","to":[{"methods":["GET"],"paths":["/reviews/*"]}]}]}]}"#;
    let mut host = reviews_host().with_request("GET", "/reviews/1", "reviews");
    let plugin = configured(&host, PATHS_ONLY);
    host.calls.borrow_mut().clear();
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(*host.calls.borrow(), ["get_map"]);

    let mut host = reviews_host().with_request("DELETE", "/reviews/1", "reviews");
    host.calls.borrow_mut().clear();
    let mut request = plugin.request();
    assert_eq!(request.on_request_headers(&mut host), Action::Pause);
    assert_eq!(
        *host.calls.borrow(),
        [
            "get_map",
            "property connection.uri_san_peer_certificate",
            "property destination.port"
        ],
        "the caller and the port are read for the log line only"
    );
    let (_, body) = host.response.clone().unwrap();
    assert!(body.contains("req-1"), "{body}");
    host = host.with_response_code(403);
    request.on_log(&host);
    let logs = host.request_logs();
    assert_eq!(
        logs[0]["principal"], "cluster.local/ns/shop/sa/productpage",
        "logged caller"
    );
    assert_eq!(logs[0]["requestId"], "req-1");
}

/// With identity, ports and header conditions in the rules, everything
/// is read, and repeated headers are still judged line by line.
#[test]
fn identity_ports_and_headers_are_read_when_rules_use_them() {
    const ALL: &str = r#"{"policies":[{"name":"p","rules":[{"name":"r",
        "from":[{"namespaces":["shop"]}],"to":[{"ports":[9080]}],
        "when":[{"header":"x-v","notValues":["bad"]}]}]}]}"#;
    let mut host = reviews_host()
        .with_request("GET", "/", "reviews")
        .with_header("x-v", "good")
        .with_header("x-v", "bad");
    let plugin = configured(&host, ALL);
    host.calls.borrow_mut().clear();
    assert_eq!(
        plugin.request().on_request_headers(&mut host),
        Action::Pause,
        "the second line is judged"
    );
    let calls = host.calls.borrow().clone();
    for want in [
        "get_map",
        "property connection.uri_san_peer_certificate",
        "property destination.port",
    ] {
        assert!(calls.contains(&want.to_string()), "{want} in {calls:?}");
    }
}

/// JWT rules read the stream's metadata where `jwt_authn` left the
/// verified payload, once per request and only when the configuration has
/// JWT fields; metadata that does not decode rejects the request.
#[test]
fn jwt_claims_are_read_from_the_metadata_jwt_authn_leaves() {
    const JWT: &str = r#"{"policies":[{"name":"p","rules":[{"name":"r",
        "from":[{"requestPrincipals":["https://issuer.example/alice"]}],
        "when":[{"key":"request.auth.claims[org][team]","values":["payments"]}]}]}]}"#;
    let request = || reviews_host().with_request("GET", "/", "reviews");
    let plugin = configured(&request(), JWT);
    let alice = serde_json::json!({"iss": "https://issuer.example", "sub": "alice", "org": {"team": "payments"}});

    let mut host = request().with_jwt(alice.clone());
    host.calls.borrow_mut().clear();
    assert_eq!(plugin.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(
        *host.calls.borrow(),
        ["get_map", "property metadata"],
        "no peer, no port"
    );
    assert_eq!(host.state(STATE_RULE), Some("r"));

    let mut other_team =
        request().with_jwt(serde_json::json!({"iss": "https://issuer.example", "sub": "alice", "org": {"team": "hr"}}));
    assert_eq!(plugin.request().on_request_headers(&mut other_team), Action::Pause);
    assert_eq!(other_team.status(), Some(403));

    // No token: jwt_authn leaves no metadata.
    let mut anonymous = request();
    assert_eq!(plugin.request().on_request_headers(&mut anonymous), Action::Pause);
    assert_eq!(anonymous.status(), Some(403));

    // Metadata that does not decode is not read as "no token".
    let mut broken = request().with_property(&["metadata"], &[0x0a, 0x05, 0x0a]);
    assert_eq!(plugin.request().on_request_headers(&mut broken), Action::Pause);
    assert_eq!(broken.status(), Some(400));

    // A header condition alone does not read the metadata.
    let headers_only = configured(
        &request(),
        r#"{"policies":[{"name":"p","rules":[{"when":[{"key":"request.headers[x-a]","values":["1"]}]}]}]}"#,
    );
    let mut host = request().with_header("x-a", "1").with_jwt(alice);
    host.calls.borrow_mut().clear();
    assert_eq!(headers_only.request().on_request_headers(&mut host), Action::Continue);
    assert_eq!(*host.calls.borrow(), ["get_map"]);
}

/// gRPC is told by the `content-type` as Envoy tells it (and as `grpc`
/// entries are judged): `application/grpc` or `application/grpc+...`,
/// case-sensitive, gRPC-Web not included; a request without the port
/// property logs `null`.
#[test]
fn log_line_says_grpc_and_the_port() {
    let json = CONFIG.replacen('{', r#"{"log":{"requests":"all"},"#, 1);
    let host = reviews_host();
    let plugin = configured(&host, &json);
    for (content_type, grpc) in [
        ("application/grpc", true),
        ("application/grpc+proto", true),
        ("Application/GRPC+proto", false),
        ("application/grpc-web+proto", false),
        ("application/json", false),
        ("application/grp", false),
    ] {
        let mut host = reviews_host()
            .with_request("POST", "/shop.Reviews/Get", "reviews")
            .with_header("content-type", content_type);
        serve_and_log(&plugin, &mut host);
        assert_eq!(host.request_logs()[0]["grpc"], grpc, "{content_type}");
    }
    let mut host = FakeHost::new()
        .with_workload("shop", "reviews")
        .with_label("app", "reviews")
        .with_request("GET", "/reviews/1", "reviews");
    serve_and_log(&plugin, &mut host);
    let l = &host.request_logs()[0];
    assert!(l["port"].is_null() && l["principal"].is_null(), "{l}");
}

#[test]
fn rfc3339_dates() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
    assert_eq!(rfc3339(4_102_444_799_000_000_000), "2099-12-31T23:59:59.000Z");
}

/// A deny rule that refuses a request is named like an admitting rule: in
/// the filter state, the counter's labels and the log line.
#[test]
fn a_deny_rule_is_named_in_filter_state_counters_and_log() {
    let deny =
        r#"{"name":"shop/no-admin","action":"deny","rules":[{"name":"admin","to":[{"paths":["/reviews/admin"]}]}]}"#;
    let json = format!("{},{deny}]}}", CONFIG.strip_suffix("]}").unwrap());
    let mut host = reviews_host().with_request("GET", "/reviews/admin", "reviews:9080");
    let plugin = configured(&host, &json);
    serve_and_log(&plugin, &mut host);
    assert_eq!(host.status(), Some(403));
    assert_eq!(host.state(STATE_VERDICT), Some("deny"));
    assert_eq!(host.state(STATE_POLICY), Some("shop/no-admin"));
    assert_eq!(host.state(STATE_RULE), Some("admin"));
    let series = labels("deny", "admin")
        .counter_name()
        .replace("shop/reviews", "shop/no-admin");
    assert_eq!(host.counter(&series), 1, "{:?}", host.counters.borrow());
    let logged = host.logs_containing(r#""policy":"shop/no-admin""#);
    assert_eq!(logged.len(), 1, "{:?}", host.logs.borrow());
    assert!(logged.iter().all(|l| l.contains(r#""rule":"admin""#)), "{logged:?}");
}

/// `ipBlocks` read `source.address`, and only when Envoy left the
/// connection's peer there (a nonzero port): an address it derived from
/// `x-forwarded-for` has port 0 and is not the direct peer.
#[test]
fn ip_blocks_read_the_direct_peer_from_source_address() {
    const PEER: &str =
        r#"{"policies":[{"name":"p","rules":[{"from":[{"ipBlocks":["10.0.0.0/8","2001:db8::/32"]}]}]}]}"#;
    let case = |address: &str| {
        let mut host = FakeHost::new()
            .with_request("GET", "/", "svc")
            .with_property(&["source", "address"], address.as_bytes());
        let plugin = configured(&host, PEER);
        host.calls.borrow_mut().clear();
        let action = plugin.request().on_request_headers(&mut host);
        let calls = host.calls.borrow().clone();
        // A denial's log line reads the caller and the port after.
        assert_eq!(calls[..2], ["get_map", "property source.address"], "{address}");
        action
    };
    assert_eq!(case("10.1.2.3:40000"), Action::Continue);
    assert_eq!(case("[2001:db8::7]:40000"), Action::Continue);
    assert_eq!(case("[::ffff:10.1.2.3]:40000"), Action::Continue, "IPv4-mapped");
    assert_eq!(case("192.0.2.1:40000"), Action::Pause);
    // Derived from x-forwarded-for: the direct peer is unknown.
    assert_eq!(case("10.1.2.3:0"), Action::Pause);
    assert_eq!(case("not an address"), Action::Pause);
}

/// `remoteIpBlocks` take `source.address` whatever its port: the client as
/// Envoy derived it.
#[test]
fn remote_ip_blocks_read_the_derived_client() {
    const REMOTE: &str = r#"{"policies":[{"name":"p","rules":[{"from":[{"remoteIpBlocks":["203.0.113.0/24"]}]}]}]}"#;
    for (address, want) in [
        ("203.0.113.9:0", Action::Continue),
        ("203.0.113.9:5555", Action::Continue),
        ("10.0.0.1:5555", Action::Pause),
    ] {
        let mut host = FakeHost::new()
            .with_request("GET", "/", "svc")
            .with_property(&["source", "address"], address.as_bytes());
        let plugin = configured(&host, REMOTE);
        assert_eq!(plugin.request().on_request_headers(&mut host), want, "{address}");
    }
}

/// `destination.ip` reads `destination.address`, `connection.sni`
/// `connection.requested_server_name`, each only when a condition uses it.
#[test]
fn destination_address_and_sni_are_read_when_conditions_use_them() {
    const KEYS: &str = r#"{"policies":[{"name":"p","rules":[{"when":[
        {"key":"destination.ip","values":["10.0.0.2"]},{"key":"connection.sni","values":["*.example.com"]}]}]}]}"#;
    let host = || {
        FakeHost::new()
            .with_request("GET", "/", "svc")
            .with_property(&["destination", "address"], b"10.0.0.2:8443")
    };
    let mut with_sni = host().with_property(&["connection", "requested_server_name"], b"api.example.com");
    let plugin = configured(&with_sni, KEYS);
    with_sni.calls.borrow_mut().clear();
    assert_eq!(plugin.request().on_request_headers(&mut with_sni), Action::Continue);
    let calls = with_sni.calls.borrow().clone();
    for want in [
        "property destination.address",
        "property connection.requested_server_name",
    ] {
        assert!(calls.contains(&want.to_string()), "{want} in {calls:?}");
    }
    assert!(!calls.iter().any(|c| c == "property source.address"), "{calls:?}");
    let mut plaintext = host();
    assert_eq!(plugin.request().on_request_headers(&mut plaintext), Action::Pause);
}
