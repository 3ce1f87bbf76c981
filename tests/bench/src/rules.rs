//! The allowlist every variant enforces, and the requests sent.
//!
//! Owned by the configuration half of the harness. Interface (keep it):
//! `rules(n)`, `allowed_request(&rules)`, `denied_request()`.

/// A path pattern of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Exact path.
    Exact(String),
    /// Plain string prefix.
    Prefix(String),
    /// A template with `{*}` (one segment), e.g. `/api/v3/items/{*}/detail`.
    Template(String),
    /// A regular expression over the whole path (RE2 syntax, no anchors).
    Regex(String),
}

/// One rule: any of `methods` on a path matching `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allowed methods.
    pub methods: Vec<String>,
    /// The path pattern.
    pub path: PathPattern,
}

/// `n` rules, a deterministic mix of exact, prefix, template and regex paths.
pub fn rules(n: usize) -> Vec<Rule> {
    let _ = n;
    Vec::new()
}

/// `(method, path)` admitted by the last rule of `rules` and by no other.
pub fn allowed_request(rules: &[Rule]) -> (String, String) {
    let _ = rules;
    (String::new(), String::new())
}

/// `(method, path)` admitted by no rule.
pub fn denied_request() -> (String, String) {
    (String::new(), String::new())
}
