//! The service's Prometheus metrics, rendered in the text exposition format
//! (`GET /metrics`). A handful of counters, gauges and two histograms do not
//! need a metrics library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::state::{Counts, Kind};

/// Upper bounds (seconds) of the round-duration histogram's buckets.
const SECONDS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the namespaces-derived-per-round histogram's buckets.
const NAMESPACES: [f64; 9] = [0.0, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 1000.0, 10000.0];

/// What happened to one object the writer considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Written with server-side apply.
    Applied,
    /// Identical to what the cluster holds; not written.
    Unchanged,
    /// Deleted (owned WasmPlugin of a namespace no longer enabled).
    Deleted,
    /// The API server refused or failed the write.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
            Self::Error => "error",
        }
    }
}

/// How a reconcile round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Derived and planned; its writes queued.
    Ok = 0,
    /// Derivation failed (a bug); everything is derived again next round.
    Error = 1,
    /// The view of the cluster was incomplete; nothing derived or written.
    Skipped = 2,
}

/// A histogram with fixed buckets.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, in millionths.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if value <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6).round().max(0.0) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The service's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    reconciles: [AtomicU64; 3],
    writes: Mutex<BTreeMap<(&'static str, Outcome), u64>>,
    round_seconds: Histogram,
    round_namespaces: Histogram,
    wasm_plugins: AtomicU64,
    ready: AtomicBool,
    leader: AtomicBool,
    objects: Mutex<Counts>,
    watch_errors: Mutex<BTreeMap<Kind, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Default::default(),
            writes: Mutex::default(),
            round_seconds: Histogram::new(&SECONDS),
            round_namespaces: Histogram::new(&NAMESPACES),
            wasm_plugins: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            objects: Mutex::default(),
            watch_errors: Mutex::default(),
        }
    }
}

/// What `/metrics` reads from the rest of the service at the time of the scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Writes queued or in flight.
    pub write_queue: usize,
}

impl Metrics {
    /// Counts a reconcile round.
    pub fn round(&self, r: Round) {
        if let Some(c) = self.reconciles.get(r as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a finished round: its duration and the namespaces it derived.
    pub fn round_done(&self, took: Duration, namespaces: usize) {
        self.round_seconds.observe(took.as_secs_f64());
        self.round_namespaces.observe(namespaces as f64);
    }

    /// Counts what happened to one object of `kind`.
    pub fn write(&self, kind: &'static str, outcome: Outcome) {
        self.writes_n(kind, outcome, 1);
    }

    /// Counts `n` objects of `kind` with the same outcome.
    pub fn writes_n(&self, kind: &'static str, outcome: Outcome, n: usize) {
        if n == 0 {
            return;
        }
        if let Ok(mut w) = self.writes.lock() {
            *w.entry((kind, outcome)).or_default() += n as u64;
        }
    }

    /// Counts a failed list or watch of `kind`.
    pub fn watch_error(&self, kind: Kind) {
        if let Ok(mut e) = self.watch_errors.lock() {
            *e.entry(kind).or_default() += 1;
        }
    }

    /// The number of reconcile rounds that ended as `r`.
    pub fn rounds(&self, r: Round) -> u64 {
        self.reconciles.get(r as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Sets the number of WasmPlugins derived.
    pub fn wasm_plugins(&self, n: usize) {
        self.wasm_plugins.store(n as u64, Ordering::Relaxed);
    }

    /// Sets the objects held per kind.
    pub fn objects(&self, counts: &Counts) {
        if let Ok(mut o) = self.objects.lock() {
            o.clone_from(counts);
        }
    }

    /// Marks this replica as the writer or not.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Marks the service ready (every kind listed and derived once).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "meshward_control_reconciles_total",
            "counter",
            "Reconcile rounds by result.",
        );
        for (result, r) in [("ok", Round::Ok), ("error", Round::Error), ("skipped", Round::Skipped)] {
            let _ = writeln!(
                out,
                "meshward_control_reconciles_total{{result=\"{result}\"}} {}",
                self.rounds(r)
            );
        }
        family(
            &mut out,
            "meshward_control_round_duration_seconds",
            "histogram",
            "Time a round takes to derive the affected namespaces and plan their writes (not the writes).",
        );
        self.round_seconds
            .render(&mut out, "meshward_control_round_duration_seconds");
        family(
            &mut out,
            "meshward_control_round_namespaces",
            "histogram",
            "Namespaces derived per round (all of them on the first round and each resync).",
        );
        self.round_namespaces
            .render(&mut out, "meshward_control_round_namespaces");
        family(
            &mut out,
            "meshward_control_writes_total",
            "counter",
            "Objects considered by the writer, by kind and outcome.",
        );
        if let Ok(w) = self.writes.lock() {
            for ((kind, outcome), n) in w.iter() {
                let _ = writeln!(
                    out,
                    "meshward_control_writes_total{{kind=\"{kind}\",outcome=\"{}\"}} {n}",
                    outcome.as_str()
                );
            }
        }
        family(
            &mut out,
            "meshward_control_write_queue",
            "gauge",
            "Writes queued or in flight.",
        );
        let _ = writeln!(out, "meshward_control_write_queue {}", gauges.write_queue);
        family(
            &mut out,
            "meshward_control_objects",
            "gauge",
            "Objects held in memory, by kind (pods of one ReplicaSet share one workload entry).",
        );
        if let Ok(o) = self.objects.lock() {
            for kind in Kind::ALL {
                let n = o.get(&kind).copied().unwrap_or(0);
                let _ = writeln!(out, "meshward_control_objects{{kind=\"{}\"}} {n}", kind.as_str());
            }
        }
        family(
            &mut out,
            "meshward_control_watch_errors_total",
            "counter",
            "Failed lists and watches, by kind (each is followed by a re-list).",
        );
        if let Ok(e) = self.watch_errors.lock() {
            for (kind, n) in e.iter() {
                let _ = writeln!(
                    out,
                    "meshward_control_watch_errors_total{{kind=\"{}\"}} {n}",
                    kind.as_str()
                );
            }
        }
        family(
            &mut out,
            "meshward_control_wasmplugins",
            "gauge",
            "WasmPlugins derived.",
        );
        let _ = writeln!(
            out,
            "meshward_control_wasmplugins {}",
            self.wasm_plugins.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "meshward_control_ready",
            "gauge",
            "1 once every watched kind is listed and the first full derivation is done.",
        );
        let _ = writeln!(
            out,
            "meshward_control_ready {}",
            u8::from(self.ready.load(Ordering::Relaxed))
        );
        family(
            &mut out,
            "meshward_control_leader",
            "gauge",
            "1 while this replica holds the Lease and writes (always 1 without leader election).",
        );
        let _ = writeln!(
            out,
            "meshward_control_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        if let Some(memory) = Memory::read() {
            family(
                &mut out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
            );
            let _ = writeln!(out, "process_resident_memory_bytes {}", memory.resident);
            family(
                &mut out,
                "meshward_control_resident_memory_peak_bytes",
                "gauge",
                "The highest resident memory size since the service started (VmHWM), in bytes.",
            );
            let _ = writeln!(out, "meshward_control_resident_memory_peak_bytes {}", memory.peak);
        }
        out
    }
}

/// The process's memory, from `/proc/self/status` (Linux).
#[derive(Debug, Clone, Copy)]
struct Memory {
    resident: u64,
    peak: u64,
}

impl Memory {
    fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |field: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(field))?;
            let value = line.trim_start_matches(field).trim().trim_end_matches("kB").trim();
            value.parse::<u64>().ok().map(|v| v * 1024)
        };
        Some(Self {
            resident: kib("VmRSS:")?,
            peak: kib("VmHWM:")?,
        })
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.round_done(Duration::from_millis(3), 2);
        m.round_done(Duration::from_millis(700), 100);
        m.wasm_plugins(2);
        let text = m.render(Gauges::default());
        for line in [
            "meshward_control_round_duration_seconds_bucket{le=\"0.001\"} 0",
            "meshward_control_round_duration_seconds_bucket{le=\"0.005\"} 1",
            "meshward_control_round_duration_seconds_bucket{le=\"1\"} 2",
            "meshward_control_round_duration_seconds_bucket{le=\"+Inf\"} 2",
            "meshward_control_round_duration_seconds_count 2",
            "meshward_control_round_namespaces_bucket{le=\"2\"} 1",
            "meshward_control_round_namespaces_bucket{le=\"100\"} 2",
            "meshward_control_round_namespaces_sum 102",
            "meshward_control_wasmplugins 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn writes_objects_and_memory_are_reported() {
        let m = Metrics::default();
        m.write("WasmPlugin", Outcome::Applied);
        m.write("WasmPlugin", Outcome::Applied);
        m.write("Allowlist", Outcome::Unchanged);
        m.round(Round::Skipped);
        m.objects(&Counts::from([(Kind::Pod, 7)]));
        m.watch_error(Kind::Service);
        let text = m.render(Gauges { write_queue: 3 });
        for line in [
            "meshward_control_writes_total{kind=\"WasmPlugin\",outcome=\"applied\"} 2",
            "meshward_control_writes_total{kind=\"Allowlist\",outcome=\"unchanged\"} 1",
            "meshward_control_reconciles_total{result=\"skipped\"} 1",
            "meshward_control_objects{kind=\"Pod\"} 7",
            "meshward_control_objects{kind=\"Service\"} 0",
            "meshward_control_watch_errors_total{kind=\"Service\"} 1",
            "meshward_control_write_queue 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<u64>().ok());
        assert!(rss.is_some_and(|b| b > 1 << 20), "{text}");
    }
}
