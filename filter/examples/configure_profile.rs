//! Deterministic cost figures for BENCHMARKS.md, counted in instructions by
//! callgrind (wall-clock timings on shared machines wander by tens of percent).
//!
//! ```sh
//! cargo build --profile profiling -p meshward-filter --example configure_profile
//! # instructions to parse and compile the 10,000-rule mix:
//! valgrind --tool=callgrind target/profiling/examples/configure_profile 10000 0
//! # instructions per evaluation = (count at 11000 − count at 1000) / 10000:
//! valgrind --tool=callgrind target/profiling/examples/configure_profile 10000 1000 allow
//! valgrind --tool=callgrind target/profiling/examples/configure_profile 10000 11000 allow
//! # the mix with deny rules and address blocks (`mixed` after the request),
//! # judged for a caller from 10.1.2.3:
//! valgrind --tool=callgrind target/profiling/examples/configure_profile 10000 1000 allow mixed
//! # the same mix with `{**}` in the middle of its templates (`rest-in-middle`
//! # after the request), e.g. on a template rule's path:
//! valgrind --tool=callgrind target/profiling/examples/configure_profile 10000 1000 GET:/svc9998/users/42/7/lines/orders rest-in-middle
//! # any plugin configuration, e.g. the side-by-side benchmark's (`meshward-bench --keep`):
//! valgrind --tool=callgrind target/profiling/examples/configure_profile @filter.json 0
//! # and any request to it, as METHOD:PATH (the benchmark's allowed request at N = 10):
//! valgrind --tool=callgrind target/profiling/examples/configure_profile @filter.json 1000 POST:/svc9/v0/orders/a
//! # or a different path each time, across every service of the rule set
//! # (`DELETE /svc{k}/v{d}/orders/x{i}`, as `scripts/vm-memory.py` sends):
//! valgrind --tool=callgrind target/profiling/examples/configure_profile @filter.json 1000 distinct
//! valgrind --tool=callgrind target/profiling/examples/configure_profile @filter.json 11000 distinct
//! ```

use std::sync::Arc;

use meshward_filter::{Engine, Evaluator};

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (rules, evaluations) = (arg(1, 10_000), arg(2, 0));
    let kind = args.get(3).map_or("allow", String::as_str);
    let mixed = args.get(4).is_some_and(|a| a == "mixed");
    let json = match args.get(1).and_then(|a| a.strip_prefix('@')) {
        Some(file) => match std::fs::read_to_string(file) {
            Ok(json) => json,
            Err(e) => {
                eprintln!("{file}: {e}");
                std::process::exit(1);
            }
        },
        None if args.get(4).is_some_and(|a| a == "rest-in-middle") => common::generated_rules_rest_in_middle(rules),
        None if mixed => common::generated_rules_mixed(rules),
        None => common::generated_rules(rules),
    };
    let engine = match Engine::from_json(json.as_bytes()) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("{:?}", engine.stats());
    let selection = engine.select(|_| None);
    let mut ev = Evaluator::new(Arc::new(engine), selection);
    let (method, path) = match kind.split_once(':') {
        Some((method, path)) => (method, path.to_string()),
        None if kind == "deny" => ("GET", format!("/svc{rules}/v2/report")),
        None => ("GET", common::generated_path(rules - 1)),
    };
    let mut request = common::typical_request(&path);
    request.method = method;
    if mixed {
        request.connection = common::MIXED_PEER;
    }
    let mut verdicts = 0usize;
    if kind == "distinct" {
        // Paths for the largest count either way, so formatting them cancels
        // out of the difference between two counts.
        let services = ev.engine().stats().rules.max(1);
        let paths = common::distinct_paths(services, evaluations.max(11_000));
        for path in paths.iter().take(evaluations) {
            let mut request = common::typical_request(path);
            request.method = "DELETE";
            verdicts += std::hint::black_box(ev.evaluate(std::hint::black_box(&request))).verdict as usize;
        }
    } else {
        for _ in 0..evaluations {
            verdicts += std::hint::black_box(ev.evaluate(std::hint::black_box(&request))).verdict as usize;
        }
    }
    println!(
        "{} evaluations of {kind}: {:?}",
        evaluations,
        ev.evaluate(&request).verdict
    );
    std::hint::black_box(verdicts);
}
