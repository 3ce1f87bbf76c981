//! Istio `AuthorizationPolicy` objects translated into Envoy's RBAC filters
//! the way istiod translates them for a sidecar (Istio's
//! `pilot/pkg/security/authz/builder` and `model`), so that a test can run
//! the policies in a real Envoy exactly as Istio would enforce them:
//!
//! * the policies that apply to the workload: those of its namespace and of
//!   the root namespace whose `selector.matchLabels` its labels satisfy
//!   (`targetRef(s)` are for gateways and waypoints: not applied);
//! * a DENY filter, then an ALLOW filter (Istio's order; a filter with no
//!   policy is left out, so a workload without ALLOW policies admits
//!   everything the DENY filter lets through); dry-run policies go to the
//!   filter's `shadow_rules` and never decide;
//! * one RBAC policy per rule, named `ns[<ns>]-policy[<name>]-rule[<i>]`; an
//!   ALLOW policy without rules becomes one policy that never matches;
//! * a rule is `permissions` (one per `to` entry, the AND of its fields, any
//!   when absent) and `principals` (one per `from` entry), each field the OR
//!   of its values, its negation `not_rule`/`not_id` of the OR; `when`
//!   conditions are ANDed into every permission or principal, by key;
//! * principals as `authenticated.principal_name` with the `spiffe://`
//!   prefix, namespaces as the regular expression `.*/ns/<ns>/.*`, methods
//!   as the `:method` header, paths as `url_path` or, for templates, Envoy's
//!   `uri_template` matcher, hosts as `:authority` ignoring case, ports as
//!   `destination_port`; Istio's string forms (exact, `prefix*`, `*suffix`,
//!   `*`) as Istio writes them for each;
//! * `ipBlocks` and `source.ip` as `direct_remote_ip`, `remoteIpBlocks` and
//!   `remote.ip` as `remote_ip`, `destination.ip` as `destination_ip` (each a
//!   `CidrRange` of the address as written: Envoy masks host bits),
//!   `connection.sni` as `requested_server_name`;
//! * the JWT fields as `metadata` matchers on the payload `jwt_authn` leaves
//!   under `envoy.filters.http.jwt_authn` / `payload`: a request principal
//!   split at its last `/` into matchers on `iss` and `sub` (Istio's
//!   `requestPrincipalGenerator`), `request.auth.audiences`, `presenter` and
//!   `claims[a][b]` as one matcher on the claim's path whose value is the
//!   OR of the values, as a string or as an element of a list.
//!
//! Each field is one arm of [`principal`] or [`permission`]: a field not
//! translated yet panics, naming it, rather than being skipped.
//!
//! Read from istio/istio at commit 86c9f01 (August 2026). Istio's host
//! matcher compares the whole `:authority` (`reviews` does not match
//! `reviews:9080`) and adds no port variants; neither does this.

use serde_json::{json, Map, Value};

/// The HTTP filters (JSON objects, comma-separated, for
/// [`EnvoyOptions::http_filters`](crate::EnvoyOptions::http_filters)) that
/// enforce `policies` on a workload with `labels` in `namespace`.
pub fn http_filters(policies: &[Value], namespace: &str, labels: &[(&str, &str)], root_namespace: &str) -> String {
    let applicable: Vec<&Value> = policies
        .iter()
        .filter(|p| applies(p, namespace, labels, root_namespace))
        .collect();
    let mut filters = Vec::new();
    for action in ["DENY", "ALLOW"] {
        let (mut rules, mut shadow) = (Map::new(), Map::new());
        for p in applicable
            .iter()
            .filter(|p| text(&p["spec"]["action"], "ALLOW") == action)
        {
            let target = if dry_run(p) { &mut shadow } else { &mut rules };
            for (name, policy) in rbac_policies(p) {
                target.insert(name, policy);
            }
        }
        if rules.is_empty() && shadow.is_empty() {
            continue;
        }
        let mut config = json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"});
        if !rules.is_empty() {
            config["rules"] = json!({"action": action, "policies": rules});
        }
        if !shadow.is_empty() {
            config["shadow_rules"] = json!({"action": action, "policies": shadow});
            config["shadow_rules_stat_prefix"] = json!(format!("istio_dry_run_{}_", action.to_lowercase()));
        }
        filters.push(json!({"name": "envoy.filters.http.rbac", "typed_config": config}).to_string());
    }
    filters.join(", ")
}

fn text<'a>(v: &'a Value, default: &'a str) -> &'a str {
    v.as_str().unwrap_or(default)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Whether `p` applies to the workload (istiod's selection for sidecars).
fn applies(p: &Value, namespace: &str, labels: &[(&str, &str)], root_namespace: &str) -> bool {
    let ns = text(&p["metadata"]["namespace"], "default");
    if ns != namespace && ns != root_namespace {
        return false;
    }
    if !p["spec"]["targetRef"].is_null() || !p["spec"]["targetRefs"].is_null() {
        return false;
    }
    let selector = p["spec"]["selector"]["matchLabels"].as_object();
    selector
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && Some(*lv) == v.as_str()))
}

/// `istio.io/dry-run`, read as Go's `strconv.ParseBool` (invalid = false).
fn dry_run(p: &Value) -> bool {
    matches!(
        p["metadata"]["annotations"]["istio.io/dry-run"].as_str(),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

/// The RBAC policies of one AuthorizationPolicy, by name.
fn rbac_policies(p: &Value) -> Vec<(String, Value)> {
    let ns = text(&p["metadata"]["namespace"], "default");
    let name = text(&p["metadata"]["name"], "");
    let policy_name = |i: usize| format!("ns[{ns}]-policy[{name}]-rule[{i}]");
    let rules = p["spec"]["rules"].as_array().cloned().unwrap_or_default();
    if rules.is_empty() {
        // ALLOW without rules: an explicit policy that never matches (a DENY
        // without rules generates nothing; Istio refuses it anyway).
        if text(&p["spec"]["action"], "ALLOW") == "ALLOW" {
            return vec![(
                policy_name(0),
                json!({"permissions": [{"not_rule": {"any": true}}], "principals": [{"not_id": {"any": true}}]}),
            )];
        }
        return Vec::new();
    }
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| (policy_name(i), rule(r)))
        .collect()
}

/// One rule: permissions × principals, with the `when` conditions ANDed
/// into each.
fn rule(r: &Value) -> Value {
    let (mut base_permissions, mut base_principals) = (Vec::new(), Vec::new());
    for w in r["when"].as_array().into_iter().flatten() {
        let key = text(&w["key"], "");
        let (values, not_values) = (strings(&w["values"]), strings(&w["notValues"]));
        if condition_is_permission(key) {
            base_permissions.extend(field(key, &values, &not_values, permission, not_rule));
        } else if is_claim(key) {
            // Istio's extended generators: one matcher for all the values.
            base_principals.extend((!values.is_empty()).then(|| claim(key, &values)));
            base_principals.extend((!not_values.is_empty()).then(|| not_id(claim(key, &not_values))));
        } else {
            base_principals.extend(field(key, &values, &not_values, principal, not_id));
        }
    }
    // Istio's field order (insertFront): the last inserted comes first.
    const SOURCE: [&str; 5] = [
        "principals",
        "requestPrincipals",
        "namespaces",
        "remoteIpBlocks",
        "ipBlocks",
    ];
    const OPERATION: [&str; 4] = ["hosts", "methods", "paths", "ports"];
    let principals: Vec<Value> = match r["from"].as_array() {
        None => vec![and_ids(base_principals.clone())],
        Some(from) => from
            .iter()
            .map(|f| {
                let s = &f["source"];
                let mut ids = Vec::new();
                for key in SOURCE {
                    let not_key = format!("not{}{}", key[..1].to_uppercase(), &key[1..]);
                    ids.extend(field(key, &strings(&s[key]), &strings(&s[&not_key]), principal, not_id));
                }
                check_known(s, &SOURCE);
                ids.extend(base_principals.clone());
                and_ids(ids)
            })
            .collect(),
    };
    let permissions: Vec<Value> = match r["to"].as_array() {
        None => vec![and_rules(base_permissions.clone())],
        Some(to) => to
            .iter()
            .map(|t| {
                let o = &t["operation"];
                let mut rules = Vec::new();
                for key in OPERATION {
                    let not_key = format!("not{}{}", key[..1].to_uppercase(), &key[1..]);
                    rules.extend(field(
                        key,
                        &strings(&o[key]),
                        &strings(&o[&not_key]),
                        permission,
                        not_rule,
                    ));
                }
                check_known(o, &OPERATION);
                rules.extend(base_permissions.clone());
                and_rules(rules)
            })
            .collect(),
    };
    json!({"permissions": permissions, "principals": principals})
}

/// Panics on a field of `entry` that no arm translates: a test must not
/// pass by ignoring part of a policy.
fn check_known(entry: &Value, keys: &[&str]) {
    for k in entry.as_object().into_iter().flatten().map(|(k, _)| k) {
        let base = k
            .strip_prefix("not")
            .map(|b| format!("{}{}", b[..1].to_lowercase(), &b[1..]))
            .unwrap_or_else(|| k.clone());
        assert!(
            keys.contains(&base.as_str()),
            "the RBAC translation has no arm for {k:?} yet"
        );
    }
}

/// `when` keys Istio puts into permissions (the rest go into principals).
fn condition_is_permission(key: &str) -> bool {
    matches!(key, "destination.ip" | "destination.port" | "connection.sni")
        || key.starts_with("experimental.envoy.filters.")
}

/// One field: the OR of its values, and `not` of the OR of its negated
/// values; nothing when neither is set.
fn field(
    key: &str,
    values: &[String],
    not_values: &[String],
    one: fn(&str, &str) -> Value,
    not: fn(Value) -> Value,
) -> Vec<Value> {
    let or = |vs: &[String]| {
        let items: Vec<Value> = vs.iter().map(|v| one(key, v)).collect();
        // Permissions and principals have differently named OR nodes.
        match is_permission(key) {
            true => json!({"or_rules": {"rules": items}}),
            false => json!({"or_ids": {"ids": items}}),
        }
    };
    let mut out = Vec::new();
    if !values.is_empty() {
        out.push(or(values));
    }
    if !not_values.is_empty() {
        out.push(not(or(not_values)));
    }
    out
}

fn is_permission(key: &str) -> bool {
    matches!(key, "hosts" | "methods" | "paths" | "ports") || condition_is_permission(key)
}

fn not_rule(v: Value) -> Value {
    json!({"not_rule": v})
}

fn not_id(v: Value) -> Value {
    json!({"not_id": v})
}

fn and_rules(rules: Vec<Value>) -> Value {
    match rules.is_empty() {
        true => json!({"and_rules": {"rules": [{"any": true}]}}),
        false => json!({"and_rules": {"rules": rules}}),
    }
}

fn and_ids(ids: Vec<Value>) -> Value {
    match ids.is_empty() {
        true => json!({"and_ids": {"ids": [{"any": true}]}}),
        false => json!({"and_ids": {"ids": ids}}),
    }
}

/// A permission for one value of an operation field or a `when` key.
fn permission(key: &str, value: &str) -> Value {
    match key {
        "methods" => json!({"header": header_matcher(":method", value, false)}),
        "hosts" => json!({"header": header_matcher(":authority", value, true)}),
        "paths" if value.contains("{*}") || value.contains("{**}") => json!({"uri_template": {
            "name": "uri-template",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": value.replace("{**}", "**").replace("{*}", "*")}}}),
        "paths" => json!({"url_path": {"path": string_matcher(value, "")}}),
        "ports" | "destination.port" => json!({"destination_port": value.parse::<u32>().expect("a port")}),
        "destination.ip" => json!({"destination_ip": cidr(value)}),
        "connection.sni" => json!({"requested_server_name": string_matcher(value, "")}),
        other => panic!("the RBAC translation has no permission arm for {other:?} yet"),
    }
}

/// A principal for one value of a source field or a `when` key.
fn principal(key: &str, value: &str) -> Value {
    match key {
        "principals" | "source.principal" => authenticated(string_matcher(value, "spiffe://")),
        "namespaces" | "source.namespace" => {
            let ns = value.split('*').map(quote_meta).collect::<Vec<_>>().join(".*");
            authenticated(json!({"safe_regex": {"regex": format!(".*/ns/{ns}/.*")}}))
        }
        "ipBlocks" | "source.ip" => json!({"direct_remote_ip": cidr(value)}),
        "remoteIpBlocks" | "remote.ip" => json!({"remote_ip": cidr(value)}),
        "requestPrincipals" | "request.auth.principal" => request_principal(value),
        k if k.starts_with("request.headers[") => {
            let name = k.trim_start_matches("request.headers[").trim_end_matches(']');
            json!({"header": header_matcher(name, value, false)})
        }
        other => panic!("the RBAC translation has no principal arm for {other:?} yet"),
    }
}

/// Istio's `AddrStrToCidrRange`: the address as written, the prefix length
/// given or the whole address.
fn cidr(value: &str) -> Value {
    let (address, len) = match value.split_once('/') {
        Some((a, l)) => (a, l.parse::<u32>().expect("a prefix length")),
        None => (value, if value.contains(':') { 128 } else { 32 }),
    };
    json!({"address_prefix": address, "prefix_len": len})
}

/// The namespace and key under which `jwt_authn` leaves the verified payload.
const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
const JWT_PAYLOAD: &str = "payload";

/// A metadata matcher on the claim at `path` of the verified payload.
fn jwt_metadata(path: &[&str], value: Value) -> Value {
    let mut segments = vec![json!({"key": JWT_PAYLOAD})];
    segments.extend(path.iter().map(|k| json!({"key": k})));
    json!({"metadata": {"filter": JWT_FILTER, "path": segments, "value": value}})
}

/// Istio's `requestPrincipalGenerator` for one value: `iss` and `sub`
/// matched apart, the value split at its last `/`.
fn request_principal(value: &str) -> Value {
    let any = json!({"safe_regex": {"regex": ".+"}});
    let (iss, sub) = match value.rsplit_once('/') {
        Some((i, s)) => (i, Some(s)),
        None => (value, None),
    };
    let (match_iss, match_sub) = if value == "*" {
        (any.clone(), any)
    } else if let Some(suffix) = value.strip_prefix('*') {
        match sub {
            Some(sub) if iss == "*" => (any, json!({"exact": sub})),
            Some(sub) => (
                json!({"suffix": iss.strip_prefix('*').unwrap_or(iss)}),
                json!({"exact": sub}),
            ),
            None => (any, json!({"suffix": suffix})),
        }
    } else if let Some(prefix) = value.strip_suffix('*') {
        match sub {
            Some("*") => (json!({"exact": iss}), any),
            Some(sub) => (
                json!({"exact": iss}),
                json!({"prefix": sub.strip_suffix('*').unwrap_or(sub)}),
            ),
            None => (json!({"prefix": prefix}), any),
        }
    } else {
        (json!({"exact": iss}), json!({"exact": sub.unwrap_or("")}))
    };
    and_ids(vec![
        jwt_metadata(&["iss"], json!({"string_match": match_iss})),
        jwt_metadata(&["sub"], json!({"string_match": match_sub})),
    ])
}

/// Keys Istio's extended generators translate into one matcher for all
/// values.
fn is_claim(key: &str) -> bool {
    matches!(key, "request.auth.audiences" | "request.auth.presenter") || key.starts_with("request.auth.claims[")
}

/// Istio's `MetadataListValueMatcherForJWTClaims` for a claim key: the claim
/// is one of `values`, or a list holding one.
fn claim(key: &str, values: &[String]) -> Value {
    let path: Vec<&str> = match key {
        "request.auth.audiences" => vec!["aud"],
        "request.auth.presenter" => vec!["azp"],
        k => k
            .trim_start_matches("request.auth.claims[")
            .trim_end_matches(']')
            .split("][")
            .collect(),
    };
    let mut matchers: Vec<Value> = values
        .iter()
        .map(|v| json!({"string_match": string_matcher(v, "")}))
        .collect();
    let value = match matchers.len() {
        1 => matchers.remove(0),
        _ => json!({"or_match": {"value_matchers": matchers}}),
    };
    jwt_metadata(
        &path,
        json!({"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}}),
    )
}

fn authenticated(name: Value) -> Value {
    json!({"authenticated": {"principal_name": name}})
}

/// Istio's `HeaderMatcher` / `HostMatcher`: `*` = present, `*x` suffix,
/// `x*` prefix, else exact.
fn header_matcher(name: &str, v: &str, ignore_case: bool) -> Value {
    let m = |kind: &str, s: &str| json!({"name": name, "string_match": {kind: s, "ignore_case": ignore_case}});
    if v == "*" {
        json!({"name": name, "present_match": true})
    } else if let Some(s) = v.strip_prefix('*') {
        m("suffix", s)
    } else if let Some(p) = v.strip_suffix('*') {
        m("prefix", p)
    } else {
        m("exact", v)
    }
}

/// Istio's `StringMatcherWithPrefix`: `*` = the regex `.+` (the prefix not
/// required), `*x` = the regex `<prefix>.*x`, `x*` = prefix, else exact.
fn string_matcher(v: &str, prefix: &str) -> Value {
    if v == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(s) = v.strip_prefix('*') {
        match prefix.is_empty() {
            true => json!({"suffix": s}),
            false => json!({"safe_regex": {"regex": format!("{prefix}.*{}", quote_meta(s))}}),
        }
    } else if let Some(p) = v.strip_suffix('*') {
        json!({"prefix": format!("{prefix}{p}")})
    } else {
        json!({"exact": format!("{prefix}{v}")})
    }
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_as_istio_writes_them() {
        assert_eq!(string_matcher("*", "spiffe://"), json!({"safe_regex": {"regex": ".+"}}));
        assert_eq!(
            string_matcher("*/sa/x.y", "spiffe://"),
            json!({"safe_regex": {"regex": "spiffe://.*/sa/x\\.y"}})
        );
        assert_eq!(string_matcher("a/*", "spiffe://"), json!({"prefix": "spiffe://a/"}));
        assert_eq!(string_matcher("*.css", ""), json!({"suffix": ".css"}));
        assert_eq!(
            request_principal("https://idp/*")["and_ids"]["ids"][1]["metadata"]["value"],
            json!({"string_match": {"safe_regex": {"regex": ".+"}}})
        );
        assert_eq!(
            request_principal("*/alice")["and_ids"]["ids"][0]["metadata"]["value"],
            json!({"string_match": {"safe_regex": {"regex": ".+"}}})
        );
        assert_eq!(
            cidr("127.0.0.1/8"),
            json!({"address_prefix": "127.0.0.1", "prefix_len": 8})
        );
        assert_eq!(
            claim("request.auth.claims[realm][role]", &["owner".into()])["metadata"]["path"],
            json!([{"key": "payload"}, {"key": "realm"}, {"key": "role"}])
        );
        assert_eq!(
            principal("namespaces", "team-*"),
            json!({"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/team-.*/.*"}}}})
        );
    }

    #[test]
    fn deny_comes_first_and_an_allow_without_rules_never_matches() {
        let ps = vec![
            json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {}}),
            json!({"metadata": {"name": "d", "namespace": "ns"}, "spec": {"action": "DENY", "rules": [{}]}}),
            json!({"metadata": {"name": "o", "namespace": "other"}, "spec": {"action": "DENY", "rules": [{}]}}),
        ];
        let filters: Value =
            serde_json::from_str(&format!("[{}]", http_filters(&ps, "ns", &[], "istio-system"))).unwrap();
        assert_eq!(filters[0]["typed_config"]["rules"]["action"], "DENY");
        assert_eq!(
            filters[0]["typed_config"]["rules"]["policies"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["ns[ns]-policy[d]-rule[0]"]
        );
        assert_eq!(
            filters[1]["typed_config"]["rules"]["policies"]["ns[ns]-policy[a]-rule[0]"]["permissions"][0],
            json!({"not_rule": {"any": true}})
        );
    }
}
