//! The handlers of the `meshward-control` commands. Each returns the exit
//! status for its outcome (0 success, 1 findings) or a [`CliError`] (2).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use meshward_filter::{Engine, Verdict};

use super::{CliError, Command};
use crate::derive::{derive, Settings, DEFAULT_BUDGET_BYTES};
use crate::{crd, lint, manifests, oci, serve, simulate};

/// Runs one command.
pub fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Crd => {
            print!("{}", crd::crd_yaml()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Render { manifests, derivation } => {
            let (settings, trust_domain) = derivation.split();
            render(&manifests, &settings, &trust_domain)
        }
        Command::Check {
            manifests,
            from,
            to,
            host,
            port,
            headers,
            trust_domain,
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
            check(&manifests, &trust_domain, &c)
        }
        Command::Lint {
            manifests,
            trust_domain,
        } => lint(&manifests, &trust_domain),
        Command::Validate { files } => validate(&files),
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
            let (settings, trust_domain) = derivation.split();
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
        Command::OciImage { wasm, out, tag } => oci_image(&wasm, &out, &tag),
    }
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
fn offline_settings() -> Settings {
    Settings {
        url: "file:///meshward.wasm".into(),
        sha256: None,
        budget_bytes: DEFAULT_BUDGET_BYTES,
    }
}

fn render(dir: &Path, settings: &Settings, trust_domain: &str) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(dir, trust_domain)?;
    let desired = derive(&loaded.snapshot.to_state(), settings, Timestamp::now());
    let mut ok = true;
    for s in &desired.statuses {
        for c in s.status.conditions.iter().filter(|c| c.status != "True") {
            eprintln!("Allowlist {}/{}: {}: {}", s.namespace, s.name, c.reason, c.message);
            ok = false;
        }
    }
    for plugin in &desired.wasm_plugins {
        print!("---\n{}", serde_yaml::to_string(plugin)?);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn check(dir: &Path, trust_domain: &str, c: &simulate::Check) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(dir, trust_domain)?;
    let outcome = simulate::check(&loaded.snapshot.to_state(), &offline_settings(), c)?;
    println!("{outcome}");
    Ok(if outcome.verdict == Verdict::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn lint(dir: &Path, trust_domain: &str) -> Result<ExitCode, CliError> {
    let loaded = manifests::load(dir, trust_domain)?;
    let findings = lint::lint(&loaded.snapshot.to_state(), &offline_settings());
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        println!("no findings");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Validates plugin configuration files: 1 if any is invalid, 2 if one
/// cannot be read.
fn validate(files: &[PathBuf]) -> Result<ExitCode, CliError> {
    let mut ok = true;
    for file in files {
        let name = file.display();
        let bytes = std::fs::read(file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        match Engine::from_json(&bytes) {
            Ok(engine) => {
                let s = engine.stats();
                println!("{name}: valid ({} policies, {} rules)", s.policies, s.rules);
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ok = false;
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn oci_image(wasm: &Path, out: &Path, tag: &str) -> Result<ExitCode, CliError> {
    let image = oci::write(wasm, out, tag)?;
    println!("wrote {} (OCI image layout, tag {})", out.display(), image.tag);
    println!("manifest digest: {}", image.manifest_digest);
    println!(
        "WasmPlugin sha256 for oci:// URLs (the manifest digest): {}",
        image.manifest_digest.hex()
    );
    println!(
        "plugin.wasm sha256 (the module; WasmPlugin sha256 for http(s):// URLs only): {}",
        image.module_digest.hex()
    );
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
