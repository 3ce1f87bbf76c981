//! What Istio would generate, for the tests that claim Istio compatibility:
//! the `stats_config` istio-agent writes into every sidecar's bootstrap, and
//! readers of the configuration the project documents and ships for Istio
//! (also used by the control crate's offline checks of those files).
//!
//! istio-agent renders its bootstrap from a Go template
//! (`tools/packaging/common/envoy_bootstrap.json`); its `stats_config` part
//! is vendored in `data/` with its source, and [`stats_config`] renders it
//! with the values istio-agent passes for a sidecar without stats
//! annotations (`pkg/bootstrap/config.go`, `getStatsOptions`): the
//! `extraStatTags` of the mesh config, and the stats matcher's required
//! inclusions. The renderer knows exactly the template actions that part
//! uses (`range` over a list with `{{ $v }}` and `{{js $v}}`, and `if` on a
//! value that is unset here) and refuses anything else, so a new upstream
//! action cannot be silently mis-rendered.

use crate::scenario::workspace;

/// The vendored template (`data/istio-bootstrap-stats-config.json.tmpl`).
const TEMPLATE: &str = include_str!("../data/istio-bootstrap-stats-config.json.tmpl");

/// Stats-matcher prefixes istio-agent always includes
/// (`requiredEnvoyStatsMatcherInclusionPrefixes`): `wasm` covers the
/// `wasmcustom.` metrics of Wasm filters.
pub const REQUIRED_INCLUSION_PREFIXES: [&str; 5] = [
    "cluster_manager",
    "listener_manager",
    "server",
    "cluster.xds-grpc",
    "wasm",
];
/// Suffixes it includes (`rbacEnvoyStatsMatcherInclusionSuffix`; the
/// draining suffix only when `EXIT_ON_ZERO_ACTIVE_CONNECTIONS` is set).
pub const REQUIRED_INCLUSION_SUFFIXES: [&str; 4] = ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"];
/// Regexes it includes (`requiredEnvoyStatsMatcherInclusionRegexes`).
pub const REQUIRED_INCLUSION_REGEXES: [&str; 1] = [r"vhost\..*\.route\..*"];

/// The `"stats_config": {...},` member of the bootstrap istio-agent writes
/// for a sidecar of a mesh whose `meshConfig.defaultConfig.extraStatTags`
/// is `extra_stat_tags`.
pub fn stats_config(extra_stat_tags: &[&str]) -> String {
    let lists: [(&str, &[&str]); 4] = [
        ("extraStatTags", extra_stat_tags),
        ("inclusionPrefix", &REQUIRED_INCLUSION_PREFIXES),
        ("inclusionSuffix", &REQUIRED_INCLUSION_SUFFIXES),
        ("inclusionRegexps", &REQUIRED_INCLUSION_REGEXES),
    ];
    let text: String = TEMPLATE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    render(&text, &lists, None).unwrap_or_else(|e| panic!("rendering Istio's stats_config template: {e}"))
}

/// Renders `text`: `range` actions over `lists`, `if` actions as false (the
/// values they test, histogram buckets and metadata discovery, are unset for
/// a default sidecar), `$v` and `js $v` inside a range. `bound` is the range
/// variable in scope and its value.
fn render(text: &str, lists: &[(&str, &[&str])], bound: Option<(&str, &str)>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed action")?;
        let mut action = &after[..end];
        rest = &after[end + 2..];
        // `{{-` trims the whitespace before the action.
        if let Some(a) = action.strip_prefix('-') {
            action = a;
            out.truncate(out.trim_end().len());
        }
        let words: Vec<&str> = action.split_whitespace().collect();
        match words.as_slice() {
            ["range", _, var, ":=", list] => {
                let (body, after_end) = block(rest)?;
                rest = after_end;
                let var = var.trim_end_matches(',');
                let name = list.strip_prefix('.').ok_or(format!("range over {list}"))?;
                let values = lists
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
                    .ok_or(format!("no value for .{name}"))?;
                // Its `{{- end }}` trims the body's trailing whitespace.
                let body = body.trim_end();
                for value in values {
                    out.push_str(&render(body, lists, Some((var, value)))?);
                }
            }
            ["if", cond] if ["histogram_buckets", "metadata_discovery"].contains(&cond.trim_start_matches('.')) => {
                rest = block(rest)?.1;
            }
            [var] | ["js", var] if bound.is_some_and(|(b, _)| b == *var) => {
                let value = bound.map(|(_, v)| v).unwrap_or_default();
                if words[0] == "js" {
                    out.push_str(&js_escape(value));
                } else {
                    out.push_str(value);
                }
            }
            _ => return Err(format!("unknown action {{{{{action}}}}}")),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The body of a block action up to its `{{- end }}`, and the text after it
/// (blocks in this template do not nest).
fn block(text: &str) -> Result<(&str, &str), String> {
    let end = text.find("{{- end }}").ok_or("block without end")?;
    Ok((&text[..end], &text[end + "{{- end }}".len()..]))
}

/// Go's `js` template function for the characters a regex holds.
fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The YAML block of the Markdown file `file` (relative to the workspace)
/// that starts with the line `first_line`, up to its closing fence, parsed:
/// what the documentation tells users to configure, so tests check exactly
/// that.
pub fn yaml_block(file: &str, first_line: &str) -> serde_json::Value {
    let path = workspace().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text
        .find(&format!("```yaml\n{first_line}\n"))
        .unwrap_or_else(|| panic!("{file}: no yaml block starting with {first_line:?}"))
        + "```yaml\n".len();
    let len = text[start..]
        .find("```")
        .unwrap_or_else(|| panic!("{file}: unclosed block"));
    serde_saphyr::from_str(&text[start..start + len]).unwrap_or_else(|e| panic!("{file}: {first_line}: {e}"))
}

/// The mesh config snippet of a manifest under `istio/`: its comment lines
/// from `#   meshConfig:` on that start with `#   `, without that prefix
/// (a mesh config is not a Kubernetes object, so the manifests show it as a
/// comment).
pub fn mesh_config_snippet(text: &str) -> serde_json::Value {
    let yaml: Vec<&str> = text
        .lines()
        .skip_while(|l| l.trim_end() != "#   meshConfig:")
        .map_while(|l| l.strip_prefix("#   "))
        .collect();
    serde_saphyr::from_str(&yaml.join("\n")).unwrap_or_else(|e| panic!("mesh config snippet: {e}"))
}

/// The tags the documentation lists for `meshConfig.defaultConfig.extraStatTags`.
pub fn documented_extra_stat_tags() -> Vec<String> {
    let doc = yaml_block("docs/observability.md", "meshConfig:");
    doc["meshConfig"]["defaultConfig"]["extraStatTags"]
        .as_array()
        .unwrap_or_else(|| panic!("no meshConfig.defaultConfig.extraStatTags list in {doc:?}"))
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_string())
        .collect()
}

/// The documented bootstrap form: the `stats_config` YAML block, as the
/// `"stats_config": {...},` member of a JSON bootstrap.
pub fn documented_stats_config() -> String {
    let doc = yaml_block("docs/observability.md", "stats_config:");
    let json = serde_json::to_value(&doc["stats_config"]).unwrap_or_default();
    format!(r#""stats_config": {json},"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Istio's own golden file for `extra_stat_tags: ["dlp_success"]`
    /// (pkg/bootstrap/testdata/stats_inclusion_golden.json) has this entry.
    #[test]
    fn renders_extra_stat_tags_as_istio_does() {
        let rendered = stats_config(&["dlp_success", "meshward_verdict"]);
        let json: serde_json::Value =
            serde_json::from_str(&format!("{{{}}}", rendered.trim().trim_end_matches(','))).unwrap();
        let tags = json["stats_config"]["stats_tags"].as_array().unwrap();
        let at = |name: &str| tags.iter().position(|t| t["tag_name"] == name).unwrap();
        assert_eq!(tags[at("dlp_success")]["regex"], r"(dlp_success=\.=(.*?);\.;)");
        assert_eq!(
            tags[at("meshward_verdict")]["regex"],
            r"(meshward_verdict=\.=(.*?);\.;)"
        );
        // After Istio's own prefix tags, before its generic ones.
        assert!(at("mongo_prefix") < at("dlp_success") && at("meshward_verdict") < at("cache"));
        let patterns = &json["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"];
        assert!(patterns
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"prefix": "wasm"})));
        assert!(patterns
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"safe_regex": {"regex": r"vhost\..*\.route\..*"}})));
        assert_eq!(json["stats_config"]["use_all_default_tags"], false);
    }

    #[test]
    fn refuses_actions_it_does_not_know() {
        assert!(render("{{ .other }}", &[], None).is_err());
        assert!(render("{{- range $a, $x := .missing }}x{{- end }}", &[], None).is_err());
        assert_eq!(
            render(
                "[{{- range $a, $x := .l }} {{js $x}},{{- end }}]",
                &[("l", &["a\\b"])],
                None
            )
            .unwrap(),
            "[ a\\\\b,]"
        );
    }
}
