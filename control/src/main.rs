//! The `meshward-control` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meshward_control::derive::{derive, Settings};
use meshward_control::{crd, manifests};
use meshward_filter::Engine;

#[derive(Parser)]
#[command(
    name = "meshward-control",
    version,
    about = "meshward's control service and offline tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Allowlist CRD (YAML).
    Crd,
    /// Print the WasmPlugins derived from the manifests in a directory.
    Render {
        /// Directory of Kubernetes YAML (Namespaces, workloads, Services, Allowlists).
        #[arg(long)]
        manifests: PathBuf,
        /// The filter module's URL.
        #[arg(long, default_value = "oci://ghcr.io/meshward/filter:latest")]
        url: String,
        /// The module's sha256.
        #[arg(long)]
        sha256: Option<String>,
        /// The mesh's trust domain.
        #[arg(long, default_value = "cluster.local")]
        trust_domain: String,
    },
    /// Validate plugin configuration files (the JSON of a pluginConfig).
    Validate {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshward-control: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Render {
            manifests,
            url,
            sha256,
            trust_domain,
        } => render(&manifests, Settings { url, sha256 }, &trust_domain),
        Command::Validate { files } => validate(&files),
    }
}

fn render(dir: &std::path::Path, settings: Settings, trust_domain: &str) -> ExitCode {
    let loaded = match manifests::load(dir, trust_domain) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("meshward-control: {e}");
            return ExitCode::FAILURE;
        }
    };
    let desired = derive(&loaded.snapshot, &settings, k8s_openapi::jiff::Timestamp::now());
    let mut ok = true;
    for s in &desired.statuses {
        for c in s.status.conditions.iter().filter(|c| c.status != "True") {
            eprintln!("Allowlist {}/{}: {}: {}", s.namespace, s.name, c.reason, c.message);
            ok = false;
        }
    }
    for plugin in &desired.wasm_plugins {
        match serde_yaml::to_string(plugin) {
            Ok(yaml) => print!("---\n{yaml}"),
            Err(e) => {
                eprintln!("meshward-control: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for file in files {
        let name = file.display();
        match std::fs::read(file) {
            Err(e) => {
                eprintln!("{name}: {e}");
                ok = false;
            }
            Ok(bytes) => match Engine::from_json(&bytes) {
                Ok(engine) => {
                    let s = engine.stats();
                    println!("{name}: valid ({} policies, {} rules)", s.policies, s.rules);
                }
                Err(e) => {
                    eprintln!("{name}: {e}");
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
