//! Configuration lifecycle through file-based ECDS, the way istiod delivers
//! a WasmPlugin: a bad update leaves the previous policy in force, a good
//! one takes effect, and a bad initial configuration fails closed.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use meshward_e2e::{call, Caller, EnvoyOptions, Scenario};

fn allow_only(path: &str) -> String {
    format!(r#"{{"policies":[{{"name":"p","rules":[{{"to":[{{"paths":["{path}"]}}]}}]}}]}}"#)
}

const BAD: &str = r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["relative/path"]}]}]}]}"#;

fn status(s: &Scenario, path: &str) -> u16 {
    s.envoy.send(&Caller::Anonymous, &call("GET", path)).status
}

#[test]
fn bad_update_keeps_the_last_good_policy_and_a_good_one_applies() {
    let s = Scenario::start(EnvoyOptions::new(allow_only("/one")).ecds());
    assert_eq!((status(&s, "/one"), status(&s, "/two")), (200, 403));

    s.envoy.update_config(BAD);
    let rejected = s
        .envoy
        .eventually(|e| e.log().contains("Filesystem config update rejected").then_some(()));
    assert!(rejected.is_some(), "update not rejected:\n{}", s.envoy.log());
    assert!(
        s.envoy
            .log()
            .contains(r#"policies[0].rules[0].to[0].paths[0]: "relative/path""#),
        "exact error logged"
    );
    assert_eq!(
        (status(&s, "/one"), status(&s, "/two")),
        (200, 403),
        "previous policy still in force"
    );

    s.envoy.update_config(&allow_only("/two"));
    let applied = s.envoy.eventually(|_| (status(&s, "/two") == 200).then_some(()));
    assert!(applied.is_some(), "good update not applied:\n{}", e_log(&s));
    assert_eq!(status(&s, "/one"), 403);
}

#[test]
fn bad_initial_configuration_fails_closed_until_a_good_one_arrives() {
    let s = Scenario::start(EnvoyOptions::new(BAD).ecds());
    assert_eq!(status(&s, "/one"), 500);
    s.envoy.update_config(&allow_only("/one"));
    let applied = s.envoy.eventually(|_| (status(&s, "/one") == 200).then_some(()));
    assert!(applied.is_some(), "good config not applied:\n{}", e_log(&s));
    assert_eq!(status(&s, "/two"), 403);
}

#[test]
fn ten_thousand_rules() {
    let mut rules = Vec::new();
    for i in 0..10_000 {
        let path = match i % 4 {
            0 => format!("/svc{i}/items"),
            1 => format!("/svc{i}/static/*"),
            2 => format!("/svc{i}/users/{{*}}/orders/{{**}}"),
            _ => format!("regex:/svc{i}/v[0-9]+/report"),
        };
        rules.push(format!(
            r#"{{"name":"r{i}","to":[{{"methods":["GET"],"paths":["{path}"]}}]}}"#
        ));
    }
    let config = format!(
        r#"{{"policies":[{{"name":"generated","rules":[{}]}}]}}"#,
        rules.join(",")
    );
    let s = Scenario::start(EnvoyOptions::new(config).ecds());
    for (path, want) in [
        ("/svc9999/v2/report", 200),
        ("/svc9998/users/1/orders/2", 200),
        ("/svc9997/static/app.js", 200),
        ("/svc9996/items", 200),
        ("/svc9996/items/x", 403),
        ("/svc10000/items", 403),
    ] {
        assert_eq!(status(&s, path), want, "{path}");
    }
}

fn e_log(s: &Scenario) -> String {
    s.envoy.log()
}
