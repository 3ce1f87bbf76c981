//! Configuration errors: every invalid value is refused, and the message
//! starts with the path of the field that holds it.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use meshward_filter::{ConfigError, Engine};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn error(json: &str) -> String {
    match Engine::from_json(json.as_bytes()) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

fn rule_error(rule: &str) -> String {
    error(&format!(
        r#"{{"policies":[{{"name":"ok","rules":[{{}}]}},{{"name":"p","rules":[{{}},{rule}]}}]}}"#
    ))
}

#[track_caller]
fn assert_starts(msg: String, field: &str) {
    assert!(
        msg.starts_with(&format!("{field}: ")),
        "expected {field:?} first in: {msg}"
    );
}

#[test]
fn invalid_paths_name_their_index() {
    let e = rule_error(r#"{"to":[{"paths":["/ok","/also/*","/a/../b","/d"]}]}"#);
    assert_starts(e.clone(), "policies[1].rules[1].to[0].paths[2]");
    assert!(e.contains("\"/b\""), "names the canonical form: {e}");
    for bad in [
        "relative",
        "/a//b",
        "/%2F",
        "/a;b",
        "/x/*/y",
        "/{**}/x/{*}",
        "/a/{*}.txt",
        "/{name}",
        "regex:(",
        "regex:a{99999}",
    ] {
        let e = rule_error(&format!(r#"{{"to":[{{"notPaths":["/fine","{bad}"]}}]}}"#));
        assert_starts(e, "policies[1].rules[1].to[0].notPaths[1]");
    }
}

#[test]
fn invalid_identities_hosts_and_headers() {
    assert_starts(
        rule_error(r#"{"from":[{"principals":["a*b"]}]}"#),
        "policies[1].rules[1].from[0].principals[0]",
    );
    assert_starts(
        rule_error(r#"{"from":[{"notNamespaces":[""]}]}"#),
        "policies[1].rules[1].from[0].notNamespaces[0]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"hosts":["a b"]}]}"#),
        "policies[1].rules[1].to[0].hosts[0]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"notHosts":["x:0"]}]}"#),
        "policies[1].rules[1].to[0].notHosts[0]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"methods":["GET","get"]}]}"#),
        "policies[1].rules[1].to[0].methods[1]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"ports":[0]}]}"#),
        "policies[1].rules[1].to[0].ports[0]",
    );
    assert_starts(
        rule_error(r#"{"when":[{"header":":path","values":["/"]}]}"#),
        "policies[1].rules[1].when[0].header",
    );
    assert_starts(
        rule_error(r#"{"when":[{"header":"x","values":["a,b"]}]}"#),
        "policies[1].rules[1].when[0].values[0]",
    );
}

#[test]
fn entries_that_would_match_everything_by_accident() {
    assert_starts(rule_error(r#"{"from":[{}]}"#), "policies[1].rules[1].from[0]");
    assert_starts(
        rule_error(r#"{"from":[{"notPrincipals":[]}]}"#),
        "policies[1].rules[1].from[0]",
    );
    assert_starts(rule_error(r#"{"to":[{"notPaths":[]}]}"#), "policies[1].rules[1].to[0]");
    assert_starts(
        rule_error(r#"{"when":[{"header":"x"}]}"#),
        "policies[1].rules[1].when[0]",
    );
}

#[test]
fn names() {
    assert_starts(
        error(r#"{"policies":[{"name":"a","rules":[]},{"name":"a","rules":[]}]}"#),
        "policies[1].name",
    );
    assert_starts(error(r#"{"policies":[{"name":"","rules":[]}]}"#), "policies[0].name");
    assert_starts(error(r#"{"policies":[{"name":"a b","rules":[]}]}"#), "policies[0].name");
    assert_starts(rule_error(r#"{"name":"rule-0"}"#), "policies[1].rules[1].name");
    assert_starts(rule_error(r#"{"name":"x;y"}"#), "policies[1].rules[1].name");
}

/// Unnamed rules are `rule-<index>`; a written name may not take one of
/// those, and the error names the later of the two rules.
#[test]
fn written_names_against_generated_ones() {
    let policy = |rules: &str| format!(r#"{{"policies":[{{"name":"p","rules":[{rules}]}}]}}"#);
    // Rule 0 is called "rule-1", and rule 1, unnamed, is generated as "rule-1".
    let e = error(&policy(r#"{"name":"rule-1"},{}"#));
    assert_starts(e.clone(), "policies[0].rules[1].name");
    assert!(e.contains(r#""rule-1""#), "{e}");
    // Two written names, the first repeat wins over a later generated clash.
    assert_starts(
        error(&policy(r#"{"name":"a"},{"name":"a"},{},{"name":"rule-2"}"#)),
        "policies[0].rules[1].name",
    );
    // Not generated forms, or no unnamed rule at that index: accepted.
    for rules in [
        r#"{},{"name":"rule-01"}"#,
        r#"{},{"name":"rule-5"}"#,
        r#"{"name":"rule-1"},{"name":"b"}"#,
        r#"{"name":"rule-"},{}"#,
    ] {
        let json = policy(rules);
        assert!(Engine::from_json(json.as_bytes()).is_ok(), "{json}");
    }
}

#[test]
fn schema_errors() {
    // The unknown field itself is named.
    assert_starts(
        rule_error(r#"{"to":[{"path":["/"]}]}"#),
        "policies[1].rules[1].to[0].path",
    );
    assert_starts(
        rule_error(r#"{"to":[{"ports":[70000]}]}"#),
        "policies[1].rules[1].to[0].ports[0]",
    );
    assert_starts(rule_error(r#"{"from":"all"}"#), "policies[1].rules[1].from");
    assert_starts(error(r#"{"mode":"dry-run","policies":[]}"#), "mode");
    // The action is lower-case `allow` or `deny`; Istio's spelling is refused.
    let action = |a: &str| {
        error(&format!(
            r#"{{"policies":[{{"name":"p","rules":[]}},{{"name":"q","action":"{a}","rules":[]}}]}}"#
        ))
    };
    assert_starts(action("DENY"), "policies[1].action");
    assert_starts(action("audit"), "policies[1].action");
    // A deny policy's fields are validated as an allow policy's.
    let e = error(r#"{"policies":[{"name":"d","action":"deny","rules":[{"from":[{"notPrincipals":["a*b"]}]}]}]}"#);
    assert_starts(e, "policies[0].rules[0].from[0].notPrincipals[0]");
    assert!(error(r#"{"denyStatus":200,"policies":[]}"#).starts_with("denyStatus: 200"));
    assert!(error(r#"{"denyStatus":600,"policies":[]}"#).starts_with("denyStatus: 600"));
}

#[test]
fn error_variants_are_typed() {
    let e = Engine::from_json(br#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["x"]}]}]}]}"#).unwrap_err();
    assert!(
        matches!(e, ConfigError::InvalidPattern { ref field, .. } if field == "policies[0].rules[0].to[0].paths[0]")
    );
}

#[test]
fn the_field_path_and_the_detail_are_available_apart() {
    let samples = [
        (
            r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["relative"]}]}]}]}"#,
            "policies[0].rules[0].to[0].paths[0]",
        ),
        (
            r#"{"policies":[{"name":"p","rules":[{"to":[{"methods":["get"]}]}]}]}"#,
            "policies[0].rules[0].to[0].methods[0]",
        ),
        (r#"{"denyStatus":200,"policies":[]}"#, "denyStatus"),
        (
            r#"{"policies":[{"name":"p","rules":[{"frm":[]}]}]}"#,
            "policies[0].rules[0].frm",
        ),
    ];
    for (json, field) in samples {
        let e: ConfigError = Engine::from_json(json.as_bytes()).err().unwrap();
        assert_eq!(e.field(), field, "{e}");
        assert_eq!(format!("{}: {}", e.field(), e.detail()), e.to_string());
        assert!(!e.detail().starts_with(field), "{}", e.detail());
    }
}

#[test]
fn invalid_grpc_entries_name_their_field() {
    let grpc = |g: &str| rule_error(&format!(r#"{{"to":[{{"grpc":{g}}}]}}"#));
    let at = "policies[1].rules[1].to[0]";
    for bad in [
        "",
        ".shop.Inventory",
        "shop..Inventory",
        "shop.Inventory.",
        "1shop.Inventory",
        "shop/Inventory",
        "shop.Invent-ory",
        "*",
    ] {
        let e = grpc(&format!(r#"{{"service":"{bad}","methods":["Get"]}}"#));
        assert_starts(e.clone(), &format!("{at}.grpc.service"));
        assert!(e.contains("protobuf service name"), "{e}");
    }
    for bad in ["", "Get/Item", "1Get", "Get.Item", "Ge t", "*Get"] {
        let e = grpc(&format!(r#"{{"service":"shop.Inventory","methods":["Get","{bad}"]}}"#));
        assert_starts(e.clone(), &format!("{at}.grpc.methods[1]"));
        assert!(e.contains("protobuf method name"), "{e}");
    }
    let e = grpc(r#"{"service":"shop.Inventory","methods":["Get","*"]}"#);
    assert_starts(e.clone(), &format!("{at}.grpc.methods[1]"));
    assert!(e.contains("must be the only entry"), "{e}");
    let e = grpc(r#"{"service":"shop.Inventory","methods":[]}"#);
    assert_starts(e.clone(), &format!("{at}.grpc.methods"));
    assert!(e.contains("at least one method"), "{e}");
    for other in [r#""methods":["POST"]"#, r#""paths":["/x"]"#, r#""notPaths":[]"#] {
        let e = rule_error(&format!(
            r#"{{"to":[{{"grpc":{{"service":"a.S","methods":["M"]}},{other}}}]}}"#
        ));
        assert_starts(e.clone(), at);
        assert!(e.contains("cannot also set methods, paths or notPaths"), "{e}");
    }
    // Shape errors come from the parser, with the field path.
    let e = grpc(r#"{"service":"a.S"}"#);
    assert!(e.contains("missing field `methods`"), "{e}");
    let e = grpc(r#"{"service":"a.S","methods":["M"],"api":{}}"#);
    assert!(
        e.starts_with(&format!("{at}.grpc")) && e.contains("unknown field `api`"),
        "{e}"
    );
}

#[test]
fn invalid_address_blocks_name_their_index() {
    for (field, bad) in [
        ("ipBlocks", "10.0.0.256"),
        ("notIpBlocks", "10.0.0.0/33"),
        ("remoteIpBlocks", "fe80::1%eth0"),
        ("notRemoteIpBlocks", "example.com"),
        ("ipBlocks", "::/129"),
        ("ipBlocks", ""),
    ] {
        let e = rule_error(&format!(r#"{{"from":[{{"{field}":["10.0.0.0/8","{bad}"]}}]}}"#));
        assert_starts(e, &format!("policies[1].rules[1].from[0].{field}[1]"));
    }
}

/// Istio accepts `10.0.0.1/8` and matches `10.0.0.0/8`; meshward asks for
/// what it means to be written.
#[test]
fn a_cidr_with_host_bits_is_refused_with_its_network() {
    let e = rule_error(r#"{"from":[{"ipBlocks":["10.0.0.1/8"]}]}"#);
    assert_starts(e.clone(), "policies[1].rules[1].from[0].ipBlocks[0]");
    assert!(e.contains("\"10.0.0.0/8\""), "{e}");
    let e = rule_error(r#"{"when":[{"key":"source.ip","values":["2001:db8::1/32"]}]}"#);
    assert_starts(e.clone(), "policies[1].rules[1].when[0].values[0]");
    assert!(e.contains("\"2001:db8::/32\""), "{e}");
}

#[test]
fn invalid_not_methods_and_not_ports() {
    assert_starts(
        rule_error(r#"{"to":[{"notMethods":["GET","get"]}]}"#),
        "policies[1].rules[1].to[0].notMethods[1]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"notPorts":[80,0]}]}"#),
        "policies[1].rules[1].to[0].notPorts[1]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"notPorts":[70000]}]}"#),
        "policies[1].rules[1].to[0].notPorts[0]",
    );
    assert_starts(
        rule_error(r#"{"to":[{"notMethods":[]}]}"#),
        "policies[1].rules[1].to[0]",
    );
}

#[test]
fn an_unknown_condition_key_lists_the_supported_keys() {
    for key in [
        "request.auth.issuer",
        "source.ips",
        "destination.labels[app]",
        "request.headers[]x",
        "",
    ] {
        let e = rule_error(&format!(r#"{{"when":[{{"key":"{key}","values":["a"]}}]}}"#));
        assert_starts(e.clone(), "policies[1].rules[1].when[0].key");
        assert!(e.contains("source.ip, remote.ip"), "lists the keys: {e}");
    }
}

#[test]
fn condition_values_of_the_keys_kind() {
    assert_starts(
        rule_error(r#"{"when":[{"key":"remote.ip","values":["10.0.0.1","nope"]}]}"#),
        "policies[1].rules[1].when[0].values[1]",
    );
    for bad in ["0", "65536", "http", "+80", ""] {
        assert_starts(
            rule_error(&format!(
                r#"{{"when":[{{"key":"destination.port","notValues":["{bad}"]}}]}}"#
            )),
            "policies[1].rules[1].when[0].notValues[0]",
        );
    }
    assert_starts(
        rule_error(r#"{"when":[{"key":"source.principal","values":["a*b"]}]}"#),
        "policies[1].rules[1].when[0].values[0]",
    );
    assert_starts(
        rule_error(r#"{"when":[{"key":"request.headers[:path]","values":["/"]}]}"#),
        "policies[1].rules[1].when[0].key",
    );
}

#[test]
fn a_condition_sets_exactly_one_of_header_and_key() {
    assert_starts(
        rule_error(r#"{"when":[{"header":"x","key":"source.ip","values":["10.0.0.1"]}]}"#),
        "policies[1].rules[1].when[0]",
    );
    assert_starts(
        rule_error(r#"{"when":[{"values":["a"]}]}"#),
        "policies[1].rules[1].when[0]",
    );
}

#[test]
fn invalid_request_principals_and_condition_keys() {
    assert_starts(
        rule_error(r#"{"from":[{"requestPrincipals":["iss/ok","a*b/c"]}]}"#),
        "policies[1].rules[1].from[0].requestPrincipals[1]",
    );
    assert_starts(
        rule_error(r#"{"from":[{"notRequestPrincipals":[""]}]}"#),
        "policies[1].rules[1].from[0].notRequestPrincipals[0]",
    );
    // An entry whose only field is an empty negative list sets nothing.
    assert_starts(
        rule_error(r#"{"from":[{"notRequestPrincipals":[]}]}"#),
        "policies[1].rules[1].from[0]",
    );
    let unknown = rule_error(r#"{"when":[{"key":"request.auth.claim[x]","values":["a"]}]}"#);
    assert_starts(unknown.clone(), "policies[1].rules[1].when[0].key");
    assert!(
        unknown.contains("request.auth.claims[<name>]"),
        "lists the supported keys: {unknown}"
    );
    for bad in [
        "request.auth.claims",
        "request.auth.claims[]",
        "request.auth.claims[a",
        "request.auth.claims[a]b",
        "request.auth.claims[a][]",
        "request.auth.claims[a[b]]",
        "request.auth.claims[a]]",
        "request.auth.claims[1][2][3][4][5][6][7][8][9][10][11][12][13][14][15][16][17]",
    ] {
        let e = rule_error(&format!(r#"{{"when":[{{"key":"{bad}","values":["a"]}}]}}"#));
        assert_starts(e.clone(), "policies[1].rules[1].when[0].key");
        assert!(e.contains("in brackets"), "{bad}: {e}");
    }
    assert_starts(
        rule_error(r#"{"when":[{"key":"request.headers[:path]","values":["a"]}]}"#),
        "policies[1].rules[1].when[0].key",
    );
    // Exactly one of header and key.
    for both in [
        r#"{"header":"h","key":"request.auth.principal","values":["a"]}"#,
        r#"{"values":["a"]}"#,
    ] {
        assert_starts(
            rule_error(&format!(r#"{{"when":[{both}]}}"#)),
            "policies[1].rules[1].when[0]",
        );
    }
    // Values of a principal key are request principal patterns; claim
    // values may hold commas (they are not split like header values).
    assert_starts(
        rule_error(r#"{"when":[{"key":"request.auth.principal","values":["a*b"]}]}"#),
        "policies[1].rules[1].when[0].values[0]",
    );
    assert!(Engine::from_json(
        br#"{"policies":[{"name":"p","rules":[{"when":[{"key":"request.auth.claims[a]","values":["x,y"]}]}]}]}"#
    )
    .is_ok());
    let typed =
        Engine::from_json(br#"{"policies":[{"name":"p","rules":[{"when":[{"key":"source.nope","values":["x"]}]}]}]}"#);
    assert!(
        matches!(typed, Err(ConfigError::UnknownConditionKey { .. })),
        "{typed:?}"
    );
}
