//! Istio's path templates through the offline CLI: an Allowlist with the
//! templates Istio accepts renders them unchanged and lints clean, and one
//! with a template Istio refuses is reported with the rule of Istio's it
//! breaks (the message the Allowlist's status carries).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The bookinfo example with the reviews Allowlist's paths replaced by
/// `paths` (a YAML flow sequence).
fn bookinfo_with_reviews_paths(name: &str, paths: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo");
    let d = std::env::temp_dir().join(format!("meshward-control-istio-paths-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replace(r#"paths: ["/reviews/{*}"]"#, &format!("paths: {paths}"));
            std::fs::write(d.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    d
}

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshward-control"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn templates_istio_accepts_render_unchanged_and_lint_clean() {
    let templates = [
        "/reviews/{**}/ratings",
        "/reviews/{*}/{**}/",
        "/reviews/{**}",
        "/{**}/reviews",
    ];
    let d = bookinfo_with_reviews_paths("valid", &serde_json::to_string(&templates).unwrap());
    let lint = run(&["lint", "--manifests"], &d);
    assert_eq!(String::from_utf8_lossy(&lint.stdout), "no findings\n");
    assert!(lint.status.success());
    let render = run(&["render", "--manifests"], &d);
    assert!(render.status.success(), "{}", String::from_utf8_lossy(&render.stderr));
    let yaml = String::from_utf8(render.stdout).unwrap();
    for t in templates {
        assert!(yaml.contains(t), "{t} not rendered as written:\n{yaml}");
    }
}

#[test]
fn templates_istio_refuses_are_reported_with_istios_rule() {
    for (paths, rule) in [
        (
            r#"["/reviews/{*}", "/{**}/foo/{*}"]"#,
            r#"(Istio: "{**} is not the last operator")"#,
        ),
        (
            r#"["/reviews/{*}.json"]"#,
            r#"(Istio: "Contains '{' or '}' beyond a supported path template")"#,
        ),
        (
            r#"["/reviews/{*}/a*b"]"#,
            r#"(Istio: "Contains segment a*b with invalid string literal")"#,
        ),
    ] {
        let d = bookinfo_with_reviews_paths("invalid", paths);
        let lint = run(&["lint", "--manifests"], &d);
        let out = String::from_utf8_lossy(&lint.stdout);
        assert_eq!(lint.status.code(), Some(1), "{paths}: {out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("Allowlist bookinfo/reviews: InvalidPath: rules[0].to[0].paths["))
            .unwrap_or_else(|| panic!("{paths}: {out}"));
        assert!(line.contains(rule), "{paths}: {line}");
    }
}
