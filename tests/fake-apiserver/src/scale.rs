//! Runs `meshward-control serve` (the real binary, as its own process)
//! against a fake API server holding a generated cluster, and measures what
//! an operator sizes the service by:
//!
//! * **first sync**: from the start of the process until every namespace's
//!   WasmPlugin has been applied;
//! * **resident memory** of the service after the first sync, and its peak
//!   (`VmHWM`) over the whole run;
//! * **change latency**: an Allowlist is changed (a rule added), and the time
//!   until the API server receives the WasmPlugin apply that carries it. The
//!   changes start as soon as the first sync's WasmPlugins are applied, while
//!   its status writes are still under way;
//! * **writes**: every Allowlist's status is written once per generation,
//!   and nothing else is written twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{self, Shape};
use crate::{FakeApi, Write};

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// The cluster.
    pub shape: Shape,
    /// Allowlist changes to make after the first sync.
    pub changes: usize,
    /// Pause between two changes.
    pub pause: Duration,
    /// How long to wait for anything before giving up.
    pub timeout: Duration,
    /// Extra flags for `serve`.
    pub serve_args: Vec<String>,
    /// `RUST_LOG` for the service (its log is `serve.log` in the work directory).
    pub log: String,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The cluster.
    pub shape: Shape,
    /// Start → every namespace's WasmPlugin applied.
    pub first_sync: Duration,
    /// Resident memory of the service when the first sync was done, bytes.
    pub rss_after_sync: u64,
    /// The highest resident memory of the service over the run, bytes.
    pub peak_rss: u64,
    /// Per change: the time until its WasmPlugin apply arrived (`None`: not
    /// within the timeout).
    pub latencies: Vec<Option<Duration>>,
    /// WasmPlugin applies received.
    pub plugin_applies: usize,
    /// Status writes received.
    pub status_writes: usize,
    /// Allowlists whose status was never written.
    pub statuses_missing: Vec<String>,
    /// Allowlists whose status was written more often than they had generations.
    pub statuses_repeated: Vec<String>,
}

impl Report {
    /// The `q`-quantile (0..=1) of the change latencies that arrived.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut seen: Vec<Duration> = self.latencies.iter().flatten().copied().collect();
        seen.sort_unstable();
        if seen.is_empty() {
            return None;
        }
        let rank = ((q * seen.len() as f64).ceil() as usize).clamp(1, seen.len());
        seen.get(rank - 1).copied()
    }

    /// The report as a Markdown table row, with its header.
    pub fn table(&self) -> String {
        let mib = |b: u64| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0));
        let ms = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0));
        let applied = self.latencies.iter().flatten().count();
        format!(
            "| pods | workloads | Allowlists | namespaces | first sync | RSS after first sync | peak RSS | change → applied p50 | p99 | max | changes applied |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | {} | {} | {} | {} | {:.2} s | {} | {} | {} | {} | {} | {}/{} |",
            self.shape.total_pods(),
            self.shape.total_allowlists(),
            self.shape.total_allowlists(),
            self.shape.namespaces,
            self.first_sync.as_secs_f64(),
            mib(self.rss_after_sync),
            mib(self.peak_rss),
            ms(self.latency_quantile(0.5)),
            ms(self.latency_quantile(0.99)),
            ms(self.latency_quantile(1.0)),
            applied,
            self.latencies.len(),
        )
    }
}

/// The service's process, stopped when dropped.
struct Service {
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` and `VmHWM` of process `pid`, in bytes.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(field))?;
        let value = line.trim_start_matches(field).trim().trim_end_matches("kB").trim();
        value.parse::<u64>().ok().map(|v| v * 1024)
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The namespace and name of a write's target, when it is a WasmPlugin apply.
fn plugin_apply(w: &Write) -> Option<(&str, &str)> {
    if w.method != "PATCH" {
        return None;
    }
    let rest = w.path.strip_prefix("/apis/extensions.istio.io/v1alpha1/namespaces/")?;
    let (ns, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("wasmplugins/")?;
    Some((ns, name))
}

/// The namespace and name of a write's target, when it is a status write.
fn status_write(w: &Write) -> Option<(&str, &str)> {
    let rest = w.path.strip_prefix("/apis/meshward.io/v1alpha1/namespaces/")?;
    let (ns, rest) = rest.split_once('/')?;
    rest.strip_prefix("allowlists/")?
        .strip_suffix("/status")
        .map(|name| (ns, name))
}

/// Waits for `done` to hold of the writes received, scanning each write once.
async fn wait_for<T>(
    fake: &FakeApi,
    cursor: &mut usize,
    timeout: Duration,
    mut done: impl FnMut(&Write) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let new = fake.writes_since(*cursor);
        *cursor += new.len();
        for w in &new {
            if let Some(t) = done(w) {
                return Some(t);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs the service binary `serve` against a cluster of `config.shape` and
/// measures it. `work` is a scratch directory (kubeconfig, the service's log).
pub async fn run(serve: &Path, work: &Path, config: &ScaleConfig) -> Result<Report, String> {
    let shape = config.shape;
    let fake = FakeApi::start().await;
    fake.load(cluster::objects(shape));
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let kubeconfig: PathBuf = work.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(work.join("serve.log")).map_err(|e| e.to_string())?;
    let port = free_port()?;
    let started = Instant::now();
    let child = Command::new(serve)
        .arg("serve")
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--url",
            "file:///meshward.wasm",
        ])
        .args(&config.serve_args)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", &config.log)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", serve.display()))?;
    let service = Service { child };
    let pid = service.child.id();

    // First sync: every namespace's WasmPlugin applied.
    let mut cursor = 0;
    let mut applied: BTreeSet<String> = BTreeSet::new();
    let last = wait_for(&fake, &mut cursor, config.timeout, |w| {
        let (ns, _) = plugin_apply(w)?;
        applied.insert(ns.to_string());
        (applied.len() == shape.namespaces).then_some(w.at)
    })
    .await
    .ok_or_else(|| {
        format!(
            "first sync: {} of {} namespaces got a WasmPlugin within {:?} (see {})",
            applied.len(),
            shape.namespaces,
            config.timeout,
            work.join("serve.log").display()
        )
    })?;
    let first_sync = last.saturating_duration_since(started);
    let (rss_after_sync, _) = memory(pid).unwrap_or_default();

    // Changes, while the first sync's statuses are still being written.
    let mut latencies = Vec::with_capacity(config.changes);
    let mut generations: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=config.changes {
        let ns = cluster::namespace_name((i * 37) % shape.namespaces);
        let d = (i * 13) % shape.deployments;
        let (app, caller) = (cluster::app_name(d), cluster::app_name((d + 1) % shape.deployments));
        *generations.entry(format!("{ns}/{app}")).or_insert(1) += 1;
        let marker = format!("change-{i}");
        let mut from = fake.write_count();
        let t0 = Instant::now();
        fake.put(cluster::allowlist(&ns, &app, &caller, i));
        let arrived = wait_for(&fake, &mut from, config.timeout, |w| {
            let (wns, _) = plugin_apply(w)?;
            (wns == ns && w.body.to_string().contains(&marker)).then_some(w.at)
        })
        .await;
        latencies.push(arrived.map(|at| at.saturating_duration_since(t0)));
        tokio::time::sleep(config.pause).await;
    }

    // Settle: no write for two seconds (but the Lease's renewals).
    let mut quiet_since = Instant::now();
    let object_writes = || fake.writes().iter().filter(|w| !w.path.contains("/leases")).count();
    let mut seen = object_writes();
    let deadline = Instant::now() + config.timeout;
    while quiet_since.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = object_writes();
        if n != seen {
            seen = n;
            quiet_since = Instant::now();
        }
    }
    let (_, peak_rss) = memory(pid).unwrap_or_default();
    drop(service);

    let writes = fake.writes();
    // Per Allowlist, what each status write said: observedGeneration and
    // the Ready condition's status and reason (what a repeat is judged by).
    let mut per_allowlist: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for w in &writes {
        if let Some((ns, name)) = status_write(w) {
            let status = &w.body["status"];
            let ready = status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map(|c| {
                    format!(
                        "{}/{}",
                        c["status"].as_str().unwrap_or("?"),
                        c["reason"].as_str().unwrap_or("?")
                    )
                })
                .unwrap_or_default();
            per_allowlist
                .entry(format!("{ns}/{name}"))
                .or_default()
                .push(format!("generation {} {ready}", status["observedGeneration"]));
        }
    }
    let mut statuses_missing = Vec::new();
    let mut statuses_repeated = Vec::new();
    for n in 0..shape.namespaces {
        for d in 0..shape.deployments {
            let key = format!("{}/{}", cluster::namespace_name(n), cluster::app_name(d));
            let written = per_allowlist.get(&key).map(Vec::as_slice).unwrap_or_default();
            let allowed = generations.get(&key).copied().unwrap_or(1);
            if written.is_empty() {
                statuses_missing.push(key);
            } else if written.len() > allowed {
                statuses_repeated.push(format!(
                    "{key} ({} writes, {allowed} generations: {})",
                    written.len(),
                    written.join(", ")
                ));
            }
        }
    }
    Ok(Report {
        shape,
        first_sync,
        rss_after_sync,
        peak_rss,
        latencies,
        plugin_applies: writes.iter().filter(|w| plugin_apply(w).is_some()).count(),
        status_writes: per_allowlist.values().map(Vec::len).sum(),
        statuses_missing,
        statuses_repeated,
    })
}
