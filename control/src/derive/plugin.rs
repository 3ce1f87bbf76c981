//! The Istio `WasmPlugin` objects meshward writes, and their names.
//!
//! Everything that says what a meshward WasmPlugin looks like lives here: the
//! fields meshward sets, the label that marks it as meshward's, and the names
//! of a namespace's plugins (`meshward`, then `meshward-1`, `meshward-2`, ...
//! when its configuration is split). The service parses those names back with
//! [`PluginName::parse`], so building and reading them cannot drift apart.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use meshward_filter::config::PluginConfig;
use serde::Serialize;

use super::Settings;
use crate::crd::Selector;

/// The label on every object the control service writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "meshward-control");
/// The name of the WasmPlugin in each enabled namespace; when a namespace's
/// configuration is split, the others are `meshward-1`, `meshward-2`, ...
pub const PLUGIN_NAME: &str = "meshward";
/// The filter's root id (`pluginName` of the WasmPlugin, the `root_id` of
/// the Envoy filter): the name the module registers its root context under.
pub const ROOT_ID: &str = "meshward";
/// The API version of Istio's WasmPlugin.
pub const WASM_PLUGIN_API_VERSION: &str = "extensions.istio.io/v1alpha1";

/// An Istio `WasmPlugin` (`extensions.istio.io/v1alpha1`), the fields meshward sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    /// `extensions.istio.io/v1alpha1`.
    pub api_version: &'static str,
    /// `WasmPlugin`.
    pub kind: &'static str,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: WasmPluginSpec,
}

/// The spec of a [`WasmPlugin`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    /// Module URL.
    pub url: String,
    /// Module digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Root id: [`ROOT_ID`].
    pub plugin_name: &'static str,
    /// `AUTHZ`.
    pub phase: &'static str,
    /// `[{mode: SERVER}]`: inbound only.
    #[serde(rename = "match")]
    pub match_: Vec<TrafficSelector>,
    /// `FAIL_CLOSE`.
    pub fail_strategy: &'static str,
    /// `selector: {matchLabels}`: the workloads the plugin is delivered to.
    /// Absent (every workload of the namespace) unless the namespace's
    /// configuration is split: then the labels common to the selectors of all
    /// the plugin's policies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    /// The v1alpha1 plugin configuration.
    pub plugin_config: PluginConfig,
}

/// A WasmPlugin traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficSelector {
    /// `SERVER`.
    pub mode: &'static str,
}

impl WasmPlugin {
    /// The `index`-th WasmPlugin of namespace `ns`, holding `plugin_config`,
    /// delivered to the workloads `selector` picks (all when `None`).
    pub fn new(
        ns: &str,
        index: usize,
        settings: &Settings,
        selector: Option<BTreeMap<String, String>>,
        plugin_config: PluginConfig,
    ) -> Self {
        let labels = BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())]);
        Self {
            api_version: WASM_PLUGIN_API_VERSION,
            kind: "WasmPlugin",
            metadata: ObjectMeta {
                name: Some(PluginName(index).to_string()),
                namespace: Some(ns.into()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            spec: WasmPluginSpec {
                url: settings.url.clone(),
                sha256: settings.sha256.clone(),
                plugin_name: ROOT_ID,
                phase: "AUTHZ",
                match_: vec![TrafficSelector { mode: "SERVER" }],
                fail_strategy: "FAIL_CLOSE",
                selector: selector.map(|match_labels| Selector { match_labels }),
                plugin_config,
            },
        }
    }
}

/// The name of a namespace's WasmPlugin number `.0`: `meshward` for 0,
/// `meshward-1`, `meshward-2`, ... after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PluginName(pub usize);

impl PluginName {
    /// The index of a WasmPlugin named as meshward names them; `None` for any
    /// other name (`meshward-01`, `meshward-x`, `other`).
    pub fn parse(name: &str) -> Option<usize> {
        match name.strip_prefix(PLUGIN_NAME)? {
            "" => Some(0),
            rest => {
                let digits = rest.strip_prefix('-')?;
                let index: usize = digits.parse().ok()?;
                // Only the canonical spelling: `meshward-1`, not `meshward-01` or `meshward-+1`.
                (index > 0 && index.to_string() == digits).then_some(index)
            }
        }
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str(PLUGIN_NAME),
            i => write!(f, "{PLUGIN_NAME}-{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_and_parsed_alike() {
        for i in [0, 1, 2, 10, 123] {
            let name = PluginName(i).to_string();
            assert_eq!(PluginName::parse(&name), Some(i), "{name}");
        }
        assert_eq!(PluginName(0).to_string(), "meshward");
        assert_eq!(PluginName(3).to_string(), "meshward-3");
        for other in [
            "",
            "mesh",
            "meshward-",
            "meshward-0",
            "meshward-01",
            "meshward-+1",
            "meshward-x",
            "meshwardx",
        ] {
            assert_eq!(PluginName::parse(other), None, "{other}");
        }
    }
}
