//! The service's Prometheus metrics, rendered in the text exposition format
//! (`GET /metrics`). A handful of counters and one histogram do not need a
//! metrics library.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the derivation-time histogram's buckets.
const BUCKETS: [f64; 11] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

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
    /// Everything written.
    Ok = 0,
    /// A write failed; retried with backoff.
    Error = 1,
    /// The view of the cluster was incomplete; nothing written.
    Skipped = 2,
}

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: [AtomicU64; 3],
    writes: Mutex<BTreeMap<(&'static str, Outcome), u64>>,
    derive_buckets: [AtomicU64; BUCKETS.len()],
    derive_count: AtomicU64,
    derive_micros: AtomicU64,
    wasm_plugins: AtomicU64,
    ready: AtomicBool,
}

impl Metrics {
    /// Counts a reconcile round.
    pub fn round(&self, r: Round) {
        if let Some(c) = self.reconciles.get(r as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
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

    /// The number of reconcile rounds that ended as `r`.
    pub fn rounds(&self, r: Round) -> u64 {
        self.reconciles.get(r as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Records one derivation's duration and the number of WasmPlugins it produced.
    pub fn derived(&self, took: Duration, wasm_plugins: usize) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.derive_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.derive_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.derive_micros.fetch_add(micros, Ordering::Relaxed);
        self.wasm_plugins.store(wasm_plugins as u64, Ordering::Relaxed);
    }

    /// Marks the service ready (first full sync of every watched kind).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
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
            "meshward_control_derivation_seconds",
            "histogram",
            "Time to derive the desired objects from a snapshot.",
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.derive_buckets) {
            let _ = writeln!(
                out,
                "meshward_control_derivation_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.derive_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "meshward_control_derivation_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.derive_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "meshward_control_derivation_seconds_sum {sum}");
        let _ = writeln!(out, "meshward_control_derivation_seconds_count {count}");
        family(
            &mut out,
            "meshward_control_wasmplugins",
            "gauge",
            "WasmPlugins in the last derivation.",
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
            "1 after the first full sync of every watched kind.",
        );
        let _ = writeln!(
            out,
            "meshward_control_ready {}",
            u8::from(self.ready.load(Ordering::Relaxed))
        );
        out
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
        m.derived(Duration::from_millis(3), 2);
        m.derived(Duration::from_millis(700), 2);
        let text = m.render();
        assert!(
            text.contains("meshward_control_derivation_seconds_bucket{le=\"0.001\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("meshward_control_derivation_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("meshward_control_derivation_seconds_bucket{le=\"1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("meshward_control_derivation_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("meshward_control_derivation_seconds_count 2\n"), "{text}");
        assert!(text.contains("meshward_control_wasmplugins 2\n"), "{text}");
    }

    #[test]
    fn writes_are_labelled_by_kind_and_outcome() {
        let m = Metrics::default();
        m.write("WasmPlugin", Outcome::Applied);
        m.write("WasmPlugin", Outcome::Applied);
        m.write("Allowlist", Outcome::Unchanged);
        m.round(Round::Skipped);
        let text = m.render();
        assert!(
            text.contains("meshward_control_writes_total{kind=\"WasmPlugin\",outcome=\"applied\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("meshward_control_writes_total{kind=\"Allowlist\",outcome=\"unchanged\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("meshward_control_reconciles_total{result=\"skipped\"} 1\n"),
            "{text}"
        );
    }
}
