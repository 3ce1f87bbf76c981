//! The control service at cluster scale: `meshward-control serve` (this
//! package's binary, as its own process) against a fake API server holding a
//! generated, Istio-injected cluster; prints first-sync time, resident memory
//! and change latency as a Markdown table (docs/benchmarks.md).
//!
//! ```sh
//! cargo build --release -p meshward-control
//! cargo bench -p meshward-control --bench scale --profile profiling -- \
//!     --serve target/release/meshward-control --namespaces 100 --deployments 100 --pods 10
//! ```
//!
//! (`make bench-scale` runs both sizes of docs/benchmarks.md.) Flags:
//! `--serve PATH` (the binary to measure; default this package's, as built
//! for the benchmark), `--namespaces N` (default 10), `--deployments N` per
//! namespace (100), `--pods N` per Deployment (10), `--changes N` (30),
//! `--pause-ms N` between changes (200), `--timeout-s N` (300), and `--`
//! followed by extra `serve` flags.
// Set-up failures should stop the benchmark.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use meshward_fake_apiserver::cluster::Shape;
use meshward_fake_apiserver::scale::{run, ScaleConfig};

fn main() {
    let mut shape = Shape {
        namespaces: 10,
        deployments: 100,
        pods: 10,
    };
    let mut config = ScaleConfig {
        shape,
        changes: 30,
        pause: Duration::from_millis(200),
        timeout: Duration::from_secs(300),
        serve_args: Vec::new(),
        log: "warn".into(),
    };
    let mut keep = false;
    let mut serve = std::path::PathBuf::from(env!("CARGO_BIN_EXE_meshward-control"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{arg} takes a number"))
        };
        match arg.as_str() {
            "--serve" => {
                serve = args
                    .next()
                    .map(Into::into)
                    .unwrap_or_else(|| panic!("--serve takes a path"))
            }
            "--namespaces" => shape.namespaces = number() as usize,
            "--deployments" => shape.deployments = number() as usize,
            "--pods" => shape.pods = number() as usize,
            "--changes" => config.changes = number() as usize,
            "--pause-ms" => config.pause = Duration::from_millis(number()),
            "--timeout-s" => config.timeout = Duration::from_secs(number()),
            "--log" => config.log = args.next().unwrap_or_else(|| panic!("--log takes a RUST_LOG filter")),
            "--keep" => keep = true,
            "--" => config.serve_args.extend(args.by_ref()),
            // cargo bench passes --bench to harness-less benchmarks.
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    config.shape = shape;
    let work = std::env::temp_dir().join(format!("meshward-scale-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    eprintln!(
        "generating {} pods, {} Allowlists in {} namespaces; running {}",
        shape.total_pods(),
        shape.total_allowlists(),
        shape.namespaces,
        serve.display()
    );
    let report = runtime
        .block_on(run(&serve, &work, &config))
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", report.table());
    println!(
        "WasmPlugin applies: {}; status writes: {}; Allowlists without status: {}; written more than once per generation: {}",
        report.plugin_applies,
        report.status_writes,
        report.statuses_missing.len(),
        report.statuses_repeated.len()
    );
    if keep {
        eprintln!("kept {}", work.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
}
