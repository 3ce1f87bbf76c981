//! Times configure and evaluation at 10 / 1,000 / 10,000 rules in-process, so
//! the same measurement runs natively and compiled to wasm under V8:
//!
//! ```sh
//! cargo run --profile profiling -p meshward-filter --example engine_timing
//! cargo build --profile profiling -p meshward-filter --example engine_timing --target wasm32-wasip1 --no-default-features
//! node scripts/run-wasi.mjs target/wasm32-wasip1/bench/examples/engine_timing.wasm
//! ```
//!
//! Each figure is the median of 7 rounds (configure: 7 compiles; evaluation:
//! 7 rounds of 20,000 requests after 50,000 untimed ones), with the min–max
//! range.

// A measurement tool: a failed setup should stop it loudly.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use meshward_filter::{Engine, Evaluator, Verdict};

#[path = "../tests/common/mod.rs"]
mod common;

const ROUNDS: usize = 7;

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

fn main() {
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
