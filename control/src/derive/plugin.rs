//! The Istio `WasmPlugin` objects meshward writes, and their names.
//!
//! Everything that says what a meshward WasmPlugin looks like lives here: the
//! fields meshward sets, the label that marks it as meshward's, the names of a
//! namespace's plugins (`meshward`, then `meshward-1`, `meshward-2`, ... when
//! its configuration is split), and the rule for the module's `url` and
//! `sha256`. The service parses those names back with [`PluginName::parse`],
//! so building and reading them cannot drift apart.
//!
//! # Which sha256, by URL scheme
//!
//! Istio checks `spec.sha256` differently for each scheme of `spec.url`
//! ([`check_module`] applies the rule, [`ModuleDigest`] names the result):
//!
//! * `oci://` (and a URL without a scheme, which Istio reads as `oci://`):
//!   istio-agent compares it with the **digest of the image manifest**, before
//!   downloading any layer (istio/istio `pkg/wasm/cache.go`: the checksum
//!   `PrepareFetch` returns is `img.Digest().Hex`, from
//!   `pkg/wasm/imagefetcher.go`). It is what `meshward-control oci-image`
//!   prints as the manifest digest and what the registry returns as
//!   `Docker-Content-Digest`, not the sha256 of `plugin.wasm`. A URL pinned
//!   with `@sha256:<hex>` names the same digest.
//! * `http://`, `https://`: istio-agent downloads the module and compares the
//!   **sha256 of the module's bytes** (`sha256sum plugin.wasm`).
//! * `file://`: istiod hands Envoy the path as a local data source, which
//!   carries no checksum (`pilot/pkg/model/extensions.go`, `buildDataSource`):
//!   the value would be the module's sha256, but **nothing verifies it**.
//!
//! With a FAIL_CLOSE WasmPlugin, a wrong digest makes the module fail to load
//! and every request to the namespace's workloads is refused, so the rule is
//! checked before anything is written. An `oci://` URL with the tag `latest`
//! (or no tag, which means `latest`) and no digest is refused unless allowed
//! explicitly: the module could change under the WasmPlugin at the next pull.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use meshward_filter::config::PluginConfig;
use serde::Serialize;
use thiserror::Error;

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
    /// How istio-agent re-pulls the module ([`Settings::image_pull_policy`]);
    /// absent = Istio's default (`IfNotPresent`, `Always` for the tag `latest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// The registry credentials ([`Settings::image_pull_secret`]): the name
    /// of a `kubernetes.io/dockerconfigjson` Secret in the WasmPlugin's
    /// namespace; absent = anonymous pulls or the node's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// The order among the AUTHZ WasmPlugins of a workload
    /// ([`Settings::priority`]): higher runs first; absent = 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
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
                image_pull_policy: settings.image_pull_policy,
                image_pull_secret: settings.image_pull_secret.clone(),
                priority: settings.priority,
                selector: selector.map(|match_labels| Selector { match_labels }),
                plugin_config,
            },
        }
    }
}

/// `spec.imagePullPolicy` of a WasmPlugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PullPolicy {
    /// Pull only when the module is not in istio-agent's cache.
    IfNotPresent,
    /// Pull again whenever the WasmPlugin changes.
    Always,
}

impl PullPolicy {
    /// The value as written in the WasmPlugin.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IfNotPresent => "IfNotPresent",
            Self::Always => "Always",
        }
    }
}

impl FromStr for PullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "IfNotPresent" => Ok(Self::IfNotPresent),
            "Always" => Ok(Self::Always),
            _ => Err(format!("{s:?}: expected IfNotPresent or Always")),
        }
    }
}

/// Which digest `spec.sha256` must hold for a URL (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleDigest {
    /// `oci://`: the digest of the image manifest.
    ImageManifest,
    /// `http(s)://`: the sha256 of the module's bytes.
    Module,
    /// `file://`: the module's sha256 would fit, but Istio does not check it.
    NotVerified,
}

impl ModuleDigest {
    /// What to write where the digest is not known yet, in docs and
    /// examples: `<image manifest digest>` or `<plugin.wasm sha256>`.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::ImageManifest => "<image manifest digest>",
            Self::Module | Self::NotVerified => "<plugin.wasm sha256>",
        }
    }
}

/// Why a module `url` and `sha256` would not load as intended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModuleError {
    /// The URL's scheme is not one Istio fetches.
    #[error("url {url:?}: the scheme must be oci://, https://, http:// or file://")]
    Scheme {
        /// The URL.
        url: String,
    },
    /// The URL is not of the form its scheme takes.
    #[error("url {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The sha256 is not 64 lower-case hex digits.
    #[error("sha256 {value:?}: {reason}")]
    Sha256 {
        /// The value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The URL pins one digest and `sha256` names another: every pull fails.
    #[error("sha256 {sha256}: the url pins sha256:{pinned}; Istio would refuse the module")]
    Mismatch {
        /// The digest in the URL.
        pinned: String,
        /// The `sha256` given.
        sha256: String,
    },
    /// An `oci://` URL with the tag `latest` (or none) and no digest.
    #[error(
        "url {url:?}: the tag latest can move to another module at any pull; pin the image with \
         @sha256:<image manifest digest> in the url or with sha256, use a versioned tag, or allow it explicitly"
    )]
    Unpinned {
        /// The URL.
        url: String,
    },
}

/// Checks a 64-digit lower-case hex sha256 (no `sha256:` prefix).
pub fn check_sha256(value: &str) -> Result<(), ModuleError> {
    let err = |reason| ModuleError::Sha256 {
        value: value.to_string(),
        reason,
    };
    if value.starts_with("sha256:") {
        return Err(err("write the 64 hex digits without the sha256: prefix"));
    }
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err("expected 64 hex digits"));
    }
    if value.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(err(
            "expected lower-case hex digits (Istio's schema refuses upper case)",
        ));
    }
    Ok(())
}

/// Applies the rule of the module docs to a WasmPlugin's `url` and
/// `sha256`: the digest the `sha256` stands for, or why the pair would not
/// load as intended. `allow_latest` accepts an unpinned `oci://` URL with
/// the tag `latest` or none.
pub fn check_module(url: &str, sha256: Option<&str>, allow_latest: bool) -> Result<ModuleDigest, ModuleError> {
    if let Some(s) = sha256 {
        check_sha256(s)?;
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("oci", url));
    let url_err = |reason| ModuleError::Url {
        url: url.to_string(),
        reason,
    };
    match scheme {
        "http" | "https" => {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(url_err("no host"));
            }
            Ok(ModuleDigest::Module)
        }
        "file" => {
            if !rest.starts_with('/') {
                return Err(url_err("file:// takes an absolute path (file:///...)"));
            }
            Ok(ModuleDigest::NotVerified)
        }
        "oci" => {
            let (name, pinned) = match rest.split_once('@') {
                Some((name, digest)) => {
                    let hex = digest
                        .strip_prefix("sha256:")
                        .ok_or_else(|| url_err("the digest after @ must be sha256:<64 hex digits>"))?;
                    check_sha256(hex).map_err(|_| url_err("the digest after @ must be sha256:<64 hex digits>"))?;
                    (name, Some(hex))
                }
                None => (rest, None),
            };
            let Some((registry, path)) = name.split_once('/') else {
                return Err(url_err(
                    "expected oci://<registry>/<repository>[:tag][@sha256:<digest>]",
                ));
            };
            if registry.is_empty() || path.is_empty() {
                return Err(url_err(
                    "expected oci://<registry>/<repository>[:tag][@sha256:<digest>]",
                ));
            }
            let last = path.rsplit('/').next().unwrap_or(path);
            let tag = last.split_once(':').map(|(_, t)| t);
            if tag == Some("") {
                return Err(url_err("empty tag"));
            }
            match (pinned, sha256) {
                (Some(p), Some(s)) if p != s => {
                    return Err(ModuleError::Mismatch {
                        pinned: p.to_string(),
                        sha256: s.to_string(),
                    })
                }
                (None, None) if !allow_latest && tag.is_none_or(|t| t == "latest") => {
                    return Err(ModuleError::Unpinned { url: url.to_string() })
                }
                _ => {}
            }
            Ok(ModuleDigest::ImageManifest)
        }
        _ => Err(ModuleError::Scheme { url: url.to_string() }),
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
    fn the_sha256_rule_follows_the_scheme() {
        let hex = "0123456789abcdef".repeat(4);
        let other = "f".repeat(64);
        let ok = |url: &str, sha: Option<&str>| check_module(url, sha, false);
        assert_eq!(ok("oci://r.io/m/f:1.0", None), Ok(ModuleDigest::ImageManifest));
        assert_eq!(
            ok("r.io/m/f:1.0", Some(&hex)),
            Ok(ModuleDigest::ImageManifest),
            "no scheme = oci"
        );
        assert_eq!(ok("https://h/f.wasm", Some(&hex)), Ok(ModuleDigest::Module));
        assert_eq!(ok("http://h:8080/f.wasm", None), Ok(ModuleDigest::Module));
        assert_eq!(ok("file:///f.wasm", Some(&hex)), Ok(ModuleDigest::NotVerified));
        // The tag latest, or none, must be pinned.
        for url in ["oci://r.io/m/f:latest", "oci://r.io/m/f", "oci://localhost:5000/f"] {
            assert!(matches!(ok(url, None), Err(ModuleError::Unpinned { .. })), "{url}");
            assert!(ok(url, Some(&hex)).is_ok(), "{url}");
            assert!(check_module(url, None, true).is_ok(), "{url}");
        }
        assert!(ok(&format!("oci://r.io/m/f@sha256:{hex}"), None).is_ok());
        assert!(ok(&format!("oci://r.io/m/f:latest@sha256:{hex}"), Some(&hex)).is_ok());
        assert!(matches!(
            ok(&format!("oci://r.io/m/f@sha256:{hex}"), Some(&other)),
            Err(ModuleError::Mismatch { .. })
        ));
        for bad in [
            "ftp://h/f.wasm",
            "file://relative.wasm",
            "https:///f.wasm",
            "oci://f",
            "oci://r.io/f:",
            "oci://r.io/f@sha256:xyz",
        ] {
            assert!(ok(bad, None).is_err(), "{bad}");
        }
        for bad in [
            &hex[1..],
            &hex.to_uppercase(),
            &format!("sha256:{hex}"),
            &format!("{}g", &hex[1..]),
        ] {
            let e = ok("oci://r.io/f:1", Some(bad)).unwrap_err();
            assert!(matches!(e, ModuleError::Sha256 { .. }), "{bad}: {e}");
        }
    }

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
