//! Criterion benchmarks of the policy engine.
//!
//! `cargo bench -p meshward-filter --bench engine --profile profiling` runs them; BENCHMARKS.md
//! records the figures. Rule sets are the mix of `tests/common`: exact,
//! prefix, template and regex paths with methods, one rule per service.
// criterion_group! defines an undocumented public function; a benchmark
// whose setup fails should panic.
#![allow(missing_docs, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use meshward_filter::{Engine, Evaluator, Verdict};

#[path = "../tests/common/mod.rs"]
mod common;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn evaluator(json: &str) -> Evaluator {
    let engine = Engine::from_json(json.as_bytes()).expect("valid config");
    let selection = engine.select(|_| None);
    Evaluator::new(Arc::new(engine), selection)
}

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut ev = evaluator(&common::generated_rules(n));
        // The allowed request matches the last rule.
        let allowed = common::generated_path(n - 1);
        assert_eq!(ev.evaluate(&common::typical_request(&allowed)).verdict, Verdict::Allow);
        group.bench_with_input(BenchmarkId::new("allow_last_rule", n), &allowed, |b, path| {
            b.iter(|| black_box(ev.evaluate(&common::typical_request(black_box(path))).verdict))
        });
        let denied = format!("/svc{n}/v2/report");
        assert_eq!(ev.evaluate(&common::typical_request(&denied)).verdict, Verdict::Deny);
        group.bench_with_input(BenchmarkId::new("deny", n), &denied, |b, path| {
            b.iter(|| black_box(ev.evaluate(&common::typical_request(black_box(path))).verdict))
        });
        // A template rule's path, with `{**}` last (the mix) and in the
        // middle of every template (`/svc{i}/users/{*}/{**}/orders`).
        let t = (n - 1) / 4 * 4 + 2;
        let t = if t >= n { t - 4 } else { t };
        for (name, rest_in_middle) in [("allow_template", false), ("allow_template_rest_in_middle", true)] {
            let mut ev = if rest_in_middle {
                evaluator(&common::generated_rules_rest_in_middle(n))
            } else {
                evaluator(&common::generated_rules(n))
            };
            let path = common::generated_template_path(t, rest_in_middle);
            assert_eq!(ev.evaluate(&common::typical_request(&path)).verdict, Verdict::Allow);
            group.bench_with_input(BenchmarkId::new(name, n), &path, |b, path| {
                b.iter(|| black_box(ev.evaluate(&common::typical_request(black_box(path))).verdict))
            });
        }
        // A path that needs canonicalization (rewritten before judging).
        let dotted = format!("/x/..{}", allowed.replacen('/', "/./", 2));
        assert_eq!(ev.evaluate(&common::typical_request(&dotted)).verdict, Verdict::Allow);
        group.bench_with_input(BenchmarkId::new("allow_rewritten", n), &dotted, |b, path| {
            b.iter(|| black_box(ev.evaluate(&common::typical_request(black_box(path))).verdict))
        });
    }
    group.finish();
}

fn configure(c: &mut Criterion) {
    let mut group = c.benchmark_group("configure");
    group.sample_size(20);
    for n in SIZES {
        let json = common::generated_rules(n);
        group.throughput(Throughput::Bytes(json.len() as u64));
        // What on_configure pays: parse, validate, compile, select, allocate
        // the evaluator.
        group.bench_with_input(BenchmarkId::new("parse_compile_select", n), &json, |b, json| {
            b.iter(|| black_box(evaluator(black_box(json))))
        });
    }
    group.finish();
}

/// The first request after a configuration: the lazy DFA has no states yet.
fn first_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("first_request");
    for n in SIZES {
        let engine = Arc::new(Engine::from_json(common::generated_rules(n).as_bytes()).expect("valid config"));
        let selection = engine.select(|_| None);
        let path = common::generated_path(n - 1);
        group.bench_with_input(BenchmarkId::new("cold_cache", n), &path, |b, path| {
            b.iter_batched(
                || Evaluator::new(engine.clone(), selection.clone()),
                |mut ev| black_box(ev.evaluate(&common::typical_request(path)).verdict),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, evaluate, configure, first_request);

fn main() {
    // Compiled sizes are not timings: print them once, then run criterion.
    for n in SIZES {
        let json = common::generated_rules(n);
        let engine = Engine::from_json(json.as_bytes()).expect("valid config");
        let s = engine.stats();
        println!(
            "compiled size: rules={n} config_json={} bytes heap≈{} bytes clauses={} unindexed={} paths={:?}",
            json.len(),
            s.heap_bytes,
            s.clauses,
            s.unindexed_clauses,
            s.paths
        );
    }
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
