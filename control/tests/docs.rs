//! The docs, run: every offline `meshward-control` command the documentation
//! shows is executed, and must print what the documentation says it prints.
//!
//! # Which files
//!
//! `README.md`, `CONTRIBUTING.md`, `docs/*.md` and `examples/*/README.md`.
//!
//! # The convention
//!
//! * Commands are read from fenced code blocks tagged `sh`, `shell`, `bash` or
//!   `console`. A `text` block is never run (use it for synopses and output
//!   shown alone); an untagged block, or any other tag, that contains a
//!   `meshward-control` command fails the test, so a command cannot hide
//!   from it.
//! * A **command** is a line that starts with `meshward-control`,
//!   `target/debug/meshward-control` or `cargo run [-q] -p meshward-control --`;
//!   a trailing `\` continues it on the next line. It runs from the
//!   repository root, with the binary this test is built with. Single and
//!   double quotes group words; `> FILE` compares the command's stdout with
//!   that file instead of writing it.
//! * Its **expected output** is the lines right after it, up to a blank line,
//!   the next command (run or skipped), or the end of the block, in one of
//!   two styles: each line starting with `# ` (the block stays paste-able
//!   into a shell; the `# ` is removed, and output ends at the first line
//!   without `#`), or bare lines (as in `examples/bookinfo/README.md`). It is compared with the
//!   command's stdout followed by its stderr, line by line, trailing spaces
//!   ignored. A line `...` stands for any number of lines; a word in angle
//!   brackets (`<hex>`) stands for any non-empty text on that line.
//! * The **exit status** must be the one `docs/cli.md` documents for what the
//!   output shows: `check` 0 for `allow:`, 1 otherwise; `lint` 0 for `no
//!   findings`, 1 otherwise; `validate` 0 if every line says `valid`, 1
//!   otherwise; `replay` 0 if it shows `admitted N, denied 0, ...`, 1
//!   otherwise; `import` 1 if it shows `import: ...` with policies not
//!   imported, else 0; every other command 0.
//! * `oci-image` runs in a scratch directory, with a minimal WebAssembly
//!   module at the `--wasm` path it names (so it needs no wasm build and
//!   writes nothing into the repository).
//! * Lines that are not `meshward-control` commands must start with a program
//!   of [`SKIPPED`], each listed with why it cannot run here (a cluster, a
//!   registry, Envoy, minutes of measurement); lines starting with `#` that
//!   are not a command's output are comments. Anything else
//!   fails the test: a new command is either made runnable or listed there.
//!   `meshward-control serve` is skipped (it needs a cluster); any other
//!   subcommand this test does not know fails it.
//!
//! Also: every example directory shows its expected output, and the
//! `expected/render.yaml` of each is what `render` prints; every relative
//! link in these files reaches a file and, with `#anchor`, a heading; the
//! README's `stats_tags` block is `docs/observability.md`'s.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Programs whose lines in shell blocks are not run, and why.
const SKIPPED: &[(&str, &str)] = &[
    ("kubectl", "needs a cluster"),
    ("curl", "talks to the running service or a sidecar"),
    (
        "make",
        "builds, runs Envoy, or runs the whole suite this test is part of",
    ),
    (
        "cargo",
        "builds and tests (only `cargo run -p meshward-control --` is a command here)",
    ),
    ("skopeo", "pushes to a registry"),
    ("docker", "builds and pushes images (no container daemon here)"),
    (
        "helm",
        "installs into a cluster (the chart is rendered by control/tests/install_yaml.rs)",
    ),
    ("scripts/", "measurements and setup (minutes; valgrind, wrk, Envoy)"),
    ("target/debug/meshward-bench", "load runs in Envoy (minutes)"),
    ("valgrind", "measurements (minutes)"),
];

/// Subcommands of `meshward-control` that are not run, and why.
const SKIPPED_SUBCOMMANDS: &[(&str, &str)] = &[("serve", "needs a cluster")];

/// Subcommands that are run.
const RUN: &[&str] = &[
    "render",
    "check",
    "lint",
    "crd",
    "validate",
    "oci-image",
    "learn",
    "replay",
    "import",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The documentation files, as (path relative to the root, text).
fn doc_files() -> Vec<(String, String)> {
    let mut names = vec!["README.md".to_string(), "CONTRIBUTING.md".to_string()];
    let mut md_in = |dir: &str, file: Option<&str>| {
        let mut found: Vec<String> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| match file {
                Some(f) => p.join(f).is_file().then(|| p.join(f)),
                None => (p.extension().is_some_and(|e| e == "md")).then_some(p),
            })
            .map(|p| p.strip_prefix(root()).unwrap().to_string_lossy().into_owned())
            .collect();
        found.sort();
        names.extend(found);
    };
    md_in("docs", None);
    md_in("examples", Some("README.md"));
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root().join(&n)).unwrap_or_else(|e| panic!("{n}: {e}"));
            (n, text)
        })
        .collect()
}

/// One fenced code block.
struct Block {
    /// The info string after the opening fence (`sh`, `text`, ...).
    info: String,
    /// The line number of the first content line (1-based).
    first_line: usize,
    /// The content, without the fence's indentation.
    lines: Vec<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    // The open block and its fence's indentation.
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let block = Block {
                        info: info.trim().to_string(),
                        first_line: i + 2,
                        lines: Vec::new(),
                    };
                    open = Some((block, indent));
                }
            }
            Some(_) if trimmed.trim_end() == "```" => out.extend(open.take().map(|(block, _)| block)),
            Some((block, fence)) => block.lines.push(line[indent.min(*fence)..].to_string()),
        }
    }
    out
}

/// Splits a command line into words: spaces separate, single and double
/// quotes group (no escapes), an unquoted `#` starting a word begins a
/// comment. The flag is false if a quote is still open at the end (the
/// words are then those read so far).
fn split_words(line: &str) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ' | '\n') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '#') if !in_word => break,
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, quote.is_none())
}

/// The words of a command line.
fn words(line: &str) -> Vec<String> {
    split_words(line).0
}

/// The arguments after the program, if `line` runs `meshward-control`.
fn meshward_args(line: &str) -> Option<Vec<String>> {
    let w = words(line);
    let program = w.first()?;
    if program == "meshward-control" || program.ends_with("/meshward-control") {
        return Some(w[1..].to_vec());
    }
    if program == "cargo" && w.get(1).is_some_and(|s| s == "run") {
        let dashes = w.iter().position(|s| s == "--")?;
        let before = &w[2..dashes];
        let package = before
            .windows(2)
            .any(|p| (p[0] == "-p" || p[0] == "--package") && p[1] == "meshward-control");
        let others_known = before
            .iter()
            .all(|s| ["-q", "--quiet", "-p", "--package", "meshward-control"].contains(&s.as_str()));
        if package {
            assert!(
                others_known,
                "`{line}`: only `cargo run [-q] -p meshward-control --` is supported"
            );
            return Some(w[dashes + 1..].to_vec());
        }
    }
    None
}

/// The reason a non-`meshward-control` line is not run, if its program is
/// listed in [`SKIPPED`].
fn skipped(line: &str) -> Option<&'static str> {
    let w = words(line);
    // Leading `NAME=value` environment assignments.
    let program = w.iter().find(|s| {
        !s.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
    })?;
    SKIPPED
        .iter()
        .find(|(p, _)| {
            if p.ends_with('/') {
                program.starts_with(p)
            } else {
                program == p
            }
        })
        .map(|(_, why)| *why)
}

/// One documented command and what the documentation says it prints.
struct Shown {
    /// `file:line`.
    at: String,
    /// The command as written.
    line: String,
    /// The arguments after `meshward-control`.
    args: Vec<String>,
    /// The expected output (style markers removed).
    expected: Vec<String>,
}

/// What one documentation file asks for.
#[derive(Default)]
struct Reading {
    shown: Vec<Shown>,
    /// `file:line: command: why` for every command that is not run.
    skipped: Vec<String>,
    /// Lines that break the convention.
    errors: Vec<String>,
}

fn read(file: &str, text: &str) -> Reading {
    let mut r = Reading::default();
    for block in blocks(text) {
        let shell = ["sh", "shell", "bash", "console"].contains(&block.info.as_str());
        if !shell {
            if block.info != "text" {
                for (i, line) in block.lines.iter().enumerate() {
                    if meshward_args(line).is_some() {
                        r.errors.push(format!(
                            "{file}:{}: a `meshward-control` command in a ```{} block: tag the block `sh` (run) or `text` (shown only)",
                            block.first_line + i,
                            block.info
                        ));
                    }
                }
            }
            continue;
        }
        read_shell_block(file, &block, &mut r);
    }
    r
}

/// How the lines after the current command are read.
#[derive(Clone, Copy)]
enum State {
    /// After a blank line, a comment, a skipped command, or at the start.
    Idle,
    /// After a command that runs: its output, in a style not known yet
    /// (`None`), `# ` lines (`Some(true)`) or bare lines (`Some(false)`).
    Output(Option<bool>),
}

fn read_shell_block(file: &str, block: &Block, r: &mut Reading) {
    let mut state = State::Idle;
    let mut i = 0;
    while i < block.lines.len() {
        let at = format!("{file}:{}", block.first_line + i);
        let mut line = block.lines[i].trim_end().to_string();
        i += 1;
        if line.is_empty() {
            state = State::Idle;
            continue;
        }
        let comment = line.starts_with('#');
        let command = meshward_args(&line).is_some() || skipped(&line).is_some();
        // Output: `# ` lines, or bare lines that are not commands, in the
        // style its first line set.
        if let State::Output(style) = state {
            let hashed = style.unwrap_or(comment);
            if !command && hashed == comment {
                let out = if hashed {
                    line.strip_prefix("# ").or(line.strip_prefix('#')).unwrap_or_default()
                } else {
                    &line
                };
                r.shown.last_mut().unwrap().expected.push(out.to_string());
                state = State::Output(Some(hashed));
                continue;
            }
        }
        if comment {
            state = State::Idle;
            continue;
        }
        // A trailing `\` continues the command, and so does an open quote.
        while i < block.lines.len() {
            if line.ends_with('\\') {
                line.pop();
            } else if split_words(&line).1 {
                break;
            } else {
                line.push('\n');
            }
            line.push_str(block.lines[i].trim());
            i += 1;
        }
        if let Some(args) = meshward_args(&line) {
            let sub = args.first().map(String::as_str).unwrap_or_default();
            if RUN.contains(&sub) {
                r.shown.push(Shown {
                    at,
                    line,
                    args,
                    expected: Vec::new(),
                });
                state = State::Output(None);
            } else if let Some((_, why)) = SKIPPED_SUBCOMMANDS.iter().find(|(s, _)| *s == sub) {
                r.skipped.push(format!("{at}: `{line}`: {why}"));
                state = State::Idle;
            } else {
                r.errors.push(format!(
                    "{at}: `{line}`: unknown subcommand {sub:?} (run it here or list it)"
                ));
                state = State::Idle;
            }
        } else if let Some(why) = skipped(&line) {
            r.skipped.push(format!("{at}: `{line}`: {why}"));
            state = State::Idle;
        } else {
            r.errors.push(format!(
                "{at}: `{line}`: not a command this test knows: make it a `meshward-control` command, \
                 list its program in SKIPPED, or tag the block `text`"
            ));
            state = State::Idle;
        }
    }
}

/// Whether `actual` matches `expected`: `...` for any lines, `<word>` for
/// any non-empty text within a line.
fn lines_match(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(e, a) && lines_match(rest, more)),
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    // Literal pieces between `<...>` placeholders, found in order.
    let mut pieces = Vec::new();
    let mut rest = expected;
    while let Some(open) = rest.find('<') {
        match rest[open..].find('>') {
            Some(len) if len > 1 && !rest[open..open + len].contains(' ') => {
                pieces.push(&rest[..open]);
                rest = &rest[open + len + 1..];
            }
            _ => break,
        }
    }
    if pieces.is_empty() {
        return expected == actual;
    }
    let Some(mut at) = actual.strip_prefix(pieces[0]) else {
        return false;
    };
    for piece in &pieces[1..] {
        // The placeholder before `piece` takes at least one character.
        match at.get(1..).and_then(|s| s.find(piece)) {
            Some(found) => at = &at[1 + found + piece.len()..],
            None => return false,
        }
    }
    // The last placeholder takes at least one character, then `rest` ends it.
    at.len() > rest.len() && at.ends_with(rest)
}

/// The exit status the documentation implies (see the module docs).
fn expected_status(args: &[String], expected: &[String]) -> i32 {
    let fails = match args[0].as_str() {
        "check" => !expected.first().is_some_and(|l| l.starts_with("allow:")),
        "lint" => !(expected.is_empty() || expected == ["no findings"]),
        "validate" => !expected.iter().all(|l| l.contains(": valid (")),
        "replay" => !expected
            .iter()
            .any(|l| l.starts_with("admitted ") && l.contains(", denied 0,")),
        "import" => expected
            .iter()
            .any(|l| l.starts_with("import: ") && !l.contains(", 0 not imported")),
        _ => false,
    };
    i32::from(fails)
}

/// A minimal WebAssembly module: the header, no sections.
const WASM_HEADER: &[u8] = b"\0asm\x01\0\0\0";

/// Runs one documented command; `Err` says how it differs from the docs.
fn run(shown: &Shown, scratch: &Path) -> Result<(), String> {
    let mut args = shown.args.clone();
    let redirect = match args.iter().position(|a| a == ">") {
        Some(at) => {
            let file = args.get(at + 1).cloned().ok_or("`>` without a file")?;
            args.truncate(at);
            Some(file)
        }
        None => None,
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshward-control"));
    if args[0] == "oci-image" {
        let wasm = args
            .windows(2)
            .find(|w| w[0] == "--wasm")
            .map(|w| w[1].clone())
            .ok_or("oci-image without --wasm")?;
        let relative = Path::new(&wasm)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !relative {
            return Err(format!(
                "--wasm {wasm}: use a path inside the repository, relative to its root"
            ));
        }
        let module = scratch.join(&wasm);
        std::fs::create_dir_all(module.parent().unwrap()).unwrap();
        std::fs::write(&module, WASM_HEADER).unwrap();
        cmd.current_dir(scratch);
    } else {
        cmd.current_dir(root());
    }
    let out = cmd.args(&args).output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let status = out.status.code().unwrap_or(-1);
    let mut problems = Vec::new();
    if let Some(file) = &redirect {
        let want = std::fs::read_to_string(root().join(file)).map_err(|e| format!("{file}: {e}"))?;
        if stdout != want {
            problems.push(format!("its output differs from {file}"));
        }
    } else if !shown.expected.is_empty() {
        let actual: Vec<String> = printed.lines().map(|l| l.trim_end().to_string()).collect();
        let expected: Vec<String> = shown.expected.iter().map(|l| l.trim_end().to_string()).collect();
        if !lines_match(&expected, &actual) {
            problems.push(format!(
                "the docs show:\n{}\nit printed:\n{}",
                expected.join("\n"),
                actual.join("\n")
            ));
        }
    }
    let want_status = expected_status(&args, &shown.expected);
    if status != want_status {
        problems.push(format!("exit status {status}, the docs imply {want_status}\n{printed}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshward-control-docs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_command_in_the_docs_prints_what_the_docs_show() {
    let scratch = scratch("commands");
    let mut failures = Vec::new();
    let mut ran = 0;
    for (file, text) in doc_files() {
        let reading = read(&file, &text);
        failures.extend(reading.errors);
        for line in &reading.skipped {
            eprintln!("not run: {line}");
        }
        for shown in &reading.shown {
            ran += 1;
            if let Err(e) = run(shown, &scratch) {
                failures.push(format!("{}: `{}`:\n{e}", shown.at, shown.line));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran > 0, "no command found in the docs");
    eprintln!("{ran} documented commands run");
}

/// Examples whose `expected/render.yaml` `control/tests/cli.rs` already
/// compares with `render` (with the URL in their README).
const RENDERED_ELSEWHERE: &[&str] = &["bookinfo"];

#[test]
fn every_example_shows_its_expected_output() {
    let examples = root().join("examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let readme = format!("examples/{name}/README.md");
        let text = std::fs::read_to_string(root().join(&readme)).unwrap_or_else(|e| panic!("{readme}: {e}"));
        let shows_output = read(&readme, &text).shown.iter().any(|s| !s.expected.is_empty());
        let manifests = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .any(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
        let expected = dir.join("expected");
        if manifests {
            // Manifests render to WasmPlugins: the expected file is the output.
            let mut files: Vec<String> = std::fs::read_dir(&expected)
                .unwrap_or_else(|e| panic!("examples/{name}/expected: {e}"))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            assert_eq!(
                files,
                ["render.yaml"],
                "examples/{name}/expected: only render.yaml is produced by a command"
            );
            if !RENDERED_ELSEWHERE.contains(&name.as_str()) {
                let want = std::fs::read_to_string(expected.join("render.yaml")).unwrap();
                let url = want
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("url: "))
                    .unwrap_or_else(|| panic!("examples/{name}/expected/render.yaml: no url"));
                let out = Command::new(env!("CARGO_BIN_EXE_meshward-control"))
                    .args(["render", "--manifests"])
                    .arg(&dir)
                    .args(["--url", url])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    want,
                    "examples/{name}/expected/render.yaml is stale"
                );
            }
        } else {
            assert!(!expected.exists(), "examples/{name}/expected: no manifests to render");
            assert!(
                shows_output,
                "{readme}: shows no command with its output (see control/tests/docs.rs)"
            );
        }
    }
}

/// The anchors GitHub gives the headings of a markdown text: lower case,
/// punctuation dropped, spaces as `-`, `-1`, `-2`, ... on repeats.
fn anchors(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some(title) = line.strip_prefix('#').filter(|_| !in_code) else {
            continue;
        };
        let title = title.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let repeats = seen.iter().filter(|s| **s == slug).count();
        out.push(if repeats == 0 {
            slug.clone()
        } else {
            format!("{slug}-{repeats}")
        });
        seen.push(slug);
    }
    out
}

/// The targets of the inline links `[text](target)` of a markdown text,
/// outside code blocks and code spans.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Code spans never hold links: drop them.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_link_in_the_docs_points_at_something() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (file, text) in doc_files() {
        let dir = root().join(&file).parent().unwrap().to_path_buf();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                root().join(&file)
            } else {
                dir.join(path)
            };
            if !target.exists() {
                broken.push(format!("{file}: ({link}): {} does not exist", target.display()));
                continue;
            }
            if !anchor.is_empty() {
                let target_text = std::fs::read_to_string(&target).unwrap_or_default();
                if !anchors(&target_text).iter().any(|a| a == anchor) {
                    broken.push(format!("{file}: ({link}): no heading with the anchor #{anchor}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert!(checked > 0);
}

#[test]
fn the_readme_and_observability_docs_show_the_same_stats_tags() {
    // `control/tests/install_yaml.rs` checks the README's block against the
    // install manifests; docs/observability.md must not drift from it.
    let block = |file: &str| {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let start = text
            .find("stats_config:\n  stats_tags:")
            .unwrap_or_else(|| panic!("{file}: no stats_tags block"));
        let len = text[start..].find("```").unwrap();
        text[start..start + len].to_string()
    };
    assert_eq!(block("README.md"), block("docs/observability.md"));
}

#[test]
fn the_convention_is_read_as_documented() {
    let doc = "\
```sh
meshward-control check --manifests d --to a/b 'GET /'
# allow: x
# exit
kubectl get pods
# NAME

meshward-control lint --manifests d
finding one
finding two
make test
```

```text
meshward-control render --manifests DIR
```

```yaml
meshward-control crd
```
";
    let r = read("t.md", doc);
    assert_eq!(r.shown.len(), 2);
    assert_eq!(r.shown[0].args, ["check", "--manifests", "d", "--to", "a/b", "GET /"]);
    assert_eq!(r.shown[0].expected, ["allow: x", "exit"]);
    assert_eq!(r.shown[0].at, "t.md:2");
    // Bare output runs to a blank line, a command, or the block's end.
    assert_eq!(r.shown[1].expected, ["finding one", "finding two"]);
    assert_eq!(r.skipped.len(), 2, "{:?}", r.skipped);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].starts_with("t.md:19:"), "{:?}", r.errors);

    let r = read("t.md", "```sh\nmeshward-control frobnicate\nfrob --now\n```\n");
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    let r = read(
        "t.md",
        "```sh\ncargo run -q -p meshward-control -- validate a.json \\\n  b.json\n# a.json: valid (1 policies, 1 rules)\n```\n",
    );
    assert_eq!(r.shown[0].args, ["validate", "a.json", "b.json"]);
    // A comment ends the words; an open quote continues the command.
    let r = read(
        "t.md",
        "```sh\nmeshward-control lint --manifests d   # why\ncurl -d '{\n  \"a\": 1}'\n# {}\n```\n",
    );
    assert_eq!(r.shown[0].args, ["lint", "--manifests", "d"]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);

    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&s(&["a", "...", "z"]), &s(&["a", "b", "c", "z"])));
    assert!(lines_match(&s(&["a", "...", "z"]), &s(&["a", "z"])));
    assert!(!lines_match(&s(&["a", "...", "z"]), &s(&["a", "b"])));
    assert!(line_matches("digest: sha256:<hex>", "digest: sha256:0f3a"));
    assert!(!line_matches("digest: sha256:<hex>", "digest: sha256:"));
    assert!(line_matches("<a> and <b>.", "x and y."));
    assert!(!line_matches("<a> and <b>.", "x and y"));
    assert!(line_matches("a < b > c", "a < b > c"));

    let headings = "# T\n## A, `b` → c (d)\n```sh\n# not a heading\n```\n## A, b → c (d)\n";
    assert_eq!(anchors(headings), ["t", "a-b--c-d", "a-b--c-d-1"]);
    assert_eq!(
        links("see [x](a.md#b), `[y](not-a-link)` and [z](c/)"),
        ["a.md#b", "c/"]
    );
}
