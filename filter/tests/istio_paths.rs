//! Conformance with Istio's path templates: every case of
//! `data/istio_path_templates.json`, transcribed from Istio's
//! AuthorizationPolicy reference, its validator and its tests, its
//! integration tests, and Envoy's `uri_template` tests (each case names its
//! source), run through the engine.
//!
//! A case says what Istio does. Where meshward does otherwise the case names
//! the difference, and that difference must be a row of the "Differences
//! from Istio" table in `docs/configuration.md`: nothing else may differ.
//! `tests/e2e/tests/istio_paths.rs` checks the same matching cases against
//! Envoy's own matcher, configured as Istio configures it.
// Test code: a failed expectation should panic.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use meshward_filter::{Engine, Verdict};
use serde::Deserialize;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use common::{evaluator, get, one_policy, verdict};

const DATA: &str = include_str!("data/istio_path_templates.json");
const DOCS: &str = include_str!("../../docs/configuration.md");

#[derive(Debug, Deserialize)]
struct Data {
    sources: std::collections::BTreeMap<String, String>,
    valid: Vec<ValidCase>,
    #[serde(rename = "match")]
    matches: Vec<MatchCase>,
}

/// Whether a path pattern is valid.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidCase {
    pattern: String,
    /// Istio accepts it (its validator, and Envoy's parser after Istio's
    /// translation).
    istio: bool,
    source: String,
    /// For a refusal: the words of Istio's rule, which meshward's message
    /// quotes.
    rule: Option<String>,
    /// Where meshward differs: whether it accepts the pattern.
    meshward: Option<bool>,
    difference: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
}

/// Whether a template admits a request path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchCase {
    template: String,
    path: String,
    istio: bool,
    source: String,
    /// Where meshward differs: "allow", "deny" or "reject" (400).
    meshward: Option<String>,
    difference: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
}

fn data() -> Data {
    serde_json::from_str(DATA).expect("istio_path_templates.json")
}

/// The ids of the "Differences from Istio" table: the first cell of each
/// row, in backquotes.
fn documented_differences() -> Vec<String> {
    let section = DOCS
        .split_once("### Differences from Istio")
        .expect("docs/configuration.md has a \"Differences from Istio\" section")
        .1;
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1)?.trim().strip_prefix('`')?.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Every case names a known source and, where meshward differs, a
/// documented difference; a difference names no case where meshward agrees.
#[test]
fn cases_name_their_source_and_documented_differences() {
    let data = data();
    let documented = documented_differences();
    assert!(documented.len() >= 4, "{documented:?}");
    let cases = data
        .valid
        .iter()
        .map(|c| (&c.source, &c.difference, c.meshward.is_some()))
        .chain(
            data.matches
                .iter()
                .map(|c| (&c.source, &c.difference, c.meshward.is_some())),
        );
    for (source, difference, differs) in cases {
        assert!(data.sources.contains_key(source), "unknown source {source}");
        assert_eq!(
            difference.is_some(),
            differs,
            "a difference goes with meshward's outcome"
        );
        if let Some(d) = difference {
            assert!(
                documented.contains(d),
                "difference {d:?} is not in the docs table {documented:?}"
            );
        }
    }
    // Each documented difference is exercised by some case.
    for d in &documented {
        let used = data.valid.iter().any(|c| c.difference.as_ref() == Some(d))
            || data.matches.iter().any(|c| c.difference.as_ref() == Some(d));
        assert!(used, "documented difference {d:?} has no conformance case");
    }
}

#[test]
fn validity_as_istio_validates() {
    let data = data();
    assert!(data.valid.len() >= 40);
    for case in &data.valid {
        let want = case.meshward.unwrap_or(case.istio);
        let json = one_policy(&format!(
            r#"[{{"to":[{{"paths":[{}]}}]}}]"#,
            serde_json::to_string(&case.pattern).unwrap()
        ));
        let got = Engine::from_json(json.as_bytes());
        assert_eq!(got.is_ok(), want, "{case:?}: {:?}", got.err());
        if let (Err(e), Some(rule)) = (&got, &case.rule) {
            let message = e.to_string();
            assert!(
                message.contains(rule.as_str()),
                "{case:?}: the message does not quote Istio's rule: {message}"
            );
        }
    }
}

#[test]
fn matching_as_istio_matches() {
    let data = data();
    assert!(data.matches.len() >= 40);
    let mut allowed = 0;
    for case in &data.matches {
        let want = match case.meshward.as_deref() {
            None if case.istio => Verdict::Allow,
            None => Verdict::Deny,
            Some("allow") => Verdict::Allow,
            Some("deny") => Verdict::Deny,
            Some("reject") => Verdict::Reject,
            Some(other) => panic!("{case:?}: unknown outcome {other}"),
        };
        let json = one_policy(&format!(
            r#"[{{"to":[{{"paths":[{}]}}]}}]"#,
            serde_json::to_string(&case.template).unwrap()
        ));
        let mut ev = evaluator(&json);
        assert_eq!(verdict(&mut ev, &get(&case.path)), want, "{case:?}");
        allowed += usize::from(want == Verdict::Allow);
        // As a negative pattern, the template excludes exactly what it
        // matches.
        let json = one_policy(&format!(
            r#"[{{"to":[{{"notPaths":[{}]}}]}}]"#,
            serde_json::to_string(&case.template).unwrap()
        ));
        let mut ev = evaluator(&json);
        let negated = match want {
            Verdict::Allow => Verdict::Deny,
            Verdict::Deny => Verdict::Allow,
            other => other,
        };
        assert_eq!(verdict(&mut ev, &get(&case.path)), negated, "notPaths: {case:?}");
    }
    assert!(allowed >= 20, "too few allowed cases: {allowed}");
}
