//! # meshward-control
//!
//! meshward's control service. It will derive allowlists from cluster state and
//! write Istio `WasmPlugin`s (see the control-service issue); today it offers
//! the offline check every later subcommand builds on:
//!
//! ```text
//! meshward-control validate FILE...   # exit 0 if every plugin config is valid
//! ```
//!
//! Validation is the filter's own engine ([`meshward_filter::Engine`]), so a
//! configuration this accepts is one the filter accepts.

use std::process::ExitCode;

use meshward_filter::Engine;

const USAGE: &str = "usage: meshward-control validate FILE...

Validates meshward plugin configurations (the JSON of a WasmPlugin's
pluginConfig) with the filter's own engine. Exit status 0 when every file is
valid, 1 when one is not, 2 on a usage error.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((cmd, files)) if cmd == "validate" && !files.is_empty() => validate(files),
        Some((flag, _)) if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn validate(files: &[String]) -> ExitCode {
    let mut ok = true;
    for file in files {
        match std::fs::read(file) {
            Err(e) => {
                eprintln!("{file}: {e}");
                ok = false;
            }
            Ok(bytes) => match Engine::from_json(&bytes) {
                Ok(engine) => {
                    let s = engine.stats();
                    println!("{file}: valid ({} policies, {} rules)", s.policies, s.rules);
                }
                Err(e) => {
                    eprintln!("{file}: {e}");
                    ok = false;
                }
            },
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("meshward-control-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn validate_reports_each_file() {
        let good = write("good.json", r#"{"policies":[{"name":"p","rules":[{}]}]}"#);
        let bad = write(
            "bad.json",
            r#"{"policies":[{"name":"p","rules":[{"to":[{"paths":["x"]}]}]}]}"#,
        );
        assert_eq!(validate(std::slice::from_ref(&good)), ExitCode::SUCCESS);
        assert_eq!(validate(&[good, bad]), ExitCode::FAILURE);
        assert_eq!(validate(&["/nonexistent/meshward.json".into()]), ExitCode::FAILURE);
    }
}
