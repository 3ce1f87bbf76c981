//! OpenAPI 3.0 and 3.1 documents (YAML or JSON), reduced to their operations:
//! method, path template, operationId, tags, and the base paths of the
//! servers that serve them.
//!
//! Only the fields that say which requests an API serves are read (`openapi`,
//! `servers`, `paths` with their path items' and operations' `servers`,
//! `operationId`, `tags`, `webhooks` for their names, path items of
//! `components.pathItems` that `paths` refer to); serde skips schemas,
//! parameters, examples and descriptions without building them. A full
//! OpenAPI object model would build all of that, for nothing this module
//! reads.
//!
//! Each operation becomes one path pattern of the filter per base path:
//!
//! * the base path is the path part of a server URL (`https://api.example.com/v2`
//!   and `/v2` both give `/v2`; server variables take their defaults); the
//!   host does not count, in-mesh callers address the Service;
//! * operation-level `servers` replace path-level ones, which replace the
//!   document's; none at all is `/`;
//! * a fragment in a path (`/files/{id}#get_shared_link`) is dropped;
//! * a segment that is a whole parameter (`{petId}`) becomes `{*}` (one
//!   non-empty segment); a path whose parameter is part of a segment
//!   (`/files/{id}.json`, `/v1/{name}:cancel`) becomes a regular expression
//!   with `[^/]+` for the parameter, as does a path with a literal `*`; a
//!   path without parameters stays exact.
//!
//! Webhooks describe requests the API *sends*; they are not operations it
//! serves and are not admitted.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use thiserror::Error;

use super::list;

/// The HTTP methods of a path item, as OpenAPI names them.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One operation of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// How Allowlists name it: its `operationId`, else `METHOD /path`.
    pub key: String,
    /// The method, upper-case.
    pub method: String,
    /// The path as the document writes it (`/pet/{petId}`).
    pub path: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The filter's path patterns for it, one per distinct base path.
    pub patterns: Vec<String>,
}

/// The operations of an OpenAPI document, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenApi {
    operations: Vec<Operation>,
    /// Names and operationIds of webhooks.
    webhooks: BTreeSet<String>,
}

/// Why a text is not an OpenAPI document this module can read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DocumentError {
    /// Neither YAML nor JSON of the expected shape.
    #[error("not an OpenAPI document: {0}")]
    Syntax(String),
    /// `openapi` is not 3.x (a Swagger 2.0 document, say).
    #[error("openapi {0:?} is not OpenAPI 3.0 or 3.1")]
    Version(String),
    /// A server URL uses a variable it does not define with a default.
    #[error("server {url}: variable {variable} has no default")]
    Variable {
        /// The URL.
        url: String,
        /// The variable.
        variable: String,
    },
    /// A path item refers to something other than `#/components/pathItems/...`
    /// of the same document.
    #[error("paths[{path}]: $ref {reference} is not a path item of this document (bundle it first)")]
    Reference {
        /// The path.
        path: String,
        /// The reference.
        reference: String,
    },
    /// Two operations share an operationId.
    #[error("operationId {0} is used twice")]
    DuplicateId(String),
    /// A path does not start with `/`.
    #[error("paths[{0}]: a path starts with /")]
    Path(String),
}

/// Why an `openapi` entry's names do not fit the document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectError {
    /// No operation has that operationId (or `METHOD /path`).
    #[error("no operation {name}{} (has: {})", hint(suggestion), list(has))]
    UnknownOperation {
        /// Its index in `operations`.
        index: usize,
        /// The name.
        name: String,
        /// The closest name there is.
        suggestion: Option<String>,
        /// Every operation's key, sorted.
        has: Vec<String>,
    },
    /// The name is a webhook's: a request the API sends, not one it serves.
    #[error("{name} is a webhook (a request the API sends, not one it serves)")]
    Webhook {
        /// Its index in `operations`.
        index: usize,
        /// The name.
        name: String,
    },
    /// No operation carries that tag.
    #[error("no operation is tagged {tag} (tags: {})", list(has))]
    UnknownTag {
        /// Its index in `tags`.
        index: usize,
        /// The tag.
        tag: String,
        /// The tags operations carry, sorted.
        has: Vec<String>,
    },
    /// The document has no operation.
    #[error("the document has no operation")]
    Empty,
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(", did you mean {s}?"))
        .unwrap_or_default()
}

impl SelectError {
    /// The field of the `openapi` entry at fault: `operations[i]` or `tags[i]`.
    pub fn field(&self) -> String {
        match self {
            Self::UnknownOperation { index, .. } | Self::Webhook { index, .. } => format!("operations[{index}]"),
            Self::UnknownTag { index, .. } => format!("tags[{index}]"),
            Self::Empty => "operations".into(),
        }
    }
}

/// What an `openapi` entry selects.
#[derive(Debug, Clone, Copy)]
pub enum Selection<'a> {
    /// operationIds or `METHOD /path`; `["*"]` = every operation.
    Operations(&'a [String]),
    /// Operations carrying any of these tags.
    Tags(&'a [String]),
}

#[derive(Deserialize)]
struct DocWire {
    #[serde(default)]
    openapi: Option<String>,
    #[serde(default)]
    swagger: Option<String>,
    #[serde(default)]
    servers: Option<Vec<ServerWire>>,
    #[serde(default)]
    paths: Option<BTreeMap<String, PathItemWire>>,
    #[serde(default)]
    webhooks: Option<BTreeMap<String, PathItemWire>>,
    #[serde(default)]
    components: Option<ComponentsWire>,
}

#[derive(Deserialize)]
struct ComponentsWire {
    #[serde(default, rename = "pathItems")]
    path_items: Option<BTreeMap<String, PathItemWire>>,
}

#[derive(Deserialize, Clone)]
struct ServerWire {
    url: String,
    #[serde(default)]
    variables: Option<BTreeMap<String, VariableWire>>,
}

#[derive(Deserialize, Clone)]
struct VariableWire {
    #[serde(default)]
    default: Option<String>,
}

#[derive(Deserialize, Clone, Default)]
struct OperationWire {
    #[serde(default, rename = "operationId")]
    operation_id: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    servers: Option<Vec<ServerWire>>,
}

#[derive(Deserialize, Clone, Default)]
struct PathItemWire {
    #[serde(default, rename = "$ref")]
    reference: Option<String>,
    #[serde(default)]
    servers: Option<Vec<ServerWire>>,
    #[serde(default)]
    get: Option<OperationWire>,
    #[serde(default)]
    put: Option<OperationWire>,
    #[serde(default)]
    post: Option<OperationWire>,
    #[serde(default)]
    delete: Option<OperationWire>,
    #[serde(default)]
    options: Option<OperationWire>,
    #[serde(default)]
    head: Option<OperationWire>,
    #[serde(default)]
    patch: Option<OperationWire>,
    #[serde(default)]
    trace: Option<OperationWire>,
}

impl PathItemWire {
    fn operations(&self) -> impl Iterator<Item = (&'static str, &OperationWire)> + '_ {
        let ops = [
            &self.get,
            &self.put,
            &self.post,
            &self.delete,
            &self.options,
            &self.head,
            &self.patch,
            &self.trace,
        ];
        METHODS.into_iter().zip(ops).filter_map(|(m, o)| Some((m, o.as_ref()?)))
    }
}

/// Reads YAML, or JSON (a text starting with `{`), into `T`.
fn read<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| e.to_string());
    }
    // Large documents hold far more nodes than a configuration file.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 50_000_000;
    budget.max_events = 100_000_000;
    budget.max_depth = 1_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options(text, options).map_err(|e| e.to_string())
}

/// The base path of a server URL: its path part, variables replaced by their
/// defaults, without a trailing `/` (`""` for the root).
fn base_path(server: &ServerWire) -> Result<String, DocumentError> {
    let mut url = String::with_capacity(server.url.len());
    let mut rest = server.url.as_str();
    while let Some(open) = rest.find('{') {
        url.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('}') else {
            url.push_str(rest.get(open..).unwrap_or_default());
            rest = "";
            break;
        };
        let name = after.get(..close).unwrap_or_default();
        let default = server
            .variables
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.default.as_deref())
            .ok_or_else(|| DocumentError::Variable {
                url: server.url.clone(),
                variable: name.to_string(),
            })?;
        url.push_str(default);
        rest = after.get(close + 1..).unwrap_or_default();
    }
    url.push_str(rest);
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let path = match url.find("://") {
        Some(i) => {
            let after = url.get(i + 3..).unwrap_or_default();
            after.find('/').and_then(|j| after.get(j..)).unwrap_or_default()
        }
        // `//host/path`: scheme-relative.
        None if url.starts_with("//") => {
            let after = url.get(2..).unwrap_or_default();
            after.find('/').and_then(|j| after.get(j..)).unwrap_or_default()
        }
        None => url,
    };
    // Relative to the document's location: taken from the root. `.`, `..`
    // and empty segments resolved, as a client resolves them.
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    Ok(segments.iter().map(|s| format!("/{s}")).collect())
}

/// A regular expression matching `literal` exactly.
fn escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The filter's path pattern for `path` (an OpenAPI path template) under
/// `base`. A fragment (`/files/{id}#get_shared_link`, how some documents
/// tell apart operations of one path and method) is dropped: requests never
/// carry one.
pub fn pattern(base: &str, path: &str) -> String {
    let path = path.split('#').next().unwrap_or_default();
    let full = format!("{base}{path}");
    // `*` is the filter's wildcard: a literal one needs a regular expression.
    let literal_star = full.contains('*');
    if !full.contains('{') && !literal_star {
        return full;
    }
    let segments: Vec<&str> = full.split('/').collect();
    let whole = |s: &str| s.starts_with('{') && s.ends_with('}') && s.matches('{').count() == 1;
    if !literal_star && segments.iter().all(|s| !s.contains('{') || whole(s)) {
        return segments
            .iter()
            .map(|s| if whole(s) { "{*}" } else { s })
            .collect::<Vec<_>>()
            .join("/");
    }
    let mut regex = String::from("regex:");
    let mut rest = full.as_str();
    while let Some(open) = rest.find('{') {
        regex.push_str(&escape(rest.get(..open).unwrap_or_default()));
        match rest.get(open..).and_then(|r| r.find('}')) {
            Some(close) => {
                regex.push_str("[^/]+");
                rest = rest.get(open + close + 1..).unwrap_or_default();
            }
            None => {
                regex.push_str(&escape(rest.get(open..).unwrap_or_default()));
                rest = "";
            }
        }
    }
    regex.push_str(&escape(rest));
    regex
}

impl OpenApi {
    /// Parses a document (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, DocumentError> {
        let doc: DocWire = read(text).map_err(DocumentError::Syntax)?;
        match (&doc.openapi, &doc.swagger) {
            (Some(v), _) if v.starts_with("3.0") || v.starts_with("3.1") => {}
            (Some(v), _) => return Err(DocumentError::Version(v.clone())),
            (None, Some(v)) => return Err(DocumentError::Version(format!("swagger {v}"))),
            (None, None) => return Err(DocumentError::Syntax("no `openapi` field".into())),
        }
        let root_servers = doc.servers.clone().unwrap_or_default();
        let components = doc.components.and_then(|c| c.path_items).unwrap_or_default();
        let mut operations = Vec::new();
        let mut ids = BTreeSet::new();
        for (path, item) in doc.paths.unwrap_or_default() {
            if !path.starts_with('/') {
                return Err(DocumentError::Path(path));
            }
            let item = match &item.reference {
                None => item,
                Some(r) => r
                    .strip_prefix("#/components/pathItems/")
                    .and_then(|name| components.get(name))
                    .cloned()
                    .ok_or_else(|| DocumentError::Reference {
                        path: path.clone(),
                        reference: r.clone(),
                    })?,
            };
            for (method, op) in item.operations() {
                let servers = op.servers.as_ref().or(item.servers.as_ref()).unwrap_or(&root_servers);
                let mut bases = BTreeSet::new();
                for s in servers {
                    bases.insert(base_path(s)?);
                }
                if bases.is_empty() {
                    bases.insert(String::new());
                }
                let method = method.to_ascii_uppercase();
                let key = match &op.operation_id {
                    Some(id) => {
                        if !ids.insert(id.clone()) {
                            return Err(DocumentError::DuplicateId(id.clone()));
                        }
                        id.clone()
                    }
                    None => format!("{method} {path}"),
                };
                let mut patterns: Vec<String> = bases.iter().map(|b| pattern(b, &path)).collect();
                patterns.dedup();
                operations.push(Operation {
                    key,
                    method,
                    path: path.clone(),
                    tags: op.tags.clone().unwrap_or_default(),
                    patterns,
                });
            }
        }
        operations.sort_by(|a, b| a.key.cmp(&b.key));
        let mut webhooks = BTreeSet::new();
        for (name, item) in doc.webhooks.unwrap_or_default() {
            for (_, op) in item.operations() {
                webhooks.extend(op.operation_id.clone());
            }
            webhooks.insert(name);
        }
        Ok(Self { operations, webhooks })
    }

    /// Every operation, sorted by key.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// An operation by operationId, or by `METHOD /path` (any operation).
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        if let Ok(i) = self.operations.binary_search_by(|o| o.key.as_str().cmp(name)) {
            return self.operations.get(i);
        }
        let (method, path) = name.split_once(' ')?;
        self.operations.iter().find(|o| o.method == method && o.path == path)
    }

    /// The operations an `openapi` entry selects, sorted by key, each once.
    pub fn select(&self, selection: Selection<'_>) -> Result<Vec<&Operation>, SelectError> {
        if self.operations.is_empty() {
            return Err(SelectError::Empty);
        }
        let mut out: BTreeMap<&str, &Operation> = BTreeMap::new();
        match selection {
            Selection::Operations([only]) if only == "*" => {
                return Ok(self.operations.iter().collect());
            }
            Selection::Operations(names) => {
                for (index, name) in names.iter().enumerate() {
                    match self.operation(name) {
                        Some(op) => {
                            out.insert(&op.key, op);
                        }
                        None if self.webhooks.contains(name) => {
                            return Err(SelectError::Webhook {
                                index,
                                name: name.clone(),
                            })
                        }
                        None => {
                            let keys: Vec<&str> = self.operations.iter().map(|o| o.key.as_str()).collect();
                            return Err(SelectError::UnknownOperation {
                                index,
                                name: name.clone(),
                                suggestion: crate::manifests::closest(name, &keys).map(str::to_string),
                                has: keys.iter().map(|k| k.to_string()).collect(),
                            });
                        }
                    }
                }
            }
            Selection::Tags(tags) => {
                for (index, tag) in tags.iter().enumerate() {
                    let tagged: Vec<&Operation> = self.operations.iter().filter(|o| o.tags.contains(tag)).collect();
                    if tagged.is_empty() {
                        let has: BTreeSet<&String> = self.operations.iter().flat_map(|o| o.tags.iter()).collect();
                        return Err(SelectError::UnknownTag {
                            index,
                            tag: tag.clone(),
                            has: has.into_iter().cloned().collect(),
                        });
                    }
                    for op in tagged {
                        out.insert(&op.key, op);
                    }
                }
            }
        }
        Ok(out.into_values().collect())
    }
}

/// One `to` entry of the filter's configuration for selected operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodPaths {
    /// The methods, sorted.
    pub methods: Vec<String>,
    /// The path patterns whose selected operations have exactly these
    /// methods, sorted.
    pub paths: Vec<String>,
    /// The document's concrete paths that a template of `paths` also
    /// matches and that `paths` does not hold itself: OpenAPI matches a
    /// concrete path before a template (`/pet/findByStatus` is not
    /// `/pet/{petId}`), so the template must not admit them. Sorted; empty
    /// when none.
    pub not_paths: Vec<String>,
}

/// Whether the template `template` (segments of `{*}` and literals) matches
/// the concrete path `path`.
fn template_matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some("{*}"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The `to` entries of the filter's configuration that admit exactly the
/// `selected` operations of `doc`: the paths of each entry share the same
/// methods, so that no entry admits a method on a path the document does
/// not give it, and a template does not admit the document's concrete paths
/// it overlaps. Sorted, deterministic.
pub fn method_paths(doc: &OpenApi, selected: &[&Operation]) -> Vec<MethodPaths> {
    let mut by_pattern: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for op in selected {
        for p in &op.patterns {
            by_pattern.entry(p).or_default().insert(&op.method);
        }
    }
    let mut by_methods: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (pattern, methods) in by_pattern {
        let methods: Vec<String> = methods.into_iter().map(str::to_string).collect();
        by_methods.entry(methods).or_default().push(pattern.to_string());
    }
    let concrete: BTreeSet<&str> = doc
        .operations
        .iter()
        .flat_map(|o| o.patterns.iter())
        .map(String::as_str)
        .filter(|p| !p.contains('{') && !p.starts_with("regex:"))
        .collect();
    by_methods
        .into_iter()
        .map(|(methods, paths)| {
            // A concrete path of the entry itself is admitted with the same
            // methods: excluding it would deny an operation selected.
            let not_paths = concrete
                .iter()
                .filter(|c| !paths.iter().any(|p| p == *c))
                .filter(|c| {
                    paths
                        .iter()
                        .any(|t| t.contains("{*}") && !t.starts_with("regex:") && template_matches(t, c))
                })
                .map(|c| c.to_string())
                .collect();
            MethodPaths {
                methods,
                paths,
                not_paths,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r##"
openapi: 3.1.0
info: {title: orders, version: "1"}
servers:
- url: https://{region}.api.example.com:{port}/orders/{version}/
  variables:
    region: {default: eu}
    port: {default: "443"}
    version: {default: v2, enum: [v1, v2]}
- url: /orders/v2
paths:
  /orders:
    get: {operationId: listOrders, tags: [public]}
    post: {operationId: createOrder}
  /orders/{orderId}:
    servers: [{url: "internal/"}]
    get: {operationId: getOrder, tags: [public, reads]}
    delete:
      servers: [{url: "http://admin.example.com"}]
  /orders/{orderId}/lines/{line}.json:
    get: {tags: [reads]}
  /health:
    $ref: "#/components/pathItems/Health"
webhooks:
  orderShipped:
    post: {operationId: notifyShipped}
components:
  pathItems:
    Health:
      get: {operationId: health}
  schemas:
    Order: {type: object, properties: {id: {type: string}}}
"##;

    fn doc() -> OpenApi {
        OpenApi::parse(DOC).unwrap()
    }

    fn keys(ops: &[&Operation]) -> Vec<String> {
        ops.iter().map(|o| o.key.clone()).collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn operations_get_their_servers_base_paths_and_templates() {
        let doc = doc();
        let by_key = |k: &str| doc.operation(k).unwrap();
        // Both document servers give /orders/v2 (the variables' defaults,
        // the trailing slash dropped): one pattern.
        assert_eq!(by_key("listOrders").patterns, ["/orders/v2/orders"]);
        // Path-level servers replace the document's; a relative URL is
        // taken from the root.
        assert_eq!(by_key("getOrder").patterns, ["/internal/orders/{*}"]);
        // Operation-level servers replace the path's; a URL without a path is /.
        let delete = by_key("DELETE /orders/{orderId}");
        assert_eq!(
            (delete.method.as_str(), delete.patterns.as_slice()),
            ("DELETE", &["/orders/{*}".to_string()][..])
        );
        // A parameter inside a segment: a regular expression.
        assert_eq!(
            by_key("GET /orders/{orderId}/lines/{line}.json").patterns,
            ["regex:/orders/v2/orders/[^/]+/lines/[^/]+\\.json"]
        );
        // A path item by $ref into components.
        assert_eq!(by_key("health").patterns, ["/orders/v2/health"]);
        assert_eq!(
            doc.operations().iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            [
                "DELETE /orders/{orderId}",
                "GET /orders/{orderId}/lines/{line}.json",
                "createOrder",
                "getOrder",
                "health",
                "listOrders"
            ]
        );
    }

    #[test]
    fn selections_by_id_method_and_path_tag_and_star() {
        let doc = doc();
        let ops = names(&["getOrder", "GET /orders", "getOrder"]);
        assert_eq!(
            keys(&doc.select(Selection::Operations(&ops)).unwrap()),
            ["getOrder", "listOrders"]
        );
        let tags = names(&["reads"]);
        assert_eq!(
            keys(&doc.select(Selection::Tags(&tags)).unwrap()),
            ["GET /orders/{orderId}/lines/{line}.json", "getOrder"]
        );
        assert_eq!(doc.select(Selection::Operations(&names(&["*"]))).unwrap().len(), 6);
    }

    #[test]
    fn unknown_names_webhooks_and_tags_are_errors_listing_what_exists() {
        let doc = doc();
        let e = doc
            .select(Selection::Operations(&names(&["listOrders", "getOrdr"])))
            .unwrap_err();
        assert_eq!(e.field(), "operations[1]");
        assert_eq!(
            e.to_string(),
            "no operation getOrdr, did you mean getOrder? (has: DELETE /orders/{orderId}, \
             GET /orders/{orderId}/lines/{line}.json, createOrder, getOrder, health, listOrders)"
        );
        let e = doc
            .select(Selection::Operations(&names(&["notifyShipped"])))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "notifyShipped is a webhook (a request the API sends, not one it serves)"
        );
        let e = doc.select(Selection::Tags(&names(&["public", "writes"]))).unwrap_err();
        assert_eq!(e.field(), "tags[1]");
        assert_eq!(e.to_string(), "no operation is tagged writes (tags: public, reads)");
    }

    #[test]
    fn entries_group_paths_by_their_exact_methods() {
        let doc = doc();
        let all = doc.select(Selection::Operations(&names(&["*"]))).unwrap();
        let entries: Vec<(Vec<String>, Vec<String>)> = method_paths(&doc, &all)
            .into_iter()
            .map(|e| (e.methods, e.paths))
            .collect();
        assert_eq!(
            entries,
            [
                (names(&["DELETE"]), names(&["/orders/{*}"])),
                (
                    names(&["GET"]),
                    names(&[
                        "/internal/orders/{*}",
                        "/orders/v2/health",
                        "regex:/orders/v2/orders/[^/]+/lines/[^/]+\\.json"
                    ])
                ),
                (names(&["GET", "POST"]), names(&["/orders/v2/orders"])),
            ]
        );
    }

    #[test]
    fn templates_do_not_admit_the_concrete_paths_they_overlap() {
        let doc = OpenApi::parse(
            "openapi: 3.0.0\npaths:\n  /pet/{petId}: {get: {operationId: get}, delete: {operationId: del}}\n  \
             /pet/findByStatus: {get: {operationId: find}}\n  /pet/{petId}/photo: {get: {operationId: photo}}\n",
        )
        .unwrap();
        let ops = names(&["del"]);
        let entries = method_paths(&doc, &doc.select(Selection::Operations(&ops)).unwrap());
        assert_eq!(
            entries,
            [MethodPaths {
                methods: names(&["DELETE"]),
                paths: names(&["/pet/{*}"]),
                not_paths: names(&["/pet/findByStatus"]),
            }]
        );
        // Selected with the template and the same methods, the concrete path
        // is in the same entry: it must not be excluded from it.
        let ops = names(&["get", "find"]);
        let entries = method_paths(&doc, &doc.select(Selection::Operations(&ops)).unwrap());
        assert_eq!(
            entries,
            [MethodPaths {
                methods: names(&["GET"]),
                paths: names(&["/pet/findByStatus", "/pet/{*}"]),
                not_paths: Vec::new(),
            }]
        );
        assert!(template_matches("/a/{*}/b", "/a/x/b"));
        assert!(!template_matches("/a/{*}/b", "/a//b"));
        assert!(!template_matches("/a/{*}", "/a/x/b"));
    }

    #[test]
    fn documents_that_cannot_be_read_say_why() {
        let e = OpenApi::parse("swagger: \"2.0\"\npaths: {}\n").unwrap_err();
        assert_eq!(e.to_string(), "openapi \"swagger 2.0\" is not OpenAPI 3.0 or 3.1");
        let e = OpenApi::parse("openapi: 3.0.0\nservers: [{url: \"https://{host}/v1\"}]\npaths: {/a: {get: {}}}\n")
            .unwrap_err();
        assert_eq!(e.to_string(), "server https://{host}/v1: variable host has no default");
        let e = OpenApi::parse("openapi: 3.1.0\npaths: {/a: {$ref: \"other.yaml#/x\"}}\n").unwrap_err();
        assert!(e.to_string().contains("bundle it first"), "{e}");
        let e = OpenApi::parse("openapi: 3.0.0\npaths: {/a: {get: {operationId: x}}, /b: {get: {operationId: x}}}\n")
            .unwrap_err();
        assert_eq!(e.to_string(), "operationId x is used twice");
        assert!(OpenApi::parse("{\"openapi\": \"3.0.0\", \"paths\": [").is_err());
        assert!(OpenApi::parse("just text").is_err());
        // Relative URLs resolve `.` and `..`.
        let rel =
            OpenApi::parse("openapi: 3.0.0\nservers: [{url: ./v1/}, {url: ../v2}]\npaths: {/a: {get: {}}}\n").unwrap();
        assert_eq!(rel.operations()[0].patterns, ["/v1/a", "/v2/a"]);
        // JSON is read too; no servers is /.
        let json = OpenApi::parse(r#"{"openapi": "3.0.3", "paths": {"/a/{b}": {"get": {}}}}"#).unwrap();
        assert_eq!(json.operations()[0].patterns, ["/a/{*}"]);
    }

    #[test]
    fn fragments_are_dropped_and_regex_literals_escaped() {
        assert_eq!(pattern("/2.0", "/files/{file_id}#get_shared_link"), "/2.0/files/{*}");
        assert_eq!(pattern("", "/oauth2/token#refresh"), "/oauth2/token");
        assert_eq!(pattern("/v1", "/{name}:cancel"), "regex:/v1/[^/]+:cancel");
        assert_eq!(pattern("", "/a+b/{x}.(y)"), "regex:/a\\+b/[^/]+\\.\\(y\\)");
        // A literal `*` is not the filter's wildcard.
        assert_eq!(pattern("", "/files/*"), "regex:/files/\\*");
        assert_eq!(pattern("", "/files/*/{id}"), "regex:/files/\\*/[^/]+");
    }
}
