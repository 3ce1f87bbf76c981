//! `meshward-control import`: Istio `AuthorizationPolicy` objects turned
//! into `Allowlist`s with the same meaning.
//!
//! * [`istio`] — the AuthorizationPolicy as read (every field of Istio's CRD).
//! * [`convert`] — one policy to one Allowlist, field by field, or the
//!   fields that cannot be expressed.
//!
//! Inputs are read as the other offline commands read manifests
//! ([`manifests::read_inputs`](crate::manifests::read_inputs), the same YAML
//! reader with lines): files, directories, `-`, multi-document YAML, JSON,
//! `kind: List`. Documents of other kinds are skipped; an AuthorizationPolicy
//! that cannot be read as Istio's schema (an unknown field, a wrong type),
//! a misspelled kind, an unknown version of `security.istio.io` or the same
//! policy twice is bad input, reported with its file and line.
//!
//! Each converted policy is judged by the filter's own engine, as the control
//! service will judge it: a value meshward refuses (a lower-case method, a
//! path no canonical request can have) is reported against the
//! AuthorizationPolicy's field, like a field meshward cannot express.
//! Converted fields where meshward's deliberate strictness refuses a class
//! of callers Istio admits are listed in [`Imported::warnings`].

pub mod convert;
pub mod istio;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::crd::Allowlist;
use crate::derive::{derive, Settings, ENFORCEMENT_LABEL};
use crate::manifests::{self, closest, parse_documents, Doc, Position, Problem, Problems, Source};
use crate::state::Snapshot;
pub use convert::{Options, Unexpressible, DEFAULT_ROOT_NAMESPACE, DRY_RUN, IMPORTED_FROM};
use istio::AuthorizationPolicy;

/// One AuthorizationPolicy read, and where.
#[derive(Debug, Clone)]
pub struct Read {
    /// Where its document starts.
    pub at: Position,
    /// The policy.
    pub policy: AuthorizationPolicy,
    /// Lines by field path, to place reports.
    pub doc: Doc,
}

/// One field of one policy that could not be expressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The file and the line of the field.
    pub at: Position,
    /// `<namespace>/<name>` of the AuthorizationPolicy.
    pub policy: String,
    /// The field and why.
    pub what: Unexpressible,
}

/// `<file>:<line>: <namespace>/<name>: <field>: <why>`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}: {}",
            self.at, self.policy, self.what.field, self.what.reason
        )
    }
}

/// The result of an import.
#[derive(Debug, Default)]
pub struct Imported {
    /// The Allowlists, sorted by namespace and name.
    pub allowlists: Vec<Allowlist>,
    /// What could not be expressed, in input order; each policy named here
    /// has no Allowlist.
    pub reports: Vec<Report>,
    /// Fields of imported policies where meshward refuses a class of
    /// requests Istio admits ([`convert::Conversion::warnings`]), in input
    /// order.
    pub warnings: Vec<Report>,
    /// How many AuthorizationPolicies were read.
    pub read: usize,
}

/// Reads every AuthorizationPolicy of `sources`. Any problem (syntax, an
/// unknown field, a misspelled kind, a duplicate) fails the whole read.
pub fn read(sources: &[Source]) -> Result<Vec<Read>, Problems> {
    let mut reader = Reader::default();
    for source in sources {
        match parse_documents(&source.text) {
            Ok(docs) => {
                for doc in docs {
                    reader.object(&source.name, &doc);
                }
            }
            Err((line, message)) => reader.problems.push(Problem::Syntax {
                at: Position {
                    file: source.name.clone(),
                    line,
                },
                message,
            }),
        }
    }
    if reader.problems.is_empty() {
        Ok(reader.read)
    } else {
        Err(Problems(reader.problems))
    }
}

#[derive(Default)]
struct Reader {
    read: Vec<Read>,
    problems: Vec<Problem>,
    seen: BTreeMap<String, Position>,
}

impl Reader {
    fn object(&mut self, file: &str, doc: &Doc) {
        let v = &doc.value;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let at = Position {
            file: file.to_string(),
            line: doc.line(""),
        };
        if kind.ends_with("List") && v.get("items").is_some_and(Value::is_array) {
            for (i, item) in v
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let p = format!("items[{i}]");
                self.object(file, &doc.at(&p, item.clone()));
            }
            return;
        }
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        let ours = kind == istio::KIND && istio::API_VERSIONS.contains(&api_version.as_str());
        if !ours {
            let refuse = if kind == istio::KIND {
                Some(format!(
                    "AuthorizationPolicy is read as apiVersion {}",
                    istio::API_VERSIONS.join(" or ")
                ))
            } else if group == "security.istio.io" && closest(&kind, &[istio::KIND]).is_some() {
                Some(format!("unknown kind, did you mean {}?", istio::KIND))
            } else {
                None
            };
            if let Some(reason) = refuse {
                self.problems.push(Problem::UnknownKind {
                    at,
                    api_version,
                    kind,
                    reason,
                });
            }
            return;
        }
        let meta = |k: &str| v.get("metadata").and_then(|m| m.get(k)).and_then(Value::as_str);
        let name = meta("name").unwrap_or_default().to_string();
        let ns = meta("namespace").unwrap_or("default").to_string();
        let object = format!("{kind} {ns}/{name}");
        if let Some(problem) = manifests::identity_problem(doc, &at, &object, &name, &self.seen) {
            self.problems.push(problem);
            return;
        }
        self.seen.insert(object.clone(), at.clone());
        match manifests::strict::<AuthorizationPolicy>(v) {
            Ok(policy) => self.read.push(Read {
                at,
                policy,
                doc: doc.clone(),
            }),
            Err(e) => self.problems.push(Problem::Invalid {
                at: Position {
                    line: doc.line(&e.path),
                    ..at
                },
                object,
                field: if e.path.is_empty() { "(object)".into() } else { e.path },
                message: e.message,
            }),
        }
    }
}

/// Converts what [`read`] read. A policy with any field that cannot be
/// expressed, or that the filter's engine refuses once converted, gets no
/// Allowlist.
pub fn import(policies: &[Read], options: &Options) -> Imported {
    let mut imported = Imported {
        read: policies.len(),
        ..Imported::default()
    };
    let mut converted = Vec::new();
    for r in policies {
        let ns = convert::namespace_of(&r.policy).to_string();
        let name = r.policy.metadata.name.clone().unwrap_or_default();
        let report = |what: Unexpressible| Report {
            at: Position {
                line: r.doc.line(&what.field),
                ..r.at.clone()
            },
            policy: format!("{ns}/{name}"),
            what,
        };
        let c = convert::conversion(&r.policy, options);
        match c.allowlist {
            Ok(a) => converted.push((a, r, c.warnings.into_iter().map(report).collect::<Vec<_>>())),
            Err(problems) => imported.reports.extend(problems.into_iter().map(report)),
        }
    }
    // The engine's verdict on each Allowlist, as the control service derives it.
    let refused = engine_refusals(converted.iter().map(|(a, _, _)| a));
    for (a, r, warnings) in converted {
        let key = (
            a.metadata.namespace.clone().unwrap_or_default(),
            a.metadata.name.clone().unwrap_or_default(),
        );
        match refused.get(&key) {
            Some(message) => {
                let (field, reason) = message.split_once(": ").unwrap_or(("spec", message));
                let field = istio_field(field);
                imported.reports.push(Report {
                    at: Position {
                        line: r.doc.line(&field),
                        ..r.at.clone()
                    },
                    policy: format!("{}/{}", key.0, key.1),
                    what: Unexpressible {
                        field,
                        reason: format!("meshward refuses it: {reason}"),
                    },
                });
            }
            None => {
                imported.allowlists.push(a);
                imported.warnings.extend(warnings);
            }
        }
    }
    imported
        .allowlists
        .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    imported
}

/// `(namespace, name)` → why the engine refuses the Allowlist (relative to
/// its spec: `rules[0].to[0].paths[1]: ...`), for the Allowlists derived
/// alone in enabled namespaces.
fn engine_refusals<'a>(allowlists: impl Iterator<Item = &'a Allowlist>) -> BTreeMap<(String, String), String> {
    let mut snapshot = Snapshot {
        trust_domain: crate::derive::DEFAULT_TRUST_DOMAIN.into(),
        ..Snapshot::default()
    };
    for a in allowlists {
        let ns = a.metadata.namespace.clone().unwrap_or_default();
        if !snapshot
            .namespaces
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(&ns))
        {
            let mut namespace = Namespace::default();
            namespace.metadata.name = Some(ns);
            namespace.metadata.labels = Some(BTreeMap::from([(ENFORCEMENT_LABEL.to_string(), "enabled".to_string())]));
            snapshot.namespaces.push(namespace);
        }
        snapshot.allowlists.push(a.clone());
    }
    let settings = Settings {
        url: "file:///meshward.wasm".into(),
        ..Settings::default()
    };
    let desired = derive(&snapshot.to_state(), &settings, Timestamp::UNIX_EPOCH);
    desired
        .statuses
        .iter()
        .filter_map(|s| {
            let c = s
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready" && c.status != "True")?;
            let message = c.message.as_str();
            let message = message
                .strip_suffix("; its workloads deny every request until it is fixed")
                .or_else(|| message.strip_suffix("; the last valid version stays in force"))
                .unwrap_or(message);
            Some(((s.namespace.clone(), s.name.clone()), message.to_string()))
        })
        .collect()
}

/// The AuthorizationPolicy field an Allowlist field came from
/// (`rules[0].to[1].paths[2]` → `spec.rules[0].to[1].operation.paths[2]`;
/// `when[i].header` → `when[i].key`).
fn istio_field(field: &str) -> String {
    let mut out = String::from("spec");
    for part in field.split('.') {
        out.push('.');
        match part {
            "header" => out.push_str("key"),
            p if p.starts_with("from[") => {
                out.push_str(p);
                out.push_str(".source");
            }
            p if p.starts_with("to[") => {
                out.push_str(p);
                out.push_str(".operation");
            }
            p => out.push_str(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_fields_map_to_istio_fields() {
        assert_eq!(
            istio_field("rules[0].to[1].paths[2]"),
            "spec.rules[0].to[1].operation.paths[2]"
        );
        assert_eq!(
            istio_field("rules[2].from[0].principals[1]"),
            "spec.rules[2].from[0].source.principals[1]"
        );
        assert_eq!(istio_field("rules[0].when[1].header"), "spec.rules[0].when[1].key");
    }
}
