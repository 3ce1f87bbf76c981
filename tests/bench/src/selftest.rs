//! Where the runner gets its rules and bootstraps: [`meshward_bench::rules`]
//! and [`meshward_bench::configs`], or (hidden option `--self-test-configs`,
//! for developing the runner itself) hand-written stand-ins: every variant
//! with an allowlist is a file-based ECDS RBAC filter over exact paths, the
//! others are the router alone. The stand-ins exercise every step of the
//! runner (readiness, verdicts, load, config change); their numbers mean
//! nothing about the real variants, and the report says so.

use meshward_bench::configs::{self, Files, Ports, Variant};
use meshward_bench::rules::{self, Mix, PathPattern, Rule};
use std::sync::atomic::{AtomicU64, Ordering};

/// The source of rules and bootstraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Configs {
    /// The crate's `rules` and `configs` modules.
    Real,
    /// The stand-ins below.
    SelfTest,
}

impl Configs {
    /// `n` rules of `mix` (the stand-ins are exact paths whatever the mix).
    pub(crate) fn rules(self, n: usize, mix: Mix) -> Vec<Rule> {
        match self {
            Self::Real => rules::rules_with(n, mix),
            Self::SelfTest => (0..n)
                .map(|i| Rule {
                    methods: vec!["GET".into()],
                    path: PathPattern::Exact(format!("/selftest/{i}")),
                })
                .collect(),
        }
    }

    pub(crate) fn allowed_request(self, rules: &[Rule]) -> (String, String) {
        match self {
            Self::Real => rules::allowed_request(rules),
            Self::SelfTest => match rules.last() {
                Some(Rule {
                    path: PathPattern::Exact(p),
                    ..
                }) => ("GET".into(), p.clone()),
                _ => (String::new(), String::new()),
            },
        }
    }

    pub(crate) fn denied_request(self) -> (String, String) {
        match self {
            Self::Real => rules::denied_request(),
            Self::SelfTest => ("GET".into(), "/selftest/denied".into()),
        }
    }

    pub(crate) fn bootstrap(self, variant: Variant, rules: &[Rule], ports: &Ports, files: &Files) -> String {
        match self {
            Self::Real => configs::bootstrap(variant, rules, ports, files),
            Self::SelfTest => self_test_bootstrap(variant, rules, ports, files),
        }
    }

    pub(crate) fn update_filter(self, variant: Variant, rules: &[Rule], files: &Files) -> Result<(), String> {
        match self {
            Self::Real => {
                configs::update_filter(variant, rules, files);
                Ok(())
            }
            Self::SelfTest => write_rbac_ecds(rules, files),
        }
    }

    pub(crate) fn responder_bootstrap(self, port: u16, admin: u16) -> String {
        match self {
            Self::Real => configs::responder_bootstrap(port, admin),
            Self::SelfTest => self_test_responder(port, admin),
        }
    }
}

fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

const ROUTER: &str = r#"{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}"#;

fn has_filter(variant: Variant) -> bool {
    matches!(variant, Variant::Rbac | Variant::RbacMatcher | Variant::Meshward)
}

fn self_test_bootstrap(variant: Variant, rules: &[Rule], ports: &Ports, files: &Files) -> String {
    let filters = if has_filter(variant) {
        if let Err(e) = write_rbac_ecds(rules, files) {
            eprintln!("self-test configs: {e}");
            return String::new();
        }
        let ecds = format!(
            r#"{{"name": "allowlist", "config_discovery": {{
                 "config_source": {{"path_config_source": {{"path": {path}, "watched_directory": {{"path": {dir}}}}}}},
                 "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"]}}}}"#,
            path = json(&files.dir.join("filter.json").to_string_lossy()),
            dir = json(&files.dir.to_string_lossy()),
        );
        format!("{ecds}, {ROUTER}")
    } else {
        ROUTER.to_string()
    };
    format!(
        r#"{{"node": {{"id": "meshward-bench", "cluster": "meshward-bench"}},
  "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}},
  "static_resources": {{
    "listeners": [{{"name": "bench", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {listener}}}}},
      "filter_chains": [{{"filters": [{{"name": "envoy.filters.network.http_connection_manager", "typed_config": {{
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench", "codec_type": "AUTO",
        "route_config": {{"virtual_hosts": [{{"name": "all", "domains": ["*"],
          "routes": [{{"match": {{"prefix": "/"}}, "route": {{"cluster": "upstream"}}}}]}}]}},
        "http_filters": [{filters}]}}}}]}}]}}],
    "clusters": [{{"name": "upstream", "connect_timeout": "2s", "type": "STATIC",
      "load_assignment": {{"cluster_name": "upstream", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{
        "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {upstream}}}}}}}}}]}}]}}}}]}}}}"#,
        admin = ports.admin,
        listener = ports.listener,
        upstream = ports.upstream,
    )
}

static VERSION: AtomicU64 = AtomicU64::new(0);

/// `files.dir/filter.json`: RBAC allowing GET on each rule's exact path.
fn write_rbac_ecds(rules: &[Rule], files: &Files) -> Result<(), String> {
    let permissions: Vec<String> = rules
        .iter()
        .filter_map(|r| match &r.path {
            PathPattern::Exact(p) => Some(format!(
                r#"{{"and_rules": {{"rules": [{{"header": {{"name": ":method", "string_match": {{"exact": "GET"}}}}}}, {{"url_path": {{"path": {{"exact": {}}}}}}}]}}}}"#,
                json(p)
            )),
            _ => None,
        })
        .collect();
    let policies = if permissions.is_empty() {
        "{}".to_string()
    } else {
        format!(
            r#"{{"allowlist": {{"permissions": [{{"or_rules": {{"rules": [{}]}}}}], "principals": [{{"any": true}}]}}}}"#,
            permissions.join(", ")
        )
    };
    let resource = format!(
        r#"{{"version_info": "{version}", "resources": [{{"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
  "name": "allowlist", "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    "rules": {{"action": "ALLOW", "policies": {policies}}}}}}}]}}"#,
        version = VERSION.fetch_add(1, Ordering::Relaxed),
    );
    let tmp = files.dir.join("filter.json.tmp");
    std::fs::write(&tmp, resource).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, files.dir.join("filter.json")).map_err(|e| format!("rename {}: {e}", tmp.display()))
}

fn self_test_responder(port: u16, admin: u16) -> String {
    format!(
        r#"{{"admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}},
  "static_resources": {{"listeners": [{{"name": "responder", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {port}}}}},
    "filter_chains": [{{"filters": [{{"name": "envoy.filters.network.http_connection_manager", "typed_config": {{
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "responder", "codec_type": "AUTO",
      "route_config": {{"virtual_hosts": [{{"name": "all", "domains": ["*"],
        "routes": [{{"match": {{"prefix": "/"}}, "direct_response": {{"status": 200, "body": {{"inline_string": "ok"}}}}}}]}}]}},
      "http_filters": [{ROUTER}]}}}}]}}]}}]}}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn stand_ins_are_json() {
        let dir = std::env::temp_dir().join(format!("meshward-bench-selftest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = Files {
            dir: dir.clone(),
            meshward_wasm: PathBuf::from("/nonexistent"),
            noop_wasm: PathBuf::from("/nonexistent"),
        };
        let ports = Ports {
            listener: 1,
            admin: 2,
            upstream: 3,
            authz: 4,
        };
        let c = Configs::SelfTest;
        let rules = c.rules(3, Mix::All);
        assert_eq!(c.allowed_request(&rules), ("GET".into(), "/selftest/2".into()));
        for v in crate::cli::ALL_VARIANTS {
            let boot = c.bootstrap(v, &rules, &ports, &files);
            serde_json::from_str::<serde_json::Value>(&boot).unwrap();
        }
        let ecds = std::fs::read_to_string(dir.join("filter.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&ecds).unwrap();
        c.update_filter(Variant::Rbac, &[], &files).unwrap();
        let ecds = std::fs::read_to_string(dir.join("filter.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&ecds).unwrap();
        serde_json::from_str::<serde_json::Value>(&c.responder_bootstrap(5, 6)).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
