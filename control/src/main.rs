//! The `meshward-control` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meshward_control::derive::{derive, Settings, DEFAULT_BUDGET_BYTES, DEFAULT_URL};
use meshward_control::{crd, manifests, oci, offline, serve};
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
        #[command(flatten)]
        derivation: Derivation,
    },
    /// Simulate a request against the policies derived from the manifests.
    /// Exit status 0 if allowed, 1 if denied (also in audit mode), 2 on error.
    Check {
        /// Directory of Kubernetes YAML.
        #[arg(long)]
        manifests: PathBuf,
        /// The caller, `<namespace>/<serviceaccount>`; absent = anonymous.
        #[arg(long)]
        from: Option<String>,
        /// The workload receiving the request, `<namespace>/<workload>`.
        #[arg(long)]
        to: String,
        /// The authority; absent = the workload's name.
        #[arg(long)]
        host: Option<String>,
        /// The destination port; absent = the workload's first container port.
        #[arg(long)]
        port: Option<u16>,
        /// A request header `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The mesh's trust domain.
        #[arg(long, default_value = "cluster.local")]
        trust_domain: String,
        /// The request, `'METHOD /path'`.
        request: String,
    },
    /// Report invalid Allowlists, selectors that match nothing, missing service
    /// accounts and unprotected workloads. Exit status 1 if anything is found.
    Lint {
        /// Directory of Kubernetes YAML.
        #[arg(long)]
        manifests: PathBuf,
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
    /// Run the in-cluster service: watch the cluster, write WasmPlugins and
    /// Allowlist statuses, serve the API and /metrics. Uses the in-cluster
    /// service account, or the kubeconfig outside a cluster.
    Serve {
        /// Address of the HTTP API, /metrics, /healthz and /readyz.
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        derivation: Derivation,
        /// Wait this long after a change for more before deriving (milliseconds).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
        debounce_ms: u64,
        /// Reconcile at least this often, to repair drift (seconds).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        resync_seconds: u64,
    },
    /// Write the filter module as an OCI image (an OCI image layout in a tar
    /// archive) that Istio's agent pulls from an `oci://` URL, and print its
    /// digests: the manifest digest is the WasmPlugin's `sha256`.
    OciImage {
        /// The filter module (`meshward_filter.wasm`).
        #[arg(long)]
        wasm: PathBuf,
        /// The archive to write.
        #[arg(long)]
        out: PathBuf,
        /// The image's tag in the layout (`org.opencontainers.image.ref.name`).
        #[arg(long, default_value = oci::DEFAULT_TAG)]
        tag: String,
    },
}

/// What the WasmPlugins are derived with: the same flags for `render` and
/// `serve`.
#[derive(clap::Args)]
struct Derivation {
    /// The filter module's URL.
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// The module's sha256.
    #[arg(long)]
    sha256: Option<String>,
    /// The mesh's trust domain.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// The size budget of one WasmPlugin's pluginConfig (bytes of JSON);
    /// a namespace over it is split into several WasmPlugins.
    #[arg(long, default_value_t = DEFAULT_BUDGET_BYTES)]
    budget_bytes: usize,
}

impl Derivation {
    /// The derivation settings and the trust domain.
    fn split(self) -> (Settings, String) {
        let settings = Settings {
            url: self.url,
            sha256: self.sha256,
            budget_bytes: self.budget_bytes,
        };
        (settings, self.trust_domain)
    }
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
        Command::Render { manifests, derivation } => {
            let (settings, trust_domain) = derivation.split();
            render(&manifests, settings, &trust_domain)
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
            let mut parsed = Vec::with_capacity(headers.len());
            for h in &headers {
                match h.split_once(':') {
                    Some((k, v)) => parsed.push((k.trim().to_string(), v.trim().to_string())),
                    None => {
                        eprintln!("meshward-control: --header {h:?}: expected 'name: value'");
                        return ExitCode::from(2);
                    }
                }
            }
            let c = offline::Check {
                from,
                principal: None,
                to,
                request,
                host,
                port,
                headers: parsed,
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
        } => {
            let (settings, trust_domain) = derivation.split();
            let config = serve::ServeConfig {
                settings,
                trust_domain,
                debounce: std::time::Duration::from_millis(debounce_ms),
                resync: std::time::Duration::from_secs(resync_seconds),
                ..serve::ServeConfig::default()
            };
            run_service(listen, config)
        }
        Command::OciImage { wasm, out, tag } => oci_image(&wasm, &out, &tag),
    }
}

fn oci_image(wasm: &std::path::Path, out: &std::path::Path, tag: &str) -> ExitCode {
    match oci::write(wasm, out, tag) {
        Ok(image) => {
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshward-control: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Structured JSON logs on stderr (`RUST_LOG` filters, default `info`), a
/// multi-threaded runtime, and the service until SIGTERM or Ctrl-C.
fn run_service(listen: std::net::SocketAddr, config: serve::ServeConfig) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshward-control: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "meshward-control stopped");
            ExitCode::FAILURE
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

fn load(dir: &std::path::Path, trust_domain: &str) -> Option<manifests::Loaded> {
    manifests::load(dir, trust_domain)
        .map_err(|e| eprintln!("meshward-control: {e}"))
        .ok()
}

/// Settings for offline use: the module URL does not affect decisions.
fn offline_settings() -> Settings {
    Settings {
        url: "file:///meshward.wasm".into(),
        sha256: None,
        budget_bytes: DEFAULT_BUDGET_BYTES,
    }
}

fn check(dir: &std::path::Path, trust_domain: &str, c: &offline::Check) -> ExitCode {
    let Some(loaded) = load(dir, trust_domain) else {
        return ExitCode::from(2);
    };
    match offline::check(&loaded.snapshot, &offline_settings(), c) {
        Ok(outcome) => {
            println!("{outcome}");
            if outcome.verdict == meshward_filter::Verdict::Allow {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("meshward-control: {e}");
            ExitCode::from(2)
        }
    }
}

fn lint(dir: &std::path::Path, trust_domain: &str) -> ExitCode {
    let Some(loaded) = load(dir, trust_domain) else {
        return ExitCode::from(2);
    };
    let findings = offline::lint(&loaded.snapshot, &offline_settings());
    for f in &findings {
        println!("{f}");
    }
    if findings.is_empty() {
        println!("no findings");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
