//! The markdown report: machine header, the command, the results table, the
//! memory table and what was not reported.

use crate::cli::{mix_description, mix_name, variant_label, Options};
use crate::runner::{Kind, Results, Run};
use meshward_bench::configs::Variant;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// Median of `values` (mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        len if len % 2 == 1 => v.get(mid).copied(),
        _ => Some((v.get(mid - 1)? + v.get(mid)?) / 2.0),
    }
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// `median [min–max]`, or the median alone with one value.
fn spread(values: &[f64], decimals: usize) -> String {
    match (median(values), min_max(values)) {
        (Some(m), Some((lo, hi))) if values.len() > 1 => {
            format!("{m:.decimals$} [{lo:.decimals$}–{hi:.decimals$}]")
        }
        (Some(m), _) => format!("{m:.decimals$}"),
        _ => "–".into(),
    }
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

/// Per round, `f(variant's run) / f(reference's run)` over the rounds both
/// have; the median of those ratios.
fn ratio(
    runs: &BTreeMap<u32, Run>,
    reference: Option<&BTreeMap<u32, Run>>,
    f: impl Fn(&Run) -> Option<f64>,
) -> Option<f64> {
    per_round(runs, reference, f, |a, b| a / b)
}

/// Per round, `f(variant) − f(reference)`; the median of the differences.
fn difference(
    runs: &BTreeMap<u32, Run>,
    reference: Option<&BTreeMap<u32, Run>>,
    f: impl Fn(&Run) -> Option<f64>,
) -> Option<f64> {
    per_round(runs, reference, f, |a, b| a - b)
}

/// The median over the rounds both have of `combine(f(variant), f(reference))`.
fn per_round(
    runs: &BTreeMap<u32, Run>,
    reference: Option<&BTreeMap<u32, Run>>,
    f: impl Fn(&Run) -> Option<f64>,
    combine: impl Fn(f64, f64) -> f64,
) -> Option<f64> {
    let reference = reference?;
    let values: Vec<f64> = runs
        .iter()
        .filter_map(|(round, run)| Some(combine(f(run)?, f(reference.get(round)?)?)))
        .collect();
    median(&values)
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch: the filter's
/// RFC 3339 formatter (one civil-date algorithm in the workspace), re-spelled.
pub(crate) fn utc(secs: u64) -> String {
    let t = meshward_filter::plugin::rfc3339(secs.saturating_mul(1_000_000_000));
    match (t.get(..10), t.get(11..19)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => t,
    }
}

/// What the machine and tools are.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cpus: usize,
    pub(crate) kernel: String,
    pub(crate) envoy: String,
    pub(crate) wrk: String,
    pub(crate) date: String,
}

impl Machine {
    pub(crate) fn describe(envoy: &Path, wrk: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let kernel = format!(
            "{} {}",
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease")
        );
        let envoy = Command::new(envoy)
            .arg("--version")
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .skip_while(|w| *w != "version:")
                    .nth(1)
                    .unwrap_or("unknown")
                    .to_string()
            })
            .unwrap_or_else(|| "unknown".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Self {
            cpu,
            cpus,
            kernel,
            envoy,
            wrk,
            date: utc(secs),
        }
    }
}

const LEGEND: &str = "\
How each figure is measured:
- **req/s**: wrk's `Requests/sec` of the measured run (after an unmeasured warm-up); median over rounds [min–max].
- **p50 / p99**: wrk `--latency` distribution (50% and 99% lines), µs, median over rounds.
- **CPU µs/req**: Envoy's `utime + stime` (fields 14 and 15 of `/proc/<pid>/stat`, all threads, in clock ticks) \
from just before to just after the measured wrk run, divided by the requests wrk completed; median over rounds.
- **RSS**: `VmRSS` of `/proc/<pid>/status` after both load runs (one Envoy serves the allowed and the denied load).
- **config change**: from writing the ECDS file with the last rule removed (`configs::update_filter`) until the \
formerly allowed request is answered 403, polled every ~1 ms with a fresh connection; enforcing variants only.
- **÷ (a)**, **÷ (c)**: per round, the variant's figure divided by (a) Router's or (c) NoopWasm's on the same N \
and request in the same round; the median of those ratios.
- Each variant's verdicts (allowed → 200; denied → 403 for Rbac, RbacMatcher and Meshward, 200 otherwise) are checked \
before the load and again under load (wrk's non-2xx count); a variant whose verdicts are wrong is not reported.";

const MEMORY_LEGEND: &str = "\
Memory, per N (medians over rounds). **heap** is Envoy's admin `/memory` `allocated` (tcmalloc bytes in use; \
V8's own heap pages are not in it, RSS includes them). Per-VM memory is approximated by differences with the \
same N in the same round: for the wasm variants, **RSS − (a)** is the wasm VM with its module and plugin \
configuration; **RSS − (c)** for Meshward is meshward's engine and rule set beyond a no-op VM.";

/// The whole report.
pub(crate) fn render(opts: &Options, machine: &Machine, command: &[String], clk_tck: u64, results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## meshward-bench\n");
    let command: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
    let _ = writeln!(out, "- Command: `{}`", command.join(" "));
    let _ = writeln!(
        out,
        "- Rule mix: {} (`--mix {}`)",
        mix_description(opts.mix),
        mix_name(opts.mix)
    );
    let _ = writeln!(out, "- Date: {}", machine.date);
    let _ = writeln!(out, "- CPU: {} ({} logical CPUs)", machine.cpu, machine.cpus);
    let _ = writeln!(out, "- Kernel: {}", machine.kernel);
    let _ = writeln!(out, "- Envoy: {}", machine.envoy);
    let _ = writeln!(out, "- Load generator: {}", machine.wrk);
    let _ = writeln!(
        out,
        "- Pinning: Envoy under test `taskset -c {}` with `--concurrency 1`; wrk (`--threads {} --connections {}`), \
         the upstream and the ext_authz authorizer (Envoys, `--concurrency 1`) `taskset -c {}`",
        opts.envoy_cpu, opts.threads, opts.connections, opts.load_cpu
    );
    let _ = writeln!(
        out,
        "- Schedule: {} round(s); within a round the variants run one after another (interleaved), each in a fresh \
         Envoy: {} s warm-up then {} s measured, with the allowed and the denied request (allowed first in odd rounds, denied first in even ones). \
         Clock ticks: {clk_tck}/s.\n",
        opts.rounds, opts.warmup, opts.duration
    );
    let _ = writeln!(out, "{LEGEND}\n");
    let _ = writeln!(out, "### Load, rule mix: {}\n", mix_description(opts.mix));
    let _ = writeln!(
        out,
        "| variant | N | request | req/s median [min–max] | p50 µs | p99 µs | CPU µs/req | RSS MB | \
         config change ms | req/s ÷ (a) | req/s ÷ (c) | CPU/req ÷ (a) | CPU/req ÷ (c) |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let rps = |k: Kind| move |r: &Run| r.loads.get(&k).map(|l| l.rps);
    let cpu = |k: Kind| move |r: &Run| r.loads.get(&k).map(|l| l.cpu_us_per_req);
    for &n in &opts.rules {
        for kind in [Kind::Allowed, Kind::Denied] {
            for &variant in &opts.variants {
                let Some(runs) = results.runs.get(&(n, variant)) else {
                    continue;
                };
                let router = results.runs.get(&(n, Variant::Router));
                let noop = results.runs.get(&(n, Variant::NoopWasm));
                let loads: Vec<_> = runs.values().filter_map(|r| r.loads.get(&kind)).collect();
                let col = |f: fn(&crate::runner::Load) -> f64| loads.iter().map(|l| f(l)).collect::<Vec<_>>();
                let rss: Vec<f64> = runs.values().map(|r| r.rss_kb as f64 / 1024.0).collect();
                let change: Vec<f64> = runs.values().filter_map(|r| r.config_change_ms).collect();
                let change = if kind == Kind::Allowed && !change.is_empty() {
                    spread(&change, 0)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "| {} | {n} | {} | {} | {} | {} | {} | {} | {change} | {} | {} | {} | {} |",
                    variant_label(variant),
                    kind.name(),
                    spread(&col(|l| l.rps), 0),
                    cell(median(&col(|l| l.p50_us)), 0),
                    cell(median(&col(|l| l.p99_us)), 0),
                    cell(median(&col(|l| l.cpu_us_per_req)), 1),
                    cell(median(&rss), 1),
                    cell(ratio(runs, router, rps(kind)), 2),
                    cell(ratio(runs, noop, rps(kind)), 2),
                    cell(ratio(runs, router, cpu(kind)), 2),
                    cell(ratio(runs, noop, cpu(kind)), 2),
                );
            }
        }
    }
    let _ = writeln!(out, "\n### Memory, rule mix: {}\n", mix_description(opts.mix));
    let _ = writeln!(out, "{MEMORY_LEGEND}\n");
    let _ = writeln!(
        out,
        "| variant | N | RSS MB | heap MB | RSS − (a) MB | RSS − (c) MB | heap − (a) MB |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    let mb = |kb: u64| kb as f64 / 1024.0;
    let rss_mb = move |r: &Run| Some(mb(r.rss_kb));
    let heap_mb = |r: &Run| r.heap_bytes.map(|b| b as f64 / 1_048_576.0);
    for &n in &opts.rules {
        for &variant in &opts.variants {
            let Some(runs) = results.runs.get(&(n, variant)) else {
                continue;
            };
            let router = results.runs.get(&(n, Variant::Router));
            let noop = results.runs.get(&(n, Variant::NoopWasm));
            let rss: Vec<f64> = runs.values().filter_map(rss_mb).collect();
            let heap: Vec<f64> = runs.values().filter_map(heap_mb).collect();
            let _ = writeln!(
                out,
                "| {} | {n} | {} | {} | {} | {} | {} |",
                variant_label(variant),
                cell(median(&rss), 1),
                cell(median(&heap), 1),
                cell(difference(runs, router, rss_mb), 1),
                if matches!(variant, Variant::NoopWasm | Variant::Meshward) {
                    cell(difference(runs, noop, rss_mb), 1)
                } else {
                    String::new()
                },
                cell(difference(runs, router, heap_mb), 1),
            );
        }
    }
    if !results.refused.is_empty() {
        let _ = writeln!(out, "\nNot reported (failed; see stderr for details):\n");
        for (n, variant, reason) in &results.refused {
            let first = reason.lines().next().unwrap_or_default();
            let _ = writeln!(out, "- {} at N={n}: {first}", variant_label(*variant));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Load;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(spread(&[3.0, 1.0, 2.0], 0), "2 [1–3]");
        assert_eq!(spread(&[2.25], 1), "2.2");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--rules=10,100"), "--rules=10,100");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }

    fn run(rps: f64, cpu: f64, rss_kb: u64) -> Run {
        let load = Load {
            rps,
            p50_us: 100.0,
            p99_us: 200.0,
            cpu_us_per_req: cpu,
        };
        Run {
            loads: [(Kind::Allowed, load), (Kind::Denied, load)].into_iter().collect(),
            rss_kb,
            heap_bytes: Some(1 << 20),
            config_change_ms: None,
        }
    }

    #[test]
    fn ratios_are_per_round_then_median() {
        let a: BTreeMap<u32, Run> = [
            (1, run(100.0, 10.0, 1024)),
            (2, run(200.0, 10.0, 1024)),
            (3, run(1.0, 1.0, 1024)),
        ]
        .into_iter()
        .collect();
        // Round 3 missing from the variant: only rounds 1 and 2 count.
        let d: BTreeMap<u32, Run> = [(1, run(50.0, 20.0, 3072)), (2, run(150.0, 30.0, 2048))]
            .into_iter()
            .collect();
        let rps = |r: &Run| r.loads.get(&Kind::Allowed).map(|l| l.rps);
        assert_eq!(ratio(&d, Some(&a), rps), Some((0.5 + 0.75) / 2.0));
        assert_eq!(ratio(&d, None, rps), None);
        assert_eq!(difference(&d, Some(&a), |r| Some(r.rss_kb as f64)), Some(1536.0));
    }

    #[test]
    fn table_has_a_row_per_variant_and_request() {
        let opts = match crate::cli::parse(&["--smoke".to_string()]).unwrap() {
            crate::cli::Parsed::Run(o) => *o,
            crate::cli::Parsed::Help => unreachable!(),
        };
        let mut results = Results::default();
        for v in crate::cli::ALL_VARIANTS {
            results
                .runs
                .insert((10, v), [(1, run(1000.0, 50.0, 40_000))].into_iter().collect());
        }
        let machine = Machine {
            cpu: "cpu".into(),
            cpus: 2,
            kernel: "Linux".into(),
            envoy: "1.40".into(),
            wrk: "wrk".into(),
            date: utc(0),
        };
        let text = render(
            &opts,
            &machine,
            &["meshward-bench".into(), "--smoke".into()],
            100,
            &results,
        );
        for v in crate::cli::ALL_VARIANTS {
            let label = variant_label(v);
            assert!(
                text.contains(&format!(
                    "| {label} | 10 | allowed | 1000 | 100 | 200 | 50.0 | 39.1 |  | 1.00 | 1.00 | 1.00 | 1.00 |"
                )),
                "{text}"
            );
            assert!(text.contains(&format!("| {label} | 10 | denied | 1000 |")));
        }
        assert!(text.contains("- Rule mix: all forms"), "{text}");
        assert!(text.contains("### Load, rule mix: all forms"), "{text}");
        let maps = Options {
            mix: meshward_bench::rules::Mix::MapsOnly,
            ..opts
        };
        let text = render(&maps, &machine, &["meshward-bench".into()], 100, &results);
        assert!(text.contains("- Rule mix: exact and prefix only"), "{text}");
        assert!(text.contains("(`--mix maps`)"), "{text}");
        assert!(text.contains("### Load, rule mix: exact and prefix only"), "{text}");
        assert!(text.contains("### Memory, rule mix: exact and prefix only"), "{text}");
        assert!(!text.contains("all forms"), "{text}");
    }
}
