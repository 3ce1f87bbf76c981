//! The `meshward-control` command line: the clap types here, the handlers in
//! [`commands`].
//!
//! Every command follows one exit-status contract: **0** success (allowed,
//! nothing found), **1** findings (a denied request, lint findings, an
//! invalid Allowlist or plugin configuration), **2** bad input or usage (a
//! flag clap refuses, manifests that cannot be read or hold a misspelled
//! kind, an empty directory, a workload that does not exist, a module URL
//! and sha256 Istio would refuse; with `--namespace`, a cluster that cannot
//! be read or no sidecar log read). See [`CliError::exit_code`]. The service
//! (`serve`) exits 1 when it stops with an error.

pub mod commands;
mod import;
mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::derive::{
    check_module, check_sha256, ModuleDigest, ModuleError, PullPolicy, Settings, DEFAULT_BUDGET_BYTES,
    DEFAULT_TRUST_DOMAIN, DEFAULT_URL,
};
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
    /// Print the Allowlist CRD.
    Crd {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Yaml)]
        output: DataFormat,
    },
    /// Print the WasmPlugins derived from the manifests.
    Render {
        /// Kubernetes YAML or JSON (Namespaces, workloads, ServiceAccounts,
        /// Services, Allowlists; `kind: List` too): files, directories (read
        /// recursively) or `-` for standard input. Repeatable.
        #[arg(long, required = true, num_args = 1..)]
        manifests: Vec<PathBuf>,
        /// How the WasmPlugins are derived.
        #[command(flatten)]
        derivation: Derivation,
        /// Output format: a YAML stream, or a JSON `List`.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Yaml)]
        output: DataFormat,
    },
    /// Simulate a request against the policies derived from the manifests.
    /// Exit status 0 if allowed, 1 if denied (also in audit mode), 2 on error.
    Check {
        /// Kubernetes YAML or JSON: files, directories or `-`. Repeatable.
        #[arg(long, required = true, num_args = 1..)]
        manifests: Vec<PathBuf>,
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
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
        /// The request, `'METHOD /path'`.
        request: String,
    },
    /// Report invalid Allowlists, selectors that match nothing, missing service
    /// accounts, unprotected workloads, and, for workloads serving API
    /// descriptions, operations no rule admits and paths matching no
    /// documented operation. Exit status 1 if anything is found.
    Lint {
        /// Kubernetes YAML or JSON: files, directories or `-`. Repeatable.
        #[arg(long, required = true, num_args = 1..)]
        manifests: Vec<PathBuf>,
        /// The mesh's trust domain.
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Propose Allowlists from request log lines (`meshward.request {json}`,
    /// as `kubectl logs -c istio-proxy` prints them): one per workload that
    /// received traffic, one rule per caller, paths generalized. YAML on
    /// stdout, a summary on stderr. With `--namespace`, from a namespace of
    /// the cluster the kubeconfig names: its state and its sidecars' logs.
    Learn {
        /// Kubernetes YAML or JSON (the workloads, their service accounts):
        /// files, directories or `-`. Repeatable. Not with `--namespace`
        /// (the cluster's state is read).
        #[arg(long, num_args = 1.., required_unless_present = "namespace", conflicts_with = "namespace")]
        manifests: Vec<PathBuf>,
        /// Log files (`-` is standard input, `*.gz` is read as gzip).
        /// Repeatable. With `--namespace`: read instead of the sidecar logs.
        #[arg(long, num_args = 1.., required_unless_present = "namespace")]
        logs: Vec<PathBuf>,
        /// Learn for this namespace of the cluster (the kubeconfig's, as
        /// `kubectl` uses it): its Deployments, Pods, ServiceAccounts, ...
        /// are listed, and its pods' `istio-proxy` logs are read (`pods/log`)
        /// unless `--logs` is given. Only lines of the namespace are learned.
        #[arg(long, short = 'n', value_parser = parse_namespace)]
        namespace: Option<String>,
        /// With `--namespace` (and without `--logs`): read the log lines of
        /// this last while, as `kubectl logs --since` (`90s`, `30m`, `1h`,
        /// `1h30m`).
        #[arg(long, requires = "namespace", conflicts_with = "logs", value_parser = parse_since, default_value = "1h")]
        since: std::time::Duration,
        /// `spec.mode` of the proposed Allowlists.
        #[arg(long, value_enum, default_value_t = LearnMode::Audit)]
        mode: LearnMode,
        /// Drop every (caller, method, path template) seen fewer times
        /// (listed on stderr).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        min_count: u64,
        /// Learn from requests an enforcing policy denied too (`deny`; never
        /// `reject`).
        #[arg(long)]
        include_denied: bool,
        /// The mesh's trust domain.
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
    /// Judge logged requests with the policies derived from the manifests (a
    /// candidate). Exit status 0 if nothing that reached a workload when
    /// recorded would be denied (audit mode counts as denying), 1 otherwise,
    /// 2 on error. With `--namespace`, on a
    /// namespace of the cluster the kubeconfig names: its live state, with
    /// the Allowlists of `--manifests` in place of those of the same name,
    /// and its sidecars' logs.
    Replay {
        /// Kubernetes YAML or JSON: files, directories or `-`. Repeatable.
        /// With `--namespace`: the candidate Allowlists only (other objects
        /// are ignored); without, the live Allowlists are replayed.
        #[arg(long, num_args = 1.., required_unless_present = "namespace")]
        manifests: Vec<PathBuf>,
        /// Log files (`-` is standard input, `*.gz` is read as gzip).
        /// Repeatable. With `--namespace`: read instead of the sidecar logs.
        #[arg(long, num_args = 1.., required_unless_present = "namespace")]
        logs: Vec<PathBuf>,
        /// Replay on this namespace of the cluster (the kubeconfig's): its
        /// state is listed, and its pods' `istio-proxy` logs are read
        /// (`pods/log`) unless `--logs` is given. Only lines of the namespace
        /// are replayed.
        #[arg(long, short = 'n', value_parser = parse_namespace)]
        namespace: Option<String>,
        /// With `--namespace` (and without `--logs`): read the log lines of
        /// this last while (`90s`, `30m`, `1h`, `1h30m`).
        #[arg(long, requires = "namespace", conflicts_with = "logs", value_parser = parse_since, default_value = "1h")]
        since: std::time::Duration,
        /// The mesh's trust domain.
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Convert Istio AuthorizationPolicies (`security.istio.io/v1`,
    /// `v1beta1`) into Allowlists with the same meaning: YAML on stdout, each
    /// annotated `meshward.io/imported-from: <namespace>/<name>`; what cannot
    /// be expressed on stderr, one line per field, then a `warning:` line for
    /// each converted field where meshward refuses callers Istio admits.
    /// Exit status 0 if every policy converted, 1 if one could not (it gets
    /// no Allowlist), 2 on input that cannot be read; warnings do not change
    /// it.
    Import {
        /// AuthorizationPolicies, YAML or JSON (`kind: List` too): files,
        /// directories (read recursively) or `-` for standard input. Other
        /// kinds are skipped.
        #[arg(required = true, value_name = "FILE|DIR")]
        inputs: Vec<PathBuf>,
        /// The cluster's objects, as `lint` reads them: the imported
        /// Allowlists are linted together with them, and namespaces that are
        /// not enabled for meshward are named (warnings on stderr; the exit
        /// status stays that of the conversion).
        #[arg(long, num_args = 1.., value_name = "DIR")]
        manifests: Vec<PathBuf>,
        /// Istio's root namespace: its policies apply to the whole mesh,
        /// which an Allowlist cannot, so they are reported.
        #[arg(long, default_value = crate::import::DEFAULT_ROOT_NAMESPACE, value_parser = parse_namespace)]
        root_namespace: String,
        /// The mesh's trust domain (for `--manifests`).
        #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
    },
    /// Validate plugin configuration files (the JSON of a pluginConfig).
    Validate {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
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
    /// digests: the manifest digest is the WasmPlugin's `sha256` for `oci://`
    /// URLs. Push it with `skopeo copy --preserve-digests`.
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
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
        output: Format,
    },
}

/// How a command prints a result meant for people or for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// The mode `learn` proposes Allowlists in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LearnMode {
    /// `mode: audit`: decided and logged, nothing refused.
    Audit,
    /// `mode: enforce`.
    Enforce,
}

/// How a command prints Kubernetes objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    /// YAML documents.
    Yaml,
    /// JSON.
    Json,
}

/// What the WasmPlugins are derived with: the same flags for `render` and
/// `serve`.
#[derive(Debug, clap::Args)]
pub struct Derivation {
    /// The filter module's URL: `oci://` (an image), `https://`, `http://`,
    /// or `file://` (a path on every proxy).
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// The digest Istio verifies before loading the module: for an `oci://`
    /// URL the image manifest's digest (`oci-image` prints it), for
    /// `http(s)://` the sha256 of the module itself; 64 lower-case hex
    /// digits. Istio does not verify it for `file://`.
    #[arg(long, value_parser = parse_sha256)]
    pub sha256: Option<String>,
    /// Accept an `oci://` URL with the tag `latest` (or no tag) and no
    /// digest: the module can then change at any pull.
    #[arg(long)]
    pub allow_latest: bool,
    /// The WasmPlugins' `imagePullPolicy`: `IfNotPresent` or `Always`
    /// (absent: Istio's default, `IfNotPresent` except for the tag `latest`).
    #[arg(long, value_name = "POLICY")]
    pub image_pull_policy: Option<PullPolicy>,
    /// The WasmPlugins' `imagePullSecret`: the name of a
    /// `kubernetes.io/dockerconfigjson` Secret that must exist in every
    /// enabled namespace.
    #[arg(long, value_name = "SECRET", value_parser = parse_secret_name)]
    pub image_pull_secret: Option<String>,
    /// The WasmPlugins' `priority` among the AUTHZ plugins of a workload
    /// (higher runs first; absent: 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// The mesh's trust domain.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// The size budget of one WasmPlugin's pluginConfig (bytes of JSON);
    /// a namespace over it is split into several WasmPlugins.
    #[arg(long, default_value_t = DEFAULT_BUDGET_BYTES)]
    pub budget_bytes: usize,
}

impl Derivation {
    /// The derivation settings, the trust domain, and what `sha256` stands
    /// for; refuses a `url` and `sha256` Istio would not load as intended.
    pub fn split(self) -> Result<(Settings, String, ModuleDigest), ModuleError> {
        let digest = check_module(&self.url, self.sha256.as_deref(), self.allow_latest)?;
        let settings = Settings {
            url: self.url,
            sha256: self.sha256,
            budget_bytes: self.budget_bytes,
            image_pull_policy: self.image_pull_policy,
            image_pull_secret: self.image_pull_secret,
            priority: self.priority,
        };
        Ok((settings, self.trust_domain, digest))
    }
}

/// A namespace name (an RFC 1123 label).
fn parse_namespace(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a namespace name"))
    }
}

/// A duration as `kubectl logs --since` takes it: numbers with units `h`,
/// `m`, `s` (`90s`, `30m`, `1h30m`), more than zero.
fn parse_since(value: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{value:?}: expected a duration such as 90s, 30m, 1h or 1h30m");
    let mut seconds: u64 = 0;
    let mut number = String::new();
    for c in value.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        seconds = n
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || seconds == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(seconds))
}

fn parse_sha256(value: &str) -> Result<String, String> {
    check_sha256(value).map_err(|e| e.to_string())?;
    Ok(value.to_string())
}

/// A Secret's name: a DNS subdomain (lower-case alphanumerics, `-` and `.`,
/// at most 253 characters), as Istio's schema and Kubernetes require.
fn parse_secret_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?}: a Secret name is lower-case letters, digits, '-' and '.' (at most 253)"
        ))
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
    /// Request logs could not be read.
    #[error(transparent)]
    Logs(#[from] crate::learn::logs::LogError),
    /// The OCI image could not be written.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The module's URL and sha256 would not load as intended.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// Output could not be serialized.
    #[error("writing {format}: {message}")]
    Output {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The serializer's message.
        message: String,
    },
    /// The service could not start or stopped with an error.
    #[error("{0}")]
    Serve(String),
    /// The cluster could not be read (`--namespace`).
    #[error("{0}")]
    Cluster(String),
    /// A candidate Allowlist is refused (`replay --namespace`).
    #[error(transparent)]
    Candidates(#[from] crate::incluster::CandidateError),
    /// `import` found nothing to import.
    #[error("{0}")]
    Import(String),
    /// Pods have sidecars, but none of their logs could be read.
    #[error("no sidecar log of namespace {0} could be read (above: why)")]
    NoLogs(String),
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
        Err(CliError::Manifests(ManifestError::Problems(problems))) => {
            // Each problem on its own line, `file:line: ...` first, as
            // compilers print them.
            for p in &problems.0 {
                eprintln!("{p}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("meshward-control: {e}");
            e.exit_code()
        }
    }
}
