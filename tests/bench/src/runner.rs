//! One benchmark run: the upstream (and authorizer), then for every N, round
//! and variant a fresh Envoy under test, its verdicts checked, loaded with the
//! allowed and then the denied request, measured from `/proc`, and finally
//! given a smaller rule set to time the configuration change.

use crate::cli::{variant_label, variant_name, Options};
use crate::http;
use crate::procstat::{self, Guard};
use crate::wrk;
use meshward_bench::configs::{self, Files, Ports, Variant};
use meshward_bench::rules;
use meshward_bench::rules::Rule;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an Envoy may take to become ready (10,000 rules compile).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the verdicts may take to settle after readiness.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a configuration change may take to show.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// The request under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `rules::allowed_request` (matches only the last rule).
    Allowed,
    /// `rules::denied_request`.
    Denied,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }
}

/// Whether `variant` enforces the allowlist (denies the denied request).
pub(crate) fn enforces(variant: Variant) -> bool {
    matches!(variant, Variant::Rbac | Variant::RbacMatcher | Variant::Meshward)
}

/// The status the variant must answer `kind` with.
fn expected_status(variant: Variant, kind: Kind) -> u16 {
    if kind == Kind::Denied && enforces(variant) {
        403
    } else {
        200
    }
}

/// One measured load run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// Envoy's CPU time over the wrk run divided by completed requests.
    pub(crate) cpu_us_per_req: f64,
}

/// Everything measured on one Envoy (one variant, N and round).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub(crate) loads: BTreeMap<Kind, Load>,
    /// `VmRSS` after both load runs, kB.
    pub(crate) rss_kb: u64,
    /// Admin `/memory` `allocated` after both load runs, bytes.
    pub(crate) heap_bytes: Option<u64>,
    /// From `update_filter` to the first 403 for the formerly allowed request.
    pub(crate) config_change_ms: Option<f64>,
}

/// All results: runs by (N, variant) and round, and what is not reported.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) runs: BTreeMap<(usize, Variant), BTreeMap<u32, Run>>,
    pub(crate) refused: Vec<(usize, Variant, String)>,
}

/// `K` distinct ports on 127.0.0.1 that were free a moment ago: all bound at once (so no
/// two are the same), then released for Envoy to bind.
fn free_ports<const K: usize>() -> Result<[u16; K], String> {
    let listeners = (0..K)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bind an ephemeral port on 127.0.0.1: {e}"))?;
    let mut ports = [0; K];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l
            .local_addr()
            .map_err(|e| format!("local address of an ephemeral port: {e}"))?
            .port();
    }
    Ok(ports)
}

/// Runs `start` with fresh (listener, admin) ports, again with new ones (up
/// to three tries) when Envoy could not bind one: another process can take a
/// port between [`free_ports`] releasing it and Envoy binding it.
fn with_fresh_ports<T>(mut start: impl FnMut([u16; 2]) -> Result<T, String>) -> Result<T, String> {
    let mut tries = 1;
    loop {
        match start(free_ports()?) {
            Err(e) if tries < 3 && e.contains("Address already in use") => {
                eprintln!("  a port was taken before Envoy bound it; again with new ports");
                tries += 1;
            }
            done => return done,
        }
    }
}

/// The Envoy binary: `--envoy`, `$MESHWARD_ENVOY`, or the project's `.venv`.
pub(crate) fn envoy_binary(opts: &Options, workspace: &Path) -> Result<PathBuf, String> {
    let path = opts
        .envoy
        .clone()
        .or_else(|| std::env::var_os("MESHWARD_ENVOY").map(PathBuf::from))
        .unwrap_or_else(|| workspace.join(".venv/bin/envoy"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "Envoy not found at {}: run `make setup` (or pass --envoy / set MESHWARD_ENVOY)",
            path.display()
        ))
    }
}

/// The run's fixed parts.
#[derive(Debug)]
pub(crate) struct Bench {
    pub(crate) opts: Options,
    pub(crate) envoy: PathBuf,
    pub(crate) clk_tck: u64,
    pub(crate) meshward_wasm: PathBuf,
    pub(crate) noop_wasm: PathBuf,
    /// `$TMPDIR/meshward-bench-<pid>`.
    pub(crate) scratch: PathBuf,
}

/// A started Envoy (killed on drop).
struct Envoy {
    guard: Guard,
    admin: u16,
}

impl Bench {
    /// Starts Envoy with `bootstrap` pinned to `cpu` and waits for `/ready`.
    fn start_envoy(&self, name: &str, dir: &Path, bootstrap: &str, admin: u16, cpu: &str) -> Result<Envoy, String> {
        let config = dir.join("envoy.json");
        std::fs::write(&config, bootstrap).map_err(|e| format!("write {}: {e}", config.display()))?;
        let args: Vec<String> = vec![
            "-c".into(),
            config.to_string_lossy().into_owned(),
            "--concurrency".into(),
            "1".into(),
            "--disable-hot-restart".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        let mut guard = Guard::spawn_pinned(name, cpu, &self.envoy, &args, &dir.join("envoy.log"))?;
        let start = Instant::now();
        loop {
            if let Some(status) = guard.exited() {
                return Err(format!(
                    "{name}: Envoy exited ({status}) before becoming ready; log tail:\n{}",
                    guard.log_tail(30)
                ));
            }
            let ready = http::request(admin, "GET", "/ready", Duration::from_secs(2));
            if ready.is_ok_and(|r| r.status == 200 && r.body.trim() == "LIVE") {
                return Ok(Envoy { guard, admin });
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "{name}: Envoy not ready after {} s; log tail:\n{}",
                    READY_TIMEOUT.as_secs(),
                    guard.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A responder Envoy (`configs::responder_bootstrap`) on the load core;
    /// returns it and its port.
    fn start_responder(&self, name: &str) -> Result<(Envoy, u16), String> {
        let dir = self.scratch.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let (envoy, port) = with_fresh_ports(|[port, admin]| {
            let bootstrap = configs::responder_bootstrap(port, admin);
            Ok((
                self.start_envoy(name, &dir, &bootstrap, admin, &self.opts.load_cpu)?,
                port,
            ))
        })?;
        let reply = http::request(port, "GET", "/", Duration::from_secs(5))?;
        if reply.status != 200 {
            return Err(format!("{name} answers {} instead of 200", reply.status));
        }
        Ok((envoy, port))
    }

    /// Runs everything; progress on stderr.
    pub(crate) fn run(&self) -> Result<Results, String> {
        let (_upstream, upstream_port) = self.start_responder("upstream")?;
        eprintln!(
            "upstream responder on 127.0.0.1:{upstream_port} (cpu {})",
            self.opts.load_cpu
        );
        let authorizer = if self.opts.variants.contains(&Variant::ExtAuthz) {
            let (envoy, port) = self.start_responder("authorizer")?;
            eprintln!("ext_authz authorizer on 127.0.0.1:{port} (cpu {})", self.opts.load_cpu);
            Some((envoy, port))
        } else {
            None
        };
        let authz_port = match &authorizer {
            Some((_, port)) => *port,
            None => {
                let [unused] = free_ports()?;
                unused
            }
        };
        let mut results = Results::default();
        for &n in &self.opts.rules {
            let rules = rules::rules_with(n, self.opts.mix);
            let allowed = rules::allowed_request(&rules);
            let denied = rules::denied_request();
            check_workload(n, &rules, &allowed, &denied)?;
            for round in 1..=self.opts.rounds {
                for &variant in &self.opts.variants {
                    if results.refused.iter().any(|(m, v, _)| *m == n && *v == variant) {
                        continue;
                    }
                    eprintln!("N={n} round {round}/{}: {}", self.opts.rounds, variant_label(variant));
                    let dir = self.scratch.join(format!("n{n}-r{round}-{}", variant_name(variant)));
                    let run = with_fresh_ports(|[listener, admin]| {
                        let ports = Ports {
                            listener,
                            admin,
                            upstream: upstream_port,
                            authz: authz_port,
                        };
                        self.run_one(variant, round, &rules, &allowed, &denied, &ports, &dir)
                    });
                    match run {
                        Ok(run) => {
                            results.runs.entry((n, variant)).or_default().insert(round, run);
                            if !self.opts.keep {
                                let _ = std::fs::remove_dir_all(&dir);
                            }
                        }
                        Err(e) => {
                            eprintln!(
                                "error: {} at N={n}, round {round}: {e}\n(files kept in {}; the variant is not reported at N={n})",
                                variant_label(variant),
                                dir.display()
                            );
                            results.runs.remove(&(n, variant));
                            results.refused.push((n, variant, e));
                        }
                    }
                }
            }
        }
        Ok(results)
    }

    /// One Envoy under test: start, verdicts, load, memory, config change.
    #[allow(clippy::too_many_arguments)]
    fn run_one(
        &self,
        variant: Variant,
        round: u32,
        rules: &[Rule],
        allowed: &(String, String),
        denied: &(String, String),
        ports: &Ports,
        dir: &Path,
    ) -> Result<Run, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let files = Files {
            dir: dir.to_path_buf(),
            meshward_wasm: self.meshward_wasm.clone(),
            noop_wasm: self.noop_wasm.clone(),
        };
        let bootstrap = configs::bootstrap(variant, rules, ports, &files);
        let mut envoy = self.start_envoy(
            variant_name(variant),
            dir,
            &bootstrap,
            ports.admin,
            &self.opts.envoy_cpu,
        )?;
        let requests = [(Kind::Allowed, allowed), (Kind::Denied, denied)];
        for (kind, (method, path)) in requests {
            check_verdict(ports.listener, method, path, expected_status(variant, kind))
                .map_err(|e| format!("wrong verdict, refusing to measure: {} request {e}", kind.name()))?;
        }
        // Alternate which request is loaded first, so neither always meets a
        // freshly started Envoy.
        let mut order = requests;
        if round % 2 == 0 {
            order.reverse();
        }
        let mut loads = BTreeMap::new();
        for (kind, (method, path)) in order {
            let load = self.load(&mut envoy, ports.listener, dir, variant, kind, method, path)?;
            eprintln!(
                "  {:7} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  {:>6.1} CPU µs/req",
                kind.name(),
                load.rps,
                load.p50_us,
                load.p99_us,
                load.cpu_us_per_req
            );
            loads.insert(kind, load);
        }
        let pid = envoy.guard.pid();
        let rss_kb = procstat::rss_kb(pid)?;
        let heap_bytes = admin_allocated(envoy.admin);
        let config_change_ms = if enforces(variant) {
            let ms = self.config_change(variant, rules, &files, ports.listener, allowed, &mut envoy)?;
            eprintln!("  config change seen after {ms:.1} ms");
            Some(ms)
        } else {
            None
        };
        Ok(Run {
            loads,
            rss_kb,
            heap_bytes,
            config_change_ms,
        })
    }

    /// Warm-up, then the measured wrk run with Envoy's CPU ticks around it.
    #[allow(clippy::too_many_arguments)]
    fn load(
        &self,
        envoy: &mut Envoy,
        port: u16,
        dir: &Path,
        variant: Variant,
        kind: Kind,
        method: &str,
        path: &str,
    ) -> Result<Load, String> {
        let script = dir.join(format!("{}.lua", kind.name()));
        std::fs::write(&script, wrk::script(method, path)).map_err(|e| format!("write {}: {e}", script.display()))?;
        let o = &self.opts;
        if o.warmup > 0 {
            wrk::run(
                &o.load_cpu,
                &wrk::args(o.threads, o.connections, o.warmup, &script, port),
            )?;
        }
        let pid = envoy.guard.pid();
        let before = procstat::cpu_ticks(pid)?;
        let r = wrk::run(
            &o.load_cpu,
            &wrk::args(o.threads, o.connections, o.duration, &script, port),
        )?;
        let after = procstat::cpu_ticks(pid)?;
        if let Some(status) = envoy.guard.exited() {
            return Err(format!(
                "{} exited ({status}) under load; log tail:\n{}",
                envoy.guard.name(),
                envoy.guard.log_tail(30)
            ));
        }
        if r.requests == 0 {
            return Err(format!("wrk completed no {} requests", kind.name()));
        }
        let want_non_2xx = if expected_status(variant, kind) == 200 {
            0
        } else {
            r.requests
        };
        if r.non_2xx != want_non_2xx {
            return Err(format!(
                "under load, {} of {} {} requests were not 2xx (expected {want_non_2xx})",
                r.non_2xx,
                r.requests,
                kind.name()
            ));
        }
        if r.socket_errors > 0 {
            eprintln!(
                "  warning: wrk reported {} socket errors ({} requests)",
                r.socket_errors, r.requests
            );
        }
        let ticks = after.saturating_sub(before);
        Ok(Load {
            rps: r.rps,
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            cpu_us_per_req: ticks as f64 * 1e6 / self.clk_tck as f64 / r.requests as f64,
        })
    }

    /// Replaces the filter with the rules minus the last one and times how
    /// long until the formerly allowed request is denied.
    fn config_change(
        &self,
        variant: Variant,
        rules: &[Rule],
        files: &Files,
        port: u16,
        (method, path): &(String, String),
        envoy: &mut Envoy,
    ) -> Result<f64, String> {
        let fewer = rules.get(..rules.len().saturating_sub(1)).unwrap_or_default();
        let start = Instant::now();
        configs::update_filter(variant, fewer, files);
        loop {
            if let Ok(r) = http::request(port, method, path, Duration::from_secs(5)) {
                if r.status == 403 {
                    return Ok(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            if let Some(status) = envoy.guard.exited() {
                return Err(format!(
                    "Envoy exited ({status}) after the config change; log tail:\n{}",
                    envoy.guard.log_tail(30)
                ));
            }
            if start.elapsed() > CHANGE_TIMEOUT {
                return Err(format!(
                    "config change: {method} {path} still not 403 after {} s; log tail:\n{}",
                    CHANGE_TIMEOUT.as_secs(),
                    envoy.guard.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Rejects stub or inconsistent workloads before starting anything.
fn check_workload(
    n: usize,
    rules: &[Rule],
    allowed: &(String, String),
    denied: &(String, String),
) -> Result<(), String> {
    if rules.len() != n {
        return Err(format!("rules::rules_with({n}, ..) returned {} rules", rules.len()));
    }
    for (what, (method, path)) in [("allowed", allowed), ("denied", denied)] {
        if method.is_empty() || !path.starts_with('/') {
            return Err(format!(
                "the {what} request is {method:?} {path:?}: expected a method and a path starting with `/`"
            ));
        }
    }
    Ok(())
}

/// Sends `method path` until it gets `want` (up to [`VERDICT_TIMEOUT`]).
fn check_verdict(port: u16, method: &str, path: &str, want: u16) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let got = http::request(port, method, path, Duration::from_secs(5));
        match &got {
            Ok(r) if r.status == want => return Ok(()),
            _ if start.elapsed() > VERDICT_TIMEOUT => {
                let got = match got {
                    Ok(r) => format!("status {}", r.status),
                    Err(e) => e,
                };
                return Err(format!("{method} {path}: expected {want}, got {got}"));
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `allocated` from the admin `/memory` endpoint (tcmalloc's bytes in use).
fn admin_allocated(admin: u16) -> Option<u64> {
    let reply = http::request(admin, "GET", "/memory", Duration::from_secs(5)).ok()?;
    let json: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
    match json.get("allocated")? {
        serde_json::Value::String(s) => s.parse().ok(),
        v => v.as_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports: [u16; 8] = free_ports().unwrap();
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "{ports:?}");
        assert!(ports.iter().all(|&p| p != 0));
    }

    #[test]
    fn a_taken_port_is_retried_with_new_ports_other_errors_are_not() {
        let taken = "cannot bind '127.0.0.1:4000': Address already in use";
        let mut seen = Vec::new();
        let ok = with_fresh_ports(|ports| {
            seen.push(ports);
            if seen.len() < 3 {
                Err(taken.to_string())
            } else {
                Ok(seen.len())
            }
        });
        assert_eq!(ok, Ok(3));
        let mut tries = 0;
        let always = with_fresh_ports(|_| -> Result<(), String> {
            tries += 1;
            Err(taken.to_string())
        });
        assert_eq!((always, tries), (Err(taken.to_string()), 3));
        let mut tries = 0;
        let other = with_fresh_ports(|_| -> Result<(), String> {
            tries += 1;
            Err("wrong verdict".to_string())
        });
        assert_eq!((other, tries), (Err("wrong verdict".to_string()), 1));
    }
}
