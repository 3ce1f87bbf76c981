//! Times configure and evaluation at 10 / 1,000 / 10,000 rules in-process, so
//! the same measurement runs natively and compiled to wasm under V8:
//!
//! ```sh
//! cargo run --profile profiling -p meshward-filter --example engine_timing
//! cargo build --profile profiling -p meshward-filter --example engine_timing --target wasm32-wasip1 --no-default-features
//! node scripts/run-wasi.mjs target/wasm32-wasip1/profiling/examples/engine_timing.wasm
//! ```
//!
//! With `@FILE` arguments it times configure only, for each plugin
//! configuration file (e.g. the side-by-side benchmark's, kept by
//! `meshward-bench --keep`), and prints the VM's linear memory after the last
//! compile on wasm:
//!
//! ```sh
//! node scripts/run-wasi.mjs target/wasm32-wasip1/profiling/examples/engine_timing.wasm @/tmp/filter.json
//! ```
//!
//! Each figure is the median of 7 rounds (configure: 7 compiles; evaluation:
//! 7 rounds of 20,000 requests after 50,000 untimed ones), with the min–max
//! range.

// A measurement tool: a failed setup should stop it loudly; the counting
// allocator needs `unsafe impl GlobalAlloc`.
#![allow(clippy::expect_used, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use meshward_filter::{Engine, Evaluator, Verdict};

#[path = "../tests/common/mod.rs"]
mod common;

const ROUNDS: usize = 7;

/// The system allocator, counting the bytes live and their peak, so that the
/// memory a configuration takes is measured, not estimated.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median_range(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let (lo, hi) = (v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0));
    format!(
        "{:.2} ({:.2}–{:.2})",
        v.get(v.len() / 2).copied().unwrap_or(0.0),
        lo,
        hi
    )
}

/// Times configure of each `@FILE` argument: the first compile (what a new VM
/// pays, with an empty allocator) and the median (min–max) of 21 more.
fn configure_files(files: &[String]) {
    println!("file | bytes | first configure ms | configure ms");
    for file in files {
        let json = std::fs::read(file).expect("readable configuration file");
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let t = Instant::now();
        let first = Engine::from_json(&json).expect("valid config");
        let first_ms = t.elapsed().as_secs_f64() * 1e3;
        let (engine, peak) = (
            LIVE.load(Ordering::Relaxed) - before,
            PEAK.load(Ordering::Relaxed) - before,
        );
        let selection = first.select(|_| None);
        let evaluator = Evaluator::new(Arc::new(first), selection);
        let with_evaluator = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "heap beyond the configuration text: peak during compile {:.1} MiB, engine {:.1} MiB, engine + evaluator {:.1} MiB",
            mib(peak),
            mib(engine),
            mib(with_evaluator)
        );
        #[cfg(target_arch = "wasm32")]
        println!(
            "linear memory after the first compile: {:.1} MiB",
            mib(core::arch::wasm32::memory_size(0) * 65536)
        );
        // The lazy DFA caches grow with the paths requests walk, up to their
        // bound: what an evaluator holds after many different paths.
        let mut evaluator = evaluator;
        let services = evaluator.engine().stats().rules;
        let paths = common::distinct_paths(services, 20_000);
        let before_requests = LIVE.load(Ordering::Relaxed);
        for path in &paths {
            let mut request = common::typical_request(path);
            request.method = "DELETE";
            std::hint::black_box(evaluator.evaluate(&request));
        }
        println!(
            "heap growth over {} distinct paths (DELETE /svc{{k}}/v{{d}}/orders/x{{i}}): {:.2} MiB",
            paths.len(),
            mib(LIVE.load(Ordering::Relaxed) - before_requests)
        );
        drop(paths);
        drop(std::hint::black_box(evaluator));
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let parsed = meshward_filter::PluginConfig::from_json(&json).expect("valid config");
        let parsed_bytes = LIVE.load(Ordering::Relaxed) - before;
        let parse_peak = PEAK.load(Ordering::Relaxed) - before;
        let compiled = Engine::compile(&parsed).expect("valid config");
        println!(
            "of which: parsed configuration {:.1} MiB (peak while parsing {:.1}), peak while compiling it {:.1} MiB",
            mib(parsed_bytes),
            mib(parse_peak),
            mib(PEAK.load(Ordering::Relaxed) - before),
        );
        drop((parsed, compiled));
        let mut configure = Vec::new();
        for _ in 0..3 * ROUNDS {
            let t = Instant::now();
            let engine = Engine::from_json(&json).expect("valid config");
            configure.push(t.elapsed().as_secs_f64() * 1e3);
            drop(std::hint::black_box(engine));
        }
        println!("{file} | {} | {first_ms:.2} | {}", json.len(), median_range(configure));
    }
    #[cfg(target_arch = "wasm32")]
    println!(
        "linear memory: {:.1} MiB",
        mib(core::arch::wasm32::memory_size(0) * 65536)
    );
}

fn main() {
    let files: Vec<String> = std::env::args()
        .filter_map(|a| a.strip_prefix('@').map(str::to_string))
        .collect();
    if !files.is_empty() {
        return configure_files(&files);
    }
    println!("rules | configure ms | allow last rule ns | deny ns");
    for n in [10, 1_000, 10_000] {
        let json = common::generated_rules(n);
        let mut configure = Vec::new();
        let mut engine = None;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let e = Engine::from_json(json.as_bytes()).expect("valid config");
            configure.push(t.elapsed().as_secs_f64() * 1e3);
            engine = Some(e);
        }
        let engine = Arc::new(engine.expect("compiled"));
        let mut ev = Evaluator::new(engine.clone(), engine.select(|_| None));
        let mut per_request = |path: &str, want: Verdict| {
            let request = common::typical_request(path);
            assert_eq!(ev.evaluate(&request).verdict, want);
            // Warm-up, untimed: caches, branch predictors and, in V8, tier-up
            // from the baseline compiler to the optimizing one.
            for _ in 0..50_000 {
                std::hint::black_box(ev.evaluate(std::hint::black_box(&request)));
            }
            (0..ROUNDS)
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..20_000 {
                        std::hint::black_box(ev.evaluate(std::hint::black_box(&request)));
                    }
                    t.elapsed().as_secs_f64() * 1e9 / 20_000.0
                })
                .collect::<Vec<_>>()
        };
        let allow = per_request(&common::generated_path(n - 1), Verdict::Allow);
        let deny = per_request(&format!("/svc{n}/v2/report"), Verdict::Deny);
        println!(
            "{n} | {} | {} | {}",
            median_range(configure),
            median_range(allow),
            median_range(deny)
        );
    }
}
