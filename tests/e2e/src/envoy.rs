//! Starting and configuring Envoy: the bootstrap (an mTLS listener
//! requiring client certificates, a plaintext one, the filter with its
//! configuration inline or through a file-based ECDS source, node metadata
//! as Istio sets it), ECDS updates, and the admin interface (readiness,
//! stats, logs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Pki;
use crate::scenario::{free_port, next_serial, workspace, Scratch};
use crate::upstream::Upstream;

/// The filter module under test.
pub fn module() -> PathBuf {
    let path = std::env::var_os("MESHWARD_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm32-wasip1/release/meshward_filter.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make build-wasm` (or `make test`) first",
        path.display()
    );
    path
}

/// The filter built with the `fault-injection` feature (`make
/// build-wasm-fault`): a request carrying `x-meshward-test-panic` panics.
/// Never shipped.
pub fn fault_injection_module() -> PathBuf {
    let path = workspace().join("target/wasm32-wasip1/fault-injection/meshward_filter.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `make build-wasm-fault` (or `make test`) first",
        path.display()
    );
    path
}

/// What Envoy does with requests once the filter's VM has failed (a panic
/// aborts it): the wasm `PluginConfig.failure_policy`, as istiod writes it
/// from a WasmPlugin's `failStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// `fail_open: false`, the field older Istio releases (before 1.25) write
    /// for `FAIL_CLOSE`.
    FailOpenFalse,
    /// `failure_policy: FAIL_CLOSED` (`failStrategy: FAIL_CLOSE`, Istio's
    /// default).
    FailClosed,
    /// `failure_policy: FAIL_RELOAD` (`failStrategy: FAIL_RELOAD`), with
    /// Envoy's default backoff as istiod leaves it.
    FailReload,
}

impl FailurePolicy {
    /// The member of the wasm `PluginConfig` (JSON).
    fn json(self) -> &'static str {
        match self {
            FailurePolicy::FailOpenFalse => r#""fail_open": false"#,
            FailurePolicy::FailClosed => r#""failure_policy": "FAIL_CLOSED""#,
            FailurePolicy::FailReload => r#""failure_policy": "FAIL_RELOAD""#,
        }
    }
}

/// The Envoy binary (`MESHWARD_ENVOY`, or the project virtualenv's).
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("MESHWARD_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/envoy"));
    assert!(path.exists(), "{} is missing: run `make setup` first", path.display());
    path
}

/// How the plugin configuration reaches Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Inline in the listener (static).
    Static,
    /// Through a file-based ECDS source, as istiod delivers a WasmPlugin.
    Ecds,
}

/// What to start Envoy with.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// The plugin configuration (JSON text). `{mtls_port}` and `{plain_port}`
    /// are replaced by the listener ports once they are chosen.
    pub config: String,
    /// Node metadata `LABELS`.
    pub labels: BTreeMap<String, String>,
    /// Node metadata `NAMESPACE`.
    pub namespace: String,
    /// Node metadata `WORKLOAD_NAME`.
    pub workload: String,
    /// How the configuration is delivered.
    pub delivery: Delivery,
    /// Access log format (written to `access.log` in the scenario dir).
    pub access_log_format: String,
    /// Further access logs, as istiod adds one per Telemetry provider.
    pub access_logs: Vec<AccessLog>,
    /// The bootstrap's `"stats_config": {...},` member (JSON), or empty.
    pub stats_config: String,
    /// A fixed port for the mTLS listener (the destination port policies
    /// see); `None` = a free one.
    pub mtls_port: Option<u16>,
    /// HTTP filters (JSON objects, comma-separated) in place of the meshward
    /// filter, before the router; `None` = the meshward filter.
    pub http_filters: Option<String>,
    /// Istio's path normalization on both listeners (`normalize_path: true`,
    /// `merge_slashes: false`, as istiod configures sidecars by default);
    /// `false` = Envoy's defaults.
    pub normalize_path: bool,
    /// The module to load; `None` = [`module()`], the shipped build.
    pub module: Option<PathBuf>,
    /// What Envoy does once the VM has failed.
    pub failure_policy: FailurePolicy,
    /// Routes to a gRPC server on this port of 127.0.0.1 over HTTP/2
    /// instead of the recording upstream; `None` = the recording upstream.
    pub grpc_upstream: Option<u16>,
    /// The address both listeners bind (`127.0.0.1`, or `::1` for IPv6).
    pub listen_address: String,
    /// How the connection managers derive the client address from
    /// `x-forwarded-for`: `None` = Envoy's defaults (`use_remote_address`
    /// false, no trusted hop); `Some(hops)` = `use_remote_address: true` with
    /// `xff_num_trusted_hops: hops`.
    pub trusted_hops: Option<u32>,
    /// HTTP filters (JSON) placed before the meshward filter, in order, as
    /// istiod places `jwt_authn` before Wasm plugins of phase `AUTHZ`
    /// ([`crate::jwt::jwt_authn_filter`]).
    pub filters_before: Vec<String>,
}

impl EnvoyOptions {
    /// Defaults: workload `reviews` in namespace `shop` with label
    /// `app: reviews`, static delivery, an access log of the verdict.
    pub fn new(config: impl Into<String>) -> Self {
        Self {
            config: config.into(),
            labels: BTreeMap::from([("app".to_string(), "reviews".to_string())]),
            namespace: "shop".into(),
            workload: "reviews".into(),
            delivery: Delivery::Static,
            access_log_format: ACCESS_LOG_FORMAT.into(),
            access_logs: Vec::new(),
            stats_config: String::new(),
            mtls_port: None,
            http_filters: None,
            normalize_path: false,
            module: None,
            failure_policy: FailurePolicy::FailOpenFalse,
            grpc_upstream: None,
            listen_address: "127.0.0.1".into(),
            trusted_hops: None,
            filters_before: Vec::new(),
        }
    }

    /// Binds both listeners to `address` (`::1` for IPv6).
    pub fn listen_on(mut self, address: &str) -> Self {
        self.listen_address = address.into();
        self
    }

    /// Uses the connection's address (`use_remote_address: true`) and trusts
    /// `hops` proxies' entries of `x-forwarded-for`
    /// (`xff_num_trusted_hops`), as an edge proxy behind load balancers is
    /// configured.
    pub fn trusted_hops(mut self, hops: u32) -> Self {
        self.trusted_hops = Some(hops);
        self
    }

    /// Adds an HTTP filter (JSON) before the meshward filter.
    pub fn filter_before(mut self, filter: String) -> Self {
        self.filters_before.push(filter);
        self
    }

    /// Routes to the gRPC server on `port` (HTTP/2) instead of the
    /// recording upstream.
    pub fn grpc_upstream(mut self, port: u16) -> Self {
        self.grpc_upstream = Some(port);
        self
    }

    /// Loads `module` instead of the shipped build.
    pub fn module(mut self, module: PathBuf) -> Self {
        self.module = Some(module);
        self
    }

    /// Sets what Envoy does once the VM has failed.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Listens for mTLS on `port` (e.g. a Service's target port that the
    /// policies name).
    pub fn mtls_port(mut self, port: u16) -> Self {
        self.mtls_port = Some(port);
        self
    }

    /// Runs `filters` (JSON objects, comma-separated) instead of the meshward
    /// filter, e.g. Envoy's RBAC as [`rbac::http_filters`](crate::rbac::http_filters)
    /// writes it.
    pub fn http_filters(mut self, filters: String) -> Self {
        self.http_filters = Some(filters);
        self
    }

    /// Normalizes paths as Istio's sidecars do.
    pub fn normalize_path(mut self) -> Self {
        self.normalize_path = true;
        self
    }

    /// Replaces the node labels.
    pub fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self
    }

    /// Delivers the configuration through ECDS.
    pub fn ecds(mut self) -> Self {
        self.delivery = Delivery::Ecds;
        self
    }

    /// The documented bootstrap form of the filter's tag extractors (the
    /// `stats_config` block of docs/observability.md, also in the README and
    /// `istio/examples/stats-tags.yaml`).
    pub fn stats_tags(mut self) -> Self {
        self.stats_config = crate::istio::documented_stats_config();
        self
    }

    /// The `stats_config` istio-agent generates for a mesh whose
    /// `extraStatTags` are the documented ones.
    pub fn istio_stats(mut self) -> Self {
        let tags = crate::istio::documented_extra_stat_tags();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        self.stats_config = crate::istio::stats_config(&tags);
        self
    }

    /// Adds an access log.
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_logs.push(log);
        self
    }
}

/// An access log of both listeners, as istiod writes one for a Telemetry
/// `accessLogging` entry with an `envoyFileAccessLog` provider.
#[derive(Debug, Clone)]
pub struct AccessLog {
    /// File name in the scenario directory ([`Envoy::access_log_named`]).
    pub file: String,
    /// Text format (`logFormat.text`).
    pub format: String,
    /// A CEL expression (`filter.expression`): only requests it is true for
    /// are logged, through Envoy's `envoy.access_loggers.extension_filters.cel`
    /// as istiod configures it.
    pub filter: Option<String>,
}

/// The access-log format the docs recommend: the verdict, policy and rule
/// the filter leaves in filter state.
pub const ACCESS_LOG_FORMAT: &str = "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% verdict=%FILTER_STATE(wasm.meshward.verdict:PLAIN)% policy=%FILTER_STATE(wasm.meshward.policy:PLAIN)% rule=%FILTER_STATE(wasm.meshward.rule:PLAIN)%\n";

/// A running Envoy with the filter.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    /// Admin port.
    pub admin: u16,
    /// mTLS listener port (client certificate required).
    pub mtls: u16,
    /// Plaintext listener port.
    pub plain: u16,
    /// The address the listeners bind.
    pub address: String,
    dir: PathBuf,
    pub(crate) ca: PathBuf,
    /// The module and failure policy, written again with every ECDS update.
    wasm: WasmSettings,
}

/// What the wasm filter's configuration holds besides the plugin
/// configuration.
#[derive(Debug, Clone)]
struct WasmSettings {
    module: PathBuf,
    failure_policy: FailurePolicy,
}

/// `s` as a JSON string literal (the bootstrap and ECDS files are JSON).
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn wasm_filter_config(config: &str, wasm: &WasmSettings) -> String {
    format!(
        r#"{{"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
           "config": {{"name": "meshward", "root_id": "meshward", {failure},
             "configuration": {{"@type": "type.googleapis.com/google.protobuf.StringValue", "value": {config}}},
             "vm_config": {{"vm_id": "meshward", "runtime": "envoy.wasm.runtime.v8",
               "code": {{"local": {{"filename": {module}}}}}}}}}}}"#,
        config = json_string(config),
        failure = wasm.failure_policy.json(),
        module = json_string(&wasm.module.to_string_lossy()),
    )
}

impl Envoy {
    /// Writes the configuration, starts Envoy and waits until it is ready.
    ///
    /// The ports come from binding port 0 and letting it go, so another
    /// process (a client's ephemeral port, a parallel test) can take one
    /// before Envoy binds it; a start that fails on a taken port is retried
    /// with new ports.
    pub fn start(scratch: &Scratch, pki: &Pki, upstream: &Upstream, opts: &EnvoyOptions) -> Self {
        let mut attempt = 1;
        loop {
            match Self::try_start(scratch, pki, upstream, opts) {
                Ok(envoy) => return envoy,
                Err(log) if attempt < 3 && log.contains("Address already in use") => attempt += 1,
                Err(log) => panic!("Envoy exited before becoming ready; log:\n{log}"),
            }
        }
    }

    /// One start; `Err` with Envoy's log if it exits before becoming ready.
    fn try_start(scratch: &Scratch, pki: &Pki, upstream: &Upstream, opts: &EnvoyOptions) -> Result<Self, String> {
        let dir = scratch.path().to_path_buf();
        let (admin, mtls, plain) = (free_port(), opts.mtls_port.unwrap_or_else(free_port), free_port());
        let config = opts
            .config
            .replace("{mtls_port}", &mtls.to_string())
            .replace("{plain_port}", &plain.to_string());
        let opts = &EnvoyOptions { config, ..opts.clone() };
        let wasm = WasmSettings {
            module: opts.module.clone().unwrap_or_else(module),
            failure_policy: opts.failure_policy,
        };
        let labels = serde_json::to_string(&opts.labels).expect("labels");
        let filter = match opts.delivery {
            Delivery::Static => format!(
                r#"{{"name": "meshward", "typed_config": {}}}"#,
                wasm_filter_config(&opts.config, &wasm)
            ),
            Delivery::Ecds => {
                write_ecds(&dir, &opts.config, &wasm);
                format!(
                    r#"{{"name": "meshward", "config_discovery": {{
                        "config_source": {{"path_config_source": {{"path": {path}, "watched_directory": {{"path": {dir}}}}}}},
                        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}}}"#,
                    path = json_string(&dir.join("ecds.json").to_string_lossy()),
                    dir = json_string(&dir.to_string_lossy()),
                )
            }
        };
        let filter = opts.http_filters.clone().unwrap_or(filter);
        let normalize = if opts.normalize_path {
            r#""normalize_path": true, "merge_slashes": false,"#
        } else {
            ""
        };
        let access_log = |log: &AccessLog| {
            let mut entry = serde_json::json!({"name": "envoy.access_loggers.file", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": dir.join(&log.file),
                "log_format": {"text_format_source": {"inline_string": log.format}}}});
            if let Some(expression) = &log.filter {
                entry["filter"] = serde_json::json!({"extension_filter": {
                    "name": "envoy.access_loggers.extension_filters.cel",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                        "expression": expression}}});
            }
            entry
        };
        let default_log = AccessLog {
            file: "access.log".into(),
            format: opts.access_log_format.clone(),
            filter: None,
        };
        let access_logs: Vec<serde_json::Value> = std::iter::once(&default_log)
            .chain(&opts.access_logs)
            .map(access_log)
            .collect();
        let access_logs = serde_json::Value::Array(access_logs).to_string();
        let xff = match opts.trusted_hops {
            None => String::new(),
            Some(hops) => format!(r#""use_remote_address": true, "xff_num_trusted_hops": {hops},"#),
        };
        let filter: String = opts
            .filters_before
            .iter()
            .map(|f| format!("{f}, "))
            .chain(std::iter::once(filter))
            .collect();
        let hcm = |prefix: &str| {
            format!(
                r#"{{"name": "envoy.filters.network.http_connection_manager", "typed_config": {{
                  "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                  "stat_prefix": "{prefix}", "codec_type": "AUTO", {xff}
                  "access_log": {access_logs},
                  {normalize} "route_config": {{"virtual_hosts": [{{"name": "all", "domains": ["*"],
                    "routes": [{{"match": {{"prefix": "/"}}, "route": {{"cluster": "upstream"}}}}]}}]}},
                  "http_filters": [{filter}, {{"name": "envoy.filters.http.router", "typed_config": {{
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}]}}}}"#,
            )
        };
        let tls = format!(
            r#"{{"name": "envoy.transport_sockets.tls", "typed_config": {{
              "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
              "require_client_certificate": true,
              "common_tls_context": {{
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [{{"certificate_chain": {{"filename": {cert}}}, "private_key": {{"filename": {key}}}}}],
                "validation_context": {{"trusted_ca": {{"filename": {ca}}}}}}}}}}}"#,
            cert = json_string(&dir.join("server.pem").to_string_lossy()),
            key = json_string(&dir.join("server.key").to_string_lossy()),
            ca = json_string(&pki.ca().to_string_lossy()),
        );
        let bootstrap = format!(
            r#"{{"node": {{"id": "sidecar~127.0.0.1~{workload}.{ns}~{ns}.svc.cluster.local", "cluster": "{workload}.{ns}",
                 "metadata": {{"NAMESPACE": "{ns}", "WORKLOAD_NAME": "{workload}", "LABELS": {labels}}}}},
               "admin": {{"address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {admin}}}}}}},
               {stats}
               "static_resources": {{
                 "listeners": [
                   {{"name": "inbound_mtls", "address": {{"socket_address": {{"address": "{listen}", "port_value": {mtls}}}}},
                     "listener_filters": [{{"name": "envoy.filters.listener.tls_inspector", "typed_config": {{
                       "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}}}],
                     "filter_chains": [{{"transport_socket": {tls}, "filters": [{hcm_mtls}]}}]}},
                   {{"name": "inbound_plain", "address": {{"socket_address": {{"address": "{listen}", "port_value": {plain}}}}},
                     "filter_chains": [{{"filters": [{hcm_plain}]}}]}}],
                 "clusters": [{{"name": "upstream", "connect_timeout": "2s", "type": "STATIC", {protocol}
                   "load_assignment": {{"cluster_name": "upstream", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{
                     "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {up}}}}}}}}}]}}]}}}}]}}}}"#,
            workload = opts.workload,
            ns = opts.namespace,
            listen = opts.listen_address,
            stats = opts.stats_config,
            hcm_mtls = hcm("inbound_mtls"),
            hcm_plain = hcm("inbound_plain"),
            up = opts.grpc_upstream.unwrap_or(upstream.port),
            protocol = if opts.grpc_upstream.is_some() {
                r#""typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                     "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                     "explicit_http_config": {"http2_protocol_options": {}}}},"#
            } else {
                ""
            },
        );
        let config_path = dir.join("envoy.json");
        std::fs::write(&config_path, &bootstrap).expect("write bootstrap");
        let log = std::fs::File::create(dir.join("envoy.log")).expect("log file");
        let child = Command::new(envoy_binary())
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "1", "--disable-hot-restart", "--log-level", "info"])
            // Access-log files are flushed every 10 s by default.
            .args(["--file-flush-interval-msec", "50"])
            .args(["--component-log-level", "wasm:debug"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start envoy");
        let mut envoy = Envoy {
            child,
            admin,
            mtls,
            plain,
            address: opts.listen_address.clone(),
            dir,
            ca: pki.ca(),
            wasm,
        };
        envoy.wait_ready()?;
        Ok(envoy)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exit {status}\n{}", self.log()));
            }
            if self.admin_get("/ready").is_some_and(|b| b.trim() == "LIVE") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Envoy did not become ready in 30 s; log:\n{}", self.log());
    }

    /// GET on the admin interface; `None` if unreachable or not 200.
    pub fn admin_get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{}{}", self.admin, path))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A counter or gauge from `/stats` (`None` if absent).
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = self.admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))?;
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
    }

    /// The JSON request-log lines the filter wrote so far.
    pub fn request_log(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("meshward.request ").map(|(_, json)| json))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }

    /// Polls `f` for up to 20 s until it returns `Some`. Every caller waits
    /// for something that must happen (a reload, a log line), so the bound
    /// only matters on failure; it is generous because a VM reload on a
    /// loaded 2-core CI machine has taken more than 5 s.
    pub fn eventually<T>(&self, mut f: impl FnMut(&Self) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = f(self) {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The access log lines so far.
    pub fn access_log(&self) -> Vec<String> {
        self.access_log_named("access.log")
    }

    /// The lines so far of the access log written to `file`
    /// ([`AccessLog::file`]).
    pub fn access_log_named(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether Envoy is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Delivers a new plugin configuration through ECDS (atomic rename).
    pub fn update_config(&self, config: &str) {
        write_ecds(&self.dir, config, &self.wasm);
    }
}

fn write_ecds(dir: &Path, config: &str, wasm: &WasmSettings) {
    let response = format!(
        r#"{{"version_info": "{version}", "resources": [{{"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
             "name": "meshward", "typed_config": {filter}}}]}}"#,
        version = next_serial(),
        filter = wasm_filter_config(config, wasm),
    );
    let tmp = dir.join("ecds.json.tmp");
    std::fs::write(&tmp, response).expect("write ecds");
    std::fs::rename(&tmp, dir.join("ecds.json")).expect("rename ecds");
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- Envoy log ({}) -----\n{}\n----- end of Envoy log -----",
                self.dir.display(),
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
