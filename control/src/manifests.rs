//! Loading a [`Snapshot`] from YAML manifests, for the offline CLI.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file under a directory is read (in
//! path order), each document dispatched by `apiVersion`/`kind` into the
//! typed objects derivation reads. Unknown fields are refused; kinds
//! derivation does not read are listed as ignored. Errors name the file,
//! the document and the object.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::crd::Allowlist;
use crate::state::Snapshot;

/// Why manifests could not be loaded.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid YAML or does not fit its kind.
    #[error("{path}: document {index} ({object}): {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The document's index in the file (0-based).
        index: usize,
        /// `Kind namespace/name` as far as known.
        object: String,
        /// What is wrong.
        message: String,
    },
}

/// What was loaded, and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The objects derivation reads.
    pub snapshot: Snapshot,
    /// `Kind namespace/name` of documents of other kinds.
    pub ignored: Vec<String>,
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}

/// Deserializes `original` into `T`, refusing fields `T` does not know: the
/// Kubernetes types ignore unknown fields, so a typo such as
/// `serviceAcountName` would silently become the `default` service account.
/// The object is converted back and the first field that did not survive is
/// named. Also used by the tests that check the install manifests.
pub fn strict<T: DeserializeOwned + Serialize>(original: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(original.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_dropped(original, &back, "") {
        Some(field) => Err(format!("unknown field `{field}`")),
        None => Ok(typed),
    }
}

/// The path of the first field of `original` missing from `back`; `null`
/// values count as absent.
fn first_dropped(original: &Value, back: &Value, path: &str) -> Option<String> {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => o.iter().filter(|(_, v)| !v.is_null()).find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match b.get(k) {
                None => Some(p),
                Some(bv) => first_dropped(v, bv, &p),
            }
        }),
        (Value::Array(o), Value::Array(b)) => o
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (ov, bv))| first_dropped(ov, bv, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Loads every manifest under `dir`.
pub fn load(dir: &Path, trust_domain: &str) -> Result<Loaded, ManifestError> {
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    let mut loaded = Loaded::default();
    loaded.snapshot.trust_domain = trust_domain.to_string();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Io {
            path: path.clone(),
            source,
        })?;
        for (index, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let invalid = |object: String, message: String| ManifestError::Invalid {
                path: path.clone(),
                index,
                object,
                message,
            };
            let value: serde_yaml::Value =
                serde::Deserialize::deserialize(doc).map_err(|e| invalid("?".into(), e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let meta = |k: &str| {
                value
                    .get("metadata")
                    .and_then(|m| m.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let (api_version, kind) = (field("apiVersion"), field("kind"));
            let object = format!("{kind} {}/{}", meta("namespace"), meta("name"));
            fn typed<T: DeserializeOwned + Serialize>(v: serde_yaml::Value) -> Result<T, String> {
                strict(&serde_json::to_value(&v).map_err(|e| e.to_string())?)
            }
            let s = &mut loaded.snapshot;
            let result = match (api_version.as_str(), kind.as_str()) {
                ("v1", "Namespace") => typed(value).map(|o| s.namespaces.push(o)),
                ("v1", "Pod") => typed(value).map(|o| s.pods.push(o)),
                ("v1", "ServiceAccount") => typed(value).map(|o| s.service_accounts.push(o)),
                ("v1", "Service") => typed(value).map(|o| s.services.push(o)),
                ("apps/v1", "Deployment") => typed(value).map(|o| s.deployments.push(o)),
                ("apps/v1", "StatefulSet") => typed(value).map(|o| s.stateful_sets.push(o)),
                ("apps/v1", "DaemonSet") => typed(value).map(|o| s.daemon_sets.push(o)),
                ("meshward.io/v1alpha1", "Allowlist") => typed::<Allowlist>(value).map(|o| s.allowlists.push(o)),
                _ => {
                    loaded.ignored.push(object.clone());
                    Ok(())
                }
            };
            result.map_err(|message| invalid(object, message))?;
        }
    }
    // Objects without a namespace are in `default`, as kubectl would place them.
    let s = &mut loaded.snapshot;
    for m in s
        .pods
        .iter_mut()
        .map(|o| &mut o.metadata)
        .chain(s.service_accounts.iter_mut().map(|o| &mut o.metadata))
        .chain(s.services.iter_mut().map(|o| &mut o.metadata))
        .chain(s.deployments.iter_mut().map(|o| &mut o.metadata))
        .chain(s.stateful_sets.iter_mut().map(|o| &mut o.metadata))
        .chain(s.daemon_sets.iter_mut().map(|o| &mut o.metadata))
        .chain(s.allowlists.iter_mut().map(|o| &mut o.metadata))
    {
        m.namespace.get_or_insert_with(|| "default".to_string());
    }
    Ok(loaded)
}
