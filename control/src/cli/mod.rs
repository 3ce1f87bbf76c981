//! The `meshward-control` command line: the clap types here, the handlers in
//! [`commands`].
//!
//! Every command follows one exit-status contract: **0** success (allowed,
//! nothing found), **1** findings (a denied request, lint findings, an
//! invalid Allowlist or plugin configuration), **2** bad input or usage (a
//! flag clap refuses, manifests that cannot be read, a workload that does
//! not exist). See [`CliError::exit_code`].

pub mod commands;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::derive::{Settings, DEFAULT_BUDGET_BYTES, DEFAULT_TRUST_DOMAIN, DEFAULT_URL};
use crate::manifests::ManifestError;
use crate::oci::OciError;
use crate::simulate::CheckError;

/// `meshward-control`.
#[derive(Debug, Parser)]
#[command(
    name = "meshward-control",
    version,
    about = "meshward's control service and offline tools"
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the Allowlist CRD (YAML).
    Crd,
    /// Print the WasmPlugins derived from the manifests in a directory.
    Render {
        /// Directory of Kubernetes YAML (Namespaces, workloads, Services, Allowlists).
        #[arg(long)]
        manifests: PathBuf,
        /// How the WasmPlugins are derived.
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
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
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
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
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
        listen: SocketAddr,
        /// How the WasmPlugins are derived.
        #[command(flatten)]
        derivation: Derivation,
        /// After a change, collect further changes this long before deriving
        /// (milliseconds): a burst of events costs one round.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
        debounce_ms: u64,
        /// Derive every namespace at least this often, to repair drift (seconds).
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        resync_seconds: u64,
        /// Writes to the API server made at once (WasmPlugins go before
        /// Allowlist statuses).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
        write_concurrency: u64,
        /// The audience API callers' tokens must be issued for
        /// (`kubectl create token NAME --audience meshward-control`).
        #[arg(long, default_value = crate::serve::DEFAULT_TOKEN_AUDIENCE)]
        token_audience: String,
        /// Write without leader election (a single replica only: two replicas
        /// without election would both write).
        #[arg(long)]
        no_leader_election: bool,
        /// The namespace of the `meshward-control` Lease; default
        /// `$POD_NAMESPACE`, else `meshward-system`.
        #[arg(long)]
        lease_namespace: Option<String>,
        /// This replica's identity in the Lease; default `$POD_NAME`, else
        /// the host name.
        #[arg(long)]
        identity: Option<String>,
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
        #[arg(long, default_value = crate::oci::DEFAULT_TAG)]
        tag: String,
    },
}

/// What the WasmPlugins are derived with: the same flags for `render` and
/// `serve`.
#[derive(Debug, clap::Args)]
pub struct Derivation {
    /// The filter module's URL.
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// The module's sha256.
    #[arg(long)]
    pub sha256: Option<String>,
    /// The mesh's trust domain.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// The size budget of one WasmPlugin's pluginConfig (bytes of JSON);
    /// a namespace over it is split into several WasmPlugins.
    #[arg(long, default_value_t = DEFAULT_BUDGET_BYTES)]
    pub budget_bytes: usize,
}

impl Derivation {
    /// The derivation settings and the trust domain.
    pub fn split(self) -> (Settings, String) {
        let settings = Settings {
            url: self.url,
            sha256: self.sha256,
            budget_bytes: self.budget_bytes,
        };
        (settings, self.trust_domain)
    }
}

/// Why a command could not do its job.
#[derive(Debug, Error)]
pub enum CliError {
    /// The manifests could not be read or parsed.
    #[error(transparent)]
    Manifests(#[from] ManifestError),
    /// A check could not run (unknown workload, malformed argument).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// A `--header` is not `name: value`.
    #[error("--header {0:?}: expected 'name: value'")]
    Header(String),
    /// A file named on the command line could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The OCI image could not be written.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// Output could not be serialized.
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The service could not start or stopped with an error.
    #[error("{0}")]
    Serve(String),
}

impl CliError {
    /// The exit status: 1 when the service stopped with an error (as any
    /// daemon), 2 for bad input or a failure to run a command. Findings are
    /// not errors: commands return 1 for them through `Ok`.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Serve(_) => ExitCode::FAILURE,
            _ => ExitCode::from(2),
        }
    }
}

/// Runs `cli`, printing errors on stderr; the exit status follows the
/// contract in the module docs.
pub fn run(cli: Cli) -> ExitCode {
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meshward-control: {e}");
            e.exit_code()
        }
    }
}
