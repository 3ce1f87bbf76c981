//! The handlers of the `meshward-control` commands. Each returns the exit
//! status for its outcome (0 success, 1 findings) or a [`CliError`] (2).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use meshward_filter::{Engine, Verdict};
use serde::Serialize;
use serde_json::json;

use super::{traffic, CliError, Command, DataFormat, Format};
use crate::crd::AllowlistMode;
use crate::derive::{derive, ModuleDigest, Settings};
use crate::{crd, learn, lint, manifests, oci, serve, simulate};

/// Runs one command.
pub fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Crd { output } => {
            use kube::CustomResourceExt;
            match output {
                DataFormat::Yaml => print!("{}", crd::crd_yaml().map_err(yaml_error)?),
                DataFormat::Json => print_json(&crd::Allowlist::crd())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            manifests,
            derivation,
            output,
        } => {
            let (settings, trust_domain) = settings_of(derivation)?;
            render(&manifests, &settings, &trust_domain, output)
        }
        Command::Check {
            manifests,
            from,
            to,
            host,
            port,
            headers,
            trust_domain,
            output,
            request,
        } => {
            let headers = headers
                .iter()
                .map(|h| match h.split_once(':') {
                    Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
                    None => Err(CliError::Header(h.clone())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let c = simulate::Check {
                from,
                principal: None,
                to,
                request,
                host,
                port,
                headers,
            };
            check(&manifests, &trust_domain, &c, output)
        }
        Command::Lint {
            manifests,
            trust_domain,
            output,
        } => lint(&manifests, &trust_domain, output),
        Command::Learn {
            manifests,
            logs,
            namespace,
            since,
            mode,
            min_count,
            include_denied,
            trust_domain,
        } => {
            let options = learn::Options {
                mode: match mode {
                    super::LearnMode::Audit => AllowlistMode::Audit,
                    super::LearnMode::Enforce => AllowlistMode::Enforce,
                },
                min_count,
                include_denied,
                ..learn::Options::default()
            };
            match namespace {
                Some(ns) => traffic::learn_in_cluster(&ns, &logs, since, &trust_domain, options),
                None => traffic::learn(&manifests, &logs, &trust_domain, options),
            }
        }
        Command::Replay {
            manifests,
            logs,
            namespace,
            since,
            trust_domain,
            output,
        } => match namespace {
            Some(ns) => traffic::replay_in_cluster(&ns, &manifests, &logs, since, &trust_domain, output),
            None => traffic::replay(&manifests, &logs, &trust_domain, output),
        },
        Command::Import {
            inputs,
            manifests,
            root_namespace,
            trust_domain,
        } => super::import::run(&inputs, &manifests, &root_namespace, &trust_domain),
        Command::Validate { files, output } => validate(&files, output),
        Command::Serve {
            listen,
            derivation,
            debounce_ms,
            resync_seconds,
            write_concurrency,
            token_audience,
            no_leader_election,
            lease_namespace,
            identity,
        } => {
            let (settings, trust_domain) = settings_of(derivation)?;
            let config = serve::ServeConfig {
                settings,
                trust_domain,
                debounce: Duration::from_millis(debounce_ms),
                resync: Duration::from_secs(resync_seconds),
                write_concurrency: usize::try_from(write_concurrency).unwrap_or(serve::DEFAULT_WRITE_CONCURRENCY),
                token_audience,
                lease: (!no_leader_election).then(|| lease_config(lease_namespace, identity)),
                ..serve::ServeConfig::default()
            };
            run_service(listen, config)
        }
        Command::OciImage { wasm, out, tag, output } => oci_image(&wasm, &out, &tag, output),
    }
}

/// The settings and trust domain of `render` and `serve`; says on stderr
/// when a sha256 will not be checked by anyone.
fn settings_of(derivation: super::Derivation) -> Result<(Settings, String), CliError> {
    let (settings, trust_domain, digest) = derivation.split()?;
    if digest == ModuleDigest::NotVerified && settings.sha256.is_some() {
        eprintln!(
            "warning: --sha256 is written into the WasmPlugins, but Istio does not verify it for file:// URLs \
             (the proxy reads the file as it is)"
        );
    }
    Ok((settings, trust_domain))
}

/// The Lease this replica competes for: in `$POD_NAMESPACE` (set by the
/// install's Deployment through the downward API) as `$POD_NAME`.
fn lease_config(namespace: Option<String>, identity: Option<String>) -> serve::lease::LeaseConfig {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let namespace = namespace
        .or_else(|| env("POD_NAMESPACE"))
        .unwrap_or_else(|| "meshward-system".into());
    let identity = identity
        .or_else(|| env("POD_NAME"))
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| format!("meshward-control-{}", std::process::id()));
    serve::lease::LeaseConfig::new(namespace, identity)
}

/// Settings for offline use: the module URL does not affect decisions.
pub(super) fn offline_settings() -> Settings {
    Settings {
        url: "file:///meshward.wasm".into(),
        ..Settings::default()
    }
}

pub(super) fn yaml_error(e: impl std::fmt::Display) -> CliError {
    CliError::Output {
        format: "YAML",
        message: e.to_string(),
    }
}

pub(super) fn json_error(e: impl std::fmt::Display) -> CliError {
    CliError::Output {
        format: "JSON",
        message: e.to_string(),
    }
}

fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(value).map_err(json_error)?);
    Ok(())
}

/// Prints `value` as YAML or JSON (the text form is the caller's).
pub(super) fn print_data(value: &impl Serialize, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(value),
        Format::Yaml | Format::Text => {
            print!("{}", manifests::to_yaml(value).map_err(yaml_error)?);
            Ok(())
        }
    }
}

fn render(
    inputs: &[PathBuf],
    settings: &Settings,
    trust_domain: &str,
    output: DataFormat,
) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(inputs, trust_domain)?;
    let desired = derive(&loaded.snapshot.to_state(), settings, Timestamp::now());
    let mut ok = true;
    for s in &desired.statuses {
        for c in s.status.conditions.iter().filter(|c| c.status != "True") {
            eprintln!("Allowlist {}/{}: {}: {}", s.namespace, s.name, c.reason, c.message);
            ok = false;
        }
    }
    match output {
        DataFormat::Yaml => {
            for plugin in &desired.wasm_plugins {
                print!("---\n{}", manifests::to_yaml(plugin).map_err(yaml_error)?);
            }
        }
        // A `List`, as `kubectl get -o json` prints several objects.
        DataFormat::Json => print_json(&json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": desired.wasm_plugins,
        }))?,
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A check's result, for `-o yaml|json`.
#[derive(Serialize)]
struct CheckReport<'a> {
    verdict: &'a str,
    rule: Option<&'a str>,
    explanation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nearest: Option<NearestReport<'a>>,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct NearestReport<'a> {
    rule: &'a str,
    failed: Vec<FailedReport<'a>>,
}

#[derive(Serialize)]
struct FailedReport<'a> {
    part: &'a str,
    detail: &'a str,
}

fn check(inputs: &[PathBuf], trust_domain: &str, c: &simulate::Check, output: Format) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(inputs, trust_domain)?;
    let outcome = simulate::check(&loaded.snapshot.to_state(), &offline_settings(), c)?;
    match output {
        Format::Text => {
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            println!("{outcome}");
        }
        format => print_data(
            &CheckReport {
                verdict: outcome.verdict.as_str(),
                rule: outcome.rule.as_deref(),
                explanation: &outcome.explanation,
                nearest: outcome.nearest.as_ref().map(|n| NearestReport {
                    rule: &n.rule,
                    failed: n
                        .failed
                        .iter()
                        .map(|f| FailedReport {
                            part: f.part,
                            detail: &f.detail,
                        })
                        .collect(),
                }),
                warnings: &outcome.warnings,
            },
            format,
        )?,
    }
    Ok(if outcome.verdict == Verdict::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One lint finding, for `-o yaml|json`.
#[derive(Serialize)]
struct FindingReport<'a> {
    object: &'a str,
    message: &'a str,
}

fn lint(inputs: &[PathBuf], trust_domain: &str, output: Format) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(inputs, trust_domain)?;
    let findings = lint::lint_snapshot(&loaded.snapshot, &offline_settings());
    match output {
        Format::Text => {
            for f in &findings {
                println!("{f}");
            }
            if findings.is_empty() {
                println!("no findings");
            }
        }
        format => {
            let list: Vec<FindingReport<'_>> = findings
                .iter()
                .map(|f| FindingReport {
                    object: &f.object,
                    message: &f.message,
                })
                .collect();
            print_data(&json!({ "findings": list }), format)?;
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One file's result, for `-o yaml|json`.
#[derive(Serialize)]
struct ValidateReport {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Validates plugin configuration files: 1 if any is invalid, 2 if one
/// cannot be read.
fn validate(files: &[PathBuf], output: Format) -> Result<ExitCode, CliError> {
    let mut reports = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        let file = file.display().to_string();
        reports.push(match Engine::from_json(&bytes) {
            Ok(engine) => {
                let s = engine.stats();
                ValidateReport {
                    file,
                    valid: true,
                    policies: Some(s.policies),
                    rules: Some(s.rules),
                    error: None,
                }
            }
            Err(e) => ValidateReport {
                file,
                valid: false,
                policies: None,
                rules: None,
                error: Some(e.to_string()),
            },
        });
    }
    match output {
        Format::Text => {
            for r in &reports {
                match (&r.error, r.policies, r.rules) {
                    (Some(e), _, _) => eprintln!("{}: {e}", r.file),
                    (None, Some(p), Some(n)) => println!("{}: valid ({p} policies, {n} rules)", r.file),
                    (None, _, _) => println!("{}: valid", r.file),
                }
            }
        }
        format => print_data(&json!({ "files": reports }), format)?,
    }
    Ok(if reports.iter().all(|r| r.valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn oci_image(wasm: &Path, out: &Path, tag: &str, output: Format) -> Result<ExitCode, CliError> {
    let image = oci::write(wasm, out, tag)?;
    match output {
        Format::Text => {
            println!("wrote {} (OCI image layout, tag {})", out.display(), image.tag);
            println!("manifest digest: {}", image.manifest_digest);
            println!(
                "WasmPlugin sha256 for oci:// URLs (the manifest digest): {}",
                image.manifest_digest.hex()
            );
            println!(
                "plugin.wasm sha256 (WasmPlugin sha256 for http(s):// URLs): {}",
                image.module_digest.hex()
            );
        }
        format => print_data(
            &json!({
                "archive": out.display().to_string(),
                "tag": image.tag,
                "manifestDigest": image.manifest_digest.to_string(),
                "moduleDigest": image.module_digest.to_string(),
            }),
            format,
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Structured JSON logs on stderr (`RUST_LOG` filters, default `info`), a
/// multi-threaded runtime, and the service until SIGTERM or Ctrl-C.
fn run_service(listen: std::net::SocketAddr, config: serve::ServeConfig) -> Result<ExitCode, CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Serve(format!("starting the runtime: {e}")))?;
    let result = runtime.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| format!("Kubernetes client: {e}"))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("--listen {listen}: {e}"))?;
        serve::run(client, config, listener, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(error = %e, "meshward-control stopped");
            Err(CliError::Serve(e))
        }
    }
}

/// Completes on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
