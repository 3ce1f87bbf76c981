//! Loading a [`Snapshot`] from YAML manifests, for the offline commands.
//!
//! The inputs are files, directories (every `*.yaml`, `*.yml` and `*.json`
//! under them, recursively, in path order; hidden entries skipped) and `-`
//! for standard input. Each YAML document is read with the line of every
//! node kept, so that every problem names the file, the line and the field:
//!
//! ```text
//! examples/bookinfo/20-allowlists.yaml:15: Allowlist bookinfo/productpage: spec.rules[0].to[0].method: unknown field, did you mean `methods`?
//! ```
//!
//! A document is dispatched by `apiVersion` and `kind` into the typed objects
//! derivation reads; `kind: List` (what `kubectl get -o yaml` prints) is read
//! item by item. Nothing is dropped silently:
//!
//! * unknown fields are refused in every kind read (the Kubernetes types
//!   ignore them, so a typo such as `serviceAcountName` would silently become
//!   the `default` service account);
//! * a document without `apiVersion` or `kind`, in meshward's API group but
//!   not an `Allowlist` of `meshward.io/v1alpha1`, or whose kind is a
//!   misspelling of a kind read here (`AllowList`, `Deploymnet`, a
//!   `Deployment` of `v1`) is refused;
//! * the same object defined twice is refused, naming both places;
//! * a directory without manifests is refused.
//!
//! ConfigMaps are read, and those labelled
//! [`API_LABEL`](crate::apidesc::API_LABEL) hold the API descriptions
//! Allowlists name, as in the cluster. Documents of other kinds (Secrets,
//! Istio resources, ...) are listed in [`Loaded::ignored`]. Every problem is collected before loading fails, so
//! one run reports them all.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;
use thiserror::Error;

use crate::crd::Allowlist;
use crate::state::Snapshot;

/// The input name that means standard input.
pub const STDIN: &str = "-";

/// The file extensions read from directories.
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Where something is in the input: a file (or `<stdin>`) and a 1-based line
/// (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The file as named on the command line (joined to its directory), or
    /// `<stdin>`.
    pub file: String,
    /// The line, 1-based; 0 when unknown.
    pub line: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => f.write_str(&self.file),
            line => write!(f, "{}:{line}", self.file),
        }
    }
}

/// One problem with the manifests.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    /// The text is not valid YAML (or JSON).
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Position,
        /// What the parser says.
        message: String,
    },
    /// `apiVersion` or `kind` is missing, misspelled, or in meshward's API
    /// group but not one of its kinds.
    #[error("{at}: {}: {reason}", describe_kind(api_version, kind))]
    UnknownKind {
        /// Where the document starts.
        at: Position,
        /// Its `apiVersion` (empty when missing).
        api_version: String,
        /// Its `kind` (empty when missing).
        kind: String,
        /// Why it is refused, with the likely intended kind.
        reason: String,
    },
    /// A field does not fit the object's type (unknown, wrong type, bad value).
    #[error("{at}: {object}: {field}: {message}")]
    Invalid {
        /// Where the field is.
        at: Position,
        /// `Kind namespace/name` (`Kind name` for cluster-scoped kinds).
        object: String,
        /// The field's path (`spec.rules[0].to[0].method`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The same object is defined twice.
    #[error("{at}: {object} is defined again (first at {first})")]
    Duplicate {
        /// The second definition.
        at: Position,
        /// The first definition.
        first: Position,
        /// `Kind namespace/name`.
        object: String,
    },
}

impl Problem {
    /// Where the problem is.
    pub fn position(&self) -> &Position {
        match self {
            Self::Syntax { at, .. }
            | Self::UnknownKind { at, .. }
            | Self::Invalid { at, .. }
            | Self::Duplicate { at, .. } => at,
        }
    }
}

fn describe_kind(api_version: &str, kind: &str) -> String {
    match (api_version.is_empty(), kind.is_empty()) {
        (true, true) => "a document without apiVersion and kind".into(),
        (true, false) => format!("kind {kind} without apiVersion"),
        (false, true) => format!("apiVersion {api_version} without kind"),
        (false, false) => format!("{api_version} {kind}"),
    }
}

/// Every problem found, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why manifests could not be loaded.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path (`-` for standard input).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A directory holds no `*.yaml`, `*.yml` or `*.json` file.
    #[error("{}: no manifests (*.yaml, *.yml, *.json) in this directory or below", path.display())]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// No input was named.
    #[error("no manifests given: name files, directories or - (standard input)")]
    NoInput,
    /// Documents that cannot be read as written.
    #[error("{0}")]
    Problems(Problems),
}

/// One input text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The name used in messages: the path, or `<stdin>`.
    pub name: String,
    /// The text.
    pub text: String,
}

/// A document of a kind derivation does not read, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Where it starts.
    pub at: Position,
    /// `apiVersion kind namespace/name`.
    pub object: String,
}

/// What was loaded, and what was skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The objects derivation reads.
    pub snapshot: Snapshot,
    /// Documents of other kinds.
    pub ignored: Vec<Ignored>,
    /// Where each object read was defined, by `Kind namespace/name`.
    pub positions: BTreeMap<String, Position>,
}

/// Reads the inputs: files, directories (recursively) and `-` (standard
/// input, read once).
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<Source>, ManifestError> {
    if inputs.is_empty() {
        return Err(ManifestError::NoInput);
    }
    let mut sources = Vec::new();
    let mut stdin_read = false;
    for input in inputs {
        if input.as_os_str() == STDIN {
            if !stdin_read {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|source| ManifestError::Io {
                        path: input.clone(),
                        source,
                    })?;
                sources.push(Source {
                    name: "<stdin>".into(),
                    text,
                });
                stdin_read = true;
            }
            continue;
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ManifestError::Io { path, source }
        };
        let meta = std::fs::metadata(input).map_err(io(input))?;
        let paths = if meta.is_dir() {
            let mut found = Vec::new();
            files(input, &mut found)?;
            if found.is_empty() {
                return Err(ManifestError::EmptyDirectory { path: input.clone() });
            }
            found
        } else {
            // A file named explicitly is read whatever its extension.
            vec![input.clone()]
        };
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            sources.push(Source {
                name: path.display().to_string(),
                text,
            });
        }
    }
    Ok(sources)
}

/// The manifest files under `dir`, sorted, skipping hidden entries.
fn files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads every manifest of `inputs` (see [`read_inputs`]).
pub fn load(inputs: &[PathBuf], trust_domain: &str) -> Result<Loaded, ManifestError> {
    load_sources(&read_inputs(inputs)?, trust_domain)
}

/// Loads the manifests of `sources`: every problem of every source is
/// collected; any problem fails the load.
pub fn load_sources(sources: &[Source], trust_domain: &str) -> Result<Loaded, ManifestError> {
    let mut loader = Loader {
        loaded: Loaded::default(),
        problems: Vec::new(),
    };
    loader.loaded.snapshot.trust_domain = trust_domain.to_string();
    for source in sources {
        match documents(source) {
            Ok(docs) => {
                for doc in docs {
                    loader.object(&source.name, &doc, "");
                }
            }
            Err(p) => loader.problems.push(p),
        }
    }
    if !loader.problems.is_empty() {
        return Err(ManifestError::Problems(Problems(loader.problems)));
    }
    Ok(loader.loaded)
}

/// Why object `object` (`Kind namespace/name`) of `doc`, read at `at`,
/// cannot be taken: it has no name, or `seen` (objects read so far, by the
/// same key) holds it already. `None` when it is new.
pub(crate) fn identity_problem(
    doc: &Doc,
    at: &Position,
    object: &str,
    name: &str,
    seen: &BTreeMap<String, Position>,
) -> Option<Problem> {
    if name.is_empty() {
        return Some(Problem::Invalid {
            at: Position {
                line: doc.line("metadata"),
                ..at.clone()
            },
            object: object.to_string(),
            field: "metadata.name".into(),
            message: "required".into(),
        });
    }
    seen.get(object).map(|first| Problem::Duplicate {
        at: at.clone(),
        first: first.clone(),
        object: object.to_string(),
    })
}

/// A YAML node as read: the value, and the line of every key and item.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    /// The value, as JSON.
    pub value: Value,
    /// Lines by field path (`spec.rules[0].to`); `""` is the node itself.
    pub lines: BTreeMap<String, u32>,
}

impl Doc {
    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line(&self, path: &str) -> u32 {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return *line;
            }
            match p.rfind(['.', '[']) {
                Some(at) => p = &p[..at],
                None => return self.lines.get("").copied().unwrap_or(0),
            }
        }
    }

    /// The sub-document at `prefix` (a path of this one), with its lines.
    pub fn at(&self, prefix: &str, value: Value) -> Doc {
        let lines = self
            .lines
            .iter()
            .filter_map(|(k, line)| {
                let rest = k.strip_prefix(prefix)?;
                let rest = match rest.chars().next() {
                    None | Some('[') => rest,
                    Some('.') => rest.get(1..)?,
                    Some(_) => return None,
                };
                Some((rest.to_string(), *line))
            })
            .collect();
        Doc { value, lines }
    }
}

/// Parses `text` (a YAML stream) into its documents, with lines. Empty
/// documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Doc>, (u32, String)> {
    let nodes: Vec<Spanned<Node>> = serde_saphyr::from_multiple(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        (line as u32, syntax_message(&e))
    })?;
    Ok(nodes
        .into_iter()
        .filter(|n| !matches!(n.value, Node::Null))
        .map(|n| {
            let mut doc = Doc::default();
            let line = n.referenced.line() as u32;
            doc.value = n.value.into_value("", &mut doc.lines);
            doc.lines.insert(String::new(), line);
            doc
        })
        .collect())
}

/// The parser's message without its location (the caller names it).
fn syntax_message(e: &serde_saphyr::Error) -> String {
    let text = e.render_with_options(serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let first = text.lines().next().unwrap_or_default();
    match first.rfind(" at line ") {
        Some(at) => first[..at].to_string(),
        None => first.to_string(),
    }
}

fn documents(source: &Source) -> Result<Vec<Doc>, Problem> {
    parse_documents(&source.text).map_err(|(line, message)| Problem::Syntax {
        at: Position {
            file: source.name.clone(),
            line,
        },
        message,
    })
}

/// A YAML node with the location of each child, for [`Doc`].
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
}

impl Node {
    fn into_value(self, path: &str, lines: &mut BTreeMap<String, u32>) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Number(n) => Value::Number(n),
            Node::String(s) => Value::String(s),
            Node::Seq(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let p = format!("{path}[{i}]");
                        lines.insert(p.clone(), item.referenced.line() as u32);
                        item.value.into_value(&p, lines)
                    })
                    .collect(),
            ),
            Node::Map(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    let p = if path.is_empty() {
                        k.value.0.clone()
                    } else {
                        format!("{path}.{}", k.value.0)
                    };
                    lines.insert(p.clone(), k.referenced.line() as u32);
                    let value = v.value.into_value(&p, lines);
                    map.insert(k.value.0, value);
                }
                Value::Object(map)
            }
        }
    }
}

/// A mapping key: any scalar, as text.
#[derive(Debug)]
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Node::deserialize(d)? {
            Node::String(s) => Ok(Key(s)),
            Node::Number(n) => Ok(Key(n.to_string())),
            Node::Bool(b) => Ok(Key(b.to_string())),
            Node::Null => Ok(Key("null".into())),
            Node::Seq(_) | Node::Map(_) => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Number::from_f64(v)
            .map(Node::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a number JSON can hold")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// `value` as a YAML document, the way every command writes YAML: block
/// style, strings quoted where a YAML 1.1 reader (kubectl) would take them
/// for another type, long strings kept on one line, strings with line
/// breaks as literal blocks.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    let options = serde_saphyr::ser_options! {
        min_fold_chars: usize::MAX,
        folded_wrap_chars: usize::MAX,
    };
    let mut out = String::new();
    serde_saphyr::to_fmt_writer_with_options(&mut out, value, options)?;
    Ok(out)
}

/// A field that does not fit a type: its path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// The field's path (`spec.template.spec.serviceAcountName`); empty for
    /// the whole object.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Deserializes `original` into `T`, refusing fields `T` does not know: the
/// Kubernetes types ignore unknown fields, so the object is converted back and
/// the first field that did not survive is named. Also used by the tests that
/// check the install manifests.
pub fn strict<T: DeserializeOwned + Serialize>(original: &Value) -> Result<T, FieldError> {
    let typed: T = serde_path_to_error::deserialize(original).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        field_error(path, &e.inner().to_string())
    })?;
    let back = serde_json::to_value(&typed).map_err(|e| FieldError {
        path: String::new(),
        message: e.to_string(),
    })?;
    match first_dropped(original, &back, "") {
        Some(path) => Err(FieldError {
            path,
            message: "unknown field".into(),
        }),
        None => Ok(typed),
    }
}

/// A serde message in user terms: an unknown field is named in the path, and
/// the known ones are offered (the closest, if one is near).
fn field_error(path: String, message: &str) -> FieldError {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return FieldError {
            path,
            message: message.to_string(),
        };
    };
    let (name, rest) = rest.split_once('`').unwrap_or((rest, ""));
    let path = match path.is_empty() {
        true => name.to_string(),
        false if path.ends_with(name) => path,
        false => format!("{path}.{name}"),
    };
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let message = match closest(name, &expected) {
        Some(near) => format!("unknown field, did you mean `{near}`?"),
        None if expected.is_empty() => "unknown field".into(),
        None => format!("unknown field; the fields here are {}", expected.join(", ")),
    };
    FieldError { path, message }
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

/// The candidate nearest to `word` (case-insensitive equality, or an edit
/// distance of at most 1 for short words and 2 for longer ones), if any.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = if word.chars().count() <= 4 { 1 } else { 2 };
    candidates
        .iter()
        .map(|c| (distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row.first().copied().unwrap_or_default();
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or_default();
            let left = row.get(j).copied().unwrap_or_default();
            let value = (prev + usize::from(ca != *cb)).min(above + 1).min(left + 1);
            prev = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = value;
            }
        }
    }
    row.last().copied().unwrap_or_default()
}

/// The kinds derivation reads: `(apiVersion, kind)`.
pub const READ_KINDS: [(&str, &str); 9] = [
    ("v1", "Namespace"),
    ("v1", "Pod"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("v1", "ConfigMap"),
    ("meshward.io/v1alpha1", "Allowlist"),
];

/// meshward's API group.
const GROUP: &str = "meshward.io";

/// Kinds of Kubernetes that are close to a read kind yet real.
const REAL_KINDS: [&str; 3] = ["Node", "Secret", "Endpoints"];

/// What to do with a document of `(api_version, kind)`.
enum Dispatch {
    Read,
    Ignore,
    Refuse(String),
}

fn dispatch(api_version: &str, kind: &str) -> Dispatch {
    if READ_KINDS.contains(&(api_version, kind)) {
        return Dispatch::Read;
    }
    let kinds: Vec<&str> = READ_KINDS.iter().map(|(_, k)| *k).collect();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if group == GROUP || api_version == GROUP {
        return Dispatch::Refuse("meshward.io has one kind: apiVersion meshward.io/v1alpha1, kind Allowlist".into());
    }
    if REAL_KINDS.contains(&kind) {
        return Dispatch::Ignore;
    }
    match READ_KINDS.iter().find(|(_, k)| *k == kind) {
        Some((v, k)) => Dispatch::Refuse(format!("{k} is read as apiVersion {v}")),
        None => match closest(kind, &kinds) {
            Some(near) => {
                let v = READ_KINDS.iter().find(|(_, k)| *k == near).map_or("", |(v, _)| *v);
                Dispatch::Refuse(format!("unknown kind, did you mean {v} {near}?"))
            }
            None => Dispatch::Ignore,
        },
    }
}

struct Loader {
    loaded: Loaded,
    problems: Vec<Problem>,
}

impl Loader {
    /// Reads one object (or the items of a `List`) of `doc`, found at `path`
    /// of its document.
    fn object(&mut self, file: &str, doc: &Doc, path: &str) {
        let v = &doc.value;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let at = Position {
            file: file.to_string(),
            line: doc.line(""),
        };
        if api_version.is_empty() || kind.is_empty() {
            if !v.is_object() {
                self.problems.push(Problem::Syntax {
                    at,
                    message: format!(
                        "expected a Kubernetes object{}",
                        if path.is_empty() {
                            String::new()
                        } else {
                            format!(" at {path}")
                        }
                    ),
                });
                return;
            }
            self.problems.push(Problem::UnknownKind {
                at,
                api_version,
                kind,
                reason: "apiVersion and kind are required".into(),
            });
            return;
        }
        if kind == "List" || (kind.ends_with("List") && v.get("items").is_some_and(Value::is_array)) {
            let items = v.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for (i, item) in items.into_iter().enumerate() {
                let p = format!("items[{i}]");
                let sub = doc.at(&p, item);
                self.object(file, &sub, &p);
            }
            return;
        }
        let meta = |k: &str| {
            v.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let name = meta("name").unwrap_or_default();
        let namespace = (kind != "Namespace").then(|| meta("namespace").unwrap_or_else(|| "default".into()));
        let object = match &namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        match dispatch(&api_version, &kind) {
            Dispatch::Ignore => {
                self.loaded.ignored.push(Ignored {
                    at,
                    object: format!("{api_version} {object}"),
                });
                return;
            }
            Dispatch::Refuse(reason) => {
                self.problems.push(Problem::UnknownKind {
                    at,
                    api_version,
                    kind,
                    reason,
                });
                return;
            }
            Dispatch::Read => {}
        }
        if let Some(problem) = identity_problem(doc, &at, &object, &name, &self.loaded.positions) {
            self.problems.push(problem);
            return;
        }
        // Objects without a namespace are in `default`, as kubectl places them.
        let mut v = v.clone();
        if let (Some(ns), Some(m)) = (&namespace, v.get_mut("metadata").and_then(Value::as_object_mut)) {
            m.entry("namespace").or_insert_with(|| Value::String(ns.clone()));
        }
        match self.typed(&kind, &v) {
            Ok(()) => {
                self.loaded.positions.insert(object, at);
            }
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

    fn typed(&mut self, kind: &str, v: &Value) -> Result<(), FieldError> {
        let s = &mut self.loaded.snapshot;
        match kind {
            "Namespace" => strict(v).map(|o| s.namespaces.push(o)),
            "Pod" => strict(v).map(|o| s.pods.push(o)),
            "ServiceAccount" => strict(v).map(|o| s.service_accounts.push(o)),
            "Service" => strict(v).map(|o| s.services.push(o)),
            "Deployment" => strict(v).map(|o| s.deployments.push(o)),
            "StatefulSet" => strict(v).map(|o| s.stateful_sets.push(o)),
            "DaemonSet" => strict(v).map(|o| s.daemon_sets.push(o)),
            "ConfigMap" => strict(v).map(|o| s.config_maps.push(o)),
            _ => strict::<Allowlist>(v).map(|o| s.allowlists.push(o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Loaded, ManifestError> {
        load_sources(
            &[Source {
                name: "m.yaml".into(),
                text: text.into(),
            }],
            "cluster.local",
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match load_text(text) {
            Err(ManifestError::Problems(p)) => p.0.iter().map(ToString::to_string).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn lines_are_those_of_keys_and_items() {
        let docs = parse_documents("# c\na: 1\nb:\n  c: [x, y]\n  d:\n  - e: 2\n---\nz: {}\n").unwrap();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert_eq!(d.line(""), 2);
        assert_eq!(d.line("a"), 2);
        assert_eq!(d.line("b"), 3);
        assert_eq!(d.line("b.c"), 4);
        assert_eq!(d.line("b.d[0].e"), 6);
        assert_eq!(d.line("b.d[0].e.nothing"), 6, "nearest ancestor");
        assert_eq!(docs[1].line("z"), 8);
    }

    #[test]
    fn unknown_fields_name_line_and_path() {
        let text = "apiVersion: meshward.io/v1alpha1\nkind: Allowlist\nmetadata: {name: a, namespace: ns}\nspec:\n  rules:\n  - to:\n    - method: [GET]\n";
        assert_eq!(
            problems(text),
            ["m.yaml:7: Allowlist ns/a: spec.rules[0].to[0].method: unknown field, did you mean `methods`?"]
        );
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAcountName: x\n  containers: []\n";
        assert_eq!(
            problems(text),
            ["m.yaml:5: Pod default/p: spec.serviceAcountName: unknown field"]
        );
    }

    #[test]
    fn misspelled_kinds_are_refused_others_ignored() {
        let p = problems("apiVersion: meshward.io/v1alpha1\nkind: AllowList\nmetadata: {name: a}\n");
        assert!(p[0].starts_with("m.yaml:1: meshward.io/v1alpha1 AllowList: "), "{p:?}");
        let p = problems("apiVersion: meshward.io/v1beta1\nkind: Allowlist\nmetadata: {name: a}\n");
        assert!(p[0].contains("meshward.io/v1alpha1"), "{p:?}");
        let p = problems("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: a}\n");
        assert!(p[0].contains("did you mean apps/v1 Deployment?"), "{p:?}");
        let p = problems("apiVersion: v1\nkind: Deployment\nmetadata: {name: a}\n");
        assert!(p[0].contains("Deployment is read as apiVersion apps/v1"), "{p:?}");
        let p = problems("metadata: {name: a}\n");
        assert!(p[0].contains("apiVersion and kind are required"), "{p:?}");
        let loaded = load_text(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n",
        )
        .unwrap();
        assert_eq!(loaded.ignored.len(), 2);
        assert_eq!(loaded.ignored[1].at.line, 5);
    }

    #[test]
    fn lists_are_read_item_by_item() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: a, namespace: x}\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: b, namespace: x}\n  bogus: 1\n";
        assert_eq!(problems(text), ["m.yaml:10: ServiceAccount x/b: bogus: unknown field"]);
        let loaded = load_text(&text.replace("  bogus: 1\n", "")).unwrap();
        assert_eq!(loaded.snapshot.service_accounts.len(), 2);
    }

    #[test]
    fn duplicates_name_both_places() {
        let sa = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n";
        let err = load_sources(
            &[
                Source {
                    name: "one.yaml".into(),
                    text: sa.into(),
                },
                Source {
                    name: "two.yaml".into(),
                    text: format!("---\n{sa}"),
                },
            ],
            "cluster.local",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "two.yaml:2: ServiceAccount default/a is defined again (first at one.yaml:1)"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let p = problems("a: 1\nb: [\n");
        assert!(p[0].starts_with("m.yaml:"), "{p:?}");
        let p = problems("a: 1\na: 2\n");
        assert!(p[0].starts_with("m.yaml:2"), "duplicate key: {p:?}");
    }

    #[test]
    fn closest_words() {
        assert_eq!(closest("method", &["methods", "paths"]), Some("methods"));
        assert_eq!(closest("AllowList", &["Allowlist"]), Some("Allowlist"));
        assert_eq!(closest("Job", &["Pod"]), None);
        assert_eq!(closest("Deploymnet", &["Deployment"]), Some("Deployment"));
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
