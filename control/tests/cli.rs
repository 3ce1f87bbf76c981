//! The offline CLI, run as a binary: `crd`, `render --manifests`, `validate`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshward-control"))
}

fn dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshward-control-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (f, text) in files {
        std::fs::write(d.join(f), text).unwrap();
    }
    d
}

const NAMESPACE: &str =
    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    meshward.io/enforcement: enabled\n";
const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      serviceAccountName: frontend
      containers: [{name: app, image: frontend}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored, namespace: shop}
"#;
const ALLOWLIST: &str = r#"apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - name: frontend-reads
    from: [{workloads: {selector: {matchLabels: {app: frontend}}}}]
    to: [{methods: [GET], paths: ["/cart/*"]}]
"#;

#[test]
fn render_prints_the_wasmplugin_of_each_enabled_namespace() {
    let d = dir(
        "render",
        &[
            ("00-ns.yaml", NAMESPACE),
            ("10-workloads.yaml", WORKLOADS),
            ("20-allowlist.yml", ALLOWLIST),
        ],
    );
    let out = bin()
        .args(["render", "--manifests"])
        .arg(&d)
        .args(["--url", "file:///meshward.wasm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = meshward_control::manifests::parse_documents(&text).unwrap();
    let docs: Vec<serde_json::Value> = docs.into_iter().map(|d| d.value).collect();
    assert_eq!(docs.len(), 1, "{text}");
    let spec = &docs[0]["spec"];
    assert_eq!(spec["url"].as_str(), Some("file:///meshward.wasm"));
    let policy = &spec["pluginConfig"]["policies"][0];
    assert_eq!(policy["name"].as_str(), Some("shop/cart"));
    assert_eq!(
        policy["rules"][0]["from"][0]["principals"][0].as_str(),
        Some("cluster.local/ns/shop/sa/frontend")
    );
    // Byte-identical when run again.
    let again = bin()
        .args(["render", "--manifests"])
        .arg(&d)
        .args(["--url", "file:///meshward.wasm"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
}

#[test]
fn render_fails_on_an_invalid_allowlist_naming_it() {
    let bad = ALLOWLIST.replace("\"/cart/*\"", "\"cart\"");
    let d = dir("invalid", &[("ns.yaml", NAMESPACE), ("a.yaml", &bad)]);
    let out = bin().args(["render", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Allowlist shop/cart: InvalidPath: rules[0].to[0].paths[0]"),
        "{err}"
    );
}

#[test]
fn manifest_errors_name_the_file_line_object_and_field() {
    let typo = ALLOWLIST.replace("rules:", "rulez:");
    let d = dir("typo", &[("a.yaml", &format!("{NAMESPACE}---\n{typo}"))]);
    let out = bin().args(["render", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    let file = d.join("a.yaml").display().to_string();
    assert_eq!(
        err.trim_end(),
        format!("{file}:13: Allowlist shop/cart: spec.rulez: unknown field, did you mean `rules`?")
    );
    // Every problem of every file is reported, each with its line.
    let method = ALLOWLIST.replace("methods:", "method:");
    let d = dir(
        "typos",
        &[
            ("a.yaml", &format!("{NAMESPACE}---\n{method}")),
            (
                "b.yaml",
                "apiVersion: meshward.io/v1alpha1\nkind: AllowList\nmetadata: {name: x}\n",
            ),
            ("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"),
        ],
    );
    let out = bin().args(["lint", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].ends_with(
            "a.yaml:16: Allowlist shop/cart: spec.rules[0].to[0].method: unknown field, did you mean `methods`?"
        ),
        "{err}"
    );
    assert!(
        lines[1].ends_with("b.yaml:1: meshward.io/v1alpha1 AllowList: meshward.io has one kind: apiVersion meshward.io/v1alpha1, kind Allowlist"),
        "{err}"
    );
}

#[test]
fn manifests_are_files_directories_and_stdin() {
    let d = dir(
        "inputs",
        &[("ns.yaml", NAMESPACE), ("w.yaml", WORKLOADS), ("notes.txt", "not read")],
    );
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    std::fs::write(d.join("sub/deeper/a.yml"), ALLOWLIST).unwrap();
    std::fs::write(d.join("allowlist.txt"), ALLOWLIST.replace("name: cart", "name: cart2")).unwrap();
    let render = |args: &[&std::ffi::OsStr], stdin: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["render", "--url", "file:///m.wasm", "-o", "json", "--manifests"])
            .args(args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let policies = |json: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["kind"], "List");
        v["items"][0]["spec"]["pluginConfig"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    // A directory, recursively (only *.yaml, *.yml, *.json).
    let (code, out, err) = render(&[d.as_os_str()], None);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(policies(&out), ["shop/cart"]);
    // A file named explicitly is read whatever its extension; `-` is stdin.
    let extra = d.join("allowlist.txt");
    let (code, out, err) = render(&[d.as_os_str(), extra.as_os_str(), "-".as_ref()], Some("# nothing\n"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(policies(&out), ["shop/cart", "shop/cart2"]);
    let (code, out, err) = render(&["-".as_ref()], Some(&format!("{NAMESPACE}---\n{ALLOWLIST}")));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(policies(&out), ["shop/cart"]);
    // The same object twice names both places.
    let again = d.join("sub/deeper/a.yml");
    let (code, _, err) = render(&[d.as_os_str(), again.as_os_str()], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("Allowlist shop/cart is defined again (first at "), "{err}");
    // An empty directory is an error, not an empty cluster.
    let empty = dir("empty", &[("README.md", "no manifests")]);
    let (code, _, err) = render(&[empty.as_os_str()], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("no manifests (*.yaml, *.yml, *.json)"), "{err}");
}

#[test]
fn kubectl_lists_are_read() {
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        [NAMESPACE, WORKLOADS, ALLOWLIST, CART]
            .iter()
            .flat_map(|doc| doc.split("---\n"))
            .map(|doc| {
                let mut item = String::new();
                for (i, line) in doc.lines().enumerate() {
                    item.push_str(if i == 0 { "- " } else { "  " });
                    item.push_str(line);
                    item.push('\n');
                }
                item
            })
            .collect::<String>()
    );
    let d = dir("list", &[("list.yaml", &list)]);
    let (code, out) = check(&d, &["--from", "shop/frontend", "--to", "shop/cart", "GET /cart/1"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn crd_prints_the_committed_crd() {
    let out = bin().arg("crd").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        include_str!("../../istio/crd.yaml")
    );
}

#[test]
fn validate_reports_each_file() {
    let d = dir(
        "validate",
        &[
            ("good.json", r#"{"policies":[{"name":"p","rules":[{}]}]}"#),
            (
                "bad.json",
                r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["x"]}]}]}]}"#,
            ),
        ],
    );
    assert!(bin()
        .arg("validate")
        .arg(d.join("good.json"))
        .status()
        .unwrap()
        .success());
    let out = bin()
        .arg("validate")
        .arg(d.join("good.json"))
        .arg(d.join("bad.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policies[0].rules[0].to[0].paths[0]"));
}

const CART: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      serviceAccountName: cart
      containers: [{name: app, image: cart, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: frontend, namespace: shop}
"#;

fn check(d: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bin().args(["check", "--manifests"]).arg(d).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `check` names the negations a request fails (`notMethods`, `notPorts`)
/// and the address blocks of a rule's callers.
#[test]
fn check_names_negations_and_address_blocks() {
    const NEGATIONS: &str = r#"apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - name: no-deletes
    from: [{serviceAccounts: [shop/frontend], ipBlocks: ["10.0.0.0/8"]}]
    to: [{notMethods: [DELETE], notPorts: [9]}]
"#;
    let d = dir(
        "check-negations",
        &[
            ("ns.yaml", NAMESPACE),
            ("w.yaml", WORKLOADS),
            ("cart.yaml", CART),
            ("a.yaml", NEGATIONS),
        ],
    );
    let (code, out) = check(
        &d,
        &[
            "--from",
            "shop/frontend",
            "--to",
            "shop/cart",
            "--port",
            "9",
            "DELETE /cart/1",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    for part in [
        "caller: cluster.local/ns/shop/sa/frontend is not one of the rule's callers: \
         cluster.local/ns/shop/sa/frontend, peer 10.0.0.0/8",
        "method: DELETE is one of notMethods DELETE",
        "port: 9 is one of notPorts 9",
    ] {
        assert!(out.contains(part), "missing {part:?} in:\n{out}");
    }
}

#[test]
fn check_simulates_a_request_with_the_filters_engine() {
    let d = dir(
        "check",
        &[
            ("ns.yaml", NAMESPACE),
            ("w.yaml", WORKLOADS),
            ("cart.yaml", CART),
            ("a.yaml", ALLOWLIST),
        ],
    );
    let (code, out) = check(&d, &["--from", "shop/frontend", "--to", "shop/cart", "GET /cart/1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("allow") && out.contains("shop/cart/frontend-reads"),
        "{out}"
    );
    let (code, out) = check(&d, &["--from", "shop/frontend", "--to", "shop/cart", "DELETE /cart/1"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        out,
        "deny: no rule of shop/cart admits cluster.local/ns/shop/sa/frontend\n  \
         nearest rule shop/cart/frontend-reads:\n    method: DELETE is not one of GET\n"
    );
    // Every part of the nearest rule that fails is named.
    let (code, out) = check(
        &d,
        &["--from", "shop/cart", "--to", "shop/cart", "--port", "9", "PUT /carts"],
    );
    assert_eq!(code, Some(1), "{out}");
    for part in [
        "caller: cluster.local/ns/shop/sa/cart is not one of the rule's callers: cluster.local/ns/shop/sa/frontend",
        "method: PUT is not one of GET",
        "path: /carts matches none of /cart/*",
    ] {
        assert!(out.contains(part), "missing {part:?} in:\n{out}");
    }
    // As data, with the same exit status.
    let (code, out) = check(
        &d,
        &[
            "-o",
            "json",
            "--from",
            "shop/frontend",
            "--to",
            "shop/cart",
            "DELETE /cart/1",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["nearest"]["rule"], "shop/cart/frontend-reads");
    assert_eq!(v["nearest"]["failed"][0]["part"], "method");
    // A caller whose service account is nowhere to be found is judged, with a warning.
    let (code, out) = check(
        &d,
        &["--from", "shop/frontend-typo", "--to", "shop/cart", "GET /cart/1"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("warning: --from shop/frontend-typo: there is no ServiceAccount frontend-typo in namespace shop"),
        "{out}"
    );
    let (code, out) = check(&d, &["--to", "shop/cart", "GET /cart/1"]);
    assert_eq!(code, Some(1), "anonymous: {out}");
    let (code, out) = check(&d, &["--from", "shop/frontend", "--to", "shop/cart", "GET /cart/..%2f"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("reject"), "{out}");
    // The frontend is selected by no Allowlist: its traffic passes.
    let (code, out) = check(&d, &["--to", "shop/frontend", "DELETE /"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&d, &["--to", "shop/nothing", "GET /"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--to shop/nothing"), "{out}");
}

#[test]
fn lint_reports_what_would_surprise_a_user() {
    let extra = r#"apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: ghost, namespace: shop}
spec:
  selector: {matchLabels: {app: ghost}}
  rules:
  - from: [{workloads: {selector: {matchLabels: {app: nobody}}}}, {serviceAccounts: [shop/missing]}]
"#;
    let d = dir(
        "lint",
        &[
            ("ns.yaml", NAMESPACE),
            ("w.yaml", WORKLOADS),
            ("cart.yaml", CART),
            ("a.yaml", ALLOWLIST),
            ("x.yaml", extra),
        ],
    );
    let out = bin().args(["lint", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "Allowlist shop/ghost: spec.selector matches no workload in the namespace",
        "Allowlist shop/ghost: rules[0].from[0].workloads: the selector matches no workload in shop, so it admits nobody",
        "Allowlist shop/ghost: rules[0].from[1].serviceAccounts[0]: ServiceAccount shop/missing does not exist",
        "Deployment shop/frontend: in an enabled namespace but selected by no Allowlist",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("Deployment shop/cart"), "{text}");
    let clean = dir(
        "lint-clean",
        &[
            ("ns.yaml", NAMESPACE),
            ("cart.yaml", CART),
            ("a.yaml", &ALLOWLIST.replace("app: frontend}}}}", "app: cart}}}}")),
        ],
    );
    let out = bin().args(["lint", "--manifests"]).arg(&clean).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn unknown_fields_in_core_kinds_are_refused() {
    // Ignored, this typo would silently turn the caller into the `default`
    // service account.
    let typo = WORKLOADS.replace("serviceAccountName", "serviceAcountName");
    let d = dir(
        "unknown-core",
        &[("ns.yaml", NAMESPACE), ("w.yaml", &typo), ("a.yaml", ALLOWLIST)],
    );
    let out = bin().args(["render", "--manifests"]).arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("w.yaml:9: Deployment shop/frontend: spec.template.spec.serviceAcountName: unknown field"),
        "{err}"
    );
}

fn bookinfo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo")
}

#[test]
fn the_bookinfo_example_renders_as_its_readme_says() {
    let out = bin()
        .args(["render", "--manifests"])
        .arg(bookinfo())
        .args(["--url", "oci://registry.example.com/meshward/filter:0.1.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = std::fs::read_to_string(bookinfo().join("expected/render.yaml")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        expected,
        "examples/bookinfo/expected/render.yaml is stale"
    );
    let lint = bin().args(["lint", "--manifests"]).arg(bookinfo()).output().unwrap();
    assert!(lint.status.success());
    assert_eq!(String::from_utf8(lint.stdout).unwrap(), "no findings\n");
}

#[test]
fn the_bookinfo_readme_check_outputs_are_real() {
    // Every `meshward-control check` line in the example's README, run, must
    // print the line that follows it there.
    let readme = std::fs::read_to_string(bookinfo().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(args) = line.strip_prefix("meshward-control check --manifests examples/bookinfo ") else {
            continue;
        };
        let out = bin()
            .args(["check", "--manifests"])
            .arg(bookinfo())
            .args(shell_words(args))
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap()
        );
        let want: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.is_empty() && !l.starts_with("```"))
            .copied()
            .collect();
        assert_eq!(printed.trim_end(), want.join("\n"), "{line}");
        assert_eq!(out.status.success(), want[0].starts_with("allow"), "{line}");
        checked += 1;
    }
    assert_eq!(checked, 9);
}

/// Splits a command line on spaces, keeping single-quoted words whole.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A request log line as a sidecar of namespace `shop` prints it (Istio's
/// prefix and thread suffix).
fn logged(workload: &str, principal: Option<&str>, method: &str, path: &str, verdict: &str) -> String {
    let line = serde_json::json!({
        "method": method, "authority": workload, "path": path, "principal": principal, "port": 8080,
        "grpc": false, "workload": workload, "namespace": "shop", "verdict": verdict, "mode": "audit",
    });
    format!("2026-11-22T07:49:48.213421Z\tinfo\twasm\twasm log meshward meshward: meshward.request {line}\tthread=21\n")
}

/// learn → the proposal is lint-clean, byte-identical from a file, from
/// stdin and from gzip, and admits every learned line (replay exits 0);
/// traffic outside it (another depth, another caller, a denied line) is what
/// replay reports, with exit status 1; a missing log file is status 2.
#[test]
fn learn_proposes_what_replay_then_admits() {
    use std::io::Write;
    const FRONTEND: &str = "cluster.local/ns/shop/sa/frontend";
    let cart = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      serviceAccountName: cart
      containers: [{name: app, image: cart, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: frontend, namespace: shop}
"#;
    let mut log = String::from("2026-11-22T07:49:48Z\tinfo\tenvoy main\tstarting\tthread=1\n");
    for i in 0..30 {
        log += &logged(
            "cart",
            Some(FRONTEND),
            "GET",
            &format!("/cart/{}/items", 1000 + i),
            "audit_deny",
        );
    }
    log += &logged("cart", None, "GET", "/healthz", "audit_deny");
    log += &logged("cart", Some(FRONTEND), "DELETE", "/cart/1/items", "deny");
    log += "meshward.request {\"method\":\n";
    let d = dir(
        "learn",
        &[
            ("00-ns.yaml", &NAMESPACE.replace("enabled", "learn")),
            ("10-cart.yaml", cart),
            ("cart.log", &log),
        ],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(log.as_bytes()).unwrap();
    std::fs::write(d.join("cart.log.gz"), gz.finish().unwrap()).unwrap();
    let manifests = [d.join("00-ns.yaml"), d.join("10-cart.yaml")];
    let learn = |logs: &str, stdin: Option<&str>| {
        let mut cmd = bin();
        cmd.arg("learn")
            .arg("--manifests")
            .args(&manifests)
            .arg("--logs")
            .arg(logs)
            .current_dir(&d);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (proposal, summary) = learn("cart.log", None);
    assert!(proposal.contains("- /cart/{*}/items\n"), "{proposal}");
    assert!(
        !proposal.contains("DELETE"),
        "denied traffic is not learned:\n{proposal}"
    );
    assert!(summary.contains("cart.log:34: bad request log line"), "{summary}");
    assert!(
        summary.contains("34 lines read: 32 request lines, 1 without the marker, 1 bad"),
        "{summary}"
    );
    assert!(summary.contains("review: shop/cart/anonymous-no-identity"), "{summary}");
    assert_eq!(learn("cart.log", None).0, proposal, "deterministic");
    assert_eq!(learn("-", Some(&log)).0, proposal, "stdin");
    assert_eq!(learn("cart.log.gz", None).0, proposal, "gzip");
    std::fs::write(d.join("20-proposal.yaml"), &proposal).unwrap();
    let lint = bin().arg("lint").arg("--manifests").arg(&d).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&lint.stdout), "no findings\n");
    let replay = |logs: &str| {
        let out = bin()
            .args(["replay", "-o", "json", "--manifests"])
            .arg(&d)
            .args(["--logs", logs])
            .current_dir(&d)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), report)
    };
    let (status, report) = replay("cart.log");
    assert_eq!(status, Some(0), "{report:#}");
    assert_eq!(
        (report["admitted"].as_u64(), report["stillRefused"].as_u64()),
        (Some(31), Some(1))
    );
    assert_eq!(report["rules"].as_array().unwrap().len(), 2);
    // Held-out traffic: a new id is admitted; one level deeper, another
    // caller, another method are what would break.
    let mut more = logged("cart", Some(FRONTEND), "GET", "/cart/77/items", "allow");
    more += &logged("cart", Some(FRONTEND), "GET", "/cart/77/items/3", "allow");
    more += &logged(
        "cart",
        Some("cluster.local/ns/shop/sa/other"),
        "GET",
        "/cart/1/items",
        "allow",
    );
    more += &logged("cart", Some(FRONTEND), "PUT", "/cart/1/items", "audit_deny");
    std::fs::write(d.join("more.log"), more).unwrap();
    let (status, report) = replay("more.log");
    assert_eq!(status, Some(1), "{report:#}");
    assert_eq!(
        (report["admitted"].as_u64(), report["denied"].as_u64()),
        (Some(1), Some(3))
    );
    let mut denied: Vec<&str> = report["denials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["example"].as_str().unwrap())
        .collect();
    denied.sort_unstable();
    assert_eq!(denied, ["more.log:2", "more.log:3", "more.log:4"]);
    assert_eq!(report["newlyDenied"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(replay("missing.log").0, Some(2));
}

/// A `grpc` entry: `check` judges a gRPC call by its `content-type` header
/// and names the `grpc` part a plain POST fails; `replay` judges a logged
/// request as gRPC when its line says `"grpc": true`.
#[test]
fn grpc_entries_in_check_and_replay() {
    const GRPC_ALLOWLIST: &str = r#"apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - name: frontend-calls
    from: [{serviceAccounts: [shop/frontend]}]
    to: [{grpc: {service: shop.cart.v1.Cart, methods: [GetCart]}}]
"#;
    let d = dir(
        "grpc",
        &[
            ("ns.yaml", NAMESPACE),
            ("w.yaml", WORKLOADS),
            ("cart.yaml", CART),
            ("a.yaml", GRPC_ALLOWLIST),
        ],
    );
    let path = "POST /shop.cart.v1.Cart/GetCart";
    let (code, out) = check(
        &d,
        &[
            "--from",
            "shop/frontend",
            "--to",
            "shop/cart",
            "-H",
            "content-type: application/grpc",
            path,
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("admitted by shop/cart/frontend-calls"), "{out}");
    let (code, out) = check(
        &d,
        &[
            "--from",
            "shop/frontend",
            "--to",
            "shop/cart",
            "-H",
            "content-type: application/json",
            path,
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "grpc: POST /shop.cart.v1.Cart/GetCart (not gRPC: content-type application/json) \
             is not a gRPC call to shop.cart.v1.Cart/GetCart"
        ),
        "{out}"
    );
    let (code, out) = check(
        &d,
        &[
            "--from",
            "shop/frontend",
            "--to",
            "shop/cart",
            "-H",
            "content-type: application/grpc",
            "POST /shop.cart.v1.Cart/EmptyCart",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("grpc: POST /shop.cart.v1.Cart/EmptyCart is not a gRPC call to"),
        "{out}"
    );
    // replay: the same line, logged as gRPC and as plain HTTP.
    let line = |grpc: bool| {
        let line = serde_json::json!({
            "method": "POST", "authority": "cart", "path": "/shop.cart.v1.Cart/GetCart",
            "principal": "cluster.local/ns/shop/sa/frontend", "port": 8080, "grpc": grpc, "workload": "cart", "namespace": "shop",
            "verdict": "allow", "mode": "enforce",
        });
        format!(
            "2026-11-22T07:49:48.213421Z\tinfo\twasm\twasm log meshward meshward: meshward.request {line}\tthread=21\n"
        )
    };
    std::fs::write(d.join("grpc.log"), line(true) + &line(false)).unwrap();
    let out = bin()
        .args(["replay", "-o", "json", "--manifests"])
        .arg(&d)
        .args(["--logs", "grpc.log"])
        .current_dir(&d)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["admitted"].as_u64(), report["denied"].as_u64()),
        (Some(1), Some(1)),
        "{report:#}"
    );
}

const DENY_ALLOWLIST: &str = r#"apiVersion: meshward.io/v1alpha1
kind: Allowlist
metadata: {name: cart-deny, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: deny
  rules:
  - name: no-admin
    to: [{paths: ["/cart/admin"]}]
  - name: no-plaintext
    from: [{notPrincipals: ["*"]}]
"#;

#[test]
fn render_and_check_carry_a_deny_allowlist_and_name_its_rule() {
    let d = dir(
        "deny",
        &[
            ("ns.yaml", NAMESPACE),
            ("w.yaml", WORKLOADS),
            ("cart.yaml", CART),
            ("a.yaml", ALLOWLIST),
            ("deny.yaml", DENY_ALLOWLIST),
        ],
    );
    let out = bin().args(["render", "--manifests"]).arg(&d).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = meshward_control::manifests::parse_documents(&text).unwrap();
    let plugin = &docs[0].value;
    let schema = common::crd_schema(include_str!("data/istio-wasmplugin-crd.yaml"), "v1alpha1");
    common::validate(&schema["properties"]["spec"], &plugin["spec"], "spec").unwrap();
    let policy = &plugin["spec"]["pluginConfig"]["policies"][1];
    assert_eq!(
        (policy["name"].as_str(), policy["action"].as_str()),
        (Some("shop/cart-deny"), Some("deny"))
    );

    // The deny rule wins over the allow rule that admits the request, and is named.
    let (code, out) = check(&d, &["--from", "shop/frontend", "--to", "shop/cart", "GET /cart/admin"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        out,
        "deny: cluster.local/ns/shop/sa/frontend denied by shop/cart-deny/no-admin (enforce mode)\n"
    );
    let (code, out) = check(&d, &["--to", "shop/cart", "GET /cart/1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("denied by shop/cart-deny/no-plaintext"), "{out}");
    let (code, out) = check(&d, &["--from", "shop/frontend", "--to", "shop/cart", "GET /cart/1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("admitted by shop/cart/frontend-reads"), "{out}");

    // A workload only deny Allowlists select is open to what they do not refuse: lint says so.
    let d = dir(
        "deny-lint",
        &[
            ("ns.yaml", NAMESPACE),
            ("cart.yaml", CART),
            ("deny.yaml", DENY_ALLOWLIST),
        ],
    );
    let out = bin().args(["lint", "--manifests"]).arg(&d).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "Deployment shop/cart: selected only by deny Allowlists: every request they do not refuse passes"
        ),
        "{text}"
    );
}

/// `meshward-control import ARGS` in `d`: exit status, stdout, stderr.
fn import(d: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin().arg("import").args(args).current_dir(d).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const AUTHZ_V1: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: frontend-deny
  namespace: shop
  annotations: {istio.io/dry-run: "true"}
spec:
  selector: {matchLabels: {app: frontend}}
  action: DENY
  rules:
  - from: [{source: {notPrincipals: ["*"]}}]
    to: [{operation: {methods: [POST], paths: ["/cart/{**}"], notPaths: ["/cart/public/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: frontend-open, namespace: shop}
spec:
  selector: {matchLabels: {app: frontend}}
  rules: [{}]
"#;

/// What `kubectl get authorizationpolicies -o yaml` prints: a List, with
/// the fields the API server adds.
const AUTHZ_LIST_V1BETA1: &str = r#"apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: security.istio.io/v1beta1
  kind: AuthorizationPolicy
  metadata:
    name: cart
    namespace: shop
    uid: 0b7c6e0a-57a4-4f0e-9a53-3c1b9d3e0c11
    resourceVersion: "4711"
    generation: 2
    creationTimestamp: "2026-01-02T03:04:05Z"
  spec:
    selector: {matchLabels: {app: cart}}
    action: ALLOW
    rules:
    - from:
      - source: {principals: ["cluster.local/ns/shop/sa/frontend"], namespaces: [shop]}
      to:
      - operation: {methods: [GET], paths: ["/cart/{*}"], hosts: ["cart:8080", "*"], ports: ["8080"]}
      when:
      - {key: "request.headers[x-tenant]", values: [acme], notValues: ["acme-test*"]}
  status: {validationMessages: []}
"#;

const AUTHZ_JSON: &str = r#"{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "closed", "namespace": "other"}, "spec": {}}"#;

#[test]
fn import_converts_files_directories_lists_and_both_versions() {
    let d = dir(
        "import",
        &[
            ("a-v1.yaml", AUTHZ_V1),
            ("b-list.yaml", AUTHZ_LIST_V1BETA1),
            ("c.json", AUTHZ_JSON),
            ("d-other.yaml", NAMESPACE),
        ],
    );
    let (code, stdout, stderr) = import(&d, &["."]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stderr,
        "import: 4 AuthorizationPolicies read, 4 imported, 0 not imported\n"
    );
    let docs: Vec<serde_json::Value> = meshward_control::manifests::parse_documents(&stdout)
        .unwrap()
        .into_iter()
        .map(|d| d.value)
        .collect();
    let names: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["metadata"]["namespace"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    // Sorted by namespace and name, whatever the input order.
    assert_eq!(
        names,
        ["other/closed", "shop/cart", "shop/frontend-deny", "shop/frontend-open"]
    );
    for (doc, name) in docs.iter().zip(&names) {
        assert_eq!(doc["kind"], "Allowlist");
        assert_eq!(
            doc["metadata"]["annotations"]["meshward.io/imported-from"],
            name.as_str()
        );
    }
    // No rules on an ALLOW policy: admits nothing. `rules: [{}]`: one rule matching everything.
    assert_eq!(docs[0]["spec"]["rules"], serde_json::json!([]));
    assert_eq!(docs[3]["spec"]["rules"], serde_json::json!([{}]));
    assert_eq!(
        docs[1]["spec"],
        serde_json::json!({
            "selector": {"matchLabels": {"app": "cart"}},
            "rules": [{
                "from": [{"principals": ["cluster.local/ns/shop/sa/frontend"], "namespaces": ["shop"]}],
                "to": [{"methods": ["GET"], "paths": ["/cart/{*}"], "hosts": ["cart:8080", "*"], "ports": [8080]}],
                "when": [{"header": "x-tenant", "values": ["acme"], "notValues": ["acme-test*"]}]
            }]
        })
    );
    assert_eq!(
        docs[2]["spec"],
        serde_json::json!({
            "selector": {"matchLabels": {"app": "frontend"}},
            "mode": "audit",
            "action": "deny",
            "rules": [{
                "from": [{"notPrincipals": ["*"]}],
                "to": [{"methods": ["POST"], "paths": ["/cart/{**}"], "notPaths": ["/cart/public/*"]}]
            }]
        })
    );
    // Byte-identical from the files named one by one, in another order, and from stdin.
    let (_, again, _) = import(&d, &["c.json", "b-list.yaml", "a-v1.yaml"]);
    assert_eq!(again, stdout);
    let out = bin()
        .args(["import", "-"])
        .stdin(std::fs::File::open(d.join("b-list.yaml")).unwrap())
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("name: cart\n"));
}

#[test]
fn import_lists_what_cannot_be_expressed_and_emits_the_rest() {
    let unsupported = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mixed, namespace: shop}
spec:
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/shop/sa/a"], trustDomains: ["cluster.local"]}
    to:
    - operation: {hosts: ["cart"], ports: ["http"], methods: [get]}
    when:
    - {key: source.serviceAccount, values: [shop/a]}
    - {key: "experimental.envoy.filters.network.mysql_proxy[db.table]", values: [orders]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gateway, namespace: shop}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]
  action: CUSTOM
  provider: {name: opa}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh, namespace: istio-system}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/debug/*"]}}]}]
"#;
    let d = dir("import-unsupported", &[("p.yaml", unsupported), ("ok.yaml", AUTHZ_V1)]);
    let (code, stdout, stderr) = import(&d, &["p.yaml", "ok.yaml"]);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let keys = "supported keys: request.headers[<name>], source.ip, remote.ip, destination.ip, destination.port, \
                source.namespace, source.principal, connection.sni, request.auth.principal, request.auth.audiences, \
                request.auth.presenter, request.auth.claims[<name>]";
    assert_eq!(
        lines,
        [
            "p.yaml:7: shop/mixed: spec.rules[0].from[0].source.trustDomains: meshward has no trust-domain field; write `principals` with the trust domain (`<trust-domain>/*`)",
            "p.yaml:9: shop/mixed: spec.rules[0].to[0].operation.hosts[0]: Istio matches \"cart\" only when the authority has no port; meshward's \"cart\" matches every port, so it would admit more: write each authority with its port (\"cart:<port>\")",
            "p.yaml:9: shop/mixed: spec.rules[0].to[0].operation.ports[0]: \"http\" is not a port (1-65535)",
            format!("p.yaml:11: shop/mixed: spec.rules[0].when[0].key: \"source.serviceAccount\" has no meshward equivalent; {keys}").as_str(),
            format!("p.yaml:12: shop/mixed: spec.rules[0].when[1].key: \"experimental.envoy.filters.network.mysql_proxy[db.table]\" has no meshward equivalent; {keys}").as_str(),
            "p.yaml:18: shop/gateway: spec.targetRefs: a policy attached to Gateways, waypoints or Services has no Allowlist equivalent (an Allowlist protects sidecars, selected by labels)",
            "p.yaml:19: shop/gateway: spec.action: CUSTOM delegates to an external authorizer; meshward decides every request itself",
            "p.yaml:25: istio-system/mesh: metadata.namespace: a policy in Istio's root namespace (istio-system) applies to the whole mesh; an Allowlist applies to its own namespace: import a copy into each namespace (or give --root-namespace if the mesh's root namespace is another)",
            "import: 5 AuthorizationPolicies read, 2 imported, 3 not imported (above: why)",
        ]
    );
    // The convertible policies are still printed; the others not at all.
    assert!(
        stdout.contains("name: frontend-open\n") && !stdout.contains("name: mixed\n"),
        "{stdout}"
    );
    // Another root namespace: istio-system is then an ordinary namespace.
    let (code, stdout, stderr) = import(&d, &["p.yaml", "--root-namespace", "mesh-root"]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("name: mesh\n") && !stderr.contains("istio-system/mesh"),
        "{stderr}"
    );
    // A value meshward's engine refuses, named at the AuthorizationPolicy's field.
    let lower = AUTHZ_V1.replace("methods: [POST]", "methods: [POST, post]");
    let d = dir("import-engine", &[("p.yaml", &lower)]);
    let (code, _, stderr) = import(&d, &["p.yaml"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(
            "p.yaml:12: shop/frontend-deny: spec.rules[0].to[0].operation.methods[1]: meshward refuses it: "
        ),
        "{stderr}"
    );
}

/// Every source, operation and condition field of Istio's that meshward
/// has, in one ALLOW policy, and a DENY policy with the negative fields.
const AUTHZ_EVERY_FIELD: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: every, namespace: shop}
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/*"]
        notPrincipals: ["cluster.local/ns/shop/sa/bad"]
        requestPrincipals: ["https://idp.example.com/*"]
        notRequestPrincipals: ["https://idp.example.com/banned"]
        ipBlocks: ["10.0.0.1/8", "2001:db8::1/32"]
        notIpBlocks: ["10.9.0.0/16"]
        remoteIpBlocks: ["192.168.1.7/24"]
        notRemoteIpBlocks: ["192.168.1.66"]
    - source: {notNamespaces: [test], notRequestPrincipals: ["*/robot"]}
    to:
    - operation: {notMethods: [DELETE], notPorts: ["8081"]}
    when:
    - {key: "request.headers[x-user]", values: ["a*"]}
    - {key: source.ip, values: ["10.1.2.3/16"]}
    - {key: remote.ip, notValues: ["fd00::1/8"]}
    - {key: destination.ip, values: ["127.0.0.1"]}
    - {key: destination.port, values: ["8080"]}
    - {key: source.namespace, values: [shop]}
    - {key: source.principal, values: ["cluster.local/*"]}
    - {key: connection.sni, values: ["*.example.com"]}
    - {key: request.auth.principal, values: ["https://idp.example.com/*"]}
    - {key: request.auth.audiences, values: [shop]}
    - {key: request.auth.presenter, notValues: [evil]}
    - {key: "request.auth.claims[groups]", values: [admins]}
    - {key: "request.auth.claims[realm][role]", values: [owner]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: refuse, namespace: shop}
spec:
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"], notPrincipals: ["*"], notRemoteIpBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {notMethods: [GET], notPorts: ["80"]}}]
    when: [{key: request.auth.presenter, notValues: [ok]}]
"#;

#[test]
fn import_converts_every_field_meshward_has() {
    let d = dir("import-every", &[("p.yaml", AUTHZ_EVERY_FIELD)]);
    let (code, stdout, stderr) = import(&d, &["p.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    let docs: Vec<serde_json::Value> = stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let rule = &docs[0]["spec"]["rules"][0];
    let from = &rule["from"][0];
    for (field, want) in [
        ("notPrincipals", serde_json::json!(["cluster.local/ns/shop/sa/bad"])),
        ("requestPrincipals", serde_json::json!(["https://idp.example.com/*"])),
        (
            "notRequestPrincipals",
            serde_json::json!(["https://idp.example.com/banned"]),
        ),
        // Host bits cleared: the network Istio matches, which meshward accepts.
        ("ipBlocks", serde_json::json!(["10.0.0.0/8", "2001:db8::/32"])),
        ("notIpBlocks", serde_json::json!(["10.9.0.0/16"])),
        ("remoteIpBlocks", serde_json::json!(["192.168.1.0/24"])),
        ("notRemoteIpBlocks", serde_json::json!(["192.168.1.66"])),
    ] {
        assert_eq!(from[field], want, "{field}");
    }
    assert_eq!(
        rule["to"][0],
        serde_json::json!({"notMethods": ["DELETE"], "notPorts": [8081]})
    );
    let when = rule["when"].as_array().unwrap();
    assert_eq!(when[0], serde_json::json!({"header": "x-user", "values": ["a*"]}));
    assert_eq!(
        when[1],
        serde_json::json!({"key": "source.ip", "values": ["10.1.0.0/16"]})
    );
    assert_eq!(
        when[2],
        serde_json::json!({"key": "remote.ip", "notValues": ["fd00::/8"]})
    );
    assert_eq!(
        when[4],
        serde_json::json!({"key": "destination.port", "values": ["8080"]})
    );
    assert_eq!(
        when[12],
        serde_json::json!({"key": "request.auth.claims[realm][role]", "values": ["owner"]})
    );
    assert_eq!(when.len(), 13);
    assert_eq!(docs[1]["spec"]["action"], "deny");
    // The fields whose verdicts meshward's strictness changes are named;
    // the exit status stays 0. The DENY policy's negative fields fail
    // closed in both systems: not named.
    let warned: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: p.yaml:"))
        .map(|l| l.split(": ").nth(2).unwrap())
        .collect();
    assert_eq!(
        warned,
        [
            "spec.rules[0].from[0].source.ipBlocks",
            "spec.rules[0].from[0].source.notIpBlocks",
            "spec.rules[0].from[1].source.notNamespaces",
            "spec.rules[0].from[1].source.notRequestPrincipals",
            "spec.rules[0].when[1].key",
            "spec.rules[0].when[10].notValues",
        ],
        "{stderr}"
    );
    assert!(
        stderr.ends_with("import: 2 AuthorizationPolicies read, 2 imported, 0 not imported\n"),
        "{stderr}"
    );
}

#[test]
fn import_refuses_input_it_cannot_read() {
    for (name, text, want) in [
        (
            "unknown-field",
            AUTHZ_V1.replace("notPaths:", "notPath:"),
            "p.yaml:12: AuthorizationPolicy shop/frontend-deny: spec.rules[0].to[0].operation.notPath: unknown field, did you mean `notPaths`?",
        ),
        (
            "kind",
            AUTHZ_V1.replace("kind: AuthorizationPolicy\nmetadata:\n  name: frontend-deny", "kind: AuthorisationPolicy\nmetadata:\n  name: frontend-deny"),
            "p.yaml:1: security.istio.io/v1 AuthorisationPolicy: unknown kind, did you mean AuthorizationPolicy?",
        ),
        (
            "version",
            AUTHZ_V1.replace("security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: frontend-open", "security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: frontend-open"),
            "p.yaml:14: security.istio.io/v1alpha1 AuthorizationPolicy: AuthorizationPolicy is read as apiVersion security.istio.io/v1 or security.istio.io/v1beta1",
        ),
        (
            "duplicate",
            AUTHZ_V1.replace("name: frontend-open", "name: frontend-deny"),
            "p.yaml:14: AuthorizationPolicy shop/frontend-deny is defined again (first at p.yaml:1)",
        ),
        (
            "action",
            AUTHZ_V1.replace("action: DENY", "action: REJECT"),
            "p.yaml:9: AuthorizationPolicy shop/frontend-deny: spec.action: unknown variant `REJECT`, expected one of `ALLOW`, `DENY`, `AUDIT`, `CUSTOM`",
        ),
        ("none", NAMESPACE.to_string(), "meshward-control: no AuthorizationPolicy (security.istio.io/v1 or v1beta1) in the inputs"),
    ] {
        let d = dir(&format!("import-bad-{name}"), &[("p.yaml", &text)]);
        let (code, stdout, stderr) = import(&d, &["p.yaml"]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert_eq!(stdout, "", "{name}");
        assert_eq!(stderr.trim_end(), want, "{name}");
    }
    let d = dir("import-missing", &[]);
    let (code, _, stderr) = import(&d, &["nothing.yaml"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn imported_allowlists_pass_lint_and_render() {
    let authz = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: frontend, namespace: shop}
spec:
  selector: {matchLabels: {app: frontend}}
  rules:
  - from: [{source: {namespaces: [shop]}}]
    to: [{operation: {methods: [GET], paths: ["/{**}"]}}]
"#;
    let d = dir(
        "import-lint",
        &[
            ("authz.yaml", authz),
            ("00-ns.yaml", NAMESPACE),
            ("10-workloads.yaml", WORKLOADS),
        ],
    );
    let (code, stdout, stderr) = import(&d, &["authz.yaml", "--manifests", "00-ns.yaml", "10-workloads.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    // Nothing to warn about with the cluster's objects.
    assert_eq!(
        stderr,
        "import: 1 AuthorizationPolicies read, 1 imported, 0 not imported\n"
    );
    std::fs::write(d.join("20-imported.yaml"), &stdout).unwrap();
    let out = bin()
        .args([
            "lint",
            "--manifests",
            "00-ns.yaml",
            "10-workloads.yaml",
            "20-imported.yaml",
        ])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no findings\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    let out = bin()
        .args([
            "render",
            "--url",
            "file:///m.wasm",
            "--manifests",
            "00-ns.yaml",
            "10-workloads.yaml",
            "20-imported.yaml",
        ])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: shop/frontend\n"));
    // With a namespace that is not enabled and a selector that matches nothing: warnings, exit 0.
    let other = authz
        .replace("namespace: shop", "namespace: other")
        .replace("app: frontend", "app: nobody");
    std::fs::write(d.join("authz.yaml"), other).unwrap();
    std::fs::write(
        d.join("00-ns.yaml"),
        format!(
            "{NAMESPACE}---\n{}",
            NAMESPACE
                .replace("name: shop", "name: other")
                .replace("enabled", "disabled")
        ),
    )
    .unwrap();
    let (code, _, stderr) = import(&d, &["authz.yaml", "--manifests", "00-ns.yaml", "10-workloads.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: namespace other is not enabled (label meshward.io/enforcement): its imported Allowlists take effect once it is\n"),
        "{stderr}"
    );
    // Manifests that cannot be read are bad input.
    let (code, _, _) = import(&d, &["authz.yaml", "--manifests", "missing"]);
    assert_eq!(code, Some(2));
}

#[test]
fn lint_reports_api_descriptions_findings_and_is_clean_once_they_are_fixed() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/api-descriptions");
    let out = bin()
        .args(["lint", "-o", "json", "--manifests"])
        .arg(&example)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"findings": [
            {"object": "Allowlist shop/petstore",
             "message": "rules[2].to[0].paths[0]: /api/v3/pets/* matches no operation of the API descriptions of Deployment shop/petstore"},
            {"object": "Deployment shop/inventory",
             "message": "inventory-api/inventory.binpb: 1 of 5 operations unreachable, no rule admits them: shop.inventory.v1.Admin/Purge"},
        ]})
    );
    // Purge admitted to ops and the legacy path written as the document's
    // template: nothing left to report.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("methods: [Restock]", "methods: [Restock, Purge]")
                .replace("paths: [/api/v3/pets/*]", "paths: [\"/api/v3/pet/{*}\"]");
            files.push((name, text));
        }
    }
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let fixed = dir("lint-apis-fixed", &files);
    let out = bin().args(["lint", "--manifests"]).arg(&fixed).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no findings\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
}

/// A request log line of namespace `shop` with its port and `grpc` flag.
fn logged_call(workload: &str, principal: &str, method: &str, path: &str, port: u16, grpc: bool) -> String {
    let line = serde_json::json!({
        "method": method, "authority": workload, "path": path, "principal": principal, "port": port,
        "grpc": grpc, "workload": workload, "namespace": "shop", "verdict": "allow", "mode": "audit",
    });
    format!("meshward.request {line}\n")
}

/// learn, for workloads that carry API descriptions (the annotation on the
/// `inventory` Deployment, and on a Service selecting `petstore`), proposes
/// `grpc` and `openapi` entries naming the operations called; the calls that
/// are no operation stay paths and are listed on stderr; replay of the same
/// logs admits every line with the proposal in place.
#[test]
fn learn_proposes_operations_of_api_descriptions() {
    const STOREFRONT: &str = "cluster.local/ns/web/sa/storefront";
    const OPS: &str = "cluster.local/ns/web/sa/ops";
    let shop = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apidesc/shop");
    let read = |f: &str| std::fs::read_to_string(shop.join(f)).unwrap();
    let workloads = read("10-workloads.yaml").replace(
        "metadata: {name: inventory, namespace: shop}\nspec:",
        "metadata:\n  name: inventory\n  namespace: shop\n  annotations: {meshward.io/api-description: inventory-api/inventory.binpb}\nspec:",
    );
    assert!(workloads.contains("inventory-api/inventory.binpb"));
    let service = r#"apiVersion: v1
kind: Service
metadata:
  name: petstore
  namespace: shop
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    meshward.io/api-description: " petstore-api/openapi.yaml "
spec:
  selector: {app: petstore}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;
    let mut log = String::new();
    for (method, path) in [
        ("GET", "/api/v3/pet/10"),
        ("GET", "/api/v3/pet/11?x=1"),
        ("GET", "/api/v3/pet/findByStatus?status=sold"),
        ("POST", "/api/v3/store/order"),
        // No operation: the template /pet/{petId} does not take the concrete
        // path findByStatus, and /internal is not in the document.
        ("DELETE", "/api/v3/pet/findByStatus"),
        ("GET", "/api/v3/internal/metrics"),
    ] {
        log += &logged_call("petstore", STOREFRONT, method, path, 8080, false);
    }
    log += &logged_call("petstore", OPS, "DELETE", "/api/v3/pet/7", 8080, false);
    for (path, grpc) in [
        ("/shop.inventory.v1.Inventory/GetItem", true),
        ("/shop.inventory.v1.Inventory/ListItems", true),
        ("/shop.inventory.v1.Admin/Purge", true),
        // Not a method of the descriptors; a plain POST is no gRPC call.
        ("/shop.inventory.v1.Inventory/Nope", true),
        ("/shop.inventory.v1.Inventory/Reserve", false),
    ] {
        log += &logged_call("inventory", STOREFRONT, "POST", path, 50051, grpc);
    }
    let d = dir(
        "learn-operations",
        &[
            ("10-workloads.yaml", &workloads),
            ("11-service.yaml", service),
            ("20-inventory-api.yaml", &read("20-inventory-api.yaml")),
            ("21-petstore-api.yaml", &read("21-petstore-api.yaml")),
            ("calls.log", &log),
        ],
    );
    let learn = || {
        let out = bin()
            .args(["learn", "--manifests"])
            .arg(&d)
            .arg("--logs")
            .arg(d.join("calls.log"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (proposal, summary) = learn();
    assert_eq!(learn().0, proposal, "deterministic");
    let docs: Vec<serde_json::Value> = proposal
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let rules = |name: &str| {
        let a = docs.iter().find(|a| a["metadata"]["name"] == name).unwrap();
        a["spec"]["rules"].clone()
    };
    assert_eq!(
        rules("inventory"),
        serde_json::json!([{
            "name": "web.storefront",
            "from": [{"serviceAccounts": ["web/storefront"]}],
            "to": [
                {"grpc": {"service": "shop.inventory.v1.Admin", "methods": ["Purge"],
                          "api": {"configMap": "inventory-api", "key": "inventory.binpb"}},
                 "ports": [50051]},
                {"grpc": {"service": "shop.inventory.v1.Inventory", "methods": ["GetItem", "ListItems"],
                          "api": {"configMap": "inventory-api", "key": "inventory.binpb"}},
                 "ports": [50051]},
                {"methods": ["POST"],
                 "paths": ["/shop.inventory.v1.Inventory/Nope", "/shop.inventory.v1.Inventory/Reserve"],
                 "ports": [50051]},
            ]
        }]),
        "{proposal}"
    );
    assert_eq!(
        rules("petstore"),
        serde_json::json!([
            {"name": "web.ops",
             "from": [{"serviceAccounts": ["web/ops"]}],
             "to": [{"openapi": {"api": {"configMap": "petstore-api", "key": "openapi.yaml"},
                                 "operations": ["deletePet"]},
                     "ports": [8080]}]},
            {"name": "web.storefront",
             "from": [{"serviceAccounts": ["web/storefront"]}],
             "to": [
                {"openapi": {"api": {"configMap": "petstore-api", "key": "openapi.yaml"},
                             "operations": ["findPetsByStatus", "getPetById", "placeOrder"]},
                 "ports": [8080]},
                {"methods": ["DELETE"], "paths": ["/api/v3/pet/findByStatus"], "ports": [8080]},
                {"methods": ["GET"], "paths": ["/api/v3/internal/metrics"], "ports": [8080]},
             ]},
        ]),
        "{proposal}"
    );
    for line in [
        "learn: 7 operations of API descriptions proposed by name",
        "learn: no operation of the API descriptions, proposed by path: shop/inventory cluster.local/ns/web/sa/storefront POST /shop.inventory.v1.Inventory/Nope seen 1",
        "learn: no operation of the API descriptions, proposed by path: shop/inventory cluster.local/ns/web/sa/storefront POST /shop.inventory.v1.Inventory/Reserve seen 1",
        "learn: no operation of the API descriptions, proposed by path: shop/petstore cluster.local/ns/web/sa/storefront DELETE /api/v3/pet/findByStatus seen 1",
        "learn: no operation of the API descriptions, proposed by path: shop/petstore cluster.local/ns/web/sa/storefront GET /api/v3/internal/metrics seen 1",
    ] {
        assert!(summary.contains(line), "{line}\n{summary}");
    }
    assert_eq!(summary.matches("proposed by path").count(), 4, "{summary}");
    // The proposal in place: replay of the same logs admits every line, and
    // a call outside it is still denied (the proposal is not "allow all").
    std::fs::write(d.join("30-proposal.yaml"), &proposal).unwrap();
    let replay = |logs: &str| {
        let out = bin()
            .args(["replay", "-o", "json", "--manifests"])
            .arg(&d)
            .args(["--logs", logs])
            .current_dir(&d)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), report)
    };
    let (status, report) = replay("calls.log");
    assert_eq!(status, Some(0), "{report:#}");
    assert_eq!(
        (report["admitted"].as_u64(), report["denied"].as_u64()),
        (Some(12), Some(0)),
        "{report:#}"
    );
    assert_eq!(report["newlyDenied"].as_array().map(Vec::len), Some(0), "{report:#}");
    let mut more = logged_call("petstore", STOREFRONT, "DELETE", "/api/v3/pet/10", 8080, false);
    more += &logged_call("petstore", STOREFRONT, "GET", "/api/v3/pet/12", 8080, false);
    std::fs::write(d.join("more.log"), more).unwrap();
    let (status, report) = replay("more.log");
    assert_eq!(status, Some(1), "{report:#}");
    assert_eq!(
        (report["admitted"].as_u64(), report["denied"].as_u64()),
        (Some(1), Some(1)),
        "{report:#}"
    );
}
