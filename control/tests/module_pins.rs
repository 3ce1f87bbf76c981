//! Every `sha256` the repository shows an operator (manifests, the chart's
//! values, Dockerfiles, and the code blocks of the docs) follows the rule
//! Istio applies for its URL's scheme
//! ([`meshward_control::derive::check_module`]): for `oci://` the image
//! manifest's digest, for `http(s)://` the module's sha256. A real digest
//! must fit its URL; a placeholder must say which digest it stands for
//! (`<image manifest digest>` or `<plugin.wasm sha256>`), so a reader cannot
//! copy the wrong one, which with FAIL_CLOSE denies a whole namespace. Every
//! URL shown must load as intended too (no unpinned `:latest` without
//! `--allow-latest`).
//!
//! The URL a `sha256` belongs to is the `url:` key or `--url` flag of the
//! same unit: the same YAML document (files), the same code block (markdown),
//! or the whole file (Dockerfiles); without one, the `--url` default.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

use meshward_control::derive::{check_module, DEFAULT_URL};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files an operator reads, relative to the workspace.
fn files() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut paths = vec![workspace().join("README.md"), workspace().join("CONTRIBUTING.md")];
    for dir in ["docs", "examples", "istio", "docker"] {
        walk(&workspace().join(dir), &mut paths);
    }
    let mut out: Vec<String> = paths
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".md")
                || name.ends_with(".yaml")
                || name.ends_with(".yml")
                || name.ends_with(".json")
                || name.ends_with("Dockerfile")
        })
        .map(|p| p.strip_prefix(workspace()).unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The units of a file: (first line number, lines).
fn units(name: &str, text: &str) -> Vec<(usize, Vec<String>)> {
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut out = Vec::new();
    if name.ends_with(".md") {
        let mut open: Option<(usize, Vec<String>)> = None;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```") {
                match open.take() {
                    Some(block) => out.push(block),
                    None => open = Some((i + 2, Vec::new())),
                }
            } else if let Some((_, block)) = open.as_mut() {
                block.push(line.clone());
            }
        }
    } else if name.ends_with("Dockerfile") {
        out.push((1, lines));
    } else {
        let mut start = 1;
        let mut unit = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            if line == "---" {
                out.push((start, std::mem::take(&mut unit)));
                start = i + 2;
            } else {
                unit.push(line);
            }
        }
        out.push((start, unit));
    }
    out
}

/// The value of `key` on a line (`key: v`, `# key: v`, `- key: v`), or of a
/// flag (`--flag v`, `--flag=v`, or `- --flag` followed by `- v`).
fn values(lines: &[String], key: &str) -> Vec<(usize, String)> {
    let flag = format!("--{key}");
    let mut out = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim_start().trim_start_matches('#').trim_start();
        let line = line.strip_prefix("- ").unwrap_or(line);
        if let Some(v) = line.strip_prefix(&format!("{key}:")) {
            if v.starts_with(' ') || v.is_empty() {
                out.push((i, clean(v)));
            }
        }
        if line == flag {
            if let Some(next) = lines.get(i + 1) {
                let next = next.trim_start().trim_start_matches('#').trim_start();
                out.push((i, clean(next.strip_prefix("- ").unwrap_or(next))));
            }
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find(&flag) {
            let after = &rest[at + flag.len()..];
            rest = after;
            if let Some(v) = after.strip_prefix('=').or_else(|| after.strip_prefix(' ')) {
                let v = v.trim_start();
                let end = if v.starts_with('<') {
                    v.find('>').map_or(v.len(), |e| e + 1)
                } else {
                    v.find(' ').unwrap_or(v.len())
                };
                out.push((i, clean(&v[..end])));
            }
        }
    }
    out
}

/// A value without its comment, quotes and the brackets of a synopsis.
fn clean(v: &str) -> String {
    let v = v.trim();
    let v = if v.starts_with('<') {
        &v[..v.find('>').map_or(v.len(), |e| e + 1)]
    } else {
        v.split(" #").next().unwrap_or(v).trim()
    };
    v.trim_matches(|c| c == '"' || c == '\'' || c == '`' || c == ']')
        .to_string()
}

/// What is wrong with the `sha256` values and URLs of one unit.
fn problems(name: &str, first_line: usize, lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let urls: Vec<(usize, String)> = values(lines, "url")
        .into_iter()
        .filter(|(_, u)| !u.is_empty() && !u.contains("{{") && !u.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    let allow_latest = lines.iter().any(|l| l.contains("--allow-latest"));
    let shas = values(lines, "sha256");
    for (i, url) in &urls {
        // The pinning rule, with the unit's own digest if it has one.
        let sha = shas.iter().map(|(_, s)| s.as_str()).find(|s| s.len() == 64);
        if let Err(e) = check_module(url, sha, allow_latest) {
            out.push(format!("{name}:{}: {e}", first_line + i));
        }
    }
    for (i, value) in &shas {
        let at = format!("{name}:{}", first_line + i);
        if value.is_empty() || value.contains("{{") || value.chars().all(|c| c.is_ascii_uppercase()) {
            continue; // none, a template, or a synopsis metavariable (HEX)
        }
        let url = urls.iter().map(|(_, u)| u.as_str()).next().unwrap_or(DEFAULT_URL);
        let digest = match check_module(url, None, true) {
            Ok(d) => d,
            Err(e) => {
                out.push(format!("{at}: {e}"));
                continue;
            }
        };
        if value.starts_with('<') {
            if value != digest.placeholder() {
                out.push(format!(
                    "{at}: sha256 {value} for {url}: write {} (the digest Istio checks for this scheme)",
                    digest.placeholder()
                ));
            }
        } else if let Err(e) = check_module(url, Some(value), true) {
            out.push(format!("{at}: {e}"));
        }
    }
    out
}

#[test]
fn every_sha256_shown_is_the_digest_istio_checks_for_its_url() {
    let mut found = Vec::new();
    let mut checked = 0;
    for name in files() {
        let text = std::fs::read_to_string(workspace().join(&name)).unwrap();
        for (first, lines) in units(&name, &text) {
            checked += values(&lines, "sha256").len();
            found.extend(problems(&name, first, &lines));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    eprintln!("{checked} sha256 values checked");
    assert!(
        checked >= 5,
        "only {checked} sha256 values found: is the scan reading the files?"
    );
}

#[test]
fn the_scan_catches_the_wrong_digest() {
    let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
    let hex = "a".repeat(64);
    // The mistake Istio punishes: the module's hash described for an oci:// URL.
    let wrong = lines("url: oci://r.io/m/f:0.1.0\n# sha256: <digest of plugin.wasm>\n");
    assert_eq!(problems("x.yaml", 1, &wrong).len(), 1);
    let right = lines("url: oci://r.io/m/f:0.1.0\n# sha256: <image manifest digest>   # pin it\n");
    assert!(problems("x.yaml", 1, &right).is_empty());
    let http = lines("meshward-control render --manifests d --url https://h/f.wasm --sha256 <image manifest digest>");
    assert_eq!(problems("x.md", 1, &http).len(), 1);
    let args = lines(&format!(
        "- --url\n- oci://r.io/f@sha256:{}\n- --sha256\n- {hex}\n",
        "b".repeat(64)
    ));
    assert!(
        !problems("x.yaml", 1, &args).is_empty(),
        "a digest that contradicts the URL"
    );
    let latest = lines("--url oci://r.io/m/f:latest");
    assert_eq!(problems("x.md", 1, &latest).len(), 1, "unpinned latest");
    assert!(problems("x.md", 1, &lines("--url oci://r.io/m/f:latest --allow-latest")).is_empty());
    assert_eq!(problems("x.yaml", 1, &lines("sha256: ABC")).len(), 0, "a metavariable");
    assert_eq!(problems("x.yaml", 1, &lines("sha256: abc")).len(), 1, "not a digest");
}
